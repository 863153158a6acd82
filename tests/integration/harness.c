/*
 * harness: starting batchd for real and talking to it. See harness.h.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "../../lib/buf.h"

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

const char *batchd_bin(void)
{
	const char *b = getenv("BATCHD_BIN");

	return b && *b ? b : "build/asan/batchd";
}

/* The servers begun and not yet freed. A test that fails half way
 * leaves its server running (until this program ends: PDEATHSIG) and its
 * directory behind; at exit, each one's log is shown, for the reader of
 * the failure, and the directory removed, unless BATCHD_KEEP_TEST_DIRS
 * is set. */
#define LEFT_MAX 64
static struct left {
	char dir[256];
	pid_t pid;
} left[LEFT_MAX];
static pid_t left_owner;

static struct left *left_find(const char *dir)
{
	for (int i = 0; i < LEFT_MAX; i++)
		if (left[i].dir[0] && !strcmp(left[i].dir, dir))
			return &left[i];
	return NULL;
}

static void left_at_exit(void)
{
	/* Not in a child this program forked: the servers are not its. */
	if (getpid() != left_owner)
		return;
	for (int i = 0; i < LEFT_MAX; i++) {
		if (!left[i].dir[0])
			continue;
		/* Only a child not yet waited for: a pid reaped is free to be
		 * another process's. */
		if (left[i].pid > 0 && waitpid(left[i].pid, NULL, WNOHANG) == 0) {
			kill(left[i].pid, SIGKILL);
			waitpid(left[i].pid, NULL, 0);
		}
		fprintf(stderr, "== the end of the log of a server a failed test left, in %s:\n",
			left[i].dir);
		fflush(stderr);
		sh("tail -n 40 '%s/server.log' >&2", left[i].dir);
		if (!getenv("BATCHD_KEEP_TEST_DIRS"))
			sh("rm -rf '%s'", left[i].dir);
		else
			fprintf(stderr, "== kept (BATCHD_KEEP_TEST_DIRS): %s\n", left[i].dir);
	}
}

static void left_add(const char *dir)
{
	struct left *l = NULL;

	if (!left_owner) {
		left_owner = getpid();
		atexit(left_at_exit);
	}
	for (int i = 0; !l && i < LEFT_MAX; i++)
		if (!left[i].dir[0])
			l = &left[i];
	if (l) {
		snprintf(l->dir, sizeof(l->dir), "%s", dir);
		l->pid = 0;
	}
}

void server_init(struct server *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/batchd-test-XXXXXX");
	if (!mkdtemp(s->dir))
		fail_msg("mkdtemp: %s", strerror(errno));
	s->own_dir = 1;
	left_add(s->dir);
	snprintf(s->db, sizeof(s->db), "%s/batchd.db", s->dir);
	snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
}

struct server *server_new(const char *const *args)
{
	struct server *s = calloc(1, sizeof(*s));

	if (!s)
		fail_msg("out of memory");
	server_init(s);
	if (args)
		server_start(s, args);
	return s;
}

void server_delete(struct server *s)
{
	server_free(s);
	free(s);
}

int server_setup(void **state)
{
	*state = server_new(NULL);
	return 0;
}

int server_teardown(void **state)
{
	server_delete(*state);
	return 0;
}

int pid_alive(pid_t pid)
{
	char path[64], buf[512], st = 'X';
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && strrchr(buf, ')'))
		st = strrchr(buf, ')')[2];
	fclose(f);
	return st != 'Z' && st != 'X';
}

int server_connect(const struct server *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)s->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fail_msg("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		fail_msg("connect: %s", strerror(errno));
	return fd;
}

int pids_gone_within(const pid_t *pids, int n, double s)
{
	for (double deadline = now_s() + s; now_s() < deadline; usleep(10000)) {
		int alive = 0;

		for (int i = 0; i < n; i++)
			alive += pid_alive(pids[i]);
		if (!alive)
			return 1;
	}
	return 0;
}

int read_pids_file(const char *path, pid_t *pids, int n, double s)
{
	int got = 0;

	for (double deadline = now_s() + s; got < n && now_s() < deadline; usleep(10000)) {
		FILE *f = fopen(path, "r");
		int v;

		if (!f)
			continue;
		for (got = 0; got < n && fscanf(f, "%d", &v) == 1; got++)
			pids[got] = v;
		fclose(f);
	}
	return got;
}

/* Reads the port from the "listening" log line; 0 if not there yet. */
static int read_port(const struct server *s)
{
	FILE *f = fopen(s->log, "r");
	char line[4096];
	int port = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "msg=listening");
		char *a = p ? strstr(p, " addr=") : NULL;
		char *colon = a ? strchr(a, '\n') : NULL;

		if (!a)
			continue;
		if (colon)
			*colon = '\0';
		colon = strchr(a, ' ') ? strchr(a + 1, ' ') : NULL;
		if (colon)
			*colon = '\0';
		colon = strrchr(a, ':');
		if (colon)
			port = atoi(colon + 1);
	}
	fclose(f);
	return port;
}

pid_t server_spawn(struct server *s, const char *const *argv)
{
	pid_t pid = fork();
	struct left *l;

	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		/* A test that fails half-way (or dies) must not leave its
		 * server running. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);

		dup2(fd, 1);
		dup2(fd, 2);
		setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=23", 0);
		setenv("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1", 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	if ((l = left_find(s->dir)))
		l->pid = pid;
	return pid;
}

int server_try_start(struct server *s, const char *const *args, double timeout_s)
{
	const char *argv[64];
	int n = 0, status;
	double deadline = now_s() + timeout_s;
	pid_t pid;

	argv[n++] = batchd_bin();
	argv[n++] = "serve";
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--db";
	argv[n++] = s->db;
	for (int i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = server_spawn(s, argv);
	s->port = 0;
	while (now_s() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			s->pid = 0;
			return status ? status : -1;
		}
		s->port = read_port(s);
		if (s->port) {
			snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
			return 0;
		}
		nap(0.01);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	s->pid = 0;
	return -2;
}

void server_start(struct server *s, const char *const *args)
{
	/* The log keeps every run of this server, for the reader. */
	int rc;

	truncate(s->log, 0);
	rc = server_try_start(s, args, 30);
	if (rc) {
		sh("cat %s >&2", s->log);
		fail_msg("batchd did not start (status %d)", rc);
	}
}

int server_stop(struct server *s)
{
	int status = 0;
	double deadline = now_s() + 60;

	if (!s->pid)
		return 0;
	kill(s->pid, SIGTERM);
	while (now_s() < deadline) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			return status;
		}
		nap(0.01);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &status, 0);
	s->pid = 0;
	fail_msg("batchd did not stop within 60 s of SIGTERM");
	return -1;
}

void server_kill(struct server *s)
{
	int status;

	if (!s->pid)
		return;
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &status, 0);
	s->pid = 0;
}

void server_free(struct server *s)
{
	if (s->pid) {
		int status = server_stop(s);

		if (status != 0) {
			sh("cat %s >&2", s->log);
			fail_msg("batchd exited with status %d at teardown", status);
		}
	}
	if (s->own_dir && s->dir[0]) {
		struct left *l = left_find(s->dir);

		sh("rm -rf '%s'", s->dir);
		if (l)
			memset(l, 0, sizeof(*l));
	}
	s->dir[0] = '\0';
}

/* The pids of the server's children whose name (comm) is name, or of all
 * but those when but is set. */
static int children(const struct server *s, const char *name, int but, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		char path[300], buf[512];
		FILE *f;
		pid_t pid = (pid_t)atoi(e->d_name), ppid = 0;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
			int named = lp && rp && (size_t)(rp - lp - 1) == strlen(name) &&
				    !strncmp(lp + 1, name, strlen(name));
			char state;

			if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 &&
			    ppid == s->pid && state != 'Z' && named != but)
				out[n++] = pid;
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

int server_children(const struct server *s, pid_t *out, int max)
{
	return children(s, "batchd-ckpt", 1, out, max);
}

pid_t server_checkpointer(const struct server *s)
{
	pid_t pid = 0;

	return children(s, "batchd-ckpt", 0, &pid, 1) ? pid : 0;
}

int server_log_has(const struct server *s, const char *text)
{
	FILE *f = fopen(s->log, "r");
	char line[8192];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	buf_add(ctx, p, size * n);
	return size * n;
}

void http_request(const struct server *s, const char *method, const char *path,
		  const char *body, const char *const *headers, struct resp *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = BUF_INIT, hb = BUF_INIT, url = BUF_INIT;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	buf_addf(&url, "%s%s", s->url, path);
	curl_easy_setopt(c, CURLOPT_URL, url.data);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	h = curl_slist_append(h, "Expect:");
	if (s->token) {
		struct buf a = BUF_INIT;

		buf_addf(&a, "Authorization: Bearer %s", s->token);
		h = curl_slist_append(h, a.data);
		buf_release(&a);
	}
	for (int i = 0; headers && headers[i]; i++)
		h = curl_slist_append(h, headers[i]);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		r->status = -1;
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	}
	r->len = b.len;
	r->body = buf_detach(&b, NULL);
	r->headers = buf_detach(&hb, NULL);
	r->json = r->len ? cJSON_Parse(r->body) : NULL;
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	buf_release(&url);
}

void resp_free(struct resp *r)
{
	free(r->body);
	free(r->headers);
	cJSON_Delete(r->json);
	memset(r, 0, sizeof(*r));
}

const char *resp_header(const struct resp *r, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = r->headers;

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);

		if (ll > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(ll - (size_t)(v - p)), v);
			return out;
		}
		p = eol ? eol + 2 : NULL;
	}
	return NULL;
}

cJSON *api(const struct server *s, const char *method, const char *path,
	   const char *body, long status)
{
	struct resp r;
	cJSON *out;

	http_request(s, method, path, body, NULL, &r);
	if (r.status != status) {
		print_error("%s %s: expected HTTP %ld, got %ld: %s\n", method, path,
			    status, r.status, r.body ? r.body : "");
		resp_free(&r);
		fail();
	}
	out = r.json;
	r.json = NULL;
	resp_free(&r);
	return out;
}

cJSON *apif(const struct server *s, const char *method, long status,
	    const char *body, const char *fmt, ...)
{
	char path[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return api(s, method, path, body, status);
}

int64_t submit(const struct server *s, const char *body)
{
	cJSON *j = api(s, "POST", "/api/jobs", body, 201);
	int64_t id = (int64_t)jnum(j, "id");

	cJSON_Delete(j);
	assert_true(id > 0);
	return id;
}

static int state_in(const char *state, const char *states)
{
	size_t n = strlen(state);
	const char *p = states;

	while ((p = strstr(p, state))) {
		if ((p == states || p[-1] == '|') && (p[n] == '\0' || p[n] == '|'))
			return 1;
		p += n;
	}
	return 0;
}

char *file_text(const char *path)
{
	FILE *f = fopen(path, "r");
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	return buf_detach(&b, NULL);
}

int workers_in(const struct server *s, const char *states, int *total)
{
	cJSON *j = api(s, "GET", "/api/workers", NULL, 200);
	const cJSON *w;
	int n = 0, all = 0;

	cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "workers")) {
		const char *st = jstr(w, "state");

		n += st && state_in(st, states);
		all++;
	}
	cJSON_Delete(j);
	if (total)
		*total = all;
	return n;
}

int workers_idle(const struct server *s, void *ctx)
{
	return workers_in(s, "idle", NULL) == *(int *)ctx;
}

int restarts(const struct server *s, const char *cause)
{
	cJSON *j;
	struct resp r;
	char series[128];
	const char *at;
	int n;

	if (!cause) {
		j = api(s, "GET", "/api/progress", NULL, 200);
		n = (int)jnum(j, "totals.workers.restarts");
		cJSON_Delete(j);
		return n;
	}
	http_request(s, "GET", "/metrics", NULL, NULL, &r);
	snprintf(series, sizeof(series), "batchd_worker_restarts_total{cause=\"%s\"} ", cause);
	at = r.body ? strstr(r.body, series) : NULL;
	n = at ? atoi(at + strlen(series)) : -1;
	resp_free(&r);
	return n;
}

cJSON *wait_job(const struct server *s, int64_t id, const char *states,
		double timeout_s)
{
	double deadline = now_s() + timeout_s;
	cJSON *j = NULL;

	while (now_s() < deadline) {
		j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
		if (state_in(jstr(j, "state"), states))
			return j;
		cJSON_Delete(j);
		j = NULL;
		nap(0.02);
	}
	j = apif(s, "GET", 200, NULL, "/api/jobs/%lld", (long long)id);
	print_error("job %lld still %s after %.0f s (waiting for %s): %s\n", (long long)id,
		    jstr(j, "state"), timeout_s, states, cJSON_PrintUnformatted(j));
	cJSON_Delete(j);
	fail();
	return NULL;
}

int wait_until(int (*cond)(const struct server *s, void *ctx), const struct server *s,
	       void *ctx, double timeout_s)
{
	double deadline = now_s() + timeout_s;

	while (now_s() < deadline) {
		if (cond(s, ctx))
			return 1;
		nap(0.02);
	}
	return cond(s, ctx);
}

static const cJSON *walk(const cJSON *o, const char *path)
{
	char key[128];

	while (o && *path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (cJSON_IsArray(o))
			o = cJSON_GetArrayItem(o, atoi(key));
		else
			o = cJSON_GetObjectItemCaseSensitive(o, key);
		path += n + (dot ? 1 : 0);
	}
	return o;
}

double jnum(const cJSON *o, const char *path)
{
	const cJSON *v = walk(o, path);

	if (!cJSON_IsNumber(v))
		fail_msg("%s is not a number", path);
	return v->valuedouble;
}

const char *jstr(const cJSON *o, const char *path)
{
	const cJSON *v = walk(o, path);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *write_file(const struct server *s, const char *name, const char *text,
		       int mode, char *out, size_t len)
{
	FILE *f;

	snprintf(out, len, "%s/%s", s->dir, name);
	f = fopen(out, "w");
	if (!f)
		fail_msg("cannot write %s: %s", out, strerror(errno));
	fputs(text, f);
	fclose(f);
	chmod(out, (mode_t)mode);
	return out;
}

int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int mount_tmpfs(const char *dir, const char *opts)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -1;
	if (mount("tmpfs", dir, "tmpfs", 0, opts) < 0) {
		rmdir(dir);
		return -1;
	}
	return 0;
}

int unmount(const char *dir)
{
	if (umount(dir) < 0 && umount2(dir, MNT_DETACH) < 0)
		return -1;
	return rmdir(dir);
}
