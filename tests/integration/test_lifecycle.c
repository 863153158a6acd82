/*
 * Integration tests of what happens to tasks and workers over time: crashes,
 * timeouts, cancellation, retries, priorities, command handlers, stateful
 * handlers, a SIGKILLed server and a graceful shutdown — all against the
 * real batchd.
 */
#include "harness.h"

#include "../../lib/buf.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static cJSON *task(const struct server *s, int64_t job, int idx)
{
	return apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/%d", (long long)job, idx);
}

static int worker_ids(const struct server *s, int *ids, int max)
{
	cJSON *j = api(s, "GET", "/api/workers", NULL, 200);
	const cJSON *w;
	int n = 0;

	cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "workers")) {
		const cJSON *id = cJSON_GetObjectItem(w, "id");

		if (n < max)
			ids[n++] = cJSON_IsNumber(id) ? id->valueint : 0;
	}
	cJSON_Delete(j);
	return n;
}

static int all_ready(const struct server *s, void *ctx)
{
	int total;

	(void)ctx;
	return workers_in(s, "idle|busy", &total) == total;
}

struct pids {
	pid_t p[16];
	int n;
};

static int none_alive(const struct server *s, void *ctx)
{
	struct pids *p = ctx;

	(void)s;
	for (int i = 0; i < p->n; i++)
		if (pid_alive(p->p[i]))
			return 0;
	return 1;
}

/* Every worker in p answered a task (the stop of the one it ran) and is
 * still the same process. */
static int stopped_in_place(const struct server *s, void *ctx)
{
	struct pids *p = ctx;
	cJSON *j = api(s, "GET", "/api/workers", NULL, 200);
	const cJSON *w;
	int n = 0;

	cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "workers"))
		for (int i = 0; i < p->n; i++)
			if (cJSON_IsNumber(cJSON_GetObjectItem(w, "pid")) &&
			    (pid_t)jnum(w, "pid") == p->p[i] && jnum(w, "tasks_done") >= 1 &&
			    !strcmp(jstr(w, "state"), "idle"))
				n++;
	cJSON_Delete(j);
	return n == p->n;
}

/* A worker that dies mid-task fails that attempt with the signal, is
 * replaced, and the job goes on. */
static void test_worker_crash(void **state)
{
	const char *args[] = { "--workers", "2", NULL };
	struct server *s = server_new(args);
	int before[2], after[2];
	cJSON *j, *t;

	(void)state;
	worker_ids(s, before, 2);
	int64_t id = submit(s, "{\"handler\": \"crash\", \"tasks\": [null]}");

	j = wait_job(s, id, "failed", 30);
	assert_int_equal(jnum(j, "progress.failed"), 1);
	cJSON_Delete(j);
	t = task(s, id, 0);
	assert_string_equal(jstr(t, "state"), "failed");
	assert_string_equal(jstr(t, "error"), "worker died: killed by signal 11 (SIGSEGV)");
	assert_int_equal(jnum(t, "attempts"), 1);
	cJSON_Delete(t);

	/* Replaced: a new worker id, and the pool at full strength. */
	assert_true(wait_until(all_ready, s, NULL, 30));
	worker_ids(s, after, 2);
	assert_true(after[0] + after[1] > before[0] + before[1]);
	j = api(s, "GET", "/api/progress", NULL, 200);
	assert_true(jnum(j, "totals.workers.restarts") >= 1);
	cJSON_Delete(j);

	/* The next job runs normally. */
	id = submit(s, "{\"handler\": \"echo\", \"tasks\": [1, 2, 3, 4]}");
	cJSON_Delete(wait_job(s, id, "succeeded", 30));
	server_delete(s);
}

/* A task over its timeout is stopped in its worker (the built-in sleep
 * asks batchd_task_should_stop() as it waits), which runs the next. */
static void test_timeout(void **state)
{
	const char *args[] = { "--workers", "1", NULL };
	struct server *s = server_new(args);
	cJSON *j, *t;
	int64_t id = submit(s, "{\"handler\": \"sleep\", \"timeout_s\": 0.3, "
			    "\"tasks\": [{\"ms\": 60000}, {\"ms\": 1}]}");

	(void)state;
	j = wait_job(s, id, "failed", 60);
	assert_int_equal(jnum(j, "progress.failed"), 1);
	assert_int_equal(jnum(j, "progress.succeeded"), 1);
	cJSON_Delete(j);
	t = task(s, id, 0);
	assert_string_equal(jstr(t, "error"), "timed out after 0.3 s");
	cJSON_Delete(t);
	assert_int_equal(restarts(s, NULL), 0);
	server_delete(s);
}

/* Cancelling a running job stops its running tasks at once (in their
 * workers, which live on) and cancels the queued ones. */
static void test_cancel_running(void **state)
{
	const char *args[] = { "--workers", "2", NULL };
	struct server *s = server_new(args);
	struct pids p = { .n = 0 };
	cJSON *j;
	const cJSON *w;
	int64_t id = submit(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 60000}, "
			    "{\"ms\": 60000}, {\"ms\": 60000}, {\"ms\": 60000}]}");

	(void)state;
	cJSON_Delete(wait_job(s, id, "running", 30));
	/* Wait until both workers hold a task. */
	for (int tries = 0; tries < 500 && p.n < 2; tries++) {
		p.n = 0;
		j = api(s, "GET", "/api/workers", NULL, 200);
		cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "workers"))
			if (!strcmp(jstr(w, "state"), "busy"))
				p.p[p.n++] = (pid_t)jnum(w, "pid");
		cJSON_Delete(j);
		usleep(20000);
	}
	assert_int_equal(p.n, 2);

	j = apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id);
	assert_string_equal(jstr(j, "state"), "cancelled");
	assert_int_equal(jnum(j, "progress.cancelled"), 4);
	assert_int_equal(jnum(j, "progress.running"), 0);
	cJSON_Delete(j);
	assert_true(wait_until(stopped_in_place, s, &p, 10));
	assert_int_equal(restarts(s, NULL), 0);

	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks?state=cancelled", (long long)id);
	assert_int_equal(jnum(j, "total"), 4);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 4);
	cJSON_Delete(j);
	/* The job's finished tasks stay put: no result arrives later. */
	id = submit(s, "{\"handler\": \"noop\", \"tasks\": [1]}");
	cJSON_Delete(wait_job(s, id, "succeeded", 30));
	j = api(s, "GET", "/api/jobs/1", NULL, 200);
	assert_string_equal(jstr(j, "state"), "cancelled");
	assert_int_equal(jnum(j, "progress.cancelled"), 4);
	cJSON_Delete(j);
	server_delete(s);
}

struct retry_seen {
	int64_t job;
	int attempts;		/* made when it waits */
	int64_t wait_ms;	/* then: from now to its retry_at */
};

/* An API time ("2026-11-29T06:01:36.495Z") in ms since the epoch. */
static int64_t api_time_ms(const char *text)
{
	struct tm tm = { 0 };
	const char *rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);

	assert_non_null(rest);
	return (int64_t)timegm(&tm) * 1000 + (*rest == '.' ? atoi(rest + 1) : 0);
}

static int queued_for_retry(const struct server *s, void *ctx)
{
	struct retry_seen *r = ctx;
	cJSON *t = task(s, r->job, 0);
	struct timespec now;
	int ok = !strcmp(jstr(t, "state"), "queued") && jnum(t, "attempts") == r->attempts &&
		 jstr(t, "retry_at") && jstr(t, "error");

	clock_gettime(CLOCK_REALTIME, &now);
	if (ok)
		r->wait_ms = api_time_ms(jstr(t, "retry_at")) -
			     ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	cJSON_Delete(t);
	return ok;
}

/* A failed attempt is retried up to max_attempts with backoff; a retry from
 * the API grants a fresh set of attempts and attempts keep counting. */
static void test_retries(void **state)
{
	const char *args[] = { "--workers", "1", NULL };
	struct server *s = server_new(args);
	struct retry_seen r = { 0, 1, 0 };
	cJSON *j, *t;

	(void)state;
	r.job = submit(s, "{\"handler\": \"fail\", \"max_attempts\": 3, "
		       "\"tasks\": [{\"message\": \"flaky\"}]}");
	/* Between attempts the task waits in the queue with its retry time
	 * (1 s after the first failure) and the last error. */
	assert_true(wait_until(queued_for_retry, s, &r, 30));
	assert_true(r.wait_ms <= 1000);
	t = task(s, r.job, 0);
	assert_string_equal(jstr(t, "error"), "flaky");
	cJSON_Delete(t);

	j = wait_job(s, r.job, "failed", 60);
	assert_int_equal(jnum(j, "progress.failed"), 1);
	cJSON_Delete(j);
	t = task(s, r.job, 0);
	assert_int_equal(jnum(t, "attempts"), 3);
	assert_string_equal(jstr(t, "error"), "flaky");
	cJSON_Delete(t);

	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/retry", (long long)r.job));
	/* The fresh set's backoff starts over at 1 s, not at the 8 s a
	 * fourth attempt would otherwise wait. */
	r.attempts = 4;
	assert_true(wait_until(queued_for_retry, s, &r, 30));
	print_message("after the API retry: retry_at in %lld ms\n", (long long)r.wait_ms);
	assert_true(r.wait_ms <= 1000);
	j = wait_job(s, r.job, "failed", 60);
	cJSON_Delete(j);
	t = task(s, r.job, 0);
	assert_int_equal(jnum(t, "attempts"), 6);
	cJSON_Delete(t);
	server_delete(s);
}

/* Higher priority runs first. */
static void test_priority(void **state)
{
	const char *args[] = { "--workers", "1", NULL };
	struct server *s = server_new(args);
	cJSON *lo, *hi;
	int64_t a, b;

	(void)state;
	a = submit(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 200}, {\"ms\": 200}, "
		   "{\"ms\": 200}, {\"ms\": 200}, {\"ms\": 200}, {\"ms\": 200}]}");
	cJSON_Delete(wait_job(s, a, "running", 30));
	b = submit(s, "{\"handler\": \"sleep\", \"priority\": 10, \"tasks\": [{\"ms\": 1}, {\"ms\": 1}]}");
	hi = wait_job(s, b, "succeeded", 60);
	lo = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)a);
	/* The low-priority job cannot have finished when the high one did. */
	assert_true(jnum(lo, "progress.succeeded") < 6);
	cJSON_Delete(hi);
	cJSON_Delete(lo);
	cJSON_Delete(wait_job(s, a, "succeeded", 60));
	server_delete(s);
}

struct done_ctx {
	int64_t job;
	int want;
};

static int succeeded_at_least(const struct server *s, void *ctx)
{
	struct done_ctx *d = ctx;
	cJSON *j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)d->job);
	int ok = jnum(j, "progress.succeeded") >= d->want;

	cJSON_Delete(j);
	return ok;
}

/* Tiny tasks are handed to a worker a few at a time ahead; one that turns
 * out to take long must not hold up those behind it: they are taken back
 * and the other worker runs them while the long one goes on. */
static void test_long_task_does_not_hold_up_others(void **state)
{
	const char *args[] = { "--workers", "2", NULL };
	struct server *s = server_new(args);
	struct buf body = BUF_INIT;
	struct done_ctx d;
	cJSON *t;

	(void)state;
	buf_adds(&body, "{\"handler\": \"sleep\", \"tasks\": [");
	for (int i = 0; i < 2000; i++)
		buf_addf(&body, "%s{\"ms\": %d}", i ? ", " : "", i == 1000 ? 120000 : 0);
	buf_adds(&body, "]}");
	d.job = submit(s, body.data);
	buf_release(&body);
	d.want = 1999;
	assert_true(wait_until(succeeded_at_least, s, &d, 60));
	t = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/1000", (long long)d.job);
	assert_string_equal(jstr(t, "state"), "running");
	cJSON_Delete(t);
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)d.job));
	server_delete(s);
}

static const char progress_script[] =
	"#!/bin/sh\n"
	"# reads {\"n\": N, \"wait\": FILE}\n"
	"input=$(cat)\n"
	"n=$(echo \"$input\" | sed 's/.*\"n\": *\\([0-9]*\\).*/\\1/')\n"
	"echo \"0.25 quarter of $n\" >&$BATCHD_PROGRESS_FD\n"
	"echo \"0.5 half way\" >&$BATCHD_PROGRESS_FD\n"
	"wait=$(echo \"$input\" | sed -n 's/.*\"wait\": *\"\\([^\"]*\\)\".*/\\1/p')\n"
	"if [ -n \"$wait\" ]; then while [ ! -e \"$wait\" ]; do sleep 0.01; done; fi\n"
	"echo \"{\\\"double\\\": $((n * 2)), \\\"token\\\": \\\"${BATCHD_TOKEN:-none}\\\","
	" \\\"job\\\": $BATCHD_JOB, \\\"task\\\": $BATCHD_TASK}\"\n";

static const char failing_script[] =
	"#!/bin/sh\n"
	"echo '0.2 reading' >&$BATCHD_PROGRESS_FD\n"
	"echo '0.7 writing the index' >&$BATCHD_PROGRESS_FD\n"
	"echo 'some output'\n"
	"echo 'it went wrong: disk on fire' >&2\n"
	"exit 3\n";

static const char plain_script[] =
	"#!/bin/sh\n"
	"echo 'not json, just words'\n";

static int running_with_message(const struct server *s, void *ctx)
{
	int64_t job = *(int64_t *)ctx;
	cJSON *t = task(s, job, 0);
	int ok = !strcmp(jstr(t, "state"), "running") && jstr(t, "message") &&
		 !strcmp(jstr(t, "message"), "half way") &&
		 jnum(t, "progress") > 0.49 && jnum(t, "progress") < 0.51;

	cJSON_Delete(t);
	return ok;
}

/* Command handlers: input on stdin, progress on BATCHD_PROGRESS_FD, result
 * on stdout, failure with exit status and stderr tail, clean environment. */
static void test_command_handler(void **state)
{
	struct server s;
	char p1[400], p2[400], p3[400], hf[400], handlers[2048], body[1024], flag[400];
	cJSON *j, *t;
	int64_t id;

	(void)state;
	server_init(&s);
	write_file(&s, "progress.sh", progress_script, 0755, p1, sizeof(p1));
	write_file(&s, "failing.sh", failing_script, 0755, p2, sizeof(p2));
	write_file(&s, "plain.sh", plain_script, 0755, p3, sizeof(p3));
	snprintf(handlers, sizeof(handlers),
		 "{\"handlers\": {\"double\": {\"argv\": [\"%s\"], \"timeout_s\": 60},"
		 " \"failing\": {\"argv\": [\"%s\"]}, \"plain\": {\"argv\": [\"%s\"]}}}",
		 p1, p2, p3);
	write_file(&s, "handlers.json", handlers, 0644, hf, sizeof(hf));
	snprintf(flag, sizeof(flag), "%s/go", s.dir);
	setenv("BATCHD_TOKEN", "", 1);
	const char *args[] = { "--workers", "2", "--handlers", hf, NULL };

	server_start(&s, args);
	snprintf(body, sizeof(body),
		 "{\"handler\": \"double\", \"tasks\": [{\"n\": 21, \"wait\": \"%s\"}]}", flag);
	id = submit(&s, body);
	/* Progress reported by the program shows while it runs. */
	assert_true(wait_until(running_with_message, &s, &id, 30));
	j = api(&s, "GET", "/api/progress", NULL, 200);
	assert_int_equal(jnum(j, "jobs.0.progress.running"), 1);
	assert_float_equal(jnum(j, "jobs.0.progress.running_progress"), 0.5, 1e-9);
	cJSON_Delete(j);
	/* The job's own figures count the running task's half: no task has
	 * finished, yet the ETA is known (as long again as it has run) and
	 * the command line's bar stands at 50%. */
	j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
	assert_float_equal(jnum(j, "progress.running_progress"), 0.5, 1e-9);
	assert_float_equal(jnum(j, "progress.fraction"), 0, 1e-9);
	assert_true(jnum(j, "progress.eta_s") >= 0);
	cJSON_Delete(j);
	snprintf(p2, sizeof(p2), "%s/status.out", s.dir);
	assert_int_equal(sh("'%s' status --url %s %lld > '%s' 2>&1", batchd_bin(), s.url,
			    (long long)id, p2), 0);
	char *bar = file_text(p2);

	assert_non_null(strstr(bar, " 50%|"));
	assert_non_null(strstr(bar, "| 0/1 ["));
	free(bar);
	sh("touch '%s'", flag);
	cJSON_Delete(wait_job(&s, id, "succeeded", 30));
	j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
	assert_float_equal(jnum(j, "progress.running_progress"), 0, 1e-9);
	cJSON_Delete(j);
	t = task(&s, id, 0);
	assert_int_equal(jnum(t, "result.double"), 42);
	assert_string_equal(jstr(t, "result.token"), "none");
	assert_int_equal(jnum(t, "result.job"), id);
	assert_int_equal(jnum(t, "result.task"), 0);
	cJSON_Delete(t);

	id = submit(&s, "{\"handler\": \"failing\", \"tasks\": [null]}");
	cJSON_Delete(wait_job(&s, id, "failed", 30));
	t = task(&s, id, 0);
	assert_string_equal(jstr(t, "error"),
			    "exited with status 3; stderr: it went wrong: disk on fire");
	/* Its last progress line, close on the heels of the one before (which
	 * holds it back a while), is what it shows: where it stopped. */
	assert_float_equal(jnum(t, "progress"), 0.7, 1e-9);
	assert_string_equal(jstr(t, "message"), "writing the index");
	cJSON_Delete(t);

	id = submit(&s, "{\"handler\": \"plain\", \"tasks\": [null]}");
	cJSON_Delete(wait_job(&s, id, "succeeded", 30));
	t = task(&s, id, 0);
	assert_string_equal(jstr(t, "result"), "not json, just words");
	cJSON_Delete(t);
	server_free(&s);
}

/* Programs that close stdout, stderr and the progress pipe before they end
 * (their children, started first, hold none of them): "closes" writes its
 * result, leaves a child behind and exits 0 0.3 s after closing them;
 * "lingers" closes them and waits on its child. Each writes its pid and its
 * child's to pid.<name>.<job>.<task> first. */
static const char closes_script[] =
	"#!/bin/sh\n"
	"sleep 60 < /dev/null > /dev/null 2>&1 3>&- &\n"
	"echo \"$$ $!\" > \"$(dirname \"$0\")/pid.closes.$BATCHD_JOB.$BATCHD_TASK\"\n"
	"echo '{\"ok\": true}'\n"
	"exec > /dev/null 2>&1 3>&-\n"
	"sleep 0.3\n"
	"exit 0\n";

static const char lingers_script[] =
	"#!/bin/sh\n"
	"sleep 60 < /dev/null > /dev/null 2>&1 3>&- &\n"
	"echo \"$$ $!\" > \"$(dirname \"$0\")/pid.lingers.$BATCHD_JOB.$BATCHD_TASK\"\n"
	"exec > /dev/null 2>&1 3>&-\n"
	"wait\n";

/* The pids that the program of task idx of job wrote (its own and its
 * child's), once it has. */
static void script_pids(const struct server *s, const char *name, int64_t job, int idx,
			pid_t *pids)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/pid.%s.%lld.%d", s->dir, name, (long long)job, idx);
	assert_int_equal(read_pids_file(path, pids, 2, 30), 2);
}

/* Whether program *ctx has closed its pipes (its progress descriptor is
 * gone) and still runs. */
static int pipes_closed(const struct server *s, void *ctx)
{
	char path[64];

	(void)s;
	snprintf(path, sizeof(path), "/proc/%d/fd/3", (int)*(pid_t *)ctx);
	return pid_alive(*(pid_t *)ctx) && access(path, F_OK) < 0;
}

/* A program that closes its pipes before it ends is waited for, not
 * killed: its exit status 0 makes its task succeed with what it wrote, and
 * what it left in its group goes when it ends. Until then its task's
 * timeout and a cancel stop it in its worker, which stays. */
static void test_command_closes_pipes(void **state)
{
	struct server s;
	char p1[400], p2[400], hf[400], handlers[1024];
	pid_t pids[2];
	cJSON *j, *t;
	int64_t id;
	double t0;

	(void)state;
	server_init(&s);
	write_file(&s, "closes.sh", closes_script, 0755, p1, sizeof(p1));
	write_file(&s, "lingers.sh", lingers_script, 0755, p2, sizeof(p2));
	snprintf(handlers, sizeof(handlers),
		 "{\"handlers\": {\"closes\": {\"argv\": [\"%s\"]},"
		 " \"lingers\": {\"argv\": [\"%s\"]}}}", p1, p2);
	write_file(&s, "handlers.json", handlers, 0644, hf, sizeof(hf));
	const char *args[] = { "--workers", "1", "--handlers", hf, NULL };

	server_start(&s, args);
	id = submit(&s, "{\"handler\": \"closes\", \"tasks\": [1, 2]}");
	cJSON_Delete(wait_job(&s, id, "succeeded|failed", 30));
	for (int i = 0; i < 2; i++) {
		t = task(&s, id, i);
		if (strcmp(jstr(t, "state"), "succeeded"))
			fail_msg("task %d %s: %s", i, jstr(t, "state"),
				 jstr(t, "error") ? jstr(t, "error") : "");
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "result"),
							     "ok")));
		cJSON_Delete(t);
		script_pids(&s, "closes", id, i, pids);
		assert_true(pids_gone_within(pids, 2, 10));
	}

	/* Its timeout still applies once the pipes are closed. */
	id = submit(&s, "{\"handler\": \"lingers\", \"timeout_s\": 0.3, \"tasks\": [null]}");
	script_pids(&s, "lingers", id, 0, pids);
	cJSON_Delete(wait_job(&s, id, "failed", 30));
	t = task(&s, id, 0);
	assert_string_equal(jstr(t, "error"), "timed out after 0.3 s");
	cJSON_Delete(t);
	assert_true(pids_gone_within(pids, 2, 10));

	/* So does a cancel, at once: the worker stops the program itself,
	 * well before the server's 2 s of patience would end. */
	id = submit(&s, "{\"handler\": \"lingers\", \"tasks\": [null]}");
	script_pids(&s, "lingers", id, 0, pids);
	assert_true(wait_until(pipes_closed, &s, &pids[0], 30));
	t0 = now_s();
	cJSON_Delete(apif(&s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	assert_true(pids_gone_within(pids, 2, 10));
	print_message("cancelled with its pipes closed: gone in %.0f ms\n", (now_s() - t0) * 1000);
	assert_true(now_s() - t0 < 1.5);
	cJSON_Delete(wait_job(&s, submit(&s, "{\"handler\": \"noop\", \"tasks\": [null]}"),
			      "succeeded", 30));
	assert_int_equal(restarts(&s, NULL), 0);
	j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
	assert_string_equal(jstr(j, "state"), "cancelled");
	cJSON_Delete(j);
	server_free(&s);
}

/* A handler is initialized once per worker and keeps its state: 100 tasks
 * of the counter handler on 2 workers count up per worker. */
static void test_stateful_init_once(void **state)
{
	const char *args[] = { "--workers", "2", NULL };
	struct server *s = server_new(args);
	char tasks[1024] = "{\"handler\": \"counter\", \"tasks\": [0";
	long pids[2] = { 0, 0 }, maxc[2] = { 0, 0 };
	cJSON *j;
	const cJSON *t;

	(void)state;
	for (int i = 1; i < 100; i++)
		snprintf(tasks + strlen(tasks), sizeof(tasks) - strlen(tasks), ",%d", i);
	strcat(tasks, "]}");
	int64_t id = submit(s, tasks);

	cJSON_Delete(wait_job(s, id, "succeeded", 60));
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks?limit=100", (long long)id);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
		long pid = (long)jnum(t, "result.pid"), calls = (long)jnum(t, "result.calls");
		int k = pids[0] == pid ? 0 : pids[1] == pid ? 1 : !pids[0] ? 0 : 1;

		assert_true(pids[k] == 0 || pids[k] == pid);	/* at most 2 processes */
		pids[k] = pid;
		if (calls > maxc[k])
			maxc[k] = calls;
	}
	cJSON_Delete(j);
	/* Each worker's state counted every task it ran: no re-init. */
	assert_int_equal(maxc[0] + maxc[1], 100);
	j = api(s, "GET", "/api/workers", NULL, 200);
	char *text = cJSON_PrintUnformatted(j);

	assert_non_null(strstr(text, "\"counter\""));
	free(text);
	cJSON_Delete(j);
	server_delete(s);
}

static const char recorder_script[] =
	"#!/bin/sh\n"
	"input=$(cat)\n"
	"echo \"$input\" >> \"$(dirname \"$0\")/ran.log\"\n"
	"sleep 0.02\n"
	"echo \"$input\"\n";

static int some_done(const struct server *s, void *ctx)
{
	cJSON *j = api(s, "GET", "/api/jobs/1", NULL, 200);
	int ok = jnum(j, "progress.succeeded") >= *(int *)ctx;

	cJSON_Delete(j);
	return ok;
}

/* kill -9 of the server mid-job: the workers go with it, and a restart
 * finishes the job with every task recorded once. */
static void test_kill9_restart(void **state)
{
	struct server s;
	char script[400], hf[400], handlers[1024];
	struct buf body = BUF_INIT;
	struct pids workers;
	int half = 60;
	cJSON *j;
	const cJSON *t;

	(void)state;
	server_init(&s);
	write_file(&s, "record.sh", recorder_script, 0755, script, sizeof(script));
	snprintf(handlers, sizeof(handlers),
		 "{\"handlers\": {\"record\": {\"argv\": [\"%s\"]}}}", script);
	write_file(&s, "handlers.json", handlers, 0644, hf, sizeof(hf));
	const char *args[] = { "--workers", "2", "--handlers", hf, NULL };

	server_start(&s, args);
	buf_adds(&body, "{\"handler\": \"record\", \"tasks\": [0");
	for (int i = 1; i < 200; i++)
		buf_addf(&body, ", %d", i);
	buf_adds(&body, "]}");
	submit(&s, body.data);
	buf_release(&body);
	assert_true(wait_until(some_done, &s, &half, 60));

	workers.n = server_children(&s, workers.p, 16);
	assert_true(workers.n >= 2);
	server_kill(&s);
	/* No orphaned worker goes on running tasks. */
	assert_true(wait_until(none_alive, &s, &workers, 10));

	server_start(&s, args);
	j = wait_job(&s, 1, "succeeded", 120);
	assert_int_equal(jnum(j, "progress.succeeded"), 200);
	assert_int_equal(jnum(j, "progress.failed"), 0);
	cJSON_Delete(j);
	/* Each task has its own result, recorded once, in order. */
	for (int off = 0; off < 200; off += 100) {
		int i = off;

		j = apif(&s, "GET", 200, NULL, "/api/jobs/1/tasks?offset=%d&limit=100", off);
		cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
			assert_int_equal(jnum(t, "index"), i);
			assert_int_equal(jnum(t, "result"), i);
			assert_string_equal(jstr(t, "state"), "succeeded");
			i++;
		}
		assert_int_equal(i, off + 100);
		cJSON_Delete(j);
	}
	/* At least once: every task ran, some perhaps twice. */
	assert_int_equal(sh("test $(sort -u '%s/ran.log' | wc -l) -eq 200", s.dir), 0);
	server_free(&s);
}

/* Two tasks of job 1 have reported progress: their workers run them (a
 * task handed out but not yet begun is given back at a shutdown). */
static int two_begun(const struct server *s, void *ctx)
{
	cJSON *j = api(s, "GET", "/api/jobs/1/tasks?state=running", NULL, 200);
	const cJSON *t;
	int n = 0;

	(void)ctx;
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks"))
		n += cJSON_IsNumber(cJSON_GetObjectItem(t, "progress")) && jnum(t, "progress") > 0;
	cJSON_Delete(j);
	return n == 2;
}

/* SIGTERM: running tasks finish, queued ones stay queued, the server exits
 * 0 and leaves no process behind; a restart finishes the job. */
static void test_graceful_shutdown(void **state)
{
	struct server s;
	struct pids workers;
	const char *args[] = { "--workers", "2", "--grace", "30", NULL };
	struct buf body = BUF_INIT;
	cJSON *j;
	int status;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	buf_adds(&body, "{\"handler\": \"sleep\", \"tasks\": [");
	for (int i = 0; i < 6; i++)
		buf_addf(&body, "%s{\"ms\": 700, \"steps\": 70}", i ? ", " : "");
	buf_adds(&body, "]}");
	submit(&s, body.data);
	buf_release(&body);
	assert_true(wait_until(two_begun, &s, NULL, 30));
	workers.n = server_children(&s, workers.p, 16);
	assert_int_equal(workers.n, 2);
	status = server_stop(&s);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(none_alive(&s, &workers));
	assert_true(server_log_has(&s, "msg=stopped"));
	assert_false(server_log_has(&s, "level=error"));

	server_start(&s, args);
	j = api(&s, "GET", "/api/jobs/1", NULL, 200);
	/* The two that were running finished during the grace period. */
	assert_true(jnum(j, "progress.succeeded") >= 2);
	cJSON_Delete(j);
	j = wait_job(&s, 1, "succeeded", 60);
	cJSON_Delete(j);
	j = api(&s, "GET", "/api/jobs/1/tasks?state=succeeded", NULL, 200);
	assert_int_equal(jnum(j, "total"), 6);
	cJSON_Delete(j);
	server_free(&s);
}

static int task0_running(const struct server *s, void *ctx)
{
	cJSON *t = api(s, "GET", "/api/jobs/1/tasks/0", NULL, 200);
	int yes = !strcmp(jstr(t, "state"), "running");

	(void)ctx;
	cJSON_Delete(t);
	return yes;
}

/* Past the grace period running tasks are stopped and queued again,
 * without counting an attempt: the next server runs it as attempt 1. */
static void test_grace_expires(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "1", "--grace", "0.2", NULL };
	cJSON *t;
	int status;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	submit(&s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 60000}]}");
	cJSON_Delete(wait_job(&s, 1, "running", 30));
	status = server_stop(&s);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(server_log_has(&s, "grace period over"));

	server_start(&s, args);
	assert_true(wait_until(task0_running, &s, NULL, 30));
	t = api(&s, "GET", "/api/jobs/1/tasks/0", NULL, 200);
	assert_int_equal(jnum(t, "attempts"), 1);
	cJSON_Delete(t);
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_crash),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_cancel_running),
		cmocka_unit_test(test_retries),
		cmocka_unit_test(test_priority),
		cmocka_unit_test(test_long_task_does_not_hold_up_others),
		cmocka_unit_test(test_command_handler),
		cmocka_unit_test(test_command_closes_pipes),
		cmocka_unit_test(test_stateful_init_once),
		cmocka_unit_test(test_kill9_restart),
		cmocka_unit_test(test_graceful_shutdown),
		cmocka_unit_test(test_grace_expires),
	};

	return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}
