/*
 * The crash-consistency torture test: a 20,000-task job of mixed handlers
 * (fast, slow, failing, flaky, progress-reporting) and smaller jobs
 * submitted and cancelled along the way, while the server is killed with
 * SIGKILL at random moments 20 times and started again each time. At the
 * end every task is final with its result recorded once, every job's counts
 * equal a fresh count of its tasks, nothing acknowledged is missing, no job
 * is stuck, and SQLite's integrity_check says ok.
 *
 * The seed is printed; BATCHD_SEED=N replays a run.
 */
#include "harness.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/buf.h"

#define PLUGIN "build/asan/tests/plugins/testhandlers.so"
#define TASKS 20000
#define KILLS 20
#define EXTRA_MAX 64

enum op { OP_ECHO, OP_SLEEP, OP_FAIL, OP_FLAKY };

struct extra {
	int64_t id;
	int tasks;
	int cancelled;		/* a cancel was acknowledged */
};

struct torture {
	unsigned seed;
	enum op ops[TASKS];
	struct extra extra[EXTRA_MAX];
	int nextra;
};

static double rand01(void)
{
	return (double)rand() / ((double)RAND_MAX + 1);
}

static void nap(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

static char *big_job(struct torture *t)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "{\"handler\": \"mixed\", \"name\": \"torture\", \"max_attempts\": 3, \"tasks\": [");
	for (int i = 0; i < TASKS; i++) {
		double r = rand01();

		if (i)
			buf_addc(&b, ',');
		if (r < 0.04) {
			t->ops[i] = OP_SLEEP;
			buf_addf(&b, "{\"op\":\"sleep\",\"i\":%d,\"ms\":%d,\"steps\":3}", i,
				 30 + rand() % 60);
		} else if (r < 0.07) {
			t->ops[i] = OP_FAIL;
			buf_addf(&b, "{\"op\":\"fail\",\"i\":%d}", i);
		} else if (r < 0.12) {
			t->ops[i] = OP_FLAKY;
			buf_addf(&b, "{\"op\":\"flaky\",\"i\":%d}", i);
		} else {
			t->ops[i] = OP_ECHO;
			buf_addf(&b, "{\"op\":\"echo\",\"i\":%d,\"text\":\"task %d of the torture\"}",
				 i, i);
		}
	}
	buf_adds(&b, "]}");
	return buf_detach(&b, NULL);
}

/* Submits a small echo job, cancelling one in three, while the server may
 * die at any moment: only what was acknowledged is written down to out,
 * as "id tasks cancelled". */
static void submit_extra(const struct server *s, int n_job, FILE *out)
{
	struct buf b = BUF_INIT;
	struct resp r;
	int n = 1 + rand() % 20, cancelled = 0;
	int64_t id;

	buf_addf(&b, "{\"handler\": \"echo\", \"name\": \"extra\", \"tasks\": [");
	for (int i = 0; i < n; i++)
		buf_addf(&b, "%s{\"extra\":%d,\"i\":%d}", i ? "," : "", n_job, i);
	buf_adds(&b, "]}");
	http_request(s, "POST", "/api/jobs", b.data, NULL, &r);
	buf_release(&b);
	if (r.status != 201) {
		resp_free(&r);
		return;
	}
	id = (int64_t)jnum(r.json, "id");
	resp_free(&r);
	if (rand() % 3 == 0) {
		char path[64];

		snprintf(path, sizeof(path), "/api/jobs/%lld/cancel", (long long)id);
		http_request(s, "POST", path, NULL, NULL, &r);
		cancelled = r.status == 200;
		resp_free(&r);
	}
	fprintf(out, "%lld %d %d\n", (long long)id, n, cancelled);
	fflush(out);
}

/* A client of its own, submitting until told to stop: its requests meet
 * the kills at any point, in the middle of a request too. */
static pid_t start_client(const struct server *s, unsigned seed, const char *path)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	FILE *out = fopen(path, "w");

	srand(seed);
	for (int n = 0; n < EXTRA_MAX && out; n++) {
		submit_extra(s, n, out);
		nap(0.05 + 0.3 * rand01());
	}
	for (;;)
		pause();
}

static void read_extras(struct torture *t, const char *path)
{
	FILE *f = fopen(path, "r");
	long long id;
	int n, c;

	assert_non_null(f);
	while (t->nextra < EXTRA_MAX && fscanf(f, "%lld %d %d", &id, &n, &c) == 3) {
		t->extra[t->nextra].id = id;
		t->extra[t->nextra].tasks = n;
		t->extra[t->nextra].cancelled = c;
		t->nextra++;
	}
	fclose(f);
}

static int all_final(const struct server *s, void *ctx)
{
	cJSON *j = api(s, "GET", "/api/progress", NULL, 200);
	int done = jnum(j, "totals.jobs.queued") + jnum(j, "totals.jobs.running") == 0;

	(void)ctx;
	cJSON_Delete(j);
	return done;
}

/* ---- checks on the database file itself ---- */

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		fail_msg("cannot open %s: %s", path, sqlite3_errmsg(db));
	return db;
}

static int64_t one_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void check_integrity(sqlite3 *db)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
}

/* Every job final, its counts equal to a fresh count of its tasks, one row
 * per task. Returns the number of jobs. */
static int check_counts(sqlite3 *db)
{
	sqlite3_stmt *st;
	int jobs = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT j.id, j.state, j.total, j.succeeded, j.failed, j.cancelled,"
		" (SELECT count(*) FROM tasks t WHERE t.job_id = j.id),"
		" (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 2),"
		" (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 3),"
		" (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 4)"
		" FROM jobs j ORDER BY j.id", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t v[10];

		for (int i = 0; i < 10; i++)
			v[i] = sqlite3_column_int64(st, i);
		if (v[1] < 2 || v[2] != v[6] || v[3] != v[7] || v[4] != v[8] || v[5] != v[9] ||
		    v[7] + v[8] + v[9] != v[2]) {
			print_error("job %lld: state %lld, counts total %lld succeeded %lld failed %lld"
				    " cancelled %lld; tasks %lld: %lld %lld %lld\n",
				    (long long)v[0], (long long)v[1], (long long)v[2], (long long)v[3],
				    (long long)v[4], (long long)v[5], (long long)v[6], (long long)v[7],
				    (long long)v[8], (long long)v[9]);
			fail();
		}
		jobs++;
	}
	sqlite3_finalize(st);
	return jobs;
}

/* The torture job's tasks: each in the state its op leads to, with the
 * attempts it takes when no interrupted attempt is counted, and a result
 * equal to its input. */
static void check_torture_tasks(sqlite3 *db, const struct torture *t)
{
	sqlite3_stmt *st;
	int n = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT idx, state, attempts, input, result, error FROM tasks"
		" WHERE job_id = 1 ORDER BY idx", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int idx = sqlite3_column_int(st, 0), state = sqlite3_column_int(st, 1);
		int attempts = sqlite3_column_int(st, 2);
		const char *input = (const char *)sqlite3_column_text(st, 3);
		const char *result = (const char *)sqlite3_column_text(st, 4);
		const char *error = (const char *)sqlite3_column_text(st, 5);
		int ok;

		assert_int_equal(idx, n);
		switch (t->ops[idx]) {
		case OP_FAIL:
			ok = state == 3 && attempts == 3 && error && !strcmp(error, "planned failure") &&
			     !result;
			break;
		case OP_FLAKY:
			ok = state == 2 && attempts == 2 && result && !strcmp(result, input);
			break;
		default:
			ok = state == 2 && attempts == 1 && result && !strcmp(result, input);
			break;
		}
		if (!ok) {
			print_error("task %d (op %d): state %d, attempts %d, input %s, result %s, error %s\n",
				    idx, t->ops[idx], state, attempts, input, result ? result : "NULL",
				    error ? error : "NULL");
			fail();
		}
		n++;
	}
	sqlite3_finalize(st);
	assert_int_equal(n, TASKS);
}

static void check_extras(sqlite3 *db, const struct torture *t)
{
	for (int i = 0; i < t->nextra; i++) {
		const struct extra *e = &t->extra[i];
		char sql[256];
		int64_t state, ok_tasks;

		snprintf(sql, sizeof(sql), "SELECT state FROM jobs WHERE id = %lld", (long long)e->id);
		state = one_int(db, sql);
		/* Acknowledged: it exists, finished. */
		if (state < 0)
			fail_msg("acknowledged job %lld is missing", (long long)e->id);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM tasks WHERE job_id = %lld AND"
			 " ((state = 2 AND result = input) OR state = 4)", (long long)e->id);
		ok_tasks = one_int(db, sql);
		assert_int_equal(ok_tasks, e->tasks);
		if (e->cancelled)
			assert_int_equal(state, 4);
		else
			assert_int_equal(state, 2);
	}
}

static void test_torture(void **state)
{
	struct torture *t = calloc(1, sizeof(*t));
	const char *env = getenv("BATCHD_SEED");
	struct server s;
	char hf[400], text[1024], cwd[512];
	double start = now_s(), alive = 0;
	sqlite3 *db;
	char *body;
	int jobs;
	pid_t client;
	cJSON *j;

	(void)state;
	t->seed = env && *env ? (unsigned)strtoul(env, NULL, 10) :
		  (unsigned)time(NULL) ^ (unsigned)getpid();
	print_message("seed %u (BATCHD_SEED=%u replays it)\n", t->seed, t->seed);
	srand(t->seed);

	server_init(&s);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(text, sizeof(text), "{\"handlers\": {\"mixed\": {\"plugin\": \"%s/" PLUGIN "\","
		 " \"config\": {\"mode\": \"mixed\"}}}}", cwd);
	write_file(&s, "handlers.json", text, 0644, hf, sizeof(hf));
	const char *args[] = { "--workers", "2", "--handlers", hf, NULL };

	server_start(&s, args);
	body = big_job(t);
	assert_int_equal(submit(&s, body), 1);
	free(body);
	/* From now on on the same port, for the client. */
	char listen[64], acked[400];

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s.port);
	const char *again[] = { "--workers", "2", "--handlers", hf, "--listen", listen, NULL };
	struct buf seen = BUF_INIT;

	snprintf(acked, sizeof(acked), "%s/acknowledged", s.dir);
	client = start_client(&s, t->seed + 1, acked);
	for (int k = 0; k < KILLS; k++) {
		/* A random moment: from right after start-up to 1.5 s in. */
		double life = 0.05 + 1.45 * rand01(), born = now_s();

		nap(life);
		alive += now_s() - born;
		j = api(&s, "GET", "/api/jobs/1", NULL, 200);
		buf_addf(&seen, "%s%d", k ? " " : "",
			 (int)(jnum(j, "progress.succeeded") + jnum(j, "progress.failed")));
		cJSON_Delete(j);
		server_kill(&s);
		server_start(&s, again);
	}
	kill(client, SIGKILL);
	waitpid(client, NULL, 0);
	read_extras(t, acked);

	assert_true(wait_until(all_final, &s, NULL, 300));
	print_message("tasks of the job finished at each kill: %s\n", seen.data);
	buf_release(&seen);
	j = api(&s, "GET", "/api/jobs/1", NULL, 200);

	print_message("%d SIGKILLs, %d extra jobs (%.0f s alive between kills); the job: %d "
		      "succeeded, %d failed, all final %.0f s after the start\n", KILLS, t->nextra,
		      alive, (int)jnum(j, "progress.succeeded"), (int)jnum(j, "progress.failed"),
		      now_s() - start);
	cJSON_Delete(j);
	assert_int_equal(server_stop(&s), 0);

	db = open_db(s.db);
	check_integrity(db);
	jobs = check_counts(db);
	assert_int_equal(jobs, 1 + t->nextra);
	check_torture_tasks(db, t);
	check_extras(db, t);
	sqlite3_close(db);
	server_free(&s);
	free(t);
}

/* A cancel answered 200 holds after a crash right after the answer, and
 * so does a retry: they are committed before they are acknowledged. The
 * server is kept busy with tiny tasks, so that its group transaction
 * stays open between commits. */
static void test_acknowledged_cancel_survives_kill(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", NULL };
	struct buf busy = BUF_INIT;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	/* (Under valgrind a million take longer to insert than a request
	 * may.) */
	int n = strstr(batchd_bin(), "valgrind") ? 50000 : 1000000;

	buf_adds(&busy, "{\"handler\": \"noop\", \"tasks\": [0");
	for (int i = 1; i < n; i++)
		buf_adds(&busy, ",0");
	buf_adds(&busy, "]}");
	submit(&s, busy.data);
	buf_release(&busy);
	for (int round = 0; round < 6; round++) {
		int64_t id = submit(&s, "{\"handler\": \"sleep\", \"priority\": -1, "
				    "\"tasks\": [{\"ms\": 60000}, {\"ms\": 60000}]}");
		cJSON *j;

		cJSON_Delete(apif(&s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
		server_kill(&s);
		server_start(&s, args);
		j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
		assert_string_equal(jstr(j, "state"), "cancelled");
		cJSON_Delete(j);
		/* Retried, then killed at once: its tasks are queued again. */
		cJSON_Delete(apif(&s, "POST", 200, NULL, "/api/jobs/%lld/retry", (long long)id));
		server_kill(&s);
		server_start(&s, args);
		j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
		assert_string_not_equal(jstr(j, "state"), "cancelled");
		assert_int_equal(jnum(j, "progress.cancelled"), 0);
		cJSON_Delete(j);
		cJSON_Delete(apif(&s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	}
	cJSON_Delete(apif(&s, "POST", 200, NULL, "/api/jobs/1/cancel"));
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acknowledged_cancel_survives_kill),
		cmocka_unit_test(test_torture),
	};

	return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
