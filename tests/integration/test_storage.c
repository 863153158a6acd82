/*
 * Integration tests of storage faults while serving: the database's file
 * system fills up under running work. Submissions are refused with 507 and
 * a clear error, the server stays up, nothing is corrupted, and once space
 * is freed it carries on by itself.
 *
 * The file system is a small tmpfs the test mounts (as root; skipped with
 * a message otherwise).
 *
 * And --keep-finished: finished jobs past that age are deleted with their
 * tasks, active ones never, whatever their age.
 *
 * And the checkpointer: the WAL is copied back into the database by a
 * process of the server's own, not by its thread.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/buf.h"

struct fixture {
	struct server s;
	char mnt[300];
	int mounted;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	server_init(&f->s);
	snprintf(f->mnt, sizeof(f->mnt), "%s/disk", f->s.dir);
	f->mounted = mount_tmpfs(f->mnt, "size=16m") == 0;
	*state = f;
	return 0;
}

/* Stops the server and unmounts, whatever happened in the test. */
static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->s.pid)
		server_kill(&f->s);
	if (f->mounted)
		unmount(f->mnt);
	server_free(&f->s);
	free(f);
	return 0;
}

/* Fills the file system with a ballast file until it is full. */
static int64_t fill(const char *path)
{
	static char chunk[16384];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int64_t n = 0;

	assert_true(fd >= 0);
	memset(chunk, 'b', sizeof(chunk));
	for (size_t size = sizeof(chunk); size >= 512;) {
		ssize_t w = write(fd, chunk, size);

		if (w > 0)
			n += w;
		else if (errno == ENOSPC)
			size /= 2;
		else
			break;
	}
	close(fd);
	return n;
}

static char *job_body(int tasks, int pad)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "{\"handler\": \"echo\", \"tasks\": [");
	for (int i = 0; i < tasks; i++)
		buf_addf(&b, "%s{\"i\": %d, \"pad\": \"%0*d\"}", i ? "," : "", i, pad, 0);
	buf_adds(&b, "]}");
	return buf_detach(&b, NULL);
}

static int job_count(const struct server *s)
{
	cJSON *j = api(s, "GET", "/api/jobs?limit=1000", NULL, 200);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs"));

	cJSON_Delete(j);
	return n;
}

struct recover {
	const char *body;
	int64_t id;
};

/* Tries the submission until it is accepted. */
static int accepted(const struct server *s, void *ctx)
{
	struct recover *r = ctx;
	struct resp resp;

	http_request(s, "POST", "/api/jobs", r->body, NULL, &resp);
	if (resp.status == 201)
		r->id = (int64_t)jnum(resp.json, "id");
	else if (resp.status != 507 && resp.status != 500)
		fail_msg("while recovering: HTTP %ld %s", resp.status, resp.body);
	resp_free(&resp);
	return r->id > 0;
}

static long metric(const struct server *s, const char *name);

static void test_disk_full(void **state)
{
	struct fixture *f = *state;
	struct server *s = &f->s;
	char ballast[400];
	struct buf sleepy = BUF_INIT;
	struct resp r;
	struct recover rec = { 0 };
	int64_t running, filled;
	char *big;
	int refused = 0;
	sqlite3 *db;
	sqlite3_stmt *st;

	if (!f->mounted) {
		print_message("skipped: cannot mount a tmpfs here (needs root)\n");
		skip();
	}
	snprintf(s->db, sizeof(s->db), "%s/batchd.db", f->mnt);
	snprintf(ballast, sizeof(ballast), "%s/ballast", f->mnt);
	const char *args[] = { "--workers", "2", NULL };

	server_start(s, args);
	/* Work running when the disk fills: progress, results, retries. */
	buf_adds(&sleepy, "{\"handler\": \"sleep\", \"max_attempts\": 2, \"tasks\": [");
	for (int i = 0; i < 300; i++)
		buf_addf(&sleepy, "%s{\"ms\": 20, \"steps\": 2}", i ? "," : "");
	buf_adds(&sleepy, "]}");
	running = submit(s, sleepy.data);
	buf_release(&sleepy);
	cJSON_Delete(wait_job(s, running, "running", 30));

	filled = fill(ballast);
	print_message("disk filled with a %lld KiB ballast\n", (long long)(filled >> 10));

	/* A submission needs room: refused with 507 and a clear error, and
	 * nothing of it is written. */
	big = job_body(2000, 200);
	for (int i = 0; i < 5 && !refused; i++) {
		http_request(s, "POST", "/api/jobs", big, NULL, &r);
		if (r.status == 507) {
			assert_string_equal(jstr(r.json, "error.code"), "storage_full");
			assert_non_null(strstr(jstr(r.json, "error.message"), "disk is full"));
			refused = 1;
		} else {
			assert_int_equal(r.status, 201);	/* it fit after all */
		}
		resp_free(&r);
	}
	assert_true(refused);
	int jobs_when_full = job_count(s);

	/* The server stays up and answers, full disk or not. */
	for (int i = 0; i < 20; i++) {
		cJSON_Delete(api(s, "GET", "/healthz", NULL, 200));
		cJSON_Delete(api(s, "GET", "/api/progress", NULL, 200));
		usleep(50000);
	}
	assert_int_equal(job_count(s), jobs_when_full);
	/* The running work met the full disk: its writes failed and were rolled
	 * back, and the jobs reloaded from the database. */
	assert_true(server_log_has(s, "reloading jobs from the database"));

	/* Space comes back: it carries on by itself. */
	assert_int_equal(unlink(ballast), 0);
	rec.body = big;
	assert_true(wait_until(accepted, s, &rec, 30));
	cJSON_Delete(wait_job(s, rec.id, "succeeded", 60));
	cJSON *j = wait_job(s, running, "succeeded|failed", 120);

	assert_int_equal(jnum(j, "progress.succeeded") + jnum(j, "progress.failed"), 300);
	print_message("after the disk was freed: the running job %s (%d succeeded)\n",
		      jstr(j, "state"), (int)jnum(j, "progress.succeeded"));
	/* The tasks counted are those the database holds as ended: not once
	 * more for each time a write failed and they ran again. */
	assert_int_equal(metric(s, "batchd_tasks_total{handler=\"sleep\",state=\"succeeded\"}"),
			 (long)jnum(j, "progress.succeeded"));
	assert_int_equal(metric(s, "batchd_tasks_total{handler=\"sleep\",state=\"failed\"}"),
			 (long)jnum(j, "progress.failed"));
	cJSON_Delete(j);
	free(big);
	assert_int_equal(server_stop(s), 0);

	/* Nothing corrupted; every job's counts match its tasks. */
	assert_int_equal(sqlite3_open_v2(s->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT count(*) FROM jobs j WHERE state < 2 OR succeeded + failed + cancelled != total"
		" OR succeeded != (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 2)"
		" OR failed != (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 3)",
		-1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int gone(const struct server *s, void *ctx)
{
	char path[64];
	struct resp r;
	long status;

	snprintf(path, sizeof(path), "/api/jobs/%lld", (long long)*(int64_t *)ctx);
	http_request(s, "GET", path, NULL, NULL, &r);
	status = r.status;
	resp_free(&r);
	if (status != 200 && status != 404)
		fail_msg("GET %s: HTTP %ld", path, status);
	return status == 404;
}

/* The job's tasks in state (any state when -1), read from the file by a
 * connection of the test's own. */
static int tasks_in(const struct server *s, int64_t id, int state)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = -1;

	assert_int_equal(sqlite3_open_v2(s->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM tasks"
					    " WHERE job_id = ?1 AND (?2 < 0 OR state = ?2)",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, state);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Rows of job id in the database. */
static int task_rows(const struct server *s, int64_t id)
{
	return tasks_in(s, id, -1);
}

/* The value of a series of /metrics ("name{labels}"), or -1 when missing. */
static long metric(const struct server *s, const char *name)
{
	char series[128];
	struct resp r;
	const char *p;
	long n = -1;

	snprintf(series, sizeof(series), "\n%s ", name);
	http_request(s, "GET", "/metrics", NULL, NULL, &r);
	p = r.body ? strstr(r.body, series) : NULL;
	if (p)
		n = strtol(p + strlen(series), NULL, 10);
	resp_free(&r);
	return n;
}

/* batchd_db_checkpoints_total{by="<by>"}, or -1 when missing. */
static long checkpoints(const struct server *s, const char *by)
{
	char series[96];

	snprintf(series, sizeof(series), "batchd_db_checkpoints_total{by=\"%s\"}", by);
	return metric(s, series);
}

static int logged(const struct server *s, void *ctx)
{
	return server_log_has(s, ctx);
}

/* Runs one job of n noop tasks to its end; returns its id. */
static int64_t run_noop(const struct server *s, int n)
{
	struct buf b = BUF_INIT;
	int64_t id;

	buf_adds(&b, "{\"handler\": \"noop\", \"tasks\": [");
	for (int i = 0; i < n; i++)
		buf_adds(&b, i ? ",0" : "0");
	buf_adds(&b, "]}");
	id = submit(s, b.data);
	buf_release(&b);
	cJSON_Delete(wait_job(s, id, "succeeded", 180));
	return id;
}

static long syncs(const struct server *s)
{
	return metric(s, "batchd_db_syncs_total");
}

static int synced_past(const struct server *s, void *ctx)
{
	return syncs(s) > *(long *)ctx;
}

/* What is committed reaches the disk within a second: after a job, the
 * WAL is synced; once idle, nothing is committed and nothing synced. With
 * --sync commit, each commit is. */
static void test_syncs(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "1", NULL };
	const char *commit_args[] = { "--workers", "1", "--sync", "commit", NULL };
	long before, n, last = -1;
	double since = 0;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	before = syncs(&s);
	assert_true(before >= 0);
	run_noop(&s, 10);
	assert_true(wait_until(synced_past, &s, &before, 10));
	/* Idle: the count settles, for longer than a sync's second. */
	for (double deadline = now_s() + 15;; usleep(100000)) {
		n = syncs(&s);
		if (n != last) {
			last = n;
			since = now_s();
		} else if (now_s() - since > 1.5) {
			break;
		}
		assert_true(now_s() < deadline);
	}
	print_message("WAL syncs: %ld before the job, %ld once idle\n", before, last);
	assert_true(last <= before + 3);
	assert_true(server_log_has(&s, "msg=listening ") && server_log_has(&s, " sync=second"));
	server_free(&s);

	/* --sync commit: SQLite syncs each commit itself, so the loop has
	 * none left to do. */
	server_init(&s);
	server_start(&s, commit_args);
	assert_true(server_log_has(&s, " sync=commit"));
	run_noop(&s, 10);
	assert_int_equal(syncs(&s), 0);
	server_free(&s);
}

/*
 * 100,000 tasks write some 2,000 pages of WAL. They are copied into the
 * database by the checkpointer, never by the server; a checkpointer that
 * is killed is replaced when the WAL next grows, and a clean stop ends it
 * and leaves the database whole, without a WAL.
 */
static void test_checkpointer(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", NULL };
	char wal[400];
	struct stat st;
	int64_t id;
	pid_t first, next = 0;
	long done;
	double deadline;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	assert_int_equal(server_checkpointer(&s), 0);	/* none until needed */
	id = run_noop(&s, 100000);
	first = server_checkpointer(&s);
	assert_true(first > 0);
	done = checkpoints(&s, "checkpointer");
	assert_true(done > 0);
	assert_int_equal(checkpoints(&s, "server"), 0);
	/* The work is in the database file itself, not only in the WAL. */
	assert_int_equal(stat(s.db, &st), 0);
	assert_true(st.st_size > 1000000);

	assert_int_equal(kill(first, SIGKILL), 0);
	assert_true(wait_until(logged, &s, "checkpointer ended", 30));
	/* Replaced once the WAL is long again (and a second has passed). */
	deadline = now_s() + 120;
	while (!next && now_s() < deadline) {
		run_noop(&s, 30000);
		next = server_checkpointer(&s);
	}
	assert_true(next > 0 && next != first);
	assert_true(checkpoints(&s, "checkpointer") > done);

	assert_int_equal(server_stop(&s), 0);
	assert_false(pid_alive(next));
	snprintf(wal, sizeof(wal), "%s-wal", s.db);
	assert_int_equal(stat(wal, &st), -1);
	assert_int_equal(tasks_in(&s, id, 2), 100000);	/* ST_SUCCEEDED */
	server_free(&s);
}

/*
 * A server whose binary was removed since it started (an upgrade in place
 * does that) starts no other binary as its checkpointer: it says so, and
 * checkpoints by itself.
 */
static void test_checkpointer_binary_gone(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", NULL };
	char copy[400], wal[400], head[4] = { 0 }, *was = NULL;
	FILE *f = fopen(batchd_bin(), "rb");
	struct stat st;

	(void)state;
	if (!f || fread(head, 1, 4, f) != 4 || memcmp(head, "\x7f" "ELF", 4)) {
		if (f)
			fclose(f);
		printf("skipped: %s is not the batchd binary itself\n", batchd_bin());
		return;
	}
	fclose(f);
	server_init(&s);
	snprintf(copy, sizeof(copy), "%s/batchd", s.dir);
	assert_int_equal(sh("cp '%s' '%s'", batchd_bin(), copy), 0);
	if (getenv("BATCHD_BIN"))
		was = strdup(getenv("BATCHD_BIN"));
	setenv("BATCHD_BIN", copy, 1);
	server_start(&s, args);
	if (was)
		setenv("BATCHD_BIN", was, 1);
	else
		unsetenv("BATCHD_BIN");
	free(was);
	assert_int_equal(unlink(copy), 0);

	run_noop(&s, 100000);
	assert_int_equal(server_checkpointer(&s), 0);
	assert_int_equal(checkpoints(&s, "checkpointer"), 0);
	assert_true(checkpoints(&s, "server") > 0);
	assert_true(server_log_has(&s, "no checkpointer: the batchd binary was replaced"));
	assert_int_equal(server_stop(&s), 0);
	snprintf(wal, sizeof(wal), "%s-wal", s.db);
	assert_int_equal(stat(wal, &st), -1);
	server_free(&s);
}

static void test_keep_finished(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", "--keep-finished", "3s", NULL };
	int64_t done1, done2, slow, quick;
	double finished;
	struct resp r;
	cJSON *j;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	done1 = submit(&s, "{\"handler\": \"echo\", \"tasks\": [1, 2, 3]}");
	done2 = submit(&s, "{\"handler\": \"fail\", \"tasks\": [{}, {}]}");
	cJSON_Delete(wait_job(&s, done1, "succeeded", 30));
	cJSON_Delete(wait_job(&s, done2, "failed", 30));
	finished = now_s();
	/* Running for longer than the age kept: active, so never expired. */
	slow = submit(&s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 6000, \"steps\": 6}]}");
	assert_int_equal(task_rows(&s, done1), 3);

	assert_true(wait_until(gone, &s, &done1, 30));
	assert_true(now_s() - finished > 2);	/* not before its time */
	assert_true(wait_until(gone, &s, &done2, 5));
	assert_int_equal(task_rows(&s, done1), 0);
	assert_int_equal(task_rows(&s, done2), 0);
	assert_true(server_log_has(&s, "job expired"));
	j = api(&s, "GET", "/api/jobs/3", NULL, 200);
	assert_int_equal(jnum(j, "id"), slow);
	assert_string_equal(jstr(j, "state"), "running");
	cJSON_Delete(j);
	http_request(&s, "GET", "/metrics", NULL, NULL, &r);
	assert_non_null(strstr(r.body, "\nbatchd_jobs_expired_total 2\n"));
	resp_free(&r);

	/* Once it finishes, its turn comes; a job just finished is kept. */
	cJSON_Delete(wait_job(&s, slow, "succeeded", 60));
	assert_true(wait_until(gone, &s, &slow, 30));
	assert_int_equal(task_rows(&s, slow), 0);
	quick = submit(&s, "{\"handler\": \"echo\", \"tasks\": [1]}");
	cJSON_Delete(wait_job(&s, quick, "succeeded", 30));
	assert_false(gone(&s, &quick));
	assert_int_equal(task_rows(&s, quick), 1);
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test(test_keep_finished),
		cmocka_unit_test(test_syncs),
		cmocka_unit_test(test_checkpointer),
		cmocka_unit_test(test_checkpointer_binary_gone),
	};

	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
