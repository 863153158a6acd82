/*
 * static: the dashboard's files (web/), embedded in the binary at build time
 * by tools/embed.c, and the routes that serve them:
 *
 *   GET /               web/index.html
 *   GET /static/NAME    web/NAME
 *
 * Nothing is read from the filesystem: a name is looked up in the table
 * the build generated, so no request can reach a file outside web/. Every
 * reply carries a strong ETag (304 on If-None-Match), its content type and
 * the security headers of the page (a strict Content-Security-Policy:
 * the page has no inline script or style).
 */
#ifndef BATCHD_STATIC_H
#define BATCHD_STATIC_H

#include <stddef.h>

struct static_file {
	const char *name;		/* path below web/, e.g. "app.js" */
	const unsigned char *data;
	size_t len;
	const char *etag;		/* quoted, from the content */
};

/* The table, generated into build/gen/web_assets.c. */
extern const struct static_file static_files[];
extern const size_t static_file_count;

/* The page's Content-Security-Policy. */
#define STATIC_CSP "default-src 'self'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; " \
	"base-uri 'none'; form-action 'self'"

/* Whether name is a well-formed file name: path segments of letters,
 * digits, '.', '_' and '-', none empty, none starting with '.' (so never
 * ".."). */
int static_name_ok(const char *name);
/* The embedded file called name, or NULL. */
const struct static_file *static_find(const char *name);
/* The Content-Type for a file name, by its extension. */
const char *static_type(const char *name);

#endif
