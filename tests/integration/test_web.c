/*
 * Integration tests of what the dashboard stands on: the embedded static
 * files (types, validators, security headers, no way out of web/), the
 * throughput endpoint, and the size of /api/progress at scale.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../lib/buf.h"

#define CSP "default-src 'self'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; " \
	"base-uri 'none'; form-action 'self'"

static int setup(void **state)
{
	const char *args[] = { "--workers", "2", NULL };

	*state = server_new(args);
	return 0;
}

static void expect_header(const struct resp *r, const char *name, const char *want)
{
	char v[512];

	if (!resp_header(r, name, v, sizeof(v)))
		fail_msg("no %s header in:\n%s", name, r->headers);
	if (strcmp(v, want))
		fail_msg("%s: want \"%s\", got \"%s\"", name, want, v);
}

/* Sends one request exactly as written (curl would tidy "..", so a raw
 * socket) and returns the status; the body goes to body. */
static int raw_get(const struct server *s, const char *path, struct buf *body)
{
	struct timeval tv = { 30, 0 };
	struct buf req = BUF_INIT, in = BUF_INIT;
	char chunk[4096];
	int fd = server_connect(s), status = 0;
	ssize_t n;
	char *sep;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	buf_addf(&req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	assert_int_equal(write(fd, req.data, req.len), (ssize_t)req.len);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&in, chunk, (size_t)n);
	close(fd);
	sscanf(in.data, "HTTP/1.1 %d", &status);
	sep = strstr(in.data, "\r\n\r\n");
	buf_reset(body);
	if (sep)
		buf_adds(body, sep + 4);
	buf_release(&req);
	buf_release(&in);
	return status;
}

static void test_index_and_assets(void **state)
{
	struct server *s = *state;
	struct resp r;
	char etag[128], hdr[160];
	const char *h[] = { hdr, NULL };
	static const struct {
		const char *path, *type;
	} files[] = {
		{ "/", "text/html; charset=utf-8" },
		{ "/static/app.js", "text/javascript; charset=utf-8" },
		{ "/static/style.css", "text/css; charset=utf-8" },
		{ "/static/favicon.svg", "image/svg+xml" },
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		http_request(s, "GET", files[i].path, NULL, NULL, &r);
		if (r.status != 200)
			fail_msg("GET %s: %ld %s", files[i].path, r.status, r.body);
		assert_true(r.len > 0);
		expect_header(&r, "Content-Type", files[i].type);
		expect_header(&r, "Content-Security-Policy", CSP);
		expect_header(&r, "X-Content-Type-Options", "nosniff");
		expect_header(&r, "Referrer-Policy", "no-referrer");
		expect_header(&r, "Cache-Control", "no-cache");
		assert_non_null(resp_header(&r, "ETag", etag, sizeof(etag)));
		assert_true(etag[0] == '"');	/* strong */
		resp_free(&r);

		/* The validator: same content, 304 and no body. */
		snprintf(hdr, sizeof(hdr), "If-None-Match: %s", etag);
		http_request(s, "GET", files[i].path, NULL, h, &r);
		assert_int_equal(r.status, 304);
		assert_int_equal(r.len, 0);
		resp_free(&r);
		snprintf(hdr, sizeof(hdr), "If-None-Match: \"other\", W/%s", etag);
		http_request(s, "GET", files[i].path, NULL, h, &r);
		assert_int_equal(r.status, 304);
		resp_free(&r);
		snprintf(hdr, sizeof(hdr), "If-None-Match: \"other\"");
		http_request(s, "GET", files[i].path, NULL, h, &r);
		assert_int_equal(r.status, 200);
		resp_free(&r);
		http_request(s, "HEAD", files[i].path, NULL, NULL, &r);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.len, 0);
		resp_free(&r);
	}

	/* The page has no inline script or style for the CSP to refuse. */
	http_request(s, "GET", "/", NULL, NULL, &r);
	assert_null(strstr(r.body, "<script>"));
	assert_null(strstr(r.body, "<style"));
	assert_null(strstr(r.body, " style="));
	assert_null(strstr(r.body, "onclick="));
	assert_null(strstr(r.body, "onload="));
	assert_null(strstr(r.body, "onsubmit="));
	resp_free(&r);

	http_request(s, "GET", "/static/nothing.js", NULL, NULL, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	http_request(s, "GET", "/static/", NULL, NULL, &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	http_request(s, "POST", "/", "x", NULL, &r);
	assert_int_equal(r.status, 405);
	resp_free(&r);
	http_request(s, "GET", "/index.php", NULL, NULL, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
}

/* The files are compiled into the binary and looked up by name in a
 * table: the static routes never open a file, so no path can reach one
 * outside web/. These requests must all be refused all the same, with
 * nothing of a real file in the answer. */
static void test_no_traversal(void **state)
{
	struct server *s = *state;
	struct buf body = BUF_INIT;
	static const char *const paths[] = {
		"/static/../Makefile",
		"/static/../../../../etc/passwd",
		"/static/%2e%2e/%2e%2e/etc/passwd",
		"/static/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
		"/static/..%2fMakefile",
		"/static/%2fetc%2fpasswd",
		"/static//etc/passwd",
		"/static/.%2e/server/static.c",
		"/static/.hidden",
		"/static/app.js/../../Makefile",
		"/static/..\\..\\Makefile",
		"/../etc/passwd",
		"/%2e%2e/etc/passwd",
		"/static/%252e%252e/Makefile",
		NULL,
	};

	for (int i = 0; paths[i]; i++) {
		int status = raw_get(s, paths[i], &body);

		if (status != 400 && status != 404)
			fail_msg("GET %s: status %d, want 400 or 404", paths[i], status);
		assert_null(strstr(body.data, "root:"));
		assert_null(strstr(body.data, "CFLAGS"));
		assert_null(strstr(body.data, "#include"));
	}
	assert_int_equal(raw_get(s, "/static/app.js", &body), 200);
	/* libmicrohttpd decodes %00 to a NUL that would end the name
	 * (app.js served for "app.js%00.png"): refused instead. */
	assert_int_equal(raw_get(s, "/static/app.js%00.png", &body), 400);
	assert_non_null(strstr(body.data, "%00"));
	buf_release(&body);
}

/* With a token, the page itself loads (it then asks for the token when
 * the API answers 401); the API does not. */
static void test_page_without_token(void **state)
{
	struct server t;
	const char *args[] = { "--workers", "1", "--token", "tok-123", NULL };
	struct resp r;

	(void)state;
	server_init(&t);
	server_start(&t, args);
	http_request(&t, "GET", "/", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	http_request(&t, "GET", "/static/app.js", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	http_request(&t, "GET", "/api/jobs/1/throughput", NULL, NULL, &r);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	server_free(&t);
}

static int64_t sum_counts(const cJSON *doc)
{
	const cJSON *c;
	int64_t n = 0;

	cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "counts"))
		n += (int64_t)c->valuedouble;
	return n;
}

static int job_running_with(const struct server *s, void *ctx)
{
	cJSON *j = api(s, "GET", "/api/jobs/1", NULL, 200);
	int ok = !strcmp(jstr(j, "state"), "running") &&
		 jnum(j, "progress.succeeded") >= *(int *)ctx;

	cJSON_Delete(j);
	return ok;
}

static void test_throughput(void **state)
{
	struct server *s = *state;
	cJSON *j;
	int want = 4;

	/* Four quick tasks, then two that wait until cancelled. */
	submit(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 10}, {\"ms\": 10}, "
		  "{\"ms\": 10}, {\"ms\": 10}, {\"ms\": 60000}, {\"ms\": 60000}]}");
	assert_true(wait_until(job_running_with, s, &want, 60));
	j = api(s, "GET", "/api/jobs/1/throughput", NULL, 200);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "live")));
	assert_string_equal(jstr(j, "state"), "running");
	assert_true(jnum(j, "bucket_s") >= 1);
	assert_int_equal(sum_counts(j), 4);
	assert_non_null(jstr(j, "start"));
	assert_non_null(jstr(j, "end"));
	cJSON_Delete(j);

	cJSON_Delete(api(s, "POST", "/api/jobs/1/cancel", NULL, 200));
	/* Finished: counted from the store, the cancelled tasks left out. */
	j = api(s, "GET", "/api/jobs/1/throughput", NULL, 200);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "live")));
	assert_string_equal(jstr(j, "state"), "cancelled");
	assert_int_equal(sum_counts(j), 4);
	assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "counts")) >= 1);
	assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "counts")) <= 120);
	cJSON_Delete(j);
	/* Asked again: the same answer (from the cache). */
	j = api(s, "GET", "/api/jobs/1/throughput", NULL, 200);
	assert_int_equal(sum_counts(j), 4);
	cJSON_Delete(j);

	submit(s, "{\"handler\": \"fail\", \"tasks\": [{}, {}, {}]}");
	cJSON_Delete(wait_job(s, 2, "failed", 60));
	j = api(s, "GET", "/api/jobs/2/throughput", NULL, 200);
	assert_int_equal(sum_counts(j), 3);
	cJSON_Delete(j);

	cJSON_Delete(api(s, "GET", "/api/jobs/99/throughput", NULL, 404));
}

static int twenty_running(const struct server *s, void *ctx)
{
	cJSON *p = api(s, "GET", "/api/progress", NULL, 200);
	int ok = jnum(p, "totals.jobs.running") == 20 && jnum(p, "totals.workers.busy") == 20;

	(void)ctx;
	cJSON_Delete(p);
	return ok;
}

/* 200 jobs in the database, 20 of them running: one poll of the page
 * stays under 32 KiB. */
static void test_progress_size(void **state)
{
	struct server t;
	const char *args[] = { "--workers", "20", "--grace", "0.5", NULL };
	struct buf body = BUF_INIT;
	struct resp r;
	cJSON *jobs;

	(void)state;
	server_init(&t);
	server_start(&t, args);
	for (int i = 0; i < 180; i++) {
		buf_reset(&body);
		buf_addf(&body, "{\"handler\": \"noop\", \"name\": \"nightly thumbnails, "
			 "bucket photos-eu-west part %03d\", \"tasks\": [", i);
		for (int k = 0; k < 50; k++)
			buf_adds(&body, k ? ", null" : "null");
		buf_adds(&body, "]}");
		submit(&t, body.data);
	}
	cJSON_Delete(wait_job(&t, 180, "succeeded", 120));
	/* 20 jobs of one long task each, one per worker. (No sleep task
	 * ever finishes here, so the scheduler prefetches nothing: with tiny
	 * tasks before the long ones, tasks of other jobs could queue behind
	 * a long one on its worker and those jobs would never start.) */
	for (int i = 0; i < 20; i++) {
		buf_reset(&body);
		buf_addf(&body, "{\"handler\": \"sleep\", \"name\": \"score customer rows "
			 "with model v7, shard %02d of 20\", \"tasks\": [{\"ms\": 600000}]}", i);
		submit(&t, body.data);
	}
	assert_true(wait_until(twenty_running, &t, NULL, 120));
	http_request(&t, "GET", "/api/progress", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	print_message("/api/progress with 200 jobs, 20 running: %zu bytes\n", r.len);
	assert_true(r.len < 32 * 1024);
	jobs = cJSON_GetObjectItem(r.json, "jobs");
	assert_int_equal(cJSON_GetArraySize(jobs), 30);	/* 20 active, 10 recent */
	assert_string_equal(jstr(cJSON_GetArrayItem(jobs, 0), "state"), "running");
	resp_free(&r);
	buf_release(&body);
	server_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_index_and_assets, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_no_traversal, setup, server_teardown),
		cmocka_unit_test(test_page_without_token),
		cmocka_unit_test_setup_teardown(test_throughput, setup, server_teardown),
		cmocka_unit_test(test_progress_size),
	};

	return cmocka_run_group_tests_name("web", tests, NULL, NULL);
}
