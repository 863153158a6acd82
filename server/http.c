/*
 * http: libmicrohttpd glue, routing, auth and replies. See http.h.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "metrics.h"

/*
 * A client connection, from accept to close. While it waits for a request
 * (from accept, or since its last answer) it is in the waiting list with a
 * deadline: a request must arrive whole within --connection-timeout, however
 * slowly its bytes trickle in (libmicrohttpd's own timeout only notices a
 * connection that sends nothing at all). Every deadline is "then +
 * timeout", so appending keeps the list in deadline order.
 */
struct conn {
	struct conn *prev, *next;
	int fd;
	int waiting;		/* in the waiting list */
	int64_t deadline_us;	/* monotonic */
	int nul_in_uri;		/* the request being read has "%00" in its target */
};

struct http {
	struct app *app;
	struct loop *loop;
	struct MHD_Daemon *d;
	int epfd;
	int listen_fd;		/* ours: we accept, then hand over to MHD */
	int spare_fd;		/* kept to be able to refuse when out of fds */
	int quiesced;
	int64_t timeout_us;
	int nconns;
	int requests;		/* begun and not yet answered in full */
	struct conn *head, *tail;	/* waiting for a request */
	uint64_t refused;
};

/* Per-request state kept by MHD between calls. */
struct rstate {
	struct buf body;
	int too_large;
	int64_t declared;	/* its Content-Length, or 0 */
	int64_t received;	/* the body's bytes so far, kept or dropped */
	int64_t start_us;
};

/* A body refused for its announced size is still read and dropped, up
 * to this much past --max-body, when its client did not ask for 100
 * Continue: most clients (browsers, HTTP libraries) send the whole body
 * before they read, and would see the connection reset instead of the
 * 413. A client that waits for 100 Continue, or a body larger still, is
 * answered at once, its body unread. */
#define DRAIN_MAX ((int64_t)64 << 20)

static void wait_unlink(struct http *h, struct conn *k)
{
	if (!k->waiting)
		return;
	if (k->prev)
		k->prev->next = k->next;
	else
		h->head = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		h->tail = k->prev;
	k->prev = k->next = NULL;
	k->waiting = 0;
}

/* Puts k at the end of the waiting list with a deadline from now. */
static void wait_append(struct http *h, struct conn *k)
{
	wait_unlink(h, k);
	k->deadline_us = clock_mono_us() + h->timeout_us;
	k->prev = h->tail;
	k->next = NULL;
	if (h->tail)
		h->tail->next = k;
	else
		h->head = k;
	h->tail = k;
	k->waiting = 1;
}

/* ---- replies ---- */

void reply_bytes(struct reply *r, int status, const char *type,
		 const void *data, size_t len)
{
	free(r->body);
	r->status = status;
	r->content_type = type;
	r->body = malloc(len + 1);
	if (!r->body)
		abort();
	memcpy(r->body, data, len);
	r->body[len] = '\0';
	r->len = len;
}

void reply_stream(struct reply *r, int status, const char *type, reply_read_fn read,
		  void (*done)(void *ctx), void *ctx)
{
	free(r->body);
	r->body = NULL;
	r->status = status;
	r->content_type = type;
	r->stream = read;
	r->stream_done = done;
	r->stream_ctx = ctx;
}

void reply_json(struct reply *r, int status, cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);

	cJSON_Delete(doc);
	if (!text)
		abort();
	free(r->body);
	r->status = status;
	r->content_type = "application/json";
	r->body = text;
	r->len = strlen(text);
}

void reply_error(struct reply *r, int status, const char *code,
		 const char *fmt, ...)
{
	struct buf msg = BUF_INIT;
	cJSON *doc = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(doc, "error");
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(err, "code", code);
	cJSON_AddStringToObject(err, "message", msg.data);
	buf_release(&msg);
	reply_json(r, status, doc);
}

void reply_header(struct reply *r, const char *name, const char *value)
{
	if (r->nheaders == REPLY_HEADERS)
		return;
	r->headers[r->nheaders].name = name;
	r->headers[r->nheaders].value = strdup(value);
	if (!r->headers[r->nheaders].value)
		abort();
	r->nheaders++;
}

static void reply_release(struct reply *r)
{
	if (r->stream)
		r->stream_done(r->stream_ctx);
	free(r->body);
	for (int i = 0; i < r->nheaders; i++)
		free(r->headers[i].value);
	memset(r, 0, sizeof(*r));
}

const char *req_arg(const struct request *q, const char *key)
{
	return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *req_header(const struct request *q, const char *name)
{
	return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

int64_t req_int(const struct request *q, const char *key, int64_t max)
{
	const char *v = req_arg(q, key);
	char *end;
	long long n;

	if (!v)
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (!*v || *end || errno || n < 0 || n > max)
		return -2;
	return n;
}

int http_etag_match(const char *header, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = header;

	while (p && *p) {
		const char *end;
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return 1;
		if (!strncmp(p, "W/", 2))
			p += 2;
		if (*p != '"')
			return 0;
		end = strchr(p + 1, '"');
		if (!end)
			return 0;
		n = (size_t)(end + 1 - p);
		if (n == elen && !memcmp(p, etag, n))
			return 1;
		p = end + 1;
	}
	return 0;
}

/* ---- routing ---- */

/* Matches path against pattern, filling q->id / q->idx. */
static int match(const char *pattern, const char *path, struct request *q)
{
	for (;;) {
		if (pattern[0] == '*' && !pattern[1]) {
			q->rest = path;
			return 1;
		}
		if (!*pattern || !*path)
			break;
		if (*pattern == '{') {
			const char *close = strchr(pattern, '}');
			int64_t v = 0;
			int digits = 0;

			while (*path >= '0' && *path <= '9') {
				if (v > (INT64_MAX - 9) / 10)
					return 0;
				v = v * 10 + (*path++ - '0');
				digits++;
			}
			if (!digits || (*path && *path != '/'))
				return 0;
			if (!strncmp(pattern, "{id}", 4))
				q->id = v;
			else
				q->idx = v;
			pattern = close + 1;
			continue;
		}
		if (*pattern++ != *path++)
			return 0;
	}
	/* A trailing slash is forgiven. */
	return !*pattern && (!*path || !strcmp(path, "/"));
}

/* Compares the Authorization header with the token in constant time:
 * the time taken depends on the lengths only, never on the contents. The
 * scheme's name is case-insensitive (RFC 9110, 11.1): "bearer" will do. */
static int token_ok(const char *header, const char *token)
{
	static const char prefix[] = "Bearer ";
	size_t hl, tl = strlen(token), i;
	unsigned diff = 0;

	if (!header)
		return 0;
	hl = strlen(header);
	if (hl != sizeof(prefix) - 1 + tl)
		diff = 1;
	for (i = 0; i < sizeof(prefix) - 1 + tl; i++) {
		char want = i < sizeof(prefix) - 1 ? prefix[i] : token[i - (sizeof(prefix) - 1)];
		char got = i < hl ? header[i] : 0;

		if (i < sizeof(prefix) - 1)
			got = (char)tolower((unsigned char)got), want = (char)tolower((unsigned char)want);
		diff |= (unsigned)(unsigned char)(want ^ got);
	}
	return diff == 0;
}

static int is_api(const char *path)
{
	return !strncmp(path, "/api/", 5) || !strcmp(path, "/api");
}

/* With a token set, /api and (unless --metrics-public) /metrics need it. */
/* As the router sees it: a trailing slash is forgiven (match()). */
static int is_metrics(const char *path)
{
	return !strcmp(path, "/metrics") || !strcmp(path, "/metrics/");
}

static int needs_token(const struct config *cfg, const char *path)
{
	return cfg->token && (is_api(path) || (is_metrics(path) && !cfg->metrics_public));
}

/* The request's Origin if it is the one --cors-origin allows, else NULL. */
static const char *cors_allowed(const struct config *cfg, struct MHD_Connection *c)
{
	const char *origin;

	if (!cfg->cors_origin)
		return NULL;
	origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	return origin && !strcmp(origin, cfg->cors_origin) ? origin : NULL;
}

/* A CORS preflight from the allowed origin: answered without a token
 * (browsers never send one with it), and it reveals nothing. */
static int is_preflight(const struct request *q)
{
	return !strcmp(q->method, "OPTIONS") && is_api(q->path) &&
	       cors_allowed(q->app->cfg, q->conn) &&
	       req_header(q, "Access-Control-Request-Method");
}

/* A request that needs the token and lacks it: puts the 401 in r and
 * returns 1. */
static int unauthorized(const struct request *q, struct reply *r)
{
	const struct config *cfg = q->app->cfg;
	const char *auth = req_header(q, "Authorization");

	if (is_preflight(q) || !needs_token(cfg, q->path) || token_ok(auth, cfg->token))
		return 0;
	reply_error(r, 401, "unauthorized", auth ? "wrong token" :
		    "this server needs \"Authorization: Bearer <token>\"");
	reply_header(r, "WWW-Authenticate", "Bearer realm=\"batchd\"");
	return 1;
}

static void route(struct request *q, struct reply *r)
{
	struct buf allow = BUF_INIT;
	int path_known = 0;

	if (is_preflight(q)) {
		reply_bytes(r, 204, NULL, "", 0);
		reply_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE");
		reply_header(r, "Access-Control-Allow-Headers",
			     "Authorization, Content-Type, Idempotency-Key, If-None-Match");
		reply_header(r, "Access-Control-Max-Age", "600");
		return;
	}
	/* A request without the token never comes here: on_request answered
	 * it as soon as its headers were in. */
	for (size_t i = 0; i < route_count; i++) {
		if (!match(routes[i].pattern, q->path, q))
			continue;
		path_known = 1;
		q->route = routes[i].pattern;
		if (!strcmp(routes[i].method, q->method)) {
			buf_release(&allow);
			routes[i].fn(q, r);
			return;
		}
		if (!strstr(allow.data, routes[i].method)) {
			if (allow.len)
				buf_adds(&allow, ", ");
			buf_adds(&allow, routes[i].method);
			if (!strcmp(routes[i].method, "GET"))
				buf_adds(&allow, ", HEAD");
		}
	}
	if (path_known) {
		reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s; use %s",
			    q->method, q->path, allow.data);
		reply_header(r, "Allow", allow.data);
	} else {
		reply_error(r, 404, "not_found", "no such route: %s", q->path);
	}
	buf_release(&allow);
}

/* ---- libmicrohttpd ---- */

/* A streamed body, with the socket it goes out on. */
struct stream {
	reply_read_fn read;
	void (*done)(void *ctx);
	void *ctx;
	int fd;
};

/* When a reader cuts its answer short, libmicrohttpd marks the connection
 * closed but, polling with epoll, frees it and closes the socket only at
 * the socket's next event. A client waiting for the rest sends none, so it
 * would wait until the idle timeout (--connection-timeout) for the end. A
 * shutdown() is that event, and ends the answer for the client now. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	ssize_t n = s->read(s->ctx, pos, buf, max);

	if (n == REPLY_STREAM_ERROR && s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR);
	return n;
}

static void stream_done(void *cls)
{
	struct stream *s = cls;

	s->done(s->ctx);
	free(s);
}

static enum MHD_Result send_reply(const struct http *h, struct MHD_Connection *c,
				  struct reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *origin = cors_allowed(h->app->cfg, c);

	if (r->stream) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct stream *st = malloc(sizeof(*st));

		if (!st)
			abort();
		*st = (struct stream){ r->stream, r->stream_done, r->stream_ctx,
				       ci ? ci->connect_fd : -1 };
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read,
							 st, stream_done);
		if (resp)
			r->stream = NULL;	/* the response frees it */
		else
			free(st);
	} else if (r->body) {
		resp = MHD_create_response_from_buffer_with_free_callback(
			r->len, r->body, free);
		r->body = NULL;
	} else {
		resp = MHD_create_response_from_buffer(0, (void *)"",
						       MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	if (r->content_type)
		MHD_add_response_header(resp, "Content-Type", r->content_type);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	int has_cache = 0;

	for (int i = 0; i < r->nheaders; i++) {
		MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
		has_cache |= !strcasecmp(r->headers[i].name, "Cache-Control");
	}
	if (!has_cache)
		MHD_add_response_header(resp, "Cache-Control", "no-store");
	/* Shutting down: the client's next request is for the next server. */
	if (h->quiesced)
		MHD_add_response_header(resp, "Connection", "close");
	/* No Access-Control-* header unless --cors-origin allows this one
	 * origin; then caches must keep answers apart by Origin. */
	if (h->app->cfg->cors_origin)
		MHD_add_response_header(resp, "Vary", "Origin");
	if (origin) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
		MHD_add_response_header(resp, "Access-Control-Expose-Headers",
					"Location, ETag, Idempotent-Replayed, Retry-After");
	}
	ret = MHD_queue_response(c, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void log_request(const struct request *q, int status, int64_t start_us)
{
	metrics_http_request(q->method, q->route, status);
	if (!log_enabled(LOG_DEBUG))
		return;
	LOG_DEBUG("request", LF_S("method", q->method), LF_S("path", q->path),
		  LF_I("status", status),
		  LF_F("ms", (double)(clock_mono_us() - start_us) / 1000));
}

/* Our record of connection c (set when it started). */
static struct conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* Sends r, logs the request and releases r. */
static enum MHD_Result answer(struct http *h, struct MHD_Connection *c,
			      const struct request *q, struct reply *r,
			      int64_t start_us)
{
	enum MHD_Result ret = send_reply(h, c, r);

	log_request(q, r->status, start_us);
	reply_release(r);
	return ret;
}

static void reply_too_large(struct reply *r, const struct rstate *rs, int64_t max)
{
	if (rs->declared)
		reply_error(r, 413, "too_large",
			    "the body is %lld bytes; this server takes at most %lld (--max-body)",
			    (long long)rs->declared, (long long)max);
	else
		reply_error(r, 413, "too_large",
			    "the body is larger than this server takes (%lld bytes, --max-body)",
			    (long long)max);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct rstate *rs = *con_cls;
	struct request q = { .app = h->app, .conn = c, .path = url };
	struct reply r = { 0 };

	(void)version;
	q.method = !strcmp(method, "HEAD") ? "GET" : method;
	if (!rs) {
		const char *cl;
		struct conn *k = conn_of(c);

		/* The headers are in: from now on the body has the rest of
		 * --connection-timeout. */
		if (k)
			wait_unlink(h, k);
		rs = calloc(1, sizeof(*rs));
		if (!rs)
			return MHD_NO;
		h->requests++;
		buf_init(&rs->body);
		rs->start_us = clock_mono_us();
		*con_cls = rs;
		/* A client without the token is answered now, its body
		 * unread: it learns nothing of what follows (the limits), and
		 * is not left waiting for the end of a body it never sends. */
		if (unauthorized(&q, &r))
			return answer(h, c, &q, &r, rs->start_us);
		/* MHD hands over the target decoded, as a C string: a %00 in
		 * it would cut the path or a parameter short unseen
		 * ("/api/jobs/1%00x" read as job 1). */
		if (k && k->nul_in_uri) {
			reply_error(&r, 400, "invalid_request",
				    "the request target holds an encoded NUL (%%00)");
			return answer(h, c, &q, &r, rs->start_us);
		}
		/* Refuse an oversized body before reading any of it. */
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl && (rs->declared = strtoll(cl, NULL, 10)) > h->app->cfg->max_body) {
			const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
									 "Expect");

			rs->too_large = 1;
			if (!expect && rs->declared - h->app->cfg->max_body <= DRAIN_MAX)
				return MHD_YES;
			reply_too_large(&r, rs, h->app->cfg->max_body);
			return answer(h, c, &q, &r, rs->start_us);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		/* A body that trickles in is cut off at the deadline, not
		 * kept open a byte at a time. MHD cannot answer in the middle
		 * of a body: the connection is closed. */
		if (clock_mono_us() - rs->start_us > h->timeout_us) {
			LOG_WARN("request body too slow: connection closed",
				 LF_S("method", q.method), LF_S("path", url),
				 LF_I("received", (long long)(rs->received + *upload_size)));
			return MHD_NO;
		}
		rs->received += (int64_t)*upload_size;
		if (!rs->too_large) {
			if (rs->body.len + *upload_size > (size_t)h->app->cfg->max_body) {
				rs->too_large = 1;
				buf_release(&rs->body);
			} else {
				buf_add(&rs->body, upload, *upload_size);
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (rs->too_large) {
		reply_too_large(&r, rs, h->app->cfg->max_body);
	} else {
		q.body = rs->body.data;
		q.body_len = rs->body.len;
		/* Make the store show what memory knows before reading it. */
		sched_sync(h->app->sched);
		route(&q, &r);
	}
	return answer(h, c, &q, &r, rs->start_us);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct rstate *rs = *con_cls;
	struct conn *k = conn_of(c);

	(void)toe;
	/* Answered: the connection may wait for its next request. */
	if (k)
		wait_append(h, k);
	if (!rs)
		return;
	h->requests--;
	buf_release(&rs->body);
	free(rs);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = cls;
	struct conn *k = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		k = calloc(1, sizeof(*k));
		if (!k)
			abort();
		k->fd = ci ? ci->connect_fd : -1;
		wait_append(h, k);
		*socket_context = k;
		h->nconns++;
	} else if (k) {
		wait_unlink(h, k);
		free(k);
		*socket_context = NULL;
		h->nconns--;
	}
}

/* Sees each request's target before it is decoded. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct conn *k = conn_of(c);

	(void)cls;
	if (k)
		k->nul_in_uri = strstr(uri, "%00") != NULL;
	return NULL;
}

/* libmicrohttpd's own lines, at most this many a second. */
#define MHD_LOG_PER_S 10

/* What libmicrohttpd says of the requests it turns away itself (a bad
 * HTTP version, a broken Content-Length): a client's mistake, so info, not
 * warn, and at most MHD_LOG_PER_S lines a second, so that nobody can fill
 * the log with them; the next line counts those left out. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static int64_t second;
	static int lines;
	static long long dropped;
	int64_t now = clock_mono_us() / 1000000;
	struct buf b = BUF_INIT;

	(void)cls;
	if (now != second) {
		second = now;
		lines = 0;
	}
	if (++lines > MHD_LOG_PER_S) {
		dropped++;
		return;
	}
	buf_vaddf(&b, fmt, ap);
	while (b.len && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	if (dropped)
		LOG_INFO("http", LF_S("detail", b.data), LF_I("left_out", dropped));
	else
		LOG_INFO("http", LF_S("detail", b.data));
	dropped = 0;
	buf_release(&b);
}

static void on_ready(void *ctx, int fd, uint32_t events)
{
	struct http *h = ctx;

	(void)fd, (void)events;
	MHD_run(h->d);
}

/* Turns a client away at once with a 503 and closes its socket. */
static void refuse(struct http *h, int fd)
{
	char resp[512], body[256], junk[4096];
	int n;

	h->refused++;
	n = snprintf(body, sizeof(body),
		     "{\"error\":{\"code\":\"too_many_connections\",\"message\":"
		     "\"this server has %d connections open, its limit (--max-connections); "
		     "try again later\"}}", h->nconns);
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 503 Service Unavailable\r\n"
		     "Content-Type: application/json\r\nContent-Length: %d\r\n"
		     "Retry-After: 1\r\nConnection: close\r\n\r\n%s", n, body);
	if (send(fd, resp, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		(void)0;	/* it has gone already */
	/* Unread bytes would turn the close into a reset that may reach
	 * the client before the answer: read what has arrived first. */
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
	if (h->refused == 1 || h->refused % 1000 == 0)
		LOG_WARN("connection limit reached: refusing connections",
			 LF_I("limit", h->app->cfg->max_connections),
			 LF_I("refused", (long long)h->refused));
}

/* New connections: ours to accept, so that past --max-connections a client
 * is answered at once instead of waiting in the kernel's backlog. */
static void on_accept(void *ctx, int fd, uint32_t events)
{
	struct http *h = ctx;

	(void)events;
	for (int i = 0; i < 256; i++) {
		struct sockaddr_storage sa;
		socklen_t sl = sizeof(sa);
		int c = accept4(fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0 && errno == EINTR)
			continue;
		if (c < 0 && (errno == EMFILE || errno == ENFILE) && h->spare_fd >= 0) {
			/* Out of descriptors: free the spare one to take the
			 * client and refuse it, rather than leave it waiting. */
			close(h->spare_fd);
			c = accept4(fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);
			if (c >= 0)
				refuse(h, c);
			h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			continue;
		}
		if (c < 0)
			break;	/* EAGAIN, or the client left already */
		if (h->nconns >= h->app->cfg->max_connections) {
			refuse(h, c);
			continue;
		}
		/* MHD owns (and closes) the socket from here, even on error. */
		if (MHD_add_connection(h->d, c, (struct sockaddr *)&sa, sl) != MHD_YES)
			LOG_WARN("cannot take a connection", LF_S("error", strerror(errno)));
	}
	MHD_run(h->d);
}

struct http *http_new(struct app *app, struct loop *loop, int listen_fd,
		      char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	const union MHD_DaemonInfo *info;

	if (!h)
		abort();
	h->app = app;
	h->loop = loop;
	h->listen_fd = -1;
	h->timeout_us = (int64_t)(app->cfg->conn_timeout_s * 1e6);
	/* MHD gets its connections from on_accept; its own limit stays
	 * above ours, unreached. */
	h->d = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET,
		0, NULL, NULL, on_request, h,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)app->cfg->max_connections + 16,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(app->cfg->conn_timeout_s + 0.5),
		MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1,
		MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot start the HTTP server");
		free(h);
		return NULL;
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || loop_add(loop, info->epoll_fd, EPOLLIN, on_ready, h) < 0) {
		snprintf(err, errlen, "cannot watch the HTTP server: %s", strerror(errno));
		MHD_stop_daemon(h->d);
		free(h);
		return NULL;
	}
	h->epfd = info->epoll_fd;
	if (loop_add(loop, listen_fd, EPOLLIN, on_accept, h) < 0) {
		snprintf(err, errlen, "cannot watch the listening socket: %s", strerror(errno));
		loop_del(loop, h->epfd);
		MHD_stop_daemon(h->d);
		free(h);
		return NULL;
	}
	h->listen_fd = listen_fd;
	h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return h;
}

/* Closes the connections whose request did not arrive whole in time. A
 * shutdown() makes MHD see the end of the stream and close it cleanly. */
static void sweep(struct http *h)
{
	int64_t now = clock_mono_us();

	while (h->head && h->head->deadline_us <= now) {
		struct conn *k = h->head;

		wait_unlink(h, k);
		if (k->fd >= 0)
			shutdown(k->fd, SHUT_RDWR);
	}
}

void http_run(struct http *h)
{
	sweep(h);
	MHD_run(h->d);
}

int64_t http_deadline(struct http *h, int64_t now_us)
{
	MHD_UNSIGNED_LONG_LONG ms;
	int64_t at = 0;

	if (MHD_get_timeout(h->d, &ms) == MHD_YES)
		at = now_us + (int64_t)ms * 1000;
	if (h->head && (!at || h->head->deadline_us < at))
		at = h->head->deadline_us;
	return at;
}

int http_pending(struct http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;

	return MHD_get_timeout(h->d, &ms) == MHD_YES && ms == 0;
}

int http_connections(const struct http *h)
{
	return h->nconns;
}

int http_requests(const struct http *h)
{
	return h->requests;
}

void http_quiesce(struct http *h)
{
	if (h->quiesced)
		return;
	if (h->listen_fd >= 0) {
		loop_del(h->loop, h->listen_fd);
		close(h->listen_fd);
		h->listen_fd = -1;
	}
	h->quiesced = 1;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	http_quiesce(h);
	loop_del(h->loop, h->epfd);
	MHD_stop_daemon(h->d);
	if (h->spare_fd >= 0)
		close(h->spare_fd);
	free(h);
}
