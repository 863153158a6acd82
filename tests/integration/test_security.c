/*
 * Integration tests of what an API caller cannot do and what a handler
 * cannot see: the handlers file is the only way to name a program (no
 * shell, no argument injection, no environment from a request), command
 * handlers run with a clean environment, and --user drops root for the
 * server, its workers and their programs.
 */
#include "harness.h"

#include <dirent.h>
#include <grp.h>
#include <signal.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/buf.h"

static const char args_script[] =
	"#!/bin/sh\n"
	"# Writes down its arguments and its input, as it got them.\n"
	"input=$(cat)\n"
	"dir=$(dirname \"$0\")\n"
	"printf '%s\\n' \"$#\" \"$@\" > \"$dir/argv.$BATCHD_TASK\"\n"
	"printf '%s' \"$input\" > \"$dir/stdin.$BATCHD_TASK\"\n"
	"echo null\n";

/* Task inputs reach a command on stdin only, never its command line or a
 * shell; a request cannot name a program, a handler that is not in the
 * handlers file, or anything to run. */
static void test_only_the_handlers_file_names_programs(void **state)
{
	struct server s;
	char script[400], hf[400], text[2048], path[600];
	struct buf body = BUF_INIT;
	cJSON *doc, *tasks;
	const cJSON *t;
	int n = 0;

	(void)state;
	server_init(&s);
	write_file(&s, "args.sh", args_script, 0755, script, sizeof(script));
	snprintf(text, sizeof(text),
		 "{\"handlers\": {\"args\": {\"argv\": [\"%s\", \"--fixed\", \"two words\"]}}}",
		 script);
	write_file(&s, "handlers.json", text, 0644, hf, sizeof(hf));
	const char *args[] = { "--workers", "2", "--handlers", hf, NULL };

	server_start(&s, args);

	/* Inputs that would do harm in a shell or on a command line. */
	buf_addf(&body, "{\"handler\": \"args\", \"tasks\": ["
		 "\"$(touch %s/pwned1)\", \"`touch %s/pwned2`\", \"; touch %s/pwned3\","
		 "\"| touch %s/pwned4 &\", \"--fixed\", \"-c\", \"*\", \"../../../../bin/sh\","
		 "{\"argv\": [\"/bin/sh\", \"-c\", \"touch %s/pwned5\"], \"env\": {\"LD_PRELOAD\": \"x.so\"}},"
		 "\"\\n/bin/sh -c 'touch %s/pwned6'\", [\"/bin/sh\", \"-c\", \"touch %s/pwned7\"]]}",
		 s.dir, s.dir, s.dir, s.dir, s.dir, s.dir, s.dir);
	doc = cJSON_Parse(body.data);
	tasks = cJSON_GetObjectItem(doc, "tasks");
	cJSON_Delete(wait_job(&s, submit(&s, body.data), "succeeded", 60));
	cJSON_ArrayForEach(t, tasks) {
		char *argv_seen, *stdin_seen;
		cJSON *got;

		snprintf(path, sizeof(path), "%s/argv.%d", s.dir, n);
		argv_seen = file_text(path);
		snprintf(path, sizeof(path), "%s/stdin.%d", s.dir, n);
		stdin_seen = file_text(path);
		assert_non_null(argv_seen);
		assert_non_null(stdin_seen);
		/* Exactly the handlers file's arguments... */
		assert_string_equal(argv_seen, "2\n--fixed\ntwo words\n");
		/* ...and the input, whole, on stdin. */
		got = cJSON_Parse(stdin_seen);
		assert_non_null(got);
		assert_true(cJSON_Compare(got, t, 1));
		cJSON_Delete(got);
		free(argv_seen);
		free(stdin_seen);
		n++;
	}
	assert_int_equal(n, 11);
	cJSON_Delete(doc);
	for (int i = 1; i <= 7; i++)
		assert_int_equal(sh("test ! -e '%s/pwned%d'", s.dir, i), 0);

	/* A request cannot name a program or anything else to run. */
	const char *names[] = { "/bin/sh", "sh", "args.sh", "../args", "./args", "args ",
				"args;id", "ARGS", "args\\u0000", "", NULL };
	struct resp r;

	for (int i = 0; names[i]; i++) {
		buf_reset(&body);
		buf_addf(&body, "{\"handler\": \"%s\", \"tasks\": [null]}", names[i]);
		http_request(&s, "POST", "/api/jobs", body.data, NULL, &r);
		if (r.status != 422 && r.status != 400) {
			print_error("handler \"%s\": %ld %s\n", names[i], r.status, r.body);
			fail();
		}
		resp_free(&r);
	}
	const char *fields[] = { "argv", "env", "plugin", "command", "handlers", "cwd", NULL };

	for (int i = 0; fields[i]; i++) {
		buf_reset(&body);
		buf_addf(&body, "{\"handler\": \"args\", \"tasks\": [null], \"%s\": [\"/bin/sh\"]}",
			 fields[i]);
		http_request(&s, "POST", "/api/jobs", body.data, NULL, &r);
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(jstr(r.json, "error.message"), "unknown field"));
		resp_free(&r);
	}
	cJSON *jobs = api(&s, "GET", "/api/jobs", NULL, 200);

	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(jobs, "jobs")), 1);
	cJSON_Delete(jobs);
	buf_release(&body);
	server_free(&s);
}

/* Command handlers see a clean environment: none of batchd's settings
 * (its token least of all) nor anything else of the server's. */
static void test_clean_environment(void **state)
{
	struct server s;
	char hf[400], text[1024], cwd[512];
	cJSON *t;
	const char *env;

	(void)state;
	server_init(&s);
	snprintf(text, sizeof(text),
		 "{\"handlers\": {\"env\": {\"argv\": [\"/usr/bin/env\"], \"env\": {\"EXTRA\": \"x\"}},"
		 " \"pwd\": {\"argv\": [\"/bin/pwd\"]}}}");
	write_file(&s, "handlers.json", text, 0644, hf, sizeof(hf));
	setenv("BATCHD_TOKEN", "s3cret-from-env", 1);
	setenv("SERVER_SECRET", "do-not-pass-on", 1);
	setenv("LD_LIBRARY_PATH", "/nonexistent", 1);
	const char *args[] = { "--workers", "1", "--handlers", hf, NULL };

	server_start(&s, args);
	unsetenv("BATCHD_TOKEN");
	unsetenv("SERVER_SECRET");
	unsetenv("LD_LIBRARY_PATH");
	s.token = "s3cret-from-env";
	cJSON_Delete(wait_job(&s, submit(&s, "{\"handler\": \"env\", \"tasks\": [null]}"),
			      "succeeded", 30));
	t = api(&s, "GET", "/api/jobs/1/tasks/0", NULL, 200);
	env = jstr(t, "result");
	assert_non_null(env);
	print_message("a command's environment: %s\n", env);
	assert_null(strstr(env, "s3cret"));
	assert_null(strstr(env, "SERVER_SECRET"));
	assert_null(strstr(env, "LD_LIBRARY_PATH"));
	/* Exactly these names, each once. */
	const char *names[] = { "PATH=", "HOME=", "LANG=", "EXTRA=x", "BATCHD_PROGRESS_FD=",
				"BATCHD_JOB=1", "BATCHD_TASK=0", "BATCHD_ATTEMPT=1", NULL };
	int lines = 1;

	for (const char *p = env; *p; p++)
		lines += *p == '\n';
	for (int i = 0; names[i]; i++)
		assert_non_null(strstr(env, names[i]));
	assert_int_equal(lines, 8);
	cJSON_Delete(t);

	/* In batchd's working directory. */
	cJSON_Delete(wait_job(&s, submit(&s, "{\"handler\": \"pwd\", \"tasks\": [null]}"),
			      "succeeded", 30));
	t = api(&s, "GET", "/api/jobs/2/tasks/0", NULL, 200);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_string_equal(jstr(t, "result"), cwd);
	cJSON_Delete(t);
	server_free(&s);
}

/* ---- --user ---- */

static char user[32];

static int add_user(void **state)
{
	(void)state;
	snprintf(user, sizeof(user), "bdtest%d", (int)getpid());
	if (getuid() != 0)
		return 0;
	if (sh("useradd --system --no-create-home --user-group --shell /usr/sbin/nologin %s",
	       user)) {
		user[0] = '\0';
	}
	return 0;
}

static struct server user_server;

/* Kills every process left running as the test user (a server that
 * switched to it is no longer killed with the test, since a change of
 * user clears the parent-death signal), then removes the user. */
static int del_user(void **state)
{
	struct passwd *pw = user[0] ? getpwnam(user) : NULL;
	DIR *d;
	struct dirent *e;

	(void)state;
	if (user_server.pid)
		server_kill(&user_server);
	if (user_server.dir[0])
		server_free(&user_server);
	if (!pw)
		return 0;
	d = opendir("/proc");
	while (d && (e = readdir(d))) {
		char path[300], line[256];
		FILE *f;
		pid_t pid = (pid_t)atoi(e->d_name);
		unsigned uid;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Uid: %u", &uid) == 1 && uid == pw->pw_uid)
				kill(pid, SIGKILL);
		fclose(f);
	}
	if (d)
		closedir(d);
	for (int i = 0; i < 100 && sh("userdel %s 2>/dev/null", user); i++)
		usleep(50000);
	return 0;
}

/* The four uids (or gids) in a /proc status line, all equal to want. */
static int ids_are(pid_t pid, const char *field, unsigned want)
{
	char path[64], line[512];
	FILE *f;
	int ok = 0;
	size_t n = strlen(field);

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned a, b, c, d;

		if (!strncmp(line, field, n) && line[n] == ':' &&
		    sscanf(line + n + 1, "%u %u %u %u", &a, &b, &c, &d) == 4)
			ok = a == want && b == want && c == want && d == want;
	}
	fclose(f);
	return ok;
}

static int no_capabilities(pid_t pid)
{
	char path[64], line[512];
	FILE *f;
	int ok = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapEff:", 7))
			ok = strtoull(line + 7, NULL, 16) == 0;
	fclose(f);
	return ok;
}

/* Started as root with --user, batchd binds, then the server, its workers
 * and the programs they start all run as that user, for good. */
static void test_user_drops_root(void **state)
{
	struct server *s = &user_server;
	struct passwd *pw;
	char hf[400], text[1024], cmd[4096];
	struct stat st;
	pid_t kids[16];
	int nkids;
	cJSON *t;

	(void)state;
	if (getuid() != 0 || !user[0]) {
		print_message("skipped: --user needs the test to run as root (with useradd)\n");
		skip();
	}
	pw = getpwnam(user);
	assert_non_null(pw);
	server_init(s);
	/* The user's own directory for the database. */
	assert_int_equal(chown(s->dir, pw->pw_uid, pw->pw_gid), 0);
	snprintf(text, sizeof(text),
		 "{\"handlers\": {\"uid\": {\"argv\": [\"id\", \"-u\"]}, \"gid\": {\"argv\": [\"id\", \"-g\"]},"
		 " \"groups\": {\"argv\": [\"id\", \"-G\"]}}}");
	write_file(s, "handlers.json", text, 0644, hf, sizeof(hf));
	const char *args[] = { "--workers", "2", "--handlers", hf, "--user", user, NULL };

	server_start(s, args);
	assert_true(ids_are(s->pid, "Uid", pw->pw_uid));
	assert_true(ids_are(s->pid, "Gid", pw->pw_gid));
	assert_true(no_capabilities(s->pid));
	nkids = server_children(s, kids, 16);
	assert_int_equal(nkids, 2);
	for (int i = 0; i < nkids; i++) {
		assert_true(ids_are(kids[i], "Uid", pw->pw_uid));
		assert_true(ids_are(kids[i], "Gid", pw->pw_gid));
		assert_true(no_capabilities(kids[i]));
	}
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"uid\", \"tasks\": [null]}"),
			      "succeeded", 30));
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"gid\", \"tasks\": [null]}"),
			      "succeeded", 30));
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"groups\", \"tasks\": [null]}"),
			      "succeeded", 30));
	t = api(s, "GET", "/api/jobs/1/tasks/0", NULL, 200);
	assert_int_equal(jnum(t, "result"), pw->pw_uid);
	cJSON_Delete(t);
	t = api(s, "GET", "/api/jobs/2/tasks/0", NULL, 200);
	assert_int_equal(jnum(t, "result"), pw->pw_gid);
	cJSON_Delete(t);
	/* Root's supplementary groups are gone. */
	t = api(s, "GET", "/api/jobs/3/tasks/0", NULL, 200);
	assert_int_equal(jnum(t, "result"), pw->pw_gid);
	cJSON_Delete(t);
	/* The database is the user's. */
	assert_int_equal(stat(s->db, &st), 0);
	assert_int_equal(st.st_uid, pw->pw_uid);
	snprintf(cmd, sizeof(cmd), " uid=%u", (unsigned)pw->pw_uid);
	assert_true(server_log_has(s, cmd));
	assert_int_equal(server_stop(s), 0);

	/* Refusals, each one line: an unknown user, a database the user
	 * cannot write, a user switch attempted without root. */
	snprintf(cmd, sizeof(cmd), "%s serve --listen 127.0.0.1:0 --db %s/x.db --user no-such-user-here"
		 " > %s/out 2>&1; echo $? >> %s/out", batchd_bin(), s->dir, s->dir, s->dir);
	sh("%s", cmd);
	snprintf(cmd, sizeof(cmd), "%s/out", s->dir);
	char *out = file_text(cmd);

	assert_non_null(strstr(out, "batchd serve: --user no-such-user-here: no such user\n1\n"));
	free(out);
	sh("mkdir -p %s/rootonly && chmod 755 %s/rootonly", s->dir, s->dir);
	sh("%s serve --listen 127.0.0.1:0 --db %s/rootonly/x.db --user %s > %s/out 2>&1; "
	   "echo $? >> %s/out", batchd_bin(), s->dir, user, s->dir, s->dir);
	out = file_text(cmd);
	print_message("%s", out);
	assert_non_null(strstr(out, "/rootonly/x.db: Permission denied\n1\n"));
	assert_ptr_equal(strchr(out, '\n'), strstr(out, "\n1\n"));	/* one line */
	free(out);
	sh("runuser -u %s -- %s serve --listen 127.0.0.1:0 --db %s/y.db --user root > %s/out 2>&1; "
	   "echo $? >> %s/out", user, batchd_bin(), s->dir, s->dir, s->dir);
	out = file_text(cmd);
	assert_non_null(strstr(out, "--user root: batchd must be started as root to switch users\n1\n"));
	free(out);
	server_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_only_the_handlers_file_names_programs),
		cmocka_unit_test(test_clean_environment),
		cmocka_unit_test_setup_teardown(test_user_drops_root, add_user, del_user),
	};

	return cmocka_run_group_tests_name("security", tests, NULL, NULL);
}
