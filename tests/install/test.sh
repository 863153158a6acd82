#!/bin/sh
# Tests `make install` into a temporary DESTDIR: what lands where with
# PREFIX and without, that the installed binary runs, that the man page
# lists every command and every serve option, that the plugin header
# compiles on its own, that the systemd unit is sandboxed and names the
# installed binary, and that `make uninstall` takes it all back.
# Run from the top of the tree (make test does). Ends with "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 1
passed=0
failed=0
tmp=$(mktemp -d /tmp/batchd-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; }
check() { # check NAME COMMAND...
	name=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then
		ok "$name"
	else
		not_ok "$name"
		sed 's/^/    /' "$tmp/out" | head -20
	fi
}

dest=$tmp/stage
prefix=/opt/batchd-test
root=$dest$prefix
# The tree's own make, quietly, whatever make test was started with.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory "$@"; }

check "make install PREFIX DESTDIR" mk install PREFIX=$prefix DESTDIR="$dest"

mode_is() { [ "$(stat -c %a "$1")" = "$2" ] || { echo "$1: mode $(stat -c %a "$1"), want $2"; return 1; }; }
check "binary in PREFIX/bin, 755" mode_is "$root/bin/batchd" 755
check "man page in PREFIX/share/man/man1, 644" mode_is "$root/share/man/man1/batchd.1" 644
check "plugin header in PREFIX/include, 644" mode_is "$root/include/batchd.h" 644
check "systemd unit in PREFIX/share/batchd, 644" mode_is "$root/share/batchd/batchd.service" 644
check "nothing else installed" sh -c "[ \$(find '$dest' -type f | wc -l) -eq 4 ] || find '$dest' -type f"

version_ok() { "$root/bin/batchd" --version | head -n 1 | grep -qx "batchd $(cat VERSION)"; }
check "installed binary runs (--version)" version_ok
libs_ok() {
	out=$("$root/bin/batchd" --version)
	for lib in libmicrohttpd cJSON SQLite libcurl glibc; do
		echo "$out" | grep -q "^$lib [0-9]" || { echo "no $lib in: $out"; return 1; }
	done
}
check "--version lists the libraries" libs_ok

# The man page, rendered; every command and serve option is in it.
render_man() {
	if command -v man >/dev/null 2>&1; then
		MANWIDTH=200 man -l "$root/share/man/man1/batchd.1" 2>/dev/null
	elif command -v nroff >/dev/null 2>&1; then
		nroff -man "$root/share/man/man1/batchd.1"
	else
		# Neither man nor nroff (a minimal system): the source, with
		# its section headings and fonts taken out as roff would.
		sed -e 's/^\.SH "*\([^"]*\)"*$/\1/' -e 's/\\-/-/g; s/\\f[BIR]//g' \
			"$root/share/man/man1/batchd.1"
	fi
}
render_man | sed 's/\x08.//g; s/‐/-/g' >"$tmp/man.txt"
man_has_options() {
	missing=0
	for opt in $("$root/bin/batchd" serve --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		grep -q -- "$opt" "$tmp/man.txt" || { echo "batchd(1) lacks serve $opt"; missing=1; }
	done
	for cmd in $("$root/bin/batchd" --help | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p'); do
		grep -q "^ *$cmd\b" "$tmp/man.txt" || { echo "batchd(1) lacks command $cmd"; missing=1; }
	done
	for cmd in submit status wait cancel retry pause resume results delete health; do
		for opt in $("$root/bin/batchd" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
			grep -q -- "$opt" "$tmp/man.txt" || { echo "batchd(1) lacks $cmd $opt"; missing=1; }
		done
	done
	return $missing
}
check "batchd(1) has every command and option" man_has_options
check "batchd(1) names the version" grep -q "batchd $(cat VERSION)" "$tmp/man.txt"
check "batchd(1) has NAME and SYNOPSIS" sh -c "grep -q '^NAME' '$tmp/man.txt' && grep -q '^SYNOPSIS' '$tmp/man.txt'"
if command -v groff >/dev/null 2>&1; then
	check "batchd(1) has no roff warnings" sh -c \
		"! groff -man -Tutf8 -ww -z '$root/share/man/man1/batchd.1' 2>&1 | grep ."
fi

# A plugin compiles against the installed header alone.
cat >"$tmp/plugin.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
#include <batchd.h>

static int run(void *state, struct batchd_task *task, const char *input, char **result)
{
	size_t n = strlen(input) + 1;

	(void)state;
	batchd_progress(task, 1.0, NULL);
	*result = malloc(n);
	if (!*result)
		return -1;
	memcpy(*result, input, n);
	return 0;
}

static const struct batchd_handler ops = {
	.abi_version = BATCHD_ABI_VERSION, .name = "copy", .run = run,
};

const struct batchd_handler *batchd_handler_get(void)
{
	return &ops;
}
EOF
check "plugin header compiles on its own" \
	cc -std=c17 -Wall -Wextra -Werror -fPIC -I"$root/include" -c -o "$tmp/plugin.o" "$tmp/plugin.c"

unit=$root/share/batchd/batchd.service
check "unit runs the installed binary (PREFIX, not DESTDIR)" grep -qx "ExecStart=$prefix/bin/batchd serve" "$unit"
for line in DynamicUser=yes StateDirectory=batchd ProtectSystem=strict KillMode=mixed; do
	check "unit sets $line" grep -qx "$line" "$unit"
done
timeouts_ok() {
	grace=$(sed -n 's/^Environment=BATCHD_GRACE=//p' "$unit")
	stop=$(sed -n 's/^TimeoutStopSec=//p' "$unit")
	[ -n "$grace" ] && [ -n "$stop" ] && [ "$stop" -gt "$grace" ] ||
		{ echo "TimeoutStopSec=$stop, BATCHD_GRACE=$grace"; return 1; }
}
check "unit's TimeoutStopSec exceeds the grace period" timeouts_ok
check "no DESTDIR path in installed text files" sh -c "! grep -rl '$dest' '$root/share' '$root/include'"
if command -v systemd-analyze >/dev/null 2>&1; then
	sed "s|^ExecStart=$prefix|ExecStart=$root|" "$unit" >"$tmp/batchd.service"
	check "systemd-analyze verify accepts the unit" systemd-analyze verify --man=no "$tmp/batchd.service"
fi

# Without PREFIX: /usr/local.
check "make install DESTDIR (default PREFIX)" mk install DESTDIR="$tmp/default"
check "default PREFIX is /usr/local" test -x "$tmp/default/usr/local/bin/batchd" -a \
	-f "$tmp/default/usr/local/share/man/man1/batchd.1" -a \
	-f "$tmp/default/usr/local/include/batchd.h" -a \
	-f "$tmp/default/usr/local/share/batchd/batchd.service"
check "make uninstall" mk uninstall PREFIX=$prefix DESTDIR="$dest"
check "uninstall leaves no file" sh -c "[ -z \"\$(find '$dest' -type f)\" ] || find '$dest' -type f"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
