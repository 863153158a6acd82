/*
 * command: the handler kind that runs a program per task.
 *
 * The program named in the handlers file is started with fork and execve (no
 * shell: the input never reaches a command line) and dies with its worker.
 * It gets the task's input JSON on stdin, and may write progress lines "<fraction> [message]" to the file
 * descriptor in $BATCHD_PROGRESS_FD. Exit status 0 is success and stdout is
 * the result (JSON when it parses as JSON, else a string; empty is null).
 * Any other end is a failure whose error holds the exit status or signal and
 * the last 4 KiB of stderr.
 *
 * The environment is clean: PATH, HOME, LANG, the handler's "env" entries
 * and BATCHD_PROGRESS_FD, BATCHD_JOB, BATCHD_TASK, BATCHD_ATTEMPT. Nothing of
 * batchd's own environment (a token, for one) reaches the program.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../lib/buf.h"
#include "../lib/clock.h"
#include "../lib/json.h"
#include "../lib/utf8.h"
#include "proc.h"
#include "registry.h"
#include "worker.h"
#include "../lib/xalloc.h"

#define STDOUT_MAX (64u << 20)
#define STDERR_TAIL 4096
#define PROGRESS_LINE_MAX 4096
/* Output through pipes held open after the program ended is read this
 * long at most. */
#define LEFTOVER_US 1000000
/* How often a program that has closed its pipes is looked at until it
 * ends: first after this long, then twice as long each time, up to
 * CLOSED_MAX_US. */
#define CLOSED_FIRST_US 25
#define CLOSED_MAX_US 16000

static void command_fini(void *state)
{
	struct proc_spec *spec = state;

	if (!spec)
		return;
	proc_spec_release(spec);
	free(spec);
}

static int command_init(const char *config, void **state, char *err,
			size_t errlen)
{
	cJSON *doc = cJSON_Parse(config ? config : "");
	struct proc_spec *spec = calloc(1, sizeof(*spec));
	int rc;

	if (!spec)
		abort();
	rc = proc_spec_init(spec, doc, err, errlen);
	cJSON_Delete(doc);
	if (rc < 0) {
		free(spec);
		return -1;
	}
	*state = spec;
	return 0;
}


static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Parses complete progress lines in pb, keeping a trailing partial line. */
static void parse_progress(struct batchd_task *task, struct buf *pb, int final)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(pb->data + start, '\n', pb->len - start);
		char *line = pb->data + start, *end;
		double f;

		if (!nl && !(final && start < pb->len))
			break;
		if (nl)
			*nl = '\0';
		f = strtod(line, &end);
		if (end != line && isfinite(f)) {
			while (*end == ' ' || *end == '\t')
				end++;
			size_t m = strlen(end);

			while (m && (end[m - 1] == '\r' || end[m - 1] == ' '))
				end[--m] = '\0';
			batchd_progress(task, f, m ? end : NULL);
		}
		start = nl ? (size_t)(nl - pb->data) + 1 : pb->len;
	}
	buf_consume(pb, start);
	if (pb->len > PROGRESS_LINE_MAX) /* a line without end: drop it */
		buf_reset(pb);
}

static void keep_tail(struct buf *b)
{
	if (b->len > 2 * STDERR_TAIL)
		buf_consume(b, b->len - STDERR_TAIL);
}

/* The result of an exit-0 run: stdout as JSON if it is JSON, else as a
 * JSON string; empty (or only whitespace) is null. */
static char *stdout_result(struct buf *out)
{
	size_t n = out->len;
	struct buf clean = BUF_INIT;
	cJSON *doc, *str;
	char *text;

	while (n && strchr(" \t\r\n", out->data[n - 1]))
		n--;
	out->data[n] = '\0';
	out->len = n;
	if (!n)
		return NULL;
	/* JSON batchd can keep is the result as it is. Anything else is
	 * text, kept as a string: output that is not UTF-8, that holds a NUL
	 * byte (no JSON does), a \u without 4 hex digits or \u0000 (which
	 * cJSON reads as a NUL, cutting the string short), or a number out of
	 * range (1e999). */
	if (json_parse_kept(out->data, n, &doc) == JSON_KEPT) {
		cJSON_Delete(doc);
		return buf_detach(out, NULL);
	}
	utf8_sanitize(&clean, out->data, n);
	str = cJSON_CreateString(clean.data);
	text = cJSON_PrintUnformatted(str);
	cJSON_Delete(str);
	buf_release(&clean);
	if (!text)
		abort();
	return text;
}

static char *failure(int status, struct buf *err, const char *extra)
{
	struct buf b = BUF_INIT;

	proc_describe_status(&b, status);
	if (extra)
		buf_addf(&b, " (%s)", extra);
	proc_add_stderr(&b, err->data, err->len, STDERR_TAIL);
	return buf_detach(&b, NULL);
}

static int command_run(void *state, struct batchd_task *task, const char *input,
		       char **result)
{
	struct proc_spec *c = state;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 },
	    prog[2] = { -1, -1 };
	struct buf obuf = BUF_INIT, ebuf = BUF_INIT, pbuf = BUF_INIT;
	size_t in_len = strlen(input), in_off = 0;
	const char *extra = NULL;
	char over[128];
	int64_t limit = worker_memory_limit(), checked_us = 0;
	char ejob[48], etask[48], eatt[48];
	char *envp[] = { "BATCHD_PROGRESS_FD=3", ejob, etask, eatt, NULL };
	volatile pid_t *group = worker_group_slot();
	pid_t pid = -1;
	int status = 0, rc, stopped = 0;
	int64_t ended_us = 0;	/* when the program was seen ended */
	int64_t looked_us;	/* when that was last looked at */
	int closed_us = 0;	/* the next wait for it once its pipes are closed */

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) ||
	    pipe2(err, O_CLOEXEC) || pipe2(prog, O_CLOEXEC)) {
		*result = xasprintf("cannot create pipes: %s", strerror(errno));
		goto fail;
	}
	/* The input goes into the pipe before the program starts: a small
	 * one (most are) fits whole, and the loop below then has nothing
	 * to write. Only our end is non-blocking; the program's are not. */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	while (in_off < in_len) {
		ssize_t n = write(in[1], input + in_off, in_len - in_off);

		if (n <= 0)
			break;	/* full: the rest once the program reads */
		in_off += (size_t)n;
	}
	snprintf(ejob, sizeof(ejob), "BATCHD_JOB=%lld", (long long)batchd_task_job(task));
	snprintf(etask, sizeof(etask), "BATCHD_TASK=%lld", (long long)batchd_task_index(task));
	snprintf(eatt, sizeof(eatt), "BATCHD_ATTEMPT=%d", batchd_task_attempt(task));
	rc = proc_spawn(c, (int[]){ in[0], out[1], err[1], prog[1] }, 4, envp, group, &pid);
	if (rc) {
		*result = xasprintf("cannot start %s: %s", c->argv[0], strerror(rc));
		goto fail;
	}
	looked_us = clock_mono_us();
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	close_fd(&prog[1]);
	/* The read ends stay blocking: each is read once per poll() that
	 * found it ready, which never blocks. */
	if (in_off == in_len)
		close_fd(&in[1]);

	/* Until the program has ended and its pipes are closed (or given up
	 * on, below). A program may close them first and go on (a quiet
	 * clean-up, a sleep): it is waited for, not killed, and until it ends
	 * a stop (a cancel, or its timeout: the server sends both) and the
	 * memory limit hold as while it writes. */
	while (out[0] >= 0 || err[0] >= 0 || prog[0] >= 0 || !ended_us) {
		struct pollfd p[5];
		/* The server's socket too, while it may still ask for a stop. */
		int fds[5] = { in[1], out[0], err[0], prog[0], stopped ? -1 : worker_fd(task) };
		int np = 0, closed = out[0] < 0 && err[0] < 0 && prog[0] < 0;

		for (int i = 0; i < 5; i++) {
			if (fds[i] < 0)
				continue;
			p[np].fd = fds[i];
			p[np].events = i == 0 ? POLLOUT : POLLIN;
			p[np].revents = 0;
			np++;
		}
		/* With its pipes closed, nothing says when the program ends.
		 * Most often it is in the middle of ending as they close: it
		 * is looked at at once, then at intervals from CLOSED_FIRST_US
		 * (ppoll: poll's milliseconds would hold up most tasks by one)
		 * doubling up to CLOSED_MAX_US. */
		struct timespec timeout = { 0, closed ? closed_us * 1000L : 50000000L };
		int ready = ppoll(p, (nfds_t)np, &timeout, NULL);

		if (ready < 0 && errno != EINTR)
			break;
		if (closed)
			closed_us = !closed_us ? CLOSED_FIRST_US :
				2 * closed_us < CLOSED_MAX_US ? 2 * closed_us : CLOSED_MAX_US;
		worker_progress_flush(task);
		/* Pipes still open 50 ms on, or closed: has the program itself
		 * ended? With pipes still open, something holds them (a child
		 * in the background): its group goes, and what is still
		 * written to the pipes is read for at most LEFTOVER_US more. */
		if (closed || ready == 0 || clock_mono_us() - looked_us >= 50000) {
			siginfo_t si = { 0 };

			looked_us = clock_mono_us();
			if (!ended_us && waitid(P_PID, (id_t)pid, &si,
						WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) {
				ended_us = looked_us;
				kill(-pid, SIGKILL);
			} else if (ended_us && looked_us - ended_us > LEFTOVER_US) {
				break;
			}
		}
		/* A stop: the program's whole group goes, and with it the
		 * pipes' last writers; the worker stays, and so does every
		 * handler's state in it. */
		if (!stopped && np && p[np - 1].fd == fds[4] && p[np - 1].revents &&
		    worker_stop_asked(task)) {
			stopped = 1;
			extra = "stopped by the server";
			kill(-pid, SIGKILL);
		}
		/* The program is held to the worker's memory limit. */
		if (limit && !extra && clock_mono_us() - checked_us >= 20000 &&
		    (checked_us = clock_mono_us(), worker_resident(pid) > limit)) {
			snprintf(over, sizeof(over),
				 "the program exceeded the memory limit of %lld MiB, --worker-memory-limit",
				 (long long)(limit >> 20));
			extra = over;
			kill(-pid, SIGKILL);
		}
		for (int i = 0; i < np; i++) {
			char chunk[65536];
			ssize_t n;

			if (!p[i].revents || p[i].fd == fds[4])
				continue;
			if (p[i].fd == in[1]) {
				n = write(in[1], input + in_off, in_len - in_off);
				if (n > 0)
					in_off += (size_t)n;
				/* EPIPE: the program does not read its input. */
				if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
				    in_off == in_len)
					close_fd(&in[1]);
				continue;
			}
			n = read(p[i].fd, chunk, sizeof(chunk));
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0) {
				if (p[i].fd == out[0])
					close_fd(&out[0]);
				else if (p[i].fd == err[0])
					close_fd(&err[0]);
				else
					close_fd(&prog[0]);
				continue;
			}
			if (p[i].fd == out[0]) {
				buf_add(&obuf, chunk, (size_t)n);
				if (obuf.len > STDOUT_MAX && !extra) {
					extra = "stdout over 64 MiB";
					kill(-pid, SIGKILL);
					close_fd(&out[0]);
				}
			} else if (p[i].fd == err[0]) {
				buf_add(&ebuf, chunk, (size_t)n);
				keep_tail(&ebuf);
			} else {
				buf_add(&pbuf, chunk, (size_t)n);
				parse_progress(task, &pbuf, 0);
			}
		}
	}
	parse_progress(task, &pbuf, 1);
	close_fd(&in[1]);
	close_fd(&out[0]);	/* still open if given up on */
	close_fd(&err[0]);
	close_fd(&prog[0]);
	/* Nothing the program started outlives its task: what is left in its
	 * group goes now (the program too, if the loop gave up on it). Until
	 * it is reaped its pid, the group's id, cannot be reused, so the
	 * server may still kill the group by that id. */
	kill(-pid, SIGKILL);
	*group = 0;
	status = proc_wait(pid);
	if (!extra && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		*result = stdout_result(&obuf);
		rc = 0;
	} else {
		*result = failure(status, &ebuf, extra);
		rc = -1;
	}
	buf_release(&obuf);
	buf_release(&ebuf);
	buf_release(&pbuf);
	return rc;
fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
		close_fd(&prog[i]);
	}
	return -1;
}

const struct batchd_handler command_handler_ops = {
	.abi_version = BATCHD_ABI_VERSION,
	.name = "command",
	.init = command_init,
	.run = command_run,
	.fini = command_fini,
};
