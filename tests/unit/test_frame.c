/*
 * Unit tests of the worker message framing (workers/frame.c): every frame
 * type round-trips, partial input asks for more, and malformed input is
 * refused rather than trusted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../workers/frame.h"

static void test_run_round_trip(void **state)
{
	struct buf b = BUF_INIT;
	struct frame f;
	char err[128];
	ssize_t n;

	(void)state;
	frame_put_run(&b, 1ULL << 40, 123456, 7, 30000, 2, "{\"ms\":5}", 8);
	n = frame_decode(b.data, b.len, &f, err, sizeof(err));
	assert_int_equal(n, (ssize_t)b.len);
	assert_int_equal(f.type, FRAME_RUN);
	assert_true(f.job == 1ULL << 40);
	assert_int_equal(f.idx, 123456);
	assert_int_equal(f.handler, 7);
	assert_int_equal(f.timeout_ms, 30000);
	assert_int_equal(f.attempt, 2);
	assert_int_equal(f.len, 8);
	assert_memory_equal(f.data, "{\"ms\":5}", 8);
	buf_release(&b);
}

static void test_every_type(void **state)
{
	struct buf b = BUF_INIT;
	struct frame f;
	char err[128];
	size_t off = 0;
	ssize_t n;

	(void)state;
	frame_put_hello(&b, 4242);
	frame_put_result(&b, 9, 3, 1, 1500, "[1,2]", 5);
	frame_put_result(&b, 9, 4, 0, 10800000000ULL, "boom", 4);	/* 3 hours */
	frame_put_progress(&b, 9, 5, 250000, "a quarter", 9);
	frame_put_init(&b, 2, 0, "no model", 8);
	frame_put_stop(&b);
	frame_put_skip(&b, 9, 6);
	frame_put_result(&b, 9, 6, RESULT_SKIPPED, 0, "", 0);
	frame_put_init(&b, 3, INIT_STARTING, "", 0);

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_true(n > 0);
	assert_int_equal(f.type, FRAME_HELLO);
	assert_int_equal(f.pid, 4242);
	off += (size_t)n;

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_int_equal(f.type, FRAME_RESULT);
	assert_int_equal(f.ok, 1);
	assert_int_equal(f.duration_us, 1500);
	assert_memory_equal(f.data, "[1,2]", 5);
	off += (size_t)n;

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_int_equal(f.type, FRAME_RESULT);
	assert_int_equal(f.ok, 0);
	assert_int_equal(f.idx, 4);
	assert_true(f.duration_us == 10800000000ULL);
	off += (size_t)n;

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_int_equal(f.type, FRAME_PROGRESS);
	assert_int_equal(f.ppm, 250000);
	assert_int_equal(f.len, 9);
	off += (size_t)n;

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_int_equal(f.type, FRAME_INIT);
	assert_int_equal(f.handler, 2);
	assert_int_equal(f.ok, 0);
	off += (size_t)n;

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_int_equal(f.type, FRAME_STOP);
	off += (size_t)n;

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_int_equal(f.type, FRAME_SKIP);
	assert_true(f.job == 9 && f.idx == 6);
	off += (size_t)n;

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_int_equal(f.type, FRAME_RESULT);
	assert_int_equal(f.ok, RESULT_SKIPPED);
	off += (size_t)n;

	n = frame_decode(b.data + off, b.len - off, &f, err, sizeof(err));
	assert_int_equal(f.type, FRAME_INIT);
	assert_int_equal(f.ok, INIT_STARTING);
	off += (size_t)n;
	assert_int_equal(off, b.len);
	buf_release(&b);
}

/* Every prefix of a frame is "need more", never an error or a frame. */
static void test_partial(void **state)
{
	struct buf b = BUF_INIT;
	struct frame f;
	char err[128];

	(void)state;
	frame_put_result(&b, 1, 2, 1, 3, "\"result\"", 8);
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(frame_decode(b.data, i, &f, err, sizeof(err)), 0);
	assert_int_equal(frame_decode(b.data, b.len, &f, err, sizeof(err)), (ssize_t)b.len);
	buf_release(&b);
}

static void test_malformed(void **state)
{
	struct frame f;
	char err[128];
	/* length 0 */
	const uint8_t zero[] = { 0, 0, 0, 0, 1 };
	/* length beyond the limit */
	const uint8_t huge[] = { 0xff, 0xff, 0xff, 0x7f, 1 };
	/* unknown type */
	const uint8_t unknown[] = { 1, 0, 0, 0, 99 };
	/* RESULT too short for its fixed fields */
	const uint8_t shortr[] = { 3, 0, 0, 0, FRAME_RESULT, 1, 2 };
	/* progress over 100% */
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(frame_decode(zero, sizeof(zero), &f, err, sizeof(err)), -1);
	assert_int_equal(frame_decode(huge, sizeof(huge), &f, err, sizeof(err)), -1);
	assert_int_equal(frame_decode(unknown, sizeof(unknown), &f, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown frame type"));
	assert_int_equal(frame_decode(shortr, sizeof(shortr), &f, err, sizeof(err)), -1);

	buf_add_u32(&b, 1 + 16);
	buf_add_u8(&b, FRAME_PROGRESS);
	buf_add_u64(&b, 1);
	buf_add_u32(&b, 1);
	buf_add_u32(&b, 1000001);
	assert_int_equal(frame_decode(b.data, b.len, &f, err, sizeof(err)), -1);
	buf_release(&b);

	buf_add_u32(&b, 1 + 21);
	buf_add_u8(&b, FRAME_RESULT);
	buf_add_u64(&b, 1);
	buf_add_u32(&b, 1);
	buf_add_u8(&b, 3);	/* status must be 0, 1 or 2 */
	buf_add_u64(&b, 1);
	assert_int_equal(frame_decode(b.data, b.len, &f, err, sizeof(err)), -1);
	buf_release(&b);
}

/* Found by tests/fuzz/fuzz_frame: a HELLO with bytes after its pid was
 * taken as a HELLO, the extra bytes ignored. */
static void test_hello_with_trailing_bytes(void **state)
{
	static const uint8_t input[] = {
		0x05, 0x00, 0x00, 0x00, 0x0a, 0x01, 0x00, 0x00, 0x00,
		0x15, 0x00, 0x00, 0x00, 0x0a, 0x01, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00,
		0xf5, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
		0x20, 0xa1, 0x02,
	};
	struct frame f;
	char err[128];
	ssize_t n = frame_decode(input, sizeof(input), &f, err, sizeof(err));

	(void)state;
	assert_int_equal(n, 9);
	assert_int_equal(f.type, FRAME_HELLO);
	assert_int_equal(f.pid, 1);
	assert_int_equal(frame_decode(input + n, sizeof(input) - (size_t)n, &f, err, sizeof(err)), -1);
	assert_string_equal(err, "HELLO frame with 16 bytes after the pid");
}

static void test_progress_clamped_on_encode(void **state)
{
	struct buf b = BUF_INIT;
	struct frame f;
	char err[128];

	(void)state;
	frame_put_progress(&b, 1, 1, 5000000, "", 0);
	assert_true(frame_decode(b.data, b.len, &f, err, sizeof(err)) > 0);
	assert_int_equal(f.ppm, 1000000);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_round_trip),
		cmocka_unit_test(test_every_type),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_progress_clamped_on_encode),
		cmocka_unit_test(test_hello_with_trailing_bytes),
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
