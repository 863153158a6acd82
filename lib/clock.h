/*
 * clock: the two clocks batchd reads. Wall time (ms since the epoch) is what
 * is stored and shown; monotonic time is what deadlines and rates use, so a
 * clock step never fires a timeout or bends a rate.
 */
#ifndef BATCHD_CLOCK_H
#define BATCHD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_wall_ms(void);
/* Milliseconds and microseconds of CLOCK_MONOTONIC. */
int64_t clock_mono_ms(void);
int64_t clock_mono_us(void);
/* Writes ms-since-epoch as RFC 3339 UTC with milliseconds
 * ("2026-11-27T21:37:26.123Z") into out, which must hold 25 bytes. */
void clock_rfc3339(int64_t ms, char out[25]);

#endif
