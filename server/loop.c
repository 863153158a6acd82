/*
 * loop: epoll event loop with a timerfd. See loop.h.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct watch {
	int fd;			/* -1 once removed */
	loop_fn fn;
	void *ctx;
	struct watch *next;	/* in the list of all, or of the removed */
};

struct loop {
	int epfd;
	int tfd;
	int64_t timer_at;
	struct watch *watches;
	struct watch *removed;	/* freed after the batch of events */
};

static void timer_fired(void *ctx, int fd, uint32_t events)
{
	struct loop *l = ctx;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0)
		(void)0;
	l->timer_at = 0;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (l->epfd < 0 || l->tfd < 0 ||
	    loop_add(l, l->tfd, EPOLLIN, timer_fired, l) < 0) {
		int e = errno;

		loop_free(l);
		errno = e;
		return NULL;
	}
	return l;
}

static void free_list(struct watch *w)
{
	while (w) {
		struct watch *next = w->next;

		free(w);
		w = next;
	}
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->tfd >= 0)
		close(l->tfd);
	free_list(l->watches);
	free_list(l->removed);
	free(l);
}

static struct watch *find(struct loop *l, int fd)
{
	for (struct watch *w = l->watches; w; w = w->next)
		if (w->fd == fd)
			return w;
	return NULL;
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *ctx)
{
	struct watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (!w)
		return -1;
	w->fd = fd;
	w->fn = fn;
	w->ctx = ctx;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(w);
		return -1;
	}
	w->next = l->watches;
	l->watches = w;
	return 0;
}

int loop_mod(struct loop *l, int fd, uint32_t events)
{
	struct watch *w = find(l, fd);
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (!w) {
		errno = ENOENT;
		return -1;
	}
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void loop_del(struct loop *l, int fd)
{
	struct watch **pp = &l->watches;

	for (; *pp; pp = &(*pp)->next) {
		struct watch *w = *pp;

		if (w->fd != fd)
			continue;
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		*pp = w->next;
		/* Events for it may still be in the batch being run. */
		w->fd = -1;
		w->next = l->removed;
		l->removed = w;
		return;
	}
}

void loop_set_timer(struct loop *l, int64_t mono_us)
{
	struct itimerspec its;

	if (mono_us == l->timer_at)
		return;
	memset(&its, 0, sizeof(its));
	if (mono_us > 0) {
		its.it_value.tv_sec = mono_us / 1000000;
		its.it_value.tv_nsec = (mono_us % 1000000) * 1000;
	}
	timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	l->timer_at = mono_us;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event ev[MAX_EVENTS];
	int n = epoll_wait(l->epfd, ev, MAX_EVENTS, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -1;
	for (int i = 0; i < n; i++) {
		struct watch *w = ev[i].data.ptr;

		if (w->fd >= 0)
			w->fn(w->ctx, w->fd, ev[i].events);
	}
	free_list(l->removed);
	l->removed = NULL;
	return n;
}
