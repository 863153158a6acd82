/*
 * worker: the body of a worker process.
 *
 * A worker is forked by the server and talks to it over one socket (see
 * frame.h). It runs one task at a time, in the order received, and keeps
 * each handler's state from its first task on: a handler's init() runs once
 * per worker, not once per task. It never touches the database.
 *
 * A worker ends when the server sends STOP (after the task it is running)
 * or closes the socket.
 */
#ifndef BATCHD_WORKER_H
#define BATCHD_WORKER_H

#include <stdint.h>
#include <sys/types.h>

#include "registry.h"

/*
 * Runs the worker loop on sock. id is the worker's number, used in logs.
 * Returns the exit status the process should _exit() with; it never
 * returns to the server's code (the caller must not).
 */
int worker_main(int sock, int id, const struct registry *reg);

/* Sets the memory limit (resident bytes, 0 for none) of this worker; the
 * command runner holds the programs it starts to it too. Call before
 * worker_main. */
void worker_set_memory_limit(int64_t bytes);
int64_t worker_memory_limit(void);
/* Bytes resident in process pid (as top shows it), or -1. */
int64_t worker_resident(int pid);

/*
 * Forwards a progress update that batchd_progress() held back to coalesce
 * it, once the coalescing interval has passed. For handlers that wait on
 * something else between reports (the command runner calls it as it polls).
 */
void worker_progress_flush(struct batchd_task *task);

/*
 * A handler's set-up in this worker begins or ends (ok: it succeeded) in the
 * middle of task: the server does not count set-up time against the task's
 * timeout (init_timeout_s bounds it instead). The worker calls these around
 * init(); a handler whose set-up goes on into run() (a persistent
 * co-process until its first line) calls worker_setup_done() itself.
 */
void worker_setup_start(struct batchd_task *task);
void worker_setup_done(struct batchd_task *task);

/*
 * Stopping a task without losing the worker. The server asks it with a
 * SKIP of the running task (its job was cancelled, or it ran past its
 * timeout). The command and persistent runners poll worker_fd() with their
 * program's pipes and, when it is readable, call worker_stop_asked(), which
 * reads what the server sent and says whether the task should stop (also
 * when the server has gone). A handler that does not look is killed with
 * its worker when the server's patience ends.
 */
int worker_fd(const struct batchd_task *task);
int worker_stop_asked(struct batchd_task *task);

/*
 * Where the programs a worker starts announce their process groups, in
 * memory the server shares with this worker (see pool.c): the server kills
 * those groups too when it kills the worker. n slots: the first is the
 * command runner's program's (worker_group_slot()); a co-process claims
 * one of the others (worker_group_claim(): a free one, or NULL if none is
 * left) and gives it back by writing 0. Set before worker_main; without
 * it (a worker run on its own) the announcements go nowhere, and there is
 * no slot to claim.
 */
void worker_set_group_slots(volatile pid_t *slots, int n);

/*
 * The task a worker is in (its set-up, its run, its result's checks), in
 * memory it shares with the server (see pool.c): on is set once job and
 * idx are, and cleared before the result is sent. When a worker dies the
 * server reads it to know which task was running: results held for a
 * batch may leave the server's own view on a task that had finished.
 */
struct worker_running {
	uint64_t job;
	uint32_t idx;
	uint32_t on;
};
/* Where this worker records it; without it, nowhere. */
void worker_set_running(volatile struct worker_running *r);
volatile pid_t *worker_group_slot(void);
volatile pid_t *worker_group_claim(void);

#endif
