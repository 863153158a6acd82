/*
 * api_progress: GET /api/progress, the one document a dashboard polls.
 *
 *   {"jobs": [...active, then recently finished...],
 *    "workers": [...], "totals": {...}}
 *
 * Built from memory and the job rows (never by counting tasks), cached while
 * nothing changes, and answered with 304 when the client's If-None-Match
 * holds the current ETag, so an idle dashboard costs next to nothing. The
 * ETag is "p<start>-<version>-<second>": the server's start (wall ms), the
 * scheduler's version, and the second while a job is active (else 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "http.h"
#include "metrics.h"
#include "views.h"

#define ACTIVE_MAX 50
#define RECENT_MAX 10

struct build {
	struct app *app;
	cJSON *jobs;
	int64_t now;
	int n;
	int64_t more;
	int64_t paused;
	double rate;
};

static int add_live(void *ctx, const struct sched_live *live)
{
	struct build *b = ctx;

	b->rate += live->rate;
	b->paused += live->row->paused;
	if (b->n >= ACTIVE_MAX) {
		b->more++;
		return 0;
	}
	cJSON_AddItemToArray(b->jobs, view_job(live->row, live, b->now));
	b->n++;
	return 0;
}

static int add_recent(void *ctx, const struct store_job *row)
{
	struct build *b = ctx;

	cJSON_AddItemToArray(b->jobs, view_job(row, NULL, b->now));
	return 0;
}

static cJSON *counts(const int64_t c[ST_COUNT])
{
	cJSON *o = cJSON_CreateObject();

	for (int i = 0; i < ST_COUNT; i++)
		cJSON_AddNumberToObject(o, state_name(i), (double)c[i]);
	return o;
}

static cJSON *build(struct app *app, int64_t now)
{
	struct build b = { app, NULL, now, 0, 0, 0, 0 };
	cJSON *doc = cJSON_CreateObject();
	cJSON *totals, *w;
	int64_t jobs[ST_COUNT], tasks[ST_COUNT];
	int busy = 0, n = pool_size(app->pool);

	b.jobs = cJSON_AddArrayToObject(doc, "jobs");
	sched_each_live(app->sched, now, add_live, &b);
	if (store_jobs_recent(app->store, RECENT_MAX, add_recent, &b) < 0 ||
	    store_job_totals(app->store, jobs, tasks) < 0) {
		cJSON_Delete(doc);
		return NULL;
	}
	cJSON_AddItemToObject(doc, "workers", view_workers(app));
	tasks[ST_RUNNING] = sched_running(app->sched);
	tasks[ST_QUEUED] -= tasks[ST_RUNNING];
	totals = cJSON_AddObjectToObject(doc, "totals");
	cJSON_AddItemToObject(totals, "jobs", counts(jobs));
	cJSON_AddItemToObject(totals, "tasks", counts(tasks));
	for (int i = 0; i < n; i++) {
		int64_t job, idx;
		double p;

		busy += sched_current(app->sched, i, &job, &idx, &p);
	}
	w = cJSON_AddObjectToObject(totals, "workers");
	cJSON_AddNumberToObject(w, "total", n);
	cJSON_AddNumberToObject(w, "busy", busy);
	cJSON_AddNumberToObject(w, "restarts", (double)pool_restarts(app->pool));
	cJSON_AddNumberToObject(w, "crashes", (double)metrics_worker_restarts("crash"));
	cJSON_AddNumberToObject(totals, "rate", (double)((int64_t)(b.rate * 1000)) / 1000);
	cJSON_AddNumberToObject(totals, "active_not_listed", (double)b.more);
	cJSON_AddNumberToObject(totals, "paused_jobs", (double)b.paused);
	cJSON_AddItemToObject(doc, "time", view_time(now));
	return doc;
}

void api_progress(struct request *q, struct reply *r)
{
	struct app *app = q->app;
	int64_t now = clock_wall_ms();
	const char *inm = req_header(q, "If-None-Match");
	char etag[64];
	cJSON *doc;

	/* Rates and ETAs move with time while a job is active: the ETag
	 * changes every second then, and only with events otherwise. The
	 * version starts again at every start, so the ETag begins with the
	 * server's start time: one run's never matches another's, whose
	 * workers and jobs may differ. */
	snprintf(etag, sizeof(etag), "\"p%lld-%llu-%lld\"",
		 (long long)app->started_at,
		 (unsigned long long)sched_version(app->sched),
		 sched_has_live(app->sched) ? (long long)(now / 1000) : 0LL);
	reply_header(r, "ETag", etag);
	reply_header(r, "Cache-Control", "no-cache");
	if (inm && http_etag_match(inm, etag)) {
		r->status = 304;
		return;
	}
	if (!strcmp(app->progress_etag, etag) && app->progress_body) {
		reply_bytes(r, 200, "application/json", app->progress_body, app->progress_len);
		return;
	}
	doc = build(app, now);
	if (!doc) {
		reply_error(r, 500, "database_error", "database error: %s",
			    store_errmsg(app->store));
		return;
	}
	reply_json(r, 200, doc);
	free(app->progress_body);
	app->progress_body = malloc(r->len + 1);
	if (!app->progress_body)
		abort();
	memcpy(app->progress_body, r->body, r->len + 1);
	app->progress_len = r->len;
	snprintf(app->progress_etag, sizeof(app->progress_etag), "%s", etag);
}
