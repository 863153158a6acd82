/*
 * Integration tests of GET /api/jobs/{id}/results: every task of a job as a
 * JSON line, in index order, streamed however large the job is, filtered by
 * state, with the inputs on request; and cut short, never complete in
 * appearance, when the job goes while it is read.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../../lib/buf.h"

/* The lines of an export, parsed; fails the test on one that is not a JSON
 * object or lacks its newline. Returns how many; free with free_lines(). */
static int parse_lines(const char *body, size_t len, cJSON ***out)
{
	int n = 0, cap = 0;
	cJSON **v = NULL;

	for (size_t at = 0; at < len;) {
		const char *nl = memchr(body + at, '\n', len - at);
		cJSON *o;

		if (!nl)
			fail_msg("line %d has no newline", n);
		o = cJSON_ParseWithLength(body + at, (size_t)(nl - body) - at);
		if (!cJSON_IsObject(o))
			fail_msg("line %d is not a JSON object: %.*s", n,
				 (int)((size_t)(nl - body) - at), body + at);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(v, sizeof(*v) * (size_t)cap);
			assert_non_null(v);
		}
		v[n++] = o;
		at = (size_t)(nl - body) + 1;
	}
	*out = v;
	return n;
}

static void free_lines(cJSON **v, int n)
{
	for (int i = 0; i < n; i++)
		cJSON_Delete(v[i]);
	free(v);
}

/* GET path, which must answer 200 as JSON lines; returns how many. */
static int export(const struct server *s, const char *path, cJSON ***lines)
{
	struct resp r;
	char type[128];
	int n;

	http_request(s, "GET", path, NULL, NULL, &r);
	if (r.status != 200)
		fail_msg("GET %s: %ld %s", path, r.status, r.body);
	assert_non_null(resp_header(&r, "Content-Type", type, sizeof(type)));
	assert_string_equal(type, "application/x-ndjson");
	n = parse_lines(r.body, r.len, lines);
	resp_free(&r);
	return n;
}

static void expect_error(const struct server *s, const char *method, const char *path,
			 long status, const char *code)
{
	struct resp r;

	http_request(s, method, path, NULL, NULL, &r);
	if (r.status != status || !r.json || strcmp(jstr(r.json, "error.code"), code))
		fail_msg("%s %s: want %ld %s, got %ld %s", method, path, status, code,
			 r.status, r.body);
	resp_free(&r);
}

/* A job of n tasks for handler, submitted: task i is {"i": i}, or with
 * bare set just i. */
static int64_t submit_tasks(const struct server *s, const char *handler, int n, int bare)
{
	struct buf b = BUF_INIT;
	int64_t id;

	buf_addf(&b, "{\"handler\": \"%s\", \"tasks\": [", handler);
	for (int i = 0; i < n; i++)
		buf_addf(&b, bare ? "%s%d" : "%s{\"i\": %d}", i ? "," : "", i);
	buf_adds(&b, "]}");
	id = submit(s, b.data);
	buf_release(&b);
	return id;
}

/* A finished noop job of n tasks on s; its id. */
static int64_t noop_job(const struct server *s, int n)
{
	int64_t id = submit_tasks(s, "noop", n, 1);

	cJSON_Delete(wait_job(s, id, "succeeded", 120));
	return id;
}

/* Every task once, in index order, across the batches the server reads
 * (1,203 tasks: more than two of them), with its state and result; the
 * input when asked; a state filter; tasks not yet finished; errors. */
static void test_export(void **state)
{
	struct server *s = *state;
	cJSON **v;
	int n;
	int64_t id = submit_tasks(s, "echo", 1203, 0), failing, sleeping;

	cJSON_Delete(wait_job(s, id, "succeeded", 60));
	n = export(s, "/api/jobs/1/results", &v);
	assert_int_equal(n, 1203);
	for (int i = 0; i < n; i++) {
		assert_int_equal(jnum(v[i], "index"), i);
		assert_string_equal(jstr(v[i], "state"), "succeeded");
		assert_int_equal(jnum(v[i], "result.i"), i);
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(v[i], "error")));
		assert_null(cJSON_GetObjectItem(v[i], "input"));
	}
	free_lines(v, n);
	n = export(s, "/api/jobs/1/results?input=true", &v);
	assert_int_equal(n, 1203);
	for (int i = 0; i < n; i++)
		assert_int_equal(jnum(v[i], "input.i"), i);
	free_lines(v, n);
	/* No task in that state: an empty body, still 200. */
	assert_int_equal(export(s, "/api/jobs/1/results?state=failed", &v), 0);
	free_lines(v, 0);

	failing = submit(s, "{\"handler\": \"fail\", \"tasks\": [{\"message\": \"no a\"},"
			 " {\"message\": \"no b\"}, {\"message\": \"no c\"}]}");
	cJSON_Delete(wait_job(s, failing, "failed", 60));
	n = export(s, "/api/jobs/2/results?state=failed&input=1", &v);
	assert_int_equal(n, 3);
	assert_string_equal(jstr(v[1], "state"), "failed");
	assert_string_equal(jstr(v[1], "error"), "no b");
	assert_string_equal(jstr(v[2], "input.message"), "no c");
	free_lines(v, n);

	/* A job under way: its tasks as they stand. */
	sleeping = submit(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 60000},"
			  " {\"ms\": 60000}, {\"ms\": 60000}, {\"ms\": 60000}, {\"ms\": 60000}]}");
	cJSON_Delete(wait_job(s, sleeping, "running", 30));
	n = export(s, "/api/jobs/3/results", &v);
	assert_int_equal(n, 5);
	for (int i = 0; i < n; i++) {
		assert_int_equal(jnum(v[i], "index"), i);
		assert_true(!strcmp(jstr(v[i], "state"), "running") ||
			    !strcmp(jstr(v[i], "state"), "queued"));
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(v[i], "result")));
	}
	free_lines(v, n);
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)sleeping));
	n = export(s, "/api/jobs/3/results?state=cancelled", &v);
	assert_int_equal(n, 5);
	free_lines(v, n);

	expect_error(s, "GET", "/api/jobs/99/results", 404, "not_found");
	expect_error(s, "GET", "/api/jobs/1/results?state=done", 400, "invalid_request");
	expect_error(s, "GET", "/api/jobs/1/results?input=yes", 400, "invalid_request");
	expect_error(s, "POST", "/api/jobs/1/results", 405, "method_not_allowed");
}

/* Reads from fd into b until it holds at least want bytes, the peer
 * closes (returns 0) or timeout_s passes (fails the test); 1 otherwise. */
static int read_some(int fd, struct buf *b, size_t want, double timeout_s)
{
	double deadline = now_s() + timeout_s;

	while (b->len < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char chunk[65536];
		ssize_t n;

		if (now_s() >= deadline)
			fail_msg("no answer within %g s (%zu bytes so far)", timeout_s, b->len);
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		buf_add(b, chunk, (size_t)n);
	}
	return 1;
}

/* Asks for job id's results on a connection of its own and reads the
 * head of the answer; the connection. */
static int export_begun(const struct server *s, int64_t id, struct buf *b)
{
	char req[128];
	int fd = server_connect(s);

	snprintf(req, sizeof(req), "GET /api/jobs/%lld/results HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		 (long long)id);
	assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	assert_true(read_some(fd, b, 4096, 60));
	assert_non_null(strstr(b->data, "HTTP/1.1 200"));
	return fd;
}

static int ended_whole(const struct buf *b)
{
	return b->len >= 5 && !memcmp(b->data + b->len - 5, "0\r\n\r\n", 5);
}

static int count_lines(const struct buf *b)
{
	int lines = 0;

	for (size_t i = 1; i < b->len; i++)
		lines += b->data[i] == '\n' && b->data[i - 1] == '}';
	return lines;
}

/* A job deleted while a slow reader is exporting it: the answer ends
 * there and then, without its last chunk (an HTTP client reports it
 * incomplete) rather than looking like the whole job. The export never holds the job's rows
 * in memory: the server writes as the reader reads. */
static void test_export_cut_short(void **state)
{
	struct server *s = *state;
	const int tasks = 100000;
	struct buf b = BUF_INIT;
	int64_t id = noop_job(s, tasks);
	int fd, lines = 0;

	/* About 19 MB of lines: more than the sockets hold, so the server
	 * waits on this reader, which reads the head of the answer only. */
	fd = export_begun(s, id, &b);
	assert_non_null(strstr(b.data, "Transfer-Encoding: chunked"));

	cJSON_Delete(apif(s, "DELETE", 204, NULL, "/api/jobs/%lld", (long long)id));
	/* The end comes when the answer is cut, not when the connection has
	 * been idle for --connection-timeout (600 s here). */
	assert_int_equal(read_some(fd, &b, SIZE_MAX, 60), 0);
	close(fd);
	lines = count_lines(&b);
	print_message("export cut after %d of %d lines (%zu bytes)\n", lines, tasks, b.len);
	assert_true(lines < tasks);
	assert_false(ended_whole(&b));	/* the final chunk never came */
	assert_true(server_log_has(s, "export cut short: the job is gone"));
	buf_release(&b);
}

static int logged_stop(const struct server *s, void *ctx)
{
	(void)ctx;
	return server_log_has(s, "msg=\"shutting down\"");
}

/* A graceful stop lets an answer being sent finish, within the grace
 * period: an export begun before the signal arrives whole, and the server
 * then exits 0. A reader that stops reading is cut off when the grace
 * period ends, not waited for. */
static void test_export_outlives_shutdown(void **state)
{
	const char *args[] = { "--workers", "2", "--grace", "30", NULL };
	const char *brief[] = { "--workers", "2", "--grace", "1", NULL };
	const int tasks = 100000;
	struct server s;
	const char *ping = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	struct buf b = BUF_INIT, other = BUF_INIT;
	int64_t id;
	int fd, idle;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	id = noop_job(&s, tasks);
	fd = export_begun(&s, id, &b);
	kill(s.pid, SIGTERM);
	assert_int_equal(read_some(fd, &b, SIZE_MAX, 60), 0);
	close(fd);
	print_message("after the signal: %d of %d lines, %s\n", count_lines(&b), tasks,
		      ended_whole(&b) ? "whole" : "cut short");
	assert_true(ended_whole(&b));
	assert_int_equal(count_lines(&b), tasks);
	assert_true(pids_gone_within(&s.pid, 1, 60));
	assert_int_equal(server_stop(&s), 0);

	/* The same export, read no further: cut when the second is over.
	 * Meanwhile a kept-alive connection is answered, and told to close. */
	buf_reset(&b);
	server_start(&s, brief);
	idle = server_connect(&s);
	assert_int_equal(send(idle, ping, strlen(ping), MSG_NOSIGNAL), (ssize_t)strlen(ping));
	assert_true(read_some(idle, &other, 1, 60));
	assert_null(strstr(other.data, "Connection: close"));
	fd = export_begun(&s, id, &b);
	kill(s.pid, SIGTERM);
	assert_true(wait_until(logged_stop, &s, NULL, 60));
	buf_reset(&other);
	assert_int_equal(send(idle, ping, strlen(ping), MSG_NOSIGNAL), (ssize_t)strlen(ping));
	assert_int_equal(read_some(idle, &other, SIZE_MAX, 60), 0);	/* and closed */
	close(idle);
	assert_non_null(strstr(other.data, "HTTP/1.1 503"));	/* healthz: stopping */
	assert_non_null(strstr(other.data, "\"status\":\"stopping\""));
	assert_non_null(strstr(other.data, "Connection: close"));
	assert_true(pids_gone_within(&s.pid, 1, 60));
	assert_int_equal(server_stop(&s), 0);
	assert_int_equal(read_some(fd, &b, SIZE_MAX, 60), 0);
	close(fd);
	assert_false(ended_whole(&b));
	assert_true(count_lines(&b) < tasks);
	assert_true(server_log_has(&s, "msg=stopped"));
	buf_release(&b);
	buf_release(&other);
	server_free(&s);
}

/* The text of GET path's answer (200); free() it. */
static char *get_text(const struct server *s, const char *path)
{
	struct resp r;
	char *text;

	http_request(s, "GET", path, NULL, NULL, &r);
	if (r.status != 200)
		fail_msg("GET %s: %ld %s", path, r.status, r.body);
	text = strdup(r.body);
	assert_non_null(text);
	resp_free(&r);
	return text;
}

static void has(const char *text, const char *part)
{
	if (!strstr(text, part))
		fail_msg("want %s in\n%s", part, text);
}

/* A finished job of handler, its tasks written as tasks (JSON text). */
static int64_t finished(const struct server *s, const char *handler, const char *tasks)
{
	struct buf b = BUF_INIT;
	int64_t id;

	buf_addf(&b, "{\"handler\": \"%s\",\n \"tasks\": %s}", handler, tasks);
	id = submit(s, b.data);
	buf_release(&b);
	cJSON_Delete(wait_job(s, id, "succeeded", 60));
	return id;
}

/* Inputs and results come back as they were written, whatever handler
 * wrote them: a number that is no double (9007199254740993), 1.0 and 1E22
 * unchanged; and each a single line, so that an export stays JSON Lines
 * when a program prints its result over several lines. Strings keep their
 * escapes; a raw tab, which strict JSON refuses, comes back escaped. */
static void test_values_as_written(void **state)
{
	static const char pretty[] =
		"#!/bin/sh\ncat >/dev/null\n"
		"printf '\\357\\273\\277{\\n  \"id\": 9007199254740993,\\n  \"f\": 1.0,\\n"
		"  \"s\": \"a\\tb\"\\n}\\n'\n";
	/* Output that reads as JSON batchd cannot keep as it is. */
	static const char odd[] =
		"#!/bin/sh\nread x\n"
		"case $x in 1) printf '[1, 1e999]' ;; 2) printf '{\"a\": \"x\\000y\"}' ;;\n"
		"3) printf '\"\\\\uzzzz\"' ;; 4) printf '[\"a\\\\u0000b\"]' ;; esac\n";
	struct server s;
	struct buf b = BUF_INIT;
	char hf[400], sh_path[400], cwd[PATH_MAX], path[128];
	const char *args[] = { "--workers", "2", "--handlers", hf, NULL };
	char *text;
	cJSON **v;
	int64_t id;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	server_init(&s);
	write_file(&s, "odd.sh", odd, 0755, sh_path, sizeof(sh_path));
	buf_addf(&b, "{\"handlers\": {\"odd\": {\"argv\": [\"%s\"]},\n", sh_path);
	write_file(&s, "pretty.sh", pretty, 0755, sh_path, sizeof(sh_path));
	buf_addf(&b, " \"pretty\": {\"argv\": [\"%s\"]},\n"
		 " \"co\": {\"argv\": [\"%s/tests/helpers/coproc.py\"], \"mode\": \"persistent\"}}}",
		 sh_path, cwd);
	write_file(&s, "handlers.json", b.data, 0644, hf, sizeof(hf));
	buf_release(&b);
	server_start(&s, args);

	/* The inputs, sent pretty-printed, with a raw tab in a string. */
	id = finished(&s, "echo", "[\n  9007199254740993,\n  1.0, 1E22, -0.0,\n"
		      "  {\"id\" : 12345678901234567890, \"s\": \"a\tb \\u00e9\"}\n]");
	snprintf(path, sizeof(path), "/api/jobs/%lld/results?input=true", (long long)id);
	text = get_text(&s, path);
	assert_int_equal(parse_lines(text, strlen(text), &v), 5);
	free_lines(v, 5);
	has(text, "\"result\":9007199254740993,\"error\":null,\"input\":9007199254740993}\n");
	has(text, "\"result\":1.0,\"error\":null,\"input\":1.0}\n");
	has(text, "\"result\":1E22,\"error\":null,\"input\":1E22}\n");
	has(text, "\"result\":-0.0,\"error\":null,\"input\":-0.0}\n");
	has(text, "\"input\":{\"id\":12345678901234567890,\"s\":\"a\\tb \\u00e9\"}}\n");
	free(text);
	snprintf(path, sizeof(path), "/api/jobs/%lld/tasks/0", (long long)id);
	text = get_text(&s, path);
	has(text, "\"input\":9007199254740993");
	free(text);

	/* A command's result, printed over several lines after a byte order
	 * mark. */
	id = finished(&s, "pretty", "[1, 2]");
	snprintf(path, sizeof(path), "/api/jobs/%lld/results", (long long)id);
	text = get_text(&s, path);
	assert_int_equal(parse_lines(text, strlen(text), &v), 2);
	free_lines(v, 2);
	has(text, "\"result\":{\"id\":9007199254740993,\"f\":1.0,\"s\":\"a\\tb\"},\"error\":null}\n");
	free(text);

	/* A number out of range (which many readers refuse), a NUL in a
	 * string, \uzzzz and \u0000 (which cJSON reads as a NUL, cutting the
	 * string short) are no JSON to keep: such output is kept as text,
	 * like any other, its NUL bytes dropped. */
	id = finished(&s, "odd", "[1, 2, 3, 4]");
	snprintf(path, sizeof(path), "/api/jobs/%lld/results", (long long)id);
	text = get_text(&s, path);
	has(text, "\"result\":\"[1, 1e999]\",\"error\":null}\n");
	has(text, "\"result\":\"{\\\"a\\\": \\\"xy\\\"}\",\"error\":null}\n");
	has(text, "\"result\":\"\\\"\\\\uzzzz\\\"\",\"error\":null}\n");
	has(text, "\"result\":\"[\\\"a\\\\u0000b\\\"]\",\"error\":null}\n");
	free(text);

	/* A co-process's result line. */
	id = finished(&s, "co", "[{\"do\": \"print\", \"text\": "
		      "\"{\\\"result\\\": {\\\"id\\\": 9007199254740993, \\\"f\\\": [1.0, 1E22]}}\"}]");
	snprintf(path, sizeof(path), "/api/jobs/%lld/tasks/0", (long long)id);
	text = get_text(&s, path);
	has(text, "\"result\":{\"id\":9007199254740993,\"f\":[1.0,1E22]}");
	free(text);
	server_free(&s);
}

/* A result as an older batchd stored a command's output, over several
 * lines with a raw tab: served compact, so that the export stays JSON
 * Lines. Written into the database while the server is stopped. */
static void test_old_results_served_compact(void **state)
{
	const char *args[] = { "--workers", "1", NULL };
	struct server s;
	sqlite3 *db;
	char *text, *err = NULL;
	cJSON **v;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	cJSON_Delete(wait_job(&s, submit(&s, "{\"handler\": \"echo\", \"tasks\": [1, 2]}"),
			      "succeeded", 60));
	assert_int_equal(server_stop(&s), 0);
	assert_int_equal(sqlite3_open(s.db, &db), SQLITE_OK);
	if (sqlite3_exec(db, "UPDATE tasks SET result = '{\n  \"a\": [1,\t2],\n  \"s\": \"x\ty\"\n}'"
			 " WHERE idx = 0", NULL, NULL, &err) != SQLITE_OK)
		fail_msg("update: %s", err);
	sqlite3_close(db);
	server_start(&s, args);
	text = get_text(&s, "/api/jobs/1/results");
	assert_int_equal(parse_lines(text, strlen(text), &v), 2);
	free_lines(v, 2);
	has(text, "\"result\":{\"a\":[1,2],\"s\":\"x\\ty\"},");
	free(text);
	text = get_text(&s, "/api/jobs/1/tasks/0");
	has(text, "\"result\":{\"a\":[1,2],\"s\":\"x\\ty\"},");
	free(text);
	server_free(&s);
}

static int setup(void **state)
{
	const char *args[] = { "--workers", "2", NULL };

	*state = server_new(args);
	return 0;
}

static int setup_long_idle(void **state)
{
	const char *args[] = { "--workers", "2", "--connection-timeout", "600", NULL };

	*state = server_new(args);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_export, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_export_cut_short, setup_long_idle,
						server_teardown),
		cmocka_unit_test(test_export_outlives_shutdown),
		cmocka_unit_test(test_values_as_written),
		cmocka_unit_test(test_old_results_served_compact),
	};

	return cmocka_run_group_tests_name("results", tests, NULL, NULL);
}
