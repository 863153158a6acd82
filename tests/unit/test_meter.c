/*
 * Unit tests of the progress maths (server/meter.c): rate over a recent
 * window, ETA, and the throughput history.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>

#include <cmocka.h>

#include "../../server/meter.h"

static void test_steady_rate(void **state)
{
	struct meter m;
	int64_t done = 0;

	(void)state;
	meter_init(&m, 0, 0);
	/* 100 tasks a second for 30 s. */
	for (int64_t t = 10; t <= 30000; t += 10)
		meter_add(&m, t, ++done, 1);
	assert_float_equal(meter_rate(&m, 30000, done), 100.0, 1.0);
	assert_float_equal(meter_eta(meter_rate(&m, 30000, done), 500), 5.0, 0.1);
}

/* The rate follows a change of pace within about the window, not the
 * average since the start. */
static void test_rate_follows_recent_pace(void **state)
{
	struct meter m;
	int64_t done = 0, t;

	(void)state;
	meter_init(&m, 0, 0);
	for (t = 10; t <= 60000; t += 10)	/* 100/s for a minute */
		meter_add(&m, t, ++done, 1);
	for (; t <= 90000; t += 100)		/* then 10/s for 30 s */
		meter_add(&m, t, ++done, 1);
	double r = meter_rate(&m, 90000, done);

	assert_true(r > 8 && r < 14);
}

static void test_young_job(void **state)
{
	struct meter m;

	(void)state;
	meter_init(&m, 1000, 0);
	assert_float_equal(meter_rate(&m, 1000, 0), 0, 0);
	assert_int_equal((int)meter_eta(0, 10), -1);	/* unknown */
	meter_add(&m, 1500, 5, 5);
	assert_float_equal(meter_rate(&m, 1500, 5), 10.0, 0.01);
	assert_float_equal(meter_eta(0, 0), 0, 0);	/* nothing left */
}

/* A stalled job's rate decays instead of freezing at its last value. */
static void test_stall_decays(void **state)
{
	struct meter m;
	int64_t done = 0;

	(void)state;
	meter_init(&m, 0, 0);
	for (int64_t t = 100; t <= 5000; t += 100)
		meter_add(&m, t, ++done, 1);
	double busy = meter_rate(&m, 5000, done);
	double later = meter_rate(&m, 60000, done);

	assert_true(busy > 9);
	assert_true(later < busy / 4);
}

static void test_history_merges_buckets(void **state)
{
	struct meter m;
	int64_t counts[METER_HISTORY], bucket, total = 0;
	int n;

	(void)state;
	meter_init(&m, 0, 0);
	for (int64_t t = 0; t < 300000; t += 100)	/* 5 minutes, 10/s */
		meter_add(&m, t, t / 100 + 1, 1);
	n = meter_history(&m, 300000, counts, &bucket);
	assert_true(n <= METER_HISTORY);
	assert_int_equal(bucket, 4000);	/* 1 s doubled until 5 min fit in 120 */
	for (int i = 0; i < n; i++)
		total += counts[i];
	assert_int_equal(total, 3000);
	assert_int_equal(counts[1], 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_steady_rate),
		cmocka_unit_test(test_rate_follows_recent_pace),
		cmocka_unit_test(test_young_job),
		cmocka_unit_test(test_stall_decays),
		cmocka_unit_test(test_history_merges_buckets),
	};

	return cmocka_run_group_tests_name("meter", tests, NULL, NULL);
}
