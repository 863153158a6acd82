/*
 * harness: what the integration tests share. Each test starts the real
 * batchd binary (the sanitized build, build/asan/batchd, or $BATCHD_BIN) on
 * an ephemeral port with a fresh temporary directory, talks real HTTP to it
 * with libcurl, and stops it in teardown. Waits are on conditions with
 * deadlines, never fixed sleeps.
 */
#ifndef BATCHD_HARNESS_H
#define BATCHD_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

struct server {
	pid_t pid;
	int port;
	char dir[256];		/* temporary directory, removed by server_free */
	char db[320];
	char log[320];
	char url[64];
	const char *token;	/* sent by api() when set */
	int own_dir;
};

struct resp {
	long status;
	char *body;		/* NUL-terminated */
	size_t len;
	cJSON *json;		/* parsed body or NULL */
	char *headers;		/* raw response headers */
};

/* The batchd binary under test. */
const char *batchd_bin(void);

/* Makes a fresh server record with its own temporary directory. */
void server_init(struct server *s);
/* A server record on the heap (server_init), started with args unless
 * args is NULL. For fixtures; end it with server_delete(). */
struct server *server_new(const char *const *args);
/* server_free() (a clean stop, checked) and the record's memory. */
void server_delete(struct server *s);
/* cmocka fixtures: *state becomes a server_new(NULL) record, and goes. */
int server_setup(void **state);
int server_teardown(void **state);
/* Whether process pid exists and is not a zombie. */
int pid_alive(pid_t pid);
/* Waits up to s seconds until none of the n processes is alive; 1 if so. */
int pids_gone_within(const pid_t *pids, int n, double s);
/* Waits up to s seconds until the file at path holds n numbers (pids a
 * program wrote); returns how many it read into pids. */
int read_pids_file(const char *path, pid_t *pids, int n, double s);
/* Forks and executes argv (argv[0] a batchd binary) as the record's server:
 * its output appended to the record's log, the sanitizers' options set, and
 * killed if the test dies; sets s->pid and returns it. */
pid_t server_spawn(struct server *s, const char *const *argv);
/* Starts batchd serve with the extra arguments (NULL-terminated, may be
 * NULL) on the record's database; fails the test if it does not come up. */
void server_start(struct server *s, const char *const *args);
/* Starts it and returns 0, or returns its exit status when it exits
 * during start-up (for tests of refused starts); the log holds why. */
int server_try_start(struct server *s, const char *const *args, double timeout_s);
/* SIGTERM, then waits; returns the exit status (as from waitpid). */
int server_stop(struct server *s);
/* SIGKILL, then waits. */
void server_kill(struct server *s);
/* Stops the server if running and removes the directory. */
void server_free(struct server *s);
/* The pids of the server's children (its workers), up to max: all but
 * its checkpointer. */
int server_children(const struct server *s, pid_t *out, int max);
/* The pid of the server's checkpointer (ckpt.h), or 0 when none runs. */
pid_t server_checkpointer(const struct server *s);
/* Whether the server's log contains text. */
int server_log_has(const struct server *s, const char *text);

/* A TCP connection to the server (close it), for what curl would tidy up;
 * fails the test if it cannot connect. */
int server_connect(const struct server *s);
/* One request. headers: NULL-terminated "Name: value" list or NULL. */
void http_request(const struct server *s, const char *method, const char *path,
		  const char *body, const char *const *headers, struct resp *r);
void resp_free(struct resp *r);
/* A response header's value (copied into out), or NULL. */
const char *resp_header(const struct resp *r, const char *name, char *out,
			size_t len);

/* Sends a request and checks its status; returns the JSON body (free it
 * with cJSON_Delete), or NULL for an empty body. */
cJSON *api(const struct server *s, const char *method, const char *path,
	   const char *body, long status);
/* Same, formatting the path. */
cJSON *apif(const struct server *s, const char *method, long status,
	    const char *body, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Submits a job body; returns its id. */
int64_t submit(const struct server *s, const char *body);
/* Polls the job until its state is one of states ("succeeded|failed") or
 * timeout_s passes (then fails the test). Returns the job object. */
cJSON *wait_job(const struct server *s, int64_t id, const char *states,
		double timeout_s);
/* The whole of a file, NUL-terminated, to free(); NULL if it cannot be
 * opened. */
char *file_text(const char *path);
/* The number of workers whose state is one of states ("idle|busy"); their
 * number in all in *total when total is not NULL. */
int workers_in(const struct server *s, const char *states, int *total);
/* A wait_until() condition: exactly *(int *)ctx workers are idle. */
int workers_idle(const struct server *s, void *ctx);
/* Workers replaced since the server started: all of them (cause NULL,
 * from /api/progress), or those of one cause (from /metrics; -1 when the
 * series is missing). */
int restarts(const struct server *s, const char *cause);
/* Polls until cond(ctx) is true or the deadline; returns 1 if it became
 * true. */
int wait_until(int (*cond)(const struct server *s, void *ctx),
	       const struct server *s, void *ctx, double timeout_s);

/* JSON helpers: number at a dotted path ("progress.succeeded"), string. */
double jnum(const cJSON *o, const char *path);
const char *jstr(const cJSON *o, const char *path);

/* Writes a file (mode) under the server's directory; returns its path in
 * out. */
const char *write_file(const struct server *s, const char *name,
		       const char *text, int mode, char *out, size_t len);
/* Mounts a fresh tmpfs (options like "size=2m") on dir, creating dir;
 * 0, or -1 when this process may not mount (not root). */
int mount_tmpfs(const char *dir, const char *opts);
/* Unmounts dir (lazily if busy) and removes it; 0 or -1. */
int unmount(const char *dir);
/* Runs a shell command; returns its exit status. */
int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double now_s(void);

#endif
