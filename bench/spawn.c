/*
 * spawn: the raw rate at which this machine starts and reaps programs, the
 * floor under any tool that runs a command per task.
 *
 *     bench/spawn N PARALLEL PROGRAM [ARG...]
 *
 * Forks PARALLEL spawners, like batchd's workers; each starts PROGRAM with
 * posix_spawn and reaps it with waitpid, one at a time, until N have run
 * in all. Prints one line: "N SECONDS". No pipes, no environment, no
 * bookkeeping: what is left is fork/exec/exit/wait itself.
 * The spawners mirror batchd's workers (processes that each run one
 * program at a time), so the comparison is with the same shape of work.
 * Each is pinned to a CPU of its own, and its programs with it: left to the
 * scheduler, two spawners and their programs sometimes shared one CPU for
 * a whole run and measured half the rate. Pinned, this is the best case.
 */
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs argv[0] n times, one after another; 0, or 1 on a failure. */
static int spawner(long n, char **argv)
{
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };

	for (long i = 0; i < n; i++) {
		pid_t pid;
		int status;

		if (posix_spawn(&pid, argv[0], NULL, NULL, argv, envp)) {
			fprintf(stderr, "spawn: cannot start %s\n", argv[0]);
			return 1;
		}
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status)) {
			fprintf(stderr, "spawn: %s failed\n", argv[0]);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	long n, par;
	int failed = 0;
	cpu_set_t allowed;
	double t0;

	if (argc < 4) {
		fprintf(stderr, "usage: spawn N PARALLEL PROGRAM [ARG...]\n");
		return 2;
	}
	n = atol(argv[1]);
	par = atol(argv[2]);
	if (n < 1 || par < 1 || par > n) {
		fprintf(stderr, "spawn: need 1 <= PARALLEL <= N\n");
		return 2;
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		CPU_ZERO(&allowed);
	t0 = now();
	for (long k = 0; k < par; k++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("spawn: fork");
			return 1;
		}
		if (pid == 0) {
			/* The k-th allowed CPU, round robin. */
			int ncpu = CPU_COUNT(&allowed), want = ncpu ? (int)(k % ncpu) : -1;

			for (int c = 0; want >= 0 && c < CPU_SETSIZE; c++) {
				if (CPU_ISSET(c, &allowed) && want-- == 0) {
					cpu_set_t one;

					CPU_ZERO(&one);
					CPU_SET(c, &one);
					sched_setaffinity(0, sizeof(one), &one);
					break;
				}
			}
			_exit(spawner(n / par + (k < n % par), argv + 3));
		}
	}
	for (long k = 0; k < par; k++) {
		int status;

		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
	}
	if (failed)
		return 1;
	printf("%ld %.6f\n", n, now() - t0);
	return 0;
}
