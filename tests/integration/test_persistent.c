/*
 * Integration tests of persistent command handlers ("mode": "persistent"):
 * a co-process started once per worker serves task after task, its
 * progress reaches the API, and every fault it can commit fails the task
 * with an error that says exactly what happened, after which a fresh
 * co-process serves the next task.
 *
 * The co-process is tests/helpers/coproc.py, which does what each task's
 * input asks (crash, write garbage, exit, ...) and appends its pid to a
 * "starts" file as it starts, so that start-ups are counted exactly.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/buf.h"

struct env {
	struct server s;
	char starts[400];	/* the co-processes' pids, one a line */
	char coproc[PATH_MAX + 32];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char cwd[PATH_MAX];

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(e->coproc, sizeof(e->coproc), "%s/tests/helpers/coproc.py", cwd);
	server_init(&e->s);
	snprintf(e->starts, sizeof(e->starts), "%s/starts", e->s.dir);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	server_free(&e->s);
	free(e);
	return 0;
}

/* Writes a handlers file with the handler "co" (the helper, persistent)
 * whose extra members are given as JSON text (may be empty), and starts
 * batchd with it and n workers. */
static void start_with(struct env *e, int workers, const char *extra_env,
		       const char *extra_spec)
{
	struct buf text = BUF_INIT;
	char path[400], nw[16];
	const char *args[] = { "--workers", nw, "--handlers", path, NULL };

	snprintf(nw, sizeof(nw), "%d", workers);
	buf_addf(&text,
		 "{\"handlers\": {\"co\": {\"argv\": [\"%s\"], \"mode\": \"persistent\",\n"
		 "  \"env\": {\"STARTS\": \"%s\"%s%s}%s%s}}}\n",
		 e->coproc, e->starts, *extra_env ? ", " : "", extra_env,
		 *extra_spec ? ", " : "", extra_spec);
	write_file(&e->s, "handlers.json", text.data, 0644, path, sizeof(path));
	buf_release(&text);
	server_start(&e->s, args);
}

/* The pids in the starts file, in order; returns how many. */
static int starts(const struct env *e, long *pids, int max)
{
	FILE *f = fopen(e->starts, "r");
	int n = 0;
	long pid;

	if (!f)
		return 0;
	while (n < max && fscanf(f, "%ld", &pid) == 1)
		pids[n++] = pid;
	fclose(f);
	return n;
}

static int start_count(const struct env *e)
{
	long pids[4096];

	return starts(e, pids, 4096);
}

static int pid_gone(const struct server *s, void *ctx)
{
	(void)s;
	return !pid_alive((pid_t)*(long *)ctx);
}

/* Runs a one-task job of "co" to its end; returns the task's row. */
static cJSON *run_one(const struct env *e, const char *input, const char *extra)
{
	struct buf body = BUF_INIT;
	int64_t id;
	cJSON *t;

	buf_addf(&body, "{\"handler\": \"co\", \"tasks\": [%s]%s%s}", input,
		 extra ? ", " : "", extra ? extra : "");
	id = submit(&e->s, body.data);
	buf_release(&body);
	cJSON_Delete(wait_job(&e->s, id, "succeeded|failed", 60));
	t = apif(&e->s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	return t;
}

/* Runs a task that must fail, and checks its error word for word. */
static void expect_failure(const struct env *e, const char *input, const char *error)
{
	cJSON *t = run_one(e, input, NULL);

	if (strcmp(jstr(t, "state"), "failed") || !jstr(t, "error") ||
	    strcmp(jstr(t, "error"), error)) {
		print_error("input %s: want the error\n  %s\ngot %s\n  %s\n", input, error,
			    jstr(t, "state"), jstr(t, "error") ? jstr(t, "error") : "(none)");
		cJSON_Delete(t);
		fail();
	}
	cJSON_Delete(t);
}

/* Runs an echo task that must succeed; returns the co-process's pid. */
static long expect_echo(const struct env *e)
{
	cJSON *t = run_one(e, "{\"do\": \"echo\"}", NULL);
	long pid;

	if (strcmp(jstr(t, "state"), "succeeded")) {
		print_error("echo: %s: %s\n", jstr(t, "state"), jstr(t, "error"));
		fail();
	}
	pid = (long)jnum(t, "result.pid");
	cJSON_Delete(t);
	return pid;
}

/* The headline: a 1-second start-up, 200 tasks, 2 workers. Started
 * exactly twice, and the job takes about 1 s plus the work, not 200 s. */
static void test_starts_once_per_worker(void **state)
{
	struct env *e = *state;
	struct buf body = BUF_INIT;
	long pids[16], seen[2] = { 0, 0 };
	int two = 2, nseen = 0;
	double t0, took;
	int64_t id;
	cJSON *j;
	const cJSON *t, *w;

	start_with(e, 2, "\"STARTUP_S\": \"1\", \"READY\": \"0\"", "");
	assert_true(wait_until(workers_idle, &e->s, &two, 30));
	buf_adds(&body, "{\"handler\": \"co\", \"tasks\": [");
	for (int i = 0; i < 200; i++)
		buf_addf(&body, "%s%d", i ? ", " : "", i);
	buf_adds(&body, "]}");
	t0 = now_s();
	id = submit(&e->s, body.data);
	cJSON_Delete(wait_job(&e->s, id, "succeeded", 120));
	took = now_s() - t0;
	print_message("200 tasks with a 1 s start-up on 2 workers took %.2f s\n", took);
	/* One start-up per task would take 100 s on 2 workers. */
	assert_true(took < 30);
	assert_int_equal(starts(e, pids, 16), 2);

	j = api(&e->s, "GET", "/api/jobs/1/tasks?limit=1000", NULL, 200);
	assert_int_equal(jnum(j, "total"), 200);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
		long pid = (long)jnum(t, "result.pid");

		assert_int_equal(jnum(t, "result.input"), jnum(t, "index"));
		assert_int_equal(jnum(t, "result.task"), jnum(t, "index"));
		if (nseen < 2 && seen[0] != pid && seen[1] != pid)
			seen[nseen++] = pid;
		assert_true(pid == seen[0] || pid == seen[1]);
	}
	cJSON_Delete(j);
	assert_int_equal(nseen, 2);
	assert_true((seen[0] == pids[0] && seen[1] == pids[1]) ||
		    (seen[0] == pids[1] && seen[1] == pids[0]));

	/* Each worker shows the handler among those it initialized. */
	j = api(&e->s, "GET", "/api/workers", NULL, 200);
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "workers"))
		assert_string_equal(jstr(w, "handlers.0"), "co");
	cJSON_Delete(j);
	j = api(&e->s, "GET", "/api/handlers", NULL, 200);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "handlers"))
		if (!strcmp(jstr(t, "name"), "co"))
			assert_string_equal(jstr(t, "kind"), "persistent");
	cJSON_Delete(j);

	/* At shutdown the co-processes see their stdin end, and exit. */
	assert_int_equal(server_stop(&e->s), 0);
	assert_true(!pid_alive((pid_t)pids[0]) && !pid_alive((pid_t)pids[1]));
	buf_release(&body);
}

struct progress_seen {
	int64_t job;
	double p;
};

static int task_shows_progress(const struct server *s, void *ctx)
{
	struct progress_seen *ps = ctx;
	cJSON *t = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)ps->job);
	int ok = cJSON_IsNumber(cJSON_GetObjectItem(t, "progress")) &&
		 jnum(t, "progress") == ps->p && jstr(t, "message") &&
		 !strcmp(jstr(t, "message"), "a quarter done") &&
		 !strcmp(jstr(t, "state"), "running");

	cJSON_Delete(t);
	return ok;
}

static int dashboard_shows_progress(const struct server *s, void *ctx)
{
	struct progress_seen *ps = ctx;
	cJSON *j = api(s, "GET", "/api/progress", NULL, 200);
	const cJSON *w;
	int ok = 0;

	cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "workers")) {
		const cJSON *p = cJSON_GetObjectItem(w, "progress");

		ok |= cJSON_IsNumber(p) && p->valuedouble == ps->p &&
		      jnum(w, "job") == ps->job && jnum(w, "task") == 0;
	}
	cJSON_Delete(j);
	return ok;
}

static void test_progress_reaches_the_api(void **state)
{
	struct env *e = *state;
	struct progress_seen ps = { 0, 0.25 };
	char body[1024], until[400], tmp[400];
	cJSON *t;

	start_with(e, 1, "", "");
	snprintf(until, sizeof(until), "%s/go", e->s.dir);
	snprintf(body, sizeof(body),
		 "{\"handler\": \"co\", \"tasks\": [{\"do\": \"progress\", \"p\": 0.25,"
		 " \"message\": \"a quarter done\", \"until\": \"%s\"}]}", until);
	ps.job = submit(&e->s, body);
	assert_true(wait_until(task_shows_progress, &e->s, &ps, 30));
	assert_true(wait_until(dashboard_shows_progress, &e->s, &ps, 30));
	write_file(&e->s, "go", "", 0644, tmp, sizeof(tmp));
	cJSON_Delete(wait_job(&e->s, ps.job, "succeeded", 30));
	t = api(&e->s, "GET", "/api/jobs/1/tasks/0", NULL, 200);
	assert_string_equal(jstr(t, "message"), "a quarter done");
	assert_string_equal(jstr(t, "result.input.do"), "progress");
	cJSON_Delete(t);
}

/* A crash mid-task fails that task with the signal and the last stderr
 * lines; the next task succeeds on a fresh co-process. */
static void test_crash_mid_task(void **state)
{
	struct env *e = *state;
	long first, second, pids[8];

	start_with(e, 1, "", "");
	first = expect_echo(e);
	expect_failure(e, "{\"do\": \"crash\", \"stderr\": \"giving up on frame 7\"}",
		       "co-process killed by signal 11 (SIGSEGV) before its result line; "
		       "stderr: giving up on frame 7");
	second = expect_echo(e);
	assert_true(first != second);
	assert_int_equal(starts(e, pids, 8), 2);
	assert_int_equal(pids[1], second);
	/* Its stderr is in the log, tagged with handler and worker. */
	assert_true(server_log_has(&e->s, "msg=\"co-process stderr\" worker=1 handler=co"));
	assert_true(server_log_has(&e->s, "line=\"giving up on frame 7\""));
}

/* Stderr goes to the log a line per event, however the reads cut it: a
 * line of 4096 bytes (the longest logged whole) read before its newline
 * is one event, not that and an empty one. */
static void test_stderr_lines(void **state)
{
	struct env *e = *state;
	struct buf input = BUF_INIT, want = BUF_INIT;
	cJSON *t;

	start_with(e, 1, "", "");
	buf_adds(&input, "{\"do\": \"stderr\", \"parts\": [\"");
	buf_adds(&want, "line=");
	for (int i = 0; i < 4096; i++) {
		buf_addc(&input, 'a');
		buf_addc(&want, 'a');
	}
	buf_adds(&input, "\", \"\\nnext\\n\"]}");
	buf_addc(&want, '\n');
	t = run_one(e, input.data, NULL);
	assert_string_equal(jstr(t, "state"), "succeeded");
	cJSON_Delete(t);
	assert_true(server_log_has(&e->s, want.data));
	assert_true(server_log_has(&e->s, "line=next\n"));
	assert_false(server_log_has(&e->s, "line=\"\""));
	buf_release(&input);
	buf_release(&want);
}

static void test_garbage_and_protocol_breaks(void **state)
{
	struct env *e = *state;
	char input[1024], want[1024], x300[301];
	long first = 0;

	start_with(e, 1, "", "");
	first = expect_echo(e);
	expect_failure(e, "{\"do\": \"print\", \"text\": \"Loading weights... done\"}",
		       "co-process wrote a line that is not JSON: Loading weights... done");
	/* The offending line is cut to 200 bytes. */
	memset(x300, 'x', 300);
	x300[300] = '\0';
	snprintf(input, sizeof(input), "{\"do\": \"print\", \"text\": \"%s\"}", x300);
	snprintf(want, sizeof(want),
		 "co-process wrote a line that is not JSON: %.200s... (300 bytes)", x300);
	expect_failure(e, input, want);
	expect_failure(e, "{\"do\": \"print\", \"text\": \"{\\\"reslt\\\": 1}\"}",
		       "co-process broke the protocol (a line needs exactly one of "
		       "\"progress\", \"result\", \"error\"): {\"reslt\": 1}");
	expect_failure(e, "{\"do\": \"print\", \"text\": \"[1, 2]\"}",
		       "co-process broke the protocol (a line must be a JSON object): [1, 2]");
	expect_failure(e, "{\"do\": \"print\", \"text\": \"{\\\"progress\\\": \\\"half\\\"}\"}",
		       "co-process broke the protocol (\"progress\" must be a number): "
		       "{\"progress\": \"half\"}");
	expect_failure(e, "{\"do\": \"print\", \"text\": \"{\\\"ready\\\": true}\"}",
		       "co-process broke the protocol (\"ready\" may only be the first line, "
		       "with no other member than \"stop\"): {\"ready\": true}");
	/* A NUL byte ends no line early: {"result":1}, NUL, garbage is not
	 * a result, nor is a line blank up to its NUL. */
	expect_failure(e, "{\"do\": \"print\", \"hex\": "
		       "\"7b22726573756c74223a317d0067617262616765\"}",
		       "co-process wrote a line that is not JSON (a NUL byte at byte 12): "
		       "{\"result\":1}garbage");
	expect_failure(e, "{\"do\": \"print\", \"hex\": \"2020007b22726573756c74223a317d\"}",
		       "co-process wrote a line that is not JSON (a NUL byte at byte 2):   "
		       "{\"result\":1}");
	/* Values batchd could not keep as written: a string cut at its
	 * \u0000, a number beyond a double (infinity, printed as null). */
	expect_failure(e, "{\"do\": \"print\", \"hex\": "
		       "\"7b22726573756c74223a2022615c75303030306222207d\"}",
		       "co-process broke the protocol (a string holds \\u0000, which batchd "
		       "cannot store): {\"result\": \"a\\u0000b\" }");
	expect_failure(e, "{\"do\": \"print\", \"text\": \"{\\\"progress\\\": 1e999}\"}",
		       "co-process broke the protocol (a number is out of range): "
		       "{\"progress\": 1e999}");
	expect_failure(e, "{\"do\": \"print\", \"text\": \"{\\\"result\\\": [1, -1e400]}\"}",
		       "co-process broke the protocol (a number is out of range): "
		       "{\"result\": [1, -1e400]}");
	/* The protocol's members are named exactly, and given once. */
	expect_failure(e, "{\"do\": \"print\", \"text\": \"{\\\"Result\\\": 1}\"}",
		       "co-process broke the protocol (a line needs exactly one of "
		       "\"progress\", \"result\", \"error\"): {\"Result\": 1}");
	expect_failure(e, "{\"do\": \"print\", \"text\": "
		       "\"{\\\"result\\\": 1, \\\"result\\\": 2}\"}",
		       "co-process broke the protocol (\"result\" is given twice): "
		       "{\"result\": 1, \"result\": 2}");
	/* After each, a fresh co-process. */
	assert_true(expect_echo(e) != first);
	assert_int_equal(start_count(e), 14);
}

static void test_exit_without_result(void **state)
{
	struct env *e = *state;

	start_with(e, 1, "", "");
	expect_echo(e);
	expect_failure(e, "{\"do\": \"exit\", \"code\": 0}",
		       "co-process exited with status 0 before its result line");
	expect_failure(e, "{\"do\": \"exit\", \"code\": 3, \"stderr\": \"Traceback: KeyError\"}",
		       "co-process exited with status 3 before its result line; "
		       "stderr: Traceback: KeyError");
	expect_echo(e);
	assert_int_equal(start_count(e), 3);
}

/* An error line fails the task and nothing else: the same co-process
 * serves the next one. */
static void test_error_line_keeps_the_coprocess(void **state)
{
	struct env *e = *state;
	long first;

	start_with(e, 1, "", "");
	first = expect_echo(e);
	expect_failure(e, "{\"do\": \"error\", \"message\": \"frame 12 is empty\"}",
		       "frame 12 is empty");
	expect_failure(e, "{\"do\": \"error\", \"message\": \"\"}",
		       "co-process reported an error with an empty message");
	assert_int_equal(expect_echo(e), first);
	assert_int_equal(start_count(e), 1);
}

/* A co-process that ends between tasks (after its answer), or writes to
 * stdout while it has no task, is replaced before the next task, which does
 * not fail for it. */
static void test_exit_between_tasks(void **state)
{
	struct env *e = *state;
	cJSON *t;
	long first;

	start_with(e, 1, "", "");
	t = run_one(e, "{\"do\": \"answer_exit\"}", NULL);
	assert_string_equal(jstr(t, "state"), "succeeded");
	first = (long)jnum(t, "result.pid");
	cJSON_Delete(t);
	/* Its exit must come before the next task for this test, not during
	 * it (Python takes a few ms to exit): that one would fail the task. */
	assert_true(pids_gone_within((pid_t[]){ (pid_t)first }, 1, 30));
	assert_true(expect_echo(e) != first);
	assert_int_equal(start_count(e), 2);
	assert_true(server_log_has(&e->s, "reason=\"co-process exited with status 0 between tasks\""));

	/* Output between tasks would be taken for the next task's: the
	 * co-process that wrote it is replaced instead. */
	t = run_one(e, "{\"do\": \"answer_twice\"}", NULL);
	assert_string_equal(jstr(t, "state"), "succeeded");
	first = (long)jnum(t, "result.pid");
	cJSON_Delete(t);
	assert_true(expect_echo(e) != first);
	assert_int_equal(start_count(e), 3);
	assert_true(server_log_has(&e->s, "reason=\"co-process wrote to stdout between tasks: "
				   "{\\\"progress\\\": 1}\""));
}

/* A co-process that ends by itself between tasks, but only after the next
 * request is already in its pipe (it sleeps first, reading nothing): that
 * task was never its own, and goes to a fresh co-process instead of
 * failing, whether the end is an exit or a crash. */
static void test_end_as_the_next_task_comes(void **state)
{
	struct env *e = *state;
	const char *ends[] = { "{\"do\": \"answer_exit\", \"after_s\": 3}",
			       "{\"do\": \"answer_exit\", \"after_s\": 3, \"crash\": true}" };
	cJSON *t;
	long first;

	start_with(e, 1, "", "");
	for (int i = 0; i < 2; i++) {
		t = run_one(e, ends[i], NULL);
		assert_string_equal(jstr(t, "state"), "succeeded");
		first = (long)jnum(t, "result.pid");
		cJSON_Delete(t);
		assert_true(pid_alive((pid_t)first));	/* the next task comes now */
		assert_true(expect_echo(e) != first);
		assert_int_equal(start_count(e), 2 + i);
	}
	assert_true(server_log_has(&e->s, "co-process ended before reading its task; "
				   "the task goes to a fresh one"));
	assert_true(server_log_has(&e->s, "status=\"exited with status 0\""));
	assert_true(server_log_has(&e->s, "status=\"killed by signal 11 (SIGSEGV)\""));
}

/* Submits a "tree" task (the co-process starts a child, then waits) and
 * reads the two pids; returns the job. */
static int64_t start_tree(const struct env *e, pid_t *pids)
{
	char body[1200];
	int64_t id;

	snprintf(body, sizeof(body),
		 "{\"handler\": \"co\", \"timeout_s\": 60, \"tasks\": [{\"do\": \"tree\","
		 " \"pids\": \"%s/pids\", \"until\": \"%s/never\"}]}", e->s.dir, e->s.dir);
	id = submit(&e->s, body);
	snprintf(body, sizeof(body), "%s/pids", e->s.dir);
	assert_int_equal(read_pids_file(body, pids, 2, 30), 2);
	return id;
}

/* A co-process that cannot stop a task (its ready line does not say so):
 * a cancel or a timeout kills it and what it started, its worker stays,
 * and a fresh co-process serves the next task. */
static void test_stop_replaces_the_coprocess(void **state)
{
	struct env *e = *state;
	pid_t pids[2];
	long first;
	int64_t id;
	cJSON *t;

	start_with(e, 1, "", "");
	first = expect_echo(e);
	id = start_tree(e, pids);
	assert_int_equal(pids[0], first);
	cJSON_Delete(apif(&e->s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	assert_true(pids_gone_within(pids, 2, 10));
	assert_true(expect_echo(e) != first);
	assert_int_equal(start_count(e), 2);
	assert_int_equal(restarts(&e->s, NULL), 0);
	assert_true(server_log_has(&e->s, "msg=\"stopping co-process: its task was stopped\""));

	t = run_one(e, "{\"do\": \"sleep\", \"s\": 60}", "\"timeout_s\": 1");
	assert_string_equal(jstr(t, "state"), "failed");
	assert_string_equal(jstr(t, "error"), "timed out after 1 s");
	cJSON_Delete(t);
	expect_echo(e);
	assert_int_equal(start_count(e), 3);
	assert_int_equal(restarts(&e->s, NULL), 0);
}

/* A co-process whose ready line says "stop": true is sent a stop line for
 * its task, ends it, and stays with its state for the next task. One that
 * says so but does not answer is killed with its worker after the grace. */
static void test_stop_line_keeps_the_coprocess(void **state)
{
	struct env *e = *state;
	pid_t pids[2];
	long first;
	int64_t id;
	cJSON *t;

	start_with(e, 1, "\"READY\": \"stop\"", "");
	first = expect_echo(e);
	id = start_tree(e, pids);
	cJSON_Delete(apif(&e->s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	t = run_one(e, "{\"do\": \"echo\"}", NULL);
	assert_int_equal(jnum(t, "result.pid"), first);
	assert_int_equal(jnum(t, "result.served"), 3);	/* its state is kept */
	cJSON_Delete(t);
	assert_true(server_log_has(&e->s, "line=\"stopping task 0 of job 2\""));

	t = run_one(e, "{\"do\": \"sleep\", \"s\": 60}", "\"timeout_s\": 1");
	assert_string_equal(jstr(t, "error"), "timed out after 1 s");
	cJSON_Delete(t);
	assert_int_equal(expect_echo(e), first);
	assert_int_equal(start_count(e), 1);
	assert_int_equal(restarts(&e->s, NULL), 0);

	/* What it started goes with it, at the latest when its worker stops. */
	server_stop(&e->s);
	assert_true(pids_gone_within(pids, 2, 10));
	start_with(e, 1, "\"READY\": \"deaf\"", "");
	first = expect_echo(e);
	t = run_one(e, "{\"do\": \"sleep\", \"s\": 60}", "\"timeout_s\": 0.5");
	assert_string_equal(jstr(t, "error"), "timed out after 0.5 s (worker killed)");
	cJSON_Delete(t);
	assert_true(expect_echo(e) != first);
	assert_int_equal(restarts(&e->s, "timeout"), 1);
}

/* A worker killed from outside takes its co-process's group along (found
 * through the page the server shares with its workers): nothing the
 * co-process started runs on while its task runs again. */
static void test_killed_worker_takes_the_group(void **state)
{
	struct env *e = *state;
	pid_t pids[2], worker;
	cJSON *j;

	start_with(e, 1, "", "");
	start_tree(e, pids);
	j = api(&e->s, "GET", "/api/workers", NULL, 200);
	worker = (pid_t)jnum(j, "workers.0.pid");
	cJSON_Delete(j);
	assert_true(worker > 0 && worker != pids[0]);
	kill(worker, SIGKILL);
	assert_true(pids_gone_within(pids, 2, 10));
	assert_int_equal(restarts(&e->s, "crash"), 1);
}

/* A co-process that cannot start: its tasks fail fast with the reason,
 * batchd backs off instead of restarting it in a loop, the server stays
 * healthy, and once the cause is gone the handler works. */
static void test_cannot_start(void **state)
{
	struct env *e = *state;
	const char *want = "handler \"co\" failed to initialize: co-process exited with "
			   "status 1 before its first answer; stderr: cannot load model: "
			   "weights.bin is missing";
	char env[600], body[2048], tmp[400];
	int two = 2, exact = 0;
	struct buf b = BUF_INIT;
	cJSON *j;
	const cJSON *t;
	double t0;
	int64_t id;

	snprintf(env, sizeof(env), "\"NEEDS\": \"%s/weights.bin\"", e->s.dir);
	start_with(e, 2, env, "");
	assert_true(wait_until(workers_idle, &e->s, &two, 30));
	buf_adds(&b, "{\"handler\": \"co\", \"tasks\": [");
	for (int i = 0; i < 40; i++)
		buf_addf(&b, "%s%d", i ? ", " : "", i);
	buf_adds(&b, "]}");
	t0 = now_s();
	id = submit(&e->s, b.data);
	cJSON_Delete(wait_job(&e->s, id, "failed", 30));
	print_message("40 tasks failed in %.2f s\n", now_s() - t0);
	j = api(&e->s, "GET", "/api/jobs/1/tasks?limit=100", NULL, 200);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
		const char *err = jstr(t, "error");

		assert_non_null(err);
		/* The tasks that tried a start-up say why it failed; those
		 * that came during the back-off say it too, and when the
		 * next try is. */
		if (!strcmp(err, want)) {
			exact++;
		} else if (strncmp(err, want, strlen(want)) ||
			   strncmp(err + strlen(want), " (next try in ", 14)) {
			fail_msg("unexpected error: %s", err);
		}
	}
	cJSON_Delete(j);
	assert_true(exact >= 1);
	/* No tight loop: a few start-ups, not one per task. */
	assert_true(start_count(e) >= 1 && start_count(e) <= 4);
	assert_int_equal(start_count(e), exact);

	j = api(&e->s, "GET", "/healthz", NULL, 200);
	assert_int_equal(jnum(j, "workers"), 2);
	cJSON_Delete(j);
	id = submit(&e->s, "{\"handler\": \"echo\", \"tasks\": [1, 2, 3]}");
	cJSON_Delete(wait_job(&e->s, id, "succeeded", 30));

	/* The cause goes away; after the back-off, a retry starts it. */
	write_file(&e->s, "weights.bin", "", 0644, tmp, sizeof(tmp));
	snprintf(body, sizeof(body),
		 "{\"handler\": \"co\", \"tasks\": [\"again\"], \"max_attempts\": 6}");
	id = submit(&e->s, body);
	cJSON_Delete(wait_job(&e->s, id, "succeeded", 60));
	buf_release(&b);
}

/* "init_timeout_s": a start-up that takes longer is killed, and fails the
 * task as a failed set-up. */
static void test_init_timeout(void **state)
{
	struct env *e = *state;
	long pids[8];

	start_with(e, 1, "\"STARTUP_S\": \"60\"", "\"init_timeout_s\": 0.5");
	expect_failure(e, "1", "handler \"co\" failed to initialize: co-process gave no "
		       "answer within init_timeout_s (0.5 s)");
	assert_int_equal(starts(e, pids, 8), 1);
	assert_true(wait_until(pid_gone, &e->s, &pids[0], 30));
}

static int started_once(const struct server *s, void *ctx)
{
	(void)s;
	return start_count(ctx) == 1;
}

/* A stop while the co-process is still starting up, before its ready
 * line: the co-process goes with its group, its worker stays (no restart).
 * So for a cancel, and for a start-up past its bound (here, without
 * init_timeout_s, the task's timeout), which fails the task. */
static void test_stop_during_startup_keeps_the_worker(void **state)
{
	struct env *e = *state;
	long pids[8];
	int64_t id;
	cJSON *t;

	start_with(e, 1, "\"STARTUP_S\": \"60\"", "");
	id = submit(&e->s, "{\"handler\": \"co\", \"tasks\": [{\"do\": \"echo\"}]}");
	assert_true(wait_until(started_once, &e->s, e, 30));
	cJSON_Delete(apif(&e->s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	assert_int_equal(starts(e, pids, 8), 1);
	assert_true(wait_until(pid_gone, &e->s, &pids[0], 10));
	cJSON_Delete(wait_job(&e->s, id, "cancelled", 30));
	assert_int_equal(restarts(&e->s, NULL), 0);

	t = run_one(e, "{\"do\": \"echo\"}", "\"timeout_s\": 1");
	assert_string_equal(jstr(t, "state"), "failed");
	assert_string_equal(jstr(t, "error"), "the set-up of handler \"co\" took longer than 1 s");
	cJSON_Delete(t);
	assert_int_equal(starts(e, pids, 8), 2);
	assert_true(wait_until(pid_gone, &e->s, &pids[1], 10));
	assert_int_equal(restarts(&e->s, NULL), 0);
}

/* A set-up longer than the task's timeout: init_timeout_s bounds the
 * set-up, and the task's own timeout starts once it is done, so a model
 * that takes 2 s to load serves tasks that must each finish in 1 s. */
static void test_setup_not_counted_in_timeout(void **state)
{
	struct env *e = *state;
	cJSON *t;

	start_with(e, 1, "\"STARTUP_S\": \"2\"", "\"init_timeout_s\": 30");
	t = run_one(e, "{\"do\": \"echo\"}", "\"timeout_s\": 1");
	assert_string_equal(jstr(t, "state"), "succeeded");
	cJSON_Delete(t);
	/* The task's timeout still holds once the set-up is done. */
	t = run_one(e, "{\"do\": \"sleep\", \"s\": 30}", "\"timeout_s\": 1");
	assert_string_equal(jstr(t, "error"), "timed out after 1 s");
	cJSON_Delete(t);
}

/* The ready line ends the start-up: a crash on the first task after it is
 * that task's failure, not a failed set-up. Without it, the same crash
 * counts as a failed start-up, and so does a line that is not JSON. */
static void test_ready_line_ends_startup(void **state)
{
	struct env *e = *state;

	start_with(e, 1, "", "");
	expect_failure(e, "{\"do\": \"exit\", \"code\": 2}",
		       "co-process exited with status 2 before its result line");
	server_stop(&e->s);
	start_with(e, 1, "\"READY\": \"0\"", "");
	expect_failure(e, "{\"do\": \"exit\", \"code\": 2}",
		       "handler \"co\" failed to initialize: co-process exited with status 2 "
		       "before its first answer");
	/* A banner on stdout before the first answer: a failed start-up too
	 * (on a fresh worker, which has no back-off to sit out). */
	server_stop(&e->s);
	start_with(e, 1, "\"READY\": \"0\"", "");
	expect_failure(e, "{\"do\": \"print\", \"text\": \"Loading weights...\"}",
		       "handler \"co\" failed to initialize: co-process wrote a line that is "
		       "not JSON: Loading weights...");
	/* A ready line with more in it than "stop": true. */
	server_stop(&e->s);
	start_with(e, 1, "\"READY\": \"{\\\"ready\\\": true, \\\"stop\\\": 1}\"", "");
	expect_failure(e, "{\"do\": \"echo\"}",
		       "handler \"co\" failed to initialize: co-process broke the protocol "
		       "(\"stop\" must be true or false): {\"ready\": true, \"stop\": 1}");
	server_stop(&e->s);
	start_with(e, 1, "\"READY\": \"{\\\"ready\\\": false}\"", "");
	expect_failure(e, "{\"do\": \"echo\"}",
		       "handler \"co\" failed to initialize: co-process broke the protocol "
		       "(\"ready\" must be true): {\"ready\": false}");
	server_stop(&e->s);
	start_with(e, 1, "\"READY\": \"{\\\"ready\\\": true, \\\"now\\\": true}\"", "");
	expect_failure(e, "{\"do\": \"echo\"}",
		       "handler \"co\" failed to initialize: co-process broke the protocol "
		       "(\"ready\" may only be the first line, with no other member than "
		       "\"stop\"): {\"ready\": true, \"now\": true}");
	/* A first line that breaks the protocol, even one that names
	 * "progress", is a failed start-up too. */
	server_stop(&e->s);
	start_with(e, 1, "\"READY\": \"0\"", "");
	expect_failure(e, "{\"do\": \"print\", \"text\": \"{\\\"progress\\\": \\\"half\\\"}\"}",
		       "handler \"co\" failed to initialize: co-process broke the protocol "
		       "(\"progress\" must be a number): {\"progress\": \"half\"}");
	/* Not a ready line: its name is "ready", exactly. */
	server_stop(&e->s);
	start_with(e, 1, "\"READY\": \"{\\\"READY\\\": true}\"", "");
	expect_failure(e, "{\"do\": \"echo\"}",
		       "handler \"co\" failed to initialize: co-process broke the protocol "
		       "(a line needs exactly one of \"progress\", \"result\", \"error\"): "
		       "{\"READY\": true}");
	/* A ready line with a NUL byte, then more. */
	server_stop(&e->s);
	start_with(e, 1, "\"READY\": \"hex:7b227265616479223a747275657d00787878\"", "");
	expect_failure(e, "{\"do\": \"echo\"}",
		       "handler \"co\" failed to initialize: co-process wrote a line that is "
		       "not JSON (a NUL byte at byte 14): {\"ready\":true}xxx");
}

/* Inputs with newlines (stored as submitted) still travel as one line, and
 * a large input is written while the co-process answers. */
static void test_request_lines(void **state)
{
	struct env *e = *state;
	struct buf b = BUF_INIT;
	cJSON *t;

	start_with(e, 1, "", "");
	t = run_one(e, "{\n\"do\":\n\"echo\", \"text\": \"a\\nb\"\n}", NULL);
	assert_string_equal(jstr(t, "state"), "succeeded");
	assert_string_equal(jstr(t, "result.input.text"), "a\nb");
	cJSON_Delete(t);
	buf_adds(&b, "\"");
	for (int i = 0; i < 300000; i++)
		buf_addc(&b, (char)('a' + i % 26));
	buf_adds(&b, "\"");
	t = run_one(e, b.data, "\"name\": \"big\"");
	assert_string_equal(jstr(t, "state"), "succeeded");
	assert_int_equal(strlen(jstr(t, "result.input")), 300000);
	cJSON_Delete(t);
	assert_int_equal(start_count(e), 1);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_starts_once_per_worker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_progress_reaches_the_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_mid_task, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_and_protocol_breaks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_without_result, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_line_keeps_the_coprocess, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_between_tasks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_as_the_next_task_comes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_replaces_the_coprocess, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_line_keeps_the_coprocess, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_worker_takes_the_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cannot_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_during_startup_keeps_the_worker, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_setup_not_counted_in_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_line_ends_startup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_lines, setup, teardown),
	};

	return cmocka_run_group_tests_name("persistent", tests, NULL, NULL);
}
