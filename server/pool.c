/*
 * pool: forking, feeding and reaping the workers. See pool.h.
 */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../workers/worker.h"

/* A worker that dies before saying hello is replaced after a delay that
 * doubles up to this, so that a broken set-up does not spin. */
#define RESPAWN_MAX_US 5000000
#define READ_CHUNK 262144
/* With a memory limit: every worker's size is read this often, and after
 * a task at most this often. */
#define MEMORY_POLL_US 100000
#define MEMORY_AFTER_TASK_US 1000

struct slot {
	struct pool_info info;
	int fd;			/* socket, -1 when none */
	int watching;		/* fd is in the loop */
	int writing;		/* EPOLLOUT armed */
	int alive;		/* a process exists (not reaped) */
	int eof;		/* its socket is done: closed or broken */
	int reaped;
	int status;
	struct buf in;
	struct buf out;
	size_t out_off;
	int64_t respawn_at;	/* monotonic us; 0: none pending */
	int quick_deaths;	/* deaths before hello, in a row */
	int64_t mem_checked_us;	/* when its size was last read */
};

struct pool {
	struct loop *loop;
	const struct registry *reg;
	struct pool_config cfg;
	struct pool_events ev;
	void *ctx;
	struct slot *slots;
	int next_id;
	int stopping;
	uint64_t restarts;
	pid_t server_pid;
	int64_t mem_poll_at;	/* monotonic us of the next size check */
	/* Shared with the workers: a row of `stride` entries per slot, where
	 * its worker stores the process groups of the programs it runs, each
	 * of which leads a group of its own (0: none): the command handler's
	 * program first, then its co-processes. Killing a worker kills those
	 * groups too, so that a program's own children do not outlive it. */
	volatile pid_t *groups;
	int stride;		/* 1 + the handlers: a co-process at most each */
	/* Shared too: the task each slot's worker is in (worker.h). */
	volatile struct worker_running *running;
};

static volatile pid_t *groups_of(struct pool *p, int i)
{
	return &p->groups[(size_t)i * (size_t)p->stride];
}

/* Kills the worker of slot i, its process group and the groups of the
 * programs it runs (its command program, its co-processes). */
static void kill_worker(struct pool *p, int i)
{
	struct slot *s = &p->slots[i];
	volatile pid_t *g = groups_of(p, i);

	kill(-s->info.pid, SIGKILL);
	kill(s->info.pid, SIGKILL);
	for (int k = 0; k < p->stride; k++)
		if (g[k] > 0)
			kill(-g[k], SIGKILL);
}

/* Forgets the groups of slot i's worker, which has been killed. */
static void clear_groups(struct pool *p, int i)
{
	volatile pid_t *g = groups_of(p, i);

	for (int k = 0; k < p->stride; k++)
		g[k] = 0;
}

static void on_socket(void *ctx, int fd, uint32_t events);

struct pool *pool_new(struct loop *l, const struct registry *reg,
		      const struct pool_config *cfg,
		      const struct pool_events *ev, void *ctx)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p)
		abort();
	p->loop = l;
	p->reg = reg;
	p->cfg = *cfg;
	p->ev = *ev;
	p->ctx = ctx;
	p->slots = calloc((size_t)cfg->size, sizeof(*p->slots));
	if (!p->slots)
		abort();
	for (int i = 0; i < cfg->size; i++) {
		p->slots[i].fd = -1;
		p->slots[i].info.handlers = calloc((size_t)registry_count(reg), 1);
		if (!p->slots[i].info.handlers)
			abort();
		buf_init(&p->slots[i].in);
		buf_init(&p->slots[i].out);
	}
	p->next_id = 1;
	p->server_pid = getpid();
	p->stride = 1 + registry_count(reg);
	p->groups = mmap(NULL, sizeof(pid_t) * (size_t)cfg->size * (size_t)p->stride,
			 PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->groups == MAP_FAILED)
		abort();
	p->running = mmap(NULL, sizeof(*p->running) * (size_t)cfg->size,
			  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->running == MAP_FAILED)
		abort();
	return p;
}

int pool_size(const struct pool *p)
{
	return p->cfg.size;
}

int pool_alive(const struct pool *p)
{
	int n = 0;

	for (int i = 0; i < p->cfg.size; i++)
		n += p->slots[i].alive;
	return n;
}

const struct pool_info *pool_info(const struct pool *p, int slot)
{
	return &p->slots[slot].info;
}

uint64_t pool_restarts(const struct pool *p)
{
	return p->restarts;
}

/* In the child: become a worker and never come back. */
static void become_worker(struct pool *p, int sock, int id, int slot)
{
	sigset_t none;
	int devnull;

	sigemptyset(&none);
	/* Only the server decides when a worker stops: a SIGTERM or SIGINT
	 * sent to every process (a terminal's Ctrl-C, a service manager
	 * killing the whole group) must not cut a task short. The programs
	 * a worker starts get default dispositions back. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_NAME, "batchd-worker");
	/* Die with the server, even a server killed by SIGKILL. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != p->server_pid)
		_exit(1);
	setpgid(0, 0);
	if (sock != 3 && dup2(sock, 3) < 0)
		_exit(1);
	fcntl(3, F_SETFD, FD_CLOEXEC);
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0)
		dup2(devnull, 0);
	close_range(4, ~0U, 0);
	worker_set_memory_limit(p->cfg.max_rss);
	worker_set_group_slots(groups_of(p, slot), p->stride);
	worker_set_running(&p->running[slot]);
	_exit(worker_main(3, id, p->reg));
}

static int spawn(struct pool *p, int i, char *err, size_t errlen)
{
	struct slot *s = &p->slots[i];
	sigset_t all, old;
	int sv[2];
	pid_t pid;
	int id = p->next_id++;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	clear_groups(p, i);
	p->running[i].on = 0;
	/* No signal handler may run in the child before it has reset them. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		become_worker(p, sv[1], id, i);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sv[0]);
		return -1;
	}
	setpgid(pid, pid);	/* also here: whichever runs first */
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	memset(s->info.handlers, 0, (size_t)registry_count(p->reg));
	s->info.id = id;
	s->info.pid = pid;
	s->info.started_at = clock_wall_ms();
	s->info.ready = 0;
	s->info.tasks_done = 0;
	s->info.stop_sent = 0;
	s->info.over_memory = 0;
	s->mem_checked_us = 0;
	s->fd = sv[0];
	s->alive = 1;
	s->eof = 0;
	s->reaped = 0;
	s->status = 0;
	s->writing = 0;
	s->out_off = 0;
	s->respawn_at = 0;
	buf_reset(&s->in);
	buf_reset(&s->out);
	if (loop_add(p->loop, s->fd, EPOLLIN, on_socket, p) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		s->eof = 1;
		return -1;
	}
	s->watching = 1;
	LOG_DEBUG("worker started", LF_I("id", id), LF_I("pid", pid), LF_I("slot", i));
	return 0;
}

int pool_start(struct pool *p, char *err, size_t errlen)
{
	for (int i = 0; i < p->cfg.size; i++)
		if (spawn(p, i, err, errlen) < 0)
			return -1;
	return 0;
}

static int slot_of_fd(struct pool *p, int fd)
{
	for (int i = 0; i < p->cfg.size; i++)
		if (p->slots[i].fd == fd)
			return i;
	return -1;
}

static void stop_watching(struct pool *p, struct slot *s)
{
	if (s->watching)
		loop_del(p->loop, s->fd);
	s->watching = 0;
	s->eof = 1;
}

static void write_out(struct pool *p, int i);

/* Tells the worker in slot to stop after its current task; it is then
 * replaced like any worker that ends. */
static void retire(struct pool *p, int i)
{
	struct slot *s = &p->slots[i];

	if (s->info.stop_sent || s->eof || !s->alive)
		return;
	frame_put_stop(&s->out);
	s->info.stop_sent = 1;
	write_out(p, i);
}

/* Reads the size of the worker in slot i; kills it when it is over the
 * limit. */
static void check_memory(struct pool *p, int i, int64_t now)
{
	struct slot *s = &p->slots[i];
	int64_t rss;

	if (!p->cfg.max_rss || !s->alive || s->reaped || s->info.over_memory || !s->info.ready)
		return;
	s->mem_checked_us = now;
	rss = worker_resident(s->info.pid);
	if (rss <= p->cfg.max_rss)
		return;
	s->info.over_memory = rss;
	LOG_WARN("worker over the memory limit: replacing it", LF_I("worker", s->info.id),
		 LF_I("resident_mib", (long long)(rss >> 20)),
		 LF_I("limit_mib", (long long)(p->cfg.max_rss >> 20)));
	pool_kill(p, i);
}

/* Hands over every complete frame in s->in. */
static void deliver(struct pool *p, int i)
{
	struct slot *s = &p->slots[i];
	size_t off = 0;
	char err[128];

	while (!s->eof || s->reaped || !s->alive) {
		struct frame f;
		ssize_t n = frame_decode(s->in.data + off, s->in.len - off, &f,
					 err, sizeof(err));

		if (n == 0)
			break;
		if (n < 0) {
			LOG_ERROR("bad frame from worker", LF_I("worker", s->info.id),
				  LF_S("error", err));
			stop_watching(p, s);
			if (s->alive)
				kill_worker(p, i);
			buf_reset(&s->in);
			return;
		}
		off += (size_t)n;
		switch (f.type) {
		case FRAME_HELLO:
			s->info.ready = 1;
			s->quick_deaths = 0;
			if (p->cfg.max_rss && worker_resident(s->info.pid) > p->cfg.max_rss) {
				/* Over already, it would be replaced forever: the
				 * limit cannot work. */
				LOG_ERROR("--worker-memory-limit is below the size of a fresh worker; "
					  "not enforcing it",
					  LF_I("limit_mib", (long long)(p->cfg.max_rss >> 20)),
					  LF_I("worker_mib", (long long)(worker_resident(s->info.pid) >> 20)));
				p->cfg.max_rss = 0;
			}
			p->ev.ready(p->ctx, i);
			break;
		case FRAME_RESULT:
			s->info.tasks_done++;
			p->ev.frame(p->ctx, i, &f);
			if (p->cfg.max_tasks && s->info.tasks_done >= (uint64_t)p->cfg.max_tasks)
				retire(p, i);
			if (p->cfg.max_rss) {
				int64_t now = clock_mono_us();

				if (now - s->mem_checked_us >= MEMORY_AFTER_TASK_US)
					check_memory(p, i, now);
			}
			break;
		case FRAME_INIT:
			if (f.handler < registry_count(p->reg) && f.ok != INIT_STARTING)
				s->info.handlers[f.handler] = f.ok == INIT_READY ? 1 : 2;
			p->ev.frame(p->ctx, i, &f);
			break;
		case FRAME_PROGRESS:
			p->ev.frame(p->ctx, i, &f);
			break;
		default:
			LOG_ERROR("unexpected frame from worker",
				  LF_I("worker", s->info.id), LF_I("type", f.type));
			stop_watching(p, s);
			if (s->alive)
				kill_worker(p, i);
			buf_reset(&s->in);
			return;
		}
	}
	buf_consume(&s->in, off);
}

/* Reads what the worker wrote. Returns 1 at end of stream. */
static int drain(struct pool *p, int i)
{
	struct slot *s = &p->slots[i];
	int end = 0;

	for (;;) {
		ssize_t n;

		buf_grow(&s->in, READ_CHUNK);
		n = read(s->fd, s->in.data + s->in.len, s->in.cap - s->in.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			end = 1;
			break;
		}
		s->in.len += (size_t)n;
		s->in.data[s->in.len] = '\0';
		if (s->in.len >= 4 * READ_CHUNK)
			deliver(p, i);	/* keep the buffer bounded */
	}
	deliver(p, i);
	return end;
}

static void write_out(struct pool *p, int i)
{
	struct slot *s = &p->slots[i];

	while (s->out_off < s->out.len && !s->eof) {
		ssize_t n = send(s->fd, s->out.data + s->out_off,
				 s->out.len - s->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {	/* EPIPE: it is dying; the reaper will see */
			s->out_off = s->out.len;
			break;
		}
		s->out_off += (size_t)n;
	}
	if (s->out_off >= s->out.len) {
		buf_reset(&s->out);
		s->out_off = 0;
	} else if (s->out_off > (1u << 20)) {
		buf_consume(&s->out, s->out_off);
		s->out_off = 0;
	}
	int want = s->out.len > s->out_off && !s->eof;

	if (want != s->writing && s->watching) {
		loop_mod(p->loop, s->fd, EPOLLIN | (want ? EPOLLOUT : 0));
		s->writing = want;
	}
}

static void finish(struct pool *p, int i);

static void on_socket(void *ctx, int fd, uint32_t events)
{
	struct pool *p = ctx;
	int i = slot_of_fd(p, fd);
	struct slot *s;

	if (i < 0)
		return;
	s = &p->slots[i];
	if (events & EPOLLOUT)
		write_out(p, i);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (drain(p, i)) {
			stop_watching(p, s);
			/* A worker closes its socket only as it exits; make
			 * sure of it. */
			if (s->alive && !s->reaped)
				kill_worker(p, i);
		}
	}
	if (s->reaped && s->eof && s->fd >= 0)
		finish(p, i);
}

int pool_accepts(const struct pool *p, int slot, size_t queued)
{
	const struct slot *s = &p->slots[slot];

	if (s->info.stop_sent || s->info.over_memory)
		return 0;
	return !p->cfg.max_tasks || s->info.tasks_done + queued < (uint64_t)p->cfg.max_tasks;
}

int pool_running(const struct pool *p, int slot, int64_t *job, int64_t *idx)
{
	const volatile struct worker_running *r = &p->running[slot];

	if (!r->on)
		return 0;
	*job = (int64_t)r->job;
	*idx = (int64_t)r->idx;
	return 1;
}

int64_t pool_memory_limit(const struct pool *p)
{
	return p->cfg.max_rss;
}

struct buf *pool_out(struct pool *p, int slot)
{
	return &p->slots[slot].out;
}

void pool_flush(struct pool *p, int slot)
{
	write_out(p, slot);
}

size_t pool_pending(const struct pool *p, int slot)
{
	const struct slot *s = &p->slots[slot];

	return s->out.len - s->out_off;
}

void pool_kill(struct pool *p, int slot)
{
	struct slot *s = &p->slots[slot];

	if (s->alive && !s->reaped)
		kill_worker(p, slot);
}

void pool_kill_all(struct pool *p)
{
	for (int i = 0; i < p->cfg.size; i++)
		pool_kill(p, i);
}

void pool_stop(struct pool *p)
{
	p->stopping = 1;
	for (int i = 0; i < p->cfg.size; i++) {
		struct slot *s = &p->slots[i];

		s->respawn_at = 0;
		if (s->alive && !s->eof) {
			frame_put_stop(&s->out);
			s->info.stop_sent = 1;
			write_out(p, i);
		}
	}
}

/* The worker in slot i is dead and its socket drained: report it, then
 * replace it (at once, or later if it keeps dying on start-up). */
static void finish(struct pool *p, int i)
{
	struct slot *s = &p->slots[i];
	int died_early = !s->info.ready;

	if (s->watching)
		loop_del(p->loop, s->fd);
	s->watching = 0;
	close(s->fd);
	s->fd = -1;
	s->alive = 0;
	buf_reset(&s->in);
	buf_reset(&s->out);
	s->out_off = 0;
	p->ev.exited(p->ctx, i, s->status);
	s->info.id = 0;
	s->info.pid = 0;
	s->info.ready = 0;
	if (p->stopping)
		return;
	p->restarts++;
	if (died_early) {
		int64_t delay = 100000LL << (s->quick_deaths < 6 ? s->quick_deaths : 6);

		s->quick_deaths++;
		s->respawn_at = clock_mono_us() + (delay > RESPAWN_MAX_US ? RESPAWN_MAX_US : delay);
		LOG_WARN("worker died during start-up; replacing it later",
			 LF_I("slot", i), LF_F("delay_s", (double)delay / 1e6));
		return;
	}
	char err[256];

	if (spawn(p, i, err, sizeof(err)) < 0) {
		LOG_ERROR("cannot replace worker", LF_S("error", err));
		s->respawn_at = clock_mono_us() + 1000000;
	}
}

void pool_reap(struct pool *p)
{
	for (;;) {
		siginfo_t si = { 0 };
		int status, i;
		pid_t pid;

		/* Look before reaping: while the worker is a zombie its pid,
		 * the id of its process group, cannot be reused. */
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || !si.si_pid)
			break;
		pid = si.si_pid;
		for (i = 0; i < p->cfg.size; i++)
			if (p->slots[i].alive && p->slots[i].info.pid == pid)
				break;
		/* A worker that died (killed from outside, crashed) takes the
		 * programs it started along: none runs on unseen while its
		 * task runs again. */
		if (i < p->cfg.size) {
			kill_worker(p, i);
			clear_groups(p, i);
		}
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (i == p->cfg.size)
			continue;	/* an orphan adopted as PID 1 */
		struct slot *s = &p->slots[i];

		s->reaped = 1;
		s->status = status;
		if (!s->eof) {
			drain(p, i);	/* it is dead: all it wrote is there */
			stop_watching(p, s);
		}
		finish(p, i);
	}
}

int64_t pool_tick(struct pool *p, int64_t now_us)
{
	int64_t next = 0;

	if (p->cfg.max_rss && !p->stopping) {
		if (now_us >= p->mem_poll_at) {
			for (int i = 0; i < p->cfg.size; i++)
				check_memory(p, i, now_us);
			p->mem_poll_at = now_us + MEMORY_POLL_US;
		}
		next = p->mem_poll_at;
	}

	for (int i = 0; i < p->cfg.size; i++) {
		struct slot *s = &p->slots[i];
		char err[256];

		if (!s->respawn_at || p->stopping)
			continue;
		if (s->respawn_at <= now_us) {
			s->respawn_at = 0;
			if (spawn(p, i, err, sizeof(err)) < 0) {
				LOG_ERROR("cannot replace worker", LF_S("error", err));
				s->respawn_at = now_us + 1000000;
			}
		}
		if (s->respawn_at && (!next || s->respawn_at < next))
			next = s->respawn_at;
	}
	return next;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	p->stopping = 1;
	pool_kill_all(p);
	for (int i = 0; i < p->cfg.size; i++) {
		struct slot *s = &p->slots[i];

		if (s->alive && !s->reaped) {
			int status;

			while (waitpid(s->info.pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		if (s->watching)
			loop_del(p->loop, s->fd);
		if (s->fd >= 0)
			close(s->fd);
		buf_release(&s->in);
		buf_release(&s->out);
		free(s->info.handlers);
	}
	free(p->slots);
	munmap((void *)p->groups, sizeof(pid_t) * (size_t)p->cfg.size * (size_t)p->stride);
	munmap((void *)p->running, sizeof(*p->running) * (size_t)p->cfg.size);
	free(p);
}
