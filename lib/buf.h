/*
 * buf: a growable byte buffer, always NUL-terminated, for building frames,
 * response bodies and log lines without counting bytes by hand.
 * (The shape of git's strbuf.)
 *
 * A struct buf is embedded: buf_init() before use, buf_release() after.
 * Allocation failure aborts: batchd treats out-of-memory in the server as
 * fatal rather than threading ENOMEM through every caller.
 */
#ifndef BATCHD_BUF_H
#define BATCHD_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *data;	/* len bytes, then a NUL; never NULL after buf_init */
	size_t len;
	size_t cap;	/* bytes allocated, 0 while data points at a static "" */
};

#define BUF_INIT { buf_empty, 0, 0 }
extern char buf_empty[];

void buf_init(struct buf *b);
void buf_release(struct buf *b);
/* Makes room for at least n more bytes. */
void buf_grow(struct buf *b, size_t n);
void buf_reset(struct buf *b);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vaddf(struct buf *b, const char *fmt, va_list ap);
/* Appends a name from someone's input for an error message: at most max
 * bytes (cut at a character, "..." after), control characters escaped, so
 * that the message stays one line of valid UTF-8. */
void buf_add_quoted(struct buf *b, const char *s, size_t max);
/* Little-endian fixed-width integers, for frames. */
void buf_add_u8(struct buf *b, uint8_t v);
void buf_add_u16(struct buf *b, uint16_t v);
void buf_add_u32(struct buf *b, uint32_t v);
void buf_add_u64(struct buf *b, uint64_t v);
/* Drops the first n bytes (n <= len), keeping the rest. */
void buf_consume(struct buf *b, size_t n);
/* Hands the data to the caller (free() it) and leaves b empty. */
char *buf_detach(struct buf *b, size_t *len);

#endif
