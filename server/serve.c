/*
 * serve: the server's set-up, event loop and shutdown. See serve.h.
 *
 * The loop turn: wait for events (HTTP, worker sockets, signals, timer),
 * run their callbacks, enforce timeouts and retries, hand out tasks, and
 * commit the group transaction when there is nothing else to do (or at
 * least every COMMIT_EVERY_US while busy). One thread does all of it.
 */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../db/store.h"
#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/log.h"
#include "../workers/registry.h"
#include "ckpt.h"
#include "config.h"
#include "http.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "sched.h"
#include "version.h"

/* While busy, the group transaction is committed at least this often. */
#define COMMIT_EVERY_US 50000
/* ...and when idle, once it is this old: results that trickle in (a
 * command per task, a few thousand a second) share a commit instead of
 * paying one each. Readers see the group through sched_sync() anyway. */
#define COMMIT_MIN_US 5000
/* Committed work reaches the disk within this long (sync_tick). */
#define SYNC_EVERY_US 1000000
/* --keep-finished: a sweep deletes about this many tasks at most, so that
 * it holds the loop for tens of milliseconds, not seconds; the next one
 * follows this soon when the last stopped at that budget. */
#define EXPIRE_BUDGET 100000
#define EXPIRE_AGAIN_US 20000

struct server {
	struct config cfg;
	struct app app;
	struct loop *loop;
	struct registry *reg;
	struct store *store;
	struct ckpt *ckpt;
	struct sched *sched;
	struct pool *pool;
	struct http *http;
	int sigfd;
	int listen_fd;
	int stopping;
	int aborted;
	int64_t stop_deadline;	/* monotonic us */
	int64_t expire_at;	/* monotonic us: the next --keep-finished sweep */
	int64_t sync_at;	/* monotonic us: the WAL's next sync; 0: none due */
	int sync_failing;	/* the last sync failed (said once) */
};

/* Makes sure descriptors 0, 1 and 2 are open, so that nothing we open
 * later lands on them. */
static void fix_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0) {
			int n = open("/dev/null", O_RDWR);

			if (n >= 0 && n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
	}
}

/* Raises the open-file limit as far as allowed: every connection and
 * worker takes descriptors. Returns the limit now in force. */
static long raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur > (rlim_t)1 << 30 ? 1L << 30 : (long)rl.rlim_cur;
}

/* Keeps --max-connections within the open-file limit, leaving room for
 * the database, the workers' sockets and the loop's own descriptors, so
 * that the server refuses a connection with a 503 rather than running out
 * of descriptors. */
static void fit_connections(struct config *cfg, long nofile)
{
	long room = nofile - 64 - 2L * cfg->workers;

	if (room < 16)
		room = 16;
	if (cfg->max_connections > room) {
		LOG_WARN("fewer connections than --max-connections: open files are limited",
			 LF_I("max_connections", room), LF_I("asked", cfg->max_connections),
			 LF_I("nofile", nofile));
		cfg->max_connections = (int)room;
	}
}

/*
 * Becomes user name for good: its groups, its gid, its uid (real, effective
 * and saved), then checks that root cannot be taken back. Started as that
 * user already, there is nothing to do. 0, or -1 with a message.
 */
static int drop_privileges(const char *name, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(name);

	if (!pw) {
		snprintf(err, errlen, "--user %s: no such user", name);
		return -1;
	}
	if (getuid() != 0 || geteuid() != 0) {
		if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid)
			return 0;
		snprintf(err, errlen, "--user %s: batchd must be started as root to switch users",
			 name);
		return -1;
	}
	if (initgroups(name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "--user %s: cannot switch to it: %s", name, strerror(errno));
		return -1;
	}
	if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 ||
				getuid() != pw->pw_uid || geteuid() != pw->pw_uid ||
				getgid() != pw->pw_gid || getegid() != pw->pw_gid)) {
		snprintf(err, errlen, "--user %s: root privileges could be taken back", name);
		return -1;
	}
	return 0;
}

/* Binds the listening socket for "host:port" ("[::1]:80" for IPv6). */
static int listen_on(const char *addr, char *bound, size_t boundlen, char *err,
		     size_t errlen)
{
	char host[256], port[16];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	size_t hl;
	int fd = -1, rc, one = 1, saved = 0;

	hl = (size_t)(colon - addr);
	if (hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port) || !colon[1]) {
		snprintf(err, errlen, "cannot listen on %s: expected HOST:PORT", addr);
		return -1;
	}
	memcpy(host, addr, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(saved));
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char h[NI_MAXHOST], p[NI_MAXSERV];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(bound, boundlen, strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, p);
	else
		snprintf(bound, boundlen, "%s", addr);
	return fd;
}

static void begin_shutdown(struct server *sv, const char *why)
{
	if (sv->stopping)
		return;
	sv->stopping = 1;
	sv->app.stopping = 1;
	sv->stop_deadline = clock_mono_us() + (int64_t)(sv->cfg.grace_s * 1e6);
	LOG_INFO("shutting down", LF_S("signal", why), LF_I("running", sched_running(sv->sched)),
		 LF_F("grace_s", sv->cfg.grace_s));
	http_quiesce(sv->http);
	sched_stop(sv->sched);
	pool_stop(sv->pool);
}

/* Every commit of the store: its metrics, and what the scheduler holds
 * back until its group has landed. */
static void on_commit(void *ctx, int64_t us, int ok)
{
	struct server *sv = ctx;

	metrics_commit(NULL, us, ok);
	if (sv->sched)
		sched_committed(sv->sched, ok);
}

/* Why the server cannot start, as the last thing it says: a line of the
 * log's format with --log-format json (a log shipper reads it like any
 * other), else "batchd serve: why" for the person at the terminal. */
static void fatal(const struct config *cfg, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	if (cfg->log_format == LOG_JSON)
		LOG_ERROR("cannot start", LF_S("error", b.data));
	else
		fprintf(stderr, "batchd serve: %s\n", b.data);
	buf_release(&b);
}

static void on_signal(void *ctx, int fd, uint32_t events)
{
	struct server *sv = ctx;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			ckpt_reap(sv->ckpt);
			pool_reap(sv->pool);
			break;
		case SIGINT:
		case SIGTERM:
			if (sv->stopping && !sv->aborted) {
				LOG_WARN("second signal: stopping running tasks now");
				sv->aborted = 1;
				sched_abort(sv->sched);
			}
			begin_shutdown(sv, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			break;
		case SIGHUP:
			/* Often sent to mean "reload": say that nothing is, rather
			 * than die of it (its default) or take it in silence. */
			LOG_INFO("SIGHUP ignored: batchd reloads nothing; restart it to change its settings");
			break;
		default:
			break;
		}
	}
}

static int64_t earliest(int64_t a, int64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

/* Deletes the finished jobs older than --keep-finished, a budget at a
 * time; sweeps a tenth as often as that age (every 1 to 60 s). Returns
 * when to come back, or 0 with no age set. */
static int64_t expire_tick(struct server *sv, int64_t now)
{
	int64_t keep = sv->cfg.keep_finished_ms, jobs, tasks, every;
	int more;

	if (!keep || sv->stopping)
		return 0;
	if (now < sv->expire_at)
		return sv->expire_at;
	more = sched_expire(sv->sched, clock_wall_ms() - keep, EXPIRE_BUDGET, &jobs, &tasks);
	every = keep * 100;	/* a tenth of it, in us */
	if (every < 1000000)
		every = 1000000;
	if (every > 60000000)
		every = 60000000;
	sv->expire_at = now + (more > 0 ? EXPIRE_AGAIN_US : every);
	return sv->expire_at;
}

/* What is committed reaches the disk within SYNC_EVERY_US: a power loss
 * or a system crash undoes at most that last while (tasks run again; a
 * job, cancel or retry acknowledged in it may be gone). A commit itself
 * does not wait for the disk: a job's answer would take a sync's time
 * (~1 ms here), and the results of tiny tasks would wait on it. Returns
 * when to come back. */
static int64_t sync_tick(struct server *sv, int64_t now)
{
	if (!store_unsynced(sv->store)) {
		sv->sync_at = 0;
		return 0;
	}
	if (!sv->sync_at)
		sv->sync_at = now + SYNC_EVERY_US;
	if (now < sv->sync_at)
		return sv->sync_at;
	sv->sync_at = 0;
	if (store_sync(sv->store) == 0) {
		metrics_sync();
		if (sv->sync_failing)
			LOG_INFO("the database syncs to disk again");
		sv->sync_failing = 0;
	} else if (!sv->sync_failing) {
		/* Said once; tried again each second. */
		LOG_WARN("cannot sync the database to disk", LF_S("error", store_errmsg(sv->store)));
		sv->sync_failing = 1;
	}
	return 0;
}

static int run(struct server *sv)
{
	int64_t txn_since = 0;

	for (;;) {
		int64_t now = clock_mono_us(), next;
		int n, ripe;

		/* Stopped once the workers are gone and every answer begun is
		 * sent (an export being read), unless the grace period is over
		 * or a second signal came. */
		if (sv->stopping && pool_alive(sv->pool) == 0 &&
		    (http_requests(sv->http) == 0 || sv->aborted || now >= sv->stop_deadline))
			break;
		if (sv->stopping && !sv->aborted && now >= sv->stop_deadline) {
			LOG_WARN("grace period over: stopping running tasks",
				 LF_I("running", sched_running(sv->sched)));
			sv->aborted = 1;
			sched_abort(sv->sched);
		}
		next = sched_tick(sv->sched, now);
		next = earliest(next, pool_tick(sv->pool, now));
		next = earliest(next, http_deadline(sv->http, now));
		next = earliest(next, expire_tick(sv, now));
		next = earliest(next, sync_tick(sv, now));
		if (sv->stopping && !sv->aborted)
			next = earliest(next, sv->stop_deadline);
		if (next && next <= now) {
			http_run(sv->http);
			/* A response with more to send comes round again at once
			 * (the timer fires as the other sockets are looked at);
			 * anything else due is looked at a millisecond on, so a
			 * deadline that stays due cannot spin the loop. */
			next = http_pending(sv->http) ? now : now + 1000;
		}
		/* An open group young enough to wait: wake up when it is old
		 * enough; an older one: only look whether anything is ready. */
		ripe = store_in_txn(sv->store) && now - txn_since >= COMMIT_MIN_US;
		if (store_in_txn(sv->store) && !ripe)
			next = earliest(next, txn_since + COMMIT_MIN_US);
		loop_set_timer(sv->loop, next);
		n = loop_run_once(sv->loop, ripe ? 0 : -1);
		if (n < 0) {
			LOG_ERROR("event loop failed", LF_S("error", strerror(errno)));
			return -1;
		}
		now = clock_mono_us();
		if (http_deadline(sv->http, now) && http_deadline(sv->http, now) <= now)
			http_run(sv->http);
		sched_tick(sv->sched, now);
		sched_dispatch(sv->sched);
		if (store_in_txn(sv->store)) {
			if (!txn_since)
				txn_since = now;
			if ((n == 0 && now - txn_since >= COMMIT_MIN_US) ||
			    now - txn_since >= COMMIT_EVERY_US) {
				sched_flush(sv->sched);
				txn_since = 0;
			}
		} else {
			txn_since = 0;
		}
	}
	return 0;
}

int serve_main(int argc, char **argv)
{
	struct server sv = { .sigfd = -1, .listen_fd = -1 };
	struct sched_config scfg;
	struct pool_config pcfg = { 0 };
	char err[1024], bound[300];
	sigset_t mask;
	int rc = 1;

	/* Signals wait in the signalfd from the very start: a SIGTERM that
	 * arrives while the database opens is acted on (a graceful stop)
	 * once the loop runs, never lost — as PID 1 in a container, a
	 * signal without a handler would simply be dropped. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	fix_stdio();
	switch (config_parse(&sv.cfg, argc, argv, err, sizeof(err))) {
	case 1:
		config_release(&sv.cfg);
		return 0;
	case -1:
		fprintf(stderr, "batchd serve: %s\n", err);
		config_release(&sv.cfg);
		return 2;
	}
	log_setup(sv.cfg.log_level, sv.cfg.log_format);
	fit_connections(&sv.cfg, raise_nofile());
	signal(SIGPIPE, SIG_IGN);

	/* Only binding may need root (a port below 1024): with --user,
	 * everything after it — reading the handlers file, loading plugins,
	 * creating and writing the database, the workers and the programs
	 * they start — runs as that user. */
	sv.listen_fd = listen_on(sv.cfg.listen, bound, sizeof(bound), err, sizeof(err));
	if (sv.listen_fd < 0) {
		fatal(&sv.cfg, "%s", err);
		goto out;
	}
	if (sv.cfg.user && drop_privileges(sv.cfg.user, err, sizeof(err)) < 0) {
		fatal(&sv.cfg, "%s", err);
		goto out;
	}
	sv.reg = registry_new();
	if (sv.cfg.handlers &&
	    registry_load_file(sv.reg, sv.cfg.handlers, err, sizeof(err)) < 0) {
		fatal(&sv.cfg, "%s", err);
		goto out;
	}
	sv.store = store_open(sv.cfg.db, err, sizeof(err));
	if (!sv.store) {
		fatal(&sv.cfg, "%s", err);
		goto out;
	}
	if (sv.cfg.sync_commit && store_sync_each_commit(sv.store) < 0) {
		fatal(&sv.cfg, "database %s: %s", sv.cfg.db, store_errmsg(sv.store));
		goto out;
	}
	metrics_init(sv.reg);
	store_on_commit(sv.store, on_commit, &sv);

	sv.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	sv.loop = loop_new();
	if (sv.sigfd < 0 || !sv.loop ||
	    loop_add(sv.loop, sv.sigfd, EPOLLIN, on_signal, &sv) < 0) {
		fatal(&sv.cfg, "cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	sv.ckpt = ckpt_new(sv.loop, sv.store, sv.cfg.db);

	scfg.default_timeout_ms = (int64_t)(sv.cfg.default_timeout_s * 1000);
	sv.sched = sched_new(sv.store, sv.reg, &scfg);
	if (sched_load(sv.sched, err, sizeof(err)) < 0) {
		fatal(&sv.cfg, "%s: %s", sv.cfg.db, err);
		goto out;
	}
	pcfg.size = sv.cfg.workers;
	pcfg.max_tasks = sv.cfg.max_tasks_per_worker;
	pcfg.max_rss = sv.cfg.worker_memory_limit;
	sv.pool = pool_new(sv.loop, sv.reg, &pcfg, sched_pool_events(), sv.sched);
	sched_set_pool(sv.sched, sv.pool);
	if (pool_start(sv.pool, err, sizeof(err)) < 0) {
		fatal(&sv.cfg, "cannot start workers: %s", err);
		goto out;
	}

	sv.app.cfg = &sv.cfg;
	sv.app.store = sv.store;
	sv.app.sched = sv.sched;
	sv.app.pool = sv.pool;
	sv.app.reg = sv.reg;
	sv.app.started_at = clock_wall_ms();
	sv.http = http_new(&sv.app, sv.loop, sv.listen_fd, err, sizeof(err));
	if (!sv.http) {
		fatal(&sv.cfg, "%s", err);
		goto out;
	}
	sv.listen_fd = -1;	/* the daemon owns it now */
	LOG_INFO("listening", LF_S("addr", bound), LF_S("db", sv.cfg.db),
		 LF_I("workers", sv.cfg.workers), LF_I("handlers", registry_count(sv.reg)),
		 LF_S("version", BATCHD_VERSION), LF_S("auth", sv.cfg.token ? "token" : "none"),
		 LF_I("uid", (long long)getuid()),
		 LF_S("sync", sv.cfg.sync_commit ? "commit" : "second"));

	if (run(&sv) == 0) {
		LOG_INFO("stopped");
		rc = 0;
	}
out:
	if (sv.sched && sv.store) {
		sched_flush(sv.sched);
		if (store_unsynced(sv.store) && store_sync(sv.store) == 0)
			metrics_sync();
	}
	http_free(sv.http);
	pool_free(sv.pool);
	sched_free(sv.sched);
	sv.sched = NULL;	/* on_commit may yet be called, by store_close */
	ckpt_free(sv.ckpt);
	store_close(sv.store);
	if (sv.listen_fd >= 0)
		close(sv.listen_fd);
	if (sv.sigfd >= 0)
		close(sv.sigfd);
	loop_free(sv.loop);
	registry_free(sv.reg);
	free(sv.app.progress_body);
	metrics_free();
	config_release(&sv.cfg);
	return rc;
}
