/*
 * sched: scheduling, dispatch and the bookkeeping of every task in flight.
 * See sched.h.
 */
#include "sched.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "meter.h"
#include "metrics.h"

/* Tasks read from the store at a time, per job. */
#define SCAN_BATCH 1024
/* The prefetch window: enough queued work to cover this long... */
#define PREFETCH_US 2000.0
/* ...at most this many tasks per worker. */
#define PREFETCH_MAX 256
/* Tasks shorter than this still get one task ahead: the round trip to the
 * server between two tasks (~0.1 ms) would otherwise be idle time for
 * every one of them, while a task held behind another waits at most about
 * one such task. Longer tasks get none. */
#define PREFETCH_ONE_US 50000.0
/* A task running much longer than its handler's usually take (this many
 * times their average, and at least STUCK_MIN_US) holds up the tasks
 * prefetched behind it: they are taken back for other workers, and its
 * worker gets no more until it is done. */
#define STUCK_FACTOR 10
#define STUCK_MIN_US 50000
/* Retry backoff: 1 s, doubling, at most 5 minutes. */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 300000
/* After the store fails, stop dispatching this long. */
#define STORE_PAUSE_US 1000000

enum kill_reason { KILL_NONE, KILL_TIMEOUT, KILL_CANCEL, KILL_SHUTDOWN,
		   KILL_SETUP_TIMEOUT };
/* A replaced worker's cause, for metrics (KILL_NONE: "crash" or "recycled"). */
static const char *const kill_cause[] = { NULL, "timeout", "cancel", "reset", "timeout" };
/* A set-up bounded by init_timeout_s gets this much longer on the server's
 * clock, so that the worker's own, clearer error comes first. */
#define SETUP_SLACK_US 2000000

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
};

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = s ? strdup(s) : NULL;

	if (s && !p)
		abort();
	return p;
}

/* ---- store writes ---- */

/* Opens the group transaction if needed. A failed write marks the group
 * broken: sched_flush() then drops it and reloads from the store. */
static int begin(struct sched *s)
{
	if (store_begin(s->store) < 0) {
		s->broken = 1;
		return -1;
	}
	return 0;
}

static void check(struct sched *s, int rc, const char *what)
{
	if (rc < 0) {
		if (!s->broken)
			LOG_ERROR("database write failed", LF_S("op", what),
				  LF_S("error", store_errmsg(s->store)));
		s->broken = 1;
	}
}

/* ---- jobs ---- */

static struct ljob *find_job(struct sched *s, int64_t id)
{
	for (struct ljob *j = s->jobs; j; j = j->next)
		if (j->row.id == id && !j->deleted)
			return j;
	return NULL;
}

static int job_active(const struct ljob *j)
{
	return !j->deleted && !state_final(j->row.state);
}

static int64_t job_finished(const struct ljob *j)
{
	return j->row.succeeded + j->row.failed + j->row.cancelled;
}

static void insert_sorted(struct sched *s, struct ljob *j)
{
	struct ljob **pp = &s->jobs;

	while (*pp && ((*pp)->row.priority > j->row.priority ||
		       ((*pp)->row.priority == j->row.priority &&
			(*pp)->row.id < j->row.id)))
		pp = &(*pp)->next;
	j->next = *pp;
	*pp = j;
}

static void clear_queue(struct ljob *j)
{
	for (size_t i = j->bhead; i < j->blen; i++)
		free(j->buf[i].input);
	j->bhead = j->blen = 0;
	j->alen = 0;
}

static void free_job(struct ljob *j)
{
	clear_queue(j);
	free(j->buf);
	free(j->again);
	store_job_release(&j->row);
	free(j);
}

/* A job held in memory, from a row (strings copied). */
static struct ljob *new_job(struct sched *s, const struct store_job *row)
{
	struct ljob *j = xcalloc(1, sizeof(*j));
	int64_t now = clock_wall_ms();

	j->row = *row;
	j->row.name = xstrdup(row->name);
	j->row.handler = xstrdup(row->handler);
	j->row.idem_key = xstrdup(row->idem_key);
	if (!registry_find(s->reg, row->handler, &j->handler))
		j->handler = -1;
	meter_init(&j->meter, now, row->succeeded + row->failed);
	return j;
}

/* Settles the job's state once every task is final. */
static void maybe_finish(struct sched *s, struct ljob *j)
{
	if (state_final(j->row.state) || job_finished(j) < j->row.total)
		return;
	j->row.state = j->row.failed ? ST_FAILED :
		       j->row.cancelled ? ST_CANCELLED : ST_SUCCEEDED;
	j->row.finished_at = clock_wall_ms();
	if (!j->row.started_at)
		j->row.started_at = j->row.finished_at;
	j->dirty = 1;
	s->settle = 1;
	s->version++;
	LOG_INFO("job finished", LF_I("job", j->row.id), LF_S("state", state_name(j->row.state)),
		 LF_I("succeeded", j->row.succeeded), LF_I("failed", j->row.failed),
		 LF_I("cancelled", j->row.cancelled));
}

/* A job whose handler is gone (the handlers file changed): its queued
 * tasks cannot run, so they fail with a clear error. */
static void fail_orphan(struct sched *s, struct ljob *j)
{
	struct buf msg = BUF_INIT;
	int64_t now = clock_wall_ms();

	buf_addf(&msg, "handler \"%s\" is not registered in this server", j->row.handler);
	for (size_t i = j->bhead; i < j->blen; i++) {
		struct qtask *t = &j->buf[i];

		if (begin(s) == 0)
			check(s, store_task_finish(s->store, j->row.id, t->idx, ST_FAILED,
						   t->attempts, 0, 0, now, NULL, 0,
						   msg.data, msg.len, -1, NULL), "finish");
		j->row.failed++;
		metrics_tasks_final(j->row.handler, ST_FAILED, 1);
	}
	clear_queue(j);
	j->dirty = 1;
	buf_release(&msg);
	maybe_finish(s, j);
}

/* ---- the retry heap ---- */

static void heap_push(struct sched *s, struct delayed d)
{
	size_t i;

	if (s->hlen == s->hcap) {
		s->hcap = s->hcap ? s->hcap * 2 : 64;
		s->heap = xrealloc(s->heap, s->hcap * sizeof(*s->heap));
	}
	i = s->hlen++;
	while (i > 0 && s->heap[(i - 1) / 2].at_ms > d.at_ms) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = d;
}

static struct delayed heap_pop(struct sched *s)
{
	struct delayed top = s->heap[0], last = s->heap[--s->hlen];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->hlen)
			break;
		if (c + 1 < s->hlen && s->heap[c + 1].at_ms < s->heap[c].at_ms)
			c++;
		if (s->heap[c].at_ms >= last.at_ms)
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->hlen)
		s->heap[i] = last;
	return top;
}

static void push_again(struct ljob *j, int64_t idx)
{
	if (j->alen == j->acap) {
		j->acap = j->acap ? j->acap * 2 : 64;
		j->again = xrealloc(j->again, j->acap * sizeof(*j->again));
	}
	j->again[j->alen++] = idx;
}

/* ---- reading queued tasks ---- */

struct fill {
	struct sched *s;
	struct ljob *j;
	int64_t now_ms;
};

static int take_queued(void *ctx, int64_t idx, int attempts, int limit,
		       int64_t not_before, const char *input, size_t len)
{
	struct fill *f = ctx;
	struct ljob *j = f->j;
	struct qtask *t;

	if (idx >= j->cursor)
		j->cursor = idx + 1;
	if (not_before > f->now_ms) {
		heap_push(f->s, (struct delayed){ not_before, j->row.id, idx, j->gen });
		j->delayed++;
		return 0;
	}
	if (j->blen == j->bcap) {
		/* Reuse the consumed front before growing. */
		if (j->bhead) {
			memmove(j->buf, j->buf + j->bhead,
				(j->blen - j->bhead) * sizeof(*j->buf));
			j->blen -= j->bhead;
			j->bhead = 0;
		}
		if (j->blen == j->bcap) {
			j->bcap = j->bcap ? j->bcap * 2 : 64;
			j->buf = xrealloc(j->buf, j->bcap * sizeof(*j->buf));
		}
	}
	t = &j->buf[j->blen++];
	t->idx = idx;
	t->attempts = attempts;
	t->limit = limit > 0 ? limit : j->row.max_attempts;
	t->input = xcalloc(1, len + 1);
	memcpy(t->input, input, len);
	t->len = len;
	return 0;
}

/* Makes sure job j has a task ready in its buffer, reading the store as
 * needed. Returns 1 if it has. */
static int job_ready(struct sched *s, struct ljob *j)
{
	struct fill f = { s, j, clock_wall_ms() };

	if (!job_active(j))
		return 0;
	while (j->bhead == j->blen) {
		j->bhead = j->blen = 0;
		if (j->alen) {
			while (j->alen && j->blen < SCAN_BATCH) {
				int64_t idx = j->again[--j->alen];
				int rc = store_task_queued(s->store, j->row.id, idx,
							   take_queued, &f);

				check(s, rc < 0 ? -1 : 0, "read task");
			}
			continue;
		}
		if (j->scan_done)
			return 0;
		int n = store_tasks_queued(s->store, j->row.id, j->cursor,
					   SCAN_BATCH, take_queued, &f);

		if (n < 0) {
			check(s, -1, "scan tasks");
			return 0;
		}
		if (n < SCAN_BATCH)
			j->scan_done = 1;
	}
	if (j->handler < 0) {
		fail_orphan(s, j);
		return 0;
	}
	return 1;
}

/* ---- workers and their queues ---- */

static struct inflight *slot_at(struct wslot *w, size_t k)
{
	return &w->q[(w->head + k) % w->cap];
}

static void slot_push(struct wslot *w, struct inflight e)
{
	if (w->len == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct inflight *q = xcalloc(cap, sizeof(*q));

		for (size_t k = 0; k < w->len; k++)
			q[k] = *slot_at(w, k);
		free(w->q);
		w->q = q;
		w->cap = cap;
		w->head = 0;
	}
	*slot_at(w, w->len++) = e;
}

/* Removes the head entry; the caller has taken what it needs. */
static void slot_pop(struct wslot *w)
{
	struct inflight *e = slot_at(w, 0);

	free(e->message);
	memset(e, 0, sizeof(*e));
	w->head = (w->head + 1) % w->cap;
	w->len--;
}

/* The entry at the head of a worker's queue is the task it is running. */
static void became_head(struct sched *s, struct wslot *w)
{
	struct inflight *e;

	if (!w->len)
		return;
	e = slot_at(w, 0);
	e->start_us = clock_mono_us();
	e->start_ms = clock_wall_ms();
	if (!e->dead) {
		e->job->running++;
		if (e->job->row.state == ST_QUEUED) {
			e->job->row.state = ST_RUNNING;
			if (!e->job->row.started_at)
				e->job->row.started_at = e->start_ms;
			e->job->dirty = 1;
		}
	}
	s->version++;
}

static int worker_id(struct sched *s, int slot)
{
	return s->pool ? pool_info(s->pool, slot)->id : 0;
}

static int window(struct sched *s, int handler)
{
	double avg = handler >= 0 ? s->avg_us[handler] : -1;

	if (avg < 0 || avg >= PREFETCH_ONE_US)
		return 1;
	if (avg >= PREFETCH_US)
		return 2;
	int w = 1 + (int)(PREFETCH_US / (avg > 1 ? avg : 1));

	return w > PREFETCH_MAX ? PREFETCH_MAX : w;
}

/* When the task at the head of w will have run long enough that tasks
 * queued behind it should not wait for it (at once during a set-up);
 * 0 for an idle worker. */
static int64_t stuck_at(struct sched *s, struct wslot *w)
{
	struct inflight *e;
	double avg;
	int64_t limit;

	if (!w->len)
		return 0;
	e = slot_at(w, 0);
	if (e->setup)
		return 1;
	avg = e->job->handler >= 0 ? s->avg_us[e->job->handler] : -1;
	limit = avg > 0 ? (int64_t)(avg * STUCK_FACTOR) : 0;
	return e->start_us + (limit > STUCK_MIN_US ? limit : STUCK_MIN_US);
}

static int head_stuck(struct sched *s, struct wslot *w, int64_t now_us)
{
	int64_t at = stuck_at(s, w);

	return at && now_us >= at;
}

/* Takes back the tasks waiting behind a stuck head: the worker is told to
 * skip them (it answers RESULT_SKIPPED when it gets to them), and they go
 * back to their jobs' queues for any worker. Should the worker have started
 * one already, its result is ignored: the task ran at least once. */
static void take_back(struct sched *s, int slot)
{
	struct wslot *w = &s->slots[slot];
	int n = 0;

	for (size_t k = 1; k < w->len; k++) {
		struct inflight *e = slot_at(w, k);

		if (e->dead)
			continue;
		e->dead = 1;
		frame_put_skip(pool_out(s->pool, slot), (uint64_t)e->job->row.id,
			       (uint32_t)e->idx);
		if (job_active(e->job))
			push_again(e->job, e->idx);
		n++;
	}
	if (n) {
		pool_flush(s->pool, slot);
		LOG_DEBUG("tasks taken back from a worker busy with a long task",
			  LF_I("worker", worker_id(s, slot)), LF_I("tasks", n));
	}
}

/* The job the next task comes from, or NULL. */
static struct ljob *next_job(struct sched *s)
{
	for (struct ljob *j = s->jobs; j; j = j->next)
		if (job_ready(s, j))
			return j;
	return NULL;
}

static void hand_out(struct sched *s, int slot, struct ljob *j)
{
	struct wslot *w = &s->slots[slot];
	struct qtask t = j->buf[j->bhead++];
	int64_t timeout = j->row.timeout_ms;
	struct inflight e = {
		.job = j, .idx = t.idx, .attempt = t.attempts + 1,
		.limit = t.limit, .progress = -1,
	};

	frame_put_run(pool_out(s->pool, slot), (uint64_t)j->row.id, (uint32_t)t.idx,
		      (uint16_t)j->handler,
		      timeout > UINT32_MAX ? UINT32_MAX : (uint32_t)timeout,
		      (uint32_t)e.attempt, t.input, t.len);
	free(t.input);
	j->out++;
	slot_push(w, e);
	if (w->len == 1)
		became_head(s, w);
}

void sched_dispatch(struct sched *s)
{
	int64_t now = clock_mono_us();
	int progress = 1;

	if (s->stopping || !s->pool || s->paused_until)
		return;
	while (progress) {
		progress = 0;
		for (int i = 0; i < s->nslots; i++) {
			struct wslot *w = &s->slots[i];
			struct ljob *j;

			if (!w->ready || w->kill || head_stuck(s, w, now) ||
			    !pool_accepts(s->pool, i, w->len))
				continue;
			j = next_job(s);
			if (!j)
				goto out;
			if ((int)w->len >= window(s, j->handler))
				continue;
			hand_out(s, i, j);
			progress = 1;
		}
	}
out:
	for (int i = 0; i < s->nslots; i++)
		if (pool_pending(s->pool, i))
			pool_flush(s->pool, i);
}

/* ---- results ---- */

static void record_final(struct sched *s, struct inflight *e, int slot, int state,
			 const char *result, size_t rlen, const char *error,
			 size_t elen)
{
	struct ljob *j = e->job;
	int64_t now = clock_wall_ms();

	if (begin(s) == 0)
		check(s, store_task_finish(s->store, j->row.id, e->idx, state,
					   e->attempt, worker_id(s, slot), e->start_ms,
					   now, result, rlen, error, elen, e->progress,
					   e->message), "finish");
	if (state == ST_SUCCEEDED)
		j->row.succeeded++;
	else
		j->row.failed++;
	metrics_tasks_final(j->row.handler, state, 1);
	j->dirty = 1;
	meter_add(&j->meter, now, j->row.succeeded + j->row.failed, 1);
	maybe_finish(s, j);
}

/* An attempt failed: retry it later if attempts are left, else fail it. */
static void attempt_failed(struct sched *s, struct inflight *e, int slot,
			   const char *error, size_t elen)
{
	struct ljob *j = e->job;

	if (e->attempt < e->limit) {
		int64_t backoff = (int64_t)BACKOFF_FIRST_MS << (e->attempt - 1 < 20 ? e->attempt - 1 : 20);
		int64_t at;

		if (backoff > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
		at = clock_wall_ms() + backoff;
		if (begin(s) == 0)
			check(s, store_task_retry(s->store, j->row.id, e->idx, e->attempt,
						  at, error, elen), "retry");
		heap_push(s, (struct delayed){ at, j->row.id, e->idx, j->gen });
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

	if (e->saved && begin(s) == 0)
		check(s, store_task_requeue(s->store, j->row.id, e->idx, e->attempt - 1),
		      "requeue");
	if (job_active(j))
		push_again(j, e->idx);
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

static void on_result(struct sched *s, int slot, const struct frame *f)
{
	struct wslot *w = &s->slots[slot];
	struct inflight *e;
	const struct handler *h;

	if (!w->len) {
		LOG_ERROR("result from a worker with no task", LF_I("worker", worker_id(s, slot)));
		pool_kill(s->pool, slot);
		return;
	}
	e = slot_at(w, 0);
	if ((uint64_t)e->job->row.id != f->job || (uint32_t)e->idx != f->idx) {
		LOG_ERROR("result for another task than the one running",
			  LF_I("worker", worker_id(s, slot)), LF_I("job", (long long)f->job),
			  LF_I("task", f->idx));
		pool_kill(s->pool, slot);
		return;
	}
	if (f->ok == RESULT_SKIPPED) {
		/* Taken back (take_back) before it started. */
		if (!e->dead)
			requeue(s, e);
		release(s, e, 1);
		slot_pop(w);
		became_head(s, w);
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
	slot_pop(w);
	became_head(s, w);
}

static void on_progress(struct sched *s, int slot, const struct frame *f)
{
	struct wslot *w = &s->slots[slot];
	struct inflight *e;

	if (!w->len)
		return;
	e = slot_at(w, 0);
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
	e = slot_at(w, 0);
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
	const struct handler *h = registry_get(s->reg, e->job->handler);
	const struct pool_info *info = pool_info(s->pool, slot);

	if (why == KILL_TIMEOUT) {
		buf_addf(b, "timed out after %g s (worker killed)",
			 (double)e->job->row.timeout_ms / 1000);
	} else if (why == KILL_SETUP_TIMEOUT) {
		buf_addf(b, "the set-up of handler \"%s\" took longer than %g s (worker killed)",
			 h ? h->name : "?", h && h->init_timeout_ms ?
			 (double)h->init_timeout_ms / 1000 : (double)e->job->row.timeout_ms / 1000);
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

	for (int k = 0; w->len; k++) {
		struct inflight *e = slot_at(w, 0);

		if (!e->dead) {
			if (k == 0 && !clean && why != KILL_SHUTDOWN) {
				struct buf msg = BUF_INIT;

				describe_exit(s, slot, &msg, status, why, e);
				LOG_WARN(why == KILL_TIMEOUT || why == KILL_SETUP_TIMEOUT ?
					 "task timed out" : "worker died",
					 LF_I("job", e->job->row.id), LF_I("task", e->idx),
					 LF_I("worker", worker_id(s, slot)), LF_S("error", msg.data));
				attempt_failed(s, e, slot, msg.data, msg.len);
				buf_release(&msg);
			} else {
				requeue(s, e);
			}
		}
		release(s, e, k == 0);
		slot_pop(w);
	}
	if (!clean && why == KILL_NONE && !s->stopping && w->ready == 0)
		LOG_WARN("worker died before it was ready", LF_I("slot", slot));
	if (!s->stopping)	/* the pool replaces it */
		metrics_worker_restart(kill_cause[why] ? kill_cause[why] : clean ? "recycled" : "crash");
	w->ready = 0;
	w->kill = KILL_NONE;
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

/* ---- lifecycle ---- */

struct sched *sched_new(struct store *store, const struct registry *reg,
			const struct sched_config *cfg)
{
	struct sched *s = xcalloc(1, sizeof(*s));
	int n = registry_count(reg);

	s->store = store;
	s->reg = reg;
	s->cfg = *cfg;
	s->avg_us = xcalloc((size_t)n, sizeof(double));
	for (int i = 0; i < n; i++)
		s->avg_us[i] = -1;
	s->version = 1;
	return s;
}

void sched_set_pool(struct sched *s, struct pool *p)
{
	s->pool = p;
	s->nslots = pool_size(p);
	s->slots = xcalloc((size_t)s->nslots, sizeof(*s->slots));
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	while (s->jobs) {
		struct ljob *j = s->jobs;

		s->jobs = j->next;
		free_job(j);
	}
	for (int i = 0; i < s->nslots; i++) {
		struct wslot *w = &s->slots[i];

		while (w->len)
			slot_pop(w);
		free(w->q);
	}
	free(s->slots);
	free(s->heap);
	free(s->avg_us);
	free(s);
}

struct load {
	struct sched *s;
	int64_t requeued;
	int failed;
};

static int load_job(void *ctx, const struct store_job *row)
{
	struct load *l = ctx;
	struct ljob *j = new_job(l->s, row);
	int64_t n = store_requeue_running(l->s->store, row->id);

	if (n < 0)
		l->failed = 1;
	else
		l->requeued += n;
	insert_sorted(l->s, j);
	return 0;
}

int sched_load(struct sched *s, char *err, size_t errlen)
{
	struct load l = { s, 0, 0 };
	int jobs = 0;

	if (store_begin(s->store) < 0 ||
	    (jobs = store_jobs_active(s->store, load_job, &l)) < 0 || l.failed ||
	    store_commit(s->store) < 0) {
		snprintf(err, errlen, "cannot load jobs: %s", store_errmsg(s->store));
		store_rollback(s->store);
		return -1;
	}
	for (struct ljob *j = s->jobs; j; j = j->next) {
		if (j->handler < 0)
			LOG_WARN("job's handler is not registered; its tasks will fail",
				 LF_I("job", j->row.id), LF_S("handler", j->row.handler));
		maybe_finish(s, j);	/* a crash between the last task and the row */
	}
	if (jobs > 0)
		LOG_INFO("resuming unfinished jobs", LF_I("jobs", jobs),
			 LF_I("requeued_tasks", l.requeued));
	return 0;
}

/* ---- API operations ---- */

void sched_submitted(struct sched *s, const struct store_job *row)
{
	insert_sorted(s, new_job(s, row));
	s->version++;
}

/* The job, live or read from the store (then *loaded is set and the
 * caller owns it until it is inserted). */
static struct ljob *get_job(struct sched *s, int64_t id, int *loaded, int *rc,
			    char *msg, size_t len)
{
	struct ljob *j = find_job(s, id);
	struct store_job row;
	int r;

	*loaded = 0;
	if (j)
		return j;
	r = store_job_get(s->store, id, &row);
	if (r == STORE_NOT_FOUND) {
		snprintf(msg, len, "no job %lld", (long long)id);
		*rc = SCHED_NOT_FOUND;
		return NULL;
	}
	if (r < 0) {
		snprintf(msg, len, "database error: %s", store_errmsg(s->store));
		*rc = SCHED_ERROR;
		return NULL;
	}
	j = new_job(s, &row);
	store_job_release(&row);
	*loaded = 1;
	return j;
}

int sched_cancel(struct sched *s, int64_t id, char *msg, size_t len)
{
	int loaded, rc = SCHED_OK;
	struct ljob *j = get_job(s, id, &loaded, &rc, msg, len);
	int64_t n, now = clock_wall_ms();

	if (!j)
		return rc;
	if (!job_active(j)) {
		rc = j->row.state == ST_CANCELLED ? SCHED_OK : SCHED_CONFLICT;
		if (rc)
			snprintf(msg, len, "job %lld has already %s", (long long)id,
				 state_name(j->row.state));
		if (loaded)
			free_job(j);
		return rc;
	}
	assert(!loaded);
	if (begin(s) < 0 || (n = store_tasks_cancel(s->store, id, now)) < 0) {
		check(s, -1, "cancel");
		snprintf(msg, len, "database error: %s", store_errmsg(s->store));
		return SCHED_ERROR;
	}
	j->row.cancelled += n;
	metrics_tasks_final(j->row.handler, ST_CANCELLED, n);
	j->gen++;
	clear_queue(j);
	j->scan_done = 1;
	j->cursor = j->row.total;
	j->delayed = 0;
	for (int i = 0; i < s->nslots; i++) {
		struct wslot *w = &s->slots[i];

		for (size_t k = 0; k < w->len; k++) {
			struct inflight *e = slot_at(w, k);

			if (e->job != j || e->dead)
				continue;
			e->dead = 1;
			if (k == 0) {
				j->running--;
				w->kill = KILL_CANCEL;
				pool_kill(s->pool, i);
			}
		}
	}
	j->row.state = ST_CANCELLED;
	j->row.finished_at = now;
	if (!j->row.started_at)
		j->row.started_at = now;
	j->dirty = 1;
	s->settle = 1;
	s->version++;
	LOG_INFO("job cancelled", LF_I("job", id), LF_I("tasks", n));
	return SCHED_OK;
}

static void retried(void *ctx, int64_t idx)
{
	struct ljob *j = ctx;

	/* Tasks past the scan cursor will be met by the scan. */
	if (idx < j->cursor || j->scan_done)
		push_again(j, idx);
}

int sched_retry(struct sched *s, int64_t id, char *msg, size_t len)
{
	int loaded, rc = SCHED_OK;
	struct ljob *j = get_job(s, id, &loaded, &rc, msg, len);
	int64_t failed = 0, cancelled = 0;

	if (!j)
		return rc;
	if (loaded) {
		j->scan_done = 1;
		j->cursor = j->row.total;
	}
	if (begin(s) < 0 ||
	    store_tasks_retry_failed(s->store, id, retried, j, &failed, &cancelled) < 0) {
		check(s, -1, "retry");
		snprintf(msg, len, "database error: %s", store_errmsg(s->store));
		if (loaded)
			free_job(j);
		return SCHED_ERROR;
	}
	if (!failed && !cancelled) {
		snprintf(msg, len, "job %lld has no failed or cancelled tasks to retry",
			 (long long)id);
		if (loaded)
			free_job(j);
		return SCHED_CONFLICT;
	}
	j->row.failed -= failed;
	j->row.cancelled -= cancelled;
	j->row.state = j->running ? ST_RUNNING : ST_QUEUED;
	j->row.finished_at = 0;
	j->dirty = 1;
	if (loaded)
		insert_sorted(s, j);
	s->settle = 1;
	s->version++;
	LOG_INFO("job retried", LF_I("job", id), LF_I("failed", failed),
		 LF_I("cancelled", cancelled));
	return SCHED_OK;
}

int sched_delete(struct sched *s, int64_t id, char *msg, size_t len)
{
	struct ljob *j = find_job(s, id);
	struct store_job row;
	int r;

	if (j && job_active(j)) {
		snprintf(msg, len, "job %lld is %s; cancel it before deleting it",
			 (long long)id, state_name(j->row.state));
		return SCHED_CONFLICT;
	}
	if (!j) {
		r = store_job_get(s->store, id, &row);
		if (r == STORE_NOT_FOUND) {
			snprintf(msg, len, "no job %lld", (long long)id);
			return SCHED_NOT_FOUND;
		}
		if (r < 0)
			goto fail;
		store_job_release(&row);
	}
	if (sched_flush(s) < 0 || store_job_delete(s->store, id) < 0)
		goto fail;
	if (j)
		j->deleted = 1;	/* freed once its last dead task is back */
	s->version++;
	LOG_INFO("job deleted", LF_I("job", id));
	return SCHED_OK;
fail:
	snprintf(msg, len, "database error: %s", store_errmsg(s->store));
	return SCHED_ERROR;
}

/* ---- views ---- */

static void fill_live(const struct ljob *j, int64_t now_ms, struct sched_live *l)
{
	int64_t fin = job_finished(j);

	l->row = &j->row;
	l->running = j->running;
	l->queued = j->row.total - fin - j->running;
	if (l->queued < 0)
		l->queued = 0;
	l->rate = meter_rate(&j->meter, now_ms, j->row.succeeded + j->row.failed);
	l->eta_s = meter_eta(l->rate, j->row.total - fin);
}

int sched_live(struct sched *s, int64_t id, int64_t now_ms, struct sched_live *live)
{
	struct ljob *j = find_job(s, id);

	if (!j || !job_active(j))
		return 0;
	fill_live(j, now_ms, live);
	return 1;
}

void sched_each_live(struct sched *s, int64_t now_ms,
		     int (*fn)(void *ctx, const struct sched_live *live), void *ctx)
{
	struct sched_live l;

	for (struct ljob *j = s->jobs; j; j = j->next) {
		if (!job_active(j))
			continue;
		fill_live(j, now_ms, &l);
		if (fn(ctx, &l))
			return;
	}
}

int64_t sched_running(const struct sched *s)
{
	int64_t n = 0;

	for (int i = 0; i < s->nslots; i++)
		n += s->slots[i].len && !s->slots[i].q[s->slots[i].head].dead;
	return n;
}

int sched_current(const struct sched *s, int slot, int64_t *job, int64_t *idx,
		  double *progress)
{
	const struct wslot *w = &s->slots[slot];
	const struct inflight *e;

	if (!w->len)
		return 0;
	e = &w->q[w->head];
	if (e->dead)
		return 0;
	*job = e->job->row.id;
	*idx = e->idx;
	*progress = e->progress;
	return 1;
}

int sched_task_live(const struct sched *s, int64_t job, int64_t idx,
		    double *progress, const char **message)
{
	for (int i = 0; i < s->nslots; i++) {
		const struct wslot *w = &s->slots[i];
		const struct inflight *e;

		if (!w->len)
			continue;
		e = &w->q[w->head];
		if (!e->dead && e->job->row.id == job && e->idx == idx) {
			*progress = e->progress;
			*message = e->message;
			return 1;
		}
	}
	return 0;
}

uint64_t sched_version(const struct sched *s)
{
	return s->version;
}

int sched_history(struct sched *s, int64_t id, int64_t now_ms, int64_t *counts,
		  int64_t *bucket_ms, int64_t *start_ms)
{
	struct ljob *j = find_job(s, id);

	if (!j)
		return 0;
	*start_ms = j->meter.start_ms;
	return meter_history(&j->meter, now_ms, counts, bucket_ms);
}

/* ---- the loop's side ---- */

int64_t sched_tick(struct sched *s, int64_t now_us)
{
	int64_t next = 0, now_ms = clock_wall_ms();

	if (s->paused_until && now_us >= s->paused_until) {
		s->paused_until = 0;
		LOG_INFO("resuming dispatch after a database error");
	}
	for (int i = 0; i < s->nslots; i++) {
		struct wslot *w = &s->slots[i];
		struct inflight *e;
		int64_t deadline;

		if (!w->len || w->kill)
			continue;
		e = slot_at(w, 0);
		if (e->dead)
			continue;
		if (w->len > 1) {
			int64_t at = stuck_at(s, w);

			if (now_us >= at)
				take_back(s, i);
			else if (!next || at < next)
				next = at;
		}
		deadline = e->setup ? e->setup_until_us :
			   e->start_us + e->job->row.timeout_ms * 1000;
		if (now_us >= deadline) {
			w->kill = e->setup ? KILL_SETUP_TIMEOUT : KILL_TIMEOUT;
			pool_kill(s->pool, i);
			continue;
		}
		if (!next || deadline < next)
			next = deadline;
	}
	while (s->hlen && s->heap[0].at_ms <= now_ms) {
		struct delayed d = heap_pop(s);
		struct ljob *j = find_job(s, d.job);

		if (!j || j->gen != d.gen || !job_active(j))
			continue;
		j->delayed--;
		push_again(j, d.idx);
	}
	if (s->hlen) {
		int64_t at = now_us + (s->heap[0].at_ms - now_ms) * 1000;

		if (!next || at < next)
			next = at;
	}
	if (s->paused_until && (!next || s->paused_until < next))
		next = s->paused_until;
	return next;
}

/* Writes the running marks, progress and job rows that memory holds and
 * the store does not yet, into the group transaction. */
static int write_pending(struct sched *s)
{
	for (int i = 0; i < s->nslots; i++) {
		struct wslot *w = &s->slots[i];
		struct inflight *e;

		if (!w->len)
			continue;
		e = slot_at(w, 0);
		if (e->dead)
			continue;
		if (!e->saved) {
			if (begin(s) == 0)
				check(s, store_task_running(s->store, e->job->row.id, e->idx,
							    e->attempt, worker_id(s, i),
							    e->start_ms), "running");
			e->saved = 1;
		}
		if (e->pdirty) {
			if (begin(s) == 0)
				check(s, store_task_progress(s->store, e->job->row.id, e->idx,
							     e->progress, e->message,
							     e->message ? strlen(e->message) : 0),
				      "progress");
			e->pdirty = 0;
		}
	}
	for (struct ljob **pp = &s->jobs; *pp;) {
		struct ljob *j = *pp;

		if (j->dirty && !j->deleted) {
			if (begin(s) == 0)
				check(s, store_job_save(s->store, &j->row), "save job");
			j->dirty = 0;
		}
		if ((state_final(j->row.state) || j->deleted) && j->out == 0) {
			*pp = j->next;
			free_job(j);
			continue;
		}
		pp = &j->next;
	}
	return s->broken ? -1 : 0;
}

int sched_sync(struct sched *s)
{
	if (write_pending(s) < 0)
		return -1;
	/* Whoever reads next may be told that a job has finished (or was
	 * cancelled, or retried): that must already be what a restart
	 * finds, every result included. One commit per such event. */
	if (s->settle)
		return sched_flush(s);
	return 0;
}

/* The store failed in this group: what memory holds is no longer what the
 * store holds. Start over from the store, as after a restart: stop every
 * worker (their tasks run again) and reload the jobs. */
static void resync(struct sched *s)
{
	char err[512];

	LOG_ERROR("database write failed; reloading jobs from the database",
		  LF_S("error", store_errmsg(s->store)));
	/* A group in which a write failed must not land, not even if the
	 * commit would now succeed: its other writes (a job's counts) would
	 * disagree with what is missing. */
	store_rollback(s->store);
	for (int i = 0; i < s->nslots; i++) {
		struct wslot *w = &s->slots[i];

		for (size_t k = 0; k < w->len; k++)
			slot_at(w, k)->dead = 1;
		if (w->len) {
			w->kill = KILL_SHUTDOWN;
			pool_kill(s->pool, i);
		}
	}
	for (struct ljob *j = s->jobs; j; j = j->next) {
		j->deleted = 1;
		clear_queue(j);
	}
	s->hlen = 0;
	s->broken = 0;
	if (sched_load(s, err, sizeof(err)) < 0) {
		LOG_ERROR("cannot reload jobs", LF_S("error", err));
		s->broken = 1;
	}
	s->paused_until = clock_mono_us() + STORE_PAUSE_US;
	s->version++;
}

int sched_flush(struct sched *s)
{
	s->settle = 0;
	if (write_pending(s) < 0 || store_commit(s->store) < 0) {
		if (!s->broken)
			LOG_ERROR("database commit failed", LF_S("error", store_errmsg(s->store)));
		s->broken = 1;
		resync(s);
		return -1;
	}
	return 0;
}

void sched_stop(struct sched *s)
{
	s->stopping = 1;
}

void sched_abort(struct sched *s)
{
	s->stopping = 1;
	for (int i = 0; i < s->nslots; i++) {
		if (!s->slots[i].kill)
			s->slots[i].kill = KILL_SHUTDOWN;
		pool_kill(s->pool, i);
	}
}

int64_t sched_paused_until(const struct sched *s)
{
	return s->paused_until;
}
