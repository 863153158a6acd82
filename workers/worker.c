/*
 * worker: a worker process's loop. See worker.h.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/utf8.h"
#include "frame.h"

/* Results and errors larger than this fail the task instead. */
#define RESULT_MAX (64u << 20)
/* batchd_task_should_stop() reads the socket at most this often. */
#define STOP_LOOK_US 5000
/* Progress is forwarded at most this often per task; later calls coalesce. */
#define PROGRESS_EVERY_US 20000
#define MESSAGE_MAX 1024
#define INIT_BACKOFF_MAX_US (30 * 1000000LL)
/*
 * Results of tiny tasks go to the server in batches: one send, one wake-up
 * and one read for many results, where a send each cost the server a read
 * and a loop turn per task. A result is held only when its task took less
 * than HOLD_TASK_US and another task is waiting here; the batch goes when
 * nothing is left to run, at HOLD_BYTES, or when its oldest result is
 * HOLD_US old. The last holds even while the next task runs long, because
 * a thread of the worker (the flusher) sends the batch then: the server,
 * which times each task from the result of the one before, never sees a
 * finished task as running for longer than that.
 */
#define HOLD_TASK_US 100
#define HOLD_US 1000
#define HOLD_BYTES 16384

struct wtask {
	struct wtask *next;
	int skip;		/* the server took it back: do not run it */
	uint64_t job;
	uint32_t idx;
	uint16_t handler;
	uint32_t attempt;
	size_t len;
	char input[];		/* NUL-terminated */
};

struct hstate {
	int ready;		/* init() succeeded */
	void *state;
	int failures;		/* init() failures in a row */
	int64_t retry_at_us;	/* no new init() before this */
	char *error;		/* the last init() error */
};

struct worker {
	int sock;
	int id;
	const struct registry *reg;
	struct hstate *hs;
	struct buf in;
	struct buf out;
	struct wtask *head, *tail;
	int stopping;
	/* The task run() is running (NULL: none), and whether the server
	 * asked it to stop. */
	struct batchd_task *cur;
	int cur_stop;
	/* out is shared with the flusher thread, under out_mu; held_since is
	 * when the oldest result held in it was put there (0: none). */
	pthread_mutex_t out_mu;
	pthread_cond_t out_cv;
	int64_t held_since;
	int flusher;		/* 1: running; -1: could not be started */
	int flusher_quit;
	pthread_t flusher_thread;
};

struct batchd_task {
	struct worker *w;
	int handler;		/* its registry index */
	int setup;		/* a set-up is under way (INIT_STARTING sent) */
	uint64_t job;
	uint32_t idx;
	uint32_t attempt;
	int64_t sent_us;	/* when progress was last forwarded */
	int pending;		/* a coalesced update is waiting */
	int64_t stop_look_us;	/* when the socket was last read for a stop */
	uint32_t ppm;
	struct buf msg;
};

/* Writes out everything queued for the server; the worker ends if the
 * server has gone away (there is nobody left to report to). With out_mu
 * held. */
static void flush_locked(struct worker *w)
{
	size_t off = 0;

	while (off < w->out.len) {
		ssize_t n = send(w->sock, w->out.data + off, w->out.len - off,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = w->sock, .events = POLLOUT };

			poll(&p, 1, -1);
			continue;
		}
		if (n <= 0)
			_exit(0);
		off += (size_t)n;
	}
	buf_reset(&w->out);
	w->held_since = 0;
}

/* out, to put frames in (out_send() or out_result() gives it back). */
static struct buf *out_take(struct worker *w)
{
	pthread_mutex_lock(&w->out_mu);
	return &w->out;
}

/* Sends what out holds now. */
static void out_send(struct worker *w)
{
	flush_locked(w);
	pthread_mutex_unlock(&w->out_mu);
}

static void flush(struct worker *w)
{
	out_take(w);
	out_send(w);
}

static void *flusher_main(void *arg)
{
	struct worker *w = arg;

	pthread_mutex_lock(&w->out_mu);
	while (!w->flusher_quit) {
		int64_t now = clock_mono_us();

		if (w->held_since && now - w->held_since >= HOLD_US) {
			flush_locked(w);
		} else if (w->held_since) {
			int64_t at = w->held_since + HOLD_US;
			struct timespec ts = { (time_t)(at / 1000000), (long)(at % 1000000) * 1000 };

			pthread_cond_timedwait(&w->out_cv, &w->out_mu, &ts);
		} else {
			pthread_cond_wait(&w->out_cv, &w->out_mu);
		}
	}
	pthread_mutex_unlock(&w->out_mu);
	return NULL;
}

/* Starts the flusher, with every signal blocked (they are the main
 * thread's) and a small stack. 0, or -1: results are then never held. With
 * out_mu held: the thread takes it first thing, so it waits for it. */
static int flusher_start(struct worker *w)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int rc;

	w->flusher = -1;
	if (pthread_attr_init(&attr) != 0)
		return -1;
	pthread_attr_setstacksize(&attr, 256 * 1024);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->flusher_thread, &attr, flusher_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		LOG_WARN("cannot start the result flusher; results go one by one",
			 LF_S("error", strerror(rc)));
		return -1;
	}
	w->flusher = 1;
	return 0;
}

static void flusher_stop(struct worker *w)
{
	if (w->flusher <= 0)
		return;
	pthread_mutex_lock(&w->out_mu);
	w->flusher_quit = 1;
	pthread_cond_signal(&w->out_cv);
	pthread_mutex_unlock(&w->out_mu);
	pthread_join(w->flusher_thread, NULL);
	w->flusher = 0;
}

/* Gives out back with a result just put in it: sends it, or holds it for
 * the batch when its task, ended at now (clock_mono_us), took dur_us and
 * the rules above allow. */
static void out_result(struct worker *w, int64_t dur_us, int64_t now)
{
	if (dur_us >= HOLD_TASK_US || !w->head || w->out.len >= HOLD_BYTES ||
	    (w->held_since && now - w->held_since >= HOLD_US) ||
	    (!w->flusher && flusher_start(w) < 0) || w->flusher < 0) {
		out_send(w);
		return;
	}
	if (!w->held_since) {
		w->held_since = now;
		pthread_cond_signal(&w->out_cv);
	}
	pthread_mutex_unlock(&w->out_mu);
}

/* Reads whatever the server has sent, waiting for it when block is set.
 * Returns -1 when the server has closed the socket or sent garbage. */
static int receive(struct worker *w, int block)
{
	char err[128];
	size_t off = 0;

	/* Between two tasks the next one is usually in the socket already:
	 * read first, and poll only when that finds nothing. A read shorter
	 * than the room given emptied the (stream) socket, so no second read
	 * is spent to hear EAGAIN. Each system call costs microseconds on a
	 * virtual machine, and these run between every two tasks. */
	for (;;) {
		struct pollfd p = { .fd = w->sock, .events = POLLIN };
		size_t room;
		ssize_t n;

		buf_grow(&w->in, 65536);
		room = w->in.cap - w->in.len - 1;
		n = recv(w->sock, w->in.data + w->in.len, room, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!block)
				break;
			while (poll(&p, 1, -1) < 0)
				if (errno != EINTR)
					return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		w->in.len += (size_t)n;
		w->in.data[w->in.len] = '\0';
		block = 0;
		if ((size_t)n < room)
			break;
	}
	for (;;) {
		struct frame f;
		ssize_t used = frame_decode(w->in.data + off, w->in.len - off, &f,
					    err, sizeof(err));

		if (used < 0) {
			LOG_ERROR("bad frame from server", LF_S("error", err));
			return -1;
		}
		if (used == 0)
			break;
		off += (size_t)used;
		if (f.type == FRAME_SKIP) {
			for (struct wtask *t = w->head; t; t = t->next)
				if (t->job == f.job && t->idx == f.idx)
					t->skip = 1;
			if (w->cur && w->cur->job == f.job && w->cur->idx == f.idx)
				w->cur_stop = 1;
		} else if (f.type == FRAME_STOP) {
			w->stopping = 1;
		} else if (f.type == FRAME_RUN) {
			struct wtask *t = malloc(sizeof(*t) + f.len + 1);

			if (!t)
				abort();
			t->next = NULL;
			t->skip = 0;
			t->job = f.job;
			t->idx = f.idx;
			t->handler = f.handler;
			t->attempt = f.attempt;
			t->len = f.len;
			memcpy(t->input, f.data, f.len);
			t->input[f.len] = '\0';
			if (w->tail)
				w->tail->next = t;
			else
				w->head = t;
			w->tail = t;
		}
	}
	buf_consume(&w->in, off);
	return 0;
}

static void send_progress(struct batchd_task *t)
{
	frame_put_progress(out_take(t->w), t->job, t->idx, t->ppm, t->msg.data,
			   t->msg.len);
	out_send(t->w);
	t->pending = 0;
	t->sent_us = clock_mono_us();
}

void batchd_progress(struct batchd_task *t, double fraction, const char *message)
{
	if (!t)
		return;
	if (!(fraction >= 0))	/* also NaN */
		fraction = 0;
	if (fraction > 1)
		fraction = 1;
	t->ppm = (uint32_t)(fraction * 1000000 + 0.5);
	buf_reset(&t->msg);
	if (message) {
		size_t n = strlen(message);

		utf8_sanitize(&t->msg, message, n > MESSAGE_MAX ? MESSAGE_MAX : n);
	}
	t->pending = 1;
	if (clock_mono_us() - t->sent_us >= PROGRESS_EVERY_US)
		send_progress(t);
}

/* Forwards a coalesced update that is still waiting (for handlers that
 * wait on something else, like the command runner). */
void worker_progress_flush(struct batchd_task *t)
{
	if (t && t->pending && clock_mono_us() - t->sent_us >= PROGRESS_EVERY_US)
		send_progress(t);
}

int worker_fd(const struct batchd_task *t)
{
	return t->w->sock;
}

int worker_stop_asked(struct batchd_task *t)
{
	if (receive(t->w, 0) < 0)
		return 1;	/* nobody is left to report to */
	return t->w->cur_stop;
}

int batchd_task_should_stop(struct batchd_task *t)
{
	int64_t now;

	if (!t)
		return 0;
	if (t->w->cur_stop)
		return 1;
	now = clock_mono_us();
	if (now - t->stop_look_us < STOP_LOOK_US)
		return 0;
	t->stop_look_us = now;
	return worker_stop_asked(t);
}

static volatile struct worker_running running_none;
static volatile struct worker_running *running = &running_none;

void worker_set_running(volatile struct worker_running *r)
{
	running = r ? r : &running_none;
}

static volatile pid_t group_none;
static volatile pid_t *groups = &group_none;
static int ngroups = 1;

void worker_set_group_slots(volatile pid_t *slots, int n)
{
	groups = slots && n > 0 ? slots : &group_none;
	ngroups = slots && n > 0 ? n : 1;
}

volatile pid_t *worker_group_slot(void)
{
	return &groups[0];
}

volatile pid_t *worker_group_claim(void)
{
	for (int k = 1; k < ngroups; k++)
		if (!groups[k])
			return &groups[k];
	return NULL;
}

int64_t batchd_task_job(const struct batchd_task *t)
{
	return (int64_t)t->job;
}

int64_t batchd_task_index(const struct batchd_task *t)
{
	return (int64_t)t->idx;
}

int batchd_task_attempt(const struct batchd_task *t)
{
	return (int)t->attempt;
}

/* Records that handler id failed to set up in this worker (init() failed,
 * or run() said BATCHD_INIT_FAILED): no new init() before a back-off that
 * doubles with each failure in a row, so that a set-up that keeps failing
 * (a co-process that dies on start) is not retried in a tight loop. Sets
 * *error (malloc()ed) to the task's error. */
static void init_failed(struct worker *w, int id, const struct handler *h,
			const char *err, char **error)
{
	struct hstate *s = &w->hs[id];
	struct buf b = BUF_INIT;
	int64_t backoff;

	if (!err || !err[0])
		err = "init() failed";
	s->ready = 0;
	s->state = NULL;
	s->failures++;
	backoff = 1000000LL << (s->failures > 5 ? 5 : s->failures - 1);
	s->retry_at_us = clock_mono_us() +
		(backoff > INIT_BACKOFF_MAX_US ? INIT_BACKOFF_MAX_US : backoff);
	free(s->error);
	utf8_sanitize(&b, err, strlen(err));
	s->error = buf_detach(&b, NULL);
	frame_put_init(out_take(w), (uint16_t)id, INIT_FAILED, s->error, strlen(s->error));
	out_send(w);
	LOG_WARN("handler failed to initialize", LF_S("handler", h->name),
		 LF_S("error", s->error));
	buf_addf(&b, "handler \"%s\" failed to initialize: %s", h->name, s->error);
	*error = buf_detach(&b, NULL);
}

void worker_setup_start(struct batchd_task *t)
{
	if (t->setup)
		return;
	frame_put_init(out_take(t->w), (uint16_t)t->handler, INIT_STARTING, "", 0);
	out_send(t->w);
	t->setup = 1;
}

void worker_setup_done(struct batchd_task *t)
{
	if (!t->setup)
		return;
	frame_put_init(out_take(t->w), (uint16_t)t->handler, INIT_READY, "", 0);
	out_send(t->w);
	t->setup = 0;
}

/* Makes sure handler id is initialized in this worker, for task t. Returns
 * 0, or -1 with the reason in *error (malloc()ed). */
static int ensure_init(struct worker *w, int id, const struct handler *h,
		       struct batchd_task *t, char **error)
{
	struct hstate *s = &w->hs[id];
	struct buf b = BUF_INIT;
	char err[1024] = "";
	int64_t now = clock_mono_us();

	if (s->ready)
		return 0;
	if (s->failures && now < s->retry_at_us) {
		buf_addf(&b, "handler \"%s\" failed to initialize: %s (next try in %.1f s)",
			 h->name, s->error, (double)(s->retry_at_us - now) / 1e6);
		*error = buf_detach(&b, NULL);
		return -1;
	}
	s->state = NULL;
	if (h->ops->init)
		worker_setup_start(t);
	if (!h->ops->init || h->ops->init(h->config, &s->state, err, sizeof(err)) == 0) {
		/* The failure count is reset by the first run() that gets
		 * past the set-up, not here: a handler may finish its set-up
		 * in run() (BATCHD_INIT_FAILED), and counting init() alone
		 * would never let the back-off grow. */
		s->ready = 1;
		free(s->error);
		s->error = NULL;
		/* A persistent co-process is set up once it has answered:
		 * persistent.c says so itself. */
		if (h->kind != HANDLER_PERSISTENT) {
			t->setup = 1;
			worker_setup_done(t);
		}
		LOG_DEBUG("handler initialized", LF_S("handler", h->name));
		return 0;
	}
	err[sizeof(err) - 1] = '\0';
	t->setup = 0;
	init_failed(w, id, h, err, error);
	return -1;
}

static void run_task(struct worker *w, struct wtask *wt)
{
	const struct handler *h = registry_get(w->reg, wt->handler);
	struct batchd_task t = { .w = w, .handler = wt->handler, .job = wt->job,
				 .idx = wt->idx, .attempt = wt->attempt };
	char *res = NULL;
	int64_t start = clock_mono_us();
	int ok = 0;

	buf_init(&t.msg);
	t.sent_us = start - PROGRESS_EVERY_US;
	running->job = wt->job;
	running->idx = wt->idx;
	running->on = 1;
	if (!h) {
		res = strdup("unknown handler");
	} else if (ensure_init(w, wt->handler, h, &t, &res) == 0) {
		struct hstate *s = &w->hs[wt->handler];
		int rc;

		w->cur = &t;
		w->cur_stop = 0;
		rc = h->ops->run(s->state, &t, wt->input, &res);
		w->cur = NULL;

		ok = rc == BATCHD_OK;
		if (rc == BATCHD_INIT_FAILED) {
			char *why = res;

			t.setup = 0;

			if (h->ops->fini)
				h->ops->fini(s->state);
			init_failed(w, wt->handler, h, why, &res);
			free(why);
		} else {
			s->failures = 0;
			worker_setup_done(&t);	/* answered: set up, if not said */
		}
	}
	int64_t dur = clock_mono_us() - start;
	const char *data = res;
	size_t len = res ? strlen(res) : 0;
	struct buf fixed = BUF_INIT;

	if (ok && !res) {
		data = "null";
		len = 4;
	} else if (len > RESULT_MAX) {
		buf_addf(&fixed, "%s is too large (%zu bytes, limit %u)",
			 ok ? "result" : "error", len, RESULT_MAX);
		ok = 0;
		data = fixed.data;
		len = fixed.len;
	} else if (ok && h->kind != HANDLER_BUILTIN) {
		/* Handlers outside batchd may return anything: check it is
		 * one JSON value before it is stored as one. */
		static const char *const why[] = {
			[JSON_NOT_JSON] = "that is not JSON",
			[JSON_HOLDS_NUL] = "with \\u0000 in a string, which batchd cannot store",
			[JSON_OUT_OF_RANGE] = "with a number out of range",
		};
		cJSON *doc;
		int kept = json_parse_kept(res, len, &doc);

		if (kept != JSON_KEPT) {
			buf_addf(&fixed, "handler returned a result %s: ", why[kept]);
			utf8_sanitize(&fixed, res, len > 200 ? 200 : len);
			ok = 0;
		} else {
			/* Kept compact, its numbers as written: a result over
			 * several lines would break the JSON Lines of
			 * GET /api/jobs/{id}/results. */
			json_text_of(&fixed, doc, doc, res, len);
			if (fixed.len > RESULT_MAX) {
				size_t n = fixed.len;

				buf_reset(&fixed);
				buf_addf(&fixed, "result is too large (%zu bytes once its strings are "
					 "escaped, limit %u)", n, RESULT_MAX);
				ok = 0;
			}
		}
		data = fixed.data;
		len = fixed.len;
		cJSON_Delete(doc);
	} else if (!ok) {
		if (!res) {
			data = "task failed";
			len = strlen(data);
		} else if (!utf8_valid(res, len, NULL)) {
			utf8_sanitize(&fixed, res, len);
			data = fixed.data;
			len = fixed.len;
		}
	}
	/* The last word on its progress, held back by PROGRESS_EVERY_US,
	 * goes before the result: a failed task shows where it stopped. */
	if (t.pending)
		send_progress(&t);
	running->on = 0;
	frame_put_result(out_take(w), wt->job, wt->idx, ok ? RESULT_OK : RESULT_FAILED,
			 dur < 0 ? 0 : (uint64_t)dur, data, len);
	out_result(w, dur, start + dur);
	buf_release(&fixed);
	buf_release(&t.msg);
	free(res);
}

static int64_t memory_limit;

void worker_set_memory_limit(int64_t bytes)
{
	memory_limit = bytes;
}

int64_t worker_memory_limit(void)
{
	return memory_limit;
}

int64_t worker_resident(int pid)
{
	char path[64], text[128];
	long long size, pages;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	if (sscanf(text, "%lld %lld", &size, &pages) != 2)
		return -1;
	return (int64_t)pages * sysconf(_SC_PAGESIZE);
}

int worker_main(int sock, int id, const struct registry *reg)
{
	struct worker w = { .sock = sock, .id = id, .reg = reg };
	int n = registry_count(reg);
	pthread_condattr_t ca;

	signal(SIGPIPE, SIG_IGN);
	log_set_context("worker", id);
	w.hs = calloc((size_t)n, sizeof(*w.hs));
	if (!w.hs)
		abort();
	buf_init(&w.in);
	buf_init(&w.out);
	pthread_mutex_init(&w.out_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);	/* clock_mono_us's */
	pthread_cond_init(&w.out_cv, &ca);
	pthread_condattr_destroy(&ca);
	frame_put_hello(&w.out, (uint32_t)getpid());
	flush(&w);

	for (;;) {
		if (!w.head)
			flush(&w);	/* nothing left to run: a held batch goes */
		if (receive(&w, !w.head && !w.stopping) < 0)
			break;
		if (w.stopping)
			break;
		if (!w.head)
			continue;
		struct wtask *t = w.head;

		w.head = t->next;
		if (!w.head)
			w.tail = NULL;
		if (t->skip) {
			frame_put_result(out_take(&w), t->job, t->idx, RESULT_SKIPPED, 0, "", 0);
			out_send(&w);
		} else {
			run_task(&w, t);
		}
		free(t);
	}
	flush(&w);
	flusher_stop(&w);
	for (int i = 0; i < n; i++) {
		const struct handler *h = registry_get(reg, i);

		if (w.hs[i].ready && h->ops->fini)
			h->ops->fini(w.hs[i].state);
		free(w.hs[i].error);
	}
	/* What the worker allocated itself goes back (a leak checker then
	 * finds what a handler loses); the rest of the memory is the
	 * server's, inherited at fork, and the process ends without tidying
	 * it. */
	while (w.head) {
		struct wtask *t = w.head;

		w.head = t->next;
		free(t);
	}
	free(w.hs);
	buf_release(&w.in);
	buf_release(&w.out);
	pthread_cond_destroy(&w.out_cv);
	pthread_mutex_destroy(&w.out_mu);
	return 0;
}
