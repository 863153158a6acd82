/*
 * sched_api: what the API asks of the scheduler — a submitted job, cancel,
 * retry, delete — and the live figures it shows. See sched.h and
 * sched_int.h.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "metrics.h"
#include "sched_int.h"

/* ---- API operations ---- */

void sched_submitted(struct sched *s, const struct store_job *row)
{
	sched_insert_job(s, ljob_new(s, row));
	s->version++;
}

/* The job, live or read from the store (then *loaded is set and the
 * caller owns it until it is inserted). */
static struct ljob *get_job(struct sched *s, int64_t id, int *loaded, int *rc,
			    char *msg, size_t len)
{
	struct ljob *j = sched_find_job(s, id);
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
	j = ljob_new(s, &row);
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
	if (!ljob_active(j)) {
		rc = j->row.state == ST_CANCELLED ? SCHED_OK : SCHED_CONFLICT;
		if (rc)
			snprintf(msg, len, "job %lld has already %s", (long long)id,
				 state_name(j->row.state));
		if (loaded)
			ljob_free(j);
		return rc;
	}
	assert(!loaded);
	if (sched_write_begin(s) < 0 || (n = store_tasks_cancel(s->store, id, now)) < 0) {
		sched_write_check(s, -1, "cancel");
		snprintf(msg, len, "database error: %s", store_errmsg(s->store));
		return SCHED_ERROR;
	}
	j->row.cancelled += n;
	metrics_tasks_final(j->row.handler, ST_CANCELLED, n);
	j->gen++;
	ljob_clear_queue(j);
	j->scan_done = 1;
	j->cursor = j->row.total;
	j->delayed = 0;
	for (int i = 0; i < s->nslots; i++) {
		struct wslot *w = &s->slots[i];

		for (size_t k = 0; k < w->len; k++) {
			struct inflight *e = wslot_at(w, k);

			if (e->job != j || e->dead)
				continue;
			e->dead = 1;
			if (k == 0) {
				j->running--;
				sched_stop_head(s, i, KILL_CANCEL);
			} else {
				/* Handed out behind another task: the worker
				 * lives on, and must not start it. */
				frame_put_skip(pool_out(s->pool, i), (uint64_t)j->row.id,
					       (uint32_t)e->idx);
			}
		}
		if (pool_pending(s->pool, i))
			pool_flush(s->pool, i);
	}
	j->row.state = ST_CANCELLED;
	j->row.paused = 0;
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
		ljob_push_again(j, idx);
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
	if (sched_write_begin(s) < 0 ||
	    store_tasks_retry_failed(s->store, id, retried, j, &failed, &cancelled) < 0) {
		sched_write_check(s, -1, "retry");
		snprintf(msg, len, "database error: %s", store_errmsg(s->store));
		if (loaded)
			ljob_free(j);
		return SCHED_ERROR;
	}
	if (!failed && !cancelled) {
		snprintf(msg, len, "job %lld has no failed or cancelled tasks to retry",
			 (long long)id);
		if (loaded)
			ljob_free(j);
		return SCHED_CONFLICT;
	}
	j->row.failed -= failed;
	j->row.cancelled -= cancelled;
	j->row.state = j->running ? ST_RUNNING : ST_QUEUED;
	j->row.finished_at = 0;
	j->dirty = 1;
	if (loaded)
		sched_insert_job(s, j);
	s->settle = 1;
	s->version++;
	LOG_INFO("job retried", LF_I("job", id), LF_I("failed", failed),
		 LF_I("cancelled", cancelled));
	return SCHED_OK;
}

int sched_pause(struct sched *s, int64_t id, int pause, char *msg, size_t len)
{
	struct ljob *j = sched_find_job(s, id);
	struct store_job row;
	int r, given = 0;

	if (!j || !ljob_active(j)) {
		if (j) {
			r = j->row.state;
		} else {
			r = store_job_get(s->store, id, &row);
			if (r == STORE_NOT_FOUND) {
				snprintf(msg, len, "no job %lld", (long long)id);
				return SCHED_NOT_FOUND;
			}
			if (r < 0) {
				snprintf(msg, len, "database error: %s", store_errmsg(s->store));
				return SCHED_ERROR;
			}
			r = row.state;
			store_job_release(&row);
		}
		snprintf(msg, len, "job %lld has %s; only a queued or running job can be %s",
			 (long long)id, state_name(r), pause ? "paused" : "resumed");
		return SCHED_CONFLICT;
	}
	if (j->row.paused == !!pause)
		return SCHED_OK;
	j->row.paused = !!pause;
	if (pause) {
		/* What was handed out behind another task has not begun: it
		 * comes back, to wait with the rest. */
		for (int i = 0; i < s->nslots; i++) {
			struct wslot *w = &s->slots[i];

			for (size_t k = 1; k < w->len; k++) {
				struct inflight *e = wslot_at(w, k);

				if (e->job != j || e->dead)
					continue;
				e->dead = 1;
				frame_put_skip(pool_out(s->pool, i), (uint64_t)j->row.id,
					       (uint32_t)e->idx);
				ljob_push_again(j, e->idx);
				given++;
			}
			if (pool_pending(s->pool, i))
				pool_flush(s->pool, i);
		}
	}
	j->dirty = 1;
	s->settle = 1;
	s->version++;
	if (pause)
		LOG_INFO("job paused", LF_I("job", id), LF_I("running", j->running),
			 LF_I("taken_back", given));
	else
		LOG_INFO("job resumed", LF_I("job", id));
	return SCHED_OK;
}

/* Deletes job id; why is what the log says of it. */
static int delete_job(struct sched *s, int64_t id, const char *why, char *msg, size_t len)
{
	struct ljob *j = sched_find_job(s, id);
	struct store_job row;
	int r;

	if (j && ljob_active(j)) {
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
	LOG_INFO(why, LF_I("job", id));
	return SCHED_OK;
fail:
	snprintf(msg, len, "database error: %s", store_errmsg(s->store));
	return SCHED_ERROR;
}

int sched_delete(struct sched *s, int64_t id, char *msg, size_t len)
{
	return delete_job(s, id, "job deleted", msg, len);
}

int sched_expire(struct sched *s, int64_t before_ms, int64_t budget, int64_t *jobs,
		 int64_t *tasks)
{
	enum { BATCH = 64 };
	int64_t ids[BATCH], totals[BATCH];
	char msg[256];
	int n;

	*jobs = *tasks = 0;
	while (*tasks < budget) {
		n = store_jobs_expired(s->store, before_ms, BATCH, ids, totals);
		if (n < 0) {
			LOG_ERROR("cannot list the expired jobs",
				  LF_S("error", store_errmsg(s->store)));
			return -1;
		}
		for (int i = 0; i < n; i++) {
			/* At least one job a sweep, however large. */
			if (*jobs && *tasks + totals[i] > budget)
				return 1;
			switch (delete_job(s, ids[i], "job expired", msg, sizeof(msg))) {
			case SCHED_OK:
				break;
			case SCHED_CONFLICT:	/* retried meanwhile: it lives on */
				return 0;
			default:
				LOG_ERROR("cannot delete an expired job", LF_I("job", ids[i]),
					  LF_S("error", msg));
				return -1;
			}
			metrics_job_expired();
			++*jobs;
			*tasks += totals[i];
		}
		if (n < BATCH)
			return 0;
	}
	return 1;
}

/* ---- views ---- */

/* The task the worker of slot is running, or NULL when it runs none (or
 * only one of a cancelled job, which is no longer counted). */
static const struct inflight *running_at(const struct sched *s, int slot)
{
	const struct wslot *w = &s->slots[slot];
	const struct inflight *e;

	if (!w->len)
		return NULL;
	e = &w->q[w->head];
	return e->dead ? NULL : e;
}

/* The running tasks of job j: their reported fractions, summed (a task
 * that has reported nothing counts for none). */
static double running_progress(const struct sched *s, const struct ljob *j)
{
	double sum = 0;

	for (int i = 0; i < s->nslots; i++) {
		const struct inflight *e = running_at(s, i);

		if (e && e->job == j && e->progress > 0)
			sum += e->progress;
	}
	return sum;
}

static void fill_live(const struct sched *s, const struct ljob *j, int64_t now_ms,
		      struct sched_live *l)
{
	int64_t fin = ljob_finished(j);
	double work;

	l->row = &j->row;
	l->running = j->running;
	l->running_progress = j->running ? running_progress(s, j) : 0;
	l->queued = j->row.total - fin - j->running;
	if (l->queued < 0)
		l->queued = 0;
	l->rate = meter_rate(&j->meter, now_ms, j->row.succeeded + j->row.failed);
	l->eta_s = meter_eta(l->rate, j->row.total - fin);
	/* No task has finished lately (long tasks): the ETA comes from the
	 * work done so far, the running tasks' own progress included, over
	 * the time the job has run. */
	work = (double)fin + l->running_progress;
	if (l->eta_s < 0 && l->running_progress > 0 && j->row.started_at > 0 &&
	    now_ms > j->row.started_at && work < (double)j->row.total)
		l->eta_s = (double)(now_ms - j->row.started_at) / 1000.0 *
			   ((double)j->row.total - work) / work;
	/* Paused, it ends only once resumed: when, nobody knows. */
	if (j->row.paused && l->queued > 0)
		l->eta_s = -1;
}

int sched_live(struct sched *s, int64_t id, int64_t now_ms, struct sched_live *live)
{
	struct ljob *j = sched_find_job(s, id);

	if (!j || !ljob_active(j))
		return 0;
	fill_live(s, j, now_ms, live);
	return 1;
}

void sched_each_live(struct sched *s, int64_t now_ms,
		     int (*fn)(void *ctx, const struct sched_live *live), void *ctx)
{
	struct sched_live l;

	for (struct ljob *j = s->jobs; j; j = j->next) {
		if (!ljob_active(j))
			continue;
		fill_live(s, j, now_ms, &l);
		if (fn(ctx, &l))
			return;
	}
}

int sched_has_live(const struct sched *s)
{
	for (const struct ljob *j = s->jobs; j; j = j->next)
		if (ljob_active(j))
			return 1;
	return 0;
}

int64_t sched_running(const struct sched *s)
{
	int64_t n = 0;

	for (int i = 0; i < s->nslots; i++)
		n += running_at(s, i) != NULL;
	return n;
}

int sched_current(const struct sched *s, int slot, int64_t *job, int64_t *idx,
		  double *progress)
{
	const struct inflight *e = running_at(s, slot);

	if (!e)
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
		const struct inflight *e = running_at(s, i);

		if (e && e->job->row.id == job && e->idx == idx) {
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
	struct ljob *j = sched_find_job(s, id);

	if (!j)
		return 0;
	*start_ms = j->meter.start_ms;
	return meter_history(&j->meter, now_ms, counts, bucket_ms);
}
