/*
 * proc: starting the programs of command and persistent handlers.
 *
 * Both kinds start a program named in the handlers file the same way: no
 * shell (an input never reaches a command line), a clean environment (PATH,
 * HOME, LANG and the handler's "env" entries; nothing of batchd's own, a
 * token for one), default signal dispositions and an empty signal mask
 * (the worker ignores SIGINT and SIGTERM; its programs must not inherit
 * that). And both describe a program's end the same way in a task's error.
 */
#ifndef BATCHD_PROC_H
#define BATCHD_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "../lib/buf.h"

struct proc_spec {
	char **argv;		/* NULL-terminated */
	char **env;		/* NULL-terminated: the fixed entries */
	size_t nenv;
};

/*
 * Fills spec from a handler's configuration {"argv": [...], "env": {...}}
 * (as written by the registry, which has checked it). Returns 0, or -1 with
 * a message in err; on error spec holds nothing to release.
 */
int proc_spec_init(struct proc_spec *spec, const cJSON *config, char *err,
		   size_t errlen);
void proc_spec_release(struct proc_spec *spec);

/*
 * Starts spec's program with fds[i] as its descriptor i (0 <= i < nfds) and
 * the entries of extra (NULL-terminated, may be NULL) added to its
 * environment. Every other descriptor of the worker must be close-on-exec.
 * The program gets default signal dispositions, an empty signal mask, and
 * dies with the worker (PR_SET_PDEATHSIG). With group set, it leads a
 * process group of its own, and its pid (the group's id) is stored in
 * *group before it runs, so that the server can find it from outside;
 * otherwise it is in the worker's group. Returns 0 and sets *pid, or an
 * errno value (exec failures included).
 */
int proc_spawn(const struct proc_spec *spec, const int *fds, int nfds,
	       char *const *extra, volatile pid_t *group, pid_t *pid);

/* Appends how a program ended, from its wait status: "exited with status
 * 3", "killed by signal 11 (SIGSEGV)". */
void proc_describe_status(struct buf *b, int status);

/* Appends "; stderr: " and the end of what a program wrote on stderr (at
 * most tail bytes, from a character boundary, trailing blanks trimmed), or
 * nothing when it wrote nothing but blanks. */
void proc_add_stderr(struct buf *b, const char *err, size_t len, size_t tail);

/* Reaps pid, waiting for it (retrying on EINTR). Returns its wait status. */
int proc_wait(pid_t pid);

#endif
