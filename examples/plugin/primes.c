/*
 * primes: an example batchd plugin in C.
 *
 * Its set-up is the costly part, paid once per worker: init() sieves every
 * number up to "limit" (from the handler's "config" in the handlers file).
 * Each task then counts the primes in a range, {"from": a, "to": b}, from
 * the sieve, reporting its progress as it goes (and stopping when batchd
 * asks: a cancel or a timeout), and answers
 * {"primes": N, "largest": P}.
 *
 * Build (from the repository's top directory):
 *
 *     make -C examples/plugin
 *
 * which runs
 *
 *     cc -std=c17 -Wall -Wextra -Werror -O2 -fPIC -shared -I../../include \
 *        -o primes.so primes.c
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchd.h"

#define LIMIT_MAX 1000000000L

struct sieve {
	long limit;
	unsigned char *composite;	/* composite[n] for 0 <= n <= limit */
};

/* Reads the number after "key": in a JSON object. Enough for this example,
 * whose inputs batchd has checked are JSON; a real plugin would use a JSON
 * library. */
static int number(const char *json, const char *key, long *out)
{
	char pat[32];
	const char *p;
	char *end;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = json ? strstr(json, pat) : NULL;
	if (!p)
		return -1;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	*out = strtol(p, &end, 10);
	return end == p ? -1 : 0;
}

static int primes_init(const char *config, void **state, char *err, size_t errlen)
{
	struct sieve *s;
	long limit;

	if (number(config, "limit", &limit) < 0 || limit < 2 || limit > LIMIT_MAX) {
		snprintf(err, errlen, "config needs \"limit\": a number from 2 to %ld",
			 LIMIT_MAX);
		return -1;
	}
	s = malloc(sizeof(*s));
	if (!s || !(s->composite = calloc((size_t)limit + 1, 1))) {
		free(s);
		snprintf(err, errlen, "cannot allocate a sieve of %ld numbers", limit);
		return -1;
	}
	s->limit = limit;
	s->composite[0] = s->composite[1] = 1;
	for (long i = 2; i * i <= limit; i++)
		if (!s->composite[i])
			for (long j = i * i; j <= limit; j += i)
				s->composite[j] = 1;
	*state = s;
	return 0;
}

static int primes_run(void *state, struct batchd_task *task, const char *input,
		      char **result)
{
	struct sieve *s = state;
	long from, to, count = 0, largest = -1;
	char text[128];

	if (number(input, "from", &from) < 0 || number(input, "to", &to) < 0 ||
	    from < 0 || to < from || to > s->limit) {
		snprintf(text, sizeof(text),
			 "input must be {\"from\": a, \"to\": b} with 0 <= a <= b <= %ld",
			 s->limit);
		*result = strdup(text);
		return BATCHD_FAILED;
	}
	for (long n = from; n <= to; n++) {
		if (!s->composite[n]) {
			count++;
			largest = n;
		}
		/* Cheap to call often: batchd coalesces the updates. And a
		 * cancelled or timed-out task ends here, in this worker,
		 * which keeps its sieve. */
		if ((n - from) % 1000000 == 999999) {
			batchd_progress(task, (double)(n - from) / (double)(to - from + 1),
					"counting");
			if (batchd_task_should_stop(task)) {
				*result = strdup("stopped");
				return BATCHD_FAILED;
			}
		}
	}
	if (largest < 0)
		snprintf(text, sizeof(text), "{\"primes\": 0, \"largest\": null}");
	else
		snprintf(text, sizeof(text), "{\"primes\": %ld, \"largest\": %ld}", count,
			 largest);
	*result = strdup(text);
	return *result ? BATCHD_OK : BATCHD_FAILED;
}

static void primes_fini(void *state)
{
	struct sieve *s = state;

	free(s->composite);
	free(s);
}

static const struct batchd_handler primes = {
	.abi_version = BATCHD_ABI_VERSION,
	.name = "primes",
	.init = primes_init,
	.run = primes_run,
	.fini = primes_fini,
};

const struct batchd_handler *batchd_handler_get(void)
{
	return &primes;
}
