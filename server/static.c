/*
 * static: serving the embedded dashboard. See static.h.
 */
#include "static.h"

#include <string.h>

#include "http.h"

int static_name_ok(const char *name)
{
	int seg_start = 1;

	if (!*name)
		return 0;
	for (const char *c = name; *c; c++) {
		if (*c == '/') {
			if (seg_start)
				return 0;	/* empty segment, or a leading '/' */
			seg_start = 1;
			continue;
		}
		if (seg_start && *c == '.')
			return 0;		/* "..", ".hidden" */
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return 0;
		seg_start = 0;
	}
	return !seg_start;
}

const struct static_file *static_find(const char *name)
{
	for (size_t i = 0; i < static_file_count; i++)
		if (!strcmp(static_files[i].name, name))
			return &static_files[i];
	return NULL;
}

const char *static_type(const char *name)
{
	static const struct {
		const char *ext;
		const char *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".json", "application/json" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".woff2", "font/woff2" },
	};
	const char *dot = strrchr(name, '.');

	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (!strcmp(dot, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

static void serve(struct request *q, struct reply *r, const struct static_file *f)
{
	const char *inm = req_header(q, "If-None-Match");

	reply_header(r, "ETag", f->etag);
	/* Revalidate every time: a new binary may bring new files under the
	 * same names, and a 304 costs next to nothing. */
	reply_header(r, "Cache-Control", "no-cache");
	reply_header(r, "Content-Security-Policy", STATIC_CSP);
	reply_header(r, "Referrer-Policy", "no-referrer");
	reply_header(r, "X-Frame-Options", "DENY");
	reply_header(r, "Cross-Origin-Opener-Policy", "same-origin");
	reply_header(r, "Cross-Origin-Resource-Policy", "same-origin");
	if (inm && http_etag_match(inm, f->etag)) {
		r->status = 304;
		return;
	}
	reply_bytes(r, 200, static_type(f->name), f->data, f->len);
}

void static_index(struct request *q, struct reply *r)
{
	const struct static_file *f = static_find("index.html");

	if (!f) {
		reply_error(r, 404, "not_found", "this batchd was built without its dashboard");
		return;
	}
	serve(q, r, f);
}

void static_get(struct request *q, struct reply *r)
{
	const struct static_file *f;

	/* MHD has already decoded %XX: "%2e%2e%2f" arrives here as "../". */
	if (!static_name_ok(q->rest)) {
		reply_error(r, 400, "bad_path", "not a file name under /static/");
		return;
	}
	f = static_find(q->rest);
	if (!f) {
		reply_error(r, 404, "not_found", "no such file: /static/%s", q->rest);
		return;
	}
	serve(q, r, f);
}
