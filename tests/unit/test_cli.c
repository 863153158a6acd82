/*
 * Unit tests of the command line's progress line (server/cli.c): the
 * percent and bar (finished tasks plus what the running ones report, never
 * 100% before the end), the counts, the elapsed time from the API's
 * millisecond times, and the failed and cancelled counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/cli.h"

#define T0 "\"started_at\": \"2026-11-27T10:00:00.900Z\""

static void bar_of(const char *progress, const char *times, char *out, size_t len)
{
	char job[1024];

	snprintf(job, sizeof(job),
		 "{\"id\": 7, \"handler\": \"encode\", %s, \"progress\": {%s}}", times, progress);
	cli_format_bar(job, 10, out, len);
}

static void expect_in(const char *line, const char *part)
{
	if (!strstr(line, part)) {
		print_error("\"%s\" not in \"%s\"\n", part, line);
		fail();
	}
}

/* Four long tasks, none finished, the running ones a quarter and three
 * quarters through: the job is a quarter done. */
static void test_running_progress_counts(void **state)
{
	char line[2048];

	(void)state;
	bar_of("\"total\": 4, \"succeeded\": 0, \"failed\": 0, \"cancelled\": 0,"
	       " \"running\": 2, \"running_progress\": 1.0, \"rate\": 0, \"eta_s\": 30",
	       T0 ", \"finished_at\": null", line, sizeof(line));
	expect_in(line, "job 7 encode:  25%|");
	expect_in(line, "|██▌       | 0/4 [");
	expect_in(line, "<00:30, ? tasks/s]");	/* none finished: no rate yet */
}

/* One task of two finished, the other has reported all its work but has
 * not ended: 99%, not 100%. */
static void test_never_100_before_the_end(void **state)
{
	char line[2048];

	(void)state;
	bar_of("\"total\": 2, \"succeeded\": 1, \"failed\": 0, \"cancelled\": 0,"
	       " \"running\": 1, \"running_progress\": 1.0, \"rate\": 1, \"eta_s\": 1",
	       T0 ", \"finished_at\": null", line, sizeof(line));
	expect_in(line, ":  99%|");
	expect_in(line, "| 1/2 [");
}

/* A finished job: 100%, a full bar, its failures and cancellations, and
 * the time it took from the API's milliseconds (0.2 s, across a second's
 * boundary, is 00:00, not 00:01). */
static void test_finished_job(void **state)
{
	char line[2048];

	(void)state;
	bar_of("\"total\": 10, \"succeeded\": 7, \"failed\": 1, \"cancelled\": 2,"
	       " \"running\": 0, \"running_progress\": 0, \"rate\": 40, \"eta_s\": 0",
	       T0 ", \"finished_at\": \"2026-11-27T10:00:01.100Z\"", line, sizeof(line));
	expect_in(line, "job 7 encode: 100%|██████████| 10/10 [00:00<00:00, 40.0 tasks/s, "
		  "failed=1, cancelled=2]");
	bar_of("\"total\": 1, \"succeeded\": 1, \"failed\": 0, \"cancelled\": 0,"
	       " \"running\": 0, \"running_progress\": 0, \"rate\": 1, \"eta_s\": 0",
	       T0 ", \"finished_at\": \"2026-11-27T10:01:02.000Z\"", line, sizeof(line));
	expect_in(line, "[01:01<00:00,");
	/* Over within its first millisecond: the API has no rate for it. */
	bar_of("\"total\": 1, \"succeeded\": 1, \"failed\": 0, \"cancelled\": 0,"
	       " \"running\": 0, \"running_progress\": 0, \"rate\": 0, \"eta_s\": 0",
	       T0 ", \"finished_at\": \"2026-11-27T10:00:00.900Z\"", line, sizeof(line));
	expect_in(line, "| 1/1 [00:00<00:00, ? tasks/s]");
}

/* What an older server sends (no running_progress) still draws. */
static void test_without_running_progress(void **state)
{
	char line[2048];

	(void)state;
	bar_of("\"total\": 8, \"succeeded\": 2, \"failed\": 0, \"cancelled\": 0,"
	       " \"running\": 2, \"rate\": 2, \"eta_s\": 3",
	       T0 ", \"finished_at\": null", line, sizeof(line));
	expect_in(line, ":  25%|");
	expect_in(line, "| 2/8 [");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_running_progress_counts),
		cmocka_unit_test(test_never_100_before_the_end),
		cmocka_unit_test(test_finished_job),
		cmocka_unit_test(test_without_running_progress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
