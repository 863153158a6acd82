/*
 * jobreq: reading and checking a job request (the body of POST /api/jobs).
 *
 * Everything is checked here, before anything is written: a request that
 * fails any check writes nothing. Kept apart from the HTTP and storage code
 * so that it can be fuzzed on its own (tests/fuzz/).
 */
#ifndef BATCHD_JOBREQ_H
#define BATCHD_JOBREQ_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../lib/buf.h"

#include "../workers/registry.h"

struct jobreq_limits {
	int64_t max_tasks;
	double default_timeout_s;
};

struct jobreq {
	cJSON *doc;		/* owns the parsed body */
	const char *handler;
	int handler_id;
	const cJSON *tasks;	/* the array */
	int64_t ntasks;
	const char *name;	/* NULL when absent */
	int priority;
	int64_t timeout_ms;	/* resolved: job, else handler, else default */
	int max_attempts;
	int paused;		/* submitted paused: nothing starts until resumed */
	/* Where jobreq_next_input reads: the body's text of the tasks. */
	const char *at, *end;
	const cJSON *at_task;
};

#define JOBREQ_NAME_MAX 200
#define JOBREQ_ATTEMPTS_MAX 100
#define JOBREQ_PRIORITY_MAX 1000000
#define JOBREQ_TIMEOUT_MAX 604800.0

/*
 * Parses and checks body[0..len), which must be NUL-terminated at len (a
 * NUL byte before len is not the end: it is refused like any junk).
 * Returns 0 and fills r (release it with jobreq_release), or the HTTP
 * status to answer (400, 413, 422) with an error code and a message that
 * names the field or the byte offset at fault. On error r holds nothing.
 */
int jobreq_parse(struct jobreq *r, const char *body, size_t len,
		 const struct registry *reg, const struct jobreq_limits *lim,
		 const char **code, char *msg, size_t msglen);
/*
 * Appends the next task's input, in order, to out: the body's own text of
 * it, compact (see lib/json.h), so that a number is stored as the client
 * wrote it, not as the double cJSON read. Reads the body given to
 * jobreq_parse, which must outlive r. Returns 0, or -1 after the last.
 */
int jobreq_next_input(struct jobreq *r, struct buf *out);
void jobreq_release(struct jobreq *r);

#endif
