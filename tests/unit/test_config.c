/*
 * Unit tests of `batchd serve` options (server/config.c): defaults, the
 * environment, the command line winning over it, and one-line errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/log.h"
#include "../../server/config.h"

/* config_parse() of "serve" and the NULL-terminated arguments in ap. */
static int vparse(struct config *c, char *err, size_t len, va_list ap)
{
	char *argv[32] = { "serve" };
	int argc = 1;
	char *a;

	while ((a = va_arg(ap, char *)) && argc < 31)
		argv[argc++] = a;
	return config_parse(c, argc, argv, err, len);
}

static int parse(struct config *c, char *err, size_t len, ...)
{
	va_list ap;
	int rc;

	va_start(ap, len);
	rc = vparse(c, err, len, ap);
	va_end(ap);
	return rc;
}

static void test_defaults(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	unsetenv("BATCHD_LISTEN");
	assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
	assert_string_equal(c.listen, "127.0.0.1:8080");
	assert_string_equal(c.db, "./batchd.db");
	assert_true(c.workers >= 1);
	assert_float_equal(c.grace_s, 10, 0);
	assert_int_equal(c.max_body, 64 << 20);
	assert_null(c.token);
	config_release(&c);
}

static void test_env_then_args(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	setenv("BATCHD_LISTEN", "0.0.0.0:9000", 1);
	setenv("BATCHD_WORKERS", "3", 1);
	setenv("BATCHD_TOKEN", "from-env", 1);
	setenv("BATCHD_MAX_BODY", "1M", 1);
	setenv("BATCHD_LOG_FORMAT", "json", 1);
	assert_int_equal(parse(&c, err, sizeof(err), "--workers", "5", "--grace=2.5", NULL), 0);
	assert_string_equal(c.listen, "0.0.0.0:9000");
	assert_int_equal(c.workers, 5);
	assert_string_equal(c.token, "from-env");
	assert_int_equal(c.max_body, 1 << 20);
	assert_float_equal(c.grace_s, 2.5, 0);
	assert_int_equal(c.log_format, LOG_JSON);
	config_release(&c);
	unsetenv("BATCHD_LISTEN");
	unsetenv("BATCHD_WORKERS");
	unsetenv("BATCHD_TOKEN");
	unsetenv("BATCHD_MAX_BODY");
	unsetenv("BATCHD_LOG_FORMAT");
}

static void bad(const char *want, ...)
{
	struct config c;
	char err[256];
	va_list ap;
	int rc;

	va_start(ap, want);
	rc = vparse(&c, err, sizeof(err), ap);
	va_end(ap);
	assert_int_equal(rc, -1);
	if (!strstr(err, want))
		fail_msg("want \"%s\" in \"%s\"", want, err);
	assert_null(strchr(err, '\n'));
	config_release(&c);
}

static void test_errors(void **state)
{
	(void)state;
	bad("--workers: expected a whole number from 1 to 1024, got \"0\"", "--workers", "0", NULL);
	bad("--workers", "--workers", "two", NULL);
	bad("--listen: expected HOST:PORT", "--listen", "8080", NULL);
	bad("--listen: expected HOST:PORT with a PORT from 0 to 65535, got \"127.0.0.1:99999\"",
	    "--listen", "127.0.0.1:99999", NULL);
	bad("with a PORT from 0 to 65535", "--listen", "0.0.0.0:http", NULL);
	bad("with a PORT from 0 to 65535", "--listen", "127.0.0.1:", NULL);
	bad("with a PORT from 0 to 65535", "--listen", "[::1]:-1", NULL);
	bad("with a PORT from 0 to 65535", "--listen", "[::1]:000080808", NULL);
	bad("--grace", "--grace", "-1", NULL);
	bad("--max-body", "--max-body", "12X", NULL);
	bad("--log-level", "--log-level", "loud", NULL);
	bad("unknown option --frobnicate", "--frobnicate", NULL);
	bad("needs a value", "--db", NULL);
	bad("unexpected argument \"extra\"", "extra", NULL);
	setenv("BATCHD_WORKERS", "lots", 1);
	bad("BATCHD_WORKERS: expected a whole number", NULL);
	unsetenv("BATCHD_WORKERS");
	bad("--max-tasks-per-worker", "--max-tasks-per-worker", "-1", NULL);
	bad("--worker-memory-limit: expected a size of at least 16M", "--worker-memory-limit", "1M", NULL);
	bad("--worker-memory-limit", "--worker-memory-limit", "lots", NULL);
	bad("--cors-origin: expected one origin", "--cors-origin", "*", NULL);
	bad("--cors-origin", "--cors-origin", "https://a.example/path", NULL);
	bad("--cors-origin", "--cors-origin", "ftp://a.example", NULL);
	bad("--keep-finished: expected a duration of at least 1s", "--keep-finished", "500ms", NULL);
	bad("--keep-finished: expected a duration", "--keep-finished", "0.5", NULL);
	bad("--keep-finished", "--keep-finished", "-1d", NULL);
	bad("--keep-finished", "--keep-finished", "forever", NULL);
	setenv("BATCHD_KEEP_FINISHED", "3 days", 1);
	bad("BATCHD_KEEP_FINISHED: expected a duration", NULL);
	unsetenv("BATCHD_KEEP_FINISHED");
	/* Tokens a client could not send, and a token file that holds one. */
	bad("--token: the token holds a control character (at byte 3)", "--token", "abc\tdef", NULL);
	{
		char path[] = "/tmp/batchd-token-XXXXXX";
		int fd = mkstemp(path);
		FILE *f = fdopen(fd, "w");

		assert_non_null(f);
		for (int i = 0; i < 5000; i++)
			fputc('A', f);
		fputc('\n', f);
		fclose(f);
		bad("--token-file /tmp/batchd-token-", "--token-file", path, NULL);
		bad("the token is longer than 4094 bytes", "--token-file", path, NULL);
		unlink(path);
	}
}

/* The command line wins over the environment, so a bad variable that an
 * option overrides is never read: no error for it. */
static void test_args_override_bad_env(void **state)
{
	struct config c;
	char err[256], path[] = "/tmp/batchd-token-XXXXXX";
	int fd;

	(void)state;
	setenv("BATCHD_GRACE", "soon", 1);
	setenv("BATCHD_TOKEN_FILE", "/nonexistent/token", 1);
	assert_int_equal(parse(&c, err, sizeof(err), "--grace", "5", "--token", "x", NULL), 0);
	assert_float_equal(c.grace_s, 5, 0);
	assert_string_equal(c.token, "x");
	config_release(&c);
	/* Not overridden, it is read, and refused. */
	bad("BATCHD_GRACE: expected seconds", "--token", "x", NULL);
	unsetenv("BATCHD_GRACE");
	unsetenv("BATCHD_TOKEN_FILE");
	/* A token file's line, its trailing white space (a tab too) dropped. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret\t \r\n", 11), 11);
	close(fd);
	setenv("BATCHD_TOKEN", "from-env", 1);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", path, NULL), 0);
	assert_string_equal(c.token, "s3cret");
	config_release(&c);
	unsetenv("BATCHD_TOKEN");
	unlink(path);
}

static void test_worker_and_http_options(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
	assert_int_equal(c.max_tasks_per_worker, 0);
	assert_int_equal(c.worker_memory_limit, 0);
	assert_null(c.cors_origin);
	assert_int_equal(c.max_connections, 4096);
	assert_int_equal(c.keep_finished_ms, 0);	/* kept forever */
	config_release(&c);
	setenv("BATCHD_WORKER_MEMORY_LIMIT", "512M", 1);
	assert_int_equal(parse(&c, err, sizeof(err), "--max-tasks-per-worker", "100",
			       "--cors-origin", "https://ops.example.com:8443", NULL), 0);
	assert_int_equal(c.max_tasks_per_worker, 100);
	assert_int_equal(c.worker_memory_limit, 512LL << 20);
	assert_string_equal(c.cors_origin, "https://ops.example.com:8443");
	config_release(&c);
	unsetenv("BATCHD_WORKER_MEMORY_LIMIT");
	setenv("BATCHD_KEEP_FINISHED", "30d", 1);
	assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
	assert_int_equal(c.keep_finished_ms, 30LL * 86400 * 1000);
	config_release(&c);
	assert_int_equal(parse(&c, err, sizeof(err), "--keep-finished", "0", NULL), 0);
	assert_int_equal(c.keep_finished_ms, 0);
	config_release(&c);
	unsetenv("BATCHD_KEEP_FINISHED");
}

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(config_parse_size("100"), 100);
	assert_int_equal(config_parse_size("64M"), 64 << 20);
	assert_int_equal(config_parse_size("64MiB"), 64 << 20);
	assert_int_equal(config_parse_size("2k"), 2048);
	assert_int_equal(config_parse_size("1G"), 1 << 30);
	assert_int_equal(config_parse_size("1.5K"), 1536);
	assert_int_equal(config_parse_size("-1"), -1);
	assert_int_equal(config_parse_size("x"), -1);
	assert_int_equal(config_parse_size("5T"), -1);
}

static void test_durations(void **state)
{
	(void)state;
	assert_int_equal(config_parse_duration("90"), 90000);
	assert_int_equal(config_parse_duration("90s"), 90000);
	assert_int_equal(config_parse_duration("1.5m"), 90000);
	assert_int_equal(config_parse_duration("12h"), 12LL * 3600000);
	assert_int_equal(config_parse_duration("30d"), 30LL * 86400000);
	assert_int_equal(config_parse_duration("2w"), 14LL * 86400000);
	assert_int_equal(config_parse_duration("0"), 0);
	assert_int_equal(config_parse_duration(""), -1);
	assert_int_equal(config_parse_duration("d"), -1);
	assert_int_equal(config_parse_duration("-5m"), -1);
	assert_int_equal(config_parse_duration("5 m"), -1);
	assert_int_equal(config_parse_duration("5ms"), -1);
	assert_int_equal(config_parse_duration("5y"), -1);
	assert_int_equal(config_parse_duration("inf"), -1);
	assert_int_equal(config_parse_duration("nan"), -1);
	assert_int_equal(config_parse_duration("1e300d"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_env_then_args),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_args_override_bad_env),
		cmocka_unit_test(test_worker_and_http_options),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
