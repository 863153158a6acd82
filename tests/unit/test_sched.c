/*
 * Unit tests of the scheduler (server/sched.c) against a real store and a
 * pretend pool: the pool's functions are replaced at link time
 * (-Wl,--wrap), and so is a store write, to make it fail on purpose.
 */
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
#include "../../server/pool.h"
#include "../../server/sched.h"
#include "../../workers/registry.h"

/* ---- a pool of one worker that never runs anything ---- */

static struct pool_info info = { .id = 1, .pid = 1, .ready = 1 };
static uint8_t handlers[64];
static struct buf out = BUF_INIT;
static int kills;

int __wrap_pool_size(const struct pool *p)
{
	(void)p;
	return 1;
}

const struct pool_info *__wrap_pool_info(const struct pool *p, int slot)
{
	(void)p, (void)slot;
	info.handlers = handlers;
	return &info;
}

struct buf *__wrap_pool_out(struct pool *p, int slot)
{
	(void)p, (void)slot;
	return &out;
}

void __wrap_pool_flush(struct pool *p, int slot)
{
	(void)p, (void)slot;
	buf_reset(&out);
}

size_t __wrap_pool_pending(const struct pool *p, int slot)
{
	(void)p, (void)slot;
	return out.len;
}

void __wrap_pool_kill(struct pool *p, int slot)
{
	(void)p, (void)slot;
	kills++;
}

int __wrap_pool_accepts(const struct pool *p, int slot, size_t queued)
{
	(void)p, (void)slot;
	return queued < 1;
}

int64_t __wrap_pool_memory_limit(const struct pool *p)
{
	(void)p;
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
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The result frame the worker would send for the task it runs. */
static void result(struct fixture *f, int64_t job, uint32_t idx)
{
	struct frame fr = { .type = FRAME_RESULT, .job = (uint64_t)job, .idx = idx, .ok = 1,
			    .duration_us = 5000, .data = "\"done\"", .len = 6 };

	sched_pool_events()->frame(f->sched, 0, &fr);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failed_group_does_not_land, setup, teardown),
	};

	return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
