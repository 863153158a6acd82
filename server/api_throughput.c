/*
 * api_throughput: a job's throughput over its life, for the dashboard's
 * chart.
 *
 *   GET /api/jobs/{id}/throughput
 *     {"job": 17, "state": "running", "live": true,
 *      "start": "...", "end": "...", "bucket_s": 2,
 *      "counts": [12, 30, 28, ...]}
 *
 * counts[i] tasks finished (succeeded or failed) in the bucket_s-wide
 * bucket that begins at start + i * bucket_s; the last bucket ends at
 * "end" (now, for an active job) and may be partial. At most
 * METER_HISTORY buckets: they widen as the job ages.
 *
 * An active job's history is the scheduler's, from memory (since the job
 * was submitted, or since this server started). A finished job's is
 * counted once from its tasks' finish times in the store and kept in a
 * small cache: a finished job changes only by a retry, which makes it
 * active again and then gives it a new finish time.
 */
#include <string.h>

#include "../lib/clock.h"
#include "http.h"
#include "meter.h"
#include "views.h"

#define CACHE_SLOTS 8

struct history {
	int64_t job;
	int64_t finished_at;	/* the cache key with job */
	int64_t start_ms;
	int64_t end_ms;
	int64_t bucket_ms;
	int n;
	int64_t counts[METER_HISTORY];
};

/* The server has one thread and one store: a file-level cache is safe. */
static struct history cache[CACHE_SLOTS];
static int cache_next;

/* Counts a finished job's history from the store into h. 0 or -1. */
static int count_finished(struct store *st, const struct store_job *row,
			  struct history *h)
{
	int64_t life;

	memset(h, 0, sizeof(*h));
	h->job = row->id;
	h->finished_at = row->finished_at;
	h->start_ms = row->started_at ? row->started_at : row->created_at;
	h->end_ms = row->finished_at > h->start_ms ? row->finished_at : h->start_ms;
	h->bucket_ms = 1000;
	life = h->end_ms - h->start_ms;
	while (life / h->bucket_ms >= METER_HISTORY)
		h->bucket_ms *= 2;
	h->n = (int)(life / h->bucket_ms) + 1;
	return store_job_throughput(st, row->id, h->start_ms, h->bucket_ms, h->n,
				    h->counts);
}

static const struct history *finished_history(struct store *st,
					      const struct store_job *row)
{
	struct history *h;

	for (int i = 0; i < CACHE_SLOTS; i++)
		if (cache[i].job == row->id && cache[i].finished_at == row->finished_at)
			return &cache[i];
	h = &cache[cache_next];
	if (count_finished(st, row, h) < 0) {
		h->job = 0;
		return NULL;
	}
	cache_next = (cache_next + 1) % CACHE_SLOTS;
	return h;
}

static void reply_history(struct reply *r, const struct store_job *row, int live,
			  const struct history *h)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *arr;

	cJSON_AddNumberToObject(doc, "job", (double)row->id);
	cJSON_AddStringToObject(doc, "state", state_name(row->state));
	cJSON_AddBoolToObject(doc, "live", live);
	cJSON_AddItemToObject(doc, "start", view_time(h->start_ms));
	cJSON_AddItemToObject(doc, "end", view_time(h->end_ms));
	cJSON_AddNumberToObject(doc, "bucket_s", (double)h->bucket_ms / 1000);
	arr = cJSON_AddArrayToObject(doc, "counts");
	for (int i = 0; i < h->n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)h->counts[i]));
	reply_json(r, 200, doc);
}

void api_jobs_throughput(struct request *q, struct reply *r)
{
	struct app *app = q->app;
	int64_t now = clock_wall_ms();
	struct sched_live live;
	struct store_job row;
	const struct history *h;
	int rc;

	if (sched_live(app->sched, q->id, now, &live)) {
		struct history mem = { .end_ms = now };

		mem.n = sched_history(app->sched, q->id, now, mem.counts, &mem.bucket_ms,
				      &mem.start_ms);
		reply_history(r, live.row, 1, &mem);
		return;
	}
	rc = store_job_get(app->store, q->id, &row);
	if (rc == STORE_NOT_FOUND) {
		reply_error(r, 404, "not_found", "no job %lld", (long long)q->id);
		return;
	}
	if (rc < 0)
		goto fail;
	h = finished_history(app->store, &row);
	if (!h) {
		store_job_release(&row);
		goto fail;
	}
	reply_history(r, &row, 0, h);
	store_job_release(&row);
	return;
fail:
	reply_error(r, 500, "database_error", "database error: %s",
		    store_errmsg(app->store));
}
