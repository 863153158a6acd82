/*
 * meter: the figures of a progress bar: rate (tasks per second over a recent
 * window) and ETA, plus a coarse history of throughput for a chart.
 *
 * Fed with the count of finished tasks as it changes; asked at any time.
 * All times are milliseconds on one clock chosen by the caller.
 */
#ifndef BATCHD_METER_H
#define BATCHD_METER_H

#include <stdint.h>

#define METER_SAMPLES 64	/* at >= METER_SPACING_MS apart: > 16 s */
#define METER_SPACING_MS 250
#define METER_WINDOW_MS 10000
#define METER_HISTORY 120	/* chart buckets, merged in pairs when full */

struct meter {
	int64_t start_ms;
	int64_t start_done;
	int64_t t[METER_SAMPLES];
	int64_t done[METER_SAMPLES];
	int n;			/* samples held */
	int head;		/* index of the newest sample */
	int64_t bucket_ms;	/* width of a history bucket */
	int64_t hist[METER_HISTORY];
};

/* Starts measuring at now with done tasks already finished. */
void meter_init(struct meter *m, int64_t now_ms, int64_t done);
/* Records that done tasks (cumulative) are finished at now; added is how
 * many finished since the last call (for the history). */
void meter_add(struct meter *m, int64_t now_ms, int64_t done, int64_t added);
/* Tasks per second over about the last METER_WINDOW_MS (longer when the
 * job is slow, shorter when it is young); 0 when nothing is known. */
double meter_rate(const struct meter *m, int64_t now_ms, int64_t done);
/* Seconds left for remaining tasks at rate; -1 when unknown (no rate). */
double meter_eta(double rate, int64_t remaining);
/* The history: fills counts (up to METER_HISTORY) and the bucket width;
 * returns how many buckets are in use. */
int meter_history(const struct meter *m, int64_t now_ms, int64_t *counts,
		  int64_t *bucket_ms);

#endif
