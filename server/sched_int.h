/*
 * sched_int: what the scheduler's files share, and nothing else includes.
 * The scheduler is one module (sched.h) in three files, split by concern:
 *
 *   sched.c         jobs in memory, reading queued tasks, dispatch, the
 *                   loop's side (timeouts, retries, group commit), start-up
 *   sched_events.c  what workers report: results, progress, set-ups, deaths
 *   sched_api.c     what the API asks: cancel, retry, delete, live figures
 */
#ifndef BATCHD_SCHED_INT_H
#define BATCHD_SCHED_INT_H

#include <stddef.h>
#include <stdint.h>

#include "../db/store.h"
#include "meter.h"
#include "pool.h"
#include "sched.h"

enum kill_reason { KILL_NONE, KILL_TIMEOUT, KILL_CANCEL, KILL_SHUTDOWN,
		   KILL_SETUP_TIMEOUT };

/* How long a worker asked to stop its task has to answer before it is
 * killed: a stopped program ends at once, a run() that asks
 * batchd_task_should_stop() soon after; this is for one that never asks. */
#define STOP_GRACE_US 2000000

struct qtask {
	int64_t idx;
	int attempts;		/* attempts made so far */
	int limit;		/* attempts allowed in all */
	char *input;
	size_t len;
};

struct ljob {
	struct ljob *next;
	struct store_job row;	/* owns its strings */
	int handler;
	int deleted;
	unsigned gen;		/* changes on cancel: stale retries drop */
	int64_t running;	/* at the head of a worker */
	int64_t out;		/* handed to workers, not yet back */
	int64_t delayed;	/* waiting for their retry time */
	int64_t cursor;		/* next index to scan */
	int scan_done;
	struct qtask *buf;	/* read from the store, not yet handed out */
	size_t bhead, blen, bcap;
	int64_t *again;		/* to read one by one: requeued, retried */
	size_t alen, acap;
	struct meter meter;
	int dirty;		/* row to save */
};

struct inflight {
	struct ljob *job;
	int64_t idx;
	int attempt;		/* this attempt's number, from 1 */
	int limit;
	int64_t start_us;	/* monotonic, when it became the head */
	int64_t start_ms;	/* wall */
	int saved;		/* marked running in the store */
	int dead;		/* its job was cancelled: ignore the result */
	int setup;		/* its handler is being set up in the worker */
	int64_t setup_until_us;	/* then the deadline is this, not the task's */
	int pdirty;
	double progress;	/* < 0: none */
	char *message;
};

struct wslot {
	struct inflight *q;	/* ring */
	size_t head, len, cap;
	int ready;
	enum kill_reason kill;
	/* The worker was asked to stop its head task (for stop_why) and
	 * is killed if it has not answered by stop_until_us (monotonic). */
	int64_t stop_until_us;
	enum kill_reason stop_why;
};

struct delayed {
	int64_t at_ms;
	int64_t job;
	int64_t idx;
	unsigned gen;
};

struct sched {
	struct store *store;
	const struct registry *reg;
	struct pool *pool;
	struct sched_config cfg;
	struct ljob *jobs;	/* priority desc, id asc */
	struct wslot *slots;
	int nslots;
	struct delayed *heap;
	size_t hlen, hcap;
	double *avg_us;		/* per handler; < 0 unknown */
	uint64_t version;
	int stopping;
	int broken;		/* a store write failed in this group */
	int settle;		/* a job's end or a cancel/retry awaits its commit */
	int64_t paused_until;
	/* Jobs that ended in the open group: logged once it commits. */
	struct ended {
		int64_t job, succeeded, failed, cancelled;
		int state;
	} *ended;
	size_t nended, capended;
};

/* ---- sched.c, for the other two ---- */

/* Opens the group transaction if needed. 0, or -1 when the store failed:
 * the group is then marked broken, and sched_flush() drops it and reloads
 * from the store. */
int sched_write_begin(struct sched *s);
/* Marks the group broken (logging it once) when rc < 0; what names the
 * write that failed. */
void sched_write_check(struct sched *s, int rc, const char *what);

/* The job with id held in memory (not deleted), or NULL. */
struct ljob *sched_find_job(struct sched *s, int64_t id);
/* Inserts j in priority order (highest first, then oldest first). */
void sched_insert_job(struct sched *s, struct ljob *j);
/* A job held in memory, from a row (strings copied). */
struct ljob *ljob_new(struct sched *s, const struct store_job *row);
void ljob_free(struct ljob *j);
/* Whether j still has tasks to run (not finished, not deleted). */
int ljob_active(const struct ljob *j);
/* Its finished tasks: succeeded, failed and cancelled. */
int64_t ljob_finished(const struct ljob *j);
/* Drops the tasks read from the store and not yet handed out. */
void ljob_clear_queue(struct ljob *j);
/* Queues task idx of j to be read again (requeued, retried). */
void ljob_push_again(struct ljob *j, int64_t idx);
/* Settles the job's state once every task is final. */
void sched_maybe_finish(struct sched *s, struct ljob *j);
/* Holds a task back until its retry time. */
void sched_heap_push(struct sched *s, struct delayed d);

/* Entry k of a worker's queue (0: the task it is running). */
struct inflight *wslot_at(struct wslot *w, size_t k);
/* Removes the head entry; the caller has taken what it needs. */
void wslot_pop(struct wslot *w);
/* The entry at the head of a worker's queue is the task it is running:
 * starts its clocks and counts it running. */
void sched_became_head(struct sched *s, struct wslot *w);
/* The id of the worker in slot (0 while the slot is empty). */
int sched_worker_id(struct sched *s, int slot);
/* Ends the task the worker of slot is running, for why (a timeout or a
 * cancel): the worker is asked to stop it and stays, if it answers within
 * STOP_GRACE_US (a command's program is killed at once; a co-process is
 * told, if it can stop a task, or else killed; a plugin's or a built-in's
 * run() stops when it next asks batchd_task_should_stop()); otherwise it
 * is killed. A set-up cannot be stopped: it goes with its worker at once. */
void sched_stop_head(struct sched *s, int slot, enum kill_reason why);

#endif
