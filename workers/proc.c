/*
 * proc: starting handler programs in a clean environment. See proc.h.
 */
#include "proc.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/utf8.h"
#include "../lib/xalloc.h"

/* Entries a program's environment may hold at most (fixed and extra). */
#define ENVP_MAX 512

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void proc_spec_release(struct proc_spec *spec)
{
	free_strv(spec->argv);
	free_strv(spec->env);
	memset(spec, 0, sizeof(*spec));
}

int proc_spec_init(struct proc_spec *spec, const cJSON *config, char *err,
		   size_t errlen)
{
	const cJSON *argv = cJSON_GetObjectItemCaseSensitive(config, "argv");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(config, "env");
	const cJSON *a;
	size_t n = 0;

	memset(spec, 0, sizeof(*spec));
	if (!cJSON_IsArray(argv) || cJSON_GetArraySize(argv) < 1 ||
	    (env && !cJSON_IsObject(env)) || cJSON_GetArraySize(env) > ENVP_MAX - 16) {
		snprintf(err, errlen, "bad program configuration");
		return -1;
	}
	cJSON_ArrayForEach(a, argv) {
		if (!cJSON_IsString(a)) {
			snprintf(err, errlen, "bad program configuration");
			return -1;
		}
	}
	spec->argv = calloc((size_t)cJSON_GetArraySize(argv) + 1, sizeof(char *));
	spec->env = calloc((size_t)cJSON_GetArraySize(env) + 4, sizeof(char *));
	if (!spec->argv || !spec->env)
		abort();
	cJSON_ArrayForEach(a, argv)
		spec->argv[n++] = xstrdup(a->valuestring);
	if (!cJSON_GetObjectItemCaseSensitive(env, "PATH"))
		spec->env[spec->nenv++] = xstrdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	if (!cJSON_GetObjectItemCaseSensitive(env, "HOME")) {
		struct passwd *pw = getpwuid(getuid());

		spec->env[spec->nenv++] = xasprintf("HOME=%s", pw && pw->pw_dir ? pw->pw_dir : "/");
	}
	if (!cJSON_GetObjectItemCaseSensitive(env, "LANG"))
		spec->env[spec->nenv++] = xstrdup("LANG=C.UTF-8");
	cJSON_ArrayForEach(a, env) {
		if (cJSON_IsString(a))
			spec->env[spec->nenv++] = xasprintf("%s=%s", a->string, a->valuestring);
	}
	return 0;
}

/* In the child of vfork(), sharing the worker's memory until execve():
 * only system calls, nothing that allocates or locks. Returns only on
 * failure, with the errno. */
static int child(const struct proc_spec *spec, const int *fds, int nfds,
		 char **envp, pid_t worker, volatile pid_t *group)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	/* The program dies with its worker, whatever kills the worker (a
	 * SIGKILLed server takes its workers along): no program runs on
	 * unseen while its task runs again elsewhere. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return errno;
	if (getppid() != worker)
		return ESRCH;
	if (group) {
		if (setpgid(0, 0) < 0)
			return errno;
		*group = getpid();
	}
	/* Default dispositions and no mask: a worker ignores SIGINT, SIGTERM
	 * and SIGPIPE; its programs need not. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	for (int i = 0; i < nfds; i++)
		if (dup2(fds[i], i) < 0)
			return errno;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(spec->argv[0], spec->argv, envp);
	return errno;
}

int proc_spawn(const struct proc_spec *spec, const int *fds, int nfds,
	       char *const *extra, volatile pid_t *group, pid_t *pid)
{
	char *envp[ENVP_MAX + 1];
	size_t ne = 0;
	sigset_t all, old;
	pid_t worker = getpid(), p;
	/* Written by the child before it ends, read once vfork returns (the
	 * worker is suspended until the child has exec'd or exited). */
	volatile int child_errno = 0;

	for (size_t i = 0; i < spec->nenv && ne < ENVP_MAX; i++)
		envp[ne++] = spec->env[i];
	for (size_t i = 0; extra && extra[i] && ne < ENVP_MAX; i++)
		envp[ne++] = extra[i];
	envp[ne] = NULL;

	/* vfork, as posix_spawn does, rather than fork: nothing of the
	 * worker's memory is copied, so starting a program costs the same
	 * in a worker holding a gigabyte as in a fresh one. Every signal is
	 * blocked meanwhile, so that no handler of the worker's runs on the
	 * child's side of the shared stack. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	p = vfork();
	if (p == 0) {
		child_errno = child(spec, fds, nfds, envp, worker, group);
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (p < 0)
		return errno;
	if (child_errno) {
		int e = child_errno;

		if (group)
			*group = 0;
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		return e;
	}
	*pid = p;
	return 0;
}

void proc_describe_status(struct buf *b, int status)
{
	if (WIFEXITED(status)) {
		buf_addf(b, "exited with status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		const char *abbr = sigabbrev_np(WTERMSIG(status));

		buf_addf(b, "killed by signal %d (SIG%s)", WTERMSIG(status),
			 abbr ? abbr : "?");
	} else {
		buf_addf(b, "ended with wait status %d", status);
	}
}

void proc_add_stderr(struct buf *b, const char *err, size_t len, size_t tail)
{
	size_t n = len, from = 0;

	while (n && strchr(" \t\r\n", err[n - 1]))
		n--;
	if (n > tail)
		from = n - tail;
	/* Start the tail at a character boundary. */
	while (from < n && ((unsigned char)err[from] & 0xc0) == 0x80)
		from++;
	if (n > from) {
		buf_adds(b, "; stderr: ");
		utf8_sanitize(b, err + from, n - from);
	}
}

int proc_wait(pid_t pid)
{
	int status = 0;

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}
