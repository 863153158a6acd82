/*
 * Integration tests of the batchd command line: `serve` refusing bad
 * options, a busy port and an unusable database with one-line errors, and
 * the client commands (submit --wait with its progress bar, status,
 * cancel, retry) against a real server.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../../lib/buf.h"

/* Runs the batchd binary with args through the shell; returns the exit
 * status, with stdout and stderr in out (combined). */
static int run(struct buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int run(struct buf *out, const char *fmt, ...)
{
	char cmd[4096], args[3000], line[4096];
	va_list ap;
	FILE *p;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", batchd_bin(), args);
	buf_reset(out);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		buf_adds(out, line);
	rc = pclose(p);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int lines(const struct buf *b)
{
	int n = 0;

	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\n';
	return n;
}

static void test_serve_refusals(void **state)
{
	struct server s, t;
	struct buf out = BUF_INIT;
	const char *args[] = { "--workers", "1", NULL };
	char listen[64];

	(void)state;
	assert_int_equal(run(&out, "serve --workers zero"), 2);
	assert_non_null(strstr(out.data, "batchd serve: --workers: expected a whole number"));
	assert_int_equal(lines(&out), 1);

	assert_int_equal(run(&out, "serve --db /nonexistent/dir/x.db --listen 127.0.0.1:0"), 1);
	assert_non_null(strstr(out.data, "cannot open database /nonexistent/dir/x.db: directory /nonexistent/dir does not exist"));
	assert_int_equal(lines(&out), 1);

	/* A busy port, and a database held by another batchd. */
	server_init(&s);
	server_start(&s, args);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s.port);
	server_init(&t);
	assert_int_equal(run(&out, "serve --db %s --listen %s", t.db, listen), 1);
	assert_non_null(strstr(out.data, "cannot listen on 127.0.0.1:"));
	assert_non_null(strstr(out.data, "Address already in use"));
	assert_int_equal(lines(&out), 1);
	assert_int_equal(run(&out, "serve --db %s --listen 127.0.0.1:0", s.db), 1);
	assert_non_null(strstr(out.data, "in use by another batchd process"));
	assert_int_equal(lines(&out), 1);
	server_free(&t);
	server_free(&s);

	assert_int_equal(run(&out, "serve --help"), 0);
	assert_non_null(strstr(out.data, "--grace SECONDS"));
	assert_int_equal(run(&out, "bogus"), 2);
	assert_non_null(strstr(out.data, "unknown command \"bogus\""));
	buf_release(&out);
}

static void test_submit_wait_status_cancel(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", NULL };
	struct buf out = BUF_INIT;
	char path[400];
	cJSON *j;

	(void)state;
	server_init(&s);
	server_start(&s, args);

	/* A whole job request, waited on: the bar reaches 100%. */
	write_file(&s, "job.json", "{\"handler\": \"sleep\", \"name\": \"nap\", \"tasks\": "
		   "[{\"ms\": 50}, {\"ms\": 50}, {\"ms\": 50}, {\"ms\": 50}]}", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --wait %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "1\n"));
	assert_non_null(strstr(out.data, "100%|"));
	assert_non_null(strstr(out.data, " 4/4 ["));
	assert_non_null(strstr(out.data, "tasks/s"));
	assert_non_null(strstr(out.data, "job 1 succeeded"));

	/* Tasks only, as JSON Lines from stdin, with --handler: some fail,
	 * so --wait exits 1 and the bar counts the failures. */
	write_file(&s, "tasks.jsonl", "{\"message\": \"a\"}\n\n{\"message\": \"b\"}\n", 0644,
		   path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler fail --wait - < %s", s.url, path), 1);
	assert_non_null(strstr(out.data, "failed=2"));
	assert_non_null(strstr(out.data, "job 2 failed"));

	/* status lists jobs, and shows one with its failed tasks. */
	assert_int_equal(run(&out, "status --url %s", s.url), 0);
	assert_non_null(strstr(out.data, "succeeded"));
	assert_non_null(strstr(out.data, "nap"));
	assert_int_equal(run(&out, "status --url %s 2", s.url), 0);
	assert_non_null(strstr(out.data, "failed tasks (first 5 of 2)"));
	assert_non_null(strstr(out.data, "attempts=1  a"));

	/* cancel and retry. */
	write_file(&s, "long.json", "[{\"ms\": 60000}, {\"ms\": 60000}, {\"ms\": 60000}]", 0644,
		   path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler sleep --name long %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "job 3 submitted: 3 tasks"));
	assert_int_equal(run(&out, "cancel --url %s 3", s.url), 0);
	assert_non_null(strstr(out.data, "job 3 cancelled"));
	j = api(&s, "GET", "/api/jobs/3", NULL, 200);
	assert_string_equal(jstr(j, "state"), "cancelled");
	cJSON_Delete(j);
	assert_int_equal(run(&out, "retry --url %s 2", s.url), 0);
	assert_non_null(strstr(out.data, "job 2 retried"));

	/* Errors: the server's message, and exit statuses. */
	assert_int_equal(run(&out, "submit --url %s --handler nope %s", s.url, path), 2);
	assert_non_null(strstr(out.data, "unknown handler \"nope\""));
	assert_int_equal(run(&out, "cancel --url %s 99", s.url), 1);
	assert_non_null(strstr(out.data, "no job 99 (HTTP 404)"));
	assert_int_equal(run(&out, "status --url http://127.0.0.1:1"), 3);
	assert_non_null(strstr(out.data, "cannot reach the server"));
	assert_int_equal(run(&out, "submit --url %s", s.url), 2);
	assert_int_equal(run(&out, "submit --help"), 0);
	assert_non_null(strstr(out.data, "--wait"));
	buf_release(&out);
	server_free(&s);
}

static void test_token_from_env(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "1", "--token", "tok123", NULL };
	struct buf out = BUF_INIT;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	assert_int_equal(run(&out, "status --url %s", s.url), 1);
	assert_non_null(strstr(out.data, "HTTP 401"));
	assert_int_equal(run(&out, "status --url %s --token tok123", s.url), 0);
	setenv("BATCHD_TOKEN", "tok123", 1);
	setenv("BATCHD_URL", s.url, 1);
	assert_int_equal(run(&out, "status"), 0);
	unsetenv("BATCHD_TOKEN");
	unsetenv("BATCHD_URL");
	buf_release(&out);
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serve_refusals),
		cmocka_unit_test(test_submit_wait_status_cancel),
		cmocka_unit_test(test_token_from_env),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
