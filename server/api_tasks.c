/*
 * api_tasks: the tasks of a job.
 *
 *   GET /api/jobs/{id}/tasks          {"tasks": [...], "total": N} in index
 *                                     order (?state= ?offset= ?limit=)
 *   GET /api/jobs/{id}/tasks/{index}  one task, with its input
 *   GET /api/jobs/{id}/results        every task (?state= ?input=), a JSON
 *                                     line each, in index order, streamed
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "http.h"
#include "views.h"

#define TASKS_DEFAULT 100
#define TASKS_MAX 1000
/* Rows an export reads from the store at a time, between which the loop
 * goes on with its other work. */
#define EXPORT_BATCH 500

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
	int parts;		/* VIEW_TASK_* */
};

static int add_task(void *ctx, const struct store_task *t)
{
	struct tasks_ctx *c = ctx;

	cJSON_AddItemToArray(c->arr, view_task(c->app, t, c->parts));
	return 0;
}

/* The ?name= switch: true or false (or 1 or 0), else def; -2 (replied
 * 400) for anything else. */
static int bool_arg(struct request *q, struct reply *r, const char *name, int def)
{
	const char *v = req_arg(q, name);

	if (!v)
		return def;
	if (!strcmp(v, "true") || !strcmp(v, "1"))
		return 1;
	if (!strcmp(v, "false") || !strcmp(v, "0"))
		return 0;
	reply_error(r, 400, "invalid_request", "%s must be true or false", name);
	return -2;
}

/* The ?state= filter: -1 for none, a state, or -2 (replied 400). */
static int state_arg(struct request *q, struct reply *r)
{
	const char *st = req_arg(q, "state");
	int state = st ? state_parse(st) : -1;

	if (st && state < 0) {
		reply_error(r, 400, "invalid_request",
			    "state must be queued, running, succeeded, failed or cancelled");
		return -2;
	}
	return state;
}

void api_tasks_list(struct request *q, struct reply *r)
{
	int64_t offset = req_int(q, "offset", INT64_MAX / 2);
	int64_t from = req_int(q, "from", INT64_MAX / 2);
	int64_t limit = req_int(q, "limit", TASKS_MAX);
	struct store_job row;
	struct tasks_ctx c = { q->app, NULL, 0 };
	int64_t running, total;
	int state = state_arg(q, r), result, cols;
	cJSON *doc;

	if (state == -2)
		return;
	/* result=false: a page without the results, which may be large, for a
	 * list that does not show them (the dashboard's). */
	if ((result = bool_arg(q, r, "result", 1)) == -2)
		return;
	c.parts = result ? VIEW_TASK_RESULT : 0;
	if (offset == -2) {
		reply_error(r, 400, "invalid_request", "offset must be a whole number >= 0");
		return;
	}
	if (from == -2) {
		reply_error(r, 400, "invalid_request", "from must be a task index (a whole number >= 0)");
		return;
	}
	if (from >= 0 && offset >= 0) {
		reply_error(r, 400, "invalid_request", "give offset or from, not both");
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
	/* from: the tasks of the filter from that index on, found through
	 * the primary key however deep (offset skips its rows one by one). */
	cols = result ? 0 : STORE_NO_RESULT;
	if ((from >= 0 ? store_tasks_from(q->app->store, q->id, state, from, (int)limit, cols,
					  add_task, &c)
		       : store_tasks_list(q->app->store, q->id, state, offset, (int)limit, cols,
					  add_task, &c)) < 0) {
		cJSON_Delete(doc);
		reply_error(r, 500, "database_error", "database error: %s",
			    store_errmsg(q->app->store));
		return;
	}
	cJSON_AddNumberToObject(doc, "total", (double)(total < 0 ? 0 : total));
	cJSON_AddNumberToObject(doc, from >= 0 ? "from" : "offset", (double)(from >= 0 ? from : offset));
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

	c->task = view_task(c->app, t, VIEW_TASK_INPUT | VIEW_TASK_RESULT);
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

/* ---- the export ---- */

struct export {
	struct app *app;
	int64_t job;
	int64_t next;		/* the index to read from */
	int state;		/* -1: any */
	int with_input;
	int last;		/* the last rows are in out */
	struct buf out;		/* lines not yet sent, from off */
	size_t off;
};

static int add_line(void *ctx, const struct store_task *t)
{
	struct export *x = ctx;
	cJSON *o = view_task(x->app, t, VIEW_TASK_RESULT | (x->with_input ? VIEW_TASK_INPUT : 0));
	char *text = cJSON_PrintUnformatted(o);

	if (!text)
		abort();
	buf_adds(&x->out, text);
	buf_addc(&x->out, '\n');
	free(text);
	cJSON_Delete(o);
	x->next = t->idx + 1;
	return 0;
}

/* Reads the next rows into x->out: 0, or -1 (logged). */
static int export_fill(struct export *x)
{
	struct store_job row;
	int n, rc;

	buf_reset(&x->out);
	x->off = 0;
	n = store_tasks_from(x->app->store, x->job, x->state, x->next, EXPORT_BATCH,
			     x->with_input ? STORE_WITH_INPUT : 0, add_line, x);
	if (n < 0) {
		LOG_ERROR("export cut short: database error", LF_I("job", x->job),
			  LF_S("error", store_errmsg(x->app->store)));
		return -1;
	}
	if (n < EXPORT_BATCH) {
		/* The end, unless the job went meanwhile (deleted): then the
		 * export is cut short, not complete. */
		x->last = 1;
		rc = store_job_get(x->app->store, x->job, &row);
		if (rc < 0 || rc == STORE_NOT_FOUND) {
			LOG_WARN("export cut short: the job is gone", LF_I("job", x->job));
			return -1;
		}
		store_job_release(&row);
	}
	return 0;
}

static ssize_t export_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
	struct export *x = ctx;
	size_t n;

	(void)pos;
	while (x->off == x->out.len) {
		if (x->last)
			return REPLY_STREAM_END;
		if (export_fill(x) < 0)
			return REPLY_STREAM_ERROR;
	}
	n = x->out.len - x->off;
	if (n > max)
		n = max;
	memcpy(buf, x->out.data + x->off, n);
	x->off += n;
	return (ssize_t)n;
}

static void export_done(void *ctx)
{
	struct export *x = ctx;

	buf_release(&x->out);
	free(x);
}

void api_tasks_export(struct request *q, struct reply *r)
{
	struct store_job row;
	struct export *x;
	int64_t running;
	int state = state_arg(q, r), with_input;

	if (state == -2)
		return;
	if ((with_input = bool_arg(q, r, "input", 0)) == -2)
		return;
	if (job_counts(q, r, &row, &running) < 0)
		return;
	x = calloc(1, sizeof(*x));
	if (!x)
		abort();
	x->app = q->app;
	x->job = q->id;
	x->state = state;
	x->with_input = with_input;
	buf_init(&x->out);
	/* The first rows now, so that a database error is still a 500. */
	if (export_fill(x) < 0) {
		export_done(x);
		reply_error(r, 500, "database_error", "database error: %s",
			    store_errmsg(q->app->store));
		return;
	}
	reply_stream(r, 200, "application/x-ndjson", export_read, export_done, x);
}
