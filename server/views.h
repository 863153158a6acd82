/*
 * views: the JSON shapes of jobs, tasks and workers, shared by the API
 * resources so that every endpoint shows an object the same way.
 */
#ifndef BATCHD_VIEWS_H
#define BATCHD_VIEWS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "../db/store.h"
#include "http.h"
#include "sched.h"

/* Numbers printed here rather than by cJSON, which prints every number
 * with "%1.15g" and reads it back with sscanf (most of the time an export
 * of tasks took): the same text, as raw JSON items, for printing only.
 * view_dec prints v rounded to decimals (0 to 4) places, without trailing
 * zeros. */
cJSON *view_int(int64_t v);
cJSON *view_dec(double v, int decimals);
/* An RFC 3339 string for ms since the epoch, or null for 0. */
cJSON *view_time(int64_t ms);
/* A job; live is its scheduler view when it is active, else NULL. */
cJSON *view_job(const struct store_job *row, const struct sched_live *live,
		int64_t now_ms);
/* The job with id from the scheduler or the store (NULL if none; *err set
 * to -1 on a database error). */
cJSON *view_job_by_id(struct app *app, int64_t id, int64_t now_ms, int *err);
/* A task, with the parts asked for besides its state and times. */
#define VIEW_TASK_INPUT 1
#define VIEW_TASK_RESULT 2
cJSON *view_task(struct app *app, const struct store_task *t, int parts);
/* The workers array. */
cJSON *view_workers(struct app *app);

#endif
