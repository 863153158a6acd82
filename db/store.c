/*
 * store: SQLite storage for jobs and tasks. See store.h.
 *
 * Layout: one row per job (with its progress counts, so a poll never counts
 * tasks) and one row per task in a WITHOUT ROWID table keyed by (job, index),
 * which keeps a job's tasks together and in order on disk. Statements are
 * prepared once, on first use, and reused. This file holds the schema,
 * every statement, opening and transactions; store_jobs.c and
 * store_tasks.c the functions on jobs and on tasks.
 */
#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../lib/clock.h"
#include "../lib/log.h"

#define APPLICATION_ID 0x62746364	/* "btcd" */
#define APPLICATION_ID_S "1651794788"
#define WAL_KEEP_BYTES_S "16777216"
_Static_assert(STORE_WAL_KEEP_BYTES == 16777216, "WAL_KEEP_BYTES_S is its string");
/* 2: jobs.paused. 3: jobs.idem_hash. 4: tasks keyed by one integer. A
 * database of an older schema is brought up to this one when opened. */
#define SCHEMA_VERSION 4
#define SCHEMA_VERSION_S "4"

/* A task's key: its job's id shifted left by TASK_BITS, plus its index.
 * TASK_BITS holds --max-tasks' ceiling (100,000,000), and leaves job ids
 * 35 bits (34 billion jobs). */
#define TASK_BITS_S "28"
#define TASK_MASK_S "268435455"
_Static_assert(STORE_TASK_BITS == 28, "TASK_BITS_S is its string");
_Static_assert((1LL << STORE_TASK_BITS) - 1 == 268435455, "TASK_MASK_S is its mask");
_Static_assert(100000000 < (1LL << STORE_TASK_BITS), "--max-tasks' ceiling has a key");
/* The key of task (j, i), and the keys of all of job j's tasks, as SQL. */
#define TASK_KEY(j, i) " ((" j " << " TASK_BITS_S ") + " i ")"
#define JOB_TASKS(j) " id BETWEEN (" j " << " TASK_BITS_S ")" \
	" AND (" j " << " TASK_BITS_S ") + " TASK_MASK_S
/* Job j's tasks from index i on. */
#define TASKS_FROM(j, i) " id BETWEEN" TASK_KEY(j, i) \
	" AND (" j " << " TASK_BITS_S ") + " TASK_MASK_S

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS jobs("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT,"
	" handler TEXT NOT NULL,"
	" state INTEGER NOT NULL,"
	" priority INTEGER NOT NULL,"
	" timeout_ms INTEGER NOT NULL,"
	" max_attempts INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" started_at INTEGER,"
	" finished_at INTEGER,"
	" total INTEGER NOT NULL,"
	" succeeded INTEGER NOT NULL DEFAULT 0,"
	" failed INTEGER NOT NULL DEFAULT 0,"
	" cancelled INTEGER NOT NULL DEFAULT 0,"
	" idem_key TEXT UNIQUE,"
	" paused INTEGER NOT NULL DEFAULT 0,"
	/* A hash of the request that came with idem_key; NULL before schema 3. */
	" idem_hash INTEGER);"
	"CREATE INDEX IF NOT EXISTS jobs_active ON jobs(state) WHERE state < 2;"
	"CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at) WHERE state >= 2;";

static const char tasks_schema[] =
	/* id is the task's key, TASK_KEY(job_id, idx): an integer, so that a
	 * walk over a job's tasks or a seek to one compares integers and never
	 * reads a row's input or result (a WITHOUT ROWID table keyed by
	 * (job_id, idx) before schema 4 read every row it stepped over whole,
	 * overflow pages and all). job_id and idx are computed from it, stored
	 * nowhere. The columns that may be large come last, input and result
	 * after all others: a column is read by walking the row's overflow
	 * pages up to it. attempt_limit: NULL means the job's max_attempts; a retry
	 * from the API sets it, to grant the task a fresh set of attempts. */
	"CREATE TABLE IF NOT EXISTS tasks("
	" id INTEGER PRIMARY KEY,"
	" state INTEGER NOT NULL DEFAULT 0,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" attempt_limit INTEGER,"
	" not_before INTEGER,"
	" progress REAL,"
	" message TEXT,"
	" worker INTEGER,"
	" started_at INTEGER,"
	" finished_at INTEGER,"
	" error TEXT,"
	" input TEXT NOT NULL,"
	" result TEXT,"
	" job_id INTEGER AS (id >> " TASK_BITS_S ") VIRTUAL,"
	" idx INTEGER AS (id & " TASK_MASK_S ") VIRTUAL);"
	/* The few tasks running or failed, found without reading the many
	 * queued or succeeded (the dashboard asks for a job's running tasks
	 * every second). Its entries are (state, id): a job's tasks of a state
	 * lie together, in order. A tiny task never enters it: it goes from
	 * queued to succeeded within a group commit. Cancelled tasks are left
	 * out: a cancel or a retry of a million of them would have to write a
	 * million entries. The queries that use it name it (NOTABLE below). */
	"CREATE INDEX IF NOT EXISTS tasks_notable ON tasks(state)"
	" WHERE state IN (1, 3);";


/* A query on tasks of those states reads them from tasks_notable: FROM
 * it, and with its condition spelt out, so that SQLite sees the index
 * holds them all (without statistics it would rather scan the job's
 * tasks in order, all million of them). */
#define NOTABLE_FROM " FROM tasks INDEXED BY tasks_notable"
#define NOTABLE " AND state IN (1, 3)"

#define JOB_COLS "id, name, handler, state, priority, timeout_ms, max_attempts," \
	" created_at, started_at, finished_at, total, succeeded, failed," \
	" cancelled, idem_key, paused"
#define TASK_COLS "job_id, idx, state, attempts, not_before, progress, message," \
	" worker, started_at, finished_at, result, error"
/* The four statements of a list of tasks from rest (FROM ...): with the
 * result or NULL in its place, and with the input or without. A column
 * left out is never read: a row's result can be megabytes. */
#define TASK_COLS_NO_RESULT "job_id, idx, state, attempts, not_before, progress," \
	" message, worker, started_at, finished_at, NULL, error"
#define LIST_QUERIES(q, rest) \
	[q] = "SELECT " TASK_COLS rest, \
	[q + STORE_WITH_INPUT] = "SELECT " TASK_COLS ", input" rest, \
	[q + STORE_NO_RESULT] = "SELECT " TASK_COLS_NO_RESULT rest, \
	[q + (STORE_WITH_INPUT | STORE_NO_RESULT)] = "SELECT " TASK_COLS_NO_RESULT ", input" rest


/* Tasks inserted per statement by Q_TASK_INSERT_MANY: one statement per
 * row spends half the insert in running the statement rather than in the
 * b-tree (1M rows: 0.95M rows/s one by one, 2.0M rows/s 64 at a time). */

static const char *const sql[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_JOB_INSERT] = "INSERT INTO jobs(name, handler, state, priority,"
		" timeout_ms, max_attempts, created_at, total, idem_key, paused, idem_hash)"
		" VALUES(?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[Q_TASK_INSERT] = "INSERT INTO tasks(id, input) VALUES(" TASK_KEY("?1", "?2") ", ?3)",
	[Q_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
	[Q_JOB_BY_KEY] = "SELECT id, idem_hash FROM jobs WHERE idem_key = ?1",
	[Q_JOBS_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE id < ?1"
		" ORDER BY id DESC LIMIT ?2",
	[Q_JOBS_LIST_STATE] = "SELECT " JOB_COLS " FROM jobs WHERE id < ?1"
		" AND state = ?3 ORDER BY id DESC LIMIT ?2",
	[Q_JOBS_ACTIVE] = "SELECT " JOB_COLS " FROM jobs WHERE state < 2 ORDER BY id",
	[Q_JOBS_RECENT] = "SELECT " JOB_COLS " FROM jobs WHERE state >= 2"
		" ORDER BY finished_at DESC, id DESC LIMIT ?1",
	[Q_JOB_SAVE] = "UPDATE jobs SET state = ?2, started_at = ?3,"
		" finished_at = ?4, succeeded = ?5, failed = ?6, cancelled = ?7,"
		" paused = ?8 WHERE id = ?1",
	[Q_JOB_DELETE] = "DELETE FROM jobs WHERE id = ?1",
	[Q_JOBS_EXPIRED] = "SELECT id, total FROM jobs WHERE state >= 2"
		" AND finished_at < ?1 ORDER BY finished_at, id LIMIT ?2",
	[Q_JOB_DELETE_TASKS] = "DELETE FROM tasks WHERE" JOB_TASKS("?1"),
	[Q_RECOUNT] = "SELECT state, count(*) FROM tasks WHERE" JOB_TASKS("?1")
		" GROUP BY state",
	[Q_TOTALS] = "SELECT state, count(*), sum(total), sum(succeeded),"
		" sum(failed), sum(cancelled) FROM jobs GROUP BY state",
	LIST_QUERIES(Q_TASKS_LIST, " FROM tasks WHERE" TASKS_FROM("?1", "?2")
		     " ORDER BY id LIMIT ?3"),
	LIST_QUERIES(Q_TASKS_LIST_STATE, " FROM tasks WHERE" JOB_TASKS("?1")
		     " AND state = ?4 ORDER BY id LIMIT ?3 OFFSET ?2"),
	LIST_QUERIES(Q_TASKS_FROM_STATE, " FROM tasks WHERE" TASKS_FROM("?1", "?2")
		     " AND state = ?4 ORDER BY id LIMIT ?3"),
	LIST_QUERIES(Q_TASKS_LIST_NOTABLE, NOTABLE_FROM " WHERE" JOB_TASKS("?1")
		     " AND state = ?4" NOTABLE " ORDER BY id LIMIT ?3 OFFSET ?2"),
	LIST_QUERIES(Q_TASKS_FROM_NOTABLE, NOTABLE_FROM " WHERE" TASKS_FROM("?1", "?2")
		     " AND state = ?4" NOTABLE " ORDER BY id LIMIT ?3"),
	[Q_TASK_GET] = "SELECT " TASK_COLS ", input FROM tasks"
		" WHERE id =" TASK_KEY("?1", "?2"),
	[Q_TASKS_QUEUED] = "SELECT idx, attempts, not_before, input,"
		" attempt_limit FROM tasks WHERE" TASKS_FROM("?1", "?2")
		" AND state = 0 ORDER BY id LIMIT ?3",
	[Q_TASK_QUEUED] = "SELECT idx, attempts, not_before, input,"
		" attempt_limit FROM tasks WHERE id =" TASK_KEY("?1", "?2")
		" AND state = 0",
	[Q_TASK_RUNNING] = "UPDATE tasks SET state = 1, attempts = ?3,"
		" worker = ?4, started_at = ?5, finished_at = NULL,"
		" progress = NULL, message = NULL WHERE id =" TASK_KEY("?1", "?2"),
	[Q_TASK_PROGRESS] = "UPDATE tasks SET progress = ?3, message = ?4"
		" WHERE id =" TASK_KEY("?1", "?2"),
	[Q_TASK_FINISH] = "UPDATE tasks SET state = ?3, attempts = ?4,"
		" worker = ?5, started_at = ?6, finished_at = ?7, result = ?8,"
		" error = ?9, not_before = NULL,"
		" progress = CASE WHEN ?3 = 2 THEN 1.0 ELSE coalesce(?10, progress) END,"
		" message = coalesce(?11, message)"
		" WHERE id =" TASK_KEY("?1", "?2"),
	[Q_TASK_RETRY] = "UPDATE tasks SET state = 0, attempts = ?3,"
		" not_before = ?4, error = ?5, worker = NULL, started_at = NULL,"
		" finished_at = NULL, progress = NULL, message = NULL"
		" WHERE id =" TASK_KEY("?1", "?2"),
	[Q_TASK_REQUEUE] = "UPDATE tasks SET state = 0, attempts = ?3,"
		" worker = NULL, started_at = NULL, progress = NULL,"
		" message = NULL WHERE id =" TASK_KEY("?1", "?2"),
	[Q_TASKS_CANCEL] = "UPDATE tasks SET state = 4, finished_at = ?2,"
		" not_before = NULL WHERE" JOB_TASKS("?1") " AND state IN (0, 1)",
	[Q_TASKS_FAILED] = "SELECT idx, state FROM tasks WHERE" JOB_TASKS("?1")
		" AND state IN (3, 4) ORDER BY id",
	[Q_TASKS_RETRY] = "UPDATE tasks SET state = 0, not_before = NULL,"
		" finished_at = NULL, started_at = NULL, worker = NULL,"
		" progress = NULL, message = NULL, result = NULL,"
		" attempt_limit = attempts + ?2"
		" WHERE" JOB_TASKS("?1") " AND state IN (3, 4)",
	[Q_REQUEUE_RUNNING] = "UPDATE tasks INDEXED BY tasks_notable SET state = 0,"
		" attempts = max(attempts - 1, 0), worker = NULL,"
		" started_at = NULL, progress = NULL, message = NULL"
		" WHERE" JOB_TASKS("?1") " AND state = 1" NOTABLE,
	[Q_TASKS_SUCCEED] = "UPDATE tasks SET state = 2, attempts = ?4, worker = ?5,"
		" started_at = ?6, finished_at = ?7, result = ?8, error = NULL,"
		" not_before = NULL, progress = 1.0"
		" WHERE id BETWEEN" TASK_KEY("?1", "?2") " AND" TASK_KEY("?1", "?3"),
	[Q_THROUGHPUT] = "SELECT (finished_at - ?2) / ?3, count(*) FROM tasks"
		" WHERE" JOB_TASKS("?1") " AND state IN (2, 3) AND finished_at IS NOT NULL"
		" GROUP BY 1",
};

/* "INSERT INTO tasks(id, input) VALUES(TASK_KEY(?1, ?2), ?3),
 * (TASK_KEY(?1, ?2) + 1, ?4), ...": INSERT_ROWS consecutive tasks of one
 * job. */
static const char *insert_many_sql(void)
{
	static char text[64 + INSERT_ROWS * 48];
	size_t n;

	if (text[0])
		return text;
	n = (size_t)snprintf(text, sizeof(text),
			     "INSERT INTO tasks(id, input) VALUES(" TASK_KEY("?1", "?2") ", ?3)");
	for (int r = 1; r < INSERT_ROWS; r++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, ", (" TASK_KEY("?1", "?2")
				      " + %d, ?%d)", r, r + 3);
	assert(n < sizeof(text) - 1);
	return text;
}


static const char *const state_names[ST_COUNT] = {
	"queued", "running", "succeeded", "failed", "cancelled"
};

const char *state_name(int state)
{
	return state >= 0 && state < ST_COUNT ? state_names[state] : "unknown";
}

int state_parse(const char *s)
{
	for (int i = 0; i < ST_COUNT; i++)
		if (!strcmp(s, state_names[i]))
			return i;
	return -1;
}

/* Records SQLite's current error; returns -1 for the caller to pass on. */
int store_fail(struct store *s)
{
	s->errcode = sqlite3_extended_errcode(s->db);
	snprintf(s->errmsg, sizeof(s->errmsg), "%s", sqlite3_errmsg(s->db));
	return -1;
}

const char *store_errmsg(struct store *s)
{
	return s->errmsg;
}

int store_errcode(struct store *s)
{
	return s->errcode;
}

/* The prepared statement i, reset and with bindings cleared. */
sqlite3_stmt *store_stmt(struct store *s, int i)
{
	sqlite3_stmt *st;

	if (s->run_open && i != Q_TASKS_SUCCEED && store_run_write(s) < 0)
		return NULL;
	st = s->q[i];
	if (!st) {
		const char *text = i == Q_TASK_INSERT_MANY ? insert_many_sql() : sql[i];

		if (sqlite3_prepare_v3(s->db, text, -1, SQLITE_PREPARE_PERSISTENT,
				       &s->q[i], NULL) != SQLITE_OK) {
			store_fail(s);
			return NULL;
		}
		return s->q[i];
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

/* Runs a statement that returns no rows. */
int store_exec(struct store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_fail(s);
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	return 0;
}

void store_bind_int(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

void store_bind_text(sqlite3_stmt *st, int i, const char *t, size_t n)
{
	if (t)
		sqlite3_bind_text64(st, i, t, n, SQLITE_STATIC, SQLITE_UTF8);
	else
		sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	char *p;

	if (!t)
		return NULL;
	p = strdup((const char *)t);
	if (!p)
		abort();
	return p;
}

/* Reads a job row; strings borrowed unless own is set. */
void store_read_job(sqlite3_stmt *st, struct store_job *j, int own)
{
	j->id = sqlite3_column_int64(st, 0);
	if (own) {
		j->name = col_dup(st, 1);
		j->handler = col_dup(st, 2);
		j->idem_key = col_dup(st, 14);
	} else {
		j->name = (char *)sqlite3_column_text(st, 1);
		j->handler = (char *)sqlite3_column_text(st, 2);
		j->idem_key = (char *)sqlite3_column_text(st, 14);
	}
	j->state = sqlite3_column_int(st, 3);
	j->priority = sqlite3_column_int(st, 4);
	j->timeout_ms = sqlite3_column_int64(st, 5);
	j->max_attempts = sqlite3_column_int(st, 6);
	j->created_at = sqlite3_column_int64(st, 7);
	j->started_at = sqlite3_column_int64(st, 8);
	j->finished_at = sqlite3_column_int64(st, 9);
	j->total = sqlite3_column_int64(st, 10);
	j->succeeded = sqlite3_column_int64(st, 11);
	j->failed = sqlite3_column_int64(st, 12);
	j->cancelled = sqlite3_column_int64(st, 13);
	j->paused = sqlite3_column_int(st, 15);
}

void store_read_task(sqlite3_stmt *st, struct store_task *t, int with_input)
{
	t->job_id = sqlite3_column_int64(st, 0);
	t->idx = sqlite3_column_int64(st, 1);
	t->state = sqlite3_column_int(st, 2);
	t->attempts = sqlite3_column_int(st, 3);
	t->not_before = sqlite3_column_int64(st, 4);
	t->progress = sqlite3_column_type(st, 5) == SQLITE_NULL ?
		-1 : sqlite3_column_double(st, 5);
	t->message = (const char *)sqlite3_column_text(st, 6);
	t->worker = sqlite3_column_int(st, 7);
	t->started_at = sqlite3_column_int64(st, 8);
	t->finished_at = sqlite3_column_int64(st, 9);
	t->result = (const char *)sqlite3_column_text(st, 10);
	t->error = (const char *)sqlite3_column_text(st, 11);
	t->input = NULL;
	t->input_len = 0;
	if (with_input) {
		t->input = (const char *)sqlite3_column_text(st, 12);
		t->input_len = (size_t)sqlite3_column_bytes(st, 12);
	}
}


/* Adds n to counts[state] if state is known; returns 0 (go on). */
int store_add_count(int64_t counts[ST_COUNT], int state, int64_t n)
{
	if (state >= 0 && state < ST_COUNT)
		counts[state] += n;
	return 0;
}

static int pragma(struct store *s, const char *q)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, q, NULL, NULL, &msg) != SQLITE_OK) {
		s->errcode = sqlite3_extended_errcode(s->db);
		snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int query_int(struct store *s, const char *q, int64_t *out)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK)
		return store_fail(s);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		store_fail(s);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Brings a database made by an older batchd up to this schema, inside the
 * open transaction (the tables exist: the schema ran first). */
static int migrate(struct store *s)
{
	int64_t has;

	/* 1 -> 2: jobs.paused. */
	if (query_int(s, "SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'paused'",
		      &has) < 0)
		return -1;
	if (!has && pragma(s, "ALTER TABLE jobs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0") < 0)
		return -1;
	/* 2 -> 3: jobs.idem_hash; the keys of older jobs replay as before. */
	if (query_int(s, "SELECT count(*) FROM pragma_table_info('jobs')"
		      " WHERE name = 'idem_hash'", &has) < 0)
		return -1;
	if (!has && pragma(s, "ALTER TABLE jobs ADD COLUMN idem_hash INTEGER") < 0)
		return -1;
	/* 3 -> 4: tasks keyed by id. The old table, keyed by (job_id, idx),
	 * is copied over in key order, then dropped: for a while the file
	 * holds both (its free pages are reused, the file does not shrink). */
	if (query_int(s, "SELECT count(*) FROM pragma_table_info('tasks') WHERE name = 'id'",
		      &has) < 0)
		return -1;
	if (!has) {
		int64_t n = 0, bad;

		LOG_INFO("store: converting the tasks table to schema " SCHEMA_VERSION_S);
		if (pragma(s, "ALTER TABLE tasks RENAME TO tasks_v3") < 0 ||
		    pragma(s, "DROP INDEX IF EXISTS tasks_notable") < 0 ||
		    query_int(s, "SELECT count(*) FROM tasks_v3 WHERE job_id NOT BETWEEN 0 AND "
			      STORE_MAX_JOB_ID_S " OR idx NOT BETWEEN 0 AND " TASK_MASK_S, &bad) < 0)
			return -1;
		if (bad) {
			snprintf(s->errmsg, sizeof(s->errmsg), "%lld tasks have a job id or an"
				 " index past what schema " SCHEMA_VERSION_S " can key",
				 (long long)bad);
			return -1;
		}
		if (pragma(s, tasks_schema) < 0 ||
		    pragma(s, "INSERT INTO tasks(id, state, attempts, attempt_limit,"
			   " not_before, progress, message, worker, started_at, finished_at,"
			   " input, result, error) SELECT" TASK_KEY("job_id", "idx") ", state,"
			   " attempts, attempt_limit, not_before, progress, message, worker,"
			   " started_at, finished_at, input, result, error FROM tasks_v3"
			   " ORDER BY job_id, idx") < 0 ||
		    query_int(s, "SELECT count(*) FROM tasks", &n) < 0 ||
		    pragma(s, "DROP TABLE tasks_v3") < 0)
			return -1;
		LOG_INFO("store: tasks table converted", LF_I("tasks", n));
	}
	return 0;
}

/* Runs PRAGMA quick_check: 0 when the file is sound, else -1 with
 * "cannot open database PATH: the file is corrupt (first problem)". */
static int check_pages(struct store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	char what[sizeof(s->errmsg)] = "";
	int rc;

	if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) {
		store_fail(s);
		snprintf(err, errlen, "cannot open database %s: %s", s->path, s->errmsg);
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		snprintf(what, sizeof(what), "%s", t ? t : "");
	} else {
		store_fail(s);
		snprintf(what, sizeof(what), "%s", s->errmsg);
	}
	sqlite3_finalize(st);
	if (!strcmp(what, "ok"))
		return 0;
	/* One line: SQLite's report may span several. */
	const char *from = strstr(what, "***\n") ? strstr(what, "***\n") + 4 : what;

	for (char *c = what; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	snprintf(err, errlen, "cannot open database %s: the file is corrupt (%s)",
		 s->path, from);
	return -1;
}

static void free_store(struct store *s)
{
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->q[i]);
	if (s->db)
		sqlite3_close(s->db);
	/* Only now, after SQLite let go of the file: closing another
	 * descriptor of it earlier would drop SQLite's POSIX locks. */
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->path);
	free(s);
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	char *dcopy = strdup(path);
	const char *dir;
	struct stat st;
	int64_t app = 0, tables = 0, version = 0;

	if (!s || !dcopy)
		abort();
	s->lock_fd = -1;
	s->path = strdup(path);
	dir = dirname(dcopy);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot open database %s: directory %s does not exist",
			 path, dir);
		goto fail;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot open database %s: not a regular file", path);
		goto fail;
	}
	if (stat(path, &st) == 0 && !(st.st_mode & 0222)) {
		snprintf(err, errlen, "cannot open database %s: the file is read-only (mode %04o)",
			 path, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->lock_fd < 0) {
		snprintf(err, errlen, "cannot open database %s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "cannot open database %s: %s", path,
			 errno == EWOULDBLOCK ?
			 "it is in use by another batchd process" : strerror(errno));
		goto fail;
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open database %s: %s", path,
			 s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 1000);
	if (query_int(s, "PRAGMA application_id", &app) < 0 ||
	    query_int(s, "SELECT count(*) FROM sqlite_schema", &tables) < 0) {
		snprintf(err, errlen, "cannot open database %s: %s", path, s->errmsg);
		goto fail;
	}
	if (tables > 0 && app != APPLICATION_ID) {
		snprintf(err, errlen, "cannot open database %s: not a batchd database", path);
		goto fail;
	}
	if (pragma(s, "PRAGMA journal_mode=WAL") < 0 ||
	    pragma(s, "PRAGMA synchronous=NORMAL") < 0 ||
	    pragma(s, "PRAGMA temp_store=MEMORY") < 0 ||
	    pragma(s, "PRAGMA cache_size=-16384") < 0 ||
	    pragma(s, "PRAGMA foreign_keys=OFF") < 0 ||
	    pragma(s, "PRAGMA journal_size_limit=" WAL_KEEP_BYTES_S) < 0) {
		snprintf(err, errlen, "cannot open database %s: %s", path, s->errmsg);
		goto fail;
	}
	if (query_int(s, "PRAGMA user_version", &version) < 0)
		goto sqlfail;
	if (version > SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "cannot open database %s: made by a newer batchd (schema %lld)",
			 path, (long long)version);
		goto fail;
	}
	if (pragma(s, "BEGIN IMMEDIATE") < 0 || pragma(s, schema) < 0 ||
	    pragma(s, tasks_schema) < 0 ||
	    migrate(s) < 0 ||
	    pragma(s, "PRAGMA application_id=" APPLICATION_ID_S) < 0 ||
	    pragma(s, "PRAGMA user_version=" SCHEMA_VERSION_S) < 0 || pragma(s, "COMMIT") < 0)
		goto sqlfail;
	/* A damaged file is refused now rather than met later by some
	 * statement in the middle of the work. quick_check reads every page
	 * once (about 0.3 s for a million tasks when cached). */
	if (check_pages(s, err, errlen) < 0)
		goto fail;
	free(dcopy);
	return s;
sqlfail:
	snprintf(err, errlen, "cannot open database %s: %s", path, s->errmsg);
fail:
	free(dcopy);
	free_store(s);
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->in_txn)
		store_commit(s);
	free_store(s);
}

int64_t store_size(struct store *s)
{
	struct stat st;
	char wal[4096];
	int64_t n = 0;

	if (stat(s->path, &st) == 0)
		n += st.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", s->path);
	if (stat(wal, &st) == 0)
		n += st.st_size;
	return n;
}

int store_in_txn(struct store *s)
{
	return s->in_txn;
}

int store_begin(struct store *s)
{
	sqlite3_stmt *st;

	if (s->in_txn)
		return 0;
	st = store_stmt(s, Q_BEGIN);
	if (!st || store_exec(s, st) < 0)
		return -1;
	s->in_txn = 1;
	return 0;
}

void store_rollback_now(struct store *s)
{
	int code = s->errcode;
	char msg[sizeof(s->errmsg)];
	sqlite3_stmt *st;

	/* The error that led here is the one to report, not the rollback's. */
	memcpy(msg, s->errmsg, sizeof(msg));
	s->run_open = 0;	/* its tasks are rolled back with the rest */
	s->run_failed = 0;
	st = store_stmt(s, Q_ROLLBACK);
	if (!sqlite3_get_autocommit(s->db) && st)
		store_exec(s, st);
	s->in_txn = 0;
	s->errcode = code;
	memcpy(s->errmsg, msg, sizeof(msg));
}

void store_on_commit(struct store *s, store_commit_fn fn, void *ctx)
{
	s->on_commit = fn;
	s->on_commit_ctx = ctx;
}

static int wal_hook(void *ctx, sqlite3 *db, const char *name, int frames)
{
	struct store *s = ctx;

	(void)db;
	(void)name;
	if (s->on_wal)
		s->on_wal(s->on_wal_ctx, frames);
	return SQLITE_OK;
}

void store_on_wal(struct store *s, store_wal_fn fn, void *ctx)
{
	s->on_wal = fn;
	s->on_wal_ctx = ctx;
	/* Each replaces the other: SQLite's automatic checkpoint is a WAL
	 * hook too. */
	if (fn)
		sqlite3_wal_hook(s->db, wal_hook, s);
	else
		sqlite3_wal_autocheckpoint(s->db, STORE_CHECKPOINT_FRAMES);
}

int store_checkpoint(struct store *s)
{
	int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);

	if (rc == SQLITE_BUSY)
		return 1;
	return rc == SQLITE_OK ? 0 : store_fail(s);
}

void store_rollback(struct store *s)
{
	if (s->in_txn)
		store_rollback_now(s);
}

int store_sync(struct store *s)
{
	sqlite3_file *wal = NULL;
	int rc;

	/* The WAL of this connection (WAL mode), as SQLite syncs it itself
	 * after each commit under synchronous=FULL. */
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK ||
	    !wal || !wal->pMethods)
		return 0;
	rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		s->errcode = rc;
		snprintf(s->errmsg, sizeof(s->errmsg), "cannot sync the WAL to disk: %s",
			 sqlite3_errstr(rc));
		return -1;
	}
	s->unsynced = 0;
	return 0;
}

int store_unsynced(const struct store *s)
{
	return s->unsynced;
}

int store_sync_each_commit(struct store *s)
{
	if (pragma(s, "PRAGMA synchronous=FULL") < 0)
		return -1;
	s->sync_each = 1;
	return 0;
}

int store_commit(struct store *s)
{
	sqlite3_stmt *st;
	int64_t t0 = clock_mono_us();
	int rc;

	if (!s->in_txn)
		return 0;
	st = store_stmt(s, Q_COMMIT);	/* writes the open run first */
	rc = st && !s->run_failed ? store_exec(s, st) : -1;
	if (s->on_commit)
		s->on_commit(s->on_commit_ctx, clock_mono_us() - t0, rc == 0);
	if (rc < 0) {
		store_rollback_now(s);
		return -1;
	}
	s->in_txn = 0;
	s->unsynced = !s->sync_each;
	return 0;
}
