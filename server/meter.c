/*
 * meter: rate, ETA and throughput history. See meter.h.
 */
#include "meter.h"

#include <string.h>

void meter_init(struct meter *m, int64_t now_ms, int64_t done)
{
	memset(m, 0, sizeof(*m));
	m->start_ms = now_ms;
	m->start_done = done;
	m->t[0] = now_ms;
	m->done[0] = done;
	m->n = 1;
	m->head = 0;
	m->bucket_ms = 1000;
}

static void history_add(struct meter *m, int64_t now_ms, int64_t added)
{
	int64_t i;

	if (added <= 0 || now_ms < m->start_ms)
		return;
	i = (now_ms - m->start_ms) / m->bucket_ms;
	while (i >= METER_HISTORY) {
		for (int k = 0; k < METER_HISTORY / 2; k++)
			m->hist[k] = m->hist[2 * k] + m->hist[2 * k + 1];
		memset(m->hist + METER_HISTORY / 2, 0,
		       sizeof(m->hist[0]) * (METER_HISTORY / 2));
		m->bucket_ms *= 2;
		i = (now_ms - m->start_ms) / m->bucket_ms;
	}
	m->hist[i] += added;
}

void meter_add(struct meter *m, int64_t now_ms, int64_t done, int64_t added)
{
	history_add(m, now_ms, added);
	if (now_ms - m->t[m->head] < METER_SPACING_MS)
		return;
	m->head = (m->head + 1) % METER_SAMPLES;
	m->t[m->head] = now_ms;
	m->done[m->head] = done;
	if (m->n < METER_SAMPLES)
		m->n++;
}

double meter_rate(const struct meter *m, int64_t now_ms, int64_t done)
{
	/* The reference point: the newest sample at least a window old, or
	 * the oldest sample held when none is that old yet. */
	int ref = (m->head - (m->n - 1) + METER_SAMPLES) % METER_SAMPLES;

	for (int k = 0; k < m->n; k++) {
		int i = (m->head - k + METER_SAMPLES) % METER_SAMPLES;

		if (now_ms - m->t[i] >= METER_WINDOW_MS) {
			ref = i;
			break;
		}
	}
	int64_t dt = now_ms - m->t[ref];
	int64_t dd = done - m->done[ref];

	if (dt < 1 || dd <= 0)
		return 0;
	return (double)dd * 1000.0 / (double)dt;
}

double meter_eta(double rate, int64_t remaining)
{
	if (remaining <= 0)
		return 0;
	if (!(rate > 0))
		return -1;
	return (double)remaining / rate;
}

int meter_history(const struct meter *m, int64_t now_ms, int64_t *counts,
		  int64_t *bucket_ms)
{
	int64_t n = now_ms >= m->start_ms ? (now_ms - m->start_ms) / m->bucket_ms + 1 : 1;

	if (n > METER_HISTORY)
		n = METER_HISTORY;
	memcpy(counts, m->hist, sizeof(m->hist[0]) * (size_t)n);
	*bucket_ms = m->bucket_ms;
	return (int)n;
}
