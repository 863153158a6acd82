/*
 * Unit tests of the worker loop (workers/worker.c), driven from a fake
 * server: a real worker process forked on a SOCK_SEQPACKET socketpair, so
 * that each send() of the worker arrives here as one record and the tests
 * can see how results were grouped.
 *
 * Results of tiny tasks go in batches (one send for many), and a batch is
 * never held back behind a long task.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/buf.h"
#include "../../workers/frame.h"
#include "../../workers/registry.h"
#include "../../workers/worker.h"

#define DEADLINE_MS 5000

struct fake {
	struct registry *reg;
	int fd;
	pid_t pid;
	int records;		/* records read since the last count reset */
	struct buf in;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int handler_id(struct fake *f, const char *name)
{
	int id = -1;

	assert_non_null(registry_find(f->reg, name, &id));
	return id;
}

/* Reads one record into f->in, waiting up to the deadline; 0, or -1 when
 * none came by then. */
static int read_record(struct fake *f, int64_t deadline)
{
	struct pollfd p = { .fd = f->fd, .events = POLLIN };
	int64_t left = deadline - now_ms();
	ssize_t n;

	if (left < 0 || poll(&p, 1, (int)left) <= 0)
		return -1;
	buf_grow(&f->in, 1 << 20);
	n = recv(f->fd, f->in.data + f->in.len, f->in.cap - f->in.len, 0);
	assert_true(n > 0);
	f->in.len += (size_t)n;
	f->records++;
	return 0;
}

/* The next frame from the worker, reading records as needed: 0, or -1 at
 * the deadline. */
static int next_frame(struct fake *f, struct frame *fr, struct buf *copy, int64_t deadline)
{
	char err[128];

	for (;;) {
		ssize_t used = frame_decode(f->in.data, f->in.len, fr, err, sizeof(err));

		assert_true(used >= 0);
		if (used > 0) {
			buf_reset(copy);
			buf_add(copy, fr->data, fr->len);
			fr->data = copy->data;
			buf_consume(&f->in, (size_t)used);
			return 0;
		}
		if (read_record(f, deadline) < 0)
			return -1;
	}
}

/* The next RESULT (other frames are passed over): 0, or -1 at the deadline. */
static int next_result(struct fake *f, struct frame *fr, struct buf *copy, int64_t deadline)
{
	do {
		if (next_frame(f, fr, copy, deadline) < 0)
			return -1;
	} while (fr->type != FRAME_RESULT);
	return 0;
}

static void send_buf(struct fake *f, struct buf *b)
{
	assert_int_equal(send(f->fd, b->data, b->len, MSG_NOSIGNAL), (ssize_t)b->len);
	buf_reset(b);
}

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct frame fr;
	struct buf copy = BUF_INIT;
	int sv[2];

	assert_non_null(f);
	f->reg = registry_new();
	buf_init(&f->in);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		close(sv[0]);
		_exit(worker_main(sv[1], 1, f->reg));
	}
	close(sv[1]);
	f->fd = sv[0];
	assert_int_equal(next_frame(f, &fr, &copy, now_ms() + DEADLINE_MS), 0);
	assert_int_equal(fr.type, FRAME_HELLO);
	assert_int_equal(fr.pid, f->pid);
	buf_release(&copy);
	f->records = 0;
	*state = f;
	return 0;
}

/* Closing the socket ends the worker (nobody is left to report to). */
static int teardown(void **state)
{
	struct fake *f = *state;
	int status = 0;
	int64_t deadline = now_ms() + DEADLINE_MS;
	pid_t r;

	close(f->fd);
	while ((r = waitpid(f->pid, &status, WNOHANG)) == 0 && now_ms() < deadline) {
		struct timespec ts = { 0, 5000000 };

		nanosleep(&ts, NULL);
	}
	if (r == 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, &status, 0);
	}
	registry_free(f->reg);
	buf_release(&f->in);
	free(f);
	assert_int_not_equal(r, 0);
	return 0;
}

/* 500 tiny tasks handed over at once: every result comes back, in order,
 * in far fewer sends than tasks. One send each made the server read and
 * turn its loop once per task. */
static void test_tiny_results_batched(void **state)
{
	struct fake *f = *state;
	struct buf out = BUF_INIT, copy = BUF_INIT;
	int noop = handler_id(f, "noop");
	int64_t deadline = now_ms() + DEADLINE_MS;
	const int n = 500;

	for (int i = 0; i < n; i++)
		frame_put_run(&out, 7, (uint32_t)i, (uint16_t)noop, 60000, 1, "null", 4);
	send_buf(f, &out);
	for (int i = 0; i < n; i++) {
		struct frame fr;

		assert_int_equal(next_result(f, &fr, &copy, deadline), 0);
		assert_int_equal(fr.job, 7);
		assert_int_equal(fr.idx, i);
		assert_int_equal(fr.ok, RESULT_OK);
		assert_int_equal(fr.len, 4);
		assert_memory_equal(fr.data, "null", 4);
	}
	/* A batch goes at 1 ms of age or 16 KiB: 500 noops need a handful
	 * (more on a loaded machine), never one each. */
	assert_true(f->records <= n / 10);
	assert_true(f->records >= 1);
	buf_release(&out);
	buf_release(&copy);
}

/* A tiny task, then one that runs for ten seconds: the tiny task's result
 * arrives while the long one runs, not when it ends. The server times each
 * task from the result of the one before: a held result would make it see
 * the tiny task running for the whole ten seconds (and time it out). */
static void test_result_not_held_behind_long_task(void **state)
{
	struct fake *f = *state;
	struct buf out = BUF_INIT, copy = BUF_INIT;
	int noop = handler_id(f, "noop"), sleep = handler_id(f, "sleep");
	struct frame fr;
	int64_t t0 = now_ms();

	/* Both handlers set up first: a handler's first task sends its
	 * set-up report, and with it whatever is held. */
	frame_put_run(&out, 8, 0, (uint16_t)noop, 60000, 1, "null", 4);
	frame_put_run(&out, 8, 1, (uint16_t)sleep, 60000, 1, "{\"ms\": 0}", 9);
	send_buf(f, &out);
	assert_int_equal(next_result(f, &fr, &copy, t0 + DEADLINE_MS), 0);
	assert_int_equal(next_result(f, &fr, &copy, t0 + DEADLINE_MS), 0);
	assert_int_equal(fr.idx, 1);
	/* The noop is tiny and has a task behind it: it is held. */
	frame_put_run(&out, 8, 2, (uint16_t)noop, 60000, 1, "null", 4);
	frame_put_run(&out, 8, 3, (uint16_t)sleep, 60000, 1, "{\"ms\": 10000}", 13);
	send_buf(f, &out);
	assert_int_equal(next_result(f, &fr, &copy, t0 + DEADLINE_MS), 0);
	assert_int_equal(fr.idx, 2);
	assert_int_equal(fr.ok, RESULT_OK);
	/* End the long task (the server's SKIP): stopped if it began, else
	 * skipped. */
	frame_put_skip(&out, 8, 3);
	send_buf(f, &out);
	assert_int_equal(next_result(f, &fr, &copy, t0 + DEADLINE_MS), 0);
	assert_int_equal(fr.idx, 3);
	assert_true(fr.ok == RESULT_FAILED || fr.ok == RESULT_SKIPPED);
	buf_release(&out);
	buf_release(&copy);
}

/* Results held for a batch and a frame sent at once (a progress report)
 * keep their order. */
static void test_order_kept_with_progress(void **state)
{
	struct fake *f = *state;
	struct buf out = BUF_INIT, copy = BUF_INIT;
	int noop = handler_id(f, "noop"), sleep = handler_id(f, "sleep");
	int64_t deadline = now_ms() + DEADLINE_MS;
	struct frame fr;

	for (int i = 0; i < 20; i++)
		frame_put_run(&out, 9, (uint32_t)i, (uint16_t)noop, 60000, 1, "null", 4);
	frame_put_run(&out, 9, 20, (uint16_t)sleep, 60000, 1, "{\"ms\": 50, \"steps\": 2}", 22);
	send_buf(f, &out);
	for (int i = 0; i < 20; i++) {
		do
			assert_int_equal(next_frame(f, &fr, &copy, deadline), 0);
		while (fr.type == FRAME_INIT);	/* a handler set up */
		assert_int_equal(fr.type, FRAME_RESULT);
		assert_int_equal(fr.idx, i);
	}
	do {
		assert_int_equal(next_frame(f, &fr, &copy, deadline), 0);
		if (fr.type != FRAME_INIT)
			assert_int_equal(fr.idx, 20);
	} while (fr.type == FRAME_PROGRESS || fr.type == FRAME_INIT);
	assert_int_equal(fr.type, FRAME_RESULT);
	assert_int_equal(fr.ok, RESULT_OK);
	buf_release(&out);
	buf_release(&copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tiny_results_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_result_not_held_behind_long_task, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_order_kept_with_progress, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
