/*
 * metrics: counters, histograms and the Prometheus exposition. See
 * metrics.h.
 */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../db/store.h"
#include "../lib/clock.h"
#include "version.h"
#include "../lib/xalloc.h"

/* Upper bounds of the histogram buckets, in seconds; +Inf is implied. */
static const double task_le[] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
	60, 300, 900, 3600,
};
static const double commit_le[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1,
};
#define TASK_BUCKETS (sizeof(task_le) / sizeof(task_le[0]))
#define COMMIT_BUCKETS (sizeof(commit_le) / sizeof(commit_le[0]))
#define MAX_BUCKETS 20
_Static_assert(TASK_BUCKETS <= MAX_BUCKETS && COMMIT_BUCKETS <= MAX_BUCKETS,
	       "struct hist is too small");

/* Counts per bucket (not cumulative: summed when rendered); the last one
 * is +Inf. */
struct hist {
	uint64_t n[MAX_BUCKETS + 1];
	double sum;
	uint64_t count;
};

/* What is kept per handler. queued and running are scratch for render. */
struct hstat {
	char *name;
	uint64_t final[3];	/* succeeded, failed, cancelled: committed */
	uint64_t pending[3];	/* the same, not yet committed */
	struct hist dur;
	int64_t queued, running;
};

static const char *const final_names[3] = { "succeeded", "failed", "cancelled" };

static const char *const causes[] = { "crash", "memory", "timeout", "cancel", "reset", "recycled" };
#define NCAUSES (sizeof(causes) / sizeof(causes[0]))

static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS" };
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

struct hreq {
	const char *method;	/* from methods[], or "other" */
	const char *route;	/* a pattern of the route table, or "other" */
	int status;
	uint64_t n;
};

static struct {
	struct hstat *h;
	size_t nh, caph;
	uint64_t restarts[NCAUSES];
	struct hreq *req;
	size_t nreq, capreq;
	struct hist commit;
	uint64_t commit_failed;
	uint64_t jobs_expired;
	uint64_t checkpoints[2];	/* by the checkpointer, by the server */
	uint64_t syncs;
	int64_t started_ms;
} m;

/* The entry of handler, added when new. */
static struct hstat *hstat_of(const char *handler)
{
	struct hstat *e;

	if (!handler)
		handler = "";
	for (size_t i = 0; i < m.nh; i++)
		if (!strcmp(m.h[i].name, handler))
			return &m.h[i];
	if (m.nh == m.caph) {
		m.caph = m.caph ? m.caph * 2 : 16;
		m.h = xrealloc(m.h, m.caph * sizeof(*m.h));
	}
	e = &m.h[m.nh++];
	memset(e, 0, sizeof(*e));
	e->name = strdup(handler);
	if (!e->name)
		abort();
	return e;
}

static void hist_observe(struct hist *h, const double *le, size_t nle, double v)
{
	size_t i = 0;

	while (i < nle && v > le[i])
		i++;
	h->n[i]++;
	h->sum += v;
	h->count++;
}

void metrics_init(const struct registry *reg)
{
	metrics_free();
	m.started_ms = clock_wall_ms();
	for (int i = 0; reg && i < registry_count(reg); i++)
		hstat_of(registry_get(reg, i)->name);
}

void metrics_free(void)
{
	for (size_t i = 0; i < m.nh; i++)
		free(m.h[i].name);
	free(m.h);
	free(m.req);
	memset(&m, 0, sizeof(m));
}

void metrics_tasks_final(const char *handler, int state, int64_t n)
{
	int k = state == ST_SUCCEEDED ? 0 : state == ST_FAILED ? 1 :
		state == ST_CANCELLED ? 2 : -1;

	if (k >= 0 && n > 0)
		hstat_of(handler)->pending[k] += (uint64_t)n;
}

/* Ends the group's counts: into the totals when it landed, else away. */
static void settle_pending(int landed)
{
	for (size_t i = 0; i < m.nh; i++)
		for (int k = 0; k < 3; k++) {
			if (landed)
				m.h[i].final[k] += m.h[i].pending[k];
			m.h[i].pending[k] = 0;
		}
}

void metrics_discard(void)
{
	settle_pending(0);
}

void metrics_task_duration(const char *handler, int64_t duration_us)
{
	hist_observe(&hstat_of(handler)->dur, task_le, TASK_BUCKETS,
		     (double)duration_us / 1e6);
}

void metrics_worker_restart(const char *cause)
{
	size_t i = 0;

	while (i < NCAUSES && (!cause || strcmp(causes[i], cause)))
		i++;
	m.restarts[i < NCAUSES ? i : 0]++;
}

void metrics_job_expired(void)
{
	m.jobs_expired++;
}

void metrics_checkpoint(int by_server)
{
	m.checkpoints[by_server ? 1 : 0]++;
}

void metrics_sync(void)
{
	m.syncs++;
}

uint64_t metrics_worker_restarts(const char *cause)
{
	for (size_t i = 0; i < NCAUSES; i++)
		if (!strcmp(causes[i], cause))
			return m.restarts[i];
	return 0;
}

void metrics_http_request(const char *method, const char *route, int status)
{
	const char *mt = "other";

	for (size_t i = 0; method && i < NMETHODS; i++)
		if (!strcmp(methods[i], method))
			mt = methods[i];
	if (!route)
		route = "other";
	if (status < 100 || status > 599)
		status = 0;
	for (size_t i = 0; i < m.nreq; i++) {
		struct hreq *r = &m.req[i];

		/* Methods and routes are static strings: pointers compare. */
		if (r->method == mt && r->status == status && !strcmp(r->route, route)) {
			r->n++;
			return;
		}
	}
	if (m.nreq == m.capreq) {
		m.capreq = m.capreq ? m.capreq * 2 : 32;
		m.req = xrealloc(m.req, m.capreq * sizeof(*m.req));
	}
	m.req[m.nreq++] = (struct hreq){ mt, route, status, 1 };
}

void metrics_commit(void *ctx, int64_t us, int ok)
{
	(void)ctx;
	settle_pending(ok);
	if (!ok) {
		m.commit_failed++;
		return;
	}
	hist_observe(&m.commit, commit_le, COMMIT_BUCKETS, (double)us / 1e6);
}

/* ---- the exposition ---- */

static void header(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format asks. */
static void add_label(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_addc(b, '\\');
		if (*s == '\n') {
			buf_adds(b, "\\n");
			continue;
		}
		buf_addc(b, *s);
	}
}

static void add_double(struct buf *b, double v)
{
	if (isnan(v))
		buf_adds(b, "NaN");
	else if (isinf(v))
		buf_adds(b, v > 0 ? "+Inf" : "-Inf");
	else
		buf_addf(b, "%.12g", v);
}

/* Writes the series of one histogram; labels is "" or `key="value",`. */
static void add_hist(struct buf *b, const char *name, const char *label,
		     const char *value, const struct hist *h, const double *le,
		     size_t nle)
{
	uint64_t cum = 0;

	for (size_t i = 0; i <= nle; i++) {
		cum += h->n[i];
		buf_addf(b, "%s_bucket{", name);
		if (label) {
			buf_addf(b, "%s=\"", label);
			add_label(b, value);
			buf_adds(b, "\",");
		}
		buf_adds(b, "le=\"");
		if (i < nle)
			add_double(b, le[i]);
		else
			buf_adds(b, "+Inf");
		buf_addf(b, "\"} %llu\n", (unsigned long long)cum);
	}
	buf_addf(b, "%s_sum", name);
	if (label) {
		buf_addf(b, "{%s=\"", label);
		add_label(b, value);
		buf_adds(b, "\"}");
	}
	buf_addc(b, ' ');
	add_double(b, h->sum);
	buf_addf(b, "\n%s_count", name);
	if (label) {
		buf_addf(b, "{%s=\"", label);
		add_label(b, value);
		buf_adds(b, "\"}");
	}
	buf_addf(b, " %llu\n", (unsigned long long)h->count);
}

static int gather(void *ctx, const struct sched_live *l)
{
	struct hstat *h = hstat_of(l->row->handler);

	(void)ctx;
	h->queued += l->queued;
	h->running += l->running;
	return 0;
}

void metrics_render(struct buf *b, struct sched *s, const struct pool *p)
{
	for (size_t i = 0; i < m.nh; i++)
		m.h[i].queued = m.h[i].running = 0;
	if (s)
		sched_each_live(s, clock_wall_ms(), gather, NULL);

	header(b, "batchd_build_info", "gauge", "The running batchd's version (always 1).");
	buf_addf(b, "batchd_build_info{version=\"%s\"} 1\n", BATCHD_VERSION);
	header(b, "batchd_start_time_seconds", "gauge",
	       "When the server started, in seconds since the Unix epoch.");
	buf_addf(b, "batchd_start_time_seconds %.3f\n", (double)m.started_ms / 1000);

	header(b, "batchd_tasks_total", "counter",
	       "Tasks that reached a final state, by handler and state.");
	for (size_t i = 0; i < m.nh; i++) {
		for (int k = 0; k < 3; k++) {
			buf_adds(b, "batchd_tasks_total{handler=\"");
			add_label(b, m.h[i].name);
			buf_addf(b, "\",state=\"%s\"} %llu\n", final_names[k],
				 (unsigned long long)m.h[i].final[k]);
		}
	}
	header(b, "batchd_tasks_queued", "gauge",
	       "Tasks of active jobs waiting to run (retries waiting included).");
	for (size_t i = 0; i < m.nh; i++) {
		buf_adds(b, "batchd_tasks_queued{handler=\"");
		add_label(b, m.h[i].name);
		buf_addf(b, "\"} %lld\n", (long long)m.h[i].queued);
	}
	header(b, "batchd_tasks_running", "gauge", "Tasks running on a worker now.");
	for (size_t i = 0; i < m.nh; i++) {
		buf_adds(b, "batchd_tasks_running{handler=\"");
		add_label(b, m.h[i].name);
		buf_addf(b, "\"} %lld\n", (long long)m.h[i].running);
	}
	header(b, "batchd_task_duration_seconds", "histogram",
	       "Time a worker spent on one attempt of a task, by handler.");
	for (size_t i = 0; i < m.nh; i++)
		add_hist(b, "batchd_task_duration_seconds", "handler", m.h[i].name,
			 &m.h[i].dur, task_le, TASK_BUCKETS);

	if (p) {
		int busy = 0, ready = 0;

		for (int i = 0; i < pool_size(p); i++) {
			const struct pool_info *w = pool_info(p, i);

			ready += w->id && w->ready;
		}
		busy = s ? (int)sched_running(s) : 0;
		header(b, "batchd_workers", "gauge",
		       "Worker processes: configured, alive (not yet reaped), ready, busy.");
		buf_addf(b, "batchd_workers{state=\"configured\"} %d\n", pool_size(p));
		buf_addf(b, "batchd_workers{state=\"alive\"} %d\n", pool_alive(p));
		buf_addf(b, "batchd_workers{state=\"ready\"} %d\n", ready);
		buf_addf(b, "batchd_workers{state=\"busy\"} %d\n", busy);
	}
	header(b, "batchd_worker_restarts_total", "counter",
	       "Workers that ended and were replaced, by cause.");
	for (size_t i = 0; i < NCAUSES; i++)
		buf_addf(b, "batchd_worker_restarts_total{cause=\"%s\"} %llu\n", causes[i],
			 (unsigned long long)m.restarts[i]);

	header(b, "batchd_jobs_expired_total", "counter",
	       "Finished jobs deleted for being older than --keep-finished.");
	buf_addf(b, "batchd_jobs_expired_total %llu\n", (unsigned long long)m.jobs_expired);

	header(b, "batchd_db_checkpoints_total", "counter",
	       "WAL checkpoints, by who ran them: the checkpointer process or the server's thread.");
	buf_addf(b, "batchd_db_checkpoints_total{by=\"checkpointer\"} %llu\n",
		 (unsigned long long)m.checkpoints[0]);
	buf_addf(b, "batchd_db_checkpoints_total{by=\"server\"} %llu\n",
		 (unsigned long long)m.checkpoints[1]);
	header(b, "batchd_db_syncs_total", "counter",
	       "Syncs of the WAL to disk: once a second after anything was committed.");
	buf_addf(b, "batchd_db_syncs_total %llu\n", (unsigned long long)m.syncs);

	header(b, "batchd_http_requests_total", "counter",
	       "HTTP requests answered, by method, route pattern and status.");
	for (size_t i = 0; i < m.nreq; i++) {
		buf_addf(b, "batchd_http_requests_total{method=\"%s\",route=\"", m.req[i].method);
		add_label(b, m.req[i].route);
		buf_addf(b, "\",status=\"%d\"} %llu\n", m.req[i].status,
			 (unsigned long long)m.req[i].n);
	}

	header(b, "batchd_db_commit_duration_seconds", "histogram",
	       "Time taken by each successful database COMMIT.");
	add_hist(b, "batchd_db_commit_duration_seconds", NULL, NULL, &m.commit,
		 commit_le, COMMIT_BUCKETS);
	header(b, "batchd_db_commit_failures_total", "counter",
	       "Database COMMITs that failed (and were rolled back).");
	buf_addf(b, "batchd_db_commit_failures_total %llu\n",
		 (unsigned long long)m.commit_failed);
}
