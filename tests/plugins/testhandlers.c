/*
 * testhandlers: a plugin for the reliability tests, loaded through a
 * handlers file like any plugin. Its "config" picks what it does:
 *
 *   {"mode": "mixed"}  input {"op": ..., ...}, one job of many behaviours:
 *                        "echo"   returns the input
 *                        "sleep"  {"ms": N, "steps": K}: sleeps, reporting
 *                                 progress K times, returns the input
 *                        "fail"   always fails
 *                        "flaky"  fails its first attempt, then returns the
 *                                 input
 *   {"mode": "leak"}   input {"kb": N}: allocates N KiB and never frees them
 *   {"mode": "hog"}    input {"mb": N, "hold_ms": M}: holds N MiB for M ms
 *
 * Not part of batchd: built by the Makefile for the tests only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../../include/batchd.h"

enum mode { MIXED, LEAK, HOG };

/* Where allocations escape to, so that the compiler keeps them. */
static void *volatile sink;

static char *dup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		abort();
	return p;
}

static void nap_ms(double ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6) };

	while (nanosleep(&ts, &ts) < 0)
		;
}

static int init(const char *config, void **state, char *err, size_t errlen)
{
	cJSON *doc = cJSON_Parse(config ? config : "{}");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "mode");
	static enum mode modes[] = { MIXED, LEAK, HOG };
	int i = -1;

	if (cJSON_IsString(m))
		i = !strcmp(m->valuestring, "mixed") ? 0 : !strcmp(m->valuestring, "leak") ? 1 :
		    !strcmp(m->valuestring, "hog") ? 2 : -1;
	cJSON_Delete(doc);
	if (i < 0) {
		snprintf(err, errlen, "config needs \"mode\": mixed, leak or hog");
		return -1;
	}
	*state = &modes[i];
	return 0;
}

static double num(const cJSON *doc, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int run_mixed(struct batchd_task *task, const cJSON *doc, const char *input,
		     char **result)
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(doc, "op");
	const char *o = cJSON_IsString(op) ? op->valuestring : "";

	if (!strcmp(o, "fail")) {
		*result = dup("planned failure");
		return -1;
	}
	if (!strcmp(o, "flaky") && batchd_task_attempt(task) == 1) {
		*result = dup("the first attempt fails");
		return -1;
	}
	if (!strcmp(o, "sleep")) {
		double ms = num(doc, "ms");
		int steps = (int)num(doc, "steps");

		if (steps <= 0) {
			nap_ms(ms);
		} else {
			for (int i = 1; i <= steps; i++) {
				nap_ms(ms / steps);
				batchd_progress(task, (double)i / steps, "step");
			}
		}
	}
	*result = dup(input);
	return 0;
}

/* Leaks n bytes, resident. Its own function so that the valgrind run can
 * tell this leak, made on purpose, from any other
 * (tests/valgrind/batchd.supp). */
__attribute__((noinline)) static void leak_on_purpose(size_t n)
{
	char *p = malloc(n ? n : 1);

	if (!p)
		abort();
	memset(p, 0x5a, n);
	sink = p;
}

static int run(void *state, struct batchd_task *task, const char *input, char **result)
{
	enum mode mode = *(enum mode *)state;
	cJSON *doc = cJSON_Parse(input);
	int rc = 0;

	if (mode == MIXED) {
		rc = run_mixed(task, doc, input, result);
	} else if (mode == LEAK) {
		leak_on_purpose((size_t)num(doc, "kb") * 1024);
		*result = NULL;
	} else {
		size_t n = (size_t)num(doc, "mb") << 20;
		char *p = malloc(n ? n : 1);

		if (!p)
			abort();
		memset(p, 0x5a, n);
		sink = p;
		nap_ms(num(doc, "hold_ms"));
		free(sink);
		*result = NULL;
	}
	cJSON_Delete(doc);
	return rc;
}

static const struct batchd_handler handler = {
	.abi_version = BATCHD_ABI_VERSION,
	.name = "testhandlers",
	.init = init,
	.run = run,
};

const struct batchd_handler *batchd_handler_get(void)
{
	return &handler;
}
