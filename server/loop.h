/*
 * loop: the server's one event loop, over epoll (the shape of redis's ae).
 *
 * Everything the server waits for is a file descriptor here: the HTTP
 * daemon's epoll descriptor, each worker's socket, a signalfd and a timerfd.
 * Callbacks run on the loop's thread, one at a time; a callback may add or
 * remove any descriptor, including its own.
 */
#ifndef BATCHD_LOOP_H
#define BATCHD_LOOP_H

#include <stdint.h>

struct loop;

typedef void (*loop_fn)(void *ctx, int fd, uint32_t events);

/* A loop, or NULL (errno set). */
struct loop *loop_new(void);
void loop_free(struct loop *l);
/* Watches fd for events (EPOLLIN, EPOLLOUT); 0 or -1 (errno set). */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *ctx);
int loop_mod(struct loop *l, int fd, uint32_t events);
/* Stops watching fd (the caller closes it). */
void loop_del(struct loop *l, int fd);
/* Arms the timer for an absolute CLOCK_MONOTONIC time in microseconds, or
 * disarms it with 0. The timer only wakes the loop. */
void loop_set_timer(struct loop *l, int64_t mono_us);
/*
 * Waits up to timeout_ms (-1: no limit, 0: just poll) and runs the
 * callbacks of the descriptors that are ready. Returns how many were ready
 * (0 on timeout), or -1 on error.
 */
int loop_run_once(struct loop *l, int timeout_ms);

#endif
