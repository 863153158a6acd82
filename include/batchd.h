/*
 * batchd.h: the public interface for batchd handlers written in C.
 *
 * A handler is what a task runs. batchd's own built-in handlers (noop, echo,
 * sleep, ...) are written against this interface, and so is a plugin: a
 * shared object named in the handlers file ("plugin": "path/to/x.so") that
 * exports
 *
 *     const struct batchd_handler *batchd_handler_get(void);
 *
 * Lifecycle, inside one worker process (a worker runs one task at a time):
 *   - init() is called once, the first time the worker runs a task of this
 *     handler; whatever it returns in *state is kept and handed to every
 *     later run() in that worker. Put the costly set-up here.
 *   - run() is called for each task.
 *   - fini() is called when the worker stops normally (it is not called when
 *     the worker is killed), and after a run() that returns
 *     BATCHD_INIT_FAILED.
 *
 * Memory: strings passed in are owned by batchd and valid during the call.
 * Strings a handler returns through *result or err are malloc()ed by the
 * handler and freed by batchd with free().
 *
 * ABI: abi_version must be BATCHD_ABI_VERSION; a plugin built against
 * another version is refused at start-up. Fields are only ever added at the
 * end, with the version raised.
 */
#ifndef BATCHD_H
#define BATCHD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BATCHD_ABI_VERSION 1

/* What run() returns. */
#define BATCHD_OK 0
#define BATCHD_FAILED (-1)
/*
 * The handler's set-up failed, not the task. For a handler that finishes
 * its set-up during its first task, as a persistent co-process does when it
 * dies before its first answer. The task fails with *result as the set-up
 * error, exactly as when init() fails; batchd calls fini(state) at once,
 * and the next task of this handler in this worker calls init() again, but
 * not before a back-off (1 s, doubling up to 30 s, reset by a run() that
 * returns anything else) during which its tasks fail at once with the same
 * error. A batchd that predates this value treats it as BATCHD_FAILED.
 */
#define BATCHD_INIT_FAILED (-2)

/* The task being run; opaque. */
struct batchd_task;

struct batchd_handler {
	int abi_version;	/* BATCHD_ABI_VERSION */
	const char *name;	/* informative; the handlers file names it */

	/*
	 * Called once per worker before the first task. config is the JSON
	 * text of the handler's "config" entry in the handlers file, or NULL.
	 * Returns 0 and sets *state (may be NULL), or -1 with a message in
	 * err (errlen bytes, always NUL-terminated by the handler).
	 * May be NULL: no set-up.
	 */
	int (*init)(const char *config, void **state, char *err, size_t errlen);

	/*
	 * Runs one task. input is the task's JSON text, NUL-terminated.
	 * On success returns BATCHD_OK (0) and sets *result to a malloc()ed
	 * JSON text, or leaves it NULL for a null result. On failure returns
	 * BATCHD_FAILED (-1), or BATCHD_INIT_FAILED (above), and sets
	 * *result to a malloc()ed error message (or NULL for a generic one).
	 */
	int (*run)(void *state, struct batchd_task *task, const char *input,
		   char **result);

	/* Releases the state. May be NULL. */
	void (*fini)(void *state);
};

/*
 * Reports the task's progress: fraction in [0, 1] (clamped), message may be
 * NULL. Cheap to call often: updates are coalesced before they reach the
 * database. Only valid during run() on the task it was given.
 */
void batchd_progress(struct batchd_task *task, double fraction,
		     const char *message);

/*
 * Whether the task should stop now: its job was cancelled, or it has run
 * past its timeout. A long run() that asks now and then (between frames,
 * batches, steps: it is cheap, and looks for the server's word at most
 * every few milliseconds) can return at once — what it returns is not
 * kept — and its worker, with the state of every handler in it, lives on.
 * A run() that does not ask is killed with its worker 2 s after the stop.
 * Only valid during run() on the task it was given. A batchd that predates
 * it has no such symbol: a plugin that calls it needs this version or a
 * later one.
 */
int batchd_task_should_stop(struct batchd_task *task);

/* The task's job id, index in the job, and attempt number (1 for the first). */
int64_t batchd_task_job(const struct batchd_task *task);
int64_t batchd_task_index(const struct batchd_task *task);
int batchd_task_attempt(const struct batchd_task *task);

/* The symbol a plugin exports. */
typedef const struct batchd_handler *(*batchd_handler_get_fn)(void);
#define BATCHD_HANDLER_SYMBOL "batchd_handler_get"

#ifdef __cplusplus
}
#endif

#endif
