/*
 * builtin: the handlers every batchd has, written against include/batchd.h
 * like any plugin.
 *
 *   noop     returns null
 *   echo     returns its input
 *   sleep    {"ms": N, "steps": K}  sleeps N ms, reporting progress K times
 *   cpu      {"ms": N, "steps": K}  keeps a CPU busy for N ms
 *   fail     {"message": "..."}     fails with that error
 *   crash    the worker process dies by SIGSEGV
 *   counter  returns {"pid": P, "calls": N}: how many tasks this worker's
 *            instance has run, showing that state lives on between tasks
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../lib/clock.h"
#include "registry.h"

#define MAX_MS (24 * 3600 * 1000.0)
#define MAX_STEPS 10000

static char *dup_or_die(const char *s)
{
	char *p = strdup(s);

	if (!p)
		abort();
	return p;
}

static int run_noop(void *state, struct batchd_task *task, const char *input,
		    char **result)
{
	(void)state, (void)task, (void)input;
	*result = NULL;
	return 0;
}

static int run_echo(void *state, struct batchd_task *task, const char *input,
		    char **result)
{
	(void)state, (void)task;
	*result = dup_or_die(input);
	return 0;
}

/* Reads {"ms": N, "steps": K} (validated at submission, re-checked here). */
static int duration_input(const char *input, double *ms, int *steps,
			  char **result)
{
	cJSON *doc = cJSON_Parse(input);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "ms");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(doc, "steps");

	if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble) ||
	    m->valuedouble < 0 || m->valuedouble > MAX_MS) {
		cJSON_Delete(doc);
		*result = dup_or_die("input must be {\"ms\": N}");
		return -1;
	}
	*ms = m->valuedouble;
	*steps = cJSON_IsNumber(s) ? (int)s->valuedouble : 0;
	if (*steps < 0 || *steps > MAX_STEPS)
		*steps = 0;
	cJSON_Delete(doc);
	return 0;
}

static int validate_duration(const cJSON *input, char *err, size_t errlen)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(input, "ms");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(input, "steps");

	if (!cJSON_IsObject(input)) {
		snprintf(err, errlen, "must be an object like {\"ms\": 100}");
		return -1;
	}
	if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble) ||
	    m->valuedouble < 0 || m->valuedouble > MAX_MS) {
		snprintf(err, errlen, ".ms must be a number of milliseconds in [0, 86400000]");
		return -1;
	}
	if (s && (!cJSON_IsNumber(s) || s->valuedouble < 0 ||
		  s->valuedouble > MAX_STEPS ||
		  s->valuedouble != floor(s->valuedouble))) {
		snprintf(err, errlen, ".steps must be an integer in [0, %d]", MAX_STEPS);
		return -1;
	}
	return 0;
}

/* The timed handlers wait in slices of at most this, asking between them
 * whether the task should stop. */
#define SLICE_US 20000

/* Returns -1 when the task was told to stop before the deadline. */
static int sleep_until(struct batchd_task *task, int64_t deadline_us)
{
	for (;;) {
		int64_t left = deadline_us - clock_mono_us();
		struct timespec ts;

		if (left <= 0)
			return 0;
		if (left > SLICE_US)
			left = SLICE_US;
		ts.tv_sec = left / 1000000;
		ts.tv_nsec = (left % 1000000) * 1000;
		nanosleep(&ts, NULL);
		if (deadline_us > clock_mono_us() && batchd_task_should_stop(task))
			return -1;
	}
}

static int spin_until(struct batchd_task *task, int64_t deadline_us)
{
	volatile uint64_t x = 0;

	while (clock_mono_us() < deadline_us) {
		for (int i = 0; i < 1000; i++)
			x = x * 6364136223846793005ULL + 1;
		if (batchd_task_should_stop(task))
			return -1;
	}
	return 0;
}

/* Runs a timed task, in steps when asked, reporting progress after each. */
static int run_timed(struct batchd_task *task, const char *input, char **result,
		     int (*wait)(struct batchd_task *, int64_t))
{
	double ms;
	int steps;
	int64_t start = clock_mono_us();
	char msg[64];

	if (duration_input(input, &ms, &steps, result) < 0)
		return -1;
	if (steps <= 0) {
		if (wait(task, start + (int64_t)(ms * 1000)) < 0)
			goto stopped;
	} else {
		for (int i = 1; i <= steps; i++) {
			if (wait(task, start + (int64_t)(ms * 1000 * i / steps)) < 0)
				goto stopped;
			snprintf(msg, sizeof(msg), "step %d/%d", i, steps);
			batchd_progress(task, (double)i / steps, msg);
		}
	}
	*result = NULL;
	return 0;
stopped:
	*result = dup_or_die("stopped");
	return BATCHD_FAILED;
}

static int run_sleep(void *state, struct batchd_task *task, const char *input,
		     char **result)
{
	(void)state;
	return run_timed(task, input, result, sleep_until);
}

static int run_cpu(void *state, struct batchd_task *task, const char *input,
		   char **result)
{
	(void)state;
	return run_timed(task, input, result, spin_until);
}

static int validate_fail(const cJSON *input, char *err, size_t errlen)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(input, "message");

	if (m && !cJSON_IsString(m)) {
		snprintf(err, errlen, ".message must be a string");
		return -1;
	}
	return 0;
}

static int run_fail(void *state, struct batchd_task *task, const char *input,
		    char **result)
{
	cJSON *doc = cJSON_Parse(input);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");

	(void)state, (void)task;
	*result = dup_or_die(cJSON_IsString(m) ? m->valuestring : "task failed");
	cJSON_Delete(doc);
	return -1;
}

static int run_crash(void *state, struct batchd_task *task, const char *input,
		     char **result)
{
	(void)state, (void)task, (void)input, (void)result;
	/* Die by the signal itself, whatever handler a sanitizer installed. */
	signal(SIGSEGV, SIG_DFL);
	raise(SIGSEGV);
	abort();
}

struct counter {
	long calls;
};

static int init_counter(const char *config, void **state, char *err,
			size_t errlen)
{
	(void)config, (void)err, (void)errlen;
	*state = calloc(1, sizeof(struct counter));
	return *state ? 0 : -1;
}

static int run_counter(void *state, struct batchd_task *task, const char *input,
		       char **result)
{
	struct counter *c = state;
	char out[64];

	(void)task, (void)input;
	c->calls++;
	snprintf(out, sizeof(out), "{\"pid\":%ld,\"calls\":%ld}", (long)getpid(),
		 c->calls);
	*result = dup_or_die(out);
	return 0;
}

static void fini_counter(void *state)
{
	free(state);
}

#define HANDLER(n, i, r, f) \
	{ .abi_version = BATCHD_ABI_VERSION, .name = n, .init = i, .run = r, .fini = f }

static const struct batchd_handler noop_ops = HANDLER("noop", NULL, run_noop, NULL);
static const struct batchd_handler echo_ops = HANDLER("echo", NULL, run_echo, NULL);
static const struct batchd_handler sleep_ops = HANDLER("sleep", NULL, run_sleep, NULL);
static const struct batchd_handler cpu_ops = HANDLER("cpu", NULL, run_cpu, NULL);
static const struct batchd_handler fail_ops = HANDLER("fail", NULL, run_fail, NULL);
static const struct batchd_handler crash_ops = HANDLER("crash", NULL, run_crash, NULL);
static const struct batchd_handler counter_ops =
	HANDLER("counter", init_counter, run_counter, fini_counter);

const struct builtin builtin_handlers[] = {
	{ &noop_ops, NULL },
	{ &echo_ops, NULL },
	{ &sleep_ops, validate_duration },
	{ &cpu_ops, validate_duration },
	{ &fail_ops, validate_fail },
	{ &crash_ops, NULL },
	{ &counter_ops, NULL },
};
const size_t builtin_count = sizeof(builtin_handlers) / sizeof(builtin_handlers[0]);
