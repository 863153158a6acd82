/*
 * utf8: checks and repairs UTF-8, so that everything batchd stores and serves
 * is valid JSON text even when a command writes arbitrary bytes.
 */
#ifndef BATCHD_UTF8_H
#define BATCHD_UTF8_H

#include <stddef.h>

#include "buf.h"

/* Returns 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, nothing
 * past U+10FFFF); otherwise 0 and, when bad is not NULL, the byte offset of
 * the first invalid sequence. */
int utf8_valid(const char *s, size_t n, size_t *bad);
/* Appends s[0..n) to out with every invalid sequence replaced by U+FFFD and
 * NUL bytes dropped. */
void utf8_sanitize(struct buf *out, const char *s, size_t n);

#endif
