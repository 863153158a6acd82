/*
 * http: libmicrohttpd glue, routing, auth and replies. See http.h.
 */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "metrics.h"

struct http {
	struct app *app;
	struct loop *loop;
	struct MHD_Daemon *d;
	int epfd;
	int quiesced;
};

/* Per-request state kept by MHD between calls. */
struct rstate {
	struct buf body;
	int too_large;
	int64_t start_us;
};

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
 * the time taken depends on the lengths only, never on the contents. */
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

		diff |= (unsigned)(unsigned char)(want ^ got);
	}
	return diff == 0;
}

static int is_api(const char *path)
{
	return !strncmp(path, "/api/", 5) || !strcmp(path, "/api");
}

/* With a token set, /api and (unless --metrics-public) /metrics need it. */
static int needs_token(const struct config *cfg, const char *path)
{
	return cfg->token && (is_api(path) ||
			      (!strcmp(path, "/metrics") && !cfg->metrics_public));
}

static void route(struct request *q, struct reply *r)
{
	const struct config *cfg = q->app->cfg;
	struct buf allow = BUF_INIT;
	int path_known = 0;

	if (needs_token(cfg, q->path) &&
	    !token_ok(req_header(q, "Authorization"), cfg->token)) {
		reply_error(r, 401, "unauthorized",
			    req_header(q, "Authorization") ?
			    "wrong token" : "this server needs \"Authorization: Bearer <token>\"");
		reply_header(r, "WWW-Authenticate", "Bearer realm=\"batchd\"");
		return;
	}
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

static enum MHD_Result send_reply(struct MHD_Connection *c, struct reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (r->body) {
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct rstate *rs = *con_cls;
	struct request q = { .app = h->app, .conn = c, .path = url };
	struct reply r = { 0 };
	enum MHD_Result ret;

	(void)version;
	q.method = !strcmp(method, "HEAD") ? "GET" : method;
	if (!rs) {
		const char *cl;

		rs = calloc(1, sizeof(*rs));
		if (!rs)
			return MHD_NO;
		buf_init(&rs->body);
		rs->start_us = clock_mono_us();
		*con_cls = rs;
		/* Refuse an oversized body before reading any of it (but
		 * an unauthorized client learns nothing of the limits). */
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoll(cl, NULL, 10) > h->app->cfg->max_body &&
		    (!needs_token(h->app->cfg, url) ||
		     token_ok(req_header(&q, "Authorization"), h->app->cfg->token))) {
			reply_error(&r, 413, "too_large",
				    "the body is %s bytes; this server takes at most %lld (--max-body)",
				    cl, (long long)h->app->cfg->max_body);
			ret = send_reply(c, &r);
			log_request(&q, r.status, rs->start_us);
			reply_release(&r);
			return ret;
		}
		return MHD_YES;
	}
	if (*upload_size) {
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
		reply_error(&r, 413, "too_large",
			    "the body is larger than this server takes (%lld bytes, --max-body)",
			    (long long)h->app->cfg->max_body);
	} else {
		q.body = rs->body.data;
		q.body_len = rs->body.len;
		/* Make the store show what memory knows before reading it. */
		sched_sync(h->app->sched);
		route(&q, &r);
	}
	ret = send_reply(c, &r);
	log_request(&q, r.status, rs->start_us);
	reply_release(&r);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct rstate *rs = *con_cls;

	(void)cls, (void)c, (void)toe;
	if (!rs)
		return;
	buf_release(&rs->body);
	free(rs);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;

	(void)cls;
	buf_vaddf(&b, fmt, ap);
	while (b.len && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	LOG_WARN("http", LF_S("detail", b.data));
	buf_release(&b);
}

static void on_ready(void *ctx, int fd, uint32_t events)
{
	struct http *h = ctx;

	(void)fd, (void)events;
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
	h->d = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, h,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
		MHD_OPTION_LISTEN_SOCKET, listen_fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)app->cfg->max_connections,
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
	return h;
}

void http_run(struct http *h)
{
	MHD_run(h->d);
}

int64_t http_deadline(struct http *h, int64_t now_us)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(h->d, &ms) != MHD_YES)
		return 0;
	return now_us + (int64_t)ms * 1000;
}

void http_quiesce(struct http *h)
{
	MHD_socket fd;

	if (h->quiesced)
		return;
	fd = MHD_quiesce_daemon(h->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	h->quiesced = 1;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	loop_del(h->loop, h->epfd);
	MHD_stop_daemon(h->d);
	free(h);
}
