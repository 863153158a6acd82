/*
 * frame: encoding and decoding of server <-> worker messages. See frame.h.
 */
#include "frame.h"

#include <stdio.h>
#include <string.h>

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Fixed payload bytes (after the type byte) of each type; -1 if unknown. */
static int fixed_size(uint8_t type)
{
	switch (type) {
	case FRAME_RUN:
		return 8 + 4 + 2 + 4 + 4;
	case FRAME_STOP:
		return 0;
	case FRAME_SKIP:
		return 8 + 4;
	case FRAME_HELLO:
		return 4;
	case FRAME_RESULT:
		return 8 + 4 + 1 + 8;
	case FRAME_PROGRESS:
		return 8 + 4 + 4;
	case FRAME_INIT:
		return 2 + 1;
	default:
		return -1;
	}
}

ssize_t frame_decode(const void *buf, size_t n, struct frame *f, char *err,
		     size_t errlen)
{
	const uint8_t *p = buf;
	uint32_t len;
	int fixed;

	if (n < FRAME_HEADER)
		return 0;
	len = get32(p);
	if (len < 1 || len > FRAME_MAX_LEN) {
		snprintf(err, errlen, "bad frame length %u", len);
		return -1;
	}
	if (n < FRAME_HEADER + 1) /* the type tells the minimum; wait for it */
		return 0;
	memset(f, 0, sizeof(*f));
	f->type = p[FRAME_HEADER];
	fixed = fixed_size(f->type);
	if (fixed < 0) {
		snprintf(err, errlen, "unknown frame type %u", f->type);
		return -1;
	}
	if (len - 1 < (uint32_t)fixed) {
		snprintf(err, errlen, "frame type %u too short (%u bytes)",
			 f->type, len);
		return -1;
	}
	if (n < FRAME_HEADER + (size_t)len)
		return 0;
	p += FRAME_HEADER + 1;
	f->data = (const char *)p + fixed;
	f->len = len - 1 - (size_t)fixed;

	switch (f->type) {
	case FRAME_RUN:
		f->job = get64(p);
		f->idx = get32(p + 8);
		f->handler = get16(p + 12);
		f->timeout_ms = get32(p + 14);
		f->attempt = get32(p + 18);
		break;
	case FRAME_STOP:
		if (f->len) {
			snprintf(err, errlen, "STOP frame with a payload");
			return -1;
		}
		break;
	case FRAME_SKIP:
		f->job = get64(p);
		f->idx = get32(p + 8);
		if (f->len) {
			snprintf(err, errlen, "SKIP frame with a payload");
			return -1;
		}
		break;
	case FRAME_HELLO:
		f->pid = get32(p);
		if (f->len) {
			snprintf(err, errlen, "HELLO frame with %zu bytes after the pid", f->len);
			return -1;
		}
		break;
	case FRAME_RESULT:
		f->job = get64(p);
		f->idx = get32(p + 8);
		f->ok = p[12];
		f->duration_us = get64(p + 13);
		if (f->ok > RESULT_SKIPPED) {
			snprintf(err, errlen, "RESULT frame with status %u", f->ok);
			return -1;
		}
		break;
	case FRAME_PROGRESS:
		f->job = get64(p);
		f->idx = get32(p + 8);
		f->ppm = get32(p + 12);
		if (f->ppm > 1000000) {
			snprintf(err, errlen, "PROGRESS frame with %u ppm",
				 f->ppm);
			return -1;
		}
		break;
	case FRAME_INIT:
		f->handler = get16(p);
		f->ok = p[2];
		if (f->ok > INIT_STARTING) {
			snprintf(err, errlen, "INIT frame with status %u", f->ok);
			return -1;
		}
		break;
	}
	return (ssize_t)(FRAME_HEADER + len);
}

static void put_header(struct buf *b, uint8_t type, size_t payload)
{
	buf_grow(b, FRAME_HEADER + 1 + payload);
	buf_add_u32(b, (uint32_t)(1 + payload));
	buf_add_u8(b, type);
}

void frame_put_run(struct buf *b, uint64_t job, uint32_t idx, uint16_t handler,
		   uint32_t timeout_ms, uint32_t attempt, const char *input,
		   size_t len)
{
	put_header(b, FRAME_RUN, 22 + len);
	buf_add_u64(b, job);
	buf_add_u32(b, idx);
	buf_add_u16(b, handler);
	buf_add_u32(b, timeout_ms);
	buf_add_u32(b, attempt);
	buf_add(b, input, len);
}

void frame_put_stop(struct buf *b)
{
	put_header(b, FRAME_STOP, 0);
}

void frame_put_hello(struct buf *b, uint32_t pid)
{
	put_header(b, FRAME_HELLO, 4);
	buf_add_u32(b, pid);
}

void frame_put_skip(struct buf *b, uint64_t job, uint32_t idx)
{
	put_header(b, FRAME_SKIP, 12);
	buf_add_u64(b, job);
	buf_add_u32(b, idx);
}

void frame_put_result(struct buf *b, uint64_t job, uint32_t idx, int status,
		      uint64_t duration_us, const char *data, size_t len)
{
	put_header(b, FRAME_RESULT, 21 + len);
	buf_add_u64(b, job);
	buf_add_u32(b, idx);
	buf_add_u8(b, (uint8_t)status);
	buf_add_u64(b, duration_us);
	buf_add(b, data, len);
}

void frame_put_progress(struct buf *b, uint64_t job, uint32_t idx,
			uint32_t ppm, const char *msg, size_t len)
{
	put_header(b, FRAME_PROGRESS, 16 + len);
	buf_add_u64(b, job);
	buf_add_u32(b, idx);
	buf_add_u32(b, ppm > 1000000 ? 1000000 : ppm);
	buf_add(b, msg, len);
}

void frame_put_init(struct buf *b, uint16_t handler, int status, const char *msg,
		    size_t len)
{
	put_header(b, FRAME_INIT, 3 + len);
	buf_add_u16(b, handler);
	buf_add_u8(b, (uint8_t)status);
	buf_add(b, msg, len);
}
