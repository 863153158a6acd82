/*
 * Integration tests of what an operator reads: `batchd --version`, and the
 * server's log on stderr in both formats (logfmt, JSON) with --log-level
 * filtering, parsed line by line.
 */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The whole output of a command (free it). */
static char *run(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	size_t len = 0, cap = 4096;
	char *out = malloc(cap);

	assert_non_null(p);
	assert_non_null(out);
	for (;;) {
		size_t n = fread(out + len, 1, cap - len - 1, p);

		if (!n)
			break;
		len += n;
		if (cap - len < 1024) {
			cap *= 2;
			out = realloc(out, cap);
			assert_non_null(out);
		}
	}
	out[len] = '\0';
	*status = pclose(p);
	return out;
}

static void test_version(void **state)
{
	static const char *const libs[] = { "libmicrohttpd ", "cJSON ", "SQLite ", "libcurl ",
					    "glibc ", NULL };
	char cmd[512], first[64];
	char *out, *out2;
	int status;

	(void)state;
	snprintf(cmd, sizeof(cmd), "'%s' --version", batchd_bin());
	out = run(cmd, &status);
	assert_int_equal(status, 0);
	snprintf(first, sizeof(first), "batchd %s\n", BATCHD_VERSION);
	if (strncmp(out, first, strlen(first)))
		fail_msg("--version starts with \"%.40s\", not \"%s\"", out, first);
	for (int i = 0; libs[i]; i++) {
		char *p = strstr(out, libs[i]);

		if (!p || (p != out && p[-1] != '\n'))
			fail_msg("--version does not list %s:\n%s", libs[i], out);
		p += strlen(libs[i]);
		assert_true(*p >= '0' && *p <= '9');	/* a version number follows */
	}
	snprintf(cmd, sizeof(cmd), "'%s' version", batchd_bin());
	out2 = run(cmd, &status);
	assert_int_equal(status, 0);
	assert_string_equal(out, out2);
	free(out);
	free(out2);
}

/* A port that was free a moment ago. */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int healthy(const struct server *s, void *ctx)
{
	struct resp r;
	int ok;

	(void)ctx;
	if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
		((struct server *)s)->pid = 0;
		return 1;
	}
	http_request(s, "GET", "/healthz", NULL, NULL, &r);
	ok = r.status == 200;
	resp_free(&r);
	return ok;
}

/*
 * Starts batchd on a port chosen here rather than by the kernel: the
 * harness reads the port from the "listening" line, which a JSON log
 * writes differently and --log-level warn does not write at all. Tries
 * again if another program took the port in between.
 */
static void start_on_port(struct server *s, const char *const *args)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		const char *argv[32];
		char listen[32];
		int n = 0;

		s->port = free_port();
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
		snprintf(s->url, sizeof(s->url), "http://%s", listen);
		argv[n++] = batchd_bin();
		argv[n++] = "serve";
		argv[n++] = "--listen";
		argv[n++] = listen;
		argv[n++] = "--db";
		argv[n++] = s->db;
		for (int i = 0; args[i] && n < 30; i++)
			argv[n++] = args[i];
		argv[n] = NULL;
		truncate(s->log, 0);
		server_spawn(s, argv);
		if (!wait_until(healthy, s, NULL, 30))
			fail_msg("batchd did not answer /healthz within 30 s");
		if (s->pid)
			return;
		if (!server_log_has(s, "cannot listen")) {
			sh("cat %s >&2", s->log);
			fail_msg("batchd exited during start-up");
		}
	}
	fail_msg("no free port after 5 attempts");
}

/* The log, one string per line (free with free_lines). */
static char **read_lines(const struct server *s, int *n)
{
	FILE *f = fopen(s->log, "r");
	char line[16384];
	char **lines = NULL;

	assert_non_null(f);
	*n = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		lines = realloc(lines, sizeof(*lines) * (size_t)(*n + 1));
		assert_non_null(lines);
		lines[(*n)++] = strdup(line);
	}
	fclose(f);
	return lines;
}

static void free_lines(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

static int level_rank(const char *level)
{
	static const char *const names[] = { "debug", "info", "warn", "error", NULL };

	for (int i = 0; names[i]; i++)
		if (level && !strcmp(level, names[i]))
			return i;
	return -1;
}

/* "2026-11-27T21:37:26.123Z" */
static int is_timestamp(const char *ts)
{
	struct tm tm;
	const char *rest = ts ? strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;

	return rest && rest[0] == '.' && strlen(rest) == 5 && rest[4] == 'Z';
}

/* JSON lines, every event down to debug, the format from the environment
 * and the level from the command line. */
static void test_log_json(void **state)
{
	struct server s;
	char **lines;
	int n, requests = 0, submitted = 0, listening = 0, stopped = 0;
	int64_t id;

	(void)state;
	server_init(&s);
	setenv("BATCHD_LOG_FORMAT", "json", 1);
	start_on_port(&s, (const char *const[]){ "--workers", "1", "--log-level", "debug", NULL });
	unsetenv("BATCHD_LOG_FORMAT");
	id = submit(&s, "{\"handler\": \"echo\", \"tasks\": [\"a \\\"quoted\\\" word\", 2]}");
	cJSON_Delete(wait_job(&s, id, "succeeded", 30));
	/* A path that decodes to a byte that is no UTF-8: logged as U+FFFD,
	 * so that the line is still JSON. */
	{
		struct resp r;

		http_request(&s, "GET", "/x%ff", NULL, NULL, &r);
		assert_int_equal(r.status, 404);
		resp_free(&r);
	}
	assert_int_equal(server_stop(&s), 0);

	lines = read_lines(&s, &n);
	assert_true(n > 3);
	for (int i = 0; i < n; i++) {
		cJSON *j = cJSON_Parse(lines[i]);
		const char *msg;

		if (!j)
			fail_msg("log line %d is not JSON: %s", i + 1, lines[i]);
		if (strchr(lines[i], '\xff'))
			fail_msg("log line %d is not UTF-8: %s", i + 1, lines[i]);
		if (strstr(lines[i], "\"path\":\"/x"))
			assert_non_null(strstr(lines[i], "\"path\":\"/x\xEF\xBF\xBD\""));
		msg = jstr(j, "msg");
		assert_true(is_timestamp(jstr(j, "ts")));
		assert_true(level_rank(jstr(j, "level")) >= 0);
		assert_non_null(msg);
		/* ts, level and msg come first, in that order. */
		assert_true(!strncmp(lines[i], "{\"ts\":", 6));
		assert_non_null(strstr(lines[i], "\",\"level\":\""));
		if (!strcmp(msg, "request")) {
			assert_string_equal(jstr(j, "level"), "debug");
			assert_non_null(jstr(j, "method"));
			assert_non_null(jstr(j, "path"));
			assert_true(jnum(j, "status") >= 200);
			requests++;
		}
		if (!strcmp(msg, "job submitted")) {
			assert_int_equal(jnum(j, "job"), id);
			assert_int_equal(jnum(j, "tasks"), 2);
			assert_string_equal(jstr(j, "handler"), "echo");
			submitted++;
		}
		if (!strcmp(msg, "listening")) {
			char want[48];

			snprintf(want, sizeof(want), "127.0.0.1:%d", s.port);
			assert_string_equal(jstr(j, "addr"), want);
			listening++;
		}
		stopped += !strcmp(msg, "stopped");
		cJSON_Delete(j);
	}
	assert_true(requests >= 2);
	assert_int_equal(submitted, 1);
	assert_int_equal(listening, 1);
	assert_int_equal(stopped, 1);
	free_lines(lines, n);
	server_free(&s);
}

/* Checks that line starts "ts=... level=... msg=" and returns the level. */
static void check_logfmt(const char *line, char level[16])
{
	char ts[64], want[128];

	if (sscanf(line, "ts=%63s level=%15s", ts, level) != 2)
		fail_msg("not a logfmt event line: %s", line);
	assert_true(is_timestamp(ts));
	assert_true(level_rank(level) >= 0);
	snprintf(want, sizeof(want), "ts=%s level=%s msg=", ts, level);
	if (strncmp(line, want, strlen(want)))
		fail_msg("msg does not follow level: %s", line);
}

/* logfmt at warn: info and debug events are filtered out, warnings stay. */
static void test_log_level_warn(void **state)
{
	struct server s;
	char **lines;
	int n, timed_out = 0;
	int64_t id;

	(void)state;
	server_init(&s);
	start_on_port(&s, (const char *const[]){ "--workers", "1", "--log-level", "warn", NULL });
	id = submit(&s, "{\"handler\": \"sleep\", \"timeout_s\": 0.2, \"tasks\": [{\"ms\": 30000}]}");
	cJSON_Delete(wait_job(&s, id, "failed", 30));
	assert_int_equal(server_stop(&s), 0);

	lines = read_lines(&s, &n);
	for (int i = 0; i < n; i++) {
		char level[16];

		check_logfmt(lines[i], level);
		if (level_rank(level) < 2)
			fail_msg("a %s line at --log-level warn: %s", level, lines[i]);
		if (strstr(lines[i], " msg=\"task timed out\" ")) {
			assert_non_null(strstr(lines[i], " job=1 "));
			assert_non_null(strstr(lines[i], " error=\"timed out after 0.2 s"));
			timed_out++;
		}
	}
	assert_int_equal(timed_out, 1);
	free_lines(lines, n);
	server_free(&s);
}

static int logged(const struct server *s, void *text)
{
	return server_log_has(s, text);
}

/* The default: logfmt at info, the example of the README. */
static void test_log_default(void **state)
{
	struct server s;
	char **lines;
	int n, submitted = 0;
	int64_t id;

	(void)state;
	server_init(&s);
	server_start(&s, (const char *const[]){ "--workers", "1", NULL });
	id = submit(&s, "{\"handler\": \"noop\", \"tasks\": [1, 2, 3]}");
	cJSON_Delete(wait_job(&s, id, "succeeded", 30));
	/* SIGHUP, often meant as "reload": said to be ignored, and the server
	 * goes on serving. */
	kill(s.pid, SIGHUP);
	assert_true(wait_until(logged, &s, "msg=\"SIGHUP ignored: batchd reloads nothing; restart"
			       " it to change its settings\"", 10));
	cJSON_Delete(api(&s, "GET", "/healthz", NULL, 200));
	assert_int_equal(server_stop(&s), 0);

	lines = read_lines(&s, &n);
	for (int i = 0; i < n; i++) {
		char level[16];

		check_logfmt(lines[i], level);
		assert_true(level_rank(level) >= 1);
		submitted += strstr(lines[i], "level=info msg=\"job submitted\" job=1 handler=noop tasks=3 ") != NULL;
	}
	assert_int_equal(submitted, 1);
	assert_non_null(strstr(lines[n - 1], "level=info msg=stopped"));
	free_lines(lines, n);
	server_free(&s);
}

/* `batchd health`: 0 while serving, 3 when nothing answers; without --url
 * it follows BATCHD_LISTEN (as a container's health check does). */
static void test_health_command(void **state)
{
	struct server s;
	char cmd[1024];
	char *out;
	int status, port;

	(void)state;
	server_init(&s);
	server_start(&s, (const char *const[]){ "--workers", "1", "--token", "secret", NULL });
	snprintf(cmd, sizeof(cmd), "BATCHD_URL= BATCHD_LISTEN=0.0.0.0:%d '%s' health", s.port,
		 batchd_bin());
	out = run(cmd, &status);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, ": ok (HTTP 200)"));
	free(out);
	snprintf(cmd, sizeof(cmd), "BATCHD_LISTEN=0.0.0.0:1 '%s' health --json --url %s", batchd_bin(),
		 s.url);
	out = run(cmd, &status);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "\"status\":\"ok\""));
	free(out);
	port = s.port;
	server_stop(&s);
	snprintf(cmd, sizeof(cmd), "BATCHD_URL=http://127.0.0.1:%d '%s' health 2>&1", port,
		 batchd_bin());
	out = run(cmd, &status);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	assert_non_null(strstr(out, "cannot reach the server"));
	free(out);
	server_free(&s);

	/* A bare IPv6 address, as serve takes it, is asked in brackets. */
	server_init(&s);
	if (server_try_start(&s, (const char *const[]){ "--workers", "1", "--listen", "::1:0",
							NULL }, 30) != 0) {
		print_message("no IPv6 loopback here: the bare IPv6 address is not tried\n");
		server_free(&s);
		return;
	}
	for (int i = 0; i < 2; i++) {
		char want[64];

		snprintf(cmd, sizeof(cmd), "BATCHD_URL= BATCHD_LISTEN=%s:%d '%s' health 2>&1",
			 i ? "::" : "::1", s.port, batchd_bin());
		out = run(cmd, &status);
		snprintf(want, sizeof(want), "http://[::1]:%d: ok (HTTP 200)", s.port);
		if (status != 0 || !strstr(out, want))
			fail_msg("%s: status %d, %s", cmd, status, out);
		free(out);
	}
	server_free(&s);
}

/* A wrong level or format is refused at start-up with a clear message. */
static void test_log_options_refused(void **state)
{
	struct server s;

	(void)state;
	server_init(&s);
	assert_int_not_equal(server_try_start(&s, (const char *const[]){ "--log-level", "loud", NULL }, 30), 0);
	assert_true(server_log_has(&s, "--log-level: expected debug, info, warn or error"));
	truncate(s.log, 0);
	assert_int_not_equal(server_try_start(&s, (const char *const[]){ "--log-format", "xml", NULL }, 30), 0);
	assert_true(server_log_has(&s, "--log-format: expected logfmt or json"));
	/* Why it cannot start, once the format is known: in that format, so
	 * that a log shipper reads it like any other line. */
	truncate(s.log, 0);
	assert_int_not_equal(server_try_start(&s, (const char *const[]){ "--log-format", "json",
							"--db", "/nonexistent/dir/b.db", NULL }, 30), 0);
	{
		char **lines;
		int n;
		cJSON *j;

		lines = read_lines(&s, &n);
		assert_int_equal(n, 1);
		j = cJSON_Parse(lines[0]);
		if (!j)
			fail_msg("not a JSON line: %s", lines[0]);
		assert_true(is_timestamp(jstr(j, "ts")));
		assert_string_equal(jstr(j, "level"), "error");
		assert_string_equal(jstr(j, "msg"), "cannot start");
		assert_string_equal(jstr(j, "error"), "cannot open database /nonexistent/dir/b.db:"
				    " directory /nonexistent/dir does not exist");
		cJSON_Delete(j);
		free_lines(lines, n);
	}
	/* In logfmt, the default, it is said for the person at the terminal. */
	truncate(s.log, 0);
	assert_int_not_equal(server_try_start(&s, (const char *const[]){ "--db",
							"/nonexistent/dir/b.db", NULL }, 30), 0);
	assert_true(server_log_has(&s, "batchd serve: cannot open database /nonexistent/dir/b.db"));
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_log_json),
		cmocka_unit_test(test_log_level_warn),
		cmocka_unit_test(test_log_default),
		cmocka_unit_test(test_log_options_refused),
		cmocka_unit_test(test_health_command),
	};

	return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
