/*
 * sched_events: what workers report to the scheduler — results, progress,
 * set-ups and deaths — and what becomes of the tasks they held. See
 * sched.h and sched_int.h.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "metrics.h"
#include "sched_int.h"

/* Retry backoff: 1 s, doubling, at most 5 minutes. */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 300000

/* A replaced worker's cause, for metrics (KILL_NONE: "crash" or "recycled"). */
static const char *const kill_cause[] = { NULL, "timeout", "cancel", "reset", "timeout" };
/* A set-up bounded by init_timeout_s gets this much longer on the server's
 * clock, so that the worker's own, clearer error comes first. */
#define SETUP_SLACK_US 2000000

/* ---- results ---- */

static void record_final(struct sched *s, struct inflight *e, int slot, int state,
			 const char *result, size_t rlen, const char *error,
			 size_t elen)
{
	struct ljob *j = e->job;
	int64_t now = clock_wall_ms();

	if (sched_write_begin(s) == 0)
		sched_write_check(s, store_task_finish(s->store, j->row.id, e->idx, state,
					   e->attempt, sched_worker_id(s, slot), e->start_ms,
					   now, result, rlen, error, elen, e->progress,
					   e->message), "finish");
	if (state == ST_SUCCEEDED)
		j->row.succeeded++;
	else
		j->row.failed++;
	metrics_tasks_final(j->row.handler, state, 1);
	j->dirty = 1;
	meter_add(&j->meter, now, j->row.succeeded + j->row.failed, 1);
	sched_maybe_finish(s, j);
}

/* An attempt failed: retry it later if attempts are left, else fail it. */
static void attempt_failed(struct sched *s, struct inflight *e, int slot,
			   const char *error, size_t elen)
{
	struct ljob *j = e->job;

	if (e->attempt < e->limit) {
		/* 1 s, 2 s, 4 s, ... from the first attempt of its set: a retry
		 * from the API grants a fresh set, its backoff included. */
		int n = e->attempt - (e->limit - j->row.max_attempts) - 1;
		int64_t backoff = (int64_t)BACKOFF_FIRST_MS << (n < 0 ? 0 : n < 20 ? n : 20);
		int64_t at;

		if (backoff > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
		at = clock_wall_ms() + backoff;
		if (sched_write_begin(s) == 0)
			sched_write_check(s, store_task_retry(s->store, j->row.id, e->idx, e->attempt,
						  at, error, elen), "retry");
		sched_heap_push(s, (struct delayed){ at, j->row.id, e->idx, j->gen });
		j->delayed++;
		LOG_DEBUG("task will be retried", LF_I("job", j->row.id),
			  LF_I("task", e->idx), LF_I("attempt", e->attempt),
			  LF_F("in_s", (double)backoff / 1000));
		return;
	}
	record_final(s, e, slot, ST_FAILED, NULL, 0, error, elen);
}

/* Puts an entry that did not run (or was interrupted by batchd itself)
 * back in its job's queue, without counting an attempt. */
static void requeue(struct sched *s, struct inflight *e)
{
	struct ljob *j = e->job;

	if (e->saved && sched_write_begin(s) == 0)
		sched_write_check(s, store_task_requeue(s->store, j->row.id, e->idx, e->attempt - 1),
		      "requeue");
	if (ljob_active(j))
		ljob_push_again(j, e->idx);
}

/* Forgets entry e of a worker: the job no longer waits for it. */
static void release(struct sched *s, struct inflight *e, int was_head)
{
	struct ljob *j = e->job;

	j->out--;
	if (was_head && !e->dead)
		j->running--;
	s->version++;
}

/* "the set-up of handler "h" took longer than N s", for task e. */
static void describe_setup_timeout(struct sched *s, struct buf *b, const struct inflight *e)
{
	const struct handler *h = registry_get(s->reg, e->job->handler);

	buf_addf(b, "the set-up of handler \"%s\" took longer than %g s",
		 h ? h->name : "?", h && h->init_timeout_ms ?
		 (double)h->init_timeout_ms / 1000 : (double)e->job->row.timeout_ms / 1000);
}

static void on_result(struct sched *s, int slot, const struct frame *f)
{
	struct wslot *w = &s->slots[slot];
	struct inflight *e;
	const struct handler *h;

	if (!w->len) {
		LOG_ERROR("result from a worker with no task", LF_I("worker", sched_worker_id(s, slot)));
		pool_kill(s->pool, slot);
		return;
	}
	e = wslot_at(w, 0);
	if ((uint64_t)e->job->row.id != f->job || (uint32_t)e->idx != f->idx) {
		LOG_ERROR("result for another task than the one running",
			  LF_I("worker", sched_worker_id(s, slot)), LF_I("job", (long long)f->job),
			  LF_I("task", f->idx));
		pool_kill(s->pool, slot);
		return;
	}
	if (w->stop_until_us && w->stop_why == KILL_TIMEOUT &&
	    (int64_t)f->duration_us * 2 < e->job->row.timeout_ms * 1000) {
		/* Not the answer to the stop: the task ran for well under its
		 * timeout (one stopped for it ran at least that long, give or
		 * take the frames' transit), and its result came late, held
		 * for a batch while the task behind it ran (worker.c). It
		 * stands; that task is timed from now. */
		w->stop_until_us = 0;
	}
	if (w->stop_until_us) {
		/* The answer to a stop: the task ended in its worker, which
		 * stays. A cancelled task's is ignored; a timed-out one failed
		 * (retried if it has attempts left). */
		w->stop_until_us = 0;
		if (!e->dead) {
			struct buf msg = BUF_INIT;

			if (w->stop_why == KILL_SETUP_TIMEOUT)
				describe_setup_timeout(s, &msg, e);
			else
				buf_addf(&msg, "timed out after %g s",
					 (double)e->job->row.timeout_ms / 1000);
			LOG_WARN("task timed out", LF_I("job", e->job->row.id), LF_I("task", e->idx),
				 LF_I("worker", sched_worker_id(s, slot)), LF_S("error", msg.data));
			attempt_failed(s, e, slot, msg.data, msg.len);
			buf_release(&msg);
		}
		release(s, e, 1);
		wslot_pop(w);
		sched_became_head(s, w);
		return;
	}
	if (f->ok == RESULT_SKIPPED) {
		/* Taken back (take_back) before it started. */
		if (!e->dead)
			requeue(s, e);
		release(s, e, 1);
		wslot_pop(w);
		sched_became_head(s, w);
		return;
	}
	h = registry_get(s->reg, e->job->handler);
	if (h) {
		double *avg = &s->avg_us[e->job->handler];

		*avg = *avg < 0 ? f->duration_us : 0.8 * *avg + 0.2 * f->duration_us;
		metrics_task_duration(h->name, f->duration_us);
	}
	if (!e->dead) {
		if (f->ok == RESULT_OK)
			record_final(s, e, slot, ST_SUCCEEDED, f->data, f->len, NULL, 0);
		else
			attempt_failed(s, e, slot, f->data, f->len);
	}
	release(s, e, 1);
	wslot_pop(w);
	sched_became_head(s, w);
}

static void on_progress(struct sched *s, int slot, const struct frame *f)
{
	struct wslot *w = &s->slots[slot];
	struct inflight *e;

	if (!w->len)
		return;
	e = wslot_at(w, 0);
	if ((uint64_t)e->job->row.id != f->job || (uint32_t)e->idx != f->idx || e->dead)
		return;
	e->progress = f->ppm / 1e6;
	free(e->message);
	e->message = NULL;
	if (f->len) {
		e->message = xcalloc(1, f->len + 1);
		memcpy(e->message, f->data, f->len);
	}
	e->pdirty = 1;
	s->version++;
}

/* A handler's set-up begins or ends in the worker of slot, during the task
 * at its head. Set-up time is bounded by the handler's init_timeout_s (or,
 * without one, by as long again as the task's timeout) and is not counted
 * against the task's own timeout, which starts once the set-up is done. */
static void on_init(struct sched *s, int slot, const struct frame *f)
{
	struct wslot *w = &s->slots[slot];
	const struct handler *h = registry_get(s->reg, f->handler);
	int64_t now = clock_mono_us();
	struct inflight *e;

	s->version++;
	if (!w->len || !h)
		return;
	e = wslot_at(w, 0);
	if (f->ok == INIT_STARTING) {
		e->setup = 1;
		e->setup_until_us = now + (h->init_timeout_ms ?
			h->init_timeout_ms * 1000 + SETUP_SLACK_US :
			e->job->row.timeout_ms * 1000);
	} else if (e->setup) {
		e->setup = 0;
		e->start_us = now;
	}
}

static void ev_frame(void *ctx, int slot, const struct frame *f)
{
	struct sched *s = ctx;

	switch (f->type) {
	case FRAME_RESULT:
		on_result(s, slot, f);
		break;
	case FRAME_PROGRESS:
		on_progress(s, slot, f);
		break;
	case FRAME_INIT:
		on_init(s, slot, f);
		break;
	}
}

static void ev_ready(void *ctx, int slot)
{
	struct sched *s = ctx;

	s->slots[slot].ready = 1;
	s->version++;
}

/* Why the worker in slot ended, for the error of task e, which it was
 * running. */
static void describe_exit(struct sched *s, int slot, struct buf *b, int status,
			  enum kill_reason why, const struct inflight *e)
{
	const struct pool_info *info = pool_info(s->pool, slot);

	if (why == KILL_TIMEOUT) {
		buf_addf(b, "timed out after %g s (worker killed)",
			 (double)e->job->row.timeout_ms / 1000);
	} else if (why == KILL_SETUP_TIMEOUT) {
		describe_setup_timeout(s, b, e);
		buf_adds(b, " (worker killed)");
	} else if (info->over_memory) {
		buf_addf(b, "worker exceeded the memory limit (%lld MiB): %lld MiB resident "
			 "(worker killed; --worker-memory-limit)",
			 (long long)(pool_memory_limit(s->pool) >> 20),
			 (long long)(info->over_memory >> 20));
	} else if (WIFSIGNALED(status)) {
		const char *abbr = sigabbrev_np(WTERMSIG(status));

		buf_addf(b, "worker died: killed by signal %d (SIG%s)", WTERMSIG(status),
			 abbr ? abbr : "?");
		if (WTERMSIG(status) == SIGKILL)
			buf_adds(b, "; killed from outside batchd, often by the out-of-memory killer");
	} else if (WIFEXITED(status)) {
		buf_addf(b, "worker died: exited with status %d%s", WEXITSTATUS(status),
			 WEXITSTATUS(status) ? "" : " while running the task");
	} else {
		buf_addf(b, "worker died (wait status %d)", status);
	}
}

/* Which of a dead worker's tasks was running: the one it said it was in
 * (pool_running), which may lie behind tasks whose results it held for a
 * batch and took with it; those run again, as tasks that never started do.
 * Without its word (it was between tasks), the head. */
static size_t running_at(struct sched *s, int slot)
{
	struct wslot *w = &s->slots[slot];
	int64_t job, idx;

	if (!pool_running(s->pool, slot, &job, &idx))
		return 0;
	for (size_t k = 0; k < w->len; k++) {
		const struct inflight *e = wslot_at(w, k);

		if (e->job->row.id == job && e->idx == idx)
			return k;
	}
	return 0;
}

static void ev_exited(void *ctx, int slot, int status)
{
	struct sched *s = ctx;
	struct wslot *w = &s->slots[slot];
	enum kill_reason why = w->kill;
	/* Only a worker that was told to stop may end without failing the
	 * task at its head: one that exits by itself (a handler calling
	 * exit(0), say) failed that task. */
	int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
		    pool_info(s->pool, slot)->stop_sent;
	size_t blame = running_at(s, slot);

	for (size_t k = 0; w->len; k++) {
		struct inflight *e = wslot_at(w, 0);

		if (!e->dead) {
			if (k == blame && !clean && why != KILL_SHUTDOWN) {
				struct buf msg = BUF_INIT;

				describe_exit(s, slot, &msg, status, why, e);
				LOG_WARN(why == KILL_TIMEOUT || why == KILL_SETUP_TIMEOUT ?
					 "task timed out" : "worker died",
					 LF_I("job", e->job->row.id), LF_I("task", e->idx),
					 LF_I("worker", sched_worker_id(s, slot)), LF_S("error", msg.data));
				attempt_failed(s, e, slot, msg.data, msg.len);
				buf_release(&msg);
			} else {
				requeue(s, e);
			}
		}
		release(s, e, k == 0);
		wslot_pop(w);
	}
	if (!clean && why == KILL_NONE && !s->stopping && w->ready == 0)
		LOG_WARN("worker died before it was ready", LF_I("slot", slot));
	if (!s->stopping)	/* the pool replaces it */
		metrics_worker_restart(kill_cause[why] ? kill_cause[why] : clean ? "recycled" :
				       pool_info(s->pool, slot)->over_memory ? "memory" : "crash");
	w->ready = 0;
	w->kill = KILL_NONE;
	w->stop_until_us = 0;
	s->version++;
}

static const struct pool_events events = {
	.ready = ev_ready,
	.frame = ev_frame,
	.exited = ev_exited,
};

const struct pool_events *sched_pool_events(void)
{
	return &events;
}
