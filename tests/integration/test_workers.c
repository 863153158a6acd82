/*
 * Integration tests of the worker pool under attrition: workers SIGKILLed
 * at random in the middle of a job, workers recycled after N tasks,
 * workers held to a memory limit (a task that runs away, a handler that
 * leaks on every task), and the server's descriptors over 10,000 tasks.
 */
#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/buf.h"

#define PLUGIN "build/asan/tests/plugins/testhandlers.so"

static unsigned seed_from_env(void)
{
	const char *e = getenv("BATCHD_SEED");
	unsigned seed = e && *e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();

	print_message("seed %u (BATCHD_SEED=%u replays it)\n", seed, seed);
	return seed;
}

/* Writes a handlers file with the test plugin in the given modes and
 * returns its path in out. */
static const char *plugin_handlers(struct server *s, char *out, size_t len)
{
	char text[4096], cwd[512];

	if (!getcwd(cwd, sizeof(cwd)))
		fail_msg("getcwd");
	snprintf(text, sizeof(text),
		 "{\"handlers\": {"
		 "\"mixed\": {\"plugin\": \"%s/" PLUGIN "\", \"config\": {\"mode\": \"mixed\"}},"
		 "\"leak\": {\"plugin\": \"%s/" PLUGIN "\", \"config\": {\"mode\": \"leak\"}},"
		 "\"hog\": {\"plugin\": \"%s/" PLUGIN "\", \"config\": {\"mode\": \"hog\"}},"
		 "\"bigcmd\": {\"argv\": [\"python3\", \"-c\", \"import time; b = bytearray(300 << 20); time.sleep(30)\"]}"
		 "}}", cwd, cwd, cwd);
	return write_file(s, "handlers.json", text, 0644, out, len);
}

struct pool_state {
	int n;
	int ids[64];
	int pids[64];
	int ready;		/* slots with a worker that said hello */
	int busy[64];
};

static void pool_state(const struct server *s, struct pool_state *ps)
{
	cJSON *j = api(s, "GET", "/api/workers", NULL, 200);
	const cJSON *w;

	memset(ps, 0, sizeof(*ps));
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "workers")) {
		const cJSON *id = cJSON_GetObjectItem(w, "id");
		const char *st = jstr(w, "state");

		ps->ids[ps->n] = cJSON_IsNumber(id) ? id->valueint : 0;
		ps->pids[ps->n] = cJSON_IsNumber(cJSON_GetObjectItem(w, "pid")) ?
			(int)jnum(w, "pid") : 0;
		ps->busy[ps->n] = st && !strcmp(st, "busy");
		ps->ready += st && (!strcmp(st, "idle") || !strcmp(st, "busy"));
		ps->n++;
	}
	cJSON_Delete(j);
}

static int log_count(const struct server *s, const char *text)
{
	FILE *f = fopen(s->log, "r");
	char line[8192];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* Sums attempts and counts failed tasks of a job, page by page. */
static void job_attempts(const struct server *s, int64_t id, int64_t total, int64_t *attempts,
			 int64_t *failed, const char *want_error)
{
	*attempts = 0;
	*failed = 0;
	for (int64_t off = 0; off < total; off += 1000) {
		cJSON *j = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks?offset=%lld&limit=1000",
				(long long)id, (long long)off);
		const cJSON *t;

		cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
			const char *st = jstr(t, "state");

			assert_true(!strcmp(st, "succeeded") || !strcmp(st, "failed"));
			*attempts += (int64_t)jnum(t, "attempts");
			if (!strcmp(st, "failed")) {
				(*failed)++;
				if (want_error && !strstr(jstr(t, "error"), want_error))
					fail_msg("task %d failed with \"%s\"", (int)jnum(t, "index"),
						 jstr(t, "error"));
			}
		}
		cJSON_Delete(j);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Workers SIGKILLed at random during a job: every attempt they were running
 * fails (and is retried), none is lost, and the pool is back to full
 * strength quickly each time. */
static void test_random_worker_kills(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "4", NULL };
	unsigned seed = seed_from_env();
	struct buf body = BUF_INIT;
	double back[20];
	int kills = 0;
	int64_t id, attempts, failed;

	(void)state;
	srand(seed);
	server_init(&s);
	server_start(&s, args);
	buf_adds(&body, "{\"handler\": \"sleep\", \"max_attempts\": 5, \"tasks\": [");
	for (int i = 0; i < 400; i++)
		buf_addf(&body, "%s{\"ms\": %d}", i ? "," : "", 20 + rand() % 40);
	buf_adds(&body, "]}");
	id = submit(&s, body.data);
	buf_release(&body);

	while (kills < 20) {
		struct pool_state ps;
		int victims[64], nv = 0, slot, pid;
		double t0;

		pool_state(&s, &ps);
		for (int i = 0; i < ps.n; i++)
			if (ps.busy[i])
				victims[nv++] = i;
		if (!nv) {
			usleep(5000);
			continue;
		}
		slot = victims[rand() % nv];
		pid = ps.pids[slot];
		usleep((useconds_t)(rand() % 20000));
		t0 = now_s();
		kill(pid, SIGKILL);
		/* Back to full strength: every slot holds a worker that said
		 * hello, the killed one replaced. */
		for (;;) {
			int replaced;

			pool_state(&s, &ps);
			replaced = ps.pids[slot] && ps.pids[slot] != pid;
			if (replaced && ps.ready == ps.n)
				break;
			if (now_s() - t0 > 30)
				fail_msg("pool not back to full strength 30 s after a kill");
		}
		back[kills++] = now_s() - t0;
	}
	cJSON_Delete(wait_job(&s, id, "succeeded|failed", 120));
	qsort(back, (size_t)kills, sizeof(back[0]), cmp_double);
	print_message("20 workers killed: pool back to full strength in %.1f ms median, "
		      "%.1f ms worst\n", back[kills / 2] * 1000, back[kills - 1] * 1000);
	assert_true(back[kills - 1] < 1.0);

	/* Every kill that hit a running attempt is an attempt counted:
	 * retried (attempts - 1 over the job) or, out of attempts, failed. */
	job_attempts(&s, id, 400, &attempts, &failed, "killed by signal 9 (SIGKILL)");
	int hits = log_count(&s, "msg=\"worker died\"");

	print_message("%d kills hit a running attempt; %lld retried, %lld failed\n", hits,
		      (long long)(attempts - 400), (long long)failed);
	assert_true(hits >= 1 && hits <= kills);
	assert_int_equal(attempts - 400 + failed, hits);
	server_free(&s);
}

/* --max-tasks-per-worker: a worker is replaced after N tasks, without
 * failing any, for slow tasks and for tiny prefetched ones. */
static void test_max_tasks_per_worker(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", "--max-tasks-per-worker", "10", NULL };
	struct buf body = BUF_INIT;
	cJSON *j;
	const cJSON *t;
	int pids[64], npids = 0;
	int64_t id;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	buf_adds(&body, "{\"handler\": \"counter\", \"tasks\": [0");
	for (int i = 1; i < 100; i++)
		buf_addf(&body, ",%d", i);
	buf_adds(&body, "]}");
	id = submit(&s, body.data);
	j = wait_job(&s, id, "succeeded", 60);
	assert_int_equal(jnum(j, "progress.succeeded"), 100);
	cJSON_Delete(j);
	j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld/tasks?limit=100", (long long)id);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
		int pid = (int)jnum(t, "result.pid"), k;

		/* No worker ran more than 10. */
		assert_true(jnum(t, "result.calls") <= 10);
		for (k = 0; k < npids && pids[k] != pid; k++)
			;
		if (k == npids && npids < 64)
			pids[npids++] = pid;
	}
	cJSON_Delete(j);
	assert_true(npids >= 10);

	/* Tiny tasks, handed out many at a time: none lost to a recycle. */
	buf_reset(&body);
	buf_adds(&body, "{\"handler\": \"noop\", \"tasks\": [0");
	for (int i = 1; i < 5000; i++)
		buf_adds(&body, ",0");
	buf_adds(&body, "]}");
	id = submit(&s, body.data);
	j = wait_job(&s, id, "succeeded", 120);
	assert_int_equal(jnum(j, "progress.succeeded"), 5000);
	cJSON_Delete(j);
	j = api(&s, "GET", "/api/progress", NULL, 200);
	print_message("5,000 tiny tasks, a new worker every 10: %d workers replaced\n",
		      (int)jnum(j, "totals.workers.restarts"));
	assert_true(jnum(j, "totals.workers.restarts") >= 500);
	cJSON_Delete(j);
	assert_false(server_log_has(&s, "msg=\"worker died\""));
	buf_release(&body);
	server_free(&s);
}

static int64_t resident_of(pid_t pid)
{
	char path[64];
	long long size, pages = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld %lld", &size, &pages) != 2)
		pages = -1;
	fclose(f);
	return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

static int pool_full(const struct server *s, void *ctx);

/* A memory limit some MiB above what a fresh worker of this build holds
 * (a few MiB; far more under valgrind), as an option value like "72M". */
static void limit_above_fresh(int mib, char *out, size_t len)
{
	const char *args[] = { "--workers", "1", NULL };
	struct server s;
	pid_t kid;
	int64_t base;

	server_init(&s);
	server_start(&s, args);
	assert_true(wait_until(pool_full, &s, NULL, 60));
	assert_int_equal(server_children(&s, &kid, 1), 1);
	base = resident_of(kid);
	assert_true(base > 0);
	server_free(&s);
	snprintf(out, len, "%lldM", (long long)(base >> 20) + mib);
	print_message("a fresh worker holds %lld MiB: limit %s\n", (long long)(base >> 20), out);
}

/* Under ASan freed memory is held in a quarantine (256 MiB by default),
 * which would count against the limit: keep it small in these tests. */
static void small_quarantine(void)
{
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=4", 1);
}

static void default_quarantine(void)
{
	unsetenv("ASAN_OPTIONS");
}

/* A task that runs past the memory limit fails with a clear error and its
 * worker is replaced; so does a command handler's program. */
static void test_memory_limit(void **state)
{
	struct server s;
	char hf[400];
	struct pool_state before, after;
	cJSON *t;
	int64_t id;

	char limit[32], want[64];

	(void)state;
	small_quarantine();
	limit_above_fresh(64, limit, sizeof(limit));
	server_init(&s);
	plugin_handlers(&s, hf, sizeof(hf));
	const char *args[] = { "--workers", "1", "--handlers", hf,
			       "--worker-memory-limit", limit, NULL };

	server_start(&s, args);
	pool_state(&s, &before);
	id = submit(&s, "{\"handler\": \"hog\", \"tasks\": [{\"mb\": 300, \"hold_ms\": 20000},"
		    " {\"mb\": 1, \"hold_ms\": 0}]}");
	cJSON_Delete(wait_job(&s, id, "failed", 60));
	t = apif(&s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	print_message("error: %s\n", jstr(t, "error"));
	snprintf(want, sizeof(want), "worker exceeded the memory limit (%d MiB): ", atoi(limit));
	assert_non_null(strstr(jstr(t, "error"), want));
	assert_non_null(strstr(jstr(t, "error"), "--worker-memory-limit"));
	cJSON_Delete(t);
	t = apif(&s, "GET", 200, NULL, "/api/jobs/%lld/tasks/1", (long long)id);
	assert_string_equal(jstr(t, "state"), "succeeded");
	cJSON_Delete(t);
	pool_state(&s, &after);
	assert_true(after.ids[0] != before.ids[0]);

	id = submit(&s, "{\"handler\": \"bigcmd\", \"tasks\": [null]}");
	cJSON_Delete(wait_job(&s, id, "failed", 60));
	t = apif(&s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	print_message("error: %s\n", jstr(t, "error"));
	snprintf(want, sizeof(want), "the program exceeded the memory limit of %d MiB", atoi(limit));
	assert_non_null(strstr(jstr(t, "error"), want));
	cJSON_Delete(t);
	server_free(&s);
	default_quarantine();
}

/* Resident bytes of the server's workers together. */
static int64_t workers_resident(const struct server *s)
{
	pid_t pids[64];
	int n = server_children(s, pids, 64);
	int64_t total = 0;

	for (int i = 0; i < n; i++)
		total += resident_of(pids[i]) > 0 ? resident_of(pids[i]) : 0;
	return total;
}

/* A handler that leaks on every task runs 6,000 tasks: its workers are
 * replaced as they reach the limit, memory stays bounded, every task
 * succeeds (those running when their worker was replaced on a retry). */
static void test_leaking_handler(void **state)
{
	struct server s;
	char hf[400];
	struct buf body = BUF_INIT;
	int64_t id, peak = 0, attempts, failed;
	cJSON *j;

	char limit[32];

	(void)state;
	small_quarantine();
	limit_above_fresh(56, limit, sizeof(limit));
	server_init(&s);
	plugin_handlers(&s, hf, sizeof(hf));
	const char *args[] = { "--workers", "2", "--handlers", hf,
			       "--worker-memory-limit", limit, NULL };

	server_start(&s, args);
	buf_adds(&body, "{\"handler\": \"leak\", \"max_attempts\": 5, \"tasks\": [");
	for (int i = 0; i < 6000; i++)
		buf_addf(&body, "%s{\"kb\": 256}", i ? "," : "");
	buf_adds(&body, "]}");
	id = submit(&s, body.data);
	buf_release(&body);
	/* 6,000 x 256 KiB = 1.5 GiB leaked in all, 26 times the limit. */
	for (double deadline = now_s() + 300;;) {
		int64_t r = workers_resident(&s);
		int done;

		peak = r > peak ? r : peak;
		j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
		done = !strcmp(jstr(j, "state"), "succeeded") || !strcmp(jstr(j, "state"), "failed");
		cJSON_Delete(j);
		if (done)
			break;
		if (now_s() > deadline)
			fail_msg("the leaking job did not finish in 300 s");
		usleep(20000);
	}
	j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
	assert_int_equal(jnum(j, "progress.succeeded"), 6000);
	cJSON_Delete(j);
	job_attempts(&s, id, 6000, &attempts, &failed, NULL);
	j = api(&s, "GET", "/api/progress", NULL, 200);
	print_message("6,000 tasks leaking 256 KiB each (1.5 GiB in all): workers' peak "
		      "%.0f MiB together (limit %s each), %d workers replaced, %lld attempts retried\n",
		      (double)peak / (1 << 20), limit, (int)jnum(j, "totals.workers.restarts"),
		      (long long)(attempts - 6000));
	assert_true(jnum(j, "totals.workers.restarts") >= 20);
	/* Killed for their memory by batchd: replaced, not crashed. */
	assert_int_equal(jnum(j, "totals.workers.crashes"), 0);
	cJSON_Delete(j);
	/* Two workers at the limit each, plus what one check interval lets
	 * through. */
	assert_true(peak < 2 * ((int64_t)(atoi(limit) + 32) << 20));
	server_free(&s);
	default_quarantine();
}

static int count_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

struct fds_ctx {
	int want;
};

static int fds_back(const struct server *s, void *ctx)
{
	return count_fds(s->pid) == ((struct fds_ctx *)ctx)->want;
}

static int pool_full(const struct server *s, void *ctx)
{
	struct pool_state ps;

	(void)ctx;
	pool_state(s, &ps);
	return ps.ready == ps.n;
}

/* The server's descriptors are the same before and after 10,000 tasks,
 * with workers replaced, tasks failing and retried, and connections
 * coming and going. */
static void test_descriptors_stable(void **state)
{
	struct server s;
	const char *args[] = { "--workers", "2", "--max-tasks-per-worker", "700", NULL };
	struct buf body = BUF_INIT;
	struct fds_ctx before;
	int after, had_ckpt, started_ckpt;

	(void)state;
	server_init(&s);
	server_start(&s, args);
	assert_true(wait_until(pool_full, &s, NULL, 30));
	/* The polls' own connections take a moment to close. */
	before.want = -1;
	for (int same = 0; same < 5;) {
		int n = count_fds(s.pid);

		same = n == before.want ? same + 1 : 0;
		before.want = n;
		usleep(100000);
	}
	assert_true(before.want > 3);
	had_ckpt = server_checkpointer(&s) != 0;
	sh("ls -l /proc/%d/fd | awk 'NR > 1 {print $9, $10, $11}' > %s/fds.before", (int)s.pid, s.dir);

	buf_adds(&body, "{\"handler\": \"echo\", \"tasks\": [0");
	for (int i = 1; i < 9000; i++)
		buf_addf(&body, ",%d", i);
	buf_adds(&body, "]}");
	cJSON_Delete(wait_job(&s, submit(&s, body.data), "succeeded", 120));
	cJSON_Delete(wait_job(&s, submit(&s, "{\"handler\": \"fail\", \"max_attempts\": 2, \"tasks\": "
					"[{}, {}, {}, {}, {}, {}, {}, {}, {}, {}]}"), "failed", 60));
	cJSON_Delete(wait_job(&s, submit(&s, "{\"handler\": \"crash\", \"tasks\": [1, 2, 3]}"),
			      "failed", 60));
	buf_reset(&body);
	buf_adds(&body, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 1}");
	for (int i = 1; i < 987; i++)
		buf_adds(&body, ",{\"ms\": 1}");
	buf_adds(&body, "]}");
	cJSON_Delete(wait_job(&s, submit(&s, body.data), "succeeded", 120));
	buf_release(&body);

	assert_true(wait_until(pool_full, &s, NULL, 30));
	/* The checkpointer starts the first time the WAL grows long (on a
	 * slow server, such as one under valgrind, its commits are smaller
	 * and more): its socket is one more descriptor, once. */
	started_ckpt = !had_ckpt && server_checkpointer(&s);
	print_message("server descriptors: %d before 10,000 tasks%s\n", before.want,
		      started_ckpt ? ", and the checkpointer's socket since" : "");
	before.want += started_ckpt;
	wait_until(fds_back, &s, &before, 10);
	after = count_fds(s.pid);
	print_message("server descriptors: %d after\n", after);
	if (after != before.want)
		sh("ls -l /proc/%d/fd | awk 'NR > 1 {print $9, $10, $11}' | diff %s/fds.before - >&2;"
		   " ps -o pid,args --ppid %d >&2", (int)s.pid, s.dir, (int)s.pid);
	assert_int_equal(after, before.want);
	server_free(&s);
}

static const char direct_script[] =
	"#!/bin/sh\n"
	"echo $$ > \"$(dirname \"$0\")/pid.direct.$BATCHD_JOB\"\n"
	"exec sleep 60\n";

static const char tree_script[] =
	"#!/bin/sh\n"
	"sleep 60 &\n"
	"echo \"$$ $!\" > \"$(dirname \"$0\")/pid.tree.$BATCHD_JOB\"\n"
	"wait\n";

/* Reads the pids a script wrote, once it has; returns how many. */
/* The n pids a script wrote to pid.<name>.<job>; how many it read. */
static int read_pids(const struct server *s, const char *name, int64_t job, pid_t *pids,
		     int n)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/pid.%s.%lld", s->dir, name, (long long)job);
	return read_pids_file(path, pids, n, 30);
}

/* Starts s with one worker and a command handler per script: names[i]
 * runs scripts[i], written as names[i].sh in s's directory. */
static void start_with_scripts(struct server *s, const char *const *names,
			       const char *const *scripts, int n)
{
	char path[400], hf[400];
	struct buf text = BUF_INIT;

	server_init(s);
	buf_adds(&text, "{\"handlers\": {");
	for (int i = 0; i < n; i++) {
		char file[64];

		snprintf(file, sizeof(file), "%s.sh", names[i]);
		write_file(s, file, scripts[i], 0755, path, sizeof(path));
		buf_addf(&text, "%s\"%s\": {\"argv\": [\"%s\"]}", i ? ", " : "", names[i], path);
	}
	buf_adds(&text, "}}");
	write_file(s, "handlers.json", text.data, 0644, hf, sizeof(hf));
	buf_release(&text);

	const char *args[] = { "--workers", "1", "--handlers", hf, NULL };

	server_start(s, args);
}

/* The programs a worker started die with it: when it is killed from
 * outside (with the programs' own children), and when the whole server is
 * SIGKILLed. None runs on unseen while its task runs again. */
static void test_programs_die_with_worker(void **state)
{
	struct server s;
	pid_t pids[2], worker;
	struct pool_state ps;
	int64_t id;
	cJSON *t;

	(void)state;
	start_with_scripts(&s, (const char *[]){ "direct", "tree" },
			   (const char *[]){ direct_script, tree_script }, 2);
	id = submit(&s, "{\"handler\": \"tree\", \"tasks\": [null]}");
	assert_int_equal(read_pids(&s, "tree", id, pids, 2), 2);
	pool_state(&s, &ps);
	worker = ps.pids[0];
	kill(worker, SIGKILL);
	assert_true(pids_gone_within(pids, 2, 10));
	cJSON_Delete(wait_job(&s, id, "failed", 30));
	t = apif(&s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	assert_non_null(strstr(jstr(t, "error"), "killed by signal 9"));
	cJSON_Delete(t);

	id = submit(&s, "{\"handler\": \"direct\", \"tasks\": [null]}");
	assert_int_equal(read_pids(&s, "direct", id, pids, 1), 1);
	server_kill(&s);
	assert_true(pids_gone_within(pids, 1, 10));
	server_free(&s);
}

static const char daemon_script[] =
	"#!/bin/sh\n"
	"sleep 60 > /dev/null 2>&1 &\n"
	"echo \"$$ $!\" > \"$(dirname \"$0\")/pid.daemon.$BATCHD_JOB\"\n"
	"echo '\"left one behind\"'\n";

/* The counter handler's count of calls in this worker, by one more task;
 * its pid in *pid. */
static long counter_calls(const struct server *s, long *pid)
{
	int64_t id = submit(s, "{\"handler\": \"counter\", \"tasks\": [0]}");
	cJSON *t;
	long calls;

	cJSON_Delete(wait_job(s, id, "succeeded", 30));
	t = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	calls = (long)jnum(t, "result.calls");
	*pid = (long)jnum(t, "result.pid");
	cJSON_Delete(t);
	return calls;
}

/* A command task that is cancelled or times out is stopped in its worker:
 * the program and its children go, the worker stays with every handler's
 * state in it. A program's leftovers go when it ends. A worker that does
 * not answer the stop is killed after the grace, the program's group with
 * it. */
static void test_command_stop_keeps_worker(void **state)
{
	struct server s;
	pid_t pids[2];
	long pid0, pid;
	struct pool_state ps;
	int64_t id;
	cJSON *t;

	(void)state;
	start_with_scripts(&s, (const char *[]){ "tree", "daemon" },
			   (const char *[]){ tree_script, daemon_script }, 2);
	assert_int_equal(counter_calls(&s, &pid0), 1);

	/* Cancelled. */
	id = submit(&s, "{\"handler\": \"tree\", \"tasks\": [null, null]}");
	assert_int_equal(read_pids(&s, "tree", id, pids, 2), 2);
	cJSON_Delete(apif(&s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	assert_true(pids_gone_within(pids, 2, 10));
	assert_int_equal(counter_calls(&s, &pid), 2);
	assert_int_equal(pid, pid0);
	assert_int_equal(restarts(&s, NULL), 0);

	/* Timed out, then retried, on the same worker. */
	id = submit(&s, "{\"handler\": \"tree\", \"timeout_s\": 0.5, \"max_attempts\": 2,"
		    " \"tasks\": [null]}");
	assert_int_equal(read_pids(&s, "tree", id, pids, 2), 2);
	cJSON_Delete(wait_job(&s, id, "failed", 30));
	assert_true(pids_gone_within(pids, 2, 10));
	t = apif(&s, "GET", 200, NULL, "/api/jobs/%lld/tasks/0", (long long)id);
	assert_string_equal(jstr(t, "error"), "timed out after 0.5 s");
	assert_int_equal(jnum(t, "attempts"), 2);
	cJSON_Delete(t);
	assert_int_equal(counter_calls(&s, &pid), 3);
	assert_int_equal(pid, pid0);
	assert_int_equal(restarts(&s, NULL), 0);

	/* What a program leaves running goes when it ends. */
	id = submit(&s, "{\"handler\": \"daemon\", \"tasks\": [null]}");
	cJSON_Delete(wait_job(&s, id, "succeeded", 30));
	assert_int_equal(read_pids(&s, "daemon", id, pids, 2), 2);
	assert_true(pids_gone_within(pids, 2, 10));

	/* A worker that cannot answer (stopped) is killed after the grace,
	 * and the program's group with it. */
	id = submit(&s, "{\"handler\": \"tree\", \"tasks\": [null]}");
	assert_int_equal(read_pids(&s, "tree", id, pids, 2), 2);
	pool_state(&s, &ps);
	assert_int_equal(ps.pids[0], pid0);
	kill(pid0, SIGSTOP);
	cJSON_Delete(apif(&s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	assert_true(pids_gone_within(pids, 2, 15));
	assert_true(pids_gone_within((pid_t[]){ (pid_t)pid0 }, 1, 15));
	assert_int_equal(counter_calls(&s, &pid), 1);	/* a new worker */
	assert_true(pid != pid0);
	assert_int_equal(restarts(&s, NULL), 1);
	server_free(&s);
}

static const char starts_script[] =
	"#!/bin/sh\n"
	"echo \"$BATCHD_TASK\" >> \"$(dirname \"$0\")/started.log\"\n"
	"sleep 0.03\n"
	"echo null\n";

static int succeeded_5(const struct server *s, void *ctx)
{
	cJSON *j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)*(int64_t *)ctx);
	int ok = jnum(j, "progress.succeeded") >= 5;

	cJSON_Delete(j);
	return ok;
}

/* A cancelled job's tasks that its worker holds ahead of time (short
 * tasks are handed out one ahead) are not started once the worker, which
 * lives on, has stopped the one it was running. */
static void test_cancel_starts_nothing_more(void **state)
{
	struct server s;
	char log[400];
	struct buf body = BUF_INIT;
	int64_t id;
	cJSON *j;
	int started = 0, done;
	FILE *f;

	(void)state;
	start_with_scripts(&s, (const char *[]){ "starts" }, (const char *[]){ starts_script }, 1);
	buf_adds(&body, "{\"handler\": \"starts\", \"tasks\": [null");
	for (int i = 1; i < 200; i++)
		buf_adds(&body, ", null");
	buf_adds(&body, "]}");
	id = submit(&s, body.data);
	buf_release(&body);
	assert_true(wait_until(succeeded_5, &s, &id, 60));
	cJSON_Delete(apif(&s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));
	/* The worker runs its queue in order: once a task handed out after
	 * the cancel has run, whatever it held before has run or not. */
	cJSON_Delete(wait_job(&s, submit(&s, "{\"handler\": \"noop\", \"tasks\": [null]}"),
			      "succeeded", 30));
	j = apif(&s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
	done = (int)jnum(j, "progress.succeeded");
	cJSON_Delete(j);
	snprintf(log, sizeof(log), "%s/started.log", s.dir);
	f = fopen(log, "r");
	assert_non_null(f);
	for (int c; (c = fgetc(f)) != EOF;)
		started += c == '\n';
	fclose(f);
	/* The finished ones, and at most the one the cancel stopped. */
	print_message("%d tasks succeeded, %d started before the cancel\n", done, started);
	assert_true(started <= done + 1);
	assert_int_equal(restarts(&s, NULL), 0);
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_worker_kills),
		cmocka_unit_test(test_max_tasks_per_worker),
		cmocka_unit_test(test_memory_limit),
		cmocka_unit_test(test_leaking_handler),
		cmocka_unit_test(test_descriptors_stable),
		cmocka_unit_test(test_programs_die_with_worker),
		cmocka_unit_test(test_command_stop_keeps_worker),
		cmocka_unit_test(test_cancel_starts_nothing_more),
	};

	return cmocka_run_group_tests_name("workers", tests, NULL, NULL);
}
