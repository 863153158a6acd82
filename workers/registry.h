/*
 * registry: the table of handlers a task may name.
 *
 * The operator fills it: the built-in handlers are always there, and a
 * handlers file (--handlers FILE) adds command handlers and C plugins. An API
 * caller can only choose a name from this table; nothing in a job request
 * can name a program. The server builds the table before it forks workers,
 * so every worker holds the same table and a handler is named in frames by
 * its index.
 *
 * Handlers file (docs/HANDLERS.md):
 *   {"handlers": {
 *      "resize": {"argv": ["/usr/local/bin/resize", "--fast"], "timeout_s": 60,
 *                 "env": {"MODEL": "/models/a"}},
 *      "detect": {"argv": ["python3", "detect.py"], "mode": "persistent",
 *                 "init_timeout_s": 30},
 *      "score":  {"plugin": "lib/score.so", "config": {"threshold": 0.5}}}}
 */
#ifndef BATCHD_REGISTRY_H
#define BATCHD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../include/batchd.h"

enum handler_kind {
	HANDLER_BUILTIN,
	HANDLER_COMMAND,	/* one process per task */
	HANDLER_PERSISTENT,	/* one co-process per worker, task after task */
	HANDLER_PLUGIN,		/* a shared object loaded with dlopen */
};

struct handler {
	char *name;
	enum handler_kind kind;
	const struct batchd_handler *ops;
	/* Checks one task input at submission, in the server; NULL: any JSON.
	 * Returns 0, or -1 with a message naming the offending field. */
	int (*validate)(const cJSON *input, char *err, size_t errlen);
	char *config;		/* JSON text given to init(), or NULL */
	int64_t timeout_ms;	/* the handler's default task timeout, 0: none */
	int64_t init_timeout_ms; /* bounds a worker's set-up of it; 0: the
				  * task's timeout does */
	char *path;		/* the program or the shared object, or NULL */
	void *dl;		/* dlopen handle of a plugin */
};

#define REGISTRY_MAX 1024
/* Entries a handler's "env" may have. */
#define ENV_MAX 256

struct registry;

/* A registry holding the built-in handlers. Never NULL. */
struct registry *registry_new(void);
void registry_free(struct registry *r);

/*
 * Adds the handlers of a handlers file. Returns 0, or -1 with a one-line
 * message in err that names the file and the cause; on error the registry
 * holds none of the file's handlers.
 */
int registry_load_file(struct registry *r, const char *path, char *err,
		       size_t errlen);

/* The handler called name and its index, or NULL. */
const struct handler *registry_find(const struct registry *r, const char *name,
				    int *id);
/* The handler at index id (0 <= id < registry_count). */
const struct handler *registry_get(const struct registry *r, int id);
int registry_count(const struct registry *r);
const char *handler_kind_name(enum handler_kind kind);

/* Built-in handlers (workers/builtin.c), the command runner
 * (workers/command.c) and the persistent runner (workers/persistent.c), all
 * written against include/batchd.h. */
struct builtin {
	const struct batchd_handler *ops;
	int (*validate)(const cJSON *input, char *err, size_t errlen);
};
extern const struct builtin builtin_handlers[];
extern const size_t builtin_count;
extern const struct batchd_handler command_handler_ops;
extern const struct batchd_handler persistent_handler_ops;

#endif
