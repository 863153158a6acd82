/*
 * store_jobs: jobs in the store — insert (with all their tasks), read,
 * list, save, delete, counts and totals. See store.h.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../lib/clock.h"
#include "../lib/xalloc.h"
#include "store_int.h"

int store_job_insert(struct store *s, struct store_job *job,
		     store_input_fn next, void *ctx)
{
	sqlite3_stmt *st;

	if (s->in_txn && store_commit(s) < 0)
		return -1;
	if (store_begin(s) < 0)
		return -1;
	st = store_stmt(s, Q_JOB_INSERT);
	if (!st)
		goto fail;
	store_bind_text(st, 1, job->name, job->name ? strlen(job->name) : 0);
	sqlite3_bind_text(st, 2, job->handler, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, job->priority);
	sqlite3_bind_int64(st, 4, job->timeout_ms);
	sqlite3_bind_int(st, 5, job->max_attempts);
	sqlite3_bind_int64(st, 6, job->created_at);
	sqlite3_bind_int64(st, 7, job->total);
	store_bind_text(st, 8, job->idem_key, job->idem_key ? strlen(job->idem_key) : 0);
	sqlite3_bind_int(st, 9, !!job->paused);
	if (job->idem_key && job->idem_hash)
		sqlite3_bind_int64(st, 10, job->idem_hash);
	else
		sqlite3_bind_null(st, 10);
	if (store_exec(s, st) < 0)
		goto fail;
	job->id = sqlite3_last_insert_rowid(s->db);
	if (job->id > STORE_MAX_JOB_ID) {
		s->errcode = SQLITE_RANGE;
		snprintf(s->errmsg, sizeof(s->errmsg), "job ids are used up (the last is %lld)",
			 (long long)STORE_MAX_JOB_ID);
		goto fail;
	}
	job->state = ST_QUEUED;
	int64_t i = 0;

	if (job->total >= INSERT_ROWS) {
		st = store_stmt(s, Q_TASK_INSERT_MANY);
		if (!st)
			goto fail;
		sqlite3_bind_int64(st, 1, job->id);
		for (; i + INSERT_ROWS <= job->total; i += INSERT_ROWS) {
			sqlite3_bind_int64(st, 2, i);
			for (int r = 0; r < INSERT_ROWS; r++) {
				const char *text;
				size_t len;

				/* next() may reuse its buffer: SQLite keeps a copy. */
				next(ctx, i + r, &text, &len);
				sqlite3_bind_text64(st, 3 + r, text, len, SQLITE_TRANSIENT,
						    SQLITE_UTF8);
			}
			if (store_exec(s, st) < 0)
				goto fail;
		}
		sqlite3_clear_bindings(st);
	}
	st = store_stmt(s, Q_TASK_INSERT);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, job->id);
	for (; i < job->total; i++) {
		const char *text;
		size_t len;

		next(ctx, i, &text, &len);
		sqlite3_bind_int64(st, 2, i);
		sqlite3_bind_text64(st, 3, text, len, SQLITE_STATIC, SQLITE_UTF8);
		if (store_exec(s, st) < 0)
			goto fail;
	}
	sqlite3_clear_bindings(st);
	if (store_commit(s) < 0)
		return -1;
	return 0;
fail:
	store_rollback_now(s);
	return -1;
}

int store_job_get(struct store *s, int64_t id, struct store_job *job)
{
	sqlite3_stmt *st = store_stmt(s, Q_JOB_GET);
	int rc;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		store_read_job(st, job, 1);
		sqlite3_reset(st);
		return 0;
	}
	if (rc != SQLITE_DONE)
		store_fail(s);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? STORE_NOT_FOUND : -1;
}

void store_job_release(struct store_job *job)
{
	free(job->name);
	free(job->handler);
	free(job->idem_key);
	job->name = job->handler = job->idem_key = NULL;
}

int64_t store_job_by_key(struct store *s, const char *key, int64_t *hash)
{
	sqlite3_stmt *st = store_stmt(s, Q_JOB_BY_KEY);
	int64_t id = 0;

	if (hash)
		*hash = 0;
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		if (hash)
			*hash = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return id;
}

static int each_job(struct store *s, sqlite3_stmt *st, store_job_fn fn, void *ctx)
{
	struct store_job j;
	int n = 0;

	FOR_EACH_ROW(s, st, n, (store_read_job(st, &j, 0), fn(ctx, &j)));
	return n;
}

int store_jobs_list(struct store *s, int state, int64_t before_id, int limit,
		    store_job_fn fn, void *ctx)
{
	sqlite3_stmt *st = store_stmt(s, state < 0 ? Q_JOBS_LIST : Q_JOBS_LIST_STATE);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
	sqlite3_bind_int(st, 2, limit);
	if (state >= 0)
		sqlite3_bind_int(st, 3, state);
	return each_job(s, st, fn, ctx);
}

int store_jobs_active(struct store *s, store_job_fn fn, void *ctx)
{
	sqlite3_stmt *st = store_stmt(s, Q_JOBS_ACTIVE);

	return st ? each_job(s, st, fn, ctx) : -1;
}

int store_jobs_recent(struct store *s, int limit, store_job_fn fn, void *ctx)
{
	sqlite3_stmt *st = store_stmt(s, Q_JOBS_RECENT);

	if (!st)
		return -1;
	sqlite3_bind_int(st, 1, limit);
	return each_job(s, st, fn, ctx);
}

int store_job_save(struct store *s, const struct store_job *job)
{
	sqlite3_stmt *st = store_stmt(s, Q_JOB_SAVE);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, job->id);
	sqlite3_bind_int(st, 2, job->state);
	store_bind_int(st, 3, job->started_at);
	store_bind_int(st, 4, job->finished_at);
	sqlite3_bind_int64(st, 5, job->succeeded);
	sqlite3_bind_int64(st, 6, job->failed);
	sqlite3_bind_int64(st, 7, job->cancelled);
	sqlite3_bind_int(st, 8, job->paused);
	return store_exec(s, st);
}

int store_job_delete(struct store *s, int64_t id)
{
	sqlite3_stmt *st;
	int own = !s->in_txn;

	if (own && store_begin(s) < 0)
		return -1;
	st = store_stmt(s, Q_JOB_DELETE_TASKS);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (store_exec(s, st) < 0)
		goto fail;
	st = store_stmt(s, Q_JOB_DELETE);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (store_exec(s, st) < 0)
		goto fail;
	return own ? store_commit(s) : 0;
fail:
	if (own)
		store_rollback_now(s);
	return -1;
}

static int add_expired(sqlite3_stmt *st, int n, int64_t *ids, int64_t *totals)
{
	ids[n] = sqlite3_column_int64(st, 0);
	totals[n] = sqlite3_column_int64(st, 1);
	return 0;
}

int store_jobs_expired(struct store *s, int64_t before_ms, int max, int64_t *ids,
		       int64_t *totals)
{
	sqlite3_stmt *st = store_stmt(s, Q_JOBS_EXPIRED);
	int n = 0;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, max);
	FOR_EACH_ROW(s, st, n, add_expired(st, n - 1, ids, totals));
	return n;
}

int store_job_recount(struct store *s, int64_t id, int64_t counts[ST_COUNT])
{
	sqlite3_stmt *st = store_stmt(s, Q_RECOUNT);
	int n = 0;

	if (!st)
		return -1;
	memset(counts, 0, sizeof(int64_t) * ST_COUNT);
	sqlite3_bind_int64(st, 1, id);
	FOR_EACH_ROW(s, st, n, store_add_count(counts, sqlite3_column_int(st, 0),
					  sqlite3_column_int64(st, 1)));
	return 0;
}

/* Adds one row of the totals query. */
static int add_totals(sqlite3_stmt *st, int64_t jobs[ST_COUNT],
		      int64_t tasks[ST_COUNT])
{
	int64_t total = sqlite3_column_int64(st, 2);
	int64_t succeeded = sqlite3_column_int64(st, 3);
	int64_t failed = sqlite3_column_int64(st, 4);
	int64_t cancelled = sqlite3_column_int64(st, 5);

	store_add_count(jobs, sqlite3_column_int(st, 0), sqlite3_column_int64(st, 1));
	tasks[ST_SUCCEEDED] += succeeded;
	tasks[ST_FAILED] += failed;
	tasks[ST_CANCELLED] += cancelled;
	tasks[ST_QUEUED] += total - succeeded - failed - cancelled;
	return 0;
}

int store_job_totals(struct store *s, int64_t jobs[ST_COUNT],
		     int64_t tasks[ST_COUNT])
{
	sqlite3_stmt *st = store_stmt(s, Q_TOTALS);
	int n = 0;

	if (!st)
		return -1;
	memset(jobs, 0, sizeof(int64_t) * ST_COUNT);
	memset(tasks, 0, sizeof(int64_t) * ST_COUNT);
	FOR_EACH_ROW(s, st, n, add_totals(st, jobs, tasks));
	return 0;
}

/* Adds one row of the throughput query to its bucket, clamped. */
static int add_bucket(int64_t *counts, int n, int64_t bucket, int64_t count)
{
	if (bucket < 0)
		bucket = 0;
	if (bucket >= n)
		bucket = n - 1;
	counts[bucket] += count;
	return 0;
}

int store_job_throughput(struct store *s, int64_t job, int64_t start_ms,
			 int64_t bucket_ms, int n, int64_t *counts)
{
	sqlite3_stmt *st = store_stmt(s, Q_THROUGHPUT);
	int rows = 0;

	assert(n > 0 && bucket_ms > 0);
	if (!st)
		return -1;
	memset(counts, 0, sizeof(int64_t) * (size_t)n);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, start_ms);
	sqlite3_bind_int64(st, 3, bucket_ms);
	FOR_EACH_ROW(s, st, rows, add_bucket(counts, n, sqlite3_column_int64(st, 0),
					     sqlite3_column_int64(st, 1)));
	return 0;
}
