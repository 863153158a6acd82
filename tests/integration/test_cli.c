/*
 * Integration tests of the batchd command line: `serve` refusing bad
 * options, a busy port and an unusable database with one-line errors, and
 * the client commands (submit --wait with its progress bar, status,
 * wait, cancel, retry, delete, results) against a real server.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/buf.h"

/* Runs the batchd binary with args through the shell; returns the exit
 * status, with stdout and stderr in out (combined). */
static int run(struct buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int run(struct buf *out, const char *fmt, ...)
{
	char cmd[4096], args[3000], line[4096];
	va_list ap;
	FILE *p;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	/* A server that should have refused to start must not hang the test. */
	snprintf(cmd, sizeof(cmd), "timeout -k 5 60 %s %s 2>&1", batchd_bin(), args);
	buf_reset(out);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		buf_adds(out, line);
	rc = pclose(p);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int lines(const struct buf *b)
{
	int n = 0;

	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\n';
	return n;
}

/* Makes a real batchd database of a few hundred pages under s's directory,
 * then overwrites pages in its middle; its path goes to out. */
static void make_corrupt_db(struct server *s, char *out, size_t len)
{
	struct server m;
	struct buf body = BUF_INIT;
	const char *args[] = { "--workers", "1", NULL };
	FILE *f;
	long size;
	char junk[8 * 4096];

	server_init(&m);
	server_start(&m, args);
	buf_adds(&body, "{\"handler\": \"echo\", \"tasks\": [");
	for (int i = 0; i < 3000; i++)
		buf_addf(&body, "%s\"task %d, a line long enough to fill the pages\"", i ? "," : "", i);
	buf_adds(&body, "]}");
	cJSON_Delete(wait_job(&m, submit(&m, body.data), "succeeded", 60));
	buf_release(&body);
	assert_int_equal(server_stop(&m), 0);
	snprintf(out, len, "%s/corrupt.db", s->dir);
	assert_int_equal(sh("cp '%s' '%s'", m.db, out), 0);
	server_free(&m);

	f = fopen(out, "r+b");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	assert_true(size > 40 * 4096);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7919 + 13);
	fseek(f, (size / 2) & ~4095L, SEEK_SET);
	fwrite(junk, 1, sizeof(junk), f);
	fclose(f);
}

static void test_serve_refusals(void **state)
{
	struct server s, t;
	struct buf out = BUF_INIT;
	const char *args[] = { "--workers", "1", NULL };
	char listen[64], path[400];

	(void)state;
	assert_int_equal(run(&out, "serve --workers zero"), 2);
	assert_non_null(strstr(out.data, "batchd serve: --workers: expected a whole number"));
	assert_int_equal(lines(&out), 1);
	assert_int_equal(run(&out, "serve --sync always"), 2);
	assert_non_null(strstr(out.data, "batchd serve: --sync: expected second or commit, got "
					 "\"always\""));
	setenv("BATCHD_SYNC", "never", 1);
	assert_int_equal(run(&out, "serve"), 2);
	unsetenv("BATCHD_SYNC");
	assert_non_null(strstr(out.data, "BATCHD_SYNC: expected second or commit"));

	assert_int_equal(run(&out, "serve --db /nonexistent/dir/x.db --listen 127.0.0.1:0"), 1);
	assert_non_null(strstr(out.data, "cannot open database /nonexistent/dir/x.db: directory /nonexistent/dir does not exist"));
	assert_int_equal(lines(&out), 1);

	/* A busy port, and a database held by another batchd. */
	server_init(&s);
	server_start(&s, args);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s.port);
	server_init(&t);
	assert_int_equal(run(&out, "serve --db %s --listen %s", t.db, listen), 1);
	assert_non_null(strstr(out.data, "cannot listen on 127.0.0.1:"));
	assert_non_null(strstr(out.data, "Address already in use"));
	assert_int_equal(lines(&out), 1);
	assert_int_equal(run(&out, "serve --db %s --listen 127.0.0.1:0", s.db), 1);
	assert_non_null(strstr(out.data, "in use by another batchd process"));
	assert_int_equal(lines(&out), 1);
	server_free(&t);
	server_free(&s);

	/* Not a database, a damaged one, a read-only one: each refused at
	 * start-up with one line naming the file and the cause. */
	server_init(&t);
	write_file(&t, "garbage.db", "this is not a database file, not at all\n", 0644,
		   path, sizeof(path));
	assert_int_equal(run(&out, "serve --db %s --listen 127.0.0.1:0", path), 1);
	assert_non_null(strstr(out.data, "batchd serve: cannot open database "));
	assert_non_null(strstr(out.data, path));
	assert_non_null(strstr(out.data, ": file is not a database"));
	assert_int_equal(lines(&out), 1);

	make_corrupt_db(&t, path, sizeof(path));
	assert_int_equal(run(&out, "serve --db %s --listen 127.0.0.1:0", path), 1);
	assert_non_null(strstr(out.data, path));
	assert_non_null(strstr(out.data, ": the file is corrupt ("));
	assert_int_equal(lines(&out), 1);

	write_file(&t, "ro.db", "", 0444, path, sizeof(path));
	assert_int_equal(run(&out, "serve --db %s --listen 127.0.0.1:0", path), 1);
	assert_non_null(strstr(out.data, path));
	assert_non_null(strstr(out.data, "the file is read-only (mode 0444)"));
	assert_int_equal(lines(&out), 1);
	server_free(&t);

	assert_int_equal(run(&out, "serve --help"), 0);
	assert_non_null(strstr(out.data, "--grace SECONDS"));
	assert_int_equal(run(&out, "bogus"), 2);
	assert_non_null(strstr(out.data, "unknown command \"bogus\""));
	buf_release(&out);
}

/* A database on a read-only file system (a read-only mount: root ignores
 * file modes, so a mount is the honest test) is refused at start-up. */
static void test_serve_read_only_fs(void **state)
{
	struct server s;
	struct buf out = BUF_INIT;
	const char *args[] = { "--workers", "1", NULL };
	char mnt[290], db[400];

	(void)state;
	server_init(&s);
	snprintf(mnt, sizeof(mnt), "%s/ro", s.dir);
	if (mount_tmpfs(mnt, "size=8m") < 0) {
		print_message("skipped: cannot mount a tmpfs here (needs root)\n");
		server_free(&s);
		skip();
	}
	/* A sound database made on the mount, which then turns read-only. */
	snprintf(s.db, sizeof(s.db), "%s/batchd.db", mnt);
	server_start(&s, args);
	cJSON_Delete(wait_job(&s, submit(&s, "{\"handler\": \"noop\", \"tasks\": [1]}"),
			      "succeeded", 30));
	assert_int_equal(server_stop(&s), 0);
	assert_int_equal(sh("mount -o remount,ro '%s'", mnt), 0);

	assert_int_equal(run(&out, "serve --db %s --listen 127.0.0.1:0", s.db), 1);
	assert_non_null(strstr(out.data, s.db));
	assert_non_null(strstr(out.data, ": Read-only file system"));
	assert_int_equal(lines(&out), 1);
	snprintf(db, sizeof(db), "%s/new.db", mnt);
	assert_int_equal(run(&out, "serve --db %s --listen 127.0.0.1:0", db), 1);
	assert_non_null(strstr(out.data, "cannot open database "));
	assert_non_null(strstr(out.data, ": Read-only file system"));
	assert_int_equal(lines(&out), 1);

	assert_int_equal(unmount(mnt), 0);
	buf_release(&out);
	server_free(&s);
}

static void test_submit_wait_status_cancel(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", NULL };
	struct buf out = BUF_INIT;
	char path[400];
	int zero;
	cJSON *j;

	(void)state;
	server_init(&s);
	server_start(&s, args);

	/* A whole job request, waited on: the bar reaches 100%. */
	write_file(&s, "job.json", "{\"handler\": \"sleep\", \"name\": \"nap\", \"tasks\": "
		   "[{\"ms\": 50}, {\"ms\": 50}, {\"ms\": 50}, {\"ms\": 50}]}", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --wait %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "1\n"));
	assert_non_null(strstr(out.data, "100%|"));
	assert_non_null(strstr(out.data, " 4/4 ["));
	assert_non_null(strstr(out.data, "tasks/s"));
	assert_non_null(strstr(out.data, "job 1 succeeded"));

	/* Tasks only, as JSON Lines from stdin, with --handler: some fail,
	 * so --wait exits 1 and the bar counts the failures. */
	write_file(&s, "tasks.jsonl", "{\"message\": \"a\"}\n\n{\"message\": \"b\"}\n", 0644,
		   path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler fail --wait - < %s", s.url, path), 1);
	assert_non_null(strstr(out.data, "failed=2"));
	assert_non_null(strstr(out.data, "job 2 failed"));

	/* status lists jobs, and shows one with its failed tasks. */
	assert_int_equal(run(&out, "status --url %s", s.url), 0);
	assert_non_null(strstr(out.data, "succeeded"));
	assert_non_null(strstr(out.data, "nap"));
	assert_int_equal(run(&out, "status --url %s 2", s.url), 0);
	assert_non_null(strstr(out.data, "\nstarted: 20"));
	assert_non_null(strstr(out.data, "max attempts: 1   priority: 0\nfailed tasks:\n"));
	assert_non_null(strstr(out.data, "attempts=1  a"));

	/* cancel and retry. */
	write_file(&s, "long.json", "[{\"ms\": 60000, \"steps\": 600}, {\"ms\": 60000}, "
		   "{\"ms\": 60000}]", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler sleep --name long %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "job 3 submitted: 3 tasks"));
	/* status ID shows the tasks running, on which worker, for how long. */
	zero = 0;
	assert_true(wait_until(workers_idle, &s, &zero, 30));
	/* Task 0 reports a step every 0.1 s: its progress and message. */
	for (double deadline = now_s() + 30;; usleep(50000)) {
		assert_int_equal(run(&out, "status --url %s 3", s.url), 0);
		if (strstr(out.data, "  step "))
			break;
		assert_true(now_s() < deadline);
	}
	assert_non_null(strstr(out.data, "\nrunning now:\n  #0      "));
	assert_non_null(strstr(out.data, "%  worker "));
	assert_non_null(strstr(out.data, "\n  #1         -  worker "));
	assert_non_null(strstr(out.data, "  for 00:0"));
	assert_null(strstr(out.data, "#2 "));
	assert_int_equal(run(&out, "cancel --url %s 3", s.url), 0);
	assert_non_null(strstr(out.data, "job 3 cancelled"));
	j = api(&s, "GET", "/api/jobs/3", NULL, 200);
	assert_string_equal(jstr(j, "state"), "cancelled");
	cJSON_Delete(j);
	assert_int_equal(run(&out, "retry --url %s 2", s.url), 0);
	assert_non_null(strstr(out.data, "job 2 retried"));

	/* delete: a finished job only, then it is gone. */
	assert_int_equal(run(&out, "delete --url %s 3", s.url), 0);
	assert_non_null(strstr(out.data, "job 3 deleted"));
	cJSON_Delete(api(&s, "GET", "/api/jobs/3", NULL, 404));
	assert_int_equal(run(&out, "delete --url %s 3", s.url), 1);
	assert_non_null(strstr(out.data, "no job 3 (HTTP 404)"));
	assert_int_equal(run(&out, "submit --url %s --handler sleep %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "job 4 submitted"));
	assert_int_equal(run(&out, "delete --url %s 4", s.url), 1);
	assert_non_null(strstr(out.data, "(HTTP 409)"));
	assert_int_equal(run(&out, "cancel --url %s 4", s.url), 0);
	assert_int_equal(run(&out, "delete --url %s --json 4", s.url), 0);
	assert_string_equal(out.data, "{\"id\":4,\"deleted\":true}\n");
	assert_int_equal(run(&out, "delete --url %s", s.url), 2);

	/* Errors: the server's message, and exit statuses. */
	assert_int_equal(run(&out, "submit --url %s --handler nope %s", s.url, path), 2);
	assert_non_null(strstr(out.data, "unknown handler \"nope\""));
	assert_int_equal(run(&out, "cancel --url %s 99", s.url), 1);
	assert_non_null(strstr(out.data, "no job 99 (HTTP 404)"));
	assert_int_equal(run(&out, "status --url http://127.0.0.1:1"), 3);
	assert_non_null(strstr(out.data, "cannot reach the server"));
	assert_int_equal(run(&out, "submit --url %s", s.url), 2);
	assert_int_equal(run(&out, "submit --help"), 0);
	assert_non_null(strstr(out.data, "--wait"));

	/* More failed tasks than status shows: it says how many, and where
	 * the rest are. */
	write_file(&s, "seven.json", "[{}, {}, {}, {}, {}, {}, {}]", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler fail --attempts 2 --wait %s", s.url,
			     path), 1);
	assert_non_null(strstr(out.data, "job 5 failed"));
	assert_int_equal(run(&out, "status --url %s 5", s.url), 0);
	assert_non_null(strstr(out.data, "max attempts: 2"));
	snprintf(path, sizeof(path), "failed tasks (the first 5 of 7; all of them: "
		 "batchd results --url %s --state failed 5):\n", s.url);
	assert_non_null(strstr(out.data, path));
	setenv("BATCHD_URL", s.url, 1);
	assert_int_equal(run(&out, "status 5"), 0);
	unsetenv("BATCHD_URL");
	assert_non_null(strstr(out.data, "all of them: batchd results --state failed 5):\n"));
	assert_non_null(strstr(out.data, "#4      attempts=2"));
	assert_null(strstr(out.data, "#5 "));
	buf_release(&out);
	server_free(&s);
}

/* submit's tasks go to the server as written: JSON Lines whatever their
 * spacing and line ends, or an array, with the options added; a line of
 * two values, or of none, is refused by its number and nothing is made;
 * so is a job larger than the server takes, with the server's word. */
static void test_submit_inputs(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", "--max-body", "1M", NULL };
	struct buf out = BUF_INIT, big = BUF_INIT;
	char path[400];
	cJSON *j;

	(void)state;
	server_init(&s);
	server_start(&s, args);

	/* 32 MB: far more than the socket's buffers hold, so the server's
	 * early 413 must come before the body is sent, not after. */
	for (int i = 0; i < 1000000; i++)
		buf_addf(&big, "{\"n\": %d, \"pad\": \"xxxxxxxxxx\"}\n", i);
	write_file(&s, "big.jsonl", big.data, 0644, path, sizeof(path));
	buf_release(&big);
	assert_int_equal(run(&out, "submit --url %s --handler noop %s", s.url, path), 2);
	assert_non_null(strstr(out.data, "takes at most 1048576 (--max-body) (HTTP 413)"));

	write_file(&s, "two.jsonl", "{\"a\": 1}\n{\"b\": 2} {\"c\": 3}\n", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler echo %s", s.url, path), 2);
	assert_non_null(strstr(out.data, "line 2 holds more than one JSON value"));
	write_file(&s, "cut.jsonl", "{\"a\": 1}\n\n[1, 2]\n{\"b\":\n", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler echo %s", s.url, path), 2);
	assert_non_null(strstr(out.data, "line 4 is not JSON"));
	j = api(&s, "GET", "/api/jobs", NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs")), 0);
	cJSON_Delete(j);

	/* CRLF, blank lines, spaces around, and values of every kind. */
	write_file(&s, "mixed.jsonl", "\r\n  {\"a\": [1, {\"b\": \"x y\"}]}  \r\n\n\t7\n\"z\"\r\nnull",
		   0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler echo --name mixed --wait %s", s.url,
			     path), 0);
	assert_non_null(strstr(out.data, "job 1 succeeded"));
	assert_int_equal(run(&out, "results --url %s 1 --input", s.url), 0);
	assert_non_null(strstr(out.data, "\"input\":{\"a\":[1,{\"b\":\"x y\"}]}"));
	assert_non_null(strstr(out.data, "\"index\":1,") && strstr(out.data, "\"input\":7"));
	assert_non_null(strstr(out.data, "\"input\":\"z\""));
	assert_non_null(strstr(out.data, "\"index\":3,"));
	assert_null(strstr(out.data, "\"index\":4,"));

	/* An array over several lines, and the options around it. */
	write_file(&s, "tasks.json", "[\n  {\"ms\": 1},\n  {\"ms\": 2}\n]\n", 0644, path,
		   sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler sleep --name arr --priority 4 "
			     "--attempts 3 --paused %s", s.url, path), 0);
	j = api(&s, "GET", "/api/jobs/2", NULL, 200);
	assert_string_equal(jstr(j, "name"), "arr");
	assert_string_equal(jstr(j, "handler"), "sleep");
	assert_int_equal(jnum(j, "priority"), 4);
	assert_int_equal(jnum(j, "max_attempts"), 3);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "paused")));
	assert_int_equal(jnum(j, "progress.total"), 2);
	cJSON_Delete(j);

	/* Numbers go as written, from a job object and from lines alike:
	 * 9007199254740993 is no double, 1.0 is not 1. */
	write_file(&s, "job.json", "{\"handler\": \"echo\",\n \"tasks\": [9007199254740993, 1.0],"
		   " \"name\": \"exact\"}\n", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --wait %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "job 3 succeeded"));
	assert_int_equal(run(&out, "results --url %s 3 --input", s.url), 0);
	assert_non_null(strstr(out.data, "\"result\":9007199254740993,\"error\":null,"
			       "\"input\":9007199254740993}\n"));
	assert_non_null(strstr(out.data, "\"result\":1.0,\"error\":null,\"input\":1.0}\n"));
	j = api(&s, "GET", "/api/jobs/3", NULL, 200);
	assert_string_equal(jstr(j, "name"), "exact");
	cJSON_Delete(j);
	write_file(&s, "ids.jsonl", "{\"id\": 12345678901234567890}\n1E22\n", 0644, path,
		   sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler echo --wait %s", s.url, path), 0);
	assert_int_equal(run(&out, "results --url %s 4", s.url), 0);
	assert_non_null(strstr(out.data, "\"result\":{\"id\":12345678901234567890}"));
	assert_non_null(strstr(out.data, "\"result\":1E22,"));

	/* JSON Lines of one line is one task, an object too: with --handler,
	 * an object is a job request only when it has "tasks". */
	write_file(&s, "one.jsonl", "{\"message\": \"boom\"}\n", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler fail --wait %s", s.url, path), 1);
	assert_non_null(strstr(out.data, "job 5 failed"));
	j = api(&s, "GET", "/api/jobs/5/tasks/0", NULL, 200);
	assert_string_equal(jstr(j, "error"), "boom");
	cJSON_Delete(j);
	write_file(&s, "one.json", "42", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler echo --wait %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "job 6 succeeded"));
	assert_int_equal(run(&out, "submit --url %s %s", s.url, path), 2);
	assert_non_null(strstr(out.data, "expected a job object or an array of tasks"));
	/* A byte order mark, as editors on Windows write, is skipped. */
	write_file(&s, "bom.jsonl", "\xEF\xBB\xBF{\"a\": 1}\n{\"a\": 2}\n", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler echo --wait %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "job 7 succeeded"));
	buf_release(&out);
	server_free(&s);
}

/* results: every task as a JSON line, to stdout or to a file that is
 * written whole or not at all. */
/* Starts batchd with args (NULL-terminated, after the program's name) in
 * the background, its stderr and stdout to files when named, SIGINT as by
 * default (a test run from a shell may have it ignored); its pid. */
static pid_t spawn_cli(const char *err, const char *out, const char *const *args)
{
	const char *argv[16] = { batchd_bin() };
	pid_t pid;
	int n = 1;

	for (; args[n - 1] && n < 15; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		if ((err && !freopen(err, "w", stderr)) || (out && !freopen(out, "w", stdout)))
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

struct child {
	pid_t pid;
	int status;
};

static int child_exited(const struct server *s, void *ctx)
{
	struct child *c = ctx;

	(void)s;
	return waitpid(c->pid, &c->status, WNOHANG) == c->pid;
}

/* Whether directory ctx[0] holds a file whose name starts with ctx[1]. */
static int dir_has(const struct server *s, void *ctx)
{
	const char *const *what = ctx;
	DIR *d = opendir(what[0]);
	struct dirent *e;
	int found = 0;

	(void)s;
	while (d && !found && (e = readdir(d)))
		found = !strncmp(e->d_name, what[1], strlen(what[1]));
	if (d)
		closedir(d);
	return found;
}

static void test_results(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", NULL };
	struct buf out = BUF_INIT, tasks = BUF_INIT;
	char path[400], file[450], full[450];
	cJSON *line;
	char *text;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	for (int i = 0; i < 1203; i++)
		buf_addf(&tasks, "{\"n\": %d}\n", i);
	write_file(&s, "tasks.jsonl", tasks.data, 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler echo --wait %s", s.url, path), 0);

	/* To stdout: a line per task, in index order. */
	assert_int_equal(run(&out, "results --url %s 1", s.url), 0);
	assert_int_equal(lines(&out), 1203);
	line = cJSON_ParseWithLength(out.data, strcspn(out.data, "\n"));
	assert_int_equal(jnum(line, "index"), 0);
	assert_string_equal(jstr(line, "state"), "succeeded");
	assert_int_equal(jnum(line, "result.n"), 0);
	cJSON_Delete(line);

	/* To a file, the same lines; nothing else left beside it. */
	snprintf(file, sizeof(file), "%s/results.jsonl", s.dir);
	assert_int_equal(run(&out, "results --url %s --output %s 1", s.url, file), 0);
	assert_int_equal(out.len, 0);
	text = file_text(file);
	assert_non_null(text);
	assert_int_equal(run(&out, "results --url %s 1", s.url), 0);
	assert_string_equal(text, out.data);
	free(text);
	assert_int_equal(sh("ls '%s' | grep -c tmp", s.dir), 1);	/* grep found none */

	/* A filter, and the inputs. */
	write_file(&s, "fail.jsonl", "{\"message\": \"a\"}\n{\"message\": \"b\"}\n", 0644,
		   path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler fail --wait %s", s.url, path), 1);
	assert_int_equal(run(&out, "results --url %s --state failed --input 2", s.url), 0);
	assert_int_equal(lines(&out), 2);
	assert_non_null(strstr(out.data, "\"error\":\"b\""));
	assert_non_null(strstr(out.data, "\"input\":{\"message\":\"b\"}"));
	assert_int_equal(run(&out, "results --url %s --state succeeded 2", s.url), 0);
	assert_int_equal(out.len, 0);

	/* Errors: the server's message and exit statuses; a file that cannot
	 * be written whole is not written at all. */
	assert_int_equal(run(&out, "results --url %s 99", s.url), 1);
	assert_non_null(strstr(out.data, "no job 99 (HTTP 404)"));
	assert_int_equal(run(&out, "results --url %s --state done 1", s.url), 2);
	assert_non_null(strstr(out.data, "--state must be"));
	assert_int_equal(run(&out, "results --url %s", s.url), 2);
	assert_int_equal(run(&out, "results --url http://127.0.0.1:1 1"), 3);
	assert_int_equal(run(&out, "results --url %s --output %s/no/such/dir 1", s.url, s.dir), 1);
	assert_non_null(strstr(out.data, "cannot write"));
	snprintf(full, sizeof(full), "%s/full", s.dir);
	if (mount_tmpfs(full, "size=64k") == 0) {
		assert_int_equal(run(&out, "results --url %s --output %s/r.jsonl 1", s.url, full), 1);
		assert_non_null(strstr(out.data, "No space left on device"));
		assert_int_equal(sh("test -z \"$(ls -A '%s')\"", full), 0);
		assert_int_equal(unmount(full), 0);
	} else {
		print_message("not root: the full-disk case is not tried\n");
	}
	/* Ended by a signal while the answer is awaited (the server stopped):
	 * the command dies of it, and nothing is left beside the output. */
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		const char *look[2] = { s.dir, "results.part.tmp." };
		const char *cmd[] = { "results", "--url", s.url, "--output", file, "1", NULL };
		struct child c = { 0, 0 };

		snprintf(file, sizeof(file), "%s/results.part", s.dir);
		kill(s.pid, SIGSTOP);
		c.pid = spawn_cli(NULL, NULL, cmd);
		assert_true(wait_until(dir_has, &s, look, 30));
		kill(c.pid, sigs[i]);
		assert_true(wait_until(child_exited, &s, &c, 30));
		kill(s.pid, SIGCONT);
		assert_true(WIFSIGNALED(c.status));
		assert_int_equal(WTERMSIG(c.status), sigs[i]);
		assert_false(dir_has(&s, look));
		assert_int_equal(access(file, F_OK), -1);
	}
	assert_int_equal(run(&out, "results --help"), 0);
	assert_non_null(strstr(out.data, "--output FILE"));
	buf_release(&out);
	buf_release(&tasks);
	server_free(&s);
}

/* Whether path is, by lstat(), of the kind (S_IFLNK, S_IFIFO...). */
static int is_kind(const char *path, mode_t kind)
{
	struct stat st;

	return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

/* results --output to what is not a plain file: a symbolic link stands
 * for its file, written whole beside it and the link kept; a FIFO and a
 * device are written to as they are, never replaced by a file. */
static void test_results_output_kinds(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "1", NULL };
	struct buf out = BUF_INIT, want = BUF_INIT, got = BUF_INIT;
	char path[400], link[450], file[450], other[450];
	char chunk[4096];
	char *text;
	ssize_t n;
	int fd;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	write_file(&s, "tasks.jsonl", "{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3}\n", 0644, path,
		   sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler echo --wait %s", s.url, path), 0);
	assert_int_equal(run(&want, "results --url %s 1", s.url), 0);
	assert_int_equal(lines(&want), 3);
	snprintf(path, sizeof(path), "%s/sub", s.dir);
	assert_int_equal(mkdir(path, 0755), 0);

	/* A link, by a relative name, to a file in another directory. */
	write_file(&s, "sub/real.jsonl", "old\n", 0644, file, sizeof(file));
	snprintf(link, sizeof(link), "%s/link.jsonl", s.dir);
	assert_int_equal(symlink("sub/real.jsonl", link), 0);
	assert_int_equal(run(&out, "results --url %s --output %s 1", s.url, link), 0);
	assert_int_equal(out.len, 0);
	assert_true(is_kind(link, S_IFLNK));
	text = file_text(file);
	assert_non_null(text);
	assert_string_equal(text, want.data);
	free(text);

	/* A link to a link to a name not there yet: the file is made. */
	snprintf(link, sizeof(link), "%s/dangling", s.dir);
	assert_int_equal(symlink("sub/new.jsonl", link), 0);
	snprintf(link, sizeof(link), "%s/chain", s.dir);
	assert_int_equal(symlink("dangling", link), 0);
	assert_int_equal(run(&out, "results --url %s --output %s 1", s.url, link), 0);
	assert_true(is_kind(link, S_IFLNK));
	snprintf(file, sizeof(file), "%s/dangling", s.dir);
	assert_true(is_kind(file, S_IFLNK));
	snprintf(file, sizeof(file), "%s/sub/new.jsonl", s.dir);
	text = file_text(file);
	assert_non_null(text);
	assert_string_equal(text, want.data);
	free(text);

	/* Links in a loop: refused, and nothing made. */
	snprintf(link, sizeof(link), "%s/loop-a", s.dir);
	snprintf(other, sizeof(other), "%s/loop-b", s.dir);
	assert_int_equal(symlink("loop-b", link), 0);
	assert_int_equal(symlink("loop-a", other), 0);
	assert_int_equal(run(&out, "results --url %s --output %s 1", s.url, link), 1);
	assert_non_null(strstr(out.data, "cannot write"));
	assert_non_null(strstr(out.data, "Too many levels of symbolic links"));
	assert_true(is_kind(link, S_IFLNK));

	/* A FIFO: its reader, there before the command, gets the lines. */
	snprintf(file, sizeof(file), "%s/fifo", s.dir);
	assert_int_equal(mkfifo(file, 0644), 0);
	fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(run(&out, "results --url %s --output %s 1", s.url, file), 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&got, chunk, (size_t)n);
	assert_true(n == 0 || errno == EAGAIN);
	close(fd);
	assert_string_equal(got.data, want.data);
	assert_true(is_kind(file, S_IFIFO));

	/* Devices, through links (a test must not risk /dev/null itself):
	 * /dev/null takes the lines; /dev/stdout is the command's stdout. */
	snprintf(link, sizeof(link), "%s/null", s.dir);
	assert_int_equal(symlink("/dev/null", link), 0);
	assert_int_equal(run(&out, "results --url %s --output %s 1", s.url, link), 0);
	assert_int_equal(out.len, 0);
	assert_true(is_kind(link, S_IFLNK));
	assert_true(is_kind("/dev/null", S_IFCHR));
	snprintf(link, sizeof(link), "%s/stdout", s.dir);
	assert_int_equal(symlink("/dev/stdout", link), 0);
	assert_int_equal(run(&out, "results --url %s --output %s 1", s.url, link), 0);
	assert_string_equal(out.data, want.data);
	assert_true(is_kind(link, S_IFLNK));

	/* No temporary file left anywhere. */
	assert_int_equal(sh("find '%s' -name '*.tmp.*' | grep -q .", s.dir), 1);
	buf_release(&out);
	buf_release(&want);
	buf_release(&got);
	server_free(&s);
}

static int file_has(const struct server *s, void *ctx)
{
	const char *const *what = ctx;	/* { path, text } */
	char *text = file_text(what[0]);
	int found = text && strstr(text, what[1]);

	(void)s;
	free(text);
	return found;
}

/* An HTTP server that is not batchd (python3's http.server), started as
 * s's server: it answers every request 200 with the text of the file
 * "answer" in s's directory as it is then (as HTML when it starts with
 * '<'). server_free() stops it. */
static const char fake_server_py[] =
	"import http.server, os, signal, sys\n"
	"signal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
	"answer = os.path.join(sys.argv[1], 'answer')\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    def answer(self):\n"
	"        self.rfile.read(int(self.headers.get('Content-Length') or 0))\n"
	"        body = open(answer, 'rb').read()\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Type', 'text/html' if body[:1] == b'<'\n"
	"                         else 'application/json')\n"
	"        self.send_header('Content-Length', str(len(body)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(body)\n"
	"    do_GET = do_POST = do_DELETE = answer\n"
	"    def log_message(self, *args):\n"
	"        pass\n"
	"server = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
	"print('listening on port', server.server_address[1], flush=True)\n"
	"server.serve_forever()\n";

static void fake_server_start(struct server *s)
{
	char script[400];
	const char *argv[] = { "/usr/bin/env", "python3", script, s->dir, NULL };
	const char *look[2] = { s->log, "listening on port " };
	char *text;

	write_file(s, "fake.py", fake_server_py, 0644, script, sizeof(script));
	server_spawn(s, argv);
	assert_true(wait_until(file_has, s, look, 30));
	text = file_text(s->log);
	s->port = atoi(strstr(text, look[1]) + strlen(look[1]));
	free(text);
	assert_true(s->port > 0);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
}

/* --url naming another HTTP server that answers 200: each command says
 * the answer is not batchd's, and what was wrong, and exits 1, as for a
 * server's error; none shows a job of nan tasks, or waits forever. */
static void test_not_batchd(void **state)
{
	struct server f;
	struct buf out = BUF_INIT;
	char path[400], answer[400], said[200];

	(void)state;
	server_init(&f);
	write_file(&f, "answer", "<!DOCTYPE html>\n<html><head><title>It works!</title></head>"
		   "<body>Apache2 Default Page</body></html>\n", 0644, answer, sizeof(answer));
	fake_server_start(&f);
	write_file(&f, "tasks.json", "[{\"ms\": 1}]", 0644, path, sizeof(path));
	snprintf(said, sizeof(said), "batchd: %s did not answer as batchd does (HTTP 200, "
		 "not JSON: \"<!DOCTYPE html>\\n<html><head><title>It wo...\")\n", f.url);

	/* Each command, its arguments after --url URL (a file: the tasks). */
	static const struct {
		const char *cmd, *args;
		int file;
	} each[] = {
		{ "submit", "--handler sleep", 1 }, { "submit", "--handler sleep --wait", 1 },
		{ "cancel", "5", 0 }, { "retry", "--json 5", 0 }, { "status", "5", 0 },
		{ "status", "--json 5", 0 }, { "status", "", 0 }, { "wait", "5", 0 },
	};

	for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++) {
		if (run(&out, "%s --url %s %s %s", each[i].cmd, f.url, each[i].args,
			each[i].file ? path : "") != 1 || strcmp(out.data, said))
			fail_msg("%s %s: %s", each[i].cmd, each[i].args, out.data);
	}

	/* JSON, but not batchd's: the member that is missing is named. */
	write_file(&f, "answer", "{\"ok\": true}", 0644, answer, sizeof(answer));
	assert_int_equal(run(&out, "submit --url %s --handler sleep %s", f.url, path), 1);
	assert_non_null(strstr(out.data, "did not answer as batchd does (HTTP 200, "
					 "no numeric \"id\")\n"));
	assert_int_equal(run(&out, "status --url %s", f.url), 1);
	assert_non_null(strstr(out.data, "(HTTP 200, no \"jobs\" array)\n"));
	write_file(&f, "answer", "{\"id\": 5, \"status\": \"cancelled\"}", 0644, answer,
		   sizeof(answer));
	assert_int_equal(run(&out, "cancel --url %s 5", f.url), 1);
	assert_non_null(strstr(out.data, "(HTTP 200, no string \"state\")\n"));
	assert_null(strstr(out.data, "job 5 cancelled"));
	assert_int_equal(run(&out, "wait --url %s 5", f.url), 1);
	assert_non_null(strstr(out.data, "(HTTP 200, no string \"state\")\n"));
	write_file(&f, "answer", "[1, 2]", 0644, answer, sizeof(answer));
	assert_int_equal(run(&out, "status --url %s 5", f.url), 1);
	assert_non_null(strstr(out.data, "(HTTP 200, JSON, but not an object)\n"));
	write_file(&f, "answer", "", 0644, answer, sizeof(answer));
	assert_int_equal(run(&out, "pause --url %s 5", f.url), 1);
	assert_non_null(strstr(out.data, "(HTTP 200, an empty body)\n"));
	/* results streams what it gets: only an answer of the export's type
	 * (application/x-ndjson) is written, a page is not taken for one. */
	write_file(&f, "answer", "<html>It works!</html>\n", 0644, answer, sizeof(answer));
	assert_int_equal(run(&out, "results --url %s 5", f.url), 1);
	assert_non_null(strstr(out.data, "did not answer as batchd does (HTTP 200, Content-Type"
					 " text/html, not application/x-ndjson)\n"));
	assert_null(strstr(out.data, "It works"));
	snprintf(path, sizeof(path), "%s/results.jsonl", f.dir);
	assert_int_equal(run(&out, "results --url %s --output %s 5", f.url, path), 1);
	assert_int_not_equal(access(path, F_OK), 0);	/* nothing written */
	buf_release(&out);
	server_free(&f);
}

/* wait: any job's bar, from another terminal than the one that submitted
 * it; its exit status says how the job ended; Ctrl-C leaves the job be. */
static void test_wait(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", NULL };
	struct buf out = BUF_INIT;
	char path[400], log[450];
	const char *look[2] = { log, "job 3 sleep:" };
	const char *line;
	int status;
	cJSON *j;
	pid_t pid;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	write_file(&s, "naps.json", "[{\"ms\": 300, \"steps\": 3}, {\"ms\": 300}, {\"ms\": 300}]",
		   0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler sleep %s", s.url, path), 0);
	assert_int_equal(run(&out, "wait --url %s 1", s.url), 0);
	assert_non_null(strstr(out.data, "100%|"));
	assert_non_null(strstr(out.data, " 3/3 ["));
	assert_non_null(strstr(out.data, "job 1 succeeded"));
	j = api(&s, "GET", "/api/jobs/1", NULL, 200);
	assert_string_equal(jstr(j, "state"), "succeeded");	/* done when wait said so */
	cJSON_Delete(j);

	/* A finished job: at once, the same answer; --json adds the job. */
	assert_int_equal(run(&out, "wait --url %s --json 1", s.url), 0);
	j = cJSON_Parse(strstr(out.data, "{\"id\":1,"));
	assert_non_null(j);
	assert_int_equal(jnum(j, "progress.succeeded"), 3);
	cJSON_Delete(j);

	/* Failures: exit 1, counted. */
	write_file(&s, "bad.json", "[{\"message\": \"a\"}, {}]", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler fail %s", s.url, path), 0);
	assert_int_equal(run(&out, "wait --url %s 2", s.url), 1);
	assert_non_null(strstr(out.data, "failed=2"));
	assert_non_null(strstr(out.data, "job 2 failed"));

	/* Interrupted: 130, and the job goes on. */
	write_file(&s, "long.json", "[{\"ms\": 60000, \"steps\": 60}]", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler sleep %s", s.url, path), 0);
	snprintf(log, sizeof(log), "%s/wait.log", s.dir);
	pid = spawn_cli(log, NULL, (const char *[]){ "wait", "--url", s.url, "3", NULL });
	assert_true(wait_until(file_has, &s, look, 30));
	kill(pid, SIGINT);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 130);
	look[1] = "stopped waiting; job 3 goes on (batchd cancel 3 stops it)";
	assert_true(file_has(&s, look));
	j = api(&s, "GET", "/api/jobs/3", NULL, 200);
	assert_string_equal(jstr(j, "state"), "running");
	cJSON_Delete(j);

	/* pause and resume, and how status shows a paused job. */
	assert_int_equal(run(&out, "pause --url %s 3", s.url), 0);
	assert_string_equal(out.data, "job 3 paused\n");
	assert_int_equal(run(&out, "status --url %s 3", s.url), 0);
	assert_non_null(strstr(out.data, "state: paused"));
	assert_non_null(strstr(out.data, ", paused]"));
	assert_int_equal(run(&out, "status --url %s", s.url), 0);
	assert_non_null(strstr(out.data, "     3  paused "));
	assert_int_equal(run(&out, "resume --url %s --json 3", s.url), 0);
	j = cJSON_Parse(out.data);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "paused")));
	cJSON_Delete(j);
	assert_int_equal(run(&out, "submit --url %s --handler echo --paused %s", s.url, path), 0);
	assert_non_null(strstr(out.data, "job 4 submitted: 1 task for \"echo\"\n"));
	assert_int_equal(run(&out, "status --url %s 4", s.url), 0);
	assert_non_null(strstr(out.data, "state: paused"));
	assert_int_equal(run(&out, "cancel --url %s 4", s.url), 0);
	assert_int_equal(run(&out, "submit --url %s --handler echo --priority high %s", s.url, path), 2);
	assert_non_null(strstr(out.data, "--priority: expected a number, got \"high\""));
	assert_int_equal(run(&out, "pause --url %s 1", s.url), 1);
	assert_non_null(strstr(out.data, "only a queued or running job can be paused (HTTP 409)"));
	assert_int_equal(run(&out, "cancel --url %s 3", s.url), 0);

	/* Options may follow the file or the id, as in most tools. */
	assert_int_equal(run(&out, "status 4 --url %s", s.url), 0);
	assert_non_null(strstr(out.data, "state: cancelled"));
	assert_int_equal(run(&out, "submit %s --handler echo --url %s", path, s.url), 0);
	assert_non_null(strstr(out.data, "job 5 submitted"));

	/* submit --wait --json: the finished job, not the one just queued. */
	write_file(&s, "two.json", "[{\"ms\": 50}, {\"ms\": 50}]", 0644, path, sizeof(path));
	assert_int_equal(run(&out, "submit --url %s --handler sleep --wait --json %s", s.url,
			     path), 0);
	assert_non_null(strstr(out.data, "job 6 succeeded"));
	j = cJSON_Parse(strstr(out.data, "{\"id\":6,"));
	assert_non_null(j);
	assert_string_equal(jstr(j, "state"), "succeeded");
	assert_int_equal(jnum(j, "progress.succeeded"), 2);
	cJSON_Delete(j);
	assert_null(strstr(out.data, "\"state\":\"queued\""));
	/* Listed, a finished job has no ETA; the queued one has none yet. */
	assert_int_equal(run(&out, "status --url %s --limit 1", s.url), 0);
	line = strstr(out.data, "\n     6  succeeded  sleep ");
	assert_non_null(line);
	assert_non_null(strstr(line, "/s         -  \n"));
	/* No rate yet: a dash, not "-/s". */
	assert_int_equal(run(&out, "submit --url %s --handler sleep --paused %s", s.url, path), 0);
	assert_int_equal(run(&out, "status --url %s --limit 1", s.url), 0);
	line = strstr(out.data, "\n     7  paused     sleep ");
	assert_non_null(line);
	assert_non_null(strstr(line, "%            -         -  \n"));

	/* Refusals and usage: each says what is wrong. */
	assert_int_equal(run(&out, "wait --url %s 99", s.url), 1);
	assert_non_null(strstr(out.data, "no job 99 (HTTP 404)"));
	assert_int_equal(run(&out, "wait --url %s", s.url), 2);
	assert_non_null(strstr(out.data, "batchd wait: which job? Give its id"));
	assert_int_equal(run(&out, "wait --url %s 1x", s.url), 2);
	assert_non_null(strstr(out.data, "batchd wait: \"1x\" is not a job id"));
	assert_int_equal(run(&out, "cancel --url %s 1 2", s.url), 2);
	assert_non_null(strstr(out.data, "batchd cancel: one job id, not 2 arguments"));
	assert_int_equal(run(&out, "submit --url %s", s.url), 2);
	assert_non_null(strstr(out.data, "batchd submit: which file?"));
	assert_int_equal(run(&out, "health --url %s now", s.url), 2);
	assert_non_null(strstr(out.data, "batchd health: no argument expected, got \"now\""));
	assert_int_equal(run(&out, "wait --url http://127.0.0.1:1 1"), 3);
	assert_int_equal(run(&out, "wait --help"), 0);
	assert_non_null(strstr(out.data, "usage: batchd wait"));
	buf_release(&out);
	server_free(&s);
}

static void test_token_from_env(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "1", "--token", "tok123", NULL };
	struct buf out = BUF_INIT;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	assert_int_equal(run(&out, "status --url %s", s.url), 1);
	assert_non_null(strstr(out.data, "HTTP 401"));
	assert_non_null(strstr(out.data, "give the server's token with --token TOKEN, or in "
					 "$BATCHD_TOKEN\n"));
	assert_int_equal(run(&out, "results --url %s 1", s.url), 1);
	assert_non_null(strstr(out.data, "--token TOKEN, or in $BATCHD_TOKEN"));
	assert_int_equal(run(&out, "wait --url %s 1", s.url), 1);
	assert_non_null(strstr(out.data, "--token TOKEN, or in $BATCHD_TOKEN"));
	assert_int_equal(run(&out, "status --url %s --token tok123", s.url), 0);
	setenv("BATCHD_TOKEN", "tok123", 1);
	setenv("BATCHD_URL", s.url, 1);
	assert_int_equal(run(&out, "status"), 0);
	unsetenv("BATCHD_TOKEN");
	unsetenv("BATCHD_URL");
	buf_release(&out);
	server_free(&s);
}

/* status lists the newest jobs, says when there are more, and pages
 * through the API's cursor for --limit and --all past its 1,000 a page. */
static void test_status_list(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", NULL };
	struct buf out = BUF_INIT;
	const cJSON *jobs, *job;
	int64_t prev = INT64_MAX;
	cJSON *j;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	assert_int_equal(run(&out, "status --url %s", s.url), 0);
	assert_non_null(strstr(out.data, "batchd: no jobs\n"));
	for (int i = 0; i < 1001; i++)
		submit(&s, "{\"handler\": \"noop\", \"tasks\": [null]}");
	submit(&s, "{\"handler\": \"fail\", \"tasks\": [{}]}");
	submit(&s, "{\"handler\": \"fail\", \"tasks\": [{}]}");
	cJSON_Delete(wait_job(&s, 1003, "failed", 60));

	assert_int_equal(run(&out, "status --url %s", s.url), 0);
	assert_int_equal(lines(&out), 1 + 20 + 1);
	assert_non_null(strstr(out.data, "  1003  failed "));
	assert_non_null(strstr(out.data, "batchd: the newest 20 jobs shown; there are more"));
	assert_int_equal(run(&out, "status --url %s --limit 1003", s.url), 0);
	assert_int_equal(lines(&out), 1 + 1003);
	assert_null(strstr(out.data, "there are more"));
	assert_int_equal(run(&out, "status --url %s --limit 1002", s.url), 0);
	assert_int_equal(lines(&out), 1 + 1002 + 1);
	assert_non_null(strstr(out.data, "the newest 1002 jobs shown; there are more"));

	/* --all --json: every job once, newest first, and no next page. */
	assert_int_equal(run(&out, "status --url %s --all --json", s.url), 0);
	j = cJSON_Parse(out.data);
	assert_non_null(j);
	jobs = cJSON_GetObjectItem(j, "jobs");
	assert_int_equal(cJSON_GetArraySize(jobs), 1003);
	cJSON_ArrayForEach(job, jobs) {
		assert_true(jnum(job, "id") < prev);
		prev = jnum(job, "id");
	}
	assert_int_equal(prev, 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "next")));
	cJSON_Delete(j);

	assert_int_equal(run(&out, "status --url %s --state failed", s.url), 0);
	assert_int_equal(lines(&out), 1 + 2);
	assert_int_equal(run(&out, "status --url %s --state failed --limit 1", s.url), 0);
	assert_non_null(strstr(out.data, "  1003  failed "));
	assert_non_null(strstr(out.data, "the newest 1 failed jobs shown; there are more"));
	assert_int_equal(run(&out, "status --url %s --state running", s.url), 0);
	assert_non_null(strstr(out.data, "batchd: no running jobs\n"));

	assert_int_equal(run(&out, "status --url %s --state done", s.url), 2);
	assert_non_null(strstr(out.data, "--state must be queued, running, succeeded"));
	assert_int_equal(run(&out, "status --url %s --limit 0", s.url), 2);
	assert_non_null(strstr(out.data, "--limit: expected a whole number from 1, got \"0\""));
	assert_int_equal(run(&out, "status --url %s --all 3", s.url), 2);
	assert_non_null(strstr(out.data, "are for the list of jobs, not for one job"));
	buf_release(&out);
	server_free(&s);
}


/* A wait outlives the server's crash and restart: it says it lost the
 * server, keeps asking, and ends as the job does. */
static void test_wait_outlives_restart(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "1", NULL };
	char log[450], out[450], listen[64];
	const char *look[2] = { log, "job 1 sleep:" };
	struct child c = { 0, 0 };
	char *text;
	cJSON *j;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	assert_int_equal(submit(&s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 400},"
				    " {\"ms\": 400}, {\"ms\": 400}, {\"ms\": 400}]}"), 1);
	snprintf(log, sizeof(log), "%s/wait.log", s.dir);
	snprintf(out, sizeof(out), "%s/wait.out", s.dir);
	c.pid = spawn_cli(log, out, (const char *[]){ "wait", "--json", "--url", s.url, "1", NULL });
	assert_true(wait_until(file_has, &s, look, 30));
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s.port);
	server_kill(&s);
	look[1] = "batchd: lost the server (";
	assert_true(wait_until(file_has, &s, look, 30));
	look[1] = "job 1 is safe in it, waiting up to 60 s for it to come back";
	assert_true(file_has(&s, look));

	const char *again[] = { "--workers", "1", "--listen", listen, NULL };

	server_start(&s, again);
	assert_true(wait_until(child_exited, &s, &c, 60));
	assert_true(WIFEXITED(c.status));
	assert_int_equal(WEXITSTATUS(c.status), 0);
	look[1] = "batchd: the server is back after ";
	assert_true(file_has(&s, look));
	look[1] = "job 1 succeeded";
	assert_true(file_has(&s, look));
	text = file_text(out);
	assert_non_null(text);
	j = cJSON_Parse(text);
	free(text);
	assert_string_equal(jstr(j, "state"), "succeeded");
	assert_int_equal(jnum(j, "progress.succeeded"), 4);
	cJSON_Delete(j);
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serve_refusals),
		cmocka_unit_test(test_serve_read_only_fs),
		cmocka_unit_test(test_submit_wait_status_cancel),
		cmocka_unit_test(test_submit_inputs),
		cmocka_unit_test(test_results),
		cmocka_unit_test(test_results_output_kinds),
		cmocka_unit_test(test_wait),
		cmocka_unit_test(test_wait_outlives_restart),
		cmocka_unit_test(test_status_list),
		cmocka_unit_test(test_token_from_env),
		cmocka_unit_test(test_not_batchd),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
