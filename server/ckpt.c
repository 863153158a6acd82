/*
 * ckpt: the checkpointer process. See ckpt.h.
 *
 * The server talks to it over a socketpair: a byte asks for a checkpoint,
 * a line answers it (store_checkpoint_serve). One is asked at a time.
 */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "../workers/proc.h"
#include "metrics.h"

/* A checkpointer that ended is started again this long after the last
 * start, doubling while it keeps ending without a checkpoint done. */
#define RESTART_MIN_US 1000000
#define RESTART_MAX_US 60000000

extern char **environ;

struct ckpt {
	struct loop *loop;
	struct store *store;
	char *db;
	char exe[PATH_MAX];	/* this binary, found at each start */
	int no_exe;		/* it could not be, and that was said */
	pid_t pid;		/* 0 when none runs, or it was reaped */
	int status;		/* its wait status, once reaped */
	int fd;			/* the socket to it; -1 when none */
	int busy;		/* a checkpoint asked for, not yet answered */
	int failing;		/* the last checkpoint failed (said once) */
	int64_t started_us;
	int64_t backoff_us;
	char in[1024];		/* a reply, up to its newline */
	size_t in_len;
};

/* The binary this process runs, to start again as the checkpointer: not
 * when it was replaced since (an upgrade in place), for the new one is not
 * this server's version. 0, or -1 (said once). */
static int find_exe(struct ckpt *c)
{
	ssize_t n = readlink("/proc/self/exe", c->exe, sizeof(c->exe) - 1);
	static const char deleted[] = " (deleted)";
	size_t dl = sizeof(deleted) - 1;

	if (n <= 0 || (size_t)n >= sizeof(c->exe) - 1 ||
	    ((size_t)n > dl && !memcmp(c->exe + n - dl, deleted, dl))) {
		if (!c->no_exe)
			LOG_INFO("no checkpointer: the batchd binary was replaced or removed since the start; the server checkpoints itself");
		c->no_exe = 1;
		return -1;
	}
	c->exe[n] = '\0';
	return 0;
}

/* The next start waits longer. */
static void back_off(struct ckpt *c)
{
	c->backoff_us = c->backoff_us ? c->backoff_us * 2 : RESTART_MIN_US;
	if (c->backoff_us > RESTART_MAX_US)
		c->backoff_us = RESTART_MAX_US;
}

static void failed(struct ckpt *c, const char *who, const char *error)
{
	if (!c->failing)
		LOG_WARN("checkpoint failed", LF_S("by", who), LF_S("error", error));
	c->failing = 1;
}

static void succeeded(struct ckpt *c, int by_server)
{
	if (c->failing)
		LOG_INFO("checkpoints work again");
	c->failing = 0;
	metrics_checkpoint(by_server);
}

/* The socket closed: the checkpointer has ended, or is ending. */
static void ended(struct ckpt *c, const char *cause)
{
	loop_del(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	c->busy = 0;
	c->in_len = 0;
	if (c->pid > 0) {
		while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
	if (cause) {
		struct buf b = BUF_INIT;

		proc_describe_status(&b, c->status);
		LOG_WARN("checkpointer ended", LF_S("cause", cause), LF_S("status", b.data));
		buf_release(&b);
		back_off(c);
	}
}

static void on_reply(void *ctx, int fd, uint32_t events)
{
	struct ckpt *c = ctx;
	ssize_t n = read(fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);
	char *nl;

	(void)events;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		ended(c, n < 0 ? strerror(errno) : "its socket closed");
		return;
	}
	c->in_len += (size_t)n;
	c->in[c->in_len] = '\0';
	while ((nl = memchr(c->in, '\n', c->in_len))) {
		size_t used = (size_t)(nl - c->in) + 1;

		*nl = '\0';
		c->busy = 0;
		if (!strncmp(c->in, "ok ", 3)) {
			succeeded(c, 0);
			c->backoff_us = 0;
		} else {
			failed(c, "checkpointer",
			       strncmp(c->in, "error ", 6) ? c->in : c->in + 6);
		}
		c->in_len -= used;
		memmove(c->in, c->in + used, c->in_len);
	}
	if (c->in_len == sizeof(c->in) - 1) {
		kill(c->pid, SIGKILL);
		ended(c, "a reply too long");
	}
}

static int start(struct ckpt *c)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	char spid[32];
	char *argv[] = { "batchd", "__checkpointer", c->db, spid, NULL };
	int sv[2], rc;

	c->started_us = clock_mono_us();
	if (find_exe(c) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		LOG_WARN("cannot start the checkpointer", LF_S("error", strerror(errno)));
		back_off(c);
		return -1;
	}
	snprintf(spid, sizeof(spid), "%ld", (long)getpid());
	/* The server blocks the signals it reads from its signalfd: the
	 * checkpointer starts with none blocked, and chooses its own. */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&c->pid, c->exe, &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (rc) {
		LOG_WARN("cannot start the checkpointer", LF_S("exe", c->exe),
			 LF_S("error", strerror(rc)));
		close(sv[0]);
		c->pid = 0;
		back_off(c);
		return -1;
	}
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	c->fd = sv[0];
	if (loop_add(c->loop, c->fd, EPOLLIN, on_reply, c) < 0) {
		kill(c->pid, SIGKILL);
		close(c->fd);
		c->fd = -1;
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
		back_off(c);
		return -1;
	}
	LOG_DEBUG("checkpointer started", LF_I("pid", c->pid));
	return 0;
}

/* After each COMMIT: the WAL holds frames pages. */
static void on_wal(void *ctx, int frames)
{
	struct ckpt *c = ctx;
	int rc;

	if (frames < STORE_CHECKPOINT_FRAMES)
		return;
	if (frames < CKPT_SELF_FRAMES) {
		if (c->busy)
			return;
		if (c->fd < 0 && clock_mono_us() - c->started_us >= c->backoff_us)
			start(c);
		if (c->fd >= 0 && send(c->fd, "c", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
			c->busy = 1;
			return;
		}
	}
	/* No checkpointer, or the WAL too long: here, now. While the
	 * checkpointer runs one this finds it busy and returns at once. */
	rc = store_checkpoint(c->store);
	if (rc == 0)
		succeeded(c, 1);
	else if (rc < 0)
		failed(c, "server", store_errmsg(c->store));
}

struct ckpt *ckpt_new(struct loop *loop, struct store *store, const char *db)
{
	struct ckpt *c = xcalloc(1, sizeof(*c));

	c->loop = loop;
	c->store = store;
	c->db = xstrdup(db);
	c->fd = -1;
	store_on_wal(store, on_wal, c);
	return c;
}

void ckpt_reap(struct ckpt *c)
{
	if (c && c->pid > 0 && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
		c->pid = 0;
}

void ckpt_free(struct ckpt *c)
{
	if (!c)
		return;
	store_on_wal(c->store, NULL, NULL);
	/* At end of file it finishes the checkpoint it runs, if any, and
	 * exits. */
	if (c->fd >= 0)
		ended(c, NULL);
	free(c->db);
	free(c);
}

int ckpt_main(int argc, char **argv)
{
	struct stat st;

	if (argc != 3 || fstat(3, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "batchd: __checkpointer is started by batchd serve, not by hand\n");
		return 2;
	}
	/* Only the server ends it, by closing the socket: a Ctrl-C sent to
	 * the whole group must not cut a checkpoint short. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	prctl(PR_SET_NAME, "batchd-ckpt");
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if ((long)getppid() != atol(argv[2]))
		return 1;
	close_range(4, ~0U, 0);
	return store_checkpoint_serve(3, argv[1]) < 0 ? 1 : 0;
}
