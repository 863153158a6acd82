/*
 * store_int: what the store's files share, and nothing else includes. The
 * store is one module (store.h) in three files:
 *
 *   store.c        the schema, every SQL statement, opening, transactions
 *   store_jobs.c   jobs: insert, read, list, save, delete, totals
 *   store_tasks.c  tasks: list, read, queued scans, state changes
 */
#ifndef BATCHD_STORE_INT_H
#define BATCHD_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store.h"

/* Tasks per multi-row INSERT statement (Q_TASK_INSERT_MANY). */
#define INSERT_ROWS 64

/* Results up to this size can join a run (struct finish_run). */
#define RUN_RESULT_MAX 64

/* The statements, prepared once each; their text is sql[] in store.c. */
enum {
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
	Q_JOB_INSERT, Q_TASK_INSERT, Q_JOB_GET, Q_JOB_BY_KEY,
	Q_JOBS_LIST, Q_JOBS_LIST_STATE, Q_JOBS_ACTIVE, Q_JOBS_RECENT,
	Q_JOB_SAVE, Q_JOB_DELETE, Q_JOB_DELETE_TASKS, Q_RECOUNT, Q_TOTALS,
	/* The lists of tasks: each kind is four statements, one for each
	 * set of columns (Q_kind + STORE_WITH_INPUT | STORE_NO_RESULT). */
	Q_TASKS_LIST, Q_TASKS_LIST_STATE = Q_TASKS_LIST + 4,
	Q_TASKS_FROM_STATE = Q_TASKS_LIST_STATE + 4,
	Q_TASKS_LIST_NOTABLE = Q_TASKS_FROM_STATE + 4,
	Q_TASKS_FROM_NOTABLE = Q_TASKS_LIST_NOTABLE + 4,
	Q_TASK_GET = Q_TASKS_FROM_NOTABLE + 4,
	Q_TASKS_QUEUED, Q_TASK_QUEUED, Q_TASK_RUNNING,
	Q_TASK_PROGRESS, Q_TASK_FINISH, Q_TASK_RETRY, Q_TASK_REQUEUE,
	Q_TASKS_CANCEL, Q_TASKS_FAILED, Q_TASKS_RETRY, Q_REQUEUE_RUNNING,
	Q_THROUGHPUT, Q_TASK_INSERT_MANY, Q_JOBS_EXPIRED, Q_TASKS_SUCCEED,
	Q_COUNT
};

/*
 * Successes of consecutive tasks of one job with the same result, attempt,
 * worker and times (a worker's tiny tasks, handed out in runs and finished
 * within the same millisecond): store_task_finish() gathers them here, in
 * the open transaction, and one UPDATE of the range writes them all when
 * the next statement runs (store_stmt) or the transaction commits. On
 * noop, one UPDATE per task was most of the server's time.
 */
struct finish_run {
	int64_t job, first, last;
	int attempts, worker;
	int64_t started_at, finished_at;
	size_t rlen;
	char result[RUN_RESULT_MAX];
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *q[Q_COUNT];
	char *path;
	int lock_fd;
	int in_txn;
	int run_open;		/* run holds tasks not yet written */
	int run_failed;		/* writing a run failed: the commit must fail */
	struct finish_run run;
	int unsynced;		/* committed since the last store_sync() */
	int sync_each;		/* synchronous=FULL: each commit is synced */
	int errcode;
	char errmsg[512];
	store_commit_fn on_commit;
	void *on_commit_ctx;
	store_wal_fn on_wal;
	void *on_wal_ctx;
};

/* Steps st to the end, handing each row to a callback; stops early when
 * the callback returns non-zero. Returns rows handed, or -1. */
#define FOR_EACH_ROW(s, st, n, body)                                          \
	do {                                                                  \
		int rc_;                                                      \
		while ((rc_ = sqlite3_step(st)) == SQLITE_ROW) {              \
			(n)++;                                                \
			if (body)                                             \
				break;                                        \
		}                                                             \
		if (rc_ != SQLITE_ROW && rc_ != SQLITE_DONE) {                \
			store_fail(s);                                              \
			sqlite3_reset(st);                                    \
			return -1;                                            \
		}                                                             \
		sqlite3_reset(st);                                            \
	} while (0)

/* Records SQLite's current error in s; returns -1 for the caller to pass
 * on. */
int store_fail(struct store *s);
/* Statement i, prepared on first use, reset and with bindings cleared;
 * NULL (error recorded) if it cannot be prepared, or if the run of
 * successes it writes first (every statement but the run's own) fails. */
sqlite3_stmt *store_stmt(struct store *s, int i);
/* Writes the open run of successes, if any. 0, or -1 (and the transaction
 * can no longer commit). */
int store_run_write(struct store *s);
/* Runs a statement that returns no rows, then resets it. 0 or -1. */
int store_exec(struct store *s, sqlite3_stmt *st);
/* Binds v, or NULL for 0; t[0..n), or NULL for a NULL t. */
void store_bind_int(sqlite3_stmt *st, int i, int64_t v);
void store_bind_text(sqlite3_stmt *st, int i, const char *t, size_t n);
/* Reads the job row at st (JOB_COLS); strings borrowed unless own. */
void store_read_job(sqlite3_stmt *st, struct store_job *j, int own);
/* Reads the task row at st (TASK_COLS, then input when with_input). */
void store_read_task(sqlite3_stmt *st, struct store_task *t, int with_input);
/* Adds n to counts[state] if state is known; returns 0 (go on). */
int store_add_count(int64_t counts[ST_COUNT], int state, int64_t n);
/* Rolls back the open transaction, if SQLite still has one, keeping the
 * error that led to it for store_errmsg(). */
void store_rollback_now(struct store *s);

#endif
