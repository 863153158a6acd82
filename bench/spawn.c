/*
 * spawn: the raw rate at which this machine starts and reaps programs, the
 * floor under any tool that runs a command per task.
 *
 *     bench/spawn N PARALLEL PROGRAM [ARG...]
 *
 * Starts PROGRAM N times with posix_spawn, at most PARALLEL at once, each
 * reaped with waitpid, and prints one line: "N SECONDS". No pipes, no
 * environment, no bookkeeping: what is left is fork/exec/exit/wait itself.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	long n, par, started = 0, done = 0;
	double t0;

	if (argc < 4) {
		fprintf(stderr, "usage: spawn N PARALLEL PROGRAM [ARG...]\n");
		return 2;
	}
	n = atol(argv[1]);
	par = atol(argv[2]);
	if (n < 1 || par < 1) {
		fprintf(stderr, "spawn: N and PARALLEL must be positive\n");
		return 2;
	}
	t0 = now();
	while (done < n) {
		int status;

		while (started < n && started - done < par) {
			pid_t pid;
			int rc = posix_spawn(&pid, argv[3], NULL, NULL, argv + 3, envp);

			if (rc) {
				fprintf(stderr, "spawn: cannot start %s\n", argv[3]);
				return 1;
			}
			started++;
		}
		if (wait(&status) < 0) {
			perror("spawn: wait");
			return 1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "spawn: %s failed\n", argv[3]);
			return 1;
		}
		done++;
	}
	printf("%ld %.6f\n", n, now() - t0);
	return 0;
}
