/*
 * api_jobs: the jobs resource.
 *
 *   POST   /api/jobs               submit (201 after commit; Idempotency-Key)
 *   GET    /api/jobs               list, newest first (?state= ?limit= ?cursor=)
 *   GET    /api/jobs/{id}
 *   DELETE /api/jobs/{id}          a finished job and its tasks
 *   POST   /api/jobs/{id}/cancel
 *   POST   /api/jobs/{id}/retry    failed and cancelled tasks again
 *   POST   /api/jobs/{id}/pause    no task of it starts until resumed
 *   POST   /api/jobs/{id}/resume
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "http.h"
#include "jobreq.h"
#include "views.h"

#define IDEM_KEY_MAX 200
#define LIST_DEFAULT 50
#define LIST_MAX 1000
/* A request body from this size on is trimmed after (see api_jobs_create). */
#define TRIM_BODY (1u << 20)

static void reply_db_error(struct reply *r, struct app *app)
{
	int code = store_errcode(app->store) & 0xff;

	if (code == SQLITE_FULL)
		reply_error(r, 507, "storage_full",
			    "the database's disk is full; nothing was written");
	else
		reply_error(r, 500, "database_error", "database error: %s",
			    store_errmsg(app->store));
}

static void reply_job(struct request *q, struct reply *r, int status, int64_t id)
{
	int err;
	cJSON *j = view_job_by_id(q->app, id, clock_wall_ms(), &err);

	if (!j) {
		if (err)
			reply_db_error(r, q->app);
		else
			reply_error(r, 404, "not_found", "no job %lld", (long long)id);
		return;
	}
	reply_json(r, status, j);
}

static void set_location(struct reply *r, int64_t id)
{
	char loc[64];

	snprintf(loc, sizeof(loc), "/api/jobs/%lld", (long long)id);
	reply_header(r, "Location", loc);
}

/* Feeds task inputs to the store, each as the client wrote it (compact),
 * through one buffer. */
struct inputs {
	struct jobreq *jr;
	struct buf buf;
};

static void next_input(void *ctx, int64_t idx, const char **text, size_t *len)
{
	struct inputs *in = ctx;

	(void)idx;
	buf_reset(&in->buf);
	jobreq_next_input(in->jr, &in->buf);
	*text = in->buf.data;
	*len = in->buf.len;
}

static int valid_key(const char *k)
{
	size_t n = strlen(k);

	if (!n || n > IDEM_KEY_MAX)
		return 0;
	for (; *k; k++)
		if (*k < 0x21 || *k > 0x7e)
			return 0;
	return 1;
}

/* What a replay is checked against: FNV-1a over the request's bytes,
 * never 0 (0 is "none kept"). A retry sends the same bytes. */
static int64_t request_hash(const char *body, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)body[i];
		h *= 0x100000001b3ULL;
	}
	return h ? (int64_t)h : 1;
}

static void create(struct request *q, struct reply *r)
{
	struct app *app = q->app;
	const char *key = req_header(q, "Idempotency-Key");
	struct jobreq_limits lim = { app->cfg->max_tasks, app->cfg->default_timeout_s };
	struct jobreq jr;
	struct store_job job = { 0 };
	struct inputs in = { NULL, BUF_INIT };
	const char *code;
	char msg[512];
	int status;

	if (app->stopping) {
		reply_error(r, 503, "shutting_down", "the server is shutting down");
		return;
	}
	if (key) {
		int64_t id, was;

		if (!valid_key(key)) {
			reply_error(r, 400, "invalid_request",
				    "Idempotency-Key must be 1 to %d printable ASCII characters",
				    IDEM_KEY_MAX);
			return;
		}
		job.idem_hash = request_hash(q->body, q->body_len);
		id = store_job_by_key(app->store, key, &was);
		if (id && was && was != job.idem_hash) {
			reply_error(r, 422, "idempotency_key_reused",
				    "Idempotency-Key \"%s\" was used for job %lld with another request;"
				    " a retry must send the same request", key, (long long)id);
			return;
		}
		if (id) {
			reply_header(r, "Idempotent-Replayed", "true");
			set_location(r, id);
			reply_job(q, r, 200, id);
			return;
		}
	}
	status = jobreq_parse(&jr, q->body, q->body_len, app->reg, &lim, &code,
			      msg, sizeof(msg));
	if (status) {
		reply_error(r, status, code, "%s", msg);
		return;
	}
	job.name = (char *)jr.name;
	job.handler = (char *)jr.handler;
	job.priority = jr.priority;
	job.timeout_ms = jr.timeout_ms;
	job.max_attempts = jr.max_attempts;
	job.paused = jr.paused;
	job.created_at = clock_wall_ms();
	job.total = jr.ntasks;
	job.idem_key = (char *)key;
	in.jr = &jr;
	/* The job is acknowledged only once it is committed: land what the
	 * scheduler has pending first, then insert in a transaction of its
	 * own. */
	if (sched_flush(app->sched) < 0 ||
	    store_job_insert(app->store, &job, next_input, &in) < 0) {
		LOG_WARN("job refused: database error", LF_S("error", store_errmsg(app->store)));
		reply_db_error(r, app);
		buf_release(&in.buf);
		jobreq_release(&jr);
		return;
	}
	buf_release(&in.buf);
	sched_submitted(app->sched, &job);
	LOG_INFO("job submitted", LF_I("job", job.id), LF_S("handler", job.handler),
		 LF_I("tasks", job.total), LF_I("priority", job.priority),
		 LF_S("paused", job.paused ? "true" : "false"));
	set_location(r, job.id);
	reply_job(q, r, 201, job.id);
	jobreq_release(&jr);
}

void api_jobs_create(struct request *q, struct reply *r)
{
	create(q, r);
	/* A big job's parse tree (a million tasks: ~80 MiB of small nodes)
	 * is freed by now, but glibc keeps freed memory below the top of
	 * the heap for the next malloc; a server that took one big job would
	 * hold it for good. Hand it back to the system. */
	if (q->body_len >= TRIM_BODY)
		malloc_trim(0);
}

struct list_ctx {
	struct app *app;
	cJSON *arr;
	int64_t last;
	int64_t now;
	int limit;		/* jobs to show; the store is asked for one more */
	int shown;
	int more;		/* that one more exists: there is a next page */
};

static int list_one(void *ctx, const struct store_job *row)
{
	struct list_ctx *l = ctx;
	struct sched_live live;

	if (l->shown == l->limit) {
		l->more = 1;
		return 0;
	}
	l->shown++;
	if (sched_live(l->app->sched, row->id, l->now, &live))
		cJSON_AddItemToArray(l->arr, view_job(live.row, &live, l->now));
	else
		cJSON_AddItemToArray(l->arr, view_job(row, NULL, l->now));
	l->last = row->id;
	return 0;
}

void api_jobs_list(struct request *q, struct reply *r)
{
	const char *st = req_arg(q, "state");
	int64_t limit = req_int(q, "limit", LIST_MAX);
	int64_t cursor = req_int(q, "cursor", INT64_MAX);
	int state = -1, n;
	struct list_ctx l = { .app = q->app, .now = clock_wall_ms() };
	cJSON *doc;

	if (st && (state = state_parse(st)) < 0) {
		reply_error(r, 400, "invalid_request",
			    "state must be queued, running, succeeded, failed or cancelled");
		return;
	}
	if (limit == -2 || limit == 0) {
		reply_error(r, 400, "invalid_request", "limit must be a whole number from 1 to %d",
			    LIST_MAX);
		return;
	}
	/* A "next" is a job's id, 2 at least: 0 was taken for no cursor. */
	if (cursor == -2 || cursor == 0) {
		reply_error(r, 400, "invalid_request",
			    "cursor must be the \"next\" value of a previous page");
		return;
	}
	if (limit < 0)
		limit = LIST_DEFAULT;
	l.limit = (int)limit;
	doc = cJSON_CreateObject();
	l.arr = cJSON_AddArrayToObject(doc, "jobs");
	n = store_jobs_list(q->app->store, state, cursor, l.limit + 1,
			    list_one, &l);
	if (n < 0) {
		cJSON_Delete(doc);
		reply_db_error(r, q->app);
		return;
	}
	if (l.more) {
		char next[32];

		snprintf(next, sizeof(next), "%lld", (long long)l.last);
		cJSON_AddStringToObject(doc, "next", next);
	} else {
		cJSON_AddNullToObject(doc, "next");
	}
	reply_json(r, 200, doc);
}

void api_jobs_get(struct request *q, struct reply *r)
{
	reply_job(q, r, 200, q->id);
}

static void reply_sched(struct request *q, struct reply *r, int rc, const char *msg,
			int status_ok)
{
	switch (rc) {
	case SCHED_OK:
		if (status_ok == 204)
			reply_bytes(r, 204, NULL, "", 0);
		else
			reply_job(q, r, 200, q->id);
		return;
	case SCHED_NOT_FOUND:
		reply_error(r, 404, "not_found", "%s", msg);
		return;
	case SCHED_CONFLICT:
		reply_error(r, 409, "conflict", "%s", msg);
		return;
	default:
		reply_db_error(r, q->app);
	}
}

void api_jobs_delete(struct request *q, struct reply *r)
{
	char msg[256];
	int rc = sched_delete(q->app->sched, q->id, msg, sizeof(msg));

	reply_sched(q, r, rc, msg, 204);
}

/* A cancel or a retry is acknowledged only once it is committed: a crash
 * right after the answer must not undo it. When the commit fails, the
 * scheduler has started over from the store, where it never happened. */
static int durable(struct request *q, int rc)
{
	if (rc == SCHED_OK && sched_flush(q->app->sched) < 0)
		return SCHED_ERROR;
	return rc;
}

void api_jobs_cancel(struct request *q, struct reply *r)
{
	char msg[256];
	int rc = sched_cancel(q->app->sched, q->id, msg, sizeof(msg));

	reply_sched(q, r, durable(q, rc), msg, 200);
}

void api_jobs_retry(struct request *q, struct reply *r)
{
	char msg[256];
	int rc;

	if (q->app->stopping) {
		reply_error(r, 503, "shutting_down", "the server is shutting down");
		return;
	}
	rc = sched_retry(q->app->sched, q->id, msg, sizeof(msg));
	reply_sched(q, r, durable(q, rc), msg, 200);
}

/* A pause, like a cancel, is acknowledged once committed: a restart keeps
 * the job paused. */
void api_jobs_pause(struct request *q, struct reply *r)
{
	char msg[256];
	int rc = sched_pause(q->app->sched, q->id, 1, msg, sizeof(msg));

	reply_sched(q, r, durable(q, rc), msg, 200);
}

void api_jobs_resume(struct request *q, struct reply *r)
{
	char msg[256];
	int rc = sched_pause(q->app->sched, q->id, 0, msg, sizeof(msg));

	reply_sched(q, r, durable(q, rc), msg, 200);
}
