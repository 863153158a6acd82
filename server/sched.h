/*
 * sched: the scheduler. It decides which task runs where, follows every
 * task handed to a worker until it is recorded, and keeps the live figures
 * of the jobs that are running.
 *
 * What it holds in memory is a cache of the store plus what only it knows:
 * which worker runs which task. Everything a restart must not lose is
 * written to the store in the group transaction (see store.h): a task's
 * final state with its result, its retry time, a job's counts. A task that
 * is running when the group is committed is marked running there too;
 * a task handed to a worker but not yet started is still "queued" in the
 * store, so a crash simply runs it again.
 *
 * Priority: the highest priority first; equal priorities in submission
 * order. A worker is given a few tasks ahead (a prefetch window sized from
 * the handler's measured task time: deep for tiny tasks, none for long
 * ones), so that a worker never waits for the server between tiny tasks
 * and a long task never waits behind another.
 */
#ifndef BATCHD_SCHED_H
#define BATCHD_SCHED_H

#include <stdint.h>

#include "../db/store.h"
#include "../workers/registry.h"
#include "pool.h"

struct sched;

struct sched_config {
	int64_t default_timeout_ms;	/* when neither job nor handler sets one */
};

/* The figures of a live job (strings borrowed from the scheduler). */
struct sched_live {
	const struct store_job *row;	/* counts of finished tasks */
	int64_t running;
	double running_progress;	/* the running tasks' reported fractions, summed */
	int64_t queued;			/* total - finished - running */
	double rate;			/* tasks/s, 0: unknown */
	double eta_s;			/* -1: unknown */
};

enum sched_rc { SCHED_OK = 0, SCHED_NOT_FOUND = 1, SCHED_CONFLICT = 2,
		SCHED_ERROR = -1 };

struct sched *sched_new(struct store *store, const struct registry *reg,
			const struct sched_config *cfg);
void sched_free(struct sched *s);
/* The events the pool reports to, with the scheduler as their context. */
const struct pool_events *sched_pool_events(void);
void sched_set_pool(struct sched *s, struct pool *p);
/* At start-up: takes the unfinished jobs from the store and queues again
 * the tasks a previous process left running. 0, or -1 with a message. */
int sched_load(struct sched *s, char *err, size_t errlen);

/* A job has just been inserted (and committed): start scheduling it. */
void sched_submitted(struct sched *s, const struct store_job *job);
/* Cancels job id: queued tasks become cancelled and running ones are
 * stopped. SCHED_OK, SCHED_NOT_FOUND, SCHED_CONFLICT (finished otherwise
 * than cancelled) or SCHED_ERROR, with a message in msg. */
int sched_cancel(struct sched *s, int64_t id, char *msg, size_t len);
/* Queues the job's failed and cancelled tasks again. SCHED_CONFLICT when
 * there are none. */
int sched_retry(struct sched *s, int64_t id, char *msg, size_t len);
/* Pauses a queued or running job (pause 1): none of its tasks starts
 * until it is resumed (pause 0); the ones running finish. Kept across
 * restarts. SCHED_OK (also when it already was so), SCHED_NOT_FOUND, or
 * SCHED_CONFLICT for a finished job. */
int sched_pause(struct sched *s, int64_t id, int pause, char *msg, size_t len);
/* Deletes a finished job. SCHED_CONFLICT while it is active. */
int sched_delete(struct sched *s, int64_t id, char *msg, size_t len);
/* Deletes the jobs that finished before before_ms, the oldest first, as
 * sched_delete does, until about budget tasks are gone (one job at least,
 * however large). Counts what went in *jobs and *tasks. Returns 0 when
 * none is left, 1 when more are, -1 on a database error (logged). */
int sched_expire(struct sched *s, int64_t before_ms, int64_t budget, int64_t *jobs,
		 int64_t *tasks);

/* Fills *live if job id is held live (active); returns 1, else 0. */
int sched_live(struct sched *s, int64_t id, int64_t now_ms,
	       struct sched_live *live);
/* Calls fn for each active job, highest priority first; stops when fn
 * returns non-zero. */
void sched_each_live(struct sched *s, int64_t now_ms,
		     int (*fn)(void *ctx, const struct sched_live *live),
		     void *ctx);
/* Whether any job is active (queued or running). */
int sched_has_live(const struct sched *s);
/* Counts of live jobs and tasks: running tasks, and tasks handed out. */
int64_t sched_running(const struct sched *s);
/* The task at the head of slot's worker: 1 and its ids, or 0 when idle. */
int sched_current(const struct sched *s, int slot, int64_t *job, int64_t *idx,
		  double *progress);
/* The task's live progress and message if it is running right now. */
int sched_task_live(const struct sched *s, int64_t job, int64_t idx,
		    double *progress, const char **message);
/* Changes with anything a progress poll would show. */
uint64_t sched_version(const struct sched *s);
/* Throughput history of a live job (see meter_history): fills counts (up
 * to METER_HISTORY), the bucket width and the wall time the first bucket
 * starts at; returns how many buckets, or 0 when the job is not held. */
int sched_history(struct sched *s, int64_t id, int64_t now_ms,
		  int64_t *counts, int64_t *bucket_ms, int64_t *start_ms);

/* Hands queued tasks to workers that have room. */
void sched_dispatch(struct sched *s);
/* Enforces timeouts and releases retries whose time has come; returns the
 * next monotonic time (us) it needs calling, or 0. */
int64_t sched_tick(struct sched *s, int64_t now_us);
/* Writes what is pending (running marks, progress, job rows) into the
 * group transaction, and with _flush commits it. _sync commits too when a
 * job has finished, been cancelled or retried since the last commit, so
 * that a reader is never told of an end the store does not hold yet.
 * 0 or -1. */
int sched_sync(struct sched *s);
int sched_flush(struct sched *s);
/* A commit of the store ended (ok 0: it failed): what the group said of
 * itself (the jobs that ended in it) is logged now, or dropped with it. */
void sched_committed(struct sched *s, int ok);
/* Stops handing out tasks (shutdown). */
void sched_stop(struct sched *s);
/* Kills every worker; the tasks they were running go back to the queue
 * without counting an attempt (the end of the shutdown grace period). */
void sched_abort(struct sched *s);
/* When the store failed: no dispatching until this time (us), or 0. */
int64_t sched_paused_until(const struct sched *s);

#endif
