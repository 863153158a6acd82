/*
 * Unit tests of the metrics module (server/metrics.c) on its own: label
 * escaping, histogram buckets, bounded label values, and the rendering
 * without a scheduler or a pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../db/store.h"
#include "../../server/metrics.h"

static char *render(void)
{
	struct buf b = BUF_INIT;

	metrics_render(&b, NULL, NULL);
	return buf_detach(&b, NULL);
}

static void test_labels_escaped(void **state)
{
	char *page;

	(void)state;
	metrics_init(NULL);
	metrics_tasks_final("we\"ird\\name\nx", ST_SUCCEEDED, 2);
	metrics_commit(NULL, 100, 1);
	page = render();
	assert_non_null(strstr(page,
		"batchd_tasks_total{handler=\"we\\\"ird\\\\name\\nx\",state=\"succeeded\"} 2\n"));
	free(page);
	metrics_free();
}

/* Tasks count once their group transaction commits: not while it is
 * open, and never when it fails or is rolled back (a full disk, where the
 * same tasks run again and again, counted each time before). */
static void test_tasks_count_once_committed(void **state)
{
	char *page;

	(void)state;
	metrics_init(NULL);
	metrics_tasks_final("h", ST_SUCCEEDED, 3);
	metrics_tasks_final("h", ST_FAILED, 1);
	page = render();
	assert_non_null(strstr(page, "batchd_tasks_total{handler=\"h\",state=\"succeeded\"} 0\n"));
	free(page);
	metrics_commit(NULL, 100, 1);
	metrics_tasks_final("h", ST_SUCCEEDED, 5);
	metrics_commit(NULL, 100, 0);		/* the commit failed */
	metrics_tasks_final("h", ST_SUCCEEDED, 7);
	metrics_discard();			/* rolled back */
	metrics_commit(NULL, 100, 1);		/* the next group, empty */
	page = render();
	assert_non_null(strstr(page, "batchd_tasks_total{handler=\"h\",state=\"succeeded\"} 3\n"));
	assert_non_null(strstr(page, "batchd_tasks_total{handler=\"h\",state=\"failed\"} 1\n"));
	free(page);
	metrics_free();
}

static void test_histogram_buckets(void **state)
{
	char *page;

	(void)state;
	metrics_init(NULL);
	metrics_task_duration("h", 1000);	/* 1 ms: on a bound, counted in it */
	metrics_task_duration("h", 70000);	/* 70 ms */
	metrics_task_duration("h", 7200000000LL);	/* 2 h: only +Inf */
	page = render();
	assert_non_null(strstr(page, "batchd_task_duration_seconds_bucket{handler=\"h\",le=\"0.001\"} 1\n"));
	assert_non_null(strstr(page, "batchd_task_duration_seconds_bucket{handler=\"h\",le=\"0.05\"} 1\n"));
	assert_non_null(strstr(page, "batchd_task_duration_seconds_bucket{handler=\"h\",le=\"0.1\"} 2\n"));
	assert_non_null(strstr(page, "batchd_task_duration_seconds_bucket{handler=\"h\",le=\"3600\"} 2\n"));
	assert_non_null(strstr(page, "batchd_task_duration_seconds_bucket{handler=\"h\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(page, "batchd_task_duration_seconds_count{handler=\"h\"} 3\n"));
	assert_non_null(strstr(page, "batchd_task_duration_seconds_sum{handler=\"h\"} 7200.071\n"));
	free(page);
	metrics_free();
}

static void test_bounded_labels(void **state)
{
	char *page;

	(void)state;
	metrics_init(NULL);
	metrics_http_request("GET", "/api/jobs/{id}", 200);
	metrics_http_request("GET", "/api/jobs/{id}", 200);
	metrics_http_request("BREW", NULL, 404);
	metrics_http_request("MKCOL", NULL, 404);
	metrics_http_request("GET", NULL, 1234);
	metrics_worker_restart("timeout");
	metrics_worker_restart("something new");
	metrics_tasks_final("h", ST_RUNNING, 5);	/* not a final state */
	metrics_commit(NULL, 300, 1);
	metrics_commit(NULL, 300, 0);
	page = render();
	assert_non_null(strstr(page, "{method=\"GET\",route=\"/api/jobs/{id}\",status=\"200\"} 2\n"));
	assert_non_null(strstr(page, "{method=\"other\",route=\"other\",status=\"404\"} 2\n"));
	assert_non_null(strstr(page, "{method=\"GET\",route=\"other\",status=\"0\"} 1\n"));
	assert_non_null(strstr(page, "batchd_worker_restarts_total{cause=\"timeout\"} 1\n"));
	assert_non_null(strstr(page, "batchd_worker_restarts_total{cause=\"crash\"} 1\n"));
	assert_null(strstr(page, "something new"));
	assert_null(strstr(page, "handler=\"h\""));
	assert_non_null(strstr(page, "batchd_db_commit_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(page, "batchd_db_commit_duration_seconds_count 1\n"));
	assert_non_null(strstr(page, "batchd_db_commit_failures_total 1\n"));
	/* No pool: no worker gauges, but everything else. */
	assert_null(strstr(page, "batchd_workers{"));
	assert_non_null(strstr(page, "# TYPE batchd_tasks_queued gauge\n"));
	free(page);
	metrics_free();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_labels_escaped),
		cmocka_unit_test(test_tasks_count_once_committed),
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_bounded_labels),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
