#!/bin/sh
# embed: turns a file into C, so that the binary carries it.
#
#   tools/embed.sh NAME FILE > out.c
#
# defines `const char NAME[]` (the bytes of FILE, then a NUL) and
# `const size_t NAME_len` (the bytes of FILE, without the NUL).
set -e
[ $# -eq 2 ] || { echo "usage: $0 NAME FILE" >&2; exit 2; }
name=$1
file=$2
[ -r "$file" ] || { echo "$0: cannot read $file" >&2; exit 1; }
printf '/* Generated from %s by tools/embed.sh: do not edit. */\n' "$file"
printf '#include <stddef.h>\n\nconst char %s[] = {\n' "$name"
od -An -v -tx1 "$file" | sed -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/\t/'
printf '\t0x00\n};\nconst size_t %s_len = sizeof(%s) - 1;\n' "$name" "$name"
