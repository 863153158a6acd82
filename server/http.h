/*
 * http: batchd's HTTP side, on libmicrohttpd in external-polling mode.
 *
 * The daemon runs inside the server's event loop (its epoll descriptor is
 * one of the loop's), on the loop's thread, so a request handler may use
 * the store and the scheduler directly. Requests are routed by a table
 * (routes.c) of {method, pattern, handler} rows; each handler fills a
 * struct reply. Bodies are gathered up to --max-body; auth is checked
 * before any /api handler runs.
 */
#ifndef BATCHD_HTTP_H
#define BATCHD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "../db/store.h"
#include "../workers/registry.h"
#include "config.h"
#include "loop.h"
#include "pool.h"
#include "sched.h"

/* What request handlers may use. */
struct app {
	const struct config *cfg;
	struct store *store;
	struct sched *sched;
	struct pool *pool;
	const struct registry *reg;
	int64_t started_at;	/* wall ms */
	int stopping;
	/* The last /api/progress body, reused while nothing changes. */
	char *progress_body;
	size_t progress_len;
	char progress_etag[64];
};

struct request {
	struct app *app;
	struct MHD_Connection *conn;
	const char *method;	/* HEAD is routed as GET */
	const char *path;
	const char *route;	/* the matched pattern, for metrics; NULL: none */
	int64_t id;		/* {id} in the pattern, else 0 */
	int64_t idx;		/* {index} */
	const char *rest;	/* what a trailing * in the pattern matched */
	const char *body;	/* NUL-terminated */
	size_t body_len;
};

#define REPLY_HEADERS 8

/* A body made as it is sent (see reply_stream). */
#define REPLY_STREAM_END (-1)
#define REPLY_STREAM_ERROR (-2)
typedef ssize_t (*reply_read_fn)(void *ctx, uint64_t pos, char *buf, size_t max);

struct reply {
	int status;
	char *body;		/* malloc()ed; NULL for none */
	size_t len;
	reply_read_fn stream;	/* instead of body; then stream_done frees */
	void (*stream_done)(void *ctx);
	void *stream_ctx;
	const char *content_type;
	int nheaders;
	struct {
		const char *name;
		char *value;
	} headers[REPLY_HEADERS];
};

/* Sends doc as the body with status; takes ownership of doc. */
void reply_json(struct reply *r, int status, cJSON *doc);
/* Sends {"error": {"code": code, "message": ...}} with status. */
void reply_error(struct reply *r, int status, const char *code,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Adds a header (value copied). */
void reply_header(struct reply *r, const char *name, const char *value);
/* Sets the body to a copy of data. */
void reply_bytes(struct reply *r, int status, const char *type,
		 const void *data, size_t len);
/*
 * A body too large to hold, made as it is sent (chunked): read(ctx, pos,
 * buf, max) is called on the loop's thread whenever the connection can take
 * more, and fills buf with 1 to max bytes, returning how many; or returns
 * REPLY_STREAM_END after the last, or REPLY_STREAM_ERROR to cut the answer
 * short (the connection closes without the final chunk, so the client
 * sees it incomplete). done(ctx) frees ctx, sent or not.
 */
void reply_stream(struct reply *r, int status, const char *type, reply_read_fn read,
		  void (*done)(void *ctx), void *ctx);

/* A query argument or request header, or NULL. */
const char *req_arg(const struct request *q, const char *key);
const char *req_header(const struct request *q, const char *name);
/* A whole-number query argument from 0 to max: its value, -1 when absent,
 * -2 when malformed or out of range. */
int64_t req_int(const struct request *q, const char *key, int64_t max);
/* Whether an If-None-Match header value (a list of entity tags, or "*")
 * matches etag, by the weak comparison RFC 9110 prescribes for it. */
int http_etag_match(const char *header, const char *etag);

typedef void (*route_fn)(struct request *q, struct reply *r);

struct route {
	const char *method;
	const char *pattern;	/* segments; {id} and {index} take integers;
				 * a final * takes the rest of the path */
	route_fn fn;
};

extern const struct route routes[];
extern const size_t route_count;

struct http;

/* Starts serving on listen_fd (already bound, listening and non-blocking);
 * takes it over. */
struct http *http_new(struct app *app, struct loop *loop, int listen_fd,
		      char *err, size_t errlen);
/* Runs whatever the daemon has to do now. */
void http_run(struct http *h);
/* When the daemon next needs http_run() without an event (monotonic
 * us), or 0. */
int64_t http_deadline(struct http *h, int64_t now_us);
/* Whether a response has more to send right now (an export mid-way, its
 * client keeping up): the loop should come round again without waiting. */
int http_pending(struct http *h);
/* Client connections open now. */
int http_connections(const struct http *h);
/* Requests begun and not yet answered in full (an export being sent). */
int http_requests(const struct http *h);
/* Stops accepting connections (shutdown); open ones are still served. */
void http_quiesce(struct http *h);
void http_free(struct http *h);

/* The API handlers (one file per resource). */
void api_jobs_create(struct request *q, struct reply *r);
void api_jobs_list(struct request *q, struct reply *r);
void api_jobs_get(struct request *q, struct reply *r);
void api_jobs_delete(struct request *q, struct reply *r);
void api_jobs_cancel(struct request *q, struct reply *r);
void api_jobs_retry(struct request *q, struct reply *r);
void api_jobs_pause(struct request *q, struct reply *r);
void api_jobs_resume(struct request *q, struct reply *r);
void api_tasks_list(struct request *q, struct reply *r);
void api_tasks_get(struct request *q, struct reply *r);
void api_tasks_export(struct request *q, struct reply *r);
void api_progress(struct request *q, struct reply *r);
void api_workers(struct request *q, struct reply *r);
void api_handlers(struct request *q, struct reply *r);
void api_healthz(struct request *q, struct reply *r);
void api_metrics(struct request *q, struct reply *r);
void api_openapi(struct request *q, struct reply *r);
void api_jobs_throughput(struct request *q, struct reply *r);
/* The dashboard's files (static.c). */
void static_index(struct request *q, struct reply *r);
void static_get(struct request *q, struct reply *r);

#endif
