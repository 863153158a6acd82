/*
 * Unit tests of the scheduler (server/sched.c) against a real store and a
 * pretend pool: the pool's functions are replaced at link time
 * (-Wl,--wrap), and so is a store write, to make it fail on purpose.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../db/store.h"
#include "../../lib/clock.h"
#include "../../lib/log.h"
#include "../../server/pool.h"
#include "../../server/sched.h"
#include "../../workers/registry.h"

/* ---- a pool of workers that never run anything ---- */

#define SLOTS 2

static struct pool_info info[SLOTS] = { { .id = 1, .pid = 1, .ready = 1 },
					{ .id = 2, .pid = 2, .ready = 1 } };
static uint8_t handlers[64];
static struct buf out[SLOTS], sent[SLOTS];	/* sent: what each flush sent */
static int nslots = 1;		/* the pool's size */
static size_t accepts = 1;	/* tasks a worker may hold */
static int kills;

int __wrap_pool_size(const struct pool *p)
{
	(void)p;
	return nslots;
}

const struct pool_info *__wrap_pool_info(const struct pool *p, int slot)
{
	(void)p;
	info[slot].handlers = handlers;
	return &info[slot];
}

struct buf *__wrap_pool_out(struct pool *p, int slot)
{
	(void)p;
	return &out[slot];
}

void __wrap_pool_flush(struct pool *p, int slot)
{
	(void)p;
	buf_add(&sent[slot], out[slot].data, out[slot].len);
	buf_reset(&out[slot]);
}

size_t __wrap_pool_pending(const struct pool *p, int slot)
{
	(void)p;
	return out[slot].len;
}

void __wrap_pool_kill(struct pool *p, int slot)
{
	(void)p, (void)slot;
	kills++;
}

int __wrap_pool_accepts(const struct pool *p, int slot, size_t queued)
{
	(void)p, (void)slot;
	return queued < accepts;
}

int64_t __wrap_pool_memory_limit(const struct pool *p)
{
	(void)p;
	return 0;
}

int __wrap_pool_running(const struct pool *p, int slot, int64_t *job, int64_t *idx)
{
	(void)p, (void)slot, (void)job, (void)idx;
	return 0;
}

/* ---- a store write that fails when told to ---- */

static int fail_finish;

int __real_store_task_finish(struct store *s, int64_t job, int64_t idx, int state,
			     int attempts, int worker, int64_t started_at,
			     int64_t finished_at, const char *result, size_t result_len,
			     const char *error, size_t error_len, double progress,
			     const char *message);

int __wrap_store_task_finish(struct store *s, int64_t job, int64_t idx, int state,
			     int attempts, int worker, int64_t started_at,
			     int64_t finished_at, const char *result, size_t result_len,
			     const char *error, size_t error_len, double progress,
			     const char *message)
{
	if (fail_finish) {
		fail_finish = 0;
		return -1;
	}
	return __real_store_task_finish(s, job, idx, state, attempts, worker, started_at,
					finished_at, result, result_len, error, error_len,
					progress, message);
}

/* ---- fixture ---- */

struct fixture {
	char dir[64], path[128];
	struct store *store;
	struct registry *reg;
	struct sched *sched;
};

static void numbered(void *ctx, int64_t idx, const char **text, size_t *len)
{
	static char buf[32];

	(void)ctx;
	snprintf(buf, sizeof(buf), "%lld", (long long)idx);
	*text = buf;
	*len = strlen(buf);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sched_config cfg = { .default_timeout_ms = 60000 };
	char err[512];

	snprintf(f->dir, sizeof(f->dir), "/tmp/batchd-sched-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	f->store = store_open(f->path, err, sizeof(err));
	assert_non_null(f->store);
	f->reg = registry_new();
	f->sched = sched_new(f->store, f->reg, &cfg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	sched_free(f->sched);
	store_close(f->store);
	registry_free(f->reg);
	for (int i = 0; i < SLOTS; i++) {
		buf_release(&out[i]);
		buf_release(&sent[i]);
	}
	nslots = 1;
	accepts = 1;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The result frame worker slot would send for a task it ran in dur_us. */
static void result_from(struct fixture *f, int slot, int64_t job, uint32_t idx,
			uint64_t dur_us)
{
	struct frame fr = { .type = FRAME_RESULT, .job = (uint64_t)job, .idx = idx, .ok = 1,
			    .duration_us = dur_us, .data = "\"done\"", .len = 6 };

	sched_pool_events()->frame(f->sched, slot, &fr);
}

/* The result frame the worker would send for the task it runs. */
static void result(struct fixture *f, int64_t job, uint32_t idx)
{
	result_from(f, 0, job, idx, 5000);
}

/* The indexes of the RUN frames sent to slot so far, into idx; how many. */
static int runs_sent(int slot, int64_t *idx, int max)
{
	size_t off = 0;
	int n = 0;
	char err[128];
	struct frame fr;
	ssize_t used;

	while ((used = frame_decode(sent[slot].data + off, sent[slot].len - off, &fr, err,
				    sizeof(err))) > 0) {
		off += (size_t)used;
		if (fr.type == FRAME_RUN && n < max)
			idx[n++] = fr.idx;
	}
	assert_int_equal(used, 0);
	return n;
}

/* Inserts job, loads the scheduler and readies two workers that take
 * many tasks each. */
static void two_workers(struct fixture *f, struct store_job *job)
{
	char err[256];

	nslots = 2;
	accepts = 1000;
	assert_int_equal(store_job_insert(f->store, job, numbered, NULL), 0);
	assert_int_equal(sched_load(f->sched, err, sizeof(err)), 0);
	sched_set_pool(f->sched, (struct pool *)f);
	sched_pool_events()->ready(f->sched, 0);
	sched_pool_events()->ready(f->sched, 1);
}

/* Tiny tasks go to each worker as runs of consecutive tasks (which the
 * store records with one UPDATE a run), and the job is still shared
 * evenly. */
static void test_dispatch_in_runs(void **state)
{
	struct fixture *f = *state;
	struct store_job job = { .handler = "noop", .timeout_ms = 60000, .max_attempts = 1,
				 .created_at = 1, .total = 100 };
	int64_t idx[SLOTS][128];
	int n[SLOTS], breaks = 0;

	two_workers(f, &job);
	/* The handler's time is not known yet: one task each. */
	sched_dispatch(f->sched);
	/* Now it is (2 us): the window opens to many tasks. */
	result_from(f, 0, job.id, 0, 2);
	sched_dispatch(f->sched);
	for (int i = 0; i < SLOTS; i++) {
		n[i] = runs_sent(i, idx[i], 128);
		for (int k = 1; k < n[i]; k++)
			breaks += idx[i][k] != idx[i][k - 1] + 1;
	}
	assert_int_equal(n[0] + n[1], 100);
	/* Each worker's tasks are a few runs (one each in turn made every
	 * task a run of its own: 98 breaks)... */
	assert_true(breaks <= 8);
	/* ...and neither worker has the whole job. */
	assert_true(n[0] >= 40 && n[1] >= 40);
}

/* A job of 4 tiny tasks on 2 workers: 2 each, not 4 on one. */
static void test_small_job_spreads(void **state)
{
	struct fixture *f = *state;
	struct store_job warm = { .handler = "noop", .timeout_ms = 60000, .max_attempts = 1,
				  .created_at = 1, .total = 1 };
	struct store_job job = { .handler = "noop", .timeout_ms = 60000, .max_attempts = 1,
				 .created_at = 1, .total = 4 };
	int64_t idx[SLOTS][8];

	two_workers(f, &warm);
	sched_dispatch(f->sched);
	result_from(f, 0, warm.id, 0, 2);	/* the handler is tiny */
	assert_int_equal(sched_flush(f->sched), 0);
	buf_reset(&sent[0]);
	buf_reset(&sent[1]);
	assert_int_equal(store_job_insert(f->store, &job, numbered, NULL), 0);
	sched_submitted(f->sched, &job);
	sched_dispatch(f->sched);
	assert_int_equal(runs_sent(0, idx[0], 8), 2);
	assert_int_equal(runs_sent(1, idx[1], 8), 2);
}

/* A write fails in the middle of a group; the job's counts, written after
 * it in the same group, must not land without it (the group was committed
 * when the scheduler started over from the store). */
static void test_failed_group_does_not_land(void **state)
{
	struct fixture *f = *state;
	struct store_job job = { .handler = "echo", .timeout_ms = 60000, .max_attempts = 1,
				 .created_at = 1, .total = 2 };
	int64_t counts[ST_COUNT];
	struct store_job row;
	char err[256];

	assert_int_equal(store_job_insert(f->store, &job, numbered, NULL), 0);
	assert_int_equal(sched_load(f->sched, err, sizeof(err)), 0);
	sched_set_pool(f->sched, (struct pool *)f);	/* never looked into */
	sched_pool_events()->ready(f->sched, 0);

	sched_dispatch(f->sched);
	fail_finish = 1;
	result(f, job.id, 0);		/* its write fails */
	sched_dispatch(f->sched);
	result(f, job.id, 1);		/* lands in the same group */
	assert_int_equal(sched_flush(f->sched), -1);
	assert_int_equal(kills, 0);	/* nothing was running any more */

	/* What the store holds is consistent: counts agree with the tasks. */
	assert_int_equal(store_job_get(f->store, job.id, &row), 0);
	assert_int_equal(store_job_recount(f->store, job.id, counts), 0);
	assert_int_equal(row.succeeded, counts[ST_SUCCEEDED]);
	assert_int_equal(row.succeeded, 0);
	store_job_release(&row);

	/* Started over from the store, the scheduler runs both again. */
	sched_tick(f->sched, sched_paused_until(f->sched) + 1);
	sched_pool_events()->ready(f->sched, 0);
	for (int i = 0; i < 2; i++) {
		int64_t j, idx;
		double progress;

		sched_dispatch(f->sched);
		assert_true(sched_current(f->sched, 0, &j, &idx, &progress));
		result(f, j, (uint32_t)idx);
	}
	assert_int_equal(sched_flush(f->sched), 0);
	assert_int_equal(store_job_get(f->store, job.id, &row), 0);
	assert_int_equal(row.succeeded, 2);
	assert_int_equal(row.state, ST_SUCCEEDED);
	store_job_release(&row);
}

/* Stores job and hands its first task to the one worker, slot 0. */
static void start_on_one_worker(struct fixture *f, struct store_job *job)
{
	char err[256];

	assert_int_equal(store_job_insert(f->store, job, numbered, NULL), 0);
	assert_int_equal(sched_load(f->sched, err, sizeof(err)), 0);
	sched_set_pool(f->sched, (struct pool *)f);
	sched_pool_events()->ready(f->sched, 0);
	sched_dispatch(f->sched);
}

static void committed(void *ctx, int64_t us, int ok)
{
	(void)us;
	sched_committed(ctx, ok);
}

/* What stderr (the log) got while fn ran. */
static char *logged_by(void (*fn)(struct fixture *), struct fixture *f)
{
	char path[160], *text;
	int saved = dup(2), fd;
	FILE *in;
	long n;

	snprintf(path, sizeof(path), "%s/log", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, 2);
	close(fd);
	fn(f);
	dup2(saved, 2);
	close(saved);
	in = fopen(path, "r");
	assert_non_null(in);
	fseek(in, 0, SEEK_END);
	n = ftell(in);
	rewind(in);
	text = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(text, 1, (size_t)n, in), (size_t)n);
	fclose(in);
	return text;
}

static void last_result(struct fixture *f)
{
	result_from(f, 0, 1, 0, 5);
}

static void flush(struct fixture *f)
{
	assert_int_equal(sched_flush(f->sched), 0);
}

/* A job's end is logged once it is committed, not when its last result
 * comes in: a group that does not land (a full disk) runs its tasks again,
 * and the job's end was logged each time. */
static void test_end_logged_once_committed(void **state)
{
	struct fixture *f = *state;
	struct store_job job = { .handler = "noop", .timeout_ms = 60000, .max_attempts = 1,
				 .created_at = 1, .total = 1 };
	char *text;

	log_setup(LOG_INFO, LOG_LOGFMT);
	store_on_commit(f->store, committed, f->sched);
	start_on_one_worker(f, &job);
	text = logged_by(last_result, f);
	assert_null(strstr(text, "job finished"));
	free(text);
	text = logged_by(flush, f);
	assert_non_null(strstr(text, "msg=\"job finished\" job=1 state=succeeded succeeded=1 "));
	free(text);
	text = logged_by(flush, f);
	assert_null(strstr(text, "job finished"));	/* once */
	free(text);
	store_on_commit(f->store, NULL, NULL);
}

/* A task past its timeout by the server's clock, stopped, whose result
 * then says it ran for 5 us: it finished in time and its result was held
 * for a batch (worker.c) while the task behind it ran. It succeeded; it is
 * not the answer to the stop, and the stop does not fail it. */
static void test_late_result_is_not_a_timeout(void **state)
{
	struct fixture *f = *state;
	struct store_job job = { .handler = "noop", .timeout_ms = 50, .max_attempts = 1,
				 .created_at = 1, .total = 2 };
	int64_t counts[ST_COUNT];

	start_on_one_worker(f, &job);
	sched_tick(f->sched, clock_mono_us() + 1000000);	/* a second on */
	result_from(f, 0, job.id, 0, 5);
	assert_int_equal(sched_flush(f->sched), 0);
	assert_int_equal(store_job_recount(f->store, job.id, counts), 0);
	assert_int_equal(counts[ST_SUCCEEDED], 1);
	assert_int_equal(counts[ST_FAILED], 0);
	assert_int_equal(kills, 0);
	/* A task that ran its full time when it was stopped did time out. */
	sched_dispatch(f->sched);
	sched_tick(f->sched, clock_mono_us() + 1000000);
	result_from(f, 0, job.id, 1, 60000);
	assert_int_equal(sched_flush(f->sched), 0);
	assert_int_equal(store_job_recount(f->store, job.id, counts), 0);
	assert_int_equal(counts[ST_FAILED], 1);
}

/* The same for a task of hours: its duration is no 32-bit count of
 * microseconds (that ends at 71 minutes). A task stopped at its timeout
 * of 2.5 hours, whose answer says it ran 2.5 hours, timed out: what it
 * answered the stop with is not kept as its result. */
static void test_timeout_of_hours(void **state)
{
	struct fixture *f = *state;
	struct store_job job = { .handler = "noop", .timeout_ms = 9000000, .max_attempts = 1,
				 .created_at = 1, .total = 1 };
	int64_t counts[ST_COUNT];

	start_on_one_worker(f, &job);
	sched_tick(f->sched, clock_mono_us() + 9001000000LL);
	result_from(f, 0, job.id, 0, 9000500000ULL);
	assert_int_equal(sched_flush(f->sched), 0);
	assert_int_equal(store_job_recount(f->store, job.id, counts), 0);
	assert_int_equal(counts[ST_SUCCEEDED], 0);
	assert_int_equal(counts[ST_FAILED], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failed_group_does_not_land, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dispatch_in_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_job_spreads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_result_is_not_a_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_of_hours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_logged_once_committed, setup, teardown),
	};

	return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
