/*
 * tplugin: a C plugin for the tests of the plugin loader.
 *
 * config (all optional): {"log": "/path"} init() appends "init <pid>" to
 * that file and fini() "fini <pid>"; {"init_fail": "text"} init() fails
 * with that text.
 *
 * input: "wait:/path" reports progress 0.5 "halfway", then waits for the
 * file to exist, deaf to a stop; "until:/path" does the same, but
 * returns "stopped" (failing) when batchd_task_should_stop() says so;
 * "fail:text" fails with text; "raw:text" succeeds with text as its
 * result, whatever it is (its \\ and \" read as \ and "); "config" returns {"config": <its config as
 * init() got it>}; "exit:N" ends the worker
 * process with exit(N), as a careless library might; "kill" ends it at
 * once with SIGKILL, as the OOM killer would; anything else succeeds.
 * result: {"pid": P, "calls": N, "input": <input>}, N counting the tasks
 * this worker's instance has run.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../include/batchd.h"

struct state {
	long calls;
	char log[512];
	char *config;	/* as init() got it, or NULL */
};

/* The string value of "key" in a flat JSON object as batchd prints it
 * (unformatted, no escapes in the values these tests use). */
static int config_string(const char *config, const char *key, char *out, size_t len)
{
	char pat[64];
	const char *p, *end;

	if (!config)
		return 0;
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(config, pat);
	if (!p)
		return 0;
	p += strlen(pat);
	end = strchr(p, '"');
	if (!end || (size_t)(end - p) >= len)
		return 0;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return 1;
}

static void note(const char *path, const char *what)
{
	FILE *f = path[0] ? fopen(path, "a") : NULL;

	if (f) {
		fprintf(f, "%s %ld\n", what, (long)getpid());
		fclose(f);
	}
}

static int t_init(const char *config, void **state, char *err, size_t errlen)
{
	struct state *s;
	char msg[256];

	if (config_string(config, "init_fail", msg, sizeof(msg))) {
		snprintf(err, errlen, "%s", msg);
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	config_string(config, "log", s->log, sizeof(s->log));
	s->config = config ? strdup(config) : NULL;
	note(s->log, "init");
	*state = s;
	return 0;
}

static int t_run(void *state, struct batchd_task *task, const char *input, char **result)
{
	struct state *s = state;
	size_t n = strlen(input) + 128;
	char path[512];

	s->calls++;
	if (!strcmp(input, "\"config\"")) {
		n = s->config ? strlen(s->config) + 16 : 32;
		*result = malloc(n);
		if (!*result)
			return BATCHD_FAILED;
		snprintf(*result, n, "{\"config\":%s}", s->config ? s->config : "null");
		return BATCHD_OK;
	}
	if (!strncmp(input, "\"fail:", 6)) {
		*result = strdup(input + 6);
		(*result)[strlen(*result) - 1] = '\0';	/* the closing quote */
		return BATCHD_FAILED;
	}
	if (!strncmp(input, "\"raw:", 5)) {
		char *w;

		*result = strdup(input + 5);
		(*result)[strlen(*result) - 1] = '\0';	/* the closing quote */
		w = *result;
		for (const char *r = *result; *r; r++)
			*w++ = *r == '\\' && (r[1] == '\\' || r[1] == '"') ? *++r : *r;
		*w = '\0';
		return BATCHD_OK;
	}
	if (!strncmp(input, "\"exit:", 6))
		exit(atoi(input + 6));
	if (!strcmp(input, "\"kill\""))
		raise(SIGKILL);	/* dies at once, as under the OOM killer */
	if (!strncmp(input, "\"wait:", 6) && strlen(input) - 7 < sizeof(path)) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		snprintf(path, sizeof(path), "%.*s", (int)(strlen(input) - 7), input + 6);
		batchd_progress(task, 0.5, "halfway");
		while (access(path, F_OK) != 0)
			nanosleep(&ts, NULL);
	}
	if (!strncmp(input, "\"until:", 7) && strlen(input) - 8 < sizeof(path)) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		snprintf(path, sizeof(path), "%.*s", (int)(strlen(input) - 8), input + 7);
		batchd_progress(task, 0.5, "halfway");
		while (access(path, F_OK) != 0) {
			if (batchd_task_should_stop(task)) {
				*result = strdup("stopped");
				return BATCHD_FAILED;
			}
			nanosleep(&ts, NULL);
		}
	}
	*result = malloc(n);
	if (!*result)
		return BATCHD_FAILED;
	snprintf(*result, n, "{\"pid\":%ld,\"calls\":%ld,\"input\":%s}", (long)getpid(),
		 s->calls, input);
	return BATCHD_OK;
}

static void t_fini(void *state)
{
	struct state *s = state;

	note(s->log, "fini");
	free(s->config);
	free(s);
}

static const struct batchd_handler handler = {
	.abi_version = BATCHD_ABI_VERSION,
	.name = "tplugin",
	.init = t_init,
	.run = t_run,
	.fini = t_fini,
};

const struct batchd_handler *batchd_handler_get(void)
{
	return &handler;
}
