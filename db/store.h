/*
 * store: everything batchd keeps, in one SQLite file.
 *
 * Every SQL statement of batchd lives in db/; the rest of the program sees
 * jobs and tasks through this interface only, so that another backend
 * (PostgreSQL, for a cluster) is another file behind the same functions.
 *
 * One thread owns a store. Writes made outside store_job_insert() go into a
 * group transaction that the caller opens with store_begin() and closes with
 * store_commit() once per event-loop turn; a crash loses at most the last
 * group (those tasks simply run again). store_job_insert() commits on its
 * own, so a job is durable before it is acknowledged.
 *
 * Errors: functions return 0 (or a count) on success and -1 on error, with
 * the message in store_errmsg() and SQLite's code in store_errcode().
 * Lookups return STORE_NOT_FOUND (1) when the row does not exist.
 *
 * Strings in a struct handed to a callback point into SQLite's memory and
 * are valid only during the call. Structs filled by a _get function own
 * their strings: release them with store_job_release / store_task_release.
 */
#ifndef BATCHD_STORE_H
#define BATCHD_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Task and job states, as stored. A job's "failed" means it finished with
 * at least one failed task. */
enum state {
	ST_QUEUED = 0,
	ST_RUNNING = 1,
	ST_SUCCEEDED = 2,
	ST_FAILED = 3,
	ST_CANCELLED = 4,
};
#define ST_COUNT 5

#define STORE_NOT_FOUND 1

const char *state_name(int state);
/* The state called s, or -1. */
int state_parse(const char *s);
static inline int state_final(int s)
{
	return s >= ST_SUCCEEDED;
}

struct store;

struct store_job {
	int64_t id;
	char *name;		/* may be NULL */
	char *handler;
	int state;
	int priority;
	int64_t timeout_ms;
	int max_attempts;
	int64_t created_at;	/* ms since the epoch; 0: not yet */
	int64_t started_at;
	int64_t finished_at;
	int64_t total;
	int64_t succeeded;
	int64_t failed;
	int64_t cancelled;
	char *idem_key;		/* may be NULL */
	int paused;		/* no task of it starts until resumed */
	int64_t idem_hash;	/* with idem_key, a hash of its request; 0: none
				 * (store_job_insert only, not read back) */
};

/* A task's key in the database is its job's id shifted left by this many
 * bits, plus its index (db/store.c): a job holds at most 2^28 tasks
 * (--max-tasks stops at 100,000,000), and job ids stop at STORE_MAX_JOB_ID. */
#define STORE_TASK_BITS 28
#define STORE_MAX_JOB_ID ((1LL << (63 - STORE_TASK_BITS)) - 1)
#define STORE_MAX_JOB_ID_S "34359738367"

struct store_task {
	int64_t job_id;
	int64_t idx;
	int state;
	int attempts;
	int64_t not_before;	/* ms; 0: none */
	double progress;	/* < 0: none reported */
	const char *message;
	int worker;		/* 0: none */
	int64_t started_at;
	int64_t finished_at;
	const char *input;	/* only when asked for */
	size_t input_len;
	const char *result;	/* JSON text, or NULL */
	const char *error;
};

typedef int (*store_job_fn)(void *ctx, const struct store_job *job);
typedef int (*store_task_fn)(void *ctx, const struct store_task *task);
/* A queued task met by a scan: its index, attempts so far, its own attempt
 * limit (0: the job's max_attempts), not-before time and input. Return
 * non-zero to stop the scan. */
typedef int (*store_queued_fn)(void *ctx, int64_t idx, int attempts,
			       int attempt_limit, int64_t not_before,
			       const char *input, size_t len);
/* The next task input to insert: set *text (JSON) and *len. */
typedef void (*store_input_fn)(void *ctx, int64_t idx, const char **text,
			       size_t *len);

/*
 * Opens (creating if needed) the database at path and takes it for this
 * process: a second batchd on the same file is refused. Tasks left running
 * by a previous process are not touched here (see store_requeue_running).
 * Returns NULL with a one-line message naming the file and the cause.
 */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *s);
const char *store_errmsg(struct store *s);
int store_errcode(struct store *s);
/* Bytes of the database file and its WAL. */
int64_t store_size(struct store *s);

/* The group transaction. begin is a no-op while one is open; commit is a
 * no-op while none is. A failed commit rolls the group back (-1). */
int store_begin(struct store *s);
int store_commit(struct store *s);
/* Waits until what is committed is on the disk. A commit does not wait
 * (synchronous=NORMAL: what a power loss or a system crash takes is the
 * commits since the last sync; a process crash loses nothing committed).
 * The server syncs once a second when anything was committed. -1 when the
 * disk refuses. store_unsynced(): something was committed since. */
int store_sync(struct store *s);
int store_unsynced(const struct store *s);
/* From now on every commit waits for the disk (synchronous=FULL), and
 * store_unsynced() stays 0. Not inside a transaction. */
int store_sync_each_commit(struct store *s);
int store_in_txn(struct store *s);
/* Calls fn after every COMMIT (the group's and store_job_insert's) with
 * the time it took in microseconds and ok = 0 when it failed; fn NULL
 * stops it. For the commit-latency metric. */
typedef void (*store_commit_fn)(void *ctx, int64_t us, int ok);
void store_on_commit(struct store *s, store_commit_fn fn, void *ctx);
/* Drops the group transaction, if one is open: none of its writes land. */
void store_rollback(struct store *s);

/*
 * Checkpoints. By default SQLite copies the WAL back into the database
 * itself, in the COMMIT that takes the WAL past STORE_CHECKPOINT_FRAMES
 * pages: two fsyncs, tens of milliseconds on a slow disk, during which
 * the server's one thread serves nothing. store_on_wal hands that
 * decision to fn instead, called after every COMMIT with the pages the
 * WAL holds (fn NULL gives it back to SQLite); fn may then call
 * store_checkpoint, or have another process run store_checkpoint_serve.
 */
#define STORE_CHECKPOINT_FRAMES 1000
/* The WAL file is reused, not truncated, when it starts over; one that
 * grew past this many bytes (a long run of writes the checkpoints could
 * not catch up with) is cut back to it on the first commit after. */
#define STORE_WAL_KEEP_BYTES (16 << 20)
typedef void (*store_wal_fn)(void *ctx, int frames);
void store_on_wal(struct store *s, store_wal_fn fn, void *ctx);
/* Copies what it can of the WAL into the database now, without waiting
 * for readers or another checkpoint (SQLite's PASSIVE mode). Returns 0
 * when it did, 1 when another checkpoint was running, -1 on error
 * (store_errmsg). */
int store_checkpoint(struct store *s);
/*
 * The loop of a process that checkpoints the database at path for the
 * server holding it: for each byte read from fd, one PASSIVE checkpoint,
 * answered on fd with a line "ok FRAMES COPIED\n" or "error MESSAGE\n".
 * Returns 0 at end of file on fd, -1 when the database cannot be opened
 * (said on fd first) or fd fails. A connection of its own, opened here:
 * never call it in a process that has the database open.
 */
int store_checkpoint_serve(int fd, const char *path);

/*
 * Inserts job (id, created_at and state are set here) and its total tasks,
 * asking next() for each input in index order, in a transaction of its own
 * that is committed before this returns. On error nothing is written.
 */
int store_job_insert(struct store *s, struct store_job *job,
		     store_input_fn next, void *ctx);
/* Fills *job (release it). 0, STORE_NOT_FOUND or -1. */
int store_job_get(struct store *s, int64_t id, struct store_job *job);
void store_job_release(struct store_job *job);
/* The id of the job submitted with this idempotency key, or 0; with
 * hash, the hash of that request (0 when none was kept). */
int64_t store_job_by_key(struct store *s, const char *key, int64_t *hash);
/* Jobs newest first: state -1 for any, before_id 0 for the start. */
int store_jobs_list(struct store *s, int state, int64_t before_id, int limit,
		    store_job_fn fn, void *ctx);
/* Jobs not yet finished (queued or running), oldest first. */
int store_jobs_active(struct store *s, store_job_fn fn, void *ctx);
/* Finished jobs, most recently finished first. */
int store_jobs_recent(struct store *s, int limit, store_job_fn fn, void *ctx);
/* Writes a job's state, times and counts. */
int store_job_save(struct store *s, const struct store_job *job);
/* Deletes a job and its tasks. */
int store_job_delete(struct store *s, int64_t id);
/* Up to max finished jobs that finished before before_ms, the oldest
 * first: their ids and task counts. Returns how many, or -1. */
int store_jobs_expired(struct store *s, int64_t before_ms, int max, int64_t *ids,
		       int64_t *totals);
/* Counts the job's tasks by state, afresh (for checks, not for polls). */
int store_job_recount(struct store *s, int64_t id, int64_t counts[ST_COUNT]);
/* Jobs by state, and tasks by state summed over all jobs from their
 * counts (tasks[ST_QUEUED] holds every unfinished task; running ones are
 * known to the scheduler only). */
int store_job_totals(struct store *s, int64_t jobs[ST_COUNT],
		     int64_t tasks[ST_COUNT]);

/* Throughput of a finished job, for a chart: how many of its tasks
 * finished (succeeded or failed) in each of n buckets of bucket_ms from
 * start_ms, into counts[0..n-1] (zeroed first; a task finished before
 * start_ms counts in the first bucket, after the last in the last). Reads
 * every task of the job once: for finished jobs, whose history is not in
 * memory. 0 or -1. */
int store_job_throughput(struct store *s, int64_t job, int64_t start_ms,
			 int64_t bucket_ms, int n, int64_t *counts);

/* The columns of a list of tasks: 0 for all but the input; with
 * STORE_WITH_INPUT the input too; with STORE_NO_RESULT no result (NULL):
 * a column left out is not read from the database. */
#define STORE_WITH_INPUT 1
#define STORE_NO_RESULT 2
/* Tasks of a job in index order, state -1 for any, with the columns of
 * cols. */
int store_tasks_list(struct store *s, int64_t job, int state, int64_t offset,
		     int limit, int cols, store_task_fn fn, void *ctx);
/* The same from index from on (offset counts tasks of that state; from is
 * an index): a reader that goes on where it stopped, however far in the
 * job, reads no row twice. Returns how many went to fn, or -1. */
int store_tasks_from(struct store *s, int64_t job, int state, int64_t from,
		     int limit, int cols, store_task_fn fn, void *ctx);
/* One task with its input, to fn. 0, STORE_NOT_FOUND or -1. */
int store_task_get(struct store *s, int64_t job, int64_t idx,
		   store_task_fn fn, void *ctx);
/* Queued tasks of a job with index >= from, in index order, at most limit.
 * Returns how many were passed to fn, or -1. */
int store_tasks_queued(struct store *s, int64_t job, int64_t from, int limit,
		       store_queued_fn fn, void *ctx);
/* The one task (job, idx) if it is queued, to fn. 0 or STORE_NOT_FOUND. */
int store_task_queued(struct store *s, int64_t job, int64_t idx,
		      store_queued_fn fn, void *ctx);
/* Marks a task running in its attempt-th attempt on worker. */
int store_task_running(struct store *s, int64_t job, int64_t idx, int attempts,
		       int worker, int64_t started_at);
/* Records a running task's progress (fraction, message may be NULL). */
int store_task_progress(struct store *s, int64_t job, int64_t idx,
			double fraction, const char *message, size_t msg_len);
/* Records a task's final state with its result (JSON) or error, and its
 * last reported progress (< 0: keep) and message (NULL: keep). */
int store_task_finish(struct store *s, int64_t job, int64_t idx, int state,
		      int attempts, int worker, int64_t started_at,
		      int64_t finished_at, const char *result,
		      size_t result_len, const char *error, size_t error_len,
		      double progress, const char *message);
/* Puts a task back in the queue after a failed attempt, to run no earlier
 * than not_before (ms), keeping the attempt's error. */
int store_task_retry(struct store *s, int64_t job, int64_t idx, int attempts,
		     int64_t not_before, const char *error, size_t error_len);
/* Puts an interrupted task back in the queue; the attempt is not counted. */
int store_task_requeue(struct store *s, int64_t job, int64_t idx, int attempts);
/* Cancels the job's queued and running tasks. Returns how many, or -1. */
int64_t store_tasks_cancel(struct store *s, int64_t job, int64_t now);
/* Queues the job's failed and cancelled tasks again, passing each index to
 * fn (which may be NULL). Returns how many by state in counts (failed,
 * cancelled), or -1. */
int store_tasks_retry_failed(struct store *s, int64_t job,
			     void (*fn)(void *ctx, int64_t idx), void *ctx,
			     int64_t *failed, int64_t *cancelled);
/* After a restart: tasks of job found running were interrupted; queue them
 * again without counting the attempt. Returns how many, or -1. */
int64_t store_requeue_running(struct store *s, int64_t job);

#endif
