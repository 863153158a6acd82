/*
 * views: JSON of jobs, tasks and workers. See views.h.
 */
#include "views.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"

cJSON *view_time(int64_t ms)
{
	char ts[25];

	if (!ms)
		return cJSON_CreateNull();
	clock_rfc3339(ms, ts);
	return cJSON_CreateString(ts);
}

static cJSON *number_or_null(double v)
{
	return isfinite(v) && v >= 0 ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* A whole number, printed here: cJSON prints every number with "%1.15g"
 * and reads it back with sscanf, which was most of the time an export of
 * a job's tasks took. The item is for printing only (raw JSON text). */
static cJSON *view_int(int64_t v)
{
	char text[24], *p = text + sizeof(text) - 1;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	*p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return cJSON_CreateRaw(p);
}

/* Rounds to 3 significant decimals, so polls do not carry noise. */
static double round3(double v)
{
	return round(v * 1000) / 1000;
}

cJSON *view_job(const struct store_job *row, const struct sched_live *live,
		int64_t now_ms)
{
	cJSON *j = cJSON_CreateObject();
	cJSON *p;
	int64_t fin = row->succeeded + row->failed + row->cancelled;
	double rate, eta;

	cJSON_AddNumberToObject(j, "id", (double)row->id);
	cJSON_AddItemToObject(j, "name", row->name ? cJSON_CreateString(row->name)
						   : cJSON_CreateNull());
	cJSON_AddStringToObject(j, "handler", row->handler);
	cJSON_AddStringToObject(j, "state", state_name(row->state));
	cJSON_AddBoolToObject(j, "paused", row->paused && !state_final(row->state));
	cJSON_AddNumberToObject(j, "priority", row->priority);
	cJSON_AddNumberToObject(j, "timeout_s", (double)row->timeout_ms / 1000);
	cJSON_AddNumberToObject(j, "max_attempts", row->max_attempts);
	cJSON_AddItemToObject(j, "created_at", view_time(row->created_at));
	cJSON_AddItemToObject(j, "started_at", view_time(row->started_at));
	cJSON_AddItemToObject(j, "finished_at", view_time(row->finished_at));

	p = cJSON_AddObjectToObject(j, "progress");
	cJSON_AddNumberToObject(p, "total", (double)row->total);
	if (live) {
		cJSON_AddNumberToObject(p, "queued", (double)live->queued);
		cJSON_AddNumberToObject(p, "running", (double)live->running);
		cJSON_AddNumberToObject(p, "running_progress",
					round(live->running_progress * 10000) / 10000);
		rate = live->rate;
		eta = live->eta_s;
	} else {
		cJSON_AddNumberToObject(p, "queued", (double)(row->total - fin));
		cJSON_AddNumberToObject(p, "running", 0);
		cJSON_AddNumberToObject(p, "running_progress", 0);
		/* A finished job's rate is its average over its life. */
		int64_t ms = row->finished_at - row->started_at;

		rate = ms > 0 && state_final(row->state) ?
			(double)(row->succeeded + row->failed) * 1000.0 / (double)ms : 0;
		eta = state_final(row->state) ? 0 : -1;
	}
	cJSON_AddNumberToObject(p, "succeeded", (double)row->succeeded);
	cJSON_AddNumberToObject(p, "failed", (double)row->failed);
	cJSON_AddNumberToObject(p, "cancelled", (double)row->cancelled);
	cJSON_AddNumberToObject(p, "fraction",
				row->total ? round((double)fin * 10000.0 / (double)row->total) / 10000 : 0);
	cJSON_AddNumberToObject(p, "rate", round3(rate));
	cJSON_AddItemToObject(p, "eta_s", eta >= 0 ? cJSON_CreateNumber(round3(eta))
						   : cJSON_CreateNull());
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

cJSON *view_task(struct app *app, const struct store_task *t, int with_input)
{
	cJSON *o = cJSON_CreateObject();
	double progress = t->progress;
	const char *message = t->message;

	if (t->state == ST_RUNNING)
		sched_task_live(app->sched, t->job_id, t->idx, &progress, &message);
	cJSON_AddItemToObject(o, "index", view_int(t->idx));
	cJSON_AddStringToObject(o, "state", state_name(t->state));
	cJSON_AddItemToObject(o, "attempts", view_int(t->attempts));
	cJSON_AddItemToObject(o, "progress", progress == 0 || progress == 1 ?
			      view_int((int64_t)progress) : number_or_null(progress));
	cJSON_AddItemToObject(o, "message", message ? cJSON_CreateString(message)
						   : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "worker", t->worker ? view_int(t->worker)
						   : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "started_at", view_time(t->started_at));
	cJSON_AddItemToObject(o, "finished_at", view_time(t->finished_at));
	if (t->state == ST_QUEUED && t->not_before)
		cJSON_AddItemToObject(o, "retry_at", view_time(t->not_before));
	/* Results are stored as JSON text checked by the worker. */
	cJSON_AddItemToObject(o, "result", t->result ? cJSON_CreateRaw(t->result)
						 : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "error", t->error ? cJSON_CreateString(t->error)
						: cJSON_CreateNull());
	if (with_input && t->input)
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
