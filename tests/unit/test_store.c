/*
 * Unit tests of the store (db/store.c) on real SQLite files in a temporary
 * directory: jobs and tasks through their whole life, the group
 * transaction, the files it refuses to open, and checkpoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "../../db/store.h"
#include "../../db/store_int.h"	/* the connection, to count statements */

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];

	snprintf(f->dir, sizeof(f->dir), "/tmp/batchd-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	f->s = store_open(f->path, err, sizeof(err));
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[256];

	store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void numbered_input(void *ctx, int64_t idx, const char **text, size_t *len)
{
	static char buf[32];

	(void)ctx;
	snprintf(buf, sizeof(buf), "{\"i\":%lld}", (long long)idx);
	*text = buf;
	*len = strlen(buf);
}

static int64_t add_job(struct store *s, int64_t total, const char *key)
{
	struct store_job j = { .handler = "echo", .name = "n", .priority = 1,
			       .timeout_ms = 5000, .max_attempts = 2, .created_at = 1000,
			       .total = total, .idem_key = (char *)key };

	assert_int_equal(store_job_insert(s, &j, numbered_input, NULL), 0);
	assert_true(j.id > 0);
	assert_int_equal(j.state, ST_QUEUED);
	return j.id;
}

struct seen {
	int n;
	int64_t idx[64];
	int attempts[64];
	int limit[64];
	char input[64][32];
};

static int collect(void *ctx, int64_t idx, int attempts, int limit, int64_t not_before,
		   const char *input, size_t len)
{
	struct seen *s = ctx;

	(void)not_before;
	s->idx[s->n] = idx;
	s->attempts[s->n] = attempts;
	s->limit[s->n] = limit;
	snprintf(s->input[s->n], sizeof(s->input[0]), "%.*s", (int)len, input);
	s->n++;
	return 0;
}

static void test_insert_get_scan(void **state)
{
	struct fixture *f = *state;
	struct store_job j;
	struct seen seen = { 0 };
	int64_t id = add_job(f->s, 10, NULL);

	assert_int_equal(store_job_get(f->s, id, &j), 0);
	assert_string_equal(j.handler, "echo");
	assert_string_equal(j.name, "n");
	assert_int_equal(j.total, 10);
	assert_int_equal(j.max_attempts, 2);
	assert_int_equal(j.timeout_ms, 5000);
	store_job_release(&j);
	assert_int_equal(store_job_get(f->s, id + 1, &j), STORE_NOT_FOUND);

	assert_int_equal(store_tasks_queued(f->s, id, 3, 4, collect, &seen), 4);
	assert_int_equal(seen.idx[0], 3);
	assert_int_equal(seen.idx[3], 6);
	assert_string_equal(seen.input[1], "{\"i\":4}");
	assert_int_equal(seen.limit[0], 0);	/* the job's max_attempts */
}

static int count_tasks(void *ctx, const struct store_task *t)
{
	(void)t;
	(*(int *)ctx)++;
	return 0;
}

static int keep_task(void *ctx, const struct store_task *t)
{
	struct store_task *out = ctx;

	*out = *t;
	out->result = t->result ? strdup(t->result) : NULL;
	out->error = t->error ? strdup(t->error) : NULL;
	out->message = t->message ? strdup(t->message) : NULL;
	out->input = t->input ? strdup(t->input) : NULL;
	return 0;
}

static void free_task(struct store_task *t)
{
	free((char *)t->result);
	free((char *)t->error);
	free((char *)t->message);
	free((char *)t->input);
}

static void test_task_life(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_job(f->s, 4, NULL);
	struct store_task t;
	int64_t counts[ST_COUNT];
	int n = 0;

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_task_running(f->s, id, 0, 1, 7, 2000), 0);
	assert_int_equal(store_task_progress(f->s, id, 0, 0.5, "half", 4), 0);
	assert_int_equal(store_task_get(f->s, id, 0, keep_task, &t), 0);
	assert_int_equal(t.state, ST_RUNNING);
	assert_int_equal(t.worker, 7);
	assert_float_equal(t.progress, 0.5, 1e-9);
	assert_string_equal(t.message, "half");
	assert_string_equal(t.input, "{\"i\":0}");
	free_task(&t);

	assert_int_equal(store_task_finish(f->s, id, 0, ST_SUCCEEDED, 1, 7, 2000, 3000,
					   "[1]", 3, NULL, 0, -1, NULL), 0);
	assert_int_equal(store_task_finish(f->s, id, 1, ST_FAILED, 1, 7, 2000, 3000,
					   NULL, 0, "bad", 3, -1, NULL), 0);
	assert_int_equal(store_task_retry(f->s, id, 2, 1, 99999, "again", 5), 0);
	assert_int_equal(store_commit(f->s), 0);

	assert_int_equal(store_task_get(f->s, id, 0, keep_task, &t), 0);
	assert_int_equal(t.state, ST_SUCCEEDED);
	assert_string_equal(t.result, "[1]");
	assert_float_equal(t.progress, 1.0, 1e-9);
	assert_string_equal(t.message, "half");	/* the last message stays */
	assert_int_equal(t.finished_at, 3000);
	free_task(&t);
	assert_int_equal(store_task_get(f->s, id, 2, keep_task, &t), 0);
	assert_int_equal(t.state, ST_QUEUED);
	assert_int_equal(t.attempts, 1);
	assert_int_equal(t.not_before, 99999);
	assert_string_equal(t.error, "again");
	free_task(&t);

	assert_int_equal(store_job_recount(f->s, id, counts), 0);
	assert_int_equal(counts[ST_SUCCEEDED], 1);
	assert_int_equal(counts[ST_FAILED], 1);
	assert_int_equal(counts[ST_QUEUED], 2);

	assert_int_equal(store_tasks_list(f->s, id, ST_QUEUED, 0, 10, 0, count_tasks, &n), 2);
	assert_int_equal(n, 2);
}

/* Counts the UPDATEs the store's connection runs. */
static int count_updates(unsigned type, void *ctx, void *p, void *x)
{
	(void)type, (void)x;
	if (strncmp(sqlite3_sql(p), "UPDATE tasks", 12) == 0)
		(*(int *)ctx)++;
	return 0;
}

static void expect_task(struct fixture *f, int64_t id, int64_t idx, int state,
			int worker, int64_t finished_at, const char *result)
{
	struct store_task t;

	assert_int_equal(store_task_get(f->s, id, idx, keep_task, &t), 0);
	assert_int_equal(t.state, state);
	assert_int_equal(t.worker, worker);
	assert_int_equal(t.finished_at, finished_at);
	if (result)
		assert_string_equal(t.result, result);
	else
		assert_null(t.result);
	if (state == ST_SUCCEEDED) {
		assert_int_equal(t.attempts, 1);
		assert_int_equal(t.started_at, 2000);
		assert_float_equal(t.progress, 1.0, 1e-9);
		assert_null(t.error);
	}
	free_task(&t);
}

/* Successes of consecutive tasks alike in all but their index are written
 * by one UPDATE; anything different starts a new one; every task ends as
 * if written alone. */
static void test_finish_runs(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_job(f->s, 12, NULL);
	int updates = 0;
	char big[RUN_RESULT_MAX + 2];

	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sqlite3_trace_v2(f->s->db, SQLITE_TRACE_STMT, count_updates, &updates);
	assert_int_equal(store_begin(f->s), 0);
	for (int i = 0; i < 6; i++)	/* 0..5: one run */
		assert_int_equal(store_task_finish(f->s, id, i, ST_SUCCEEDED, 1, 7, 2000, 3000,
						   "null", 4, NULL, 0, -1, NULL), 0);
	assert_int_equal(updates, 0);	/* not written yet... */
	/* ...but any statement writes it first: a read sees it. */
	expect_task(f, id, 3, ST_SUCCEEDED, 7, 3000, "null");
	assert_int_equal(updates, 1);
	updates = 0;
	/* 6: another worker; 7: another result; 8: a later finish; 9: not
	 * next to 8 (10 is); 11: too big a result to be kept. */
	assert_int_equal(store_task_finish(f->s, id, 6, ST_SUCCEEDED, 1, 8, 2000, 3000,
					   "null", 4, NULL, 0, -1, NULL), 0);
	assert_int_equal(store_task_finish(f->s, id, 7, ST_SUCCEEDED, 1, 8, 2000, 3000,
					   "[7]", 3, NULL, 0, -1, NULL), 0);
	assert_int_equal(store_task_finish(f->s, id, 8, ST_SUCCEEDED, 1, 8, 2000, 3001,
					   "[7]", 3, NULL, 0, -1, NULL), 0);
	assert_int_equal(store_task_finish(f->s, id, 10, ST_SUCCEEDED, 1, 8, 2000, 3001,
					   "[7]", 3, NULL, 0, -1, NULL), 0);
	assert_int_equal(store_task_finish(f->s, id, 11, ST_SUCCEEDED, 1, 8, 2000, 3001,
					   big, strlen(big), NULL, 0, -1, NULL), 0);
	/* A failure is written on its own. */
	assert_int_equal(store_task_finish(f->s, id, 9, ST_FAILED, 1, 8, 2000, 3002,
					   NULL, 0, "bad", 3, -1, NULL), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(updates, 6);
	sqlite3_trace_v2(f->s->db, 0, NULL, NULL);

	for (int i = 0; i < 6; i++)
		expect_task(f, id, i, ST_SUCCEEDED, 7, 3000, "null");
	expect_task(f, id, 6, ST_SUCCEEDED, 8, 3000, "null");
	expect_task(f, id, 7, ST_SUCCEEDED, 8, 3000, "[7]");
	expect_task(f, id, 8, ST_SUCCEEDED, 8, 3001, "[7]");
	expect_task(f, id, 9, ST_FAILED, 8, 3002, NULL);
	expect_task(f, id, 10, ST_SUCCEEDED, 8, 3001, "[7]");
	expect_task(f, id, 11, ST_SUCCEEDED, 8, 3001, big);
}

/* A run not yet written goes with a rollback, and is not written after. */
static void test_finish_run_rolled_back(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_job(f->s, 4, NULL);
	int64_t counts[ST_COUNT];

	assert_int_equal(store_begin(f->s), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(store_task_finish(f->s, id, i, ST_SUCCEEDED, 1, 7, 2000, 3000,
						   "null", 4, NULL, 0, -1, NULL), 0);
	store_rollback(f->s);
	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_job_recount(f->s, id, counts), 0);
	assert_int_equal(counts[ST_QUEUED], 4);
	assert_int_equal(counts[ST_SUCCEEDED], 0);
}

/* A run whose UPDATE fails (here a trigger refuses task 3) fails the read
 * that wrote it first and, later, the commit: the transaction cannot land
 * without it. And a rollback with such a run open still rolls back. */
static void test_finish_run_fails(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_job(f->s, 4, NULL);
	int64_t counts[ST_COUNT];
	struct store_task t;

	assert_int_equal(sqlite3_exec(f->s->db, "CREATE TEMP TRIGGER refuse BEFORE UPDATE"
				      " ON main.tasks WHEN NEW.idx = 3 AND NEW.state = 2"
				      " BEGIN SELECT RAISE(ABORT, 'refused'); END",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(store_begin(f->s), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(store_task_finish(f->s, id, i, ST_SUCCEEDED, 1, 7, 2000, 3000,
						   "null", 4, NULL, 0, -1, NULL), 0);
	assert_int_equal(store_task_get(f->s, id, 0, keep_task, &t), -1);
	assert_non_null(strstr(store_errmsg(f->s), "refused"));
	assert_int_equal(store_commit(f->s), -1);
	assert_int_equal(store_job_recount(f->s, id, counts), 0);
	assert_int_equal(counts[ST_SUCCEEDED], 0);

	assert_int_equal(store_begin(f->s), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(store_task_finish(f->s, id, i, ST_SUCCEEDED, 1, 7, 2000, 3000,
						   "null", 4, NULL, 0, -1, NULL), 0);
	store_rollback(f->s);
	assert_int_equal(store_begin(f->s), 0);	/* nothing was left open */
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_job_recount(f->s, id, counts), 0);
	assert_int_equal(counts[ST_QUEUED], 4);
}

static void test_cancel_and_retry(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_job(f->s, 5, NULL);
	int64_t failed, cancelled, counts[ST_COUNT];
	struct seen seen = { 0 };

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_task_finish(f->s, id, 0, ST_SUCCEEDED, 1, 1, 1, 2, "1", 1,
					   NULL, 0, -1, NULL), 0);
	assert_int_equal(store_task_finish(f->s, id, 1, ST_FAILED, 2, 1, 1, 2, NULL, 0,
					   "x", 1, -1, NULL), 0);
	assert_int_equal(store_task_running(f->s, id, 2, 1, 1, 5), 0);
	/* Queued and running tasks are cancelled; finished ones stay. */
	assert_int_equal(store_tasks_cancel(f->s, id, 10), 3);
	assert_int_equal(store_job_recount(f->s, id, counts), 0);
	assert_int_equal(counts[ST_CANCELLED], 3);
	assert_int_equal(counts[ST_SUCCEEDED], 1);

	assert_int_equal(store_tasks_retry_failed(f->s, id, NULL, NULL, &failed, &cancelled), 0);
	assert_int_equal(failed, 1);
	assert_int_equal(cancelled, 3);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_tasks_queued(f->s, id, 0, 100, collect, &seen), 4);
	/* The failed task (2 attempts) is granted max_attempts more. */
	assert_int_equal(seen.idx[0], 1);
	assert_int_equal(seen.attempts[0], 2);
	assert_int_equal(seen.limit[0], 4);
}

static void test_requeue_running(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_job(f->s, 3, NULL);
	struct store_task t;

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_task_running(f->s, id, 1, 1, 3, 100), 0);
	assert_int_equal(store_task_running(f->s, id, 2, 2, 3, 100), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_requeue_running(f->s, id), 2);
	assert_int_equal(store_task_get(f->s, id, 2, keep_task, &t), 0);
	assert_int_equal(t.state, ST_QUEUED);
	assert_int_equal(t.attempts, 1);	/* the interrupted one is not counted */
	assert_int_equal(t.worker, 0);
	free_task(&t);
}

static int count_jobs(void *ctx, const struct store_job *j)
{
	(void)j;
	(*(int *)ctx)++;
	return 0;
}

/* VM steps run by all the store's statements since the last call. */
static long vm_steps(struct store *s)
{
	long n = 0;

	for (int i = 0; i < Q_COUNT; i++)
		if (s->q[i])
			n += sqlite3_stmt_status(s->q[i], SQLITE_STMTSTATUS_VM_STEP, 1);
	return n;
}

static int last_idx(void *ctx, const struct store_task *t)
{
	*(int64_t *)ctx = t->idx;
	return 0;
}

/* A big job's few running and failed tasks are found without reading its
 * other tasks (the dashboard asks for the running ones every second):
 * the work done does not grow with the job. */
static void test_running_and_failed_found_directly(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_job(f->s, 50000, NULL), idx = -1;
	long few, all;

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_task_running(f->s, id, 49990, 1, 7, 2000), 0);
	assert_int_equal(store_task_running(f->s, id, 49991, 1, 7, 2000), 0);
	assert_int_equal(store_task_finish(f->s, id, 49991, ST_FAILED, 1, 7, 2000, 3000,
					   NULL, 0, "bad", 3, -1, NULL), 0);
	assert_int_equal(store_commit(f->s), 0);

	vm_steps(f->s);
	assert_int_equal(store_tasks_list(f->s, id, ST_RUNNING, 0, 50, 0, last_idx, &idx), 1);
	assert_int_equal(idx, 49990);
	assert_int_equal(store_tasks_list(f->s, id, ST_FAILED, 0, 50, 1, last_idx, &idx), 1);
	assert_int_equal(idx, 49991);
	assert_int_equal(store_tasks_from(f->s, id, ST_FAILED, 0, 50, 0, last_idx, &idx), 1);
	assert_int_equal(store_tasks_from(f->s, id, ST_RUNNING, 49991, 50, 1, last_idx, &idx), 0);
	few = vm_steps(f->s);
	/* The cancelled are not indexed (a cancel would write an entry for
	 * each): that query reads the job's tasks. */
	assert_int_equal(store_tasks_list(f->s, id, ST_CANCELLED, 0, 50, 0, last_idx, &idx), 0);
	all = vm_steps(f->s);
	print_message("VM steps: %ld for four indexed queries, %ld for one that reads"
		      " the job's 50,000 tasks\n", few, all);
	assert_true(few < 2000);
	assert_true(all > 50000);

	/* A requeue at start-up finds the running one the same way. */
	assert_int_equal(store_requeue_running(f->s, id), 1);
	assert_true(vm_steps(f->s) < 2000);
	assert_int_equal(store_tasks_list(f->s, id, ST_RUNNING, 0, 50, 0, last_idx, &idx), 0);
}

/* Pages the store's connection has fetched since the last call. */
static long pages_read(struct store *s)
{
	int cur, hi;
	long n = 0;

	sqlite3_db_status(s->db, SQLITE_DBSTATUS_CACHE_HIT, &cur, &hi, 1);
	n += cur;
	sqlite3_db_status(s->db, SQLITE_DBSTATUS_CACHE_MISS, &cur, &hi, 1);
	return n + cur;
}

#define BIG_VALUE (256 << 10)

/* A string of BIG_VALUE bytes, its first digit the task's index. */
static void big_input(void *ctx, int64_t idx, const char **text, size_t *len)
{
	char *buf = ctx;

	memset(buf, 'x', BIG_VALUE);
	buf[0] = '"';
	buf[1] = (char)('0' + idx % 10);
	buf[BIG_VALUE - 1] = '"';
	*text = buf;
	*len = BIG_VALUE;
}

/* Tasks whose input and result are large (here 40 of 256 KiB each, 20 MiB
 * in all) cost their size only to what reads those columns: a list of
 * their states and errors, counts and the throughput's walk read a few
 * pages, not the rows whole. */
static void test_large_values_not_read_by_lists(void **state)
{
	struct fixture *f = *state;
	char *buf = malloc(BIG_VALUE);
	struct store_job j = { .handler = "echo", .timeout_ms = 1000, .max_attempts = 1,
			       .created_at = 1000, .total = 40 };
	int64_t counts[ST_COUNT] = { 0 }, per[4] = { 0 }, idx = -1;
	long small[5], whole;
	int n = 0;

	assert_int_equal(store_job_insert(f->s, &j, big_input, buf), 0);
	assert_int_equal(store_begin(f->s), 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(store_task_finish(f->s, j.id, i, i == 7 ? ST_FAILED : ST_SUCCEEDED,
						   1, 1, 2000, 2000 + i, buf, BIG_VALUE,
						   i == 7 ? "bad" : NULL, i == 7 ? 3 : 0, -1, NULL), 0);
	assert_int_equal(store_commit(f->s), 0);
	pages_read(f->s);

	assert_int_equal(store_tasks_list(f->s, j.id, -1, 0, 40, STORE_NO_RESULT,
					  count_tasks, &n), 40);
	small[0] = pages_read(f->s);
	assert_int_equal(store_tasks_list(f->s, j.id, ST_SUCCEEDED, 30, 40, STORE_NO_RESULT,
					  count_tasks, &n), 9);
	small[1] = pages_read(f->s);
	assert_int_equal(store_tasks_from(f->s, j.id, ST_FAILED, 0, 40, STORE_NO_RESULT,
					  last_idx, &idx), 1);
	assert_int_equal(idx, 7);
	small[2] = pages_read(f->s);
	assert_int_equal(store_job_recount(f->s, j.id, counts), 0);
	assert_int_equal(counts[ST_SUCCEEDED], 39);
	small[3] = pages_read(f->s);
	assert_int_equal(store_job_throughput(f->s, j.id, 2000, 10, 4, per), 0);
	assert_int_equal(per[0] + per[1] + per[2] + per[3], 40);
	small[4] = pages_read(f->s);
	/* The same list with the results reads them: 40 x 64 pages at least. */
	assert_int_equal(store_tasks_list(f->s, j.id, -1, 0, 40, 0, count_tasks, &n), 40);
	whole = pages_read(f->s);
	print_message("pages read: %ld, %ld, %ld, %ld and %ld without the large"
		      " values, %ld for the list with its results\n", small[0], small[1],
		      small[2], small[3], small[4], whole);
	for (int i = 0; i < 5; i++)
		assert_true(small[i] < 40);
	assert_true(whole >= 40 * (BIG_VALUE / 4096));
	free(buf);
}

/* Past the last job id a task key can hold, a job is refused whole. */
static void test_job_ids_used_up(void **state)
{
	struct fixture *f = *state;
	struct store_job j = { .handler = "echo", .timeout_ms = 1, .max_attempts = 1,
			       .total = 3 };
	int64_t last = add_job(f->s, 1, NULL), counts[ST_COUNT] = { 0 };
	char sql[128];

	snprintf(sql, sizeof(sql), "UPDATE sqlite_sequence SET seq = %lld WHERE name = 'jobs'",
		 (long long)STORE_MAX_JOB_ID - 1);
	assert_int_equal(sqlite3_exec(f->s->db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(store_job_insert(f->s, &j, numbered_input, NULL), 0);
	assert_int_equal(j.id, STORE_MAX_JOB_ID);
	assert_int_equal(store_job_recount(f->s, j.id, counts), 0);
	assert_int_equal(counts[ST_QUEUED], 3);
	assert_int_equal(store_job_insert(f->s, &j, numbered_input, NULL), -1);
	assert_non_null(strstr(store_errmsg(f->s), "job ids are used up"));
	/* Nothing of it was written; the jobs before are as they were. */
	assert_int_equal(store_job_get(f->s, STORE_MAX_JOB_ID + 1, &j), STORE_NOT_FOUND);
	assert_int_equal(store_job_get(f->s, last, &j), 0);
	store_job_release(&j);
	memset(counts, 0, sizeof(counts));
	assert_int_equal(store_job_recount(f->s, STORE_MAX_JOB_ID, counts), 0);
	assert_int_equal(counts[ST_QUEUED], 3);
}

static void test_jobs_lists_delete_totals(void **state)
{
	struct fixture *f = *state;
	int64_t a = add_job(f->s, 2, "k1"), b = add_job(f->s, 3, NULL);
	struct store_job j;
	int64_t jobs[ST_COUNT], tasks[ST_COUNT];
	int n = 0;

	assert_int_equal(store_job_by_key(f->s, "k1", NULL), a);
	assert_int_equal(store_job_by_key(f->s, "k2", NULL), 0);
	{
		struct store_job h = { .handler = "echo", .timeout_ms = 1, .max_attempts = 1,
				       .total = 1, .idem_key = "hashed", .idem_hash = -42 };
		int64_t hash = 7;

		assert_int_equal(store_job_insert(f->s, &h, numbered_input, NULL), 0);
		assert_int_equal(store_job_by_key(f->s, "hashed", &hash), h.id);
		assert_int_equal(hash, -42);
		assert_int_equal(store_job_by_key(f->s, "k1", &hash), a);
		assert_int_equal(hash, 0);	/* none kept */
		assert_int_equal(store_job_delete(f->s, h.id), 0);
	}
	assert_int_equal(store_jobs_active(f->s, count_jobs, &n), 2);

	assert_int_equal(store_job_get(f->s, a, &j), 0);
	j.state = ST_SUCCEEDED;
	j.succeeded = 2;
	j.started_at = 5;
	j.finished_at = 9;
	assert_int_equal(store_job_save(f->s, &j), 0);
	store_job_release(&j);

	n = 0;
	assert_int_equal(store_jobs_active(f->s, count_jobs, &n), 1);
	n = 0;
	assert_int_equal(store_jobs_recent(f->s, 10, count_jobs, &n), 1);
	n = 0;
	assert_int_equal(store_jobs_list(f->s, -1, 0, 10, count_jobs, &n), 2);
	n = 0;
	assert_int_equal(store_jobs_list(f->s, -1, b, 10, count_jobs, &n), 1);	/* before b */
	n = 0;
	assert_int_equal(store_jobs_list(f->s, ST_SUCCEEDED, 0, 10, count_jobs, &n), 1);

	assert_int_equal(store_job_totals(f->s, jobs, tasks), 0);
	assert_int_equal(jobs[ST_SUCCEEDED], 1);
	assert_int_equal(jobs[ST_QUEUED], 1);
	assert_int_equal(tasks[ST_SUCCEEDED], 2);
	assert_int_equal(tasks[ST_QUEUED], 3);

	assert_int_equal(store_job_delete(f->s, a), 0);
	assert_int_equal(store_job_get(f->s, a, &j), STORE_NOT_FOUND);
	n = 0;
	assert_int_equal(store_tasks_list(f->s, a, -1, 0, 10, 0, count_tasks, &n), 0);
	/* Ids are never reused. */
	assert_true(add_job(f->s, 1, NULL) > b);
}

static void finish(struct store *s, int64_t id, int state, int64_t at)
{
	struct store_job j;

	assert_int_equal(store_job_get(s, id, &j), 0);
	j.state = state;
	j.started_at = 1;
	j.finished_at = at;
	assert_int_equal(store_job_save(s, &j), 0);
	store_job_release(&j);
}

/* What --keep-finished deletes: finished jobs only, by their end, oldest
 * first, as many as asked. */
static void test_jobs_expired(void **state)
{
	struct fixture *f = *state;
	int64_t a = add_job(f->s, 2, NULL), b = add_job(f->s, 3, NULL), c = add_job(f->s, 4, NULL);
	int64_t d = add_job(f->s, 5, NULL), e = add_job(f->s, 6, NULL);
	int64_t ids[8], totals[8];

	finish(f->s, a, ST_SUCCEEDED, 300);
	finish(f->s, b, ST_FAILED, 100);
	finish(f->s, c, ST_CANCELLED, 200);
	finish(f->s, d, ST_SUCCEEDED, 900);	/* too recent */
	(void)e;				/* still queued */
	assert_int_equal(store_jobs_expired(f->s, 500, 8, ids, totals), 3);
	assert_int_equal(ids[0], b);
	assert_int_equal(totals[0], 3);
	assert_int_equal(ids[1], c);
	assert_int_equal(totals[1], 4);
	assert_int_equal(ids[2], a);
	assert_int_equal(totals[2], 2);
	assert_int_equal(store_jobs_expired(f->s, 500, 2, ids, totals), 2);
	assert_int_equal(ids[1], c);
	assert_int_equal(store_jobs_expired(f->s, 100, 8, ids, totals), 0);	/* before, not at */
	assert_int_equal(store_jobs_expired(f->s, 10000, 8, ids, totals), 4);
	assert_int_equal(ids[3], d);
}

/* A rolled-back group leaves nothing behind. */
static void test_rollback(void **state)
{
	struct fixture *f = *state;
	int64_t id = add_job(f->s, 2, NULL), counts[ST_COUNT];
	struct store_job j;

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_task_finish(f->s, id, 0, ST_SUCCEEDED, 1, 1, 1, 2, "1", 1,
					   NULL, 0, -1, NULL), 0);
	assert_int_equal(store_job_get(f->s, id, &j), 0);
	j.succeeded = 1;
	assert_int_equal(store_job_save(f->s, &j), 0);
	store_job_release(&j);
	store_rollback(f->s);
	assert_false(store_in_txn(f->s));
	store_rollback(f->s);	/* none open: nothing to do */
	assert_int_equal(store_job_recount(f->s, id, counts), 0);
	assert_int_equal(counts[ST_QUEUED], 2);
	assert_int_equal(store_job_get(f->s, id, &j), 0);
	assert_int_equal(j.succeeded, 0);
	store_job_release(&j);
}

/* A failed insert writes nothing: the key is still free afterwards. */
struct wal_seen {
	int calls;
	int frames;
};

static void saw_wal(void *ctx, int frames)
{
	struct wal_seen *w = ctx;

	w->calls++;
	w->frames = frames;
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* A process running store_checkpoint_serve(path), as the checkpointer
 * does; *fd is the socket to it. Forked with no connection open here. */
static pid_t serve_checkpoints(const char *path, int *fd)
{
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(store_checkpoint_serve(sv[1], path) < 0 ? 1 : 0);
	}
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

static void read_line(int fd, char *line, size_t len)
{
	size_t n = 0;

	while (n + 1 < len && read(fd, line + n, 1) == 1 && line[n] != '\n')
		n++;
	line[n] = '\0';
}

static int exit_status(pid_t pid)
{
	int status = -1;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/*
 * Handed to a hook, the WAL is no longer checkpointed by SQLite in the
 * COMMIT: it grows past STORE_CHECKPOINT_FRAMES and the hook sees every
 * commit. Another process's store_checkpoint_serve copies it all into the
 * database file and says how much; the WAL then starts over. One that
 * cannot open the database says why.
 */
static void test_checkpoints(void **state)
{
	struct fixture *f = *state;
	struct wal_seen w = { 0 };
	char err[512], line[600];
	int fd, frames = -1, copied = -1;
	off_t before;
	pid_t pid;

	store_close(f->s);
	pid = serve_checkpoints(f->path, &fd);
	f->s = store_open(f->path, err, sizeof(err));
	assert_non_null(f->s);
	store_on_wal(f->s, saw_wal, &w);
	for (int i = 0; i < 200 && w.frames < 2 * STORE_CHECKPOINT_FRAMES; i++)
		add_job(f->s, 5000, NULL);
	assert_true(w.calls > 1);
	assert_true(w.frames >= 2 * STORE_CHECKPOINT_FRAMES);
	before = file_size(f->path);

	assert_int_equal(write(fd, "c", 1), 1);
	read_line(fd, line, sizeof(line));
	assert_int_equal(sscanf(line, "ok %d %d", &frames, &copied), 2);
	assert_int_equal(frames, w.frames);
	assert_int_equal(copied, frames);
	assert_true(file_size(f->path) > before);
	add_job(f->s, 10, NULL);
	assert_true(w.frames < frames);	/* started over */
	close(fd);
	assert_int_equal(exit_status(pid), 0);

	/* The server's own, when there is no checkpointer. */
	for (int i = 0; i < 200 && w.frames < STORE_CHECKPOINT_FRAMES; i++)
		add_job(f->s, 5000, NULL);
	before = file_size(f->path);
	assert_int_equal(store_checkpoint(f->s), 0);
	assert_true(file_size(f->path) > before);

	/* Given back to SQLite: the hook is no longer called. */
	store_on_wal(f->s, NULL, NULL);
	frames = w.calls;
	add_job(f->s, 10, NULL);
	assert_int_equal(w.calls, frames);

	pid = serve_checkpoints("/nonexistent/dir/t.db", &fd);
	read_line(fd, line, sizeof(line));
	assert_non_null(strstr(line, "error cannot open database /nonexistent/dir/t.db: "));
	close(fd);
	assert_int_equal(exit_status(pid), 1);
}

/* A WAL that grew long while checkpoints could not catch up is cut back
 * once it starts over, instead of keeping that size for good. */
static void test_wal_cut_back(void **state)
{
	struct fixture *f = *state;
	struct wal_seen w = { 0 };
	char wal[600];
	off_t grown;

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	store_on_wal(f->s, saw_wal, &w);	/* no checkpoint but ours */
	for (int i = 0; i < 1000 && file_size(wal) <= STORE_WAL_KEEP_BYTES; i++)
		add_job(f->s, 5000, NULL);
	grown = file_size(wal);
	assert_true(grown > STORE_WAL_KEEP_BYTES);

	assert_int_equal(store_checkpoint(f->s), 0);
	assert_int_equal(file_size(wal), grown);	/* copied, not yet cut */
	add_job(f->s, 10, NULL);
	assert_true(w.frames < 10);			/* started over */
	assert_true(file_size(wal) <= STORE_WAL_KEEP_BYTES);
}

/* ---- the disk: a VFS over the default one, counting the WAL's syncs ---- */

static sqlite3_vfs *real_vfs;
static int wal_syncs;		/* syncs of a WAL file so far */
static int fail_wal_syncs;	/* the WAL's syncs fail (an I/O error) */

struct cfile {
	sqlite3_file base;
	int wal;
	sqlite3_file *real;	/* the default VFS's file, just after this */
};

#define REAL(f) (((struct cfile *)(f))->real)

static int c_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int c_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

static int c_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}

static int c_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int c_sync(sqlite3_file *f, int flags)
{
	if (((struct cfile *)f)->wal) {
		if (fail_wal_syncs)
			return SQLITE_IOERR_FSYNC;
		wal_syncs++;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int c_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int c_lock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int c_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int c_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int c_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int c_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int c_device(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int c_shm_map(sqlite3_file *f, int pg, int size, int extend, void volatile **out)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, size, extend, out);
}

static int c_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void c_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int c_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int c_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int c_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods c_methods = {
	3, c_close, c_read, c_write, c_truncate, c_sync, c_size, c_lock, c_unlock, c_reserved,
	c_control, c_sector, c_device, c_shm_map, c_shm_lock, c_shm_barrier, c_shm_unmap,
	c_fetch, c_unfetch,
};

static int c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct cfile *c = (struct cfile *)f;
	int rc;

	(void)vfs;
	c->real = (sqlite3_file *)(c + 1);
	c->wal = !!(flags & SQLITE_OPEN_WAL);
	rc = real_vfs->xOpen(real_vfs, name, c->real, flags, out);
	c->base.pMethods = rc == SQLITE_OK ? &c_methods : NULL;
	return rc;
}

static int c_delete(sqlite3_vfs *v, const char *name, int sync)
{
	(void)v;
	return real_vfs->xDelete(real_vfs, name, sync);
}

static int c_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	(void)v;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int c_full(sqlite3_vfs *v, const char *name, int n, char *out)
{
	(void)v;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int c_random(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int c_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return real_vfs->xSleep(real_vfs, us);
}

static int c_time(sqlite3_vfs *v, sqlite3_int64 *out)
{
	(void)v;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static int c_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xGetLastError(real_vfs, n, out);
}

static sqlite3_vfs counting_vfs = {
	.iVersion = 2, .mxPathname = 512, .zName = "counting", .xOpen = c_open,
	.xDelete = c_delete, .xAccess = c_access, .xFullPathname = c_full,
	.xRandomness = c_random, .xSleep = c_sleep, .xGetLastError = c_error,
	.xCurrentTimeInt64 = c_time,
};

/* The stores opened from now on go through counting_vfs. */
static void count_syncs(void)
{
	if (!real_vfs) {
		real_vfs = sqlite3_vfs_find(NULL);
		assert_non_null(real_vfs);
		counting_vfs.szOsFile = (int)sizeof(struct cfile) + real_vfs->szOsFile;
		counting_vfs.mxPathname = real_vfs->mxPathname;
		assert_int_equal(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
	}
}

/* A commit does not wait for the disk, not even a job's (its answer would
 * wait a sync's time); store_sync() makes everything committed durable,
 * once, and says when the disk refuses. */
static void test_sync(void **state)
{
	struct fixture *f = *state;
	struct fixture g = { 0 };
	char err[512];
	int syncs;
	int64_t job;

	count_syncs();
	snprintf(g.path, sizeof(g.path), "%s/synced.db", f->dir);
	g.s = store_open(g.path, err, sizeof(err));
	assert_non_null(g.s);
	assert_int_equal(store_sync(g.s), 0);
	assert_false(store_unsynced(g.s));

	syncs = wal_syncs;
	job = add_job(g.s, 100, NULL);
	assert_true(store_unsynced(g.s));
	assert_int_equal(store_begin(g.s), 0);
	assert_int_equal(store_task_running(g.s, job, 0, 1, 1, 2000), 0);
	assert_int_equal(store_commit(g.s), 0);
	assert_int_equal(wal_syncs, syncs);
	assert_int_equal(store_sync(g.s), 0);
	assert_int_equal(wal_syncs, syncs + 1);
	assert_false(store_unsynced(g.s));

	/* The disk refuses: said, still owed, and the store goes on. */
	add_job(g.s, 1, NULL);
	fail_wal_syncs = 1;
	assert_int_equal(store_sync(g.s), -1);
	assert_non_null(strstr(store_errmsg(g.s), "cannot sync the WAL to disk: disk I/O error"));
	assert_true(store_unsynced(g.s));
	fail_wal_syncs = 0;
	add_job(g.s, 1, NULL);
	assert_int_equal(store_sync(g.s), 0);
	assert_false(store_unsynced(g.s));

	/* --sync commit: each commit waits for the disk itself. */
	assert_int_equal(store_sync_each_commit(g.s), 0);
	syncs = wal_syncs;
	add_job(g.s, 1, NULL);
	assert_int_equal(wal_syncs, syncs + 1);
	assert_int_equal(store_begin(g.s), 0);
	assert_int_equal(store_task_running(g.s, job, 1, 1, 1, 2000), 0);
	assert_int_equal(store_commit(g.s), 0);
	assert_int_equal(wal_syncs, syncs + 2);
	assert_false(store_unsynced(g.s));
	store_close(g.s);
}

static void test_insert_is_atomic(void **state)
{
	struct fixture *f = *state;
	struct store_job j = { .handler = "echo", .timeout_ms = 1, .max_attempts = 1,
			       .total = 3, .idem_key = "same" };
	int n = 0;

	add_job(f->s, 1, "same");
	assert_int_equal(store_job_insert(f->s, &j, numbered_input, NULL), -1);
	assert_non_null(strstr(store_errmsg(f->s), "UNIQUE"));
	assert_int_equal(store_jobs_list(f->s, -1, 0, 10, count_jobs, &n), 1);
	assert_false(store_in_txn(f->s));
}

static void test_refusals(void **state)
{
	struct fixture *f = *state;
	char err[512], path[256];
	FILE *fp;

	/* The same file, already held. */
	assert_null(store_open(f->path, err, sizeof(err)));
	assert_non_null(strstr(err, "in use by another batchd process"));
	assert_non_null(strstr(err, f->path));

	snprintf(path, sizeof(path), "%s/missing/x.db", f->dir);
	assert_null(store_open(path, err, sizeof(err)));
	assert_non_null(strstr(err, "does not exist"));

	snprintf(path, sizeof(path), "%s/garbage.db", f->dir);
	fp = fopen(path, "w");
	for (int i = 0; i < 2000; i++)
		fputs("this is not a database file at all ", fp);
	fclose(fp);
	assert_null(store_open(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "not a database"));

	snprintf(path, sizeof(path), "%s/ro.db", f->dir);
	fp = fopen(path, "w");
	fclose(fp);
	chmod(path, 0444);
	assert_null(store_open(path, err, sizeof(err)));
	assert_non_null(strstr(err, "read-only"));
}

static int64_t user_version(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A database of the first schema (before jobs.paused), as batchd 0.1 made
 * it, opens: brought up to this schema, its jobs unpaused. One from a
 * newer batchd is refused. */
static void test_migrates_schema_1(void **state)
{
	struct fixture *f = *state;
	char err[512], path[256];
	struct store_job j;
	int64_t hash;
	struct store *s;
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = 0;

	snprintf(path, sizeof(path), "%s/v1.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"PRAGMA journal_mode=WAL; PRAGMA application_id=1651794788; PRAGMA user_version=1;"
		"CREATE TABLE jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT,"
		" handler TEXT NOT NULL, state INTEGER NOT NULL, priority INTEGER NOT NULL,"
		" timeout_ms INTEGER NOT NULL, max_attempts INTEGER NOT NULL,"
		" created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
		" total INTEGER NOT NULL, succeeded INTEGER NOT NULL DEFAULT 0,"
		" failed INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0,"
		" idem_key TEXT UNIQUE);"
		"CREATE TABLE tasks(job_id INTEGER NOT NULL, idx INTEGER NOT NULL,"
		" state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
		" attempt_limit INTEGER, not_before INTEGER, progress REAL, message TEXT,"
		" worker INTEGER, started_at INTEGER, finished_at INTEGER,"
		" input TEXT NOT NULL, result TEXT, error TEXT,"
		" PRIMARY KEY(job_id, idx)) WITHOUT ROWID;"
		"INSERT INTO jobs(name, handler, state, priority, timeout_ms, max_attempts,"
		" created_at, total, idem_key) VALUES('old', 'echo', 0, 0, 1000, 1, 5, 1, 'ok');"
		"INSERT INTO tasks(job_id, idx, input) VALUES(1, 0, '7');"
		"INSERT INTO tasks(job_id, idx, state, attempts, input, error)"
		" VALUES(1, 1, 3, 1, '8', 'boom');"
		"INSERT INTO tasks(job_id, idx, state, attempts, worker, input)"
		" VALUES(1, 2, 1, 1, 2, '9');"
		"CREATE INDEX tasks_notable ON tasks(job_id, state, idx) WHERE state IN (1, 3);",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	s = store_open(path, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(store_job_get(s, 1, &j), 0);
	assert_string_equal(j.name, "old");
	assert_int_equal(j.paused, 0);
	j.paused = 1;
	assert_int_equal(store_job_save(s, &j), 0);
	store_job_release(&j);
	/* Its tasks, keyed anew (schema 4), are all there, and the index of
	 * the running and failed holds them. */
	{
		struct store_task t;
		int64_t idx = -1;

		assert_int_equal(store_task_get(s, 1, 0, keep_task, &t), 0);
		assert_string_equal(t.input, "7");
		assert_int_equal(t.job_id, 1);
		assert_int_equal(t.idx, 0);
		assert_int_equal(t.state, ST_QUEUED);
		free_task(&t);
		assert_int_equal(store_tasks_list(s, 1, ST_FAILED, 0, 10, 0, last_idx, &idx), 1);
		assert_int_equal(idx, 1);
		assert_int_equal(store_task_get(s, 1, 1, keep_task, &t), 0);
		assert_string_equal(t.error, "boom");
		free_task(&t);
		assert_int_equal(store_requeue_running(s, 1), 1);
		assert_int_equal(store_tasks_list(s, 1, ST_QUEUED, 0, 10, 0, count_tasks, &n), 2);
		assert_int_equal(n, 2);
	}
	store_close(s);
	assert_int_equal(user_version(path), 4);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema"
					    " WHERE name = 'tasks_v3'", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);	/* the old table is gone */
	sqlite3_finalize(st);
	sqlite3_close(db);
	s = store_open(path, err, sizeof(err));	/* once is enough */
	assert_non_null(s);
	assert_int_equal(store_job_get(s, 1, &j), 0);
	assert_int_equal(j.paused, 1);
	store_job_release(&j);
	/* Its key is kept, with no request hash: it replays as before. */
	assert_int_equal(store_job_by_key(s, "ok", &hash), 1);
	assert_int_equal(hash, 0);
	store_close(s);

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=5", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(store_open(path, err, sizeof(err)));
	assert_non_null(strstr(err, "made by a newer batchd (schema 5)"));
}

static void long_input(void *ctx, int64_t idx, const char **text, size_t *len)
{
	static char buf[256];

	(void)ctx;
	snprintf(buf, sizeof(buf), "{\"i\":%lld,\"pad\":\"%0200d\"}", (long long)idx, 0);
	*text = buf;
	*len = strlen(buf);
}

/* Damage in the middle of the file, in pages start-up would not otherwise
 * read, is found when the store is opened. */
static void test_refuses_corrupt_pages(void **state)
{
	struct fixture *f = *state;
	struct store_job j = { .handler = "echo", .timeout_ms = 1, .max_attempts = 1,
			       .total = 2000 };
	char err[512], junk[16 * 4096];
	FILE *fp;
	long size;

	assert_int_equal(store_job_insert(f->s, &j, long_input, NULL), 0);
	store_close(f->s);
	f->s = NULL;
	fp = fopen(f->path, "r+b");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	assert_true(size > 64 * 4096);
	memset(junk, 0x5a, sizeof(junk));
	fseek(fp, (size / 2) & ~4095L, SEEK_SET);
	fwrite(junk, 1, sizeof(junk), fp);
	fclose(fp);

	assert_null(store_open(f->path, err, sizeof(err)));
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "the file is corrupt ("));
	assert_null(strchr(err, '\n'));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_insert_get_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_task_life, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_run_rolled_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_run_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_and_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_running_and_failed_found_directly, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_jobs_lists_delete_totals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jobs_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrates_schema_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_insert_is_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_cut_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_corrupt_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_values_not_read_by_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_ids_used_up, setup, teardown),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
