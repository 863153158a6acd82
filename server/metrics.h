/*
 * metrics: the figures GET /metrics shows, in the Prometheus text
 * exposition format (docs/OPERATIONS.md lists every name).
 *
 * Counters and histograms live here, in memory, fed by one call at each
 * place where something happens (a task ends, a worker is replaced, a
 * request is answered, a transaction commits). Gauges (tasks queued and
 * running, workers) are not kept: they are read from the scheduler and the
 * pool when the page is rendered. Everything runs on the server's one
 * thread, so there are no locks; the counters start at zero with each
 * process, as Prometheus expects of counters.
 *
 * Label values are bounded: handlers come from the registry (or from jobs
 * in the database), routes are the patterns of the route table, never raw
 * paths, and methods outside a fixed list are counted as "other".
 */
#ifndef BATCHD_METRICS_H
#define BATCHD_METRICS_H

#include <stdint.h>

#include "../lib/buf.h"
#include "../workers/registry.h"
#include "pool.h"
#include "sched.h"

/* Starts the figures afresh and declares the registry's handlers, so that
 * their series exist (at 0) before their first task. */
void metrics_init(const struct registry *reg);
/* Frees what metrics_init and the hooks allocated. */
void metrics_free(void);

/* n tasks of handler reached state (ST_SUCCEEDED, ST_FAILED or
 * ST_CANCELLED; others are ignored) in the open group transaction: they
 * count once it commits (metrics_commit), and never if it does not. */
void metrics_tasks_final(const char *handler, int state, int64_t n);
/* The open group transaction was rolled back: its tasks do not count. */
void metrics_discard(void);
/* A worker ran an attempt of a task of handler for duration_us (as the
 * worker measured it). */
void metrics_task_duration(const char *handler, int64_t duration_us);
/* A worker ended and is being replaced. cause is "crash", "memory",
 * "timeout", "cancel", "reset" or "recycled"; anything else counts as
 * "crash". */
void metrics_worker_restart(const char *cause);
/* How many workers were replaced for cause since the server started. */
uint64_t metrics_worker_restarts(const char *cause);
/* A finished job was deleted for being older than --keep-finished. */
void metrics_job_expired(void);
/* A checkpoint copied the WAL into the database; by_server is 0 when the
 * checkpointer ran it, 1 when the server did (ckpt.h). */
void metrics_checkpoint(int by_server);
/* The WAL was synced to disk (serve.c, once a second after commits). */
void metrics_sync(void);
/* An HTTP request was answered. route is the matched pattern of the route
 * table, or NULL when none matched (or the request was refused before
 * routing). */
void metrics_http_request(const char *method, const char *route, int status);
/* A database COMMIT took us microseconds; ok is 0 when it failed. Shaped
 * to be a store_commit_fn (ctx unused). */
void metrics_commit(void *ctx, int64_t us, int ok);

/* Appends the whole exposition to out, reading the gauges from s and p
 * (either may be NULL). */
void metrics_render(struct buf *out, struct sched *s, const struct pool *p);

#endif
