/*
 * persistent: the handler kind that keeps one program running in each worker
 * ("mode": "persistent" in the handlers file) and hands it task after task,
 * so that a costly set-up (loading a model, opening an index) is paid once
 * per worker in any language. docs/HANDLERS.md is the author's reference.
 *
 * Protocol, one JSON document per line:
 *   batchd -> stdin   {"task": 3, "job": 1, "attempt": 1, "input": <json>}
 *   stdout -> batchd  any number of {"progress": 0.4, "message": "..."},
 *                     then exactly one {"result": <json>} or {"error": "..."}
 * and, once, before anything else, an optional {"ready": true}: "my set-up
 * is done", or {"ready": true, "stop": true}: "and I can stop a task".
 *   batchd -> stdin   {"stop": 3, "job": 1} when task 3 is cancelled or
 *                     times out, to such a co-process only; it answers the
 *                     task as it likes, batchd keeps nothing of the answer
 *
 * Stop: the server asks the worker to stop the running task (a SKIP). A
 * co-process that can stop a task is sent the stop line, and stays; one
 * that cannot is killed with its process group, and a fresh one serves the
 * next task. Either way the worker stays, with every other handler's state;
 * a co-process that does not answer its stop line is killed with its
 * worker when the server's patience ends.
 *
 * Start-up: init() starts the program (it is started again after a fault,
 * with the next task). The start-up lasts until the co-process's first line
 * on stdout: the ready line, or its first answer to its first task. A
 * co-process that dies, breaks the protocol, or stays silent longer than
 * init_timeout_s during its start-up failed to set up: run() returns
 * BATCHD_INIT_FAILED and the worker backs off before starting it again,
 * failing the tasks meanwhile with that error. After the start-up, a fault
 * (an exit, a crash, a line that is not JSON or breaks the protocol) fails
 * the current task; the co-process is killed if it still lives, and a fresh
 * one serves the next task. The task's timeout is the server's, which stops
 * the task as above.
 *
 * The co-process leads a process group of its own, announced in the slot
 * it claims in the page the server shares with the worker: what it started
 * goes with it whenever it ends, and with its worker if that is killed.
 *
 * The co-process's stderr goes to the log, a line per event tagged with the
 * handler (the worker adds worker=); the lines written during the current
 * task are kept to explain its failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/utf8.h"
#include "proc.h"
#include "registry.h"
#include "worker.h"
#include "../lib/xalloc.h"

/* The longest line accepted: a 64 MiB result and its envelope. */
#define LINE_MAX_BYTES ((64u << 20) + 4096)
/* A task's error when the co-process's error line gives an empty string. */
#define EMPTY_ERROR "co-process reported an error with an empty message"
/* How much of an offending line an error shows. */
#define SHOWN_LINE 200
#define STDERR_TAIL 4096
/* A stderr line longer than this is logged in pieces. */
#define STDERR_LINE_MAX 4096
/* At fini(): time to exit after stdin closes, then after SIGTERM. */
#define STOP_GRACE_US 2000000
#define TERM_GRACE_US 1000000
/* Poll interval while waiting: coalesced progress goes out this often. */
#define TICK_MS 50

struct persistent {
	char *name;		/* the handler's, for the log */
	struct proc_spec spec;
	int64_t init_timeout_us;	/* 0: none but the task's timeout */
	pid_t pid;		/* 0: no co-process */
	volatile pid_t *group;	/* the claimed slot holding its group (pid),
				 * or NULL: it is in the worker's group */
	int can_stop;		/* its ready line said "stop": true */
	int exited;		/* pid has been reaped (and may be reused) */
	int status;		/* its wait status, once exited */
	int in, out, err;	/* its pipes; -1 when closed */
	int answered;		/* it has written a line: start-up is over */
	int64_t started_us;
	struct buf obuf;	/* stdout not yet parsed */
	size_t scanned;		/* obuf's first bytes, known to hold no newline */
	unsigned long lines;	/* stdout lines taken (blank ones aside) */
	struct buf ebuf;	/* stderr: an unfinished line */
	struct buf tail;	/* stderr written during the current task */
};

enum line_kind { LINE_MORE, LINE_RESULT, LINE_ERROR, LINE_FAULT };

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void nap_us(int64_t us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* Appends at most SHOWN_LINE bytes of a line, cut at a character boundary
 * and marked when cut. */
static void show_line(struct buf *b, const char *line, size_t len)
{
	size_t n = len;

	if (n > SHOWN_LINE) {
		n = SHOWN_LINE;
		while (n && ((unsigned char)line[n] & 0xc0) == 0x80)
			n--;
	}
	utf8_sanitize(b, line, n);
	if (n < len)
		buf_addf(b, "... (%zu bytes)", len);
}

/* ---- stderr ---- */

static void log_stderr_line(struct persistent *p, const char *line, size_t len)
{
	struct buf clean = BUF_INIT;

	if (len && line[len - 1] == '\r')
		len--;
	utf8_sanitize(&clean, line, len);
	LOG_INFO("co-process stderr", LF_S("handler", p->name), LF_I("pid", p->pid),
		 LF_S("line", clean.data));
	buf_release(&clean);
}

/* Takes bytes the co-process wrote on stderr: each complete line to the
 * log, all of it to the current task's tail. final: the stream has ended,
 * an unfinished line is logged too. */
static void take_stderr(struct persistent *p, const char *data, size_t n, int final)
{
	size_t start = 0;

	buf_add(&p->tail, data, n);
	if (p->tail.len > 2 * STDERR_TAIL)
		buf_consume(&p->tail, p->tail.len - STDERR_TAIL);
	buf_add(&p->ebuf, data, n);
	for (;;) {
		char *nl = memchr(p->ebuf.data + start, '\n', p->ebuf.len - start);
		size_t len = nl ? (size_t)(nl - p->ebuf.data) - start : p->ebuf.len - start;

		/* A line of exactly STDERR_LINE_MAX bytes waits for its
		 * newline too: cut at once, it would log an empty line after
		 * it when the newline came in the next read. */
		if (!nl && len <= STDERR_LINE_MAX && !(final && len))
			break;
		if (len > STDERR_LINE_MAX)
			len = STDERR_LINE_MAX;
		log_stderr_line(p, p->ebuf.data + start, len);
		start += len + (nl && p->ebuf.data + start + len == nl);
	}
	buf_consume(&p->ebuf, start);
}

/* Reads what is waiting on stderr, without blocking. */
static void read_stderr(struct persistent *p)
{
	char chunk[16384];

	while (p->err >= 0) {
		ssize_t n = read(p->err, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			take_stderr(p, "", 0, 1);
			close_fd(&p->err);
			return;
		}
		take_stderr(p, chunk, (size_t)n, 0);
	}
}

/* Reads what is waiting on stdout into obuf, without blocking. Returns 1
 * at end of stream, else 0. */
static int read_stdout(struct persistent *p)
{
	while (p->out >= 0) {
		ssize_t n;

		buf_grow(&p->obuf, 65536);
		n = read(p->out, p->obuf.data + p->obuf.len, p->obuf.cap - p->obuf.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			close_fd(&p->out);
			return 1;
		}
		p->obuf.len += (size_t)n;
		p->obuf.data[p->obuf.len] = '\0';
		if (p->obuf.len > LINE_MAX_BYTES)
			return 0;
	}
	return 1;
}

/* ---- the co-process's life ---- */

/* Forgets a co-process that has been reaped: what it left on stderr goes to
 * the log, its pipes are closed. */
static void forget(struct persistent *p)
{
	read_stderr(p);
	if (p->ebuf.len)
		take_stderr(p, "", 0, 1);
	close_fd(&p->in);
	close_fd(&p->out);
	close_fd(&p->err);
	buf_reset(&p->obuf);
	p->scanned = 0;
	buf_reset(&p->ebuf);
	p->pid = 0;
	p->exited = 0;
}

/* Kills what is left of the co-process's group and gives its slot back.
 * Only before the co-process is reaped: until then its pid, the group's
 * id, cannot be reused. */
static void end_group(struct persistent *p)
{
	if (!p->group)
		return;
	kill(-p->pid, SIGKILL);
	*p->group = 0;
	p->group = NULL;
}

/* Reaps the co-process, which has ended or been killed; what it started
 * goes first. */
static void reap(struct persistent *p)
{
	end_group(p);
	p->status = proc_wait(p->pid);
	p->exited = 1;
}

/* Kills the co-process and its group (unless it has already been reaped:
 * its pid may be another process's by now), reaps it and forgets it. */
static void kill_now(struct persistent *p)
{
	if (!p->pid)
		return;
	if (!p->exited) {
		if (!p->group)
			kill(p->pid, SIGKILL);
		reap(p);
	}
	forget(p);
}

/* Whether the co-process has ended; if so it is reaped, its wait status in
 * p->status. Its pipes stay open: what it wrote before it ended is still
 * there to read (what it left running in its group cannot add to it). */
static int has_exited(struct persistent *p)
{
	siginfo_t si = { 0 };

	if (p->exited)
		return 1;
	while (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
	       errno == EINTR)
		;
	if (si.si_pid != p->pid)
		return 0;
	reap(p);
	return 1;
}

/* Waits until the co-process ends or the monotonic time until_us, logging
 * its stderr meanwhile; its stdout is read into obuf, or dropped when drop
 * is set. Returns 1 once it has ended. */
static int wait_exit(struct persistent *p, int64_t until_us, int drop)
{
	for (;;) {
		struct pollfd pf[2];
		int n = 0;
		int64_t left;

		if (has_exited(p))
			return 1;
		left = until_us - clock_mono_us();
		if (left <= 0)
			return 0;
		if (p->err >= 0)
			pf[n++] = (struct pollfd){ .fd = p->err, .events = POLLIN };
		if (p->out >= 0)
			pf[n++] = (struct pollfd){ .fd = p->out, .events = POLLIN };
		if (n) {
			poll(pf, (nfds_t)n, left > 20000 ? 20 : (int)(left / 1000) + 1);
		} else {
			nap_us(left > 10000 ? 10000 : left);
		}
		read_stderr(p);
		read_stdout(p);
		if (drop || p->obuf.len > LINE_MAX_BYTES) {
			buf_reset(&p->obuf);
			p->scanned = 0;
		}
	}
}

/* Asks the co-process to end (its stdin closes: the protocol's "no more
 * tasks"), then insists. */
static void stop(struct persistent *p)
{
	if (!p->pid)
		return;
	close_fd(&p->in);
	if (!wait_exit(p, clock_mono_us() + STOP_GRACE_US, 1)) {
		kill(p->pid, SIGTERM);
		if (!wait_exit(p, clock_mono_us() + TERM_GRACE_US, 1))
			LOG_WARN("co-process did not stop; killing it", LF_S("handler", p->name),
				 LF_I("pid", p->pid));
	}
	kill_now(p);
}

static int start(struct persistent *p, char *err, size_t errlen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, er[2] = { -1, -1 };
	int rc;

	/* Close-on-exec: another co-process must not hold these open, or this
	 * one would never see its stdin end. */
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC)) {
		snprintf(err, errlen, "cannot create pipes: %s", strerror(errno));
		goto fail;
	}
	p->group = worker_group_claim();
	rc = proc_spawn(&p->spec, (int[]){ in[0], out[1], er[1] }, 3, NULL, p->group, &p->pid);
	if (rc) {
		snprintf(err, errlen, "cannot start %s: %s", p->spec.argv[0], strerror(rc));
		p->pid = 0;
		p->group = NULL;	/* proc_spawn gave the slot back */
		goto fail;
	}
	close(in[0]);
	close(out[1]);
	close(er[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = er[0];
	set_nonblock(p->in);
	set_nonblock(p->out);
	set_nonblock(p->err);
	p->answered = 0;
	p->can_stop = 0;
	p->exited = 0;
	p->started_us = clock_mono_us();
	buf_reset(&p->obuf);
	p->scanned = 0;
	buf_reset(&p->ebuf);
	LOG_INFO("co-process started", LF_S("handler", p->name), LF_I("pid", p->pid));
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&er[i]);
	}
	return -1;
}

/* Before a task: a co-process that ended, or wrote to stdout, while it had
 * no task is replaced (the output would be taken for the next task's).
 * Not one still starting up: its ready line may be waiting, and its end is
 * a failed start-up, which the task reports. */
static void check_idle(struct persistent *p)
{
	struct buf why = BUF_INIT;

	if (!p->pid || !p->answered)
		return;
	read_stderr(p);
	if (has_exited(p)) {
		buf_adds(&why, "co-process ");
		proc_describe_status(&why, p->status);
		buf_adds(&why, " between tasks");
		forget(p);
	} else if (read_stdout(p) || p->obuf.len) {
		if (p->obuf.len) {
			buf_adds(&why, "co-process wrote to stdout between tasks: ");
			show_line(&why, p->obuf.data, strcspn(p->obuf.data, "\n"));
		} else {
			buf_adds(&why, "co-process closed its stdout between tasks");
		}
		kill_now(p);
	}
	if (why.len)
		LOG_WARN("replacing co-process", LF_S("handler", p->name),
			 LF_S("reason", why.data));
	buf_release(&why);
}

/* ---- lines ---- */

static enum line_kind protocol_error(struct buf *msg, const char *what,
				     const char *line, size_t len)
{
	buf_addf(msg, "co-process broke the protocol (%s): ", what);
	show_line(msg, line, len);
	return LINE_FAULT;
}

/* Whether every number in v is finite: 1e999 parses as infinity, which a
 * result would print back as null, and which no progress can mean. */
/* The first of the protocol's members that doc gives twice, or NULL: the
 * parser keeps both, and which one counts would be a guess. */
static const char *given_twice(const cJSON *doc)
{
	static const char *const names[] = {
		"ready", "stop", "progress", "message", "result", "error", NULL
	};

	for (int i = 0; names[i]; i++) {
		const cJSON *c;
		int n = 0;

		cJSON_ArrayForEach(c, doc)
			n += !strcmp(c->string, names[i]);
		if (n > 1)
			return names[i];
	}
	return NULL;
}

/* Acts on one line of the co-process's stdout (without its newline,
 * NUL-terminated in place). Progress is reported; a result or an error
 * ends the task, its text in msg; a fault's description goes to msg. */
static enum line_kind take_line(struct persistent *p, struct batchd_task *task,
				char *line, size_t len, struct buf *msg)
{
	const char *end = NULL, *nul, *twice;
	const cJSON *v, *m;
	cJSON *doc;
	enum line_kind kind = LINE_MORE;
	int keys = 0, zero;
	long esc;

	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	if (strspn(line, " \t") == len)
		return LINE_MORE;	/* a blank line says nothing */
	p->lines++;
	/* The parser reads up to the first NUL: {"result": 1}, a NUL, then
	 * anything, would pass for a result. JSON has no raw NUL anywhere. */
	if ((nul = memchr(line, '\0', len))) {
		buf_addf(msg, "co-process wrote a line that is not JSON (a NUL byte at byte %zu): ",
			 (size_t)(nul - line));
		show_line(msg, line, len);
		return LINE_FAULT;
	}
	doc = utf8_valid(line, len, NULL) ? cJSON_ParseWithOpts(line, &end, 1) : NULL;
	esc = doc ? json_nul_escape(line, len, &zero) : -1;
	/* cJSON reads \uZZZZ as \u0000: that is not JSON either. */
	if (esc >= 0 && !zero) {
		cJSON_Delete(doc);
		doc = NULL;
	}
	if (!doc) {
		buf_adds(msg, "co-process wrote a line that is not JSON: ");
		show_line(msg, line, len);
		return LINE_FAULT;
	}
	if (!cJSON_IsObject(doc)) {
		kind = protocol_error(msg, "a line must be a JSON object", line, len);
		goto out;
	}
	/* What batchd keeps must be what the co-process wrote. */
	if (esc >= 0) {
		kind = protocol_error(msg, "a string holds \\u0000, which batchd cannot store",
				      line, len);
		goto out;
	}
	if (!json_all_finite(doc)) {
		kind = protocol_error(msg, "a number is out of range", line, len);
		goto out;
	}
	if ((twice = given_twice(doc))) {
		char what[64];

		snprintf(what, sizeof(what), "\"%s\" is given twice", twice);
		kind = protocol_error(msg, what, line, len);
		goto out;
	}
	/* Members are named exactly: cJSON_HasObjectItem would ignore case. */
	if (cJSON_GetObjectItemCaseSensitive(doc, "ready")) {
		const cJSON *stop = cJSON_GetObjectItemCaseSensitive(doc, "stop");

		if (p->answered || cJSON_GetArraySize(doc) != 1 + !!stop)
			kind = protocol_error(msg, "\"ready\" may only be the first line, "
					      "with no other member than \"stop\"", line, len);
		else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "ready")))
			kind = protocol_error(msg, "\"ready\" must be true", line, len);
		else if (stop && !cJSON_IsBool(stop))
			kind = protocol_error(msg, "\"stop\" must be true or false", line, len);
		else {
			p->answered = 1;
			p->can_stop = cJSON_IsTrue(stop);
		}
		goto out;
	}
	keys = !!cJSON_GetObjectItemCaseSensitive(doc, "progress") +
	       !!cJSON_GetObjectItemCaseSensitive(doc, "result") +
	       !!cJSON_GetObjectItemCaseSensitive(doc, "error");
	if (keys != 1) {
		kind = protocol_error(msg, "a line needs exactly one of \"progress\", \"result\", \"error\"",
				      line, len);
		goto out;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(doc, "result"))) {
		json_text_of(msg, doc, v, line, len);
		kind = LINE_RESULT;
	} else if ((v = cJSON_GetObjectItemCaseSensitive(doc, "error"))) {
		if (cJSON_IsString(v) && !v->valuestring[0]) {
			/* A task's error is what a user reads to know why. */
			buf_adds(msg, EMPTY_ERROR);
		} else if (cJSON_IsString(v)) {
			buf_adds(msg, v->valuestring);
		} else {
			json_text_of(msg, doc, v, line, len);
		}
		kind = LINE_ERROR;
	} else {
		v = cJSON_GetObjectItemCaseSensitive(doc, "progress");
		m = cJSON_GetObjectItemCaseSensitive(doc, "message");
		if (!cJSON_IsNumber(v))
			kind = protocol_error(msg, "\"progress\" must be a number", line, len);
		else if (m && !cJSON_IsString(m) && !cJSON_IsNull(m))
			kind = protocol_error(msg, "\"message\" must be a string", line, len);
		else
			batchd_progress(task, v->valuedouble,
					cJSON_IsString(m) ? m->valuestring : NULL);
	}
	/* An answer ends the start-up; a line that breaks the protocol does
	 * not, so that it fails the set-up as any other start-up fault. */
	if (kind != LINE_FAULT)
		p->answered = 1;
out:
	cJSON_Delete(doc);
	return kind;
}

/* Acts on every complete line in obuf, stopping at the one that ends the
 * task (the rest stays in obuf). The search for a newline starts where the
 * last one stopped: a 64 MiB line read 64 KiB at a time is searched once,
 * not 1,024 times over. */
static enum line_kind take_lines(struct persistent *p, struct batchd_task *task,
				 struct buf *msg)
{
	size_t start = 0, from = p->scanned <= p->obuf.len ? p->scanned : 0;
	enum line_kind kind = LINE_MORE;

	while (kind == LINE_MORE) {
		char *nl = memchr(p->obuf.data + from, '\n', p->obuf.len - from);

		if (!nl)
			break;
		*nl = '\0';
		kind = take_line(p, task, p->obuf.data + start,
				 (size_t)(nl - p->obuf.data) - start, msg);
		start = from = (size_t)(nl - p->obuf.data) + 1;
	}
	buf_consume(&p->obuf, start);
	/* Searched to the end, or stopped at a line that ended the task. */
	p->scanned = kind == LINE_MORE ? p->obuf.len : 0;
	return kind;
}

/* The request line for a task. The input is JSON text as stored; a newline
 * in it can only be whitespace (JSON strings escape theirs), so it becomes a
 * space and the request stays one line. */
static void build_request(struct buf *req, struct batchd_task *task, const char *input)
{
	size_t from = 0, n = strlen(input);

	buf_addf(req, "{\"task\":%lld,\"job\":%lld,\"attempt\":%d,\"input\":",
		 (long long)batchd_task_index(task), (long long)batchd_task_job(task),
		 batchd_task_attempt(task));
	for (size_t i = 0; i < n; i++) {
		if (input[i] == '\n' || input[i] == '\r') {
			buf_add(req, input + from, i - from);
			buf_addc(req, ' ');
			from = i + 1;
		}
	}
	buf_add(req, input + from, n - from);
	buf_adds(req, "}\n");
}

/* ---- the handler ---- */

static void persistent_fini(void *state)
{
	struct persistent *p = state;

	if (!p)
		return;
	stop(p);
	proc_spec_release(&p->spec);
	buf_release(&p->obuf);
	buf_release(&p->ebuf);
	buf_release(&p->tail);
	free(p->name);
	free(p);
}

static int persistent_init(const char *config, void **state, char *err,
			   size_t errlen)
{
	cJSON *doc = cJSON_Parse(config ? config : "");
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "handler");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "init_timeout_ms");
	struct persistent *p = calloc(1, sizeof(*p));

	if (!p)
		abort();
	p->in = p->out = p->err = -1;
	buf_init(&p->obuf);
	buf_init(&p->ebuf);
	buf_init(&p->tail);
	p->name = xstrdup(cJSON_IsString(name) ? name->valuestring : "?");
	p->init_timeout_us = cJSON_IsNumber(t) ? (int64_t)t->valuedouble * 1000 : 0;
	if (proc_spec_init(&p->spec, doc, err, errlen) < 0 || start(p, err, errlen) < 0) {
		cJSON_Delete(doc);
		persistent_fini(p);
		return -1;
	}
	cJSON_Delete(doc);
	*state = p;
	return 0;
}

/* Whether the n bytes written to the pipe fd are all still in it, unread:
 * FIONREAD counts a pipe's bytes from either end, and after its reader
 * has gone too. */
static int unread_in_pipe(int fd, size_t n)
{
	int left = 0;

	return fd >= 0 && ioctl(fd, FIONREAD, &left) == 0 && (size_t)left == n;
}

/* Whether a co-process that has just ended did so between tasks rather
 * than on this one: it had answered a task before, and it ended without
 * reading a byte of this task's request or writing a line since, as one
 * that exits by itself after some tasks does just as the next request is
 * sent. That task was never the co-process's: it goes to a fresh one.
 * Once a task, and never after a stop was asked for. */
static int ended_between_tasks(const struct persistent *p, int startup, unsigned long lines,
			       int untouched, int stop_sent, int resent)
{
	return !startup && !resent && !stop_sent && p->lines == lines && untouched;
}

/* Ends a task that the co-process failed: says why (with its stderr when
 * it died), and whether it was still starting up. */
static int fault(struct persistent *p, struct buf *msg, int startup, int died,
		 char **result)
{
	if (died)
		proc_add_stderr(msg, p->tail.data, p->tail.len, STDERR_TAIL);
	LOG_WARN(startup ? "co-process failed to start" : "co-process failed",
		 LF_S("handler", p->name), LF_S("error", msg->data));
	*result = buf_detach(msg, NULL);
	return startup ? BATCHD_INIT_FAILED : BATCHD_FAILED;
}

static int persistent_run(void *state, struct batchd_task *task, const char *input,
			  char **result)
{
	struct persistent *p = state;
	struct buf req = BUF_INIT, msg = BUF_INIT;
	char err[512];
	size_t off = 0, req_len;
	int startup, unread, rc, stop_sent = 0, resent = 0, untouched = 0;
	unsigned long lines;
	enum line_kind kind = LINE_MORE;

	check_idle(p);
	buf_reset(&p->tail);
	if (!p->pid) {
		/* A fresh co-process: its start-up is set-up time, which the
		 * server does not count against this task's timeout. */
		worker_setup_start(task);
		if (start(p, err, sizeof(err)) < 0) {
			*result = xstrdup(err);
			return BATCHD_INIT_FAILED;
		}
	}
	startup = !p->answered;
	lines = p->lines;
	build_request(&req, task, input);
	req_len = req.len;

	for (;;) {
		struct pollfd pf[4];
		int n = 0, timeout = TICK_MS, out_ended = 0;
		int64_t deadline = startup && !p->answered && p->init_timeout_us ?
			p->started_us + p->init_timeout_us : 0;

		if (p->in >= 0 && off < req.len)
			pf[n++] = (struct pollfd){ .fd = p->in, .events = POLLOUT };
		if (p->out >= 0)
			pf[n++] = (struct pollfd){ .fd = p->out, .events = POLLIN };
		if (p->err >= 0)
			pf[n++] = (struct pollfd){ .fd = p->err, .events = POLLIN };
		if (!stop_sent)	/* last: the server, asking for a stop */
			pf[n++] = (struct pollfd){ .fd = worker_fd(task), .events = POLLIN };
		if (deadline) {
			int64_t left = deadline - clock_mono_us();

			if (left < TICK_MS * 1000)
				timeout = left > 0 ? (int)(left / 1000) + 1 : 0;
		}
		rc = poll(pf, (nfds_t)n, timeout);
		if (rc < 0 && errno != EINTR) {
			buf_addf(&msg, "poll: %s", strerror(errno));
			kill_now(p);
			kind = LINE_FAULT;
			break;
		}
		worker_progress_flush(task);
		if (rc > 0 && !stop_sent && pf[n - 1].revents && worker_stop_asked(task)) {
			/* A co-process that can stop a task is told, once its
			 * request is out; one that cannot goes, with its group.
			 * The worker stays, and its other handlers' state. */
			if (p->can_stop && off == req_len && p->in >= 0) {
				buf_addf(&req, "{\"stop\":%lld,\"job\":%lld}\n",
					 (long long)batchd_task_index(task),
					 (long long)batchd_task_job(task));
				stop_sent = 1;
			} else {
				LOG_INFO("stopping co-process: its task was stopped",
					 LF_S("handler", p->name), LF_I("pid", p->pid));
				kill_now(p);
				buf_release(&req);
				buf_release(&msg);
				*result = xstrdup("stopped by the server");
				return BATCHD_FAILED;
			}
		}
		if (p->in >= 0 && off < req.len) {
			ssize_t w = write(p->in, req.data + off, req.len - off);

			if (w > 0) {
				off += (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				/* EPIPE: it is gone; its end tells why. */
				untouched = unread_in_pipe(p->in, off);
				close_fd(&p->in);
			}
		}
		read_stderr(p);
		out_ended = read_stdout(p);
		kind = take_lines(p, task, &msg);
		if (p->answered)
			worker_setup_done(task);
		if (kind != LINE_MORE)
			break;
		if (p->obuf.len > LINE_MAX_BYTES) {
			buf_addf(&msg, "co-process wrote a line longer than %u MiB",
				 LINE_MAX_BYTES >> 20);
			kind = LINE_FAULT;
			break;
		}
		if (out_ended || rc == 0 || p->in < 0) {
			int gone = has_exited(p);

			if (!gone && out_ended)
				gone = wait_exit(p, clock_mono_us() + TERM_GRACE_US, 0);
			if (gone) {
				/* What it wrote before it ended still counts, an
				 * unfinished last line too. */
				read_stdout(p);
				if (p->out < 0 && p->obuf.len)
					buf_addc(&p->obuf, '\n');
				kind = take_lines(p, task, &msg);
				if (kind != LINE_MORE)
					break;
				read_stderr(p);
				if (p->in >= 0)
					untouched = unread_in_pipe(p->in, off);
				if (ended_between_tasks(p, startup, lines, untouched, stop_sent, resent)) {
					struct buf why = BUF_INIT;

					proc_describe_status(&why, p->status);
					LOG_INFO("co-process ended before reading its task; "
						 "the task goes to a fresh one", LF_S("handler", p->name),
						 LF_I("pid", p->pid), LF_S("status", why.data));
					buf_release(&why);
					forget(p);
					worker_setup_start(task);
					if (start(p, err, sizeof(err)) < 0) {
						*result = xstrdup(err);
						buf_release(&req);
						buf_release(&msg);
						return BATCHD_INIT_FAILED;
					}
					resent = 1;
					untouched = 0;
					off = 0;
					lines = p->lines;
					buf_reset(&p->tail);
					continue;
				}
				buf_adds(&msg, "co-process ");
				proc_describe_status(&msg, p->status);
				buf_adds(&msg, startup && !p->answered ? " before its first answer"
						: " before its result line");
				rc = fault(p, &msg, startup && !p->answered, 1, result);
				forget(p);
				buf_release(&req);
				return rc;
			}
			if (out_ended) {
				buf_adds(&msg, "co-process closed its stdout");
				kind = LINE_FAULT;
				break;
			}
		}
		if (deadline && clock_mono_us() >= deadline) {
			buf_addf(&msg, "co-process gave no answer within init_timeout_s (%g s)",
				 (double)p->init_timeout_us / 1e6);
			kill_now(p);
			rc = fault(p, &msg, 1, 1, result);
			buf_release(&req);
			return rc;
		}
	}
	/* A stop line not yet written is not needed any more; one written
	 * after the answer is ignored by the co-process (the protocol says
	 * so). A line of that size is written whole or not at all. */
	unread = off < req_len;
	buf_release(&req);
	if (kind == LINE_FAULT) {
		kill_now(p);
		return fault(p, &msg, startup && !p->answered, 0, result);
	}
	if (unread) {
		LOG_WARN("replacing co-process", LF_S("handler", p->name),
			 LF_S("reason", "it answered before it had read its whole request"));
		kill_now(p);
	}
	*result = buf_detach(&msg, NULL);
	return kind == LINE_RESULT ? BATCHD_OK : BATCHD_FAILED;
}

const struct batchd_handler persistent_handler_ops = {
	.abi_version = BATCHD_ABI_VERSION,
	.name = "persistent",
	.init = persistent_init,
	.run = persistent_run,
	.fini = persistent_fini,
};
