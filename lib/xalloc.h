/*
 * xalloc: allocation that does not fail. batchd treats running out of
 * memory as fatal (a message on stderr, then abort) rather than threading
 * ENOMEM through every caller; these are the only places that decide so.
 */
#ifndef BATCHD_XALLOC_H
#define BATCHD_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
/* Zeroed; n == 0 still gives a unique pointer. */
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
/* A copy of s, or NULL when s is NULL. */
char *xstrdup(const char *s);
/* A malloc()ed formatted string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
