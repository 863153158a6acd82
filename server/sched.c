/*
 * sched: the scheduler's engine: jobs in memory, reading queued tasks,
 * dispatch with a prefetch window, the loop's side (timeouts, retries,
 * group commit) and start-up. See sched.h; sched_events.c handles what
 * workers report and sched_api.c what the API asks.
 */
#include "sched_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
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
/* A worker with room in its window gets up to this many consecutive tasks
 * of a job at a time, rather than one each in turn: the results then come
 * back as runs of consecutive tasks, which the store records with one
 * UPDATE each (store_task_finish). Never more than the job's waiting tasks
 * shared among the workers, so that a small job still spreads. */
#define DISPATCH_RUN 32
/* After the store fails, stop dispatching this long. */
#define STORE_PAUSE_US 1000000

/* ---- store writes ---- */

/* Opens the group transaction if needed. A failed write marks the group
 * broken: sched_flush() then drops it and reloads from the store. */
int sched_write_begin(struct sched *s)
{
	if (store_begin(s->store) < 0) {
		s->broken = 1;
		return -1;
	}
	return 0;
}

void sched_write_check(struct sched *s, int rc, const char *what)
{
	if (rc < 0) {
		if (!s->broken)
			LOG_ERROR("database write failed", LF_S("op", what),
				  LF_S("error", store_errmsg(s->store)));
		s->broken = 1;
	}
}

/* ---- jobs ---- */

struct ljob *sched_find_job(struct sched *s, int64_t id)
{
	for (struct ljob *j = s->jobs; j; j = j->next)
		if (j->row.id == id && !j->deleted)
			return j;
	return NULL;
}

int ljob_active(const struct ljob *j)
{
	return !j->deleted && !state_final(j->row.state);
}

int64_t ljob_finished(const struct ljob *j)
{
	return j->row.succeeded + j->row.failed + j->row.cancelled;
}

void sched_insert_job(struct sched *s, struct ljob *j)
{
	struct ljob **pp = &s->jobs;

	while (*pp && ((*pp)->row.priority > j->row.priority ||
		       ((*pp)->row.priority == j->row.priority &&
			(*pp)->row.id < j->row.id)))
		pp = &(*pp)->next;
	j->next = *pp;
	*pp = j;
}

void ljob_clear_queue(struct ljob *j)
{
	for (size_t i = j->bhead; i < j->blen; i++)
		free(j->buf[i].input);
	j->bhead = j->blen = 0;
	j->alen = 0;
}

void ljob_free(struct ljob *j)
{
	ljob_clear_queue(j);
	free(j->buf);
	free(j->again);
	store_job_release(&j->row);
	free(j);
}

/* A job held in memory, from a row (strings copied). */
struct ljob *ljob_new(struct sched *s, const struct store_job *row)
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
void sched_maybe_finish(struct sched *s, struct ljob *j)
{
	if (state_final(j->row.state) || ljob_finished(j) < j->row.total)
		return;
	j->row.state = j->row.failed ? ST_FAILED :
		       j->row.cancelled ? ST_CANCELLED : ST_SUCCEEDED;
	j->row.paused = 0;	/* paused as its last tasks ran: nothing waits */
	j->row.finished_at = clock_wall_ms();
	if (!j->row.started_at)
		j->row.started_at = j->row.finished_at;
	j->dirty = 1;
	s->settle = 1;
	s->version++;
	/* Said once it is committed (sched_committed): a group that fails to
	 * land runs its tasks again, and would log the job's end each time. */
	if (s->nended == s->capended) {
		s->capended = s->capended ? 2 * s->capended : 8;
		s->ended = xrealloc(s->ended, s->capended * sizeof(*s->ended));
	}
	s->ended[s->nended++] = (struct ended){ j->row.id, j->row.succeeded, j->row.failed,
						 j->row.cancelled, j->row.state };
}

void sched_committed(struct sched *s, int ok)
{
	for (size_t i = 0; ok && i < s->nended; i++) {
		const struct ended *e = &s->ended[i];

		LOG_INFO("job finished", LF_I("job", e->job), LF_S("state", state_name(e->state)),
			 LF_I("succeeded", e->succeeded), LF_I("failed", e->failed),
			 LF_I("cancelled", e->cancelled));
	}
	s->nended = 0;
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

		if (sched_write_begin(s) == 0)
			sched_write_check(s, store_task_finish(s->store, j->row.id, t->idx, ST_FAILED,
						   t->attempts, 0, 0, now, NULL, 0,
						   msg.data, msg.len, -1, NULL), "finish");
		j->row.failed++;
		metrics_tasks_final(j->row.handler, ST_FAILED, 1);
	}
	ljob_clear_queue(j);
	j->dirty = 1;
	buf_release(&msg);
	sched_maybe_finish(s, j);
}

/* ---- the retry heap ---- */

void sched_heap_push(struct sched *s, struct delayed d)
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

void ljob_push_again(struct ljob *j, int64_t idx)
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
		sched_heap_push(f->s, (struct delayed){ not_before, j->row.id, idx, j->gen });
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

	if (!ljob_active(j) || j->row.paused)
		return 0;
	while (j->bhead == j->blen) {
		j->bhead = j->blen = 0;
		if (j->alen) {
			while (j->alen && j->blen < SCAN_BATCH) {
				int64_t idx = j->again[--j->alen];
				int rc = store_task_queued(s->store, j->row.id, idx,
							   take_queued, &f);

				sched_write_check(s, rc < 0 ? -1 : 0, "read task");
			}
			continue;
		}
		if (j->scan_done)
			return 0;
		int n = store_tasks_queued(s->store, j->row.id, j->cursor,
					   SCAN_BATCH, take_queued, &f);

		if (n < 0) {
			sched_write_check(s, -1, "scan tasks");
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

struct inflight *wslot_at(struct wslot *w, size_t k)
{
	return &w->q[(w->head + k) % w->cap];
}

static void slot_push(struct wslot *w, struct inflight e)
{
	if (w->len == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct inflight *q = xcalloc(cap, sizeof(*q));

		for (size_t k = 0; k < w->len; k++)
			q[k] = *wslot_at(w, k);
		free(w->q);
		w->q = q;
		w->cap = cap;
		w->head = 0;
	}
	*wslot_at(w, w->len++) = e;
}

/* Removes the head entry; the caller has taken what it needs. */
void wslot_pop(struct wslot *w)
{
	struct inflight *e = wslot_at(w, 0);

	free(e->message);
	memset(e, 0, sizeof(*e));
	w->head = (w->head + 1) % w->cap;
	w->len--;
}

void sched_stop_head(struct sched *s, int slot, enum kill_reason why)
{
	struct wslot *w = &s->slots[slot];
	const struct inflight *e = wslot_at(w, 0);
	const struct handler *h = registry_get(s->reg, e->job->handler);

	if (w->stop_until_us)
		return;		/* asked already; its deadline stands */
	/* A co-process's start-up hears a stop, like its task: the
	 * co-process goes, its worker stays (persistent.c). A plugin's init()
	 * cannot be stopped: it goes with its worker. */
	if (!e->setup || (h && h->kind == HANDLER_PERSISTENT)) {
		frame_put_skip(pool_out(s->pool, slot), (uint64_t)e->job->row.id,
			       (uint32_t)e->idx);
		pool_flush(s->pool, slot);
		w->stop_until_us = clock_mono_us() + STOP_GRACE_US;
		w->stop_why = why;
		return;
	}
	w->kill = why;
	pool_kill(s->pool, slot);
}

/* The entry at the head of a worker's queue is the task it is running. */
void sched_became_head(struct sched *s, struct wslot *w)
{
	struct inflight *e;

	if (!w->len)
		return;
	e = wslot_at(w, 0);
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

int sched_worker_id(struct sched *s, int slot)
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
	e = wslot_at(w, 0);
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
		struct inflight *e = wslot_at(w, k);

		if (e->dead)
			continue;
		e->dead = 1;
		frame_put_skip(pool_out(s->pool, slot), (uint64_t)e->job->row.id,
			       (uint32_t)e->idx);
		if (ljob_active(e->job))
			ljob_push_again(e->job, e->idx);
		n++;
	}
	if (n) {
		pool_flush(s->pool, slot);
		LOG_DEBUG("tasks taken back from a worker busy with a long task",
			  LF_I("worker", sched_worker_id(s, slot)), LF_I("tasks", n));
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
		sched_became_head(s, w);
}

/* Tasks of j not yet handed out, nor finished, nor waiting for a retry. */
static int64_t ljob_waiting(const struct ljob *j)
{
	return j->row.total - j->row.succeeded - j->row.failed - j->row.cancelled -
	       j->out - j->delayed;
}

/* How many tasks of j worker slot, with room for free more, gets now: the
 * workers from slot on share what is waiting. */
static int run_length(const struct sched *s, const struct ljob *j, int slot, int free)
{
	int others = s->nslots - slot;
	int64_t share = (ljob_waiting(j) + others - 1) / others;
	int n = free < DISPATCH_RUN ? free : DISPATCH_RUN;

	if (share < n)
		n = share > 1 ? (int)share : 1;
	return n;
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
			int win, n;

			if (!w->ready || w->kill || w->stop_until_us || head_stuck(s, w, now) ||
			    !pool_accepts(s->pool, i, w->len))
				continue;
			j = next_job(s);
			if (!j)
				goto out;
			win = window(s, j->handler);
			if ((int)w->len >= win)
				continue;
			n = run_length(s, j, i, win - (int)w->len);
			hand_out(s, i, j);
			for (int k = 1; k < n && pool_accepts(s->pool, i, w->len) &&
			     next_job(s) == j; k++)
				hand_out(s, i, j);
			progress = 1;
		}
	}
out:
	for (int i = 0; i < s->nslots; i++)
		if (pool_pending(s->pool, i))
			pool_flush(s->pool, i);
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
		ljob_free(j);
	}
	for (int i = 0; i < s->nslots; i++) {
		struct wslot *w = &s->slots[i];

		while (w->len)
			wslot_pop(w);
		free(w->q);
	}
	free(s->slots);
	free(s->heap);
	free(s->avg_us);
	free(s->ended);
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
	struct ljob *j = ljob_new(l->s, row);
	int64_t n = store_requeue_running(l->s->store, row->id);

	if (n < 0)
		l->failed = 1;
	else
		l->requeued += n;
	sched_insert_job(l->s, j);
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
		sched_maybe_finish(s, j);	/* a crash between the last task and the row */
	}
	if (jobs > 0)
		LOG_INFO("resuming unfinished jobs", LF_I("jobs", jobs),
			 LF_I("requeued_tasks", l.requeued));
	return 0;
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
		e = wslot_at(w, 0);
		if (w->stop_until_us) {
			if (now_us >= w->stop_until_us) {
				LOG_WARN("worker did not stop its task in time; killing it",
					 LF_I("worker", sched_worker_id(s, i)));
				w->kill = w->stop_why;
				pool_kill(s->pool, i);
			} else if (!next || w->stop_until_us < next) {
				next = w->stop_until_us;
			}
			continue;
		}
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
			sched_stop_head(s, i, e->setup ? KILL_SETUP_TIMEOUT : KILL_TIMEOUT);
			if (w->stop_until_us && (!next || w->stop_until_us < next))
				next = w->stop_until_us;
			continue;
		}
		if (!next || deadline < next)
			next = deadline;
	}
	while (s->hlen && s->heap[0].at_ms <= now_ms) {
		struct delayed d = heap_pop(s);
		struct ljob *j = sched_find_job(s, d.job);

		if (!j || j->gen != d.gen || !ljob_active(j))
			continue;
		j->delayed--;
		ljob_push_again(j, d.idx);
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
		e = wslot_at(w, 0);
		if (e->dead)
			continue;
		if (!e->saved) {
			if (sched_write_begin(s) == 0)
				sched_write_check(s, store_task_running(s->store, e->job->row.id, e->idx,
							    e->attempt, sched_worker_id(s, i),
							    e->start_ms), "running");
			e->saved = 1;
		}
		if (e->pdirty) {
			if (sched_write_begin(s) == 0)
				sched_write_check(s, store_task_progress(s->store, e->job->row.id, e->idx,
							     e->progress, e->message,
							     e->message ? strlen(e->message) : 0),
				      "progress");
			e->pdirty = 0;
		}
	}
	for (struct ljob **pp = &s->jobs; *pp;) {
		struct ljob *j = *pp;

		if (j->dirty && !j->deleted) {
			if (sched_write_begin(s) == 0)
				sched_write_check(s, store_job_save(s->store, &j->row), "save job");
			j->dirty = 0;
		}
		if ((state_final(j->row.state) || j->deleted) && j->out == 0) {
			*pp = j->next;
			ljob_free(j);
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
	metrics_discard();
	sched_committed(s, 0);
	for (int i = 0; i < s->nslots; i++) {
		struct wslot *w = &s->slots[i];

		for (size_t k = 0; k < w->len; k++)
			wslot_at(w, k)->dead = 1;
		if (w->len) {
			w->kill = KILL_SHUTDOWN;
			pool_kill(s->pool, i);
		}
	}
	for (struct ljob *j = s->jobs; j; j = j->next) {
		j->deleted = 1;
		ljob_clear_queue(j);
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
