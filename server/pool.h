/*
 * pool: the worker processes.
 *
 * The pool forks its workers from the server's single thread (so no lock is
 * ever copied held), each in its own process group with a socketpair to the
 * server, moves frames to and from them without blocking, reaps them, and
 * replaces the ones that die. What a frame means is not its business: it
 * hands frames and deaths to the scheduler through struct pool_events.
 *
 * A worker is known by its slot (0 .. size-1), which a replacement takes
 * over, and by an id that no later worker reuses.
 *
 * Recycling: a worker that has run max_tasks tasks is told to stop after
 * its current one, and replaced. A worker found holding more than max_rss
 * resident (checked after its tasks, at most every millisecond, and every
 * 100 ms in any case) is killed and replaced; the task it was running, if
 * any, fails (see pool_info.over_memory).
 */
#ifndef BATCHD_POOL_H
#define BATCHD_POOL_H

#include <stdint.h>
#include <sys/types.h>

#include "../lib/buf.h"
#include "../workers/frame.h"
#include "../workers/registry.h"
#include "loop.h"

struct pool;

struct pool_events {
	/* The worker in slot said hello: it can take tasks. */
	void (*ready)(void *ctx, int slot);
	/* A RESULT, PROGRESS or INIT frame from the worker in slot. */
	void (*frame)(void *ctx, int slot, const struct frame *f);
	/* The worker in slot is gone (status as from waitpid); every frame
	 * it sent has been handed over before this. */
	void (*exited)(void *ctx, int slot, int status);
};

struct pool_config {
	int size;		/* workers */
	int max_tasks;		/* a worker is replaced after this many tasks;
				 * 0: never */
	int64_t max_rss;	/* bytes a worker may hold resident; 0: any */
};

/* What the API shows of a worker. */
struct pool_info {
	int id;			/* 0: the slot is empty (between a death and
				 * the replacement) */
	pid_t pid;
	int64_t started_at;	/* wall ms */
	int ready;		/* said hello */
	uint64_t tasks_done;	/* results sent */
	int stop_sent;		/* told to stop after its current task */
	int64_t over_memory;	/* resident bytes when it was found over
				 * max_rss (and killed), else 0 */
	uint8_t *handlers;	/* per registry index: 0 not started, 1 ready,
				 * 2 its init failed */
};

struct pool *pool_new(struct loop *l, const struct registry *reg,
		      const struct pool_config *cfg,
		      const struct pool_events *ev, void *ctx);
/* Kills and reaps whatever workers are left, then frees the pool. */
void pool_free(struct pool *p);
/* Starts every worker. 0, or -1 with a message. */
int pool_start(struct pool *p, char *err, size_t errlen);
int pool_size(const struct pool *p);
/* Processes that exist (not yet reaped). */
int pool_alive(const struct pool *p);
const struct pool_info *pool_info(const struct pool *p, int slot);
/* Workers replaced so far. */
uint64_t pool_restarts(const struct pool *p);

/* The buffer of frames waiting to go to slot's worker: append, then
 * pool_flush(). Writes never block; what does not fit waits for the
 * socket to drain. */
struct buf *pool_out(struct pool *p, int slot);
void pool_flush(struct pool *p, int slot);
/* Bytes queued for slot's worker and not yet written. */
size_t pool_pending(const struct pool *p, int slot);

/* Whether the worker in slot may be handed one more task, with queued
 * tasks handed to it already and not yet back: not when it is about to be
 * replaced (--max-tasks-per-worker, over its memory limit). */
int pool_accepts(const struct pool *p, int slot, size_t queued);
/* --worker-memory-limit in bytes, 0 for none. */
int64_t pool_memory_limit(const struct pool *p);
/* The task slot's worker is in, as it recorded it (worker.h): 1 and the
 * task, or 0 if it is between tasks. Read when it has died. */
int pool_running(const struct pool *p, int slot, int64_t *job, int64_t *idx);

/* Kills the worker in slot and its children (SIGKILL to its group). Its
 * exit is reported later through events->exited. */
void pool_kill(struct pool *p, int slot);
/* From now on dead workers are not replaced; each worker is told to stop
 * after its current task. */
void pool_stop(struct pool *p);
/* Kills every worker. */
void pool_kill_all(struct pool *p);
/* Reaps exited children (call on SIGCHLD) and reports them. */
void pool_reap(struct pool *p);
/* Replaces workers whose replacement was delayed; returns the next time
 * (monotonic us) this needs calling, or 0. */
int64_t pool_tick(struct pool *p, int64_t now_us);

#endif
