/*
 * Integration tests of C plugins and of the handlers file's checks: a
 * plugin loaded with dlopen from the handlers file runs init() once per
 * worker, reports progress, turns a failed init() into a clear error on its
 * tasks, and a plugin or handler that cannot be loaded stops batchd at
 * start-up with one line naming the file.
 *
 * The plugins are tests/plugins/ (built by the Makefile next to the test,
 * as a user builds one: -fPIC -shared, no sanitizer runtime of their own)
 * and the example, examples/plugin/primes.so.
 */
#include "harness.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/buf.h"

static char cwd[PATH_MAX];

static int setup(void **state)
{
	struct server *s = calloc(1, sizeof(*s));

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	server_init(s);
	*state = s;
	return 0;
}

/* The directory of the test plugins, which the Makefile builds beside this
 * test's own directory (build/asan/tests/{integration,plugins}): found from
 * the test binary, not from batchd's, which make valgrind replaces with a
 * script. */
static const char *plugin_dir(void)
{
	static char dir[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", dir, PATH_MAX);
	char *slash;

	assert_true(n > 0);
	dir[n] = '\0';
	for (int i = 0; i < 2; i++) {
		slash = strrchr(dir, '/');
		assert_non_null(slash);
		*slash = '\0';
	}
	strcat(dir, "/plugins");
	return dir;
}

static void start_with(struct server *s, int workers, const char *handlers)
{
	char path[400], nw[16];
	const char *args[] = { "--workers", nw, "--handlers", path, NULL };

	snprintf(nw, sizeof(nw), "%d", workers);
	write_file(s, "handlers.json", handlers, 0644, path, sizeof(path));
	server_start(s, args);
}

/* Lines of a file that start with prefix. */
static int count_lines(const char *path, const char *prefix)
{
	FILE *f = fopen(path, "r");
	char line[256];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += !strncmp(line, prefix, strlen(prefix));
	fclose(f);
	return n;
}

static void test_init_once_per_worker(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT, body = BUF_INIT;
	char log[400];
	long pids[2] = { 0, 0 }, calls[2] = { 0, 0 }, ran[2] = { 0, 0 }, sum[2] = { 0, 0 };
	int two = 2, n = 0;
	cJSON *j;
	const cJSON *t;
	struct resp r;
	const char *want;

	snprintf(log, sizeof(log), "%s/inits", s->dir);
	/* Saved as some editors on Windows save it: a byte order mark first. */
	buf_addf(&h, "\xEF\xBB\xBF{\"handlers\": {\"tp\": {\"plugin\": \"%s/tplugin.so\","
		 " \"config\": {\"log\": \"%s\",\n  \"seed\": 9007199254740993, \"ratio\": 1.0}}}}",
		 plugin_dir(), log);
	start_with(s, 2, h.data);
	assert_true(wait_until(workers_idle, s, &two, 30));
	buf_adds(&body, "{\"handler\": \"tp\", \"tasks\": [");
	for (int i = 0; i < 60; i++)
		buf_addf(&body, "%s%d", i ? ", " : "", i);
	buf_adds(&body, "]}");
	cJSON_Delete(wait_job(s, submit(s, body.data), "succeeded", 60));

	assert_int_equal(count_lines(log, "init "), 2);
	j = api(s, "GET", "/api/jobs/1/tasks?limit=100", NULL, 200);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
		long pid = (long)jnum(t, "result.pid");
		int k = pid == pids[0] ? 0 : pid == pids[1] ? 1 : n++;

		assert_true(k < 2);
		pids[k] = pid;
		ran[k]++;
		sum[k] += (long)jnum(t, "result.calls");
		if ((long)jnum(t, "result.calls") > calls[k])
			calls[k] = (long)jnum(t, "result.calls");
		assert_int_equal(jnum(t, "result.input"), jnum(t, "index"));
	}
	cJSON_Delete(j);
	assert_int_equal(n, 2);
	/* The state lives on between tasks: each worker's count went 1, 2,
	 * ... up to the tasks it ran (not always in the order of their
	 * indexes: a task taken back from a busy worker runs later). */
	for (int k = 0; k < 2; k++) {
		assert_int_equal(calls[k], ran[k]);
		assert_int_equal(sum[k], ran[k] * (ran[k] + 1) / 2);
	}
	assert_int_equal(calls[0] + calls[1], 60);
	j = api(s, "GET", "/api/handlers", NULL, 200);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "handlers"))
		if (!strcmp(jstr(t, "name"), "tp"))
			assert_string_equal(jstr(t, "kind"), "plugin");
	cJSON_Delete(j);

	/* init() got its config as written, compact: 9007199254740993 is no
	 * double, 1.0 is not 1. */
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"tp\", \"tasks\": [\"config\"]}"),
			      "succeeded", 60));
	http_request(s, "GET", "/api/jobs/2/tasks/0", NULL, NULL, &r);
	want = strstr(r.body, "\"result\":{\"config\":{\"log\":");
	if (!want || !strstr(want, "\",\"seed\":9007199254740993,\"ratio\":1.0}}"))
		fail_msg("config not as written: %s", r.body);
	resp_free(&r);

	/* fini() runs as each worker stops. */
	assert_int_equal(server_stop(s), 0);
	assert_int_equal(count_lines(log, "fini "), 2);
	buf_release(&h);
	buf_release(&body);
}

static int progress_visible(const struct server *s, void *ctx)
{
	cJSON *t = api(s, "GET", "/api/jobs/1/tasks/0", NULL, 200);
	cJSON *p = api(s, "GET", "/api/progress", NULL, 200);
	int ok = cJSON_IsNumber(cJSON_GetObjectItem(t, "progress")) &&
		 jnum(t, "progress") == 0.5 && jstr(t, "message") &&
		 !strcmp(jstr(t, "message"), "halfway") &&
		 cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetArrayItem(
			 cJSON_GetObjectItem(p, "workers"), 0), "progress")) &&
		 jnum(p, "workers.0.progress") == 0.5;

	(void)ctx;
	cJSON_Delete(t);
	cJSON_Delete(p);
	return ok;
}

static void test_progress(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT, body = BUF_INIT;
	char tmp[400];

	buf_addf(&h, "{\"handlers\": {\"tp\": {\"plugin\": \"%s/tplugin.so\"}}}", plugin_dir());
	start_with(s, 1, h.data);
	buf_addf(&body, "{\"handler\": \"tp\", \"tasks\": [\"wait:%s/go\"]}", s->dir);
	submit(s, body.data);
	assert_true(wait_until(progress_visible, s, NULL, 30));
	write_file(s, "go", "", 0644, tmp, sizeof(tmp));
	cJSON_Delete(wait_job(s, 1, "succeeded", 30));
	buf_release(&h);
	buf_release(&body);
}

static void test_init_fails(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT;
	cJSON *j;
	const cJSON *t;

	buf_addf(&h, "{\"handlers\": {\"gpu\": {\"plugin\": \"%s/tplugin.so\","
		 " \"config\": {\"init_fail\": \"no GPU found\"}}}}", plugin_dir());
	start_with(s, 1, h.data);
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"gpu\", \"tasks\": [1, 2, 3]}"),
			      "failed", 30));
	j = api(s, "GET", "/api/jobs/1/tasks", NULL, 200);
	assert_string_equal(jstr(j, "tasks.0.error"),
			    "handler \"gpu\" failed to initialize: no GPU found");
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks"))
		assert_int_equal(strncmp(jstr(t, "error"),
					 "handler \"gpu\" failed to initialize: no GPU found", 48), 0);
	cJSON_Delete(j);
	buf_release(&h);
}

static void test_task_failure(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT;
	cJSON *j;

	buf_addf(&h, "{\"handlers\": {\"tp\": {\"plugin\": \"%s/tplugin.so\"}}}", plugin_dir());
	start_with(s, 1, h.data);
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"tp\", \"tasks\": [\"fail:bad frame\", 2]}"),
			      "failed", 30));
	j = api(s, "GET", "/api/jobs/1/tasks", NULL, 200);
	assert_string_equal(jstr(j, "tasks.0.error"), "bad frame");
	assert_string_equal(jstr(j, "tasks.1.state"), "succeeded");
	assert_int_equal(jnum(j, "tasks.1.result.calls"), 2);
	cJSON_Delete(j);

	/* A result must be JSON batchd can carry back: not text, and no
	 * number out of range (1e999, which cJSON reads as infinity and many
	 * readers refuse). */
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"tp\", \"tasks\": [\"raw:[1, 1e999]\","
					 " \"raw:not json\", \"raw:[1, 1e308]\","
					 " \"raw:[\\\"a\\\\u0000b\\\"]\", \"raw:[\\\"a\\\\uzzzzb\\\"]\"]}"),
			      "failed", 30));
	j = api(s, "GET", "/api/jobs/2/tasks", NULL, 200);
	assert_string_equal(jstr(j, "tasks.0.state"), "failed");
	assert_string_equal(jstr(j, "tasks.0.error"),
			    "handler returned a result with a number out of range: [1, 1e999]");
	assert_string_equal(jstr(j, "tasks.1.error"),
			    "handler returned a result that is not JSON: not json");
	assert_string_equal(jstr(j, "tasks.2.state"), "succeeded");
	assert_true(jnum(j, "tasks.2.result.1") == 1e308);
	/* cJSON reads both as a NUL, which would cut the string short. */
	assert_string_equal(jstr(j, "tasks.3.error"), "handler returned a result with \\u0000"
			    " in a string, which batchd cannot store: [\"a\\u0000b\"]");
	assert_string_equal(jstr(j, "tasks.4.error"),
			    "handler returned a result that is not JSON: [\"a\\uzzzzb\"]");
	cJSON_Delete(j);
	buf_release(&h);
}

/* A worker holds the results of tiny tasks to send them in a batch. When
 * it dies in the task after them, the dead one is the task it was in (it
 * says so in memory it shares with the server), not the first whose result
 * was held: those run again and succeed, and only the task that ended the
 * worker fails. Blaming the first held task failed innocent tasks and put
 * the fatal one back in the queue uncounted, to end the next worker too. */
static void test_death_blamed_on_its_task(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT, body = BUF_INIT;
	cJSON *j;

	buf_addf(&h, "{\"handlers\": {\"tp\": {\"plugin\": \"%s/tplugin.so\"}}}", plugin_dir());
	start_with(s, 1, h.data);
	buf_adds(&body, "{\"handler\": \"tp\", \"max_attempts\": 1, \"tasks\": [");
	for (int i = 0; i < 601; i++)
		buf_addf(&body, "%s%s", i ? ", " : "", i == 300 ? "\"kill\"" : "1");
	buf_adds(&body, "]}");
	j = wait_job(s, submit(s, body.data), "failed", 60);
	assert_int_equal(jnum(j, "progress.failed"), 1);
	assert_int_equal(jnum(j, "progress.succeeded"), 600);
	cJSON_Delete(j);
	j = api(s, "GET", "/api/jobs/1/tasks?state=failed", NULL, 200);
	assert_int_equal(jnum(j, "total"), 1);
	assert_int_equal(jnum(j, "tasks.0.index"), 300);
	assert_int_equal(strncmp(jstr(j, "tasks.0.error"), "worker died: killed by signal 9", 31), 0);
	cJSON_Delete(j);
	buf_release(&h);
	buf_release(&body);
}

/* A plugin that ends its worker with exit() fails the task it was running,
 * whatever the status: exit(0) is not a result.  The task queued behind it
 * runs on the fresh worker that replaces it. */
static void test_plugin_exits(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT;
	cJSON *j;

	buf_addf(&h, "{\"handlers\": {\"tp\": {\"plugin\": \"%s/tplugin.so\"}}}", plugin_dir());
	start_with(s, 1, h.data);
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"tp\", "
					   "\"tasks\": [\"exit:0\", \"exit:3\", 7]}"), "failed", 30));
	j = api(s, "GET", "/api/jobs/1/tasks", NULL, 200);
	assert_string_equal(jstr(j, "tasks.0.state"), "failed");
	assert_string_equal(jstr(j, "tasks.0.error"),
			    "worker died: exited with status 0 while running the task");
	assert_string_equal(jstr(j, "tasks.1.error"), "worker died: exited with status 3");
	assert_string_equal(jstr(j, "tasks.2.state"), "succeeded");
	assert_int_equal(jnum(j, "tasks.2.result.calls"), 1);
	cJSON_Delete(j);
	j = api(s, "GET", "/healthz", NULL, 200);
	cJSON_Delete(j);
	buf_release(&h);
}

static int halfway(const struct server *s, void *ctx)
{
	cJSON *t = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", *(long long *)ctx);
	int ok = jstr(t, "message") && !strcmp(jstr(t, "message"), "halfway");

	cJSON_Delete(t);
	return ok;
}

/* Submits a one-task job and waits until its run() has begun: a job is
 * "running" once its task is handed out, and a stop that reaches the
 * worker before run() does skips the task without running it. */
static int64_t running_task(const struct server *s, const char *input)
{
	char body[600];
	long long id;

	snprintf(body, sizeof(body), "{\"handler\": \"tp\", \"timeout_s\": 60, \"tasks\": [\"%s\"]}",
		 input);
	id = submit(s, body);
	assert_true(wait_until(halfway, s, &id, 30));
	return id;
}

/* A plugin's run() that asks batchd_task_should_stop() is stopped by a
 * cancel or a timeout in its worker, which keeps its state; one that does
 * not ask is killed with its worker 2 s after the stop. */
static void test_stop(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT;
	char input[400];
	int64_t id;
	cJSON *j;

	buf_addf(&h, "{\"handlers\": {\"tp\": {\"plugin\": \"%s/tplugin.so\"}}}", plugin_dir());
	start_with(s, 1, h.data);
	buf_release(&h);
	snprintf(input, sizeof(input), "until:%s/never", s->dir);

	/* Asks: a cancel and a timeout stop it in place. */
	id = running_task(s, input);
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	id = submit(s, "{\"handler\": \"tp\", \"timeout_s\": 0.3, \"tasks\": [\"until:/nonexistent\"]}");
	cJSON_Delete(wait_job(s, id, "failed", 30));
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	assert_string_equal(jstr(j, "error"), "timed out after 0.3 s");
	cJSON_Delete(j);
	id = submit(s, "{\"handler\": \"tp\", \"tasks\": [1]}");
	cJSON_Delete(wait_job(s, id, "succeeded", 30));
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	assert_int_equal(jnum(j, "result.calls"), 3);	/* the same instance */
	cJSON_Delete(j);
	assert_int_equal(restarts(s, NULL), 0);

	/* Deaf to it: killed with its worker after the grace. */
	snprintf(input, sizeof(input), "wait:%s/never", s->dir);
	id = running_task(s, input);
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	id = submit(s, "{\"handler\": \"tp\", \"timeout_s\": 0.3, \"tasks\": [\"wait:/nonexistent\"]}");
	cJSON_Delete(wait_job(s, id, "failed", 30));
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	assert_string_equal(jstr(j, "error"), "timed out after 0.3 s (worker killed)");
	cJSON_Delete(j);
	assert_int_equal(restarts(s, "cancel"), 1);
	assert_int_equal(restarts(s, "timeout"), 1);
	id = submit(s, "{\"handler\": \"tp\", \"tasks\": [1]}");
	cJSON_Delete(wait_job(s, id, "succeeded", 30));
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	assert_int_equal(jnum(j, "result.calls"), 1);	/* a new worker */
	cJSON_Delete(j);
}

/* The example plugin, as its README runs it. */
static void test_example_plugin(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT;
	cJSON *j;

	buf_addf(&h, "{\"handlers\": {\"primes\": {\"plugin\": \"%s/examples/plugin/primes.so\","
		 " \"config\": {\"limit\": 1000000}}}}", cwd);
	start_with(s, 2, h.data);
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"primes\", \"tasks\": ["
					"{\"from\": 0, \"to\": 100}, {\"from\": 0, \"to\": 1000000},"
					" {\"from\": 10, \"to\": 1}]}"), "failed", 30));
	j = api(s, "GET", "/api/jobs/1/tasks", NULL, 200);
	assert_int_equal(jnum(j, "tasks.0.result.primes"), 25);
	assert_int_equal(jnum(j, "tasks.0.result.largest"), 97);
	assert_int_equal(jnum(j, "tasks.1.result.primes"), 78498);
	assert_string_equal(jstr(j, "tasks.2.error"),
			    "input must be {\"from\": a, \"to\": b} with 0 <= a <= b <= 1000000");
	cJSON_Delete(j);
	buf_release(&h);
}

/* Starts batchd with a handlers file of len bytes that it must refuse: it
 * exits with status 1 and says why on one line, naming the file. */
static void expect_refused_n(struct server *s, const char *handlers, size_t len,
			     const char *want)
{
	char path[400], log[8192] = "";
	const char *args[] = { "--handlers", path, NULL };
	struct buf line = BUF_INIT;
	FILE *f;
	size_t n;
	int rc;

	write_file(s, "handlers.json", "", 0644, path, sizeof(path));
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(handlers, 1, len, f), len);
	fclose(f);
	truncate(s->log, 0);
	rc = server_try_start(s, args, 30);
	f = fopen(s->log, "r");
	assert_non_null(f);
	n = fread(log, 1, sizeof(log) - 1, f);
	log[n] = '\0';
	fclose(f);
	buf_addf(&line, "batchd serve: handlers file %s: %s\n", path, want);
	if (rc <= 0 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 1 || strcmp(log, line.data)) {
		print_error("want exit 1 and the one line\n  %sgot status %d and\n  %s", line.data,
			    rc, log);
		fail();
	}
	buf_release(&line);
}

static void expect_refused(struct server *s, const char *handlers, const char *want)
{
	expect_refused_n(s, handlers, strlen(handlers), want);
}

static void test_refused_at_start(void **state)
{
	struct server *s = *state;
	struct buf h = BUF_INIT, want = BUF_INIT;
	const char *dir = plugin_dir();

	buf_addf(&h, "{\"handlers\": {\"p\": {\"plugin\": \"%s/missing.so\"}}}", dir);
	buf_addf(&want, "handler \"p\": %s/missing.so: No such file or directory", dir);
	expect_refused(s, h.data, want.data);

	buf_reset(&h);
	buf_reset(&want);
	buf_addf(&h, "{\"handlers\": {\"p\": {\"plugin\": \"%s/badabi.so\"}}}", dir);
	buf_addf(&want, "handler \"p\": %s/badabi.so: built for batchd ABI 99, this batchd has ABI 1",
		 dir);
	expect_refused(s, h.data, want.data);

	buf_reset(&h);
	buf_reset(&want);
	buf_addf(&h, "{\"handlers\": {\"p\": {\"plugin\": \"%s/nosym.so\"}}}", dir);
	buf_addf(&want, "handler \"p\": %s/nosym.so: no symbol batchd_handler_get", dir);
	expect_refused(s, h.data, want.data);

	/* A relative path is taken from the handlers file's directory. */
	buf_reset(&want);
	buf_addf(&want, "handler \"p\": %s/lib/x.so: No such file or directory", s->dir);
	expect_refused(s, "{\"handlers\": {\"p\": {\"plugin\": \"lib/x.so\"}}}", want.data);
	/* A NUL, which JSON has nowhere, would end a name: "cat<NUL>x". */
	static const char nul[] = "{\"handlers\": {\"cat\0x\": {\"argv\": [\"/bin/cat\"]}}}";

	expect_refused_n(s, nul, sizeof(nul) - 1, "invalid JSON at byte 18");
	buf_release(&h);
	buf_release(&want);
}

static void test_handlers_file_checks(void **state)
{
	struct server *s = *state;
	static const struct {
		const char *spec;
		const char *want;
	} cases[] = {
		{ "{\"argv\": [\"/bin/cat\"], \"mode\": \"forever\"}",
		  "\"mode\" must be \"exec\" or \"persistent\"" },
		{ "{\"argv\": [\"/bin/cat\"], \"init_timeout_s\": 5}",
		  "\"init_timeout_s\" is for \"mode\": \"persistent\"" },
		{ "{\"argv\": [\"/bin/cat\"], \"mode\": \"persistent\", \"init_timeout_s\": 0}",
		  "\"init_timeout_s\" must be a number of seconds in (0, 86400]" },
		{ "{\"argv\": [\"/bin/cat\"], \"mode\": \"persistent\", \"init_timeout_s\": \"5\"}",
		  "\"init_timeout_s\" must be a number of seconds in (0, 86400]" },
		{ "{\"plugin\": \"x.so\", \"mode\": \"persistent\"}",
		  "\"mode\" is for programs (\"argv\"), not plugins" },
		{ "{\"plugin\": \"x.so\", \"argv\": [\"/bin/cat\"]}",
		  "give either \"plugin\" or \"argv\", not both" },
		{ "{\"argv\": [\"/bin/cat\"], \"mode\": \"persistent\", \"config\": {}}",
		  "\"config\" is for plugins" },
		{ "{\"argv\": [\"no-such-program-here\"], \"mode\": \"persistent\"}",
		  "no-such-program-here: not found in PATH" },
		{ "{\"argv\": [\"/bin/cat\"], \"mode\": \"persistent\", \"init_timeout\": 3}",
		  "unknown field \"init_timeout\"" },
	};
	char text[1024], want[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "{\"handlers\": {\"h\": %s}}", cases[i].spec);
		snprintf(want, sizeof(want), "handler \"h\": %s", cases[i].want);
		expect_refused(s, text, want);
	}
	/* The top level is as strict; a name with a newline stays on one line. */
	expect_refused(s, "{\"handlers\": {\"h\": {\"argv\": [\"/bin/cat\"]}}, \"handler\": {}}",
		       "unknown field \"handler\" (only \"handlers\" belongs at the top)");
	expect_refused(s, "{\"handlers\": {\"h\": {\"argv\": [\"/bin/cat\"], \"a\\nb\": 1}}}",
		       "handler \"h\": unknown field \"a\\nb\"");
	expect_refused(s, "{\"handlers\": {\"a\\nb\": {\"argv\": [\"/bin/cat\"]}}}",
		       "bad handler name \"a\\nb\" (letters, digits, _ . -; at most 64)");
	/* Read whole or refused: a second object after the first, or a second
	 * "handlers", would be passed over without a word. */
	expect_refused(s, "{\"handlers\": {\"a\": {\"argv\": [\"/bin/cat\"]}}}\n"
		       "{\"handlers\": {\"b\": {\"argv\": [\"/bin/cat\"]}}}\n",
		       "invalid JSON at byte 44");
	expect_refused(s, "{\"handlers\": {\"a\": {\"argv\": [\"/bin/cat\"]}},"
		       " \"handlers\": {\"b\": {\"argv\": [\"/bin/cat\"]}}}",
		       "field \"handlers\" is given twice");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_once_per_worker, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_progress, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_init_fails, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_task_failure, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_plugin_exits, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_death_blamed_on_its_task, setup,
						server_teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_example_plugin, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_refused_at_start, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_handlers_file_checks, setup, server_teardown),
	};

	return cmocka_run_group_tests_name("plugins", tests, NULL, NULL);
}
