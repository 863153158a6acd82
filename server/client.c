/*
 * client: libcurl requests for the CLI. See client.h.
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* Bodies larger than this ask for 100 Continue before they are sent. */
#define EXPECT_FROM (1 << 20)

struct client {
	CURL *curl;
	char *url;
	char *auth;		/* "Authorization: Bearer ..." or NULL */
	char err[CURL_ERROR_SIZE];
};

struct client *client_new(const char *url, const char *token)
{
	struct client *c = calloc(1, sizeof(*c));
	size_t n;

	if (!c)
		abort();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		return NULL;
	}
	c->url = strdup(url);
	n = strlen(c->url);
	while (n && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	if (token && *token) {
		struct buf b = BUF_INIT;

		buf_addf(&b, "Authorization: Bearer %s", token);
		c->auth = buf_detach(&b, NULL);
	}
	return c;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	curl_global_cleanup();
	free(c->url);
	free(c->auth);
	free(c);
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	buf_add(ctx, p, size * n);
	return size * n;
}

/* Sets up the handle for method path (url is the whole URL, to release
 * after the request); the caller adds the body's options and headers. */
static void prepare(struct client *c, const char *method, const char *path, struct buf *url)
{
	buf_addf(url, "%s%s", c->url, path);
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url->data);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->err);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "batchd-cli");
	c->err[0] = '\0';
}

long client_request(struct client *c, const char *method, const char *path,
		    const char *body, size_t len, const char *header,
		    struct buf *out)
{
	struct curl_slist *hdrs = NULL;
	struct buf url = BUF_INIT;
	long status = -1;
	CURLcode rc;

	buf_reset(out);
	prepare(c, method, path, &url);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, out);
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	}
	/* A large body waits for the server's 100 Continue (one round trip),
	 * so that a refusal before it is read (413 too large, 401) is
	 * answered, not a connection reset half way through sending it. A
	 * small one goes at once. */
	hdrs = curl_slist_append(hdrs, body && len > EXPECT_FROM ? "Expect: 100-continue" :
				 "Expect:");
	if (c->auth)
		hdrs = curl_slist_append(hdrs, c->auth);
	if (header)
		hdrs = curl_slist_append(hdrs, header);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(c->curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	else if (!c->err[0])
		snprintf(c->err, sizeof(c->err), "%s", curl_easy_strerror(rc));
	curl_slist_free_all(hdrs);
	buf_release(&url);
	return status;
}

struct sink {
	struct client *c;
	const char *type;	/* the Content-Type a 200 answer must have */
	FILE *out;		/* a 200 answer's body */
	struct buf *other;	/* any other answer's */
	int write_errno;	/* writing to out failed */
	int typed;		/* a 200's Content-Type: 0 not yet seen,
				 * 1 type, -1 another */
};

static size_t on_stream(char *p, size_t size, size_t n, void *ctx)
{
	struct sink *k = ctx;
	long code = 0;

	curl_easy_getinfo(k->c->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code == 200 && !k->typed) {
		const char *ct = NULL;
		size_t tl = strlen(k->type);

		curl_easy_getinfo(k->c->curl, CURLINFO_CONTENT_TYPE, &ct);
		k->typed = !ct || strncasecmp(ct, k->type, tl) || (ct[tl] && ct[tl] != ';') ? -1 : 1;
	}
	if (code != 200 || k->typed < 0) {
		buf_add(k->other, p, size * n);
		return size * n;
	}
	if (fwrite(p, 1, size * n, k->out) != size * n) {
		k->write_errno = errno ? errno : EIO;
		return 0;	/* curl stops with CURLE_WRITE_ERROR */
	}
	return size * n;
}

long client_get_to(struct client *c, const char *path, const char *type, FILE *out,
		   struct buf *other, int *complete)
{
	struct curl_slist *hdrs = NULL;
	struct buf url = BUF_INIT;
	struct sink k = { c, type, out, other, 0, 0 };
	long status = -1;
	CURLcode rc;

	buf_reset(other);
	*complete = 0;
	prepare(c, "GET", path, &url);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &k);
	if (c->auth)
		hdrs = curl_slist_append(hdrs, c->auth);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status == 0)
		status = -1;	/* no answer at all */
	*complete = rc == CURLE_OK;
	if (k.write_errno)
		snprintf(c->err, sizeof(c->err), "cannot write the output: %s",
			 strerror(k.write_errno));
	else if (rc != CURLE_OK && !c->err[0])
		snprintf(c->err, sizeof(c->err), "%s", curl_easy_strerror(rc));
	curl_slist_free_all(hdrs);
	buf_release(&url);
	if (status == 200 && k.typed < 0) {
		const char *ct = NULL;

		curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &ct);
		snprintf(c->err, sizeof(c->err), "Content-Type %s, not %s", ct ? ct : "none", type);
		return CLIENT_NOT_TYPE;
	}
	return status;
}

const char *client_error(const struct client *c)
{
	return c->err;
}

const char *client_url(const struct client *c)
{
	return c->url;
}
