/*
 * stamp: a batchd plugin for the latency benchmark. Its task returns the
 * moment it started running, {"t_ns": N}, read from CLOCK_REALTIME: the
 * same clock, on the same machine, as the client's time.time_ns() taken
 * just before it sends the POST. The difference is the whole path from
 * the request to the task running: HTTP, parsing, the committed insert,
 * dispatch, the frame to the worker and the worker waking up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../include/batchd.h"

static int stamp_run(void *state, struct batchd_task *task, const char *input,
		     char **result)
{
	struct timespec ts;
	char *out = malloc(48);

	(void)state, (void)task, (void)input;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (!out)
		return -1;
	snprintf(out, 48, "{\"t_ns\":%lld}",
		 (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	*result = out;
	return 0;
}

static const struct batchd_handler stamp = {
	.abi_version = BATCHD_ABI_VERSION,
	.name = "stamp",
	.run = stamp_run,
};

const struct batchd_handler *batchd_handler_get(void)
{
	return &stamp;
}
