/*
 * Integration tests of GET /metrics: the figures after real jobs (final
 * states, durations, worker restarts by cause, requests by route, commits),
 * the gauges while tasks run, the exposition format itself, and who may
 * read it when a token is set.
 */
#include "harness.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int setup(void **state)
{
	const char *args[] = { "--workers", "2", NULL };

	*state = server_new(args);
	return 0;
}

/* The body of GET /metrics (free it); fails the test unless 200. */
static char *scrape(const struct server *s)
{
	struct resp r;
	char type[128];
	char *body;

	http_request(s, "GET", "/metrics", NULL, NULL, &r);
	if (r.status != 200) {
		print_error("GET /metrics: HTTP %ld: %s\n", r.status, r.body ? r.body : "");
		resp_free(&r);
		fail();
	}
	assert_non_null(resp_header(&r, "Content-Type", type, sizeof(type)));
	assert_non_null(strstr(type, "text/plain"));
	assert_non_null(strstr(type, "version=0.0.4"));
	body = r.body;
	r.body = NULL;
	resp_free(&r);
	return body;
}

/* The value of the sample "series" (name and labels exactly as rendered),
 * or NAN when it is absent. */
static double sample(const char *body, const char *series)
{
	size_t n = strlen(series);
	const char *p = body;

	while (p && *p) {
		if (!strncmp(p, series, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NAN;
}

struct want {
	const char *series;
	double value;
};

static int has_sample(const struct server *s, void *ctx)
{
	const struct want *w = ctx;
	char *body = scrape(s);
	double v = sample(body, w->series);

	free(body);
	return v == w->value;
}

/* Waits until the series shows value (what the server learns from its
 * workers arrives a little after the HTTP reply). */
static void wait_sample(const struct server *s, const char *series, double value)
{
	struct want w = { series, value };

	if (!wait_until(has_sample, s, &w, 30)) {
		char *body = scrape(s);

		print_error("%s: want %g, got %g\n%s\n", series, value, sample(body, series), body);
		free(body);
		fail();
	}
}

static int name_char(int c, int first)
{
	return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c));
}

static int declared(char typed[][96], int n, const char *family)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(typed[i], family))
			return 1;
	return 0;
}

/*
 * Checks the page against the text exposition format: every sample's
 * family has # HELP and # TYPE before it, names and labels are well formed,
 * values parse, and every histogram's buckets are cumulative and end with
 * +Inf equal to _count.
 */
static void check_format(const char *body)
{
	char typed[64][96];
	int ntyped = 0, samples = 0;
	const char *line = body;
	double last_bucket = -1;

	assert_true(strlen(body) > 0 && body[strlen(body) - 1] == '\n');
	while (*line) {
		const char *eol = strchr(line, '\n');
		char text[1024], name[96], family[96];
		size_t len = (size_t)(eol - line), k = 0;
		char *p, *end;

		assert_non_null(eol);
		assert_true(len > 0 && len < sizeof(text));
		memcpy(text, line, len);
		text[len] = '\0';
		line = eol + 1;
		if (!strncmp(text, "# TYPE ", 7)) {
			char type[32];

			assert_int_equal(sscanf(text + 7, "%95s %31s", typed[ntyped], type), 2);
			assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
				    !strcmp(type, "histogram"));
			ntyped++;
			assert_true(ntyped < 64);
			continue;
		}
		if (!strncmp(text, "# HELP ", 7))
			continue;
		assert_true(text[0] != '#');
		p = text;
		while (name_char((unsigned char)*p, p == text) && k < sizeof(name) - 1)
			name[k++] = *p++;
		name[k] = '\0';
		assert_true(k > 0);
		if (*p == '{') {
			/* label="value", ... } with escapes inside values */
			p++;
			while (*p != '}') {
				assert_true(name_char((unsigned char)*p, 1));
				while (name_char((unsigned char)*p, 0))
					p++;
				assert_true(p[0] == '=' && p[1] == '"');
				p += 2;
				while (*p && *p != '"')
					p += *p == '\\' ? 2 : 1;
				assert_true(*p == '"');
				p++;
				if (*p == ',')
					p++;
				assert_true(*p);
			}
			p++;
		}
		assert_true(*p == ' ');
		if (strcmp(p + 1, "+Inf") && strcmp(p + 1, "NaN")) {
			strtod(p + 1, &end);
			assert_true(end != p + 1 && *end == '\0');
		}
		/* Its family was declared: the name itself, or a histogram's
		 * name before _bucket, _sum or _count. */
		snprintf(family, sizeof(family), "%s", name);
		if (!declared(typed, ntyped, family)) {
			static const char *const suffixes[] = { "_bucket", "_sum", "_count" };

			for (int i = 0; i < 3; i++) {
				size_t fl = strlen(name), sl = strlen(suffixes[i]);

				if (fl > sl && !strcmp(name + fl - sl, suffixes[i])) {
					family[fl - sl] = '\0';
					break;
				}
			}
		}
		if (!declared(typed, ntyped, family))
			fail_msg("sample %s has no # TYPE line before it", name);
		/* Buckets: cumulative, and +Inf is the count. */
		if (strstr(name, "_bucket")) {
			double v = strtod(p + 1, NULL);

			if (strstr(text, "le=\"+Inf\"")) {
				const char *count = strstr(line, "_count");

				assert_non_null(count);
				assert_true(v >= last_bucket);
				assert_true(v == strtod(strchr(count, ' ') + 1, NULL));
				last_bucket = -1;
			} else {
				assert_true(v >= last_bucket);
				last_bucket = v;
			}
		}
		samples++;
	}
	assert_true(samples > 10);
}

static void test_metrics_after_jobs(void **state)
{
	struct server *s = *state;
	struct resp r;
	char *body;
	cJSON *j;
	int64_t id;

	/* Every handler's series exist before its first task. */
	body = scrape(s);
	check_format(body);
	assert_true(sample(body, "batchd_tasks_total{handler=\"echo\",state=\"succeeded\"}") == 0);
	assert_true(sample(body, "batchd_worker_restarts_total{cause=\"crash\"}") == 0);
	assert_true(sample(body, "batchd_worker_restarts_total{cause=\"memory\"}") == 0);
	assert_true(sample(body, "batchd_workers{state=\"configured\"}") == 2);
	assert_true(sample(body, "batchd_build_info{version=\"" BATCHD_VERSION "\"}") == 1);
	free(body);

	id = submit(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 1}, {\"ms\": 1}, {\"ms\": 1}]}");
	cJSON_Delete(wait_job(s, id, "succeeded", 30));
	id = submit(s, "{\"handler\": \"fail\", \"tasks\": [{}, {}]}");
	cJSON_Delete(wait_job(s, id, "failed", 30));
	id = submit(s, "{\"handler\": \"crash\", \"tasks\": [{}]}");
	cJSON_Delete(wait_job(s, id, "failed", 30));
	id = submit(s, "{\"handler\": \"sleep\", \"timeout_s\": 0.2, \"tasks\": [{\"ms\": 30000}]}");
	cJSON_Delete(wait_job(s, id, "failed", 30));
	http_request(s, "GET", "/no/such/page", NULL, NULL, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	http_request(s, "BREW", "/api/jobs", NULL, NULL, &r);
	resp_free(&r);

	wait_sample(s, "batchd_worker_restarts_total{cause=\"crash\"}", 1);
	/* The dashboard's figures: one worker replaced, crashed; the
	 * timed-out sleep was stopped in its worker, which stays. */
	j = api(s, "GET", "/api/progress", NULL, 200);
	assert_int_equal(jnum(j, "totals.workers.restarts"), 1);
	assert_int_equal(jnum(j, "totals.workers.crashes"), 1);
	cJSON_Delete(j);
	body = scrape(s);
	check_format(body);
	assert_true(sample(body, "batchd_tasks_total{handler=\"sleep\",state=\"succeeded\"}") == 3);
	assert_true(sample(body, "batchd_tasks_total{handler=\"sleep\",state=\"failed\"}") == 1);
	assert_true(sample(body, "batchd_tasks_total{handler=\"fail\",state=\"failed\"}") == 2);
	assert_true(sample(body, "batchd_tasks_total{handler=\"crash\",state=\"failed\"}") == 1);
	assert_true(sample(body, "batchd_tasks_total{handler=\"echo\",state=\"succeeded\"}") == 0);
	/* Durations come from the workers' results: the three sleeps and the
	 * two failures; a crash and a timeout report none. */
	assert_true(sample(body, "batchd_task_duration_seconds_count{handler=\"sleep\"}") == 3);
	assert_true(sample(body, "batchd_task_duration_seconds_count{handler=\"fail\"}") == 2);
	assert_true(sample(body, "batchd_task_duration_seconds_sum{handler=\"sleep\"}") > 0);
	assert_true(sample(body, "batchd_task_duration_seconds_bucket{handler=\"sleep\",le=\"+Inf\"}") == 3);
	assert_true(sample(body, "batchd_tasks_running{handler=\"sleep\"}") == 0);
	assert_true(sample(body, "batchd_tasks_queued{handler=\"sleep\"}") == 0);
	assert_true(sample(body, "batchd_worker_restarts_total{cause=\"cancel\"}") == 0);
	assert_true(sample(body, "batchd_worker_restarts_total{cause=\"timeout\"}") == 0);
	/* Requests by route pattern, never by raw path. */
	assert_true(sample(body, "batchd_http_requests_total{method=\"POST\",route=\"/api/jobs\",status=\"201\"}") == 4);
	assert_true(sample(body, "batchd_http_requests_total{method=\"GET\",route=\"/api/jobs/{id}\",status=\"200\"}") >= 4);
	assert_true(sample(body, "batchd_http_requests_total{method=\"GET\",route=\"other\",status=\"404\"}") == 1);
	assert_true(sample(body, "batchd_http_requests_total{method=\"other\",route=\"/api/jobs\",status=\"405\"}") == 1);
	assert_null(strstr(body, "/no/such/page"));
	assert_true(sample(body, "batchd_db_commit_duration_seconds_count") >= 4);
	assert_true(sample(body, "batchd_db_commit_failures_total") == 0);
	free(body);
}

/* The one worker has answered a task (the stop of its cancelled one). */
static int answered_stop(const struct server *s, void *ctx)
{
	cJSON *j = api(s, "GET", "/api/workers", NULL, 200);
	int ok = jnum(j, "workers.0.tasks_done") >= 1 && !strcmp(jstr(j, "workers.0.state"), "idle");

	(void)ctx;
	cJSON_Delete(j);
	return ok;
}

/* Gauges while tasks run and wait, then cancellation. */
static void test_metrics_gauges_and_cancel(void **state)
{
	struct server t;
	const char *args[] = { "--workers", "1", NULL };
	cJSON *j;
	char *body;
	int64_t id;

	(void)state;
	server_init(&t);
	server_start(&t, args);
	id = submit(&t, "{\"handler\": \"sleep\", \"tasks\": "
		    "[{\"ms\": 30000}, {\"ms\": 30000}, {\"ms\": 30000}]}");
	cJSON_Delete(wait_job(&t, id, "running", 30));
	wait_sample(&t, "batchd_tasks_running{handler=\"sleep\"}", 1);
	body = scrape(&t);
	assert_true(sample(body, "batchd_tasks_queued{handler=\"sleep\"}") == 2);
	assert_true(sample(body, "batchd_workers{state=\"busy\"}") == 1);
	free(body);

	j = apif(&t, "POST", 200, NULL, "/api/jobs/%lld/cancel", (long long)id);
	cJSON_Delete(j);
	assert_true(wait_until(answered_stop, &t, NULL, 30));
	body = scrape(&t);
	assert_true(sample(body, "batchd_tasks_total{handler=\"sleep\",state=\"cancelled\"}") == 3);
	assert_true(sample(body, "batchd_tasks_running{handler=\"sleep\"}") == 0);
	assert_true(sample(body, "batchd_tasks_queued{handler=\"sleep\"}") == 0);
	assert_true(sample(body, "batchd_worker_restarts_total{cause=\"crash\"}") == 0);
	assert_true(sample(body, "batchd_worker_restarts_total{cause=\"cancel\"}") == 0);
	free(body);
	/* The cancelled sleep stopped in its worker: nothing replaced. */
	j = api(&t, "GET", "/api/progress", NULL, 200);
	assert_int_equal(jnum(j, "totals.workers.restarts"), 0);
	assert_int_equal(jnum(j, "totals.workers.crashes"), 0);
	cJSON_Delete(j);
	server_free(&t);
}

/* A token guards /metrics, unless --metrics-public (or its variable). */
static void test_metrics_token(void **state)
{
	struct server t;
	const char *guarded[] = { "--workers", "1", "--token", "tok-123", NULL };
	const char *open_flag[] = { "--workers", "1", "--token", "tok-123", "--metrics-public", NULL };
	struct resp r;
	char *body;

	(void)state;
	server_init(&t);
	server_start(&t, guarded);
	/* However the path is spelt that the router takes for /metrics. */
	for (const char *const *p = (const char *const[]){ "/metrics", "/metrics/",
							   "/metrics%2F", NULL }; *p; p++) {
		http_request(&t, "GET", *p, NULL, NULL, &r);
		if (r.status != 401) {
			print_error("GET %s: %ld\n", *p, r.status);
			fail();
		}
		assert_string_equal(jstr(r.json, "error.code"), "unauthorized");
		resp_free(&r);
	}
	t.token = "tok-123";
	body = scrape(&t);
	free(body);
	t.token = NULL;
	server_stop(&t);

	server_start(&t, open_flag);
	body = scrape(&t);
	free(body);
	/* Only /metrics is opened. */
	http_request(&t, "GET", "/api/jobs", NULL, NULL, &r);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	server_stop(&t);

	setenv("BATCHD_METRICS_PUBLIC", "true", 1);
	server_start(&t, guarded);
	unsetenv("BATCHD_METRICS_PUBLIC");
	body = scrape(&t);
	free(body);
	server_stop(&t);

	setenv("BATCHD_METRICS_PUBLIC", "maybe", 1);
	truncate(t.log, 0);	/* the port is read from the log */
	assert_int_not_equal(server_try_start(&t, guarded, 30), 0);
	unsetenv("BATCHD_METRICS_PUBLIC");
	assert_true(server_log_has(&t, "BATCHD_METRICS_PUBLIC"));
	server_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_metrics_after_jobs, setup, server_teardown),
		cmocka_unit_test(test_metrics_gauges_and_cancel),
		cmocka_unit_test(test_metrics_token),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
