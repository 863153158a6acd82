/*
 * Unit tests of lib/clock.c's RFC 3339 times, which every API time and
 * log line goes through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "../../lib/clock.h"

static void test_known_times(void **state)
{
	char ts[25];

	(void)state;
	clock_rfc3339(0, ts);
	assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
	clock_rfc3339(1795941446123, ts);
	assert_string_equal(ts, "2026-11-29T08:37:26.123Z");
	clock_rfc3339(1835440496789, ts);		/* a leap day */
	assert_string_equal(ts, "2028-02-29T12:34:56.789Z");
	clock_rfc3339(-1, ts);				/* just before the epoch */
	assert_string_equal(ts, "1969-12-31T23:59:59.999Z");
	clock_rfc3339(253402300799999, ts);		/* the last of year 9999 */
	assert_string_equal(ts, "9999-12-31T23:59:59.999Z");
}

/* Against gmtime_r and snprintf, for times spread over four centuries. */
static void test_against_snprintf(void **state)
{
	char ts[25], want[80];
	struct tm tm;

	(void)state;
	srand(7);
	for (int i = 0; i < 100000; i++) {
		int64_t ms = ((int64_t)rand() << 20 ^ rand()) % 12622780800000LL;
		time_t secs = (time_t)(ms / 1000);

		gmtime_r(&secs, &tm);
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (int)(ms % 1000));
		clock_rfc3339(ms, ts);
		assert_string_equal(ts, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_times),
		cmocka_unit_test(test_against_snprintf),
	};

	return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
