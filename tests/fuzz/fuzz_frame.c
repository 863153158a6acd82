/*
 * libFuzzer target: the decoder of the messages between the server and its
 * workers (workers/frame.c). The server decodes what a worker sends and a
 * worker what the server sends; a broken or hostile peer must never make
 * the decoder crash or read past what it was given. The input is decoded
 * as a stream of frames: each frame must lie within the input, be of a
 * known type, and encode back to the same bytes' meaning.
 *
 *   make fuzz           runs it with tests/fuzz/corpus_frame as seeds
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/frame.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

/* Encodes f again and decodes the copy: the same fields come back. */
static void round_trip(const struct frame *f)
{
	struct buf b = BUF_INIT;
	struct frame g;
	char err[128];
	ssize_t n;

	switch (f->type) {
	case FRAME_RUN:
		frame_put_run(&b, f->job, f->idx, f->handler, f->timeout_ms, f->attempt,
			      f->data, f->len);
		break;
	case FRAME_STOP:
		frame_put_stop(&b);
		break;
	case FRAME_SKIP:
		frame_put_skip(&b, f->job, f->idx);
		break;
	case FRAME_HELLO:
		frame_put_hello(&b, f->pid);
		break;
	case FRAME_RESULT:
		frame_put_result(&b, f->job, f->idx, f->ok, f->duration_us, f->data, f->len);
		break;
	case FRAME_PROGRESS:
		frame_put_progress(&b, f->job, f->idx, f->ppm, f->data, f->len);
		break;
	case FRAME_INIT:
		frame_put_init(&b, f->handler, f->ok, f->data, f->len);
		break;
	default:
		CHECK(0);
	}
	n = frame_decode(b.data, b.len, &g, err, sizeof(err));
	CHECK(n == (ssize_t)b.len);
	CHECK(g.type == f->type && g.job == f->job && g.idx == f->idx &&
	      g.handler == f->handler && g.timeout_ms == f->timeout_ms &&
	      g.attempt == f->attempt && g.ok == f->ok && g.duration_us == f->duration_us &&
	      g.ppm == f->ppm && g.pid == f->pid && g.len == f->len);
	CHECK(!f->len || !memcmp(g.data, f->data, f->len));
	buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct frame f;
		char err[128] = "";
		ssize_t n = frame_decode(data + off, size - off, &f, err, sizeof(err));

		if (n == 0)
			break;		/* a partial frame: the reader waits */
		if (n < 0) {
			CHECK(err[0]);	/* refused, with a reason */
			break;
		}
		CHECK((size_t)n <= size - off && (size_t)n >= FRAME_HEADER + 1);
		CHECK(f.data >= (const char *)data + off);
		CHECK(f.data + f.len == (const char *)data + off + (size_t)n);
		round_trip(&f);
		off += (size_t)n;
	}
	return 0;
}
