/*
 * views: JSON of jobs, tasks and workers. See views.h.
 */
#include "views.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/json.h"

cJSON *view_time(int64_t ms)
{
	char ts[25];

	if (!ms)
		return cJSON_CreateNull();
	clock_rfc3339(ms, ts);
	return cJSON_CreateString(ts);
}

/* A fraction a handler reported, or null: whole ones (0 and 1, mostly)
 * printed by view_int, others as cJSON prints them. */
static cJSON *number_or_null(double v)
{
	if (!isfinite(v) || v < 0)
		return cJSON_CreateNull();
	return v == floor(v) && v < 1e15 ? view_int((int64_t)v) : cJSON_CreateNumber(v);
}

/* Writes u's digits ending at end (exclusive); returns the first. */
static char *put_digits(char *end, uint64_t u)
{
	do {
		*--end = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	return end;
}

cJSON *view_int(int64_t v)
{
	char text[24], *p = text + sizeof(text) - 1;

	*p = '\0';
	p = put_digits(p, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
	if (v < 0)
		*--p = '-';
	return cJSON_CreateRaw(p);
}

cJSON *view_dec(double v, int decimals)
{
	static const double scale[] = { 1, 10, 100, 1000, 10000 };
	char text[40], *p = text + sizeof(text) - 1;
	double m;
	uint64_t u, div;
	int neg = v < 0;

	if (decimals < 0 || decimals > 4 || !isfinite(v))
		return cJSON_CreateNumber(v);
	m = round(fabs(v) * scale[decimals]);
	if (m >= 1e15)		/* beyond 15 digits "%1.15g" would round */
		return cJSON_CreateNumber(v);
	u = (uint64_t)m;
	div = (uint64_t)scale[decimals];
	*p = '\0';
	if (u % div) {
		uint64_t frac = u % div;
		int n = decimals;

		while (frac % 10 == 0) {	/* no trailing zeros, as %g */
			frac /= 10;
			n--;
		}
		for (; n > 0; n--, frac /= 10)
			*--p = (char)('0' + frac % 10);
		*--p = '.';
	}
	p = put_digits(p, u / div);
	if (neg && u)
		*--p = '-';
	return cJSON_CreateRaw(p);
}

cJSON *view_job(const struct store_job *row, const struct sched_live *live,
		int64_t now_ms)
{
	cJSON *j = cJSON_CreateObject();
	cJSON *p;
	int64_t fin = row->succeeded + row->failed + row->cancelled;
	double rate, eta;

	cJSON_AddItemToObject(j, "id", view_int(row->id));
	cJSON_AddItemToObject(j, "name", row->name ? cJSON_CreateString(row->name)
						   : cJSON_CreateNull());
	cJSON_AddStringToObject(j, "handler", row->handler);
	cJSON_AddStringToObject(j, "state", state_name(row->state));
	cJSON_AddBoolToObject(j, "paused", row->paused && !state_final(row->state));
	cJSON_AddItemToObject(j, "priority", view_int(row->priority));
	cJSON_AddItemToObject(j, "timeout_s", view_dec((double)row->timeout_ms / 1000, 3));
	cJSON_AddItemToObject(j, "max_attempts", view_int(row->max_attempts));
	cJSON_AddItemToObject(j, "created_at", view_time(row->created_at));
	cJSON_AddItemToObject(j, "started_at", view_time(row->started_at));
	cJSON_AddItemToObject(j, "finished_at", view_time(row->finished_at));

	p = cJSON_AddObjectToObject(j, "progress");
	cJSON_AddItemToObject(p, "total", view_int(row->total));
	if (live) {
		cJSON_AddItemToObject(p, "queued", view_int(live->queued));
		cJSON_AddItemToObject(p, "running", view_int(live->running));
		cJSON_AddItemToObject(p, "running_progress", view_dec(live->running_progress, 4));
		rate = live->rate;
		eta = live->eta_s;
	} else {
		cJSON_AddItemToObject(p, "queued", view_int(row->total - fin));
		cJSON_AddItemToObject(p, "running", view_int(0));
		cJSON_AddItemToObject(p, "running_progress", view_int(0));
		/* A finished job's rate is its average over its life. */
		int64_t ms = row->finished_at - row->started_at;

		rate = ms > 0 && state_final(row->state) ?
			(double)(row->succeeded + row->failed) * 1000.0 / (double)ms : 0;
		eta = state_final(row->state) ? 0 : -1;
	}
	cJSON_AddItemToObject(p, "succeeded", view_int(row->succeeded));
	cJSON_AddItemToObject(p, "failed", view_int(row->failed));
	cJSON_AddItemToObject(p, "cancelled", view_int(row->cancelled));
	cJSON_AddItemToObject(p, "fraction", view_dec(row->total ? (double)fin /
						       (double)row->total : 0, 4));
	cJSON_AddItemToObject(p, "rate", view_dec(rate, 3));
	cJSON_AddItemToObject(p, "eta_s", eta >= 0 ? view_dec(eta, 3) : cJSON_CreateNull());
	(void)now_ms;
	return j;
}

cJSON *view_job_by_id(struct app *app, int64_t id, int64_t now_ms, int *err)
{
	struct sched_live live;
	struct store_job row;
	cJSON *j;
	int rc;

	*err = 0;
	if (sched_live(app->sched, id, now_ms, &live))
		return view_job(live.row, &live, now_ms);
	rc = store_job_get(app->store, id, &row);
	if (rc) {
		*err = rc < 0 ? -1 : 0;
		return NULL;
	}
	j = view_job(&row, NULL, now_ms);
	store_job_release(&row);
	return j;
}

/* JSON text from the database, served as it is. A result stored by an
 * older batchd is as its program printed it: over several lines, perhaps,
 * or with a raw tab in a string. Made compact and strict here, so that
 * every answer, and every line of an export, is one JSON value. */
static cJSON *view_stored(const char *text)
{
	struct buf b = BUF_INIT;
	const char *p = text;
	cJSON *o;

	while (*p && (unsigned char)*p >= ' ')
		p++;
	if (!*p)
		return cJSON_CreateRaw(text);
	p = text;
	o = json_copy(&b, &p, text + strlen(text)) == 0 ? cJSON_CreateRaw(b.data)
							: cJSON_CreateString(text);
	buf_release(&b);
	return o;
}

cJSON *view_task(struct app *app, const struct store_task *t, int parts)
{
	cJSON *o = cJSON_CreateObject();
	double progress = t->progress;
	const char *message = t->message;

	if (t->state == ST_RUNNING)
		sched_task_live(app->sched, t->job_id, t->idx, &progress, &message);
	cJSON_AddItemToObject(o, "index", view_int(t->idx));
	cJSON_AddStringToObject(o, "state", state_name(t->state));
	cJSON_AddItemToObject(o, "attempts", view_int(t->attempts));
	cJSON_AddItemToObject(o, "progress", number_or_null(progress));
	cJSON_AddItemToObject(o, "message", message ? cJSON_CreateString(message)
						   : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "worker", t->worker ? view_int(t->worker)
						   : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "started_at", view_time(t->started_at));
	cJSON_AddItemToObject(o, "finished_at", view_time(t->finished_at));
	if (t->state == ST_QUEUED && t->not_before)
		cJSON_AddItemToObject(o, "retry_at", view_time(t->not_before));
	/* Results are stored as JSON text checked by the worker. */
	if (parts & VIEW_TASK_RESULT)
		cJSON_AddItemToObject(o, "result", t->result ? view_stored(t->result)
							 : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "error", t->error ? cJSON_CreateString(t->error)
						: cJSON_CreateNull());
	if ((parts & VIEW_TASK_INPUT) && t->input)
		cJSON_AddItemToObject(o, "input", cJSON_CreateRaw(t->input));
	return o;
}

cJSON *view_workers(struct app *app)
{
	cJSON *arr = cJSON_CreateArray();
	int n = pool_size(app->pool);

	for (int i = 0; i < n; i++) {
		const struct pool_info *pi = pool_info(app->pool, i);
		cJSON *w = cJSON_CreateObject();
		cJSON *hs;
		int64_t job, idx;
		double progress;
		int busy = sched_current(app->sched, i, &job, &idx, &progress);
		const char *state;

		if (!pi->id)
			state = "restarting";
		else if (!pi->ready)
			state = "starting";
		else
			state = busy ? "busy" : "idle";
		cJSON_AddNumberToObject(w, "slot", i);
		cJSON_AddItemToObject(w, "id", pi->id ? cJSON_CreateNumber(pi->id) : cJSON_CreateNull());
		cJSON_AddItemToObject(w, "pid", pi->pid ? cJSON_CreateNumber(pi->pid) : cJSON_CreateNull());
		cJSON_AddStringToObject(w, "state", state);
		cJSON_AddItemToObject(w, "job", busy ? cJSON_CreateNumber((double)job) : cJSON_CreateNull());
		cJSON_AddItemToObject(w, "task", busy ? cJSON_CreateNumber((double)idx) : cJSON_CreateNull());
		cJSON_AddItemToObject(w, "progress", busy ? number_or_null(progress) : cJSON_CreateNull());
		cJSON_AddNumberToObject(w, "tasks_done", (double)pi->tasks_done);
		hs = cJSON_AddArrayToObject(w, "handlers");
		for (int h = 0; pi->id && h < registry_count(app->reg); h++)
			if (pi->handlers[h] == 1)
				cJSON_AddItemToArray(hs, cJSON_CreateString(registry_get(app->reg, h)->name));
		cJSON_AddItemToObject(w, "started_at", view_time(pi->id ? pi->started_at : 0));
		cJSON_AddItemToArray(arr, w);
	}
	return arr;
}
