/*
 * proc: starting handler programs in a clean environment. See proc.h.
 */
#include "proc.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/utf8.h"

/* Entries a program's environment may hold at most (fixed and extra). */
#define ENVP_MAX 512

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		abort();
	return p;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xasprintf(const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return buf_detach(&b, NULL);
}

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

int proc_spawn(const struct proc_spec *spec, const int *fds, int nfds,
	       char *const *extra, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char *envp[ENVP_MAX + 1];
	size_t ne = 0;
	int rc;

	for (size_t i = 0; i < spec->nenv && ne < ENVP_MAX; i++)
		envp[ne++] = spec->env[i];
	for (size_t i = 0; extra && extra[i] && ne < ENVP_MAX; i++)
		envp[ne++] = extra[i];
	envp[ne] = NULL;

	posix_spawn_file_actions_init(&fa);
	for (int i = 0; i < nfds; i++)
		posix_spawn_file_actions_adddup2(&fa, fds[i], i);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(pid, spec->argv[0], &fa, &attr, spec->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return rc;
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
