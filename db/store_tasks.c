/*
 * store_tasks: tasks in the store — listing, reading, the scans of queued
 * tasks, and every change of a task's state. See store.h.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../lib/clock.h"
#include "../lib/xalloc.h"
#include "store_int.h"

static int tasks_list(struct store *s, int q, int64_t job, int state, int64_t offset,
		      int limit, int cols, store_task_fn fn, void *ctx)
{
	sqlite3_stmt *st;
	struct store_task t;
	int n = 0;

	assert(cols >= 0 && cols <= (STORE_WITH_INPUT | STORE_NO_RESULT));
	st = store_stmt(s, q + cols);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, offset);
	sqlite3_bind_int(st, 3, limit);
	if (state >= 0)
		sqlite3_bind_int(st, 4, state);
	FOR_EACH_ROW(s, st, n, (store_read_task(st, &t, cols & STORE_WITH_INPUT), fn(ctx, &t)));
	return n;
}

/* Running and failed tasks are in the index tasks_notable. */
static int notable(int state)
{
	return state == ST_RUNNING || state == ST_FAILED;
}

int store_tasks_list(struct store *s, int64_t job, int state, int64_t offset,
		     int limit, int cols, store_task_fn fn, void *ctx)
{
	int q = state < 0 ? Q_TASKS_LIST
		: notable(state) ? Q_TASKS_LIST_NOTABLE : Q_TASKS_LIST_STATE;

	return tasks_list(s, q, job, state, offset, limit, cols, fn, ctx);
}

int store_tasks_from(struct store *s, int64_t job, int state, int64_t from,
		     int limit, int cols, store_task_fn fn, void *ctx)
{
	int q = state < 0 ? Q_TASKS_LIST
		: notable(state) ? Q_TASKS_FROM_NOTABLE : Q_TASKS_FROM_STATE;

	return tasks_list(s, q, job, state, from, limit, cols, fn, ctx);
}

/* Statement q with the task's ids bound (?1 job, ?2 index), or NULL. */
static sqlite3_stmt *task_stmt(struct store *s, int q, int64_t job, int64_t idx)
{
	sqlite3_stmt *st = store_stmt(s, q);

	if (st) {
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_int64(st, 2, idx);
	}
	return st;
}

int store_task_get(struct store *s, int64_t job, int64_t idx, store_task_fn fn,
		   void *ctx)
{
	sqlite3_stmt *st = task_stmt(s, Q_TASK_GET, job, idx);
	struct store_task t;
	int n = 0;

	if (!st)
		return -1;
	FOR_EACH_ROW(s, st, n, (store_read_task(st, &t, 1), fn(ctx, &t)));
	return n ? 0 : STORE_NOT_FOUND;
}

static int each_queued(struct store *s, sqlite3_stmt *st, store_queued_fn fn,
		       void *ctx)
{
	int n = 0;

	FOR_EACH_ROW(s, st, n, fn(ctx, sqlite3_column_int64(st, 0),
				  sqlite3_column_int(st, 1),
				  sqlite3_column_int(st, 4),
				  sqlite3_column_int64(st, 2),
				  (const char *)sqlite3_column_text(st, 3),
				  (size_t)sqlite3_column_bytes(st, 3)));
	return n;
}

int store_tasks_queued(struct store *s, int64_t job, int64_t from, int limit,
		       store_queued_fn fn, void *ctx)
{
	sqlite3_stmt *st = store_stmt(s, Q_TASKS_QUEUED);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int(st, 3, limit);
	return each_queued(s, st, fn, ctx);
}

int store_task_queued(struct store *s, int64_t job, int64_t idx,
		      store_queued_fn fn, void *ctx)
{
	sqlite3_stmt *st = task_stmt(s, Q_TASK_QUEUED, job, idx);
	int n;

	if (!st)
		return -1;
	n = each_queued(s, st, fn, ctx);
	return n < 0 ? -1 : n ? 0 : STORE_NOT_FOUND;
}

int store_task_running(struct store *s, int64_t job, int64_t idx, int attempts,
		       int worker, int64_t started_at)
{
	sqlite3_stmt *st = task_stmt(s, Q_TASK_RUNNING, job, idx);

	if (!st)
		return -1;
	sqlite3_bind_int(st, 3, attempts);
	sqlite3_bind_int(st, 4, worker);
	sqlite3_bind_int64(st, 5, started_at);
	return store_exec(s, st);
}

int store_task_progress(struct store *s, int64_t job, int64_t idx,
			double fraction, const char *message, size_t msg_len)
{
	sqlite3_stmt *st = task_stmt(s, Q_TASK_PROGRESS, job, idx);

	if (!st)
		return -1;
	sqlite3_bind_double(st, 3, fraction);
	store_bind_text(st, 4, message, msg_len);
	return store_exec(s, st);
}

int store_task_finish(struct store *s, int64_t job, int64_t idx, int state,
		      int attempts, int worker, int64_t started_at,
		      int64_t finished_at, const char *result,
		      size_t result_len, const char *error, size_t error_len,
		      double progress, const char *message)
{
	struct finish_run *r = &s->run;
	sqlite3_stmt *st;

	assert(state_final(state));
	if (s->in_txn && state == ST_SUCCEEDED && result && result_len <= RUN_RESULT_MAX &&
	    !error && !message) {
		if (s->run_open && r->job == job && r->last + 1 == idx &&
		    r->attempts == attempts && r->worker == worker &&
		    r->started_at == started_at && r->finished_at == finished_at &&
		    r->rlen == result_len && memcmp(r->result, result, result_len) == 0) {
			r->last = idx;
			return 0;
		}
		if (s->run_open && store_run_write(s) < 0)
			return -1;
		*r = (struct finish_run){ .job = job, .first = idx, .last = idx,
					  .attempts = attempts, .worker = worker,
					  .started_at = started_at,
					  .finished_at = finished_at, .rlen = result_len };
		memcpy(r->result, result, result_len);
		s->run_open = 1;
		return 0;
	}
	st = task_stmt(s, Q_TASK_FINISH, job, idx);
	if (!st)
		return -1;
	sqlite3_bind_int(st, 3, state);
	sqlite3_bind_int(st, 4, attempts);
	store_bind_int(st, 5, worker);
	store_bind_int(st, 6, started_at);
	sqlite3_bind_int64(st, 7, finished_at);
	store_bind_text(st, 8, result, result_len);
	store_bind_text(st, 9, error, error_len);
	if (progress >= 0)
		sqlite3_bind_double(st, 10, progress);
	store_bind_text(st, 11, message, message ? strlen(message) : 0);
	return store_exec(s, st);
}

int store_run_write(struct store *s)
{
	const struct finish_run *r = &s->run;
	sqlite3_stmt *st;

	s->run_open = 0;
	st = store_stmt(s, Q_TASKS_SUCCEED);
	if (st) {
		sqlite3_bind_int64(st, 1, r->job);
		sqlite3_bind_int64(st, 2, r->first);
		sqlite3_bind_int64(st, 3, r->last);
		sqlite3_bind_int(st, 4, r->attempts);
		store_bind_int(st, 5, r->worker);
		store_bind_int(st, 6, r->started_at);
		sqlite3_bind_int64(st, 7, r->finished_at);
		store_bind_text(st, 8, r->result, r->rlen);
	}
	if (!st || store_exec(s, st) < 0) {
		s->run_failed = 1;
		return -1;
	}
	return 0;
}

int store_task_retry(struct store *s, int64_t job, int64_t idx, int attempts,
		     int64_t not_before, const char *error, size_t error_len)
{
	sqlite3_stmt *st = task_stmt(s, Q_TASK_RETRY, job, idx);

	if (!st)
		return -1;
	sqlite3_bind_int(st, 3, attempts);
	store_bind_int(st, 4, not_before);
	store_bind_text(st, 5, error, error_len);
	return store_exec(s, st);
}

int store_task_requeue(struct store *s, int64_t job, int64_t idx, int attempts)
{
	sqlite3_stmt *st = task_stmt(s, Q_TASK_REQUEUE, job, idx);

	if (!st)
		return -1;
	sqlite3_bind_int(st, 3, attempts);
	return store_exec(s, st);
}

int64_t store_tasks_cancel(struct store *s, int64_t job, int64_t now)
{
	sqlite3_stmt *st = store_stmt(s, Q_TASKS_CANCEL);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, now);
	if (store_exec(s, st) < 0)
		return -1;
	return sqlite3_changes64(s->db);
}

int store_tasks_retry_failed(struct store *s, int64_t job,
			     void (*fn)(void *ctx, int64_t idx), void *ctx,
			     int64_t *failed, int64_t *cancelled)
{
	sqlite3_stmt *st = store_stmt(s, Q_TASKS_FAILED);
	struct store_job j;
	int64_t counts[ST_COUNT] = { 0 };
	int n = 0, rc;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, job);
	FOR_EACH_ROW(s, st, n, (store_add_count(counts, sqlite3_column_int(st, 1), 1),
				fn ? fn(ctx, sqlite3_column_int64(st, 0)) : (void)0,
				0));
	*failed = counts[ST_FAILED];
	*cancelled = counts[ST_CANCELLED];
	rc = store_job_get(s, job, &j);
	if (rc)
		return -1;
	st = store_stmt(s, Q_TASKS_RETRY);
	if (!st) {
		store_job_release(&j);
		return -1;
	}
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int(st, 2, j.max_attempts);
	store_job_release(&j);
	return store_exec(s, st);
}

int64_t store_requeue_running(struct store *s, int64_t job)
{
	sqlite3_stmt *st = store_stmt(s, Q_REQUEUE_RUNNING);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, job);
	if (store_exec(s, st) < 0)
		return -1;
	return sqlite3_changes64(s->db);
}
