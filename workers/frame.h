/*
 * frame: the messages between the server and its workers.
 *
 * Each message is a frame on a SOCK_STREAM socketpair:
 *
 *     u32 length | u8 type | payload (length - 1 bytes)
 *
 * integers little-endian. The fixed fields of each type come first; the
 * variable part (a task's input, a result, an error, a message) is the rest
 * of the payload, not NUL-terminated. The decoder trusts nothing: a frame
 * that is too long, too short for its type, or of an unknown type is an
 * error, and the peer is then treated as broken.
 *
 *   RUN      server -> worker  job u64, index u32, handler u16, timeout_ms u32,
 *                              attempt u32, input
 *   STOP     server -> worker  (none): finish the current task, then exit
 *   SKIP     server -> worker  job u64, index u32: do not start that task
 *                              (the server gave it to another worker);
 *                              answer RESULT with status RESULT_SKIPPED
 *   HELLO    worker -> server  pid u32
 *   RESULT   worker -> server  job u64, index u32, status u8 (RESULT_FAILED,
 *                              RESULT_OK, RESULT_SKIPPED), duration_us u64,
 *                              result JSON (ok) or error text
 *   PROGRESS worker -> server  job u64, index u32, ppm u32 (0..1000000),
 *                              message
 *   INIT     worker -> server  handler u16, status u8 (INIT_FAILED with
 *                              the error text, INIT_READY, INIT_STARTING:
 *                              a set-up begins, its time is not the task's)
 */
#ifndef BATCHD_FRAME_H
#define BATCHD_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/buf.h"

enum frame_type {
	FRAME_RUN = 1,
	FRAME_STOP = 2,
	FRAME_SKIP = 3,
	FRAME_HELLO = 10,
	FRAME_RESULT = 11,
	FRAME_PROGRESS = 12,
	FRAME_INIT = 13,
};

/* The status of a RESULT frame. */
enum result_status { RESULT_FAILED = 0, RESULT_OK = 1, RESULT_SKIPPED = 2 };

/* The status of an INIT frame. */
enum init_status { INIT_FAILED = 0, INIT_READY = 1, INIT_STARTING = 2 };

/* Largest length field accepted: a 64 MiB input plus room. */
#define FRAME_MAX_LEN (80u << 20)
#define FRAME_HEADER 4u

struct frame {
	uint8_t type;
	uint64_t job;
	uint32_t idx;
	uint16_t handler;
	uint32_t timeout_ms;
	uint32_t attempt;
	uint8_t ok;
	uint64_t duration_us;	/* 32 bits would end at 71 minutes */
	uint32_t ppm;		/* progress, millionths */
	uint32_t pid;
	const char *data;	/* the variable part; points into the input */
	size_t len;
};

/*
 * Decodes the frame at the start of buf (n bytes available).
 * Returns the number of bytes it occupies (> 0) and fills *f; 0 when buf
 * holds only part of a frame (read more); -1 when the bytes are not a valid
 * frame, with a message in err. f->data points into buf.
 */
ssize_t frame_decode(const void *buf, size_t n, struct frame *f, char *err,
		     size_t errlen);

void frame_put_run(struct buf *b, uint64_t job, uint32_t idx, uint16_t handler,
		   uint32_t timeout_ms, uint32_t attempt, const char *input,
		   size_t len);
void frame_put_stop(struct buf *b);
void frame_put_skip(struct buf *b, uint64_t job, uint32_t idx);
void frame_put_hello(struct buf *b, uint32_t pid);
void frame_put_result(struct buf *b, uint64_t job, uint32_t idx, int status,
		      uint64_t duration_us, const char *data, size_t len);
void frame_put_progress(struct buf *b, uint64_t job, uint32_t idx,
			uint32_t ppm, const char *msg, size_t len);
void frame_put_init(struct buf *b, uint16_t handler, int status, const char *msg,
		    size_t len);

#endif
