/*
 * Integration tests of the REST API: every endpoint and every error status,
 * against the real batchd on an ephemeral port with a temporary database.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/buf.h"

static int setup(void **state)
{
	const char *args[] = { "--workers", "2", "--max-body", "64K", NULL };

	*state = server_new(args);
	return 0;
}

static int job_count(const struct server *s)
{
	cJSON *j = api(s, "GET", "/api/jobs?limit=1000", NULL, 200);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs"));

	cJSON_Delete(j);
	return n;
}

static void expect_error(const struct server *s, const char *method, const char *path,
			 const char *body, long status, const char *code, const char *words)
{
	struct resp r;

	http_request(s, method, path, body, NULL, &r);
	if (r.status != status || !r.json || strcmp(jstr(r.json, "error.code"), code) ||
	    (words && !strstr(jstr(r.json, "error.message"), words))) {
		print_error("%s %s %s: want %ld %s \"%s\", got %ld %s\n", method, path,
			    body ? body : "", status, code, words ? words : "", r.status, r.body);
		resp_free(&r);
		fail();
	}
	resp_free(&r);
}

static void test_submit_and_follow(void **state)
{
	struct server *s = *state;
	struct resp r;
	char loc[128];
	cJSON *j, *t;

	http_request(s, "POST", "/api/jobs",
		     "{\"handler\": \"echo\", \"tasks\": [1, \"two\", {\"three\": [3]}],"
		     " \"name\": \"first\", \"priority\": 5, \"timeout_s\": 30, \"max_attempts\": 2}",
		     NULL, &r);
	assert_int_equal(r.status, 201);
	assert_non_null(resp_header(&r, "Location", loc, sizeof(loc)));
	assert_string_equal(loc, "/api/jobs/1");
	assert_int_equal(jnum(r.json, "id"), 1);
	assert_string_equal(jstr(r.json, "name"), "first");
	assert_string_equal(jstr(r.json, "handler"), "echo");
	assert_int_equal(jnum(r.json, "priority"), 5);
	assert_int_equal(jnum(r.json, "timeout_s"), 30);
	assert_int_equal(jnum(r.json, "max_attempts"), 2);
	assert_int_equal(jnum(r.json, "progress.total"), 3);
	assert_non_null(jstr(r.json, "created_at"));
	assert_int_equal(strlen(jstr(r.json, "created_at")), 24);	/* RFC 3339 ms Z */
	resp_free(&r);

	j = wait_job(s, 1, "succeeded", 30);
	assert_int_equal(jnum(j, "progress.succeeded"), 3);
	assert_int_equal(jnum(j, "progress.queued"), 0);
	assert_int_equal(jnum(j, "progress.running"), 0);
	assert_float_equal(jnum(j, "progress.fraction"), 1.0, 1e-9);
	assert_int_equal(jnum(j, "progress.eta_s"), 0);
	assert_non_null(jstr(j, "started_at"));
	assert_non_null(jstr(j, "finished_at"));
	cJSON_Delete(j);

	j = api(s, "GET", "/api/jobs/1/tasks", NULL, 200);
	assert_int_equal(jnum(j, "total"), 3);
	t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tasks"), 2);
	assert_int_equal(jnum(t, "index"), 2);
	assert_string_equal(jstr(t, "state"), "succeeded");
	assert_int_equal(jnum(t, "attempts"), 1);
	assert_int_equal(jnum(t, "result.three.0"), 3);
	assert_null(cJSON_GetObjectItem(t, "input"));	/* only when fetched alone */
	assert_true(jnum(t, "worker") >= 1);
	cJSON_Delete(j);

	j = api(s, "GET", "/api/jobs/1/tasks/1", NULL, 200);
	assert_string_equal(jstr(j, "input"), "two");
	assert_string_equal(jstr(j, "result"), "two");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "error")));
	cJSON_Delete(j);
}

static void test_list_and_paginate(void **state)
{
	struct server *s = *state;
	cJSON *j;
	char path[128];

	for (int i = 0; i < 5; i++)
		submit(s, "{\"handler\": \"noop\", \"tasks\": [null, null]}");
	cJSON_Delete(wait_job(s, 5, "succeeded", 30));

	j = api(s, "GET", "/api/jobs?limit=2", NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs")), 2);
	assert_int_equal(jnum(j, "jobs.0.id"), 5);	/* newest first */
	assert_int_equal(jnum(j, "jobs.1.id"), 4);
	snprintf(path, sizeof(path), "/api/jobs?limit=2&cursor=%s", jstr(j, "next"));
	cJSON_Delete(j);
	j = api(s, "GET", path, NULL, 200);
	assert_int_equal(jnum(j, "jobs.0.id"), 3);
	assert_int_equal(jnum(j, "jobs.1.id"), 2);
	snprintf(path, sizeof(path), "/api/jobs?limit=2&cursor=%s", jstr(j, "next"));
	cJSON_Delete(j);
	j = api(s, "GET", path, NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs")), 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "next")));
	cJSON_Delete(j);
	/* A page that ends exactly at the last job has no next page. */
	j = api(s, "GET", "/api/jobs?limit=5", NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs")), 5);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "next")));
	cJSON_Delete(j);
	j = api(s, "GET", "/api/jobs?limit=4", NULL, 200);
	assert_string_equal(jstr(j, "next"), "2");
	cJSON_Delete(j);

	submit(s, "{\"handler\": \"fail\", \"tasks\": [{}]}");
	cJSON_Delete(wait_job(s, 6, "failed", 30));
	j = api(s, "GET", "/api/jobs?state=failed", NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs")), 1);
	assert_int_equal(jnum(j, "jobs.0.id"), 6);
	cJSON_Delete(j);
	j = api(s, "GET", "/api/jobs?state=failed&limit=1", NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs")), 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "next")));
	cJSON_Delete(j);
	expect_error(s, "GET", "/api/jobs?state=bogus", NULL, 400, "invalid_request", "state");
	expect_error(s, "GET", "/api/jobs?limit=0", NULL, 400, "invalid_request", "limit");
	expect_error(s, "GET", "/api/jobs?cursor=x", NULL, 400, "invalid_request", "cursor");
	expect_error(s, "GET", "/api/jobs?cursor=0", NULL, 400, "invalid_request", "cursor");
}

static void test_tasks_filter_and_pages(void **state)
{
	struct server *s = *state;
	cJSON *j;

	/* Odd tasks fail, even ones succeed. */
	submit(s, "{\"handler\": \"fail\", \"tasks\": [{\"message\": \"m0\"}]}");
	cJSON_Delete(wait_job(s, 1, "failed", 30));
	submit(s, "{\"handler\": \"echo\", \"tasks\": [0,1,2,3,4,5,6,7,8,9]}");
	cJSON_Delete(wait_job(s, 2, "succeeded", 30));

	j = api(s, "GET", "/api/jobs/2/tasks?offset=7&limit=2", NULL, 200);
	assert_int_equal(jnum(j, "total"), 10);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 2);
	assert_int_equal(jnum(j, "tasks.0.index"), 7);
	assert_int_equal(jnum(j, "tasks.1.result"), 8);
	cJSON_Delete(j);
	/* result=false: the same page without the results. */
	j = api(s, "GET", "/api/jobs/2/tasks?offset=7&limit=2&result=false", NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 2);
	assert_int_equal(jnum(j, "tasks.1.index"), 8);
	assert_string_equal(jstr(j, "tasks.1.state"), "succeeded");
	assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tasks"), 1),
					"result"));
	cJSON_Delete(j);
	j = api(s, "GET", "/api/jobs/2/tasks?result=maybe", NULL, 400);
	assert_string_equal(jstr(j, "error.message"), "result must be true or false");
	cJSON_Delete(j);

	j = api(s, "GET", "/api/jobs/1/tasks?state=failed", NULL, 200);
	assert_int_equal(jnum(j, "total"), 1);
	assert_string_equal(jstr(j, "tasks.0.error"), "m0");
	cJSON_Delete(j);
	j = api(s, "GET", "/api/jobs/1/tasks?state=succeeded", NULL, 200);
	assert_int_equal(jnum(j, "total"), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 0);
	cJSON_Delete(j);

	/* from: the filter's tasks from that index on, however deep. */
	j = api(s, "GET", "/api/jobs/2/tasks?from=7&limit=2", NULL, 200);
	assert_int_equal(jnum(j, "from"), 7);
	assert_null(cJSON_GetObjectItem(j, "offset"));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 2);
	assert_int_equal(jnum(j, "tasks.0.index"), 7);
	cJSON_Delete(j);
	j = api(s, "GET", "/api/jobs/2/tasks?state=succeeded&from=8", NULL, 200);
	assert_int_equal(jnum(j, "total"), 10);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 2);
	assert_int_equal(jnum(j, "tasks.1.index"), 9);
	cJSON_Delete(j);
	j = api(s, "GET", "/api/jobs/1/tasks?state=failed&from=0", NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 1);
	cJSON_Delete(j);
	j = api(s, "GET", "/api/jobs/1/tasks?state=failed&from=1", NULL, 200);
	assert_int_equal(jnum(j, "total"), 1);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 0);
	cJSON_Delete(j);
	expect_error(s, "GET", "/api/jobs/2/tasks?from=x", NULL, 400, "invalid_request",
		     "from must be a task index");
	expect_error(s, "GET", "/api/jobs/2/tasks?from=3&offset=2", NULL, 400, "invalid_request",
		     "give offset or from, not both");

	expect_error(s, "GET", "/api/jobs/2/tasks?state=nope", NULL, 400, "invalid_request", "state");
	expect_error(s, "GET", "/api/jobs/2/tasks?offset=-1", NULL, 400, "invalid_request", "offset");
	expect_error(s, "GET", "/api/jobs/2/tasks?limit=5000", NULL, 400, "invalid_request", "limit");
	expect_error(s, "GET", "/api/jobs/99/tasks", NULL, 404, "not_found", "no job 99");
	expect_error(s, "GET", "/api/jobs/2/tasks/10", NULL, 404, "not_found", "no task 10");
}

static void test_bad_requests_write_nothing(void **state)
{
	struct server *s = *state;
	char big[70 * 1024];

	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1,]}", 400,
		     "bad_json", "at byte 32");
	expect_error(s, "POST", "/api/jobs", "", 400, "invalid_request", "empty");
	expect_error(s, "POST", "/api/jobs", "[1, 2]", 400, "invalid_request", "JSON object");
	expect_error(s, "POST", "/api/jobs", "{\"tasks\": [1]}", 400, "invalid_request",
		     "\"handler\" is required");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\"}", 400, "invalid_request",
		     "\"tasks\" is required");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": 7, \"tasks\": [1]}", 400,
		     "invalid_request", "\"handler\" must be");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": {}}", 400,
		     "invalid_request", "\"tasks\" must be an array");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": []}", 400,
		     "invalid_request", "must not be empty");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1], \"timeout_s\": -1}",
		     400, "invalid_request", "\"timeout_s\"");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1], \"max_attempts\": 1.5}",
		     400, "invalid_request", "\"max_attempts\"");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1], \"priority\": \"hi\"}",
		     400, "invalid_request", "\"priority\"");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1], \"name\": 3}",
		     400, "invalid_request", "\"name\"");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1], \"timeout\": 3}",
		     400, "invalid_request", "unknown field \"timeout\"");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1e999]}",
		     400, "invalid_request", "tasks[0]: number out of range");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 1}, {\"ms\": \"x\"}]}",
		     400, "invalid_request", "tasks[1].ms");
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"nosuch\", \"tasks\": [1]}",
		     422, "unknown_handler", "unknown handler \"nosuch\"");
	/* Invalid UTF-8 in a string. */
	expect_error(s, "POST", "/api/jobs", "{\"handler\": \"echo\", \"tasks\": [\"\xff\xfe\"]}",
		     400, "bad_json", "UTF-8");

	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "{\"handler\": \"noop\", \"tasks\": [1]", 32);
	big[sizeof(big) - 2] = '}';
	expect_error(s, "POST", "/api/jobs", big, 413, "too_large", "--max-body");

	assert_int_equal(job_count(s), 0);
}

static void test_not_found_and_method(void **state)
{
	struct server *s = *state;
	struct resp r;
	char allow[128];

	expect_error(s, "GET", "/api/jobs/12345", NULL, 404, "not_found", "no job 12345");
	expect_error(s, "GET", "/api/nope", NULL, 404, "not_found", "/api/nope");
	expect_error(s, "GET", "/api/jobs/abc", NULL, 404, "not_found", NULL);
	expect_error(s, "POST", "/api/jobs/1/cancel", NULL, 404, "not_found", "no job 1");
	expect_error(s, "POST", "/api/jobs/1/retry", NULL, 404, "not_found", "no job 1");
	expect_error(s, "DELETE", "/api/jobs/1", NULL, 404, "not_found", "no job 1");
	/* A %00 would cut the decoded path or a parameter short: refused
	 * whole, wherever it is, and a file's path with it. */
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"noop\", \"tasks\": [1]}"),
			      "succeeded", 30));
	expect_error(s, "GET", "/api/jobs/1%00x", NULL, 400, "invalid_request", "%00");
	expect_error(s, "GET", "/api/jobs/1/tasks?state=queued%00x", NULL, 400,
		     "invalid_request", "%00");
	expect_error(s, "GET", "/index.html%00.png", NULL, 400, "invalid_request", "%00");
	cJSON_Delete(api(s, "GET", "/api/jobs/1", NULL, 200));

	http_request(s, "PUT", "/api/jobs", "{}", NULL, &r);
	assert_int_equal(r.status, 405);
	assert_non_null(resp_header(&r, "Allow", allow, sizeof(allow)));
	assert_non_null(strstr(allow, "GET"));
	assert_non_null(strstr(allow, "POST"));
	assert_string_equal(jstr(r.json, "error.code"), "method_not_allowed");
	resp_free(&r);
	http_request(s, "GET", "/api/jobs/1/cancel", NULL, NULL, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(resp_header(&r, "Allow", allow, sizeof(allow)), "POST");
	resp_free(&r);
}

static void test_idempotency_key(void **state)
{
	struct server *s = *state;
	const char *h[] = { "Idempotency-Key: order-42", NULL };
	const char *body = "{\"handler\": \"noop\", \"tasks\": [1, 2]}";
	struct resp r1, r2;

	http_request(s, "POST", "/api/jobs", body, h, &r1);
	http_request(s, "POST", "/api/jobs", body, h, &r2);
	assert_int_equal(r1.status, 201);
	assert_int_equal(r2.status, 200);
	assert_int_equal(jnum(r1.json, "id"), jnum(r2.json, "id"));
	assert_int_equal(job_count(s), 1);
	resp_free(&r1);
	resp_free(&r2);

	/* The same key with another request: refused, not the first job. */
	http_request(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1, 2, 3]}",
		     h, &r2);
	assert_int_equal(r2.status, 422);
	assert_string_equal(jstr(r2.json, "error.code"), "idempotency_key_reused");
	assert_non_null(strstr(jstr(r2.json, "error.message"),
			       "Idempotency-Key \"order-42\" was used for job 1 with another request"));
	assert_int_equal(job_count(s), 1);
	resp_free(&r2);
	/* The first request still replays; a key never used still creates. */
	http_request(s, "POST", "/api/jobs", body, h, &r2);
	assert_int_equal(r2.status, 200);
	resp_free(&r2);
	h[0] = "Idempotency-Key: order-43";
	http_request(s, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1, 2, 3]}",
		     h, &r2);
	assert_int_equal(r2.status, 201);
	assert_int_equal(job_count(s), 2);
	resp_free(&r2);
}

struct watch {
	int64_t id;
	double at_least;	/* finished tasks */
};

/* The sum of the job's progress figures named (NULL-terminated). */
static double job_figures(const struct server *s, int64_t id, const char *const *names)
{
	cJSON *j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
	double n = 0;

	for (; *names; names++)
		n += jnum(j, *names);
	cJSON_Delete(j);
	return n;
}

static int finished_some(const struct server *s, void *ctx)
{
	const struct watch *w = ctx;

	return job_figures(s, w->id, (const char *[]){ "progress.succeeded", "progress.failed",
							NULL }) >= w->at_least;
}

static int none_running(const struct server *s, void *ctx)
{
	const struct watch *w = ctx;

	return job_figures(s, w->id, (const char *[]){ "progress.running", NULL }) == 0;
}

/* Finished tasks of job id, checked against its own counts: every task
 * is either queued or final, none left marked running. */
static double finished_tasks(const struct server *s, int64_t id)
{
	cJSON *j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
	cJSON *t = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks?state=running", (long long)id);
	double done = jnum(j, "progress.succeeded") + jnum(j, "progress.failed");

	assert_int_equal(jnum(t, "total"), 0);
	assert_int_equal(jnum(j, "progress.queued"), jnum(j, "progress.total") - done);
	cJSON_Delete(t);
	cJSON_Delete(j);
	return done;
}

/* Pause: the running tasks finish, no other starts (not even those handed
 * to a worker ahead of time), other jobs run meanwhile, and a restart
 * keeps it paused; resume carries on where it stopped. */
static void test_pause_resume(void **state)
{
	struct server *s = *state;
	const char *args[] = { "--workers", "2", "--max-body", "64K", NULL };
	struct watch w = { 0, 20 };
	struct buf body = BUF_INIT;
	double done;
	int64_t other;
	cJSON *j;

	/* Short tasks: each worker holds one more behind the one it runs. */
	buf_adds(&body, "{\"handler\": \"sleep\", \"name\": \"long\", \"tasks\": [");
	for (int i = 0; i < 300; i++)
		buf_addf(&body, "%s{\"ms\": 20}", i ? "," : "");
	buf_adds(&body, "]}");
	w.id = submit(s, body.data);
	assert_true(wait_until(finished_some, s, &w, 60));
	j = apif(s, "POST", 200, NULL, "/api/jobs/%lld/pause", (long long)w.id);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "paused")));
	assert_string_equal(jstr(j, "state"), "running");
	cJSON_Delete(j);
	assert_true(wait_until(none_running, s, &w, 30));
	done = finished_tasks(s, w.id);
	assert_true(done < 300);
	assert_true(server_log_has(s, "msg=\"job paused\""));

	/* Other work runs on the idle workers; none of the paused job's. */
	other = submit(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 50}, {\"ms\": 50}, {\"ms\": 50}]}");
	cJSON_Delete(wait_job(s, other, "succeeded", 30));
	assert_true(finished_tasks(s, w.id) == done);
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)w.id);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "paused")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "progress"), "eta_s")));
	cJSON_Delete(j);
	/* Pausing again changes nothing. */
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/pause", (long long)w.id));

	/* A restart keeps it paused. */
	assert_int_equal(server_stop(s), 0);
	server_start(s, args);
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)w.id);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "paused")));
	cJSON_Delete(j);
	other = submit(s, "{\"handler\": \"echo\", \"tasks\": [1, 2, 3, 4]}");
	cJSON_Delete(wait_job(s, other, "succeeded", 30));
	assert_true(finished_tasks(s, w.id) == done);

	/* Resumed: every task runs, each once. */
	j = apif(s, "POST", 200, NULL, "/api/jobs/%lld/resume", (long long)w.id);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "paused")));
	cJSON_Delete(j);
	cJSON_Delete(wait_job(s, w.id, "succeeded", 60));
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks?limit=1000", (long long)w.id);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")), 300);
	for (int i = 0; i < 300; i++)
		assert_int_equal(jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tasks"), i),
				      "attempts"), 1);
	cJSON_Delete(j);

	/* Submitted paused: queued, and nothing of it starts meanwhile. */
	w.id = submit(s, "{\"handler\": \"echo\", \"paused\": true, \"tasks\": [1, 2, 3]}");
	other = submit(s, "{\"handler\": \"echo\", \"tasks\": [4]}");
	cJSON_Delete(wait_job(s, other, "succeeded", 30));
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)w.id);
	assert_string_equal(jstr(j, "state"), "queued");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "paused")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "started_at")));
	cJSON_Delete(j);
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/resume", (long long)w.id));
	cJSON_Delete(wait_job(s, w.id, "succeeded", 30));

	/* Only an active job can be paused or resumed. */
	expect_error(s, "POST", "/api/jobs/1/pause", NULL, 409, "conflict",
		     "job 1 has succeeded; only a queued or running job can be paused");
	expect_error(s, "POST", "/api/jobs/1/resume", NULL, 409, "conflict", "can be resumed");
	expect_error(s, "POST", "/api/jobs/99/pause", NULL, 404, "not_found", "no job 99");

	/* A paused job can be cancelled: no longer paused, nothing left. */
	w.id = submit(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 20000}, {\"ms\": 20000}]}");
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/resume", (long long)w.id));
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/pause", (long long)w.id));
	j = apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)w.id);
	assert_string_equal(jstr(j, "state"), "cancelled");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "paused")));
	cJSON_Delete(j);
	buf_release(&body);
}

static void test_cancel_retry_delete(void **state)
{
	struct server *s = *state;
	cJSON *j;
	int64_t id = submit(s, "{\"handler\": \"sleep\", \"tasks\": "
			    "[{\"ms\": 20000}, {\"ms\": 20000}, {\"ms\": 20000}, {\"ms\": 20000}, {\"ms\": 20000}]}");

	cJSON_Delete(wait_job(s, id, "running", 30));
	/* Active: cannot be deleted. */
	expect_error(s, "DELETE", "/api/jobs/1", NULL, 409, "conflict", "cancel it");
	j = apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id);
	assert_string_equal(jstr(j, "state"), "cancelled");
	assert_int_equal(jnum(j, "progress.cancelled"), 5);
	assert_int_equal(jnum(j, "progress.running"), 0);
	cJSON_Delete(j);
	/* Cancelling again is harmless. */
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));

	j = apif(s, "POST", 200, NULL, "/api/jobs/%lld/retry", (long long)id);
	assert_int_equal(jnum(j, "progress.cancelled"), 0);
	assert_true(!strcmp(jstr(j, "state"), "queued") || !strcmp(jstr(j, "state"), "running"));
	cJSON_Delete(j);
	cJSON_Delete(wait_job(s, id, "running", 30));
	cJSON_Delete(apif(s, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id));

	/* A succeeded job has nothing to retry and cannot be cancelled. */
	int64_t ok = submit(s, "{\"handler\": \"noop\", \"tasks\": [1]}");

	cJSON_Delete(wait_job(s, ok, "succeeded", 30));
	expect_error(s, "POST", "/api/jobs/2/retry", NULL, 409, "conflict", "no failed or cancelled tasks");
	expect_error(s, "POST", "/api/jobs/2/cancel", NULL, 409, "conflict", "already succeeded");

	cJSON_Delete(apif(s, "DELETE", 204, NULL, "/api/jobs/%lld", (long long)id));
	expect_error(s, "GET", "/api/jobs/1", NULL, 404, "not_found", NULL);
	expect_error(s, "GET", "/api/jobs/1/tasks/0", NULL, 404, "not_found", NULL);
	assert_int_equal(job_count(s), 1);
}

static void test_progress_etag(void **state)
{
	struct server *s = *state;
	struct resp r;
	char etag[64], hdr[96];
	const char *h[] = { hdr, NULL };

	submit(s, "{\"handler\": \"noop\", \"tasks\": [1, 2, 3]}");
	cJSON_Delete(wait_job(s, 1, "succeeded", 30));
	http_request(s, "GET", "/api/progress", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(resp_header(&r, "ETag", etag, sizeof(etag)));
	assert_int_equal(jnum(r.json, "jobs.0.id"), 1);
	assert_int_equal(jnum(r.json, "jobs.0.progress.succeeded"), 3);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "workers")), 2);
	assert_int_equal(jnum(r.json, "totals.jobs.succeeded"), 1);
	assert_int_equal(jnum(r.json, "totals.tasks.succeeded"), 3);
	assert_int_equal(jnum(r.json, "totals.workers.total"), 2);
	resp_free(&r);

	snprintf(hdr, sizeof(hdr), "If-None-Match: %s", etag);
	http_request(s, "GET", "/api/progress", NULL, h, &r);
	assert_int_equal(r.status, 304);
	assert_int_equal(r.len, 0);
	resp_free(&r);

	/* Anything new changes the ETag. */
	submit(s, "{\"handler\": \"noop\", \"tasks\": [1]}");
	cJSON_Delete(wait_job(s, 2, "succeeded", 30));
	http_request(s, "GET", "/api/progress", NULL, h, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

/* An ETag of one run of the server never matches another's: the version
 * in it starts again at every start, and a page open across a restart
 * would otherwise keep what it had (old worker pids) on a 304. Each run
 * here comes up on the same database and settles the same way. */
static void test_progress_etag_across_restarts(void **state)
{
	struct server *s = *state;
	const char *args[] = { "--workers", "2", "--max-body", "64K", NULL };
	struct resp r;
	char etag[64], again[64], hdr[96];
	const char *h[] = { hdr, NULL };
	int two = 2;

	submit(s, "{\"handler\": \"noop\", \"tasks\": [1, 2, 3]}");
	cJSON_Delete(wait_job(s, 1, "succeeded", 30));
	assert_int_equal(server_stop(s), 0);

	server_start(s, args);
	assert_true(wait_until(workers_idle, s, &two, 30));
	http_request(s, "GET", "/api/progress", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(resp_header(&r, "ETag", etag, sizeof(etag)));
	resp_free(&r);
	snprintf(hdr, sizeof(hdr), "If-None-Match: %s", etag);
	http_request(s, "GET", "/api/progress", NULL, h, &r);
	assert_int_equal(r.status, 304);
	resp_free(&r);
	assert_int_equal(server_stop(s), 0);

	server_start(s, args);
	assert_true(wait_until(workers_idle, s, &two, 30));
	http_request(s, "GET", "/api/progress", NULL, h, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(resp_header(&r, "ETag", again, sizeof(again)));
	assert_string_not_equal(again, etag);
	assert_int_equal(jnum(r.json, "jobs.0.progress.succeeded"), 3);
	resp_free(&r);
}

static void test_workers_handlers_health(void **state)
{
	struct server *s = *state;
	cJSON *j;
	int found = 0;

	j = api(s, "GET", "/api/workers", NULL, 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "workers")), 2);
	assert_true(jnum(j, "workers.0.pid") > 1);
	assert_non_null(jstr(j, "workers.0.state"));
	assert_non_null(jstr(j, "workers.0.started_at"));
	assert_true(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "workers"), 0), "handlers")));
	cJSON_Delete(j);

	j = api(s, "GET", "/api/handlers", NULL, 200);
	const cJSON *h;

	cJSON_ArrayForEach(h, cJSON_GetObjectItem(j, "handlers")) {
		if (!strcmp(jstr(h, "name"), "sleep")) {
			assert_string_equal(jstr(h, "kind"), "builtin");
			found = 1;
		}
	}
	assert_true(found);
	/* --max-body as given (64K), the others by default. */
	assert_int_equal(jnum(j, "limits.max_body"), 64 << 10);
	assert_int_equal(jnum(j, "limits.max_tasks"), 1000000);
	assert_int_equal(jnum(j, "limits.default_timeout_s"), 3600);
	cJSON_Delete(j);

	j = api(s, "GET", "/healthz", NULL, 200);
	assert_string_equal(jstr(j, "status"), "ok");
	assert_int_equal(jnum(j, "workers"), 2);
	cJSON_Delete(j);
}

/* With a token: every /api route refuses a missing or wrong one, and
 * /healthz stays open. */
static void test_token(void **state)
{
	struct server t;
	const char *args[] = { "--workers", "1", "--token", "s3cret-token", NULL };
	const char *wrong[] = { "Authorization: Bearer s3cret-tokem", NULL };
	const char *paths[] = { "/api/jobs", "/api/progress", "/api/workers",
				"/api/handlers", "/api/jobs/1", "/api/jobs/1/tasks",
				"/api/nothing-here", NULL };
	struct resp r;
	char www[128];

	(void)state;
	server_init(&t);
	server_start(&t, args);
	for (int i = 0; paths[i]; i++) {
		http_request(&t, "GET", paths[i], NULL, NULL, &r);
		assert_int_equal(r.status, 401);
		assert_string_equal(jstr(r.json, "error.code"), "unauthorized");
		assert_non_null(resp_header(&r, "WWW-Authenticate", www, sizeof(www)));
		resp_free(&r);
		http_request(&t, "GET", paths[i], NULL, wrong, &r);
		assert_int_equal(r.status, 401);
		resp_free(&r);
	}
	http_request(&t, "POST", "/api/jobs", "{\"handler\": \"noop\", \"tasks\": [1]}", NULL, &r);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	/* The error routes too: a wrong method, HEAD, OPTIONS, a body over
	 * the limit, "/api" itself, an escaped path: 401, never 404, 405 or
	 * 413, which would tell an outsider something. */
	const struct { const char *method, *path; } others[] = {
		{ "PUT", "/api/jobs" }, { "DELETE", "/api/jobs/1" }, { "HEAD", "/api/progress" },
		{ "OPTIONS", "/api/jobs" }, { "GET", "/api" }, { "GET", "/api/" },
		{ "GET", "/api%2Fjobs" }, { "GET", "/api/jobs/1/../../progress" },
		{ "POST", "/api/jobs/1/cancel" }, { "POST", "/api/jobs/1/retry" },
		{ "GET", "/api/jobs/1/tasks/0" }, { "GET", "/api/jobs/1%00x" },
	};

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		http_request(&t, others[i].method, others[i].path, NULL, NULL, &r);
		if (r.status != 401) {
			print_error("%s %s: %ld\n", others[i].method, others[i].path, r.status);
			fail();
		}
		resp_free(&r);
	}
	const char *huge[] = { "Content-Length: 999999999999", NULL };

	/* Answered at once, the body unread, not left to wait for the
	 * rest of a body that never comes. */
	http_request(&t, "POST", "/api/jobs", "{}", huge, &r);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	cJSON_Delete(api(&t, "GET", "/healthz", NULL, 200));

	/* The scheme's name is case-insensitive (RFC 9110, 11.1); the token
	 * is not, nor is a missing space forgiven. */
	const char *const cases[][2] = {
		{ "Authorization: bearer s3cret-token", "200" },
		{ "Authorization: BEARER s3cret-token", "200" },
		{ "Authorization: bEaReR s3cret-token", "200" },
		{ "Authorization: Bearer S3CRET-TOKEN", "401" },
		{ "Authorization: Bearers3cret-token", "401" },
		{ "Authorization: Basic s3cret-token", "401" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *h[] = { cases[i][0], NULL };

		http_request(&t, "GET", "/api/progress", NULL, h, &r);
		if (r.status != atol(cases[i][1])) {
			print_error("%s: %ld\n", cases[i][0], r.status);
			fail();
		}
		resp_free(&r);
	}
	t.token = "s3cret-token";
	submit(&t, "{\"handler\": \"noop\", \"tasks\": [1]}");
	cJSON_Delete(wait_job(&t, 1, "succeeded", 30));
	server_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_submit_and_follow, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_list_and_paginate, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_tasks_filter_and_pages, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests_write_nothing, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_idempotency_key, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_retry_delete, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_progress_etag, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_progress_etag_across_restarts, setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_workers_handlers_health, setup, server_teardown),
		cmocka_unit_test(test_token),
	};

	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
