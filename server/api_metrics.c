/*
 * api_metrics: the server's figures for Prometheus.
 *
 *   GET /metrics   text exposition format 0.0.4 (see metrics.h and
 *                  docs/OPERATIONS.md); needs the token when one is set,
 *                  unless --metrics-public
 */
#include "http.h"
#include "metrics.h"

void api_metrics(struct request *q, struct reply *r)
{
	struct buf b = BUF_INIT;

	metrics_render(&b, q->app->sched, q->app->pool);
	reply_bytes(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
	buf_release(&b);
}
