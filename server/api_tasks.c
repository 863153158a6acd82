/*
 * api_tasks: the tasks of a job.
 *
 *   GET /api/jobs/{id}/tasks          {"tasks": [...], "total": N} in index
 *                                     order (?state= ?offset= ?limit=)
 *   GET /api/jobs/{id}/tasks/{index}  one task, with its input
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "http.h"
#include "views.h"

#define TASKS_DEFAULT 100
#define TASKS_MAX 1000

/* The job's row (live counts when active); 0, or replies and returns -1. */
static int job_counts(struct request *q, struct reply *r, struct store_job *row,
		      int64_t *running)
{
	struct sched_live live;
	int rc;

	*running = 0;
	if (sched_live(q->app->sched, q->id, clock_wall_ms(), &live)) {
		*row = *live.row;
		row->name = row->handler = row->idem_key = NULL;
		*running = live.running;
		return 0;
	}
	rc = store_job_get(q->app->store, q->id, row);
	if (rc == STORE_NOT_FOUND) {
		reply_error(r, 404, "not_found", "no job %lld", (long long)q->id);
		return -1;
	}
	if (rc < 0) {
		reply_error(r, 500, "database_error", "database error: %s",
			    store_errmsg(q->app->store));
		return -1;
	}
	store_job_release(row);
	return 0;
}

struct tasks_ctx {
	struct app *app;
	cJSON *arr;
	int with_input;
};

static int add_task(void *ctx, const struct store_task *t)
{
	struct tasks_ctx *c = ctx;

	cJSON_AddItemToArray(c->arr, view_task(c->app, t, c->with_input));
	return 0;
}

void api_tasks_list(struct request *q, struct reply *r)
{
	const char *st = req_arg(q, "state");
	int64_t offset = req_int(q, "offset", INT64_MAX / 2);
	int64_t limit = req_int(q, "limit", TASKS_MAX);
	struct store_job row;
	struct tasks_ctx c = { q->app, NULL, 0 };
	int64_t running, total;
	int state = -1;
	cJSON *doc;

	if (st && (state = state_parse(st)) < 0) {
		reply_error(r, 400, "invalid_request",
			    "state must be queued, running, succeeded, failed or cancelled");
		return;
	}
	if (offset == -2) {
		reply_error(r, 400, "invalid_request", "offset must be a whole number >= 0");
		return;
	}
	if (limit == -2 || limit == 0) {
		reply_error(r, 400, "invalid_request", "limit must be a whole number from 1 to %d",
			    TASKS_MAX);
		return;
	}
	if (offset < 0)
		offset = 0;
	if (limit < 0)
		limit = TASKS_DEFAULT;
	if (job_counts(q, r, &row, &running) < 0)
		return;
	/* The total comes from the job's counts, never from counting rows. */
	switch (state) {
	case ST_QUEUED:
		total = row.total - row.succeeded - row.failed - row.cancelled - running;
		break;
	case ST_RUNNING:
		total = running;
		break;
	case ST_SUCCEEDED:
		total = row.succeeded;
		break;
	case ST_FAILED:
		total = row.failed;
		break;
	case ST_CANCELLED:
		total = row.cancelled;
		break;
	default:
		total = row.total;
	}
	doc = cJSON_CreateObject();
	c.arr = cJSON_AddArrayToObject(doc, "tasks");
	if (store_tasks_list(q->app->store, q->id, state, offset, (int)limit, 0,
			     add_task, &c) < 0) {
		cJSON_Delete(doc);
		reply_error(r, 500, "database_error", "database error: %s",
			    store_errmsg(q->app->store));
		return;
	}
	cJSON_AddNumberToObject(doc, "total", (double)(total < 0 ? 0 : total));
	cJSON_AddNumberToObject(doc, "offset", (double)offset);
	cJSON_AddNumberToObject(doc, "limit", (double)limit);
	reply_json(r, 200, doc);
}

struct one_ctx {
	struct app *app;
	cJSON *task;
};

static int keep_task(void *ctx, const struct store_task *t)
{
	struct one_ctx *c = ctx;

	c->task = view_task(c->app, t, 1);
	return 1;
}

void api_tasks_get(struct request *q, struct reply *r)
{
	struct one_ctx c = { q->app, NULL };
	struct store_job row;
	int64_t running;
	int rc;

	if (job_counts(q, r, &row, &running) < 0)
		return;
	rc = store_task_get(q->app->store, q->id, q->idx, keep_task, &c);
	if (rc == STORE_NOT_FOUND || (rc == 0 && !c.task)) {
		reply_error(r, 404, "not_found", "job %lld has no task %lld (it has %lld)",
			    (long long)q->id, (long long)q->idx, (long long)row.total);
		return;
	}
	if (rc < 0) {
		cJSON_Delete(c.task);
		reply_error(r, 500, "database_error", "database error: %s",
			    store_errmsg(q->app->store));
		return;
	}
	reply_json(r, 200, c.task);
}
