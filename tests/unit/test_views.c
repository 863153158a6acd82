/*
 * Unit tests of the numbers server/views.c prints itself, rather than
 * through cJSON: the text must be what cJSON would print.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "../../server/views.h"

/* Asserts that mine prints as cJSON prints v; frees both. */
static void same_text(cJSON *mine, double v)
{
	cJSON *ref = cJSON_CreateNumber(v);
	char *a = cJSON_PrintUnformatted(mine), *b = cJSON_PrintUnformatted(ref);

	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, b);
	free(a);
	free(b);
	cJSON_Delete(mine);
	cJSON_Delete(ref);
}

static double rand_unit(void)
{
	return (double)rand() / RAND_MAX;
}

static void test_int(void **state)
{
	static const int64_t known[] = { 0, 1, -1, 9, 10, 99, 100, 1000000, -1000000,
					 INT32_MAX, (int64_t)INT32_MAX + 1, 999999999999999 };

	(void)state;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		same_text(view_int(known[i]), (double)known[i]);
	srand(11);
	for (int i = 0; i < 100000; i++) {
		/* Up to 15 digits: past them cJSON prints 1e+15 and the like. */
		int64_t v = (int64_t)(pow(10, rand_unit() * 15) * (rand() % 2 ? 1 : -1));

		same_text(view_int(v), (double)v);
	}
}

/* view_dec(v, k) prints what cJSON printed for v rounded to k places,
 * as the views did before: round(v * 10^k) / 10^k. */
static void test_dec(void **state)
{
	static const double known[] = { 0, 1, 0.5, 0.25, 0.1, 0.0001, 0.00005, 0.99995,
					1234.5678, 3600, 0.001, 12.0004, 419463.1 };

	(void)state;
	for (int k = 0; k <= 4; k++) {
		double sc = pow(10, k);

		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			same_text(view_dec(known[i], k), round(known[i] * sc) / sc);
	}
	srand(13);
	for (int i = 0; i < 200000; i++) {
		int k = rand() % 5;
		double sc = pow(10, k);
		double v = pow(10, rand_unit() * 14 - 5) * (rand() % 4 ? 1 : -1);
		double r = round(v * sc) / sc;

		if (r == 0)
			r = 0;	/* cJSON prints -0; views never have it */
		same_text(view_dec(v, k), r);
	}
	/* Past 15 digits, and what is not a number, cJSON prints it. */
	same_text(view_dec(123456789012345.5, 1), 123456789012345.5);
	same_text(view_dec(NAN, 3), NAN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_dec),
	};

	return cmocka_run_group_tests_name("views", tests, NULL, NULL);
}
