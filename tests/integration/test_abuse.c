/*
 * Integration tests of hostile and broken input over HTTP: bodies that are
 * not what they should be, headers over the limit, clients that trickle
 * their request a byte a second, thousands of connections at once, path
 * traversal, and CORS. Each is answered with the right status, the server
 * neither crashes nor stops serving, and nothing is persisted.
 */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/buf.h"

/* ---- raw sockets: what curl would tidy up or refuse to send ---- */

/* Sends what it can; how much that was. */
static size_t send_all(int fd, const char *data, size_t len)
{
	size_t sent = 0;

	while (sent < len) {
		ssize_t n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);

		if (n <= 0)
			break;	/* the server may close early: its answer says why */
		sent += (size_t)n;
	}
	return sent;
}

/* Reads until the server closes, the answer is complete (by its
 * Content-Length) or timeout_s passes. Returns the HTTP status, 0 when
 * the connection closed without an answer, -1 on timeout; the raw answer
 * goes to out. */
static int read_answer(int fd, struct buf *out, double timeout_s)
{
	double deadline = now_s() + timeout_s;

	buf_reset(out);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)((deadline - now_s()) * 1000);
		char chunk[65536];
		ssize_t n;

		if (left <= 0)
			return -1;
		if (poll(&p, 1, left) <= 0)
			continue;
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n <= 0)
			break;
		buf_add(out, chunk, (size_t)n);
		const char *end = strstr(out->data, "\r\n\r\n");
		const char *cl = strcasestr(out->data, "\r\nContent-Length:");

		if (end && cl && cl < end &&
		    out->len >= (size_t)(end + 4 - out->data) + strtoul(cl + 17, NULL, 10))
			break;
	}
	if (out->len < 12 || strncmp(out->data, "HTTP/1.", 7))
		return 0;
	return atoi(out->data + 9);
}

/* One raw request on a new connection; returns the status as above. */
static int raw(const struct server *s, const char *req, size_t len, struct buf *out)
{
	int fd = server_connect(s), st;

	send_all(fd, req, len);
	st = read_answer(fd, out, 30);
	close(fd);
	return st;
}

static int jobs_in_db(const struct server *s)
{
	cJSON *j = api(s, "GET", "/api/jobs?limit=1000", NULL, 200);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "jobs"));

	cJSON_Delete(j);
	return n;
}

static void still_serving(const struct server *s)
{
	cJSON_Delete(api(s, "GET", "/healthz", NULL, 200));
}

static void expect(const struct server *s, const char *body, size_t len, long status,
		   const char *code, const char *words)
{
	struct buf req = BUF_INIT, out = BUF_INIT;
	cJSON *doc;
	int st;

	buf_addf(&req, "POST /api/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", len);
	buf_add(&req, body, len);
	st = raw(s, req.data, req.len, &out);
	doc = strstr(out.data, "\r\n\r\n") ? cJSON_Parse(strstr(out.data, "\r\n\r\n") + 4) : NULL;
	if (st != status || !doc || !jstr(doc, "error.code") ||
	    strcmp(jstr(doc, "error.code"), code) ||
	    (words && !strstr(jstr(doc, "error.message"), words))) {
		print_error("body %.80s...: want %ld %s \"%s\", got %d: %.300s\n", body, status,
			    code, words ? words : "", st, out.data);
		fail();
	}
	cJSON_Delete(doc);
	buf_release(&req);
	buf_release(&out);
}

static void expect_s(const struct server *s, const char *body, long status, const char *code,
		     const char *words)
{
	expect(s, body, strlen(body), status, code, words);
}

/* ---- bodies ---- */

static void test_bad_bodies(void **state)
{
	const char *args[] = { "--workers", "1", "--max-tasks", "10", "--max-body", "4M", NULL };
	struct server *s = server_new(args);
	struct buf b = BUF_INIT;

	(void)state;
	/* Not JSON, not an object. */
	expect_s(s, "hello", 400, "bad_json", "malformed JSON at byte 0");
	expect_s(s, "{\"handler\": \"noop\", \"tasks\": [1]", 400, "bad_json", "malformed JSON");
	expect_s(s, "{\"handler\": \"noop\", \"tasks\": [1]} trailing", 400, "bad_json", NULL);
	expect_s(s, "[{\"handler\": \"noop\", \"tasks\": [1]}]", 400, "invalid_request", "JSON object");
	expect_s(s, "\"a string\"", 400, "invalid_request", "JSON object");
	expect_s(s, "42", 400, "invalid_request", "JSON object");
	expect_s(s, "null", 400, "invalid_request", "JSON object");
	expect(s, "{\"handler\": \"noop\", \"tasks\": [1]}\0", 35, 400, "bad_json", NULL);

	/* Deeply nested: 200,000 levels, in the body and inside a task. */
	for (int i = 0; i < 200000; i++)
		buf_addc(&b, '[');
	expect(s, b.data, b.len, 400, "bad_json", NULL);
	buf_reset(&b);
	buf_adds(&b, "{\"handler\": \"echo\", \"tasks\": [");
	for (int i = 0; i < 100000; i++)
		buf_adds(&b, "{\"a\":");
	buf_adds(&b, "1");
	for (int i = 0; i < 100000; i++)
		buf_addc(&b, '}');
	buf_adds(&b, "]}");
	expect(s, b.data, b.len, 400, "bad_json", NULL);

	/* Invalid UTF-8: bad bytes, an overlong form, a surrogate, in a
	 * value and in a key; an escaped lone surrogate. */
	expect_s(s, "{\"handler\": \"echo\", \"tasks\": [\"\xff\"]}", 400, "bad_json", "UTF-8");
	expect_s(s, "{\"handler\": \"echo\", \"tasks\": [\"\xc0\x80\"]}", 400, "bad_json", "UTF-8");
	expect_s(s, "{\"handler\": \"echo\", \"tasks\": [\"\xed\xa0\x80\"]}", 400, "bad_json", "UTF-8");
	expect_s(s, "{\"handler\": \"echo\", \"tasks\": [{\"k\xfe\": 1}]}", 400, "bad_json", "UTF-8");
	expect_s(s, "{\"handler\": \"echo\", \"tasks\": [\"\\ud800\"]}", 400, "bad_json", NULL);
	expect_s(s, "{\"handler\": \"echo\xe2\x82\", \"tasks\": [1]}", 400, "bad_json", "UTF-8");

	/* Huge numbers. */
	expect_s(s, "{\"handler\": \"echo\", \"tasks\": [1e400]}", 400, "invalid_request",
		 "tasks[0]: number out of range");
	expect_s(s, "{\"handler\": \"echo\", \"tasks\": [{\"a\": [0, -1e999]}]}", 400,
		 "invalid_request", "tasks[0].a[1]: number out of range");
	buf_reset(&b);
	buf_adds(&b, "{\"handler\": \"echo\", \"tasks\": [");
	for (int i = 0; i < 5000; i++)
		buf_addc(&b, '9');
	buf_adds(&b, "]}");
	expect(s, b.data, b.len, 400, "invalid_request", "number out of range");
	expect_s(s, "{\"handler\": \"noop\", \"tasks\": [1], \"priority\": 1e300}", 400,
		 "invalid_request", "\"priority\"");
	expect_s(s, "{\"handler\": \"noop\", \"tasks\": [1], \"max_attempts\": 1e20}", 400,
		 "invalid_request", "\"max_attempts\"");
	expect_s(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 1e300}]}", 400,
		 "invalid_request", "tasks[0].ms");
	expect_s(s, "{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 1, \"steps\": 1e12}]}", 400,
		 "invalid_request", "tasks[0].steps");

	/* Negative and absurd timeouts. */
	const char *timeouts[] = { "-1", "-0.0001", "0", "0.0009", "604801", "1e300",
				   "-1e300", "\"10\"", "true", "[]", NULL };

	for (int i = 0; timeouts[i]; i++) {
		buf_reset(&b);
		buf_addf(&b, "{\"handler\": \"noop\", \"tasks\": [1], \"timeout_s\": %s}", timeouts[i]);
		expect(s, b.data, b.len, 400, "invalid_request", "\"timeout_s\"");
	}

	/* Empty and over-long task lists. */
	expect_s(s, "{\"handler\": \"noop\", \"tasks\": []}", 400, "invalid_request", "must not be empty");
	expect_s(s, "{\"handler\": \"noop\", \"tasks\": [1,2,3,4,5,6,7,8,9,10,11]}", 413,
		 "too_many_tasks", "at most 10");
	buf_reset(&b);
	buf_adds(&b, "{\"handler\": \"noop\", \"tasks\": [0");
	for (int i = 1; i < 500000; i++)
		buf_adds(&b, ",0");
	buf_adds(&b, "]}");
	expect(s, b.data, b.len, 413, "too_many_tasks", "500000 tasks");
	/* A body over --max-body, announced or not. */
	buf_reset(&b);
	buf_adds(&b, "{\"handler\": \"noop\", \"tasks\": [\"");
	for (int i = 0; i < 5 << 20; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, "\"]}");
	expect(s, b.data, b.len, 413, "too_large", "--max-body");

	still_serving(s);
	assert_int_equal(jobs_in_db(s), 0);
	/* A sound request still works, and is the only job. */
	cJSON_Delete(wait_job(s, submit(s, "{\"handler\": \"noop\", \"tasks\": [1]}"),
			      "succeeded", 30));
	assert_int_equal(jobs_in_db(s), 1);
	assert_false(server_log_has(s, "level=error"));
	buf_release(&b);
	server_delete(s);
}

/* A body announced over --max-body: a client that sends it whole before
 * reading, as most do, can send it all and then reads the 413 (the server
 * reads and drops it); one that asks for 100 Continue, or announces a
 * body far larger, is answered before sending any. */
static void test_refused_body_is_read(void **state)
{
	const char *args[] = { "--workers", "1", "--max-body", "4M", NULL };
	struct server *s = server_new(args);
	struct buf req = BUF_INIT, out = BUF_INIT;
	size_t body = 40 << 20, head;
	char *zeros = calloc(1, body);
	int fd;

	(void)state;
	assert_non_null(zeros);
	/* 40 MB: ten times what the sockets' buffers hold between the two. */
	buf_addf(&req, "POST /api/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n", body);
	head = req.len;
	fd = server_connect(s);
	assert_int_equal(send_all(fd, req.data, head), head);
	assert_int_equal(send_all(fd, zeros, body), body);
	assert_int_equal(read_answer(fd, &out, 30), 413);
	assert_non_null(strstr(out.data, "\"the body is 41943040 bytes; this server takes at most "
				       "4194304 (--max-body)\""));
	close(fd);

	/* With Expect: 100-continue, no body is sent: the answer comes. */
	buf_reset(&req);
	buf_addf(&req, "POST /api/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nExpect: 100-continue\r\n\r\n", body);
	fd = server_connect(s);
	assert_int_equal(send_all(fd, req.data, req.len), req.len);
	assert_int_equal(read_answer(fd, &out, 30), 413);
	assert_null(strstr(out.data, "100 Continue"));
	close(fd);

	/* 1 GB announced: not read, answered at once. */
	buf_reset(&req);
	buf_adds(&req, "POST /api/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 1073741824\r\n\r\n");
	fd = server_connect(s);
	assert_int_equal(send_all(fd, req.data, req.len), req.len);
	assert_int_equal(read_answer(fd, &out, 30), 413);
	assert_non_null(strstr(out.data, "the body is 1073741824 bytes"));
	close(fd);

	still_serving(s);
	assert_int_equal(jobs_in_db(s), 0);
	free(zeros);
	buf_release(&req);
	buf_release(&out);
	server_delete(s);
}

/* ---- headers ---- */

/* How many lines of the server's log hold text. */
static int log_count(const struct server *s, const char *text)
{
	FILE *f = fopen(s->log, "r");
	char line[8192];
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* Requests libmicrohttpd turns away itself (here HTTP/9.9): answered,
 * and logged at info, not warn, at most 10 lines a second whatever their
 * number, the next line counting those left out. */
static void test_mhd_rejections_logged_sparingly(void **state)
{
	const char *args[] = { "--workers", "1", NULL };
	struct server *s = server_new(args);
	static const char req[] = "GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n";
	struct buf out = BUF_INIT;
	double start = now_s();
	int lines;

	(void)state;
	for (int i = 0; i < 200; i++)
		assert_int_equal(raw(s, req, sizeof(req) - 1, &out), 505);
	int secs = (int)(now_s() - start) + 1;

	still_serving(s);
	assert_false(server_log_has(s, "level=warn msg=http "));
	lines = log_count(s, "level=info msg=http ");
	print_message("200 requests in %d s: %d log lines\n", secs, lines);
	assert_true(lines >= 1 && lines <= 10 * (secs + 1));
	buf_release(&out);
	server_delete(s);
}

static void test_oversized_headers(void **state)
{
	const char *args[] = { "--workers", "1", NULL };
	struct server *s = server_new(args);
	struct buf req = BUF_INIT, out = BUF_INIT;
	int st;

	(void)state;
	/* One 100 KB header. */
	buf_adds(&req, "GET /api/jobs HTTP/1.1\r\nHost: t\r\nX-Big: ");
	for (int i = 0; i < 100000; i++)
		buf_addc(&req, 'a');
	buf_adds(&req, "\r\n\r\n");
	st = raw(s, req.data, req.len, &out);
	assert_int_equal(st, 431);
	still_serving(s);

	/* Thousands of small ones. */
	buf_reset(&req);
	buf_adds(&req, "POST /api/jobs HTTP/1.1\r\nHost: t\r\n");
	for (int i = 0; i < 5000; i++)
		buf_addf(&req, "X-H%d: value\r\n", i);
	buf_adds(&req, "Content-Length: 34\r\n\r\n{\"handler\": \"noop\", \"tasks\": [1]}");
	st = raw(s, req.data, req.len, &out);
	assert_int_equal(st, 431);
	still_serving(s);

	/* A 100 KB URL. */
	buf_reset(&req);
	buf_adds(&req, "GET /api/jobs?x=");
	for (int i = 0; i < 100000; i++)
		buf_addc(&req, 'u');
	buf_adds(&req, " HTTP/1.1\r\nHost: t\r\n\r\n");
	st = raw(s, req.data, req.len, &out);
	assert_true(st == 414 || st == 431);

	/* Content-Length that is absurd, negative, or not a number. */
	const char *lengths[] = { "99999999999999999999999", "-1", "abc", "1e3", NULL };

	for (int i = 0; lengths[i]; i++) {
		buf_reset(&req);
		buf_addf(&req, "POST /api/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: %s\r\n\r\n{}",
			 lengths[i]);
		st = raw(s, req.data, req.len, &out);
		assert_true(st == 400 || st == 413);
	}
	still_serving(s);
	assert_int_equal(jobs_in_db(s), 0);
	buf_release(&req);
	buf_release(&out);
	server_delete(s);
}

/* ---- slow clients ---- */

/* Sends one byte a second until the server closes the connection; returns
 * how long that took (s), or -1 when it never did within limit_s. */
static double trickle(int fd, const char *text, double limit_s)
{
	double start = now_s();

	for (size_t i = 0; now_s() - start < limit_s; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char c;

		if (send(fd, text + i % strlen(text), 1, MSG_NOSIGNAL) < 0)
			return now_s() - start;
		/* Wait a second, or for the server to close. */
		if (poll(&p, 1, 1000) > 0 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0)
			return now_s() - start;
	}
	return -1;
}

static void test_slow_clients(void **state)
{
	const char *args[] = { "--workers", "1", "--connection-timeout", "2", NULL };
	struct server *s = server_new(args);
	int body = server_connect(s), head, big;
	const char *start_body = "POST /api/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n";
	const char *big_body = "POST /api/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 70000000\r\n\r\n";
	double t0, took;

	(void)state;
	/* A body a byte a second, and headers a byte a second: both cut off
	 * about --connection-timeout after they started, however steadily
	 * they send. */
	send_all(body, start_body, strlen(start_body));
	took = trickle(body, "{\"handler\": ", 30);
	print_message("slow body closed after %.1f s\n", took);
	assert_true(took >= 1.5 && took < 10);
	t0 = now_s();
	still_serving(s);
	assert_true(now_s() - t0 < 2);
	head = server_connect(s);
	took = trickle(head, "GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 30);
	print_message("slow headers closed after %.1f s\n", took);
	assert_true(took >= 1.5 && took < 10);
	/* A body refused for its size (over the default 64 MiB) is read to
	 * be dropped, and just as cut off if it trickles. */
	big = server_connect(s);
	send_all(big, big_body, strlen(big_body));
	took = trickle(big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 30);
	print_message("slow refused body closed after %.1f s\n", took);
	assert_true(took >= 1.5 && took < 10);
	close(big);
	close(body);
	close(head);
	still_serving(s);
	assert_int_equal(jobs_in_db(s), 0);
	server_delete(s);
}

/* ---- many connections ---- */

/* Opens n connections and waits a moment for the server to take them. */
static int *open_many(const struct server *s, int n)
{
	int *fds = calloc((size_t)n, sizeof(int));

	for (int i = 0; i < n; i++)
		fds[i] = server_connect(s);
	return fds;
}

static void close_many(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}

/* A request on an open connection: its status as read_answer. */
static int healthz_on(int fd, struct buf *out)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

	send_all(fd, req, sizeof(req) - 1);
	return read_answer(fd, out, 30);
}

static double timed_healthz(const struct server *s, long want)
{
	struct resp r;
	double t = now_s();

	http_request(s, "GET", "/healthz", NULL, NULL, &r);
	t = now_s() - t;
	assert_int_equal(r.status, want);
	resp_free(&r);
	return t;
}

static void test_many_connections(void **state)
{
	struct rlimit rl;
	struct buf out = BUF_INIT;
	int *fds, n = 2000, refused = 0, served = 0;
	double t, worst = 0;

	(void)state;
	/* This process holds the 2,000 client ends. */
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4500) {
		print_message("skipped: open files limited to %lu here\n", (unsigned long)rl.rlim_cur);
		skip();
	}

	/* The default limit: 2,000 idle connections are all taken, and a new
	 * client is served at once. */
	const char *args[] = { "--workers", "1", NULL };
	struct rlimit low = { 1024, rl.rlim_max };
	struct server *s;

	/* Started with the usual soft limit of 1024 open files, the server
	 * raises its own as far as allowed. (valgrind keeps the limit of the
	 * program it runs: not there.) */
	if (strstr(batchd_bin(), "valgrind")) {
		s = server_new(args);
	} else {
		char limits[300];

		setrlimit(RLIMIT_NOFILE, &low);
		s = server_new(args);
		setrlimit(RLIMIT_NOFILE, &rl);
		snprintf(limits, sizeof(limits),
			 "grep -Eq 'Max open files +%lu +%lu' /proc/%d/limits",
			 (unsigned long)rl.rlim_max, (unsigned long)rl.rlim_max, (int)s->pid);
		assert_int_equal(sh("%s", limits), 0);
	}
	fds = open_many(s, n);
	for (int i = 0; i < 5; i++) {
		t = timed_healthz(s, 200);
		worst = t > worst ? t : worst;
	}
	print_message("with %d idle connections, a new client is served in %.1f ms (worst of 5)\n",
		      n, worst * 1000);
	assert_true(worst < 1.0);
	for (int i = 0; i < n; i++)
		served += healthz_on(fds[i], &out) == 200;
	assert_int_equal(served, n);
	close_many(fds, n);
	still_serving(s);
	server_delete(s);

	/* Past --max-connections: the extra clients are answered 503 at once,
	 * the ones inside go on being served, and room frees up as they
	 * leave. */
	const char *args2[] = { "--workers", "1", "--max-connections", "1500", NULL };

	s = server_new(args2);
	fds = open_many(s, n);
	t = now_s();
	for (int i = 1500; i < n; i++) {
		int st = read_answer(fds[i], &out, 10);

		refused += st == 503 && strstr(out.data, "too_many_connections");
	}
	print_message("%d connections past the limit refused in %.1f ms\n", refused,
		      (now_s() - t) * 1000);
	assert_int_equal(refused, n - 1500);
	t = timed_healthz(s, 503);
	print_message("a new client at the limit is refused in %.1f ms\n", t * 1000);
	assert_true(t < 1.0);
	served = 0;
	for (int i = 0; i < 1500; i += 10)
		served += healthz_on(fds[i], &out) == 200;
	assert_int_equal(served, 150);
	for (int i = 0; i < 100; i++) {
		close(fds[i]);
		fds[i] = -1;
	}
	/* The server notices the closes at once; give it a moment. */
	long st = 0;

	for (int tries = 0; tries < 100 && st != 200; tries++) {
		struct resp r;

		http_request(s, "GET", "/healthz", NULL, NULL, &r);
		st = r.status;
		resp_free(&r);
	}
	assert_int_equal(st, 200);
	close_many(fds, n);
	still_serving(s);
	assert_true(server_log_has(s, "connection limit reached"));
	buf_release(&out);
	server_delete(s);
}

/* ---- paths ---- */

static void test_traversal(void **state)
{
	const char *args[] = { "--workers", "1", NULL };
	struct server *s = server_new(args);
	const char *paths[] = {
		"/../etc/passwd", "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
		"/assets/..%2f..%2fetc/passwd", "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"/..%5c..%5cetc%5cpasswd", "/assets/....//....//etc/passwd",
		"/%252e%252e/etc/passwd", "/assets/%00/../../etc/passwd",
		"/api/../../etc/passwd", "//etc/passwd", "/./././../etc/passwd", NULL
	};
	struct buf req = BUF_INIT, out = BUF_INIT;

	(void)state;
	for (int i = 0; paths[i]; i++) {
		int st;

		buf_reset(&req);
		buf_addf(&req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", paths[i]);
		st = raw(s, req.data, req.len, &out);
		if ((st != 404 && st != 400) || strstr(out.data, "root:")) {
			print_error("GET %s: %d %.200s\n", paths[i], st, out.data);
			fail();
		}
	}
	still_serving(s);
	buf_release(&req);
	buf_release(&out);
	server_delete(s);
}

/* ---- CORS ---- */

static void test_cors(void **state)
{
	const char *plain[] = { "--workers", "1", NULL };
	const char *with[] = { "--workers", "1", "--token", "tok", "--cors-origin",
			       "https://ops.example.com", NULL };
	const char *ours[] = { "Origin: https://ops.example.com", NULL };
	const char *theirs[] = { "Origin: https://evil.example.com", NULL };
	const char *pre_ours[] = { "Origin: https://ops.example.com",
				   "Access-Control-Request-Method: POST",
				   "Access-Control-Request-Headers: authorization, content-type", NULL };
	const char *pre_theirs[] = { "Origin: https://evil.example.com",
				     "Access-Control-Request-Method: POST", NULL };
	struct server *s;
	struct resp r;
	char v[256];

	(void)state;
	/* None by default, whatever the request says. */
	s = server_new(plain);
	http_request(s, "GET", "/api/jobs", NULL, ours, &r);
	assert_int_equal(r.status, 200);
	assert_null(strcasestr(r.headers, "Access-Control-"));
	resp_free(&r);
	http_request(s, "OPTIONS", "/api/jobs", NULL, pre_ours, &r);
	assert_int_equal(r.status, 405);
	assert_null(strcasestr(r.headers, "Access-Control-"));
	resp_free(&r);
	server_delete(s);

	/* With --cors-origin: that origin, and only it. */
	s = server_new(with);
	http_request(s, "OPTIONS", "/api/jobs", NULL, pre_ours, &r);
	assert_int_equal(r.status, 204);
	assert_string_equal(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)),
			    "https://ops.example.com");
	assert_non_null(strstr(resp_header(&r, "Access-Control-Allow-Methods", v, sizeof(v)), "POST"));
	assert_non_null(strstr(resp_header(&r, "Access-Control-Allow-Headers", v, sizeof(v)),
			       "Authorization"));
	assert_string_equal(resp_header(&r, "Vary", v, sizeof(v)), "Origin");
	assert_int_equal(r.len, 0);
	resp_free(&r);
	/* A preflight from elsewhere is just an unauthorized request. */
	http_request(s, "OPTIONS", "/api/jobs", NULL, pre_theirs, &r);
	assert_int_equal(r.status, 401);
	assert_null(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)));
	resp_free(&r);
	/* The 401 itself is readable by the allowed page. */
	http_request(s, "GET", "/api/jobs", NULL, ours, &r);
	assert_int_equal(r.status, 401);
	assert_string_equal(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)),
			    "https://ops.example.com");
	resp_free(&r);
	s->token = "tok";
	http_request(s, "GET", "/api/jobs", NULL, ours, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)),
			    "https://ops.example.com");
	assert_non_null(strstr(resp_header(&r, "Access-Control-Expose-Headers", v, sizeof(v)),
			       "Location"));
	assert_string_equal(resp_header(&r, "Vary", v, sizeof(v)), "Origin");
	resp_free(&r);
	http_request(s, "GET", "/api/jobs", NULL, theirs, &r);
	assert_int_equal(r.status, 200);
	assert_null(strcasestr(r.headers, "Access-Control-"));
	assert_string_equal(resp_header(&r, "Vary", v, sizeof(v)), "Origin");
	resp_free(&r);
	server_delete(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_bodies),
		cmocka_unit_test(test_refused_body_is_read),
		cmocka_unit_test(test_mhd_rejections_logged_sparingly),
		cmocka_unit_test(test_oversized_headers),
		cmocka_unit_test(test_slow_clients),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_traversal),
		cmocka_unit_test(test_cors),
	};

	return cmocka_run_group_tests_name("abuse", tests, NULL, NULL);
}
