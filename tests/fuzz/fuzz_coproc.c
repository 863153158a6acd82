/*
 * libFuzzer target: what a persistent handler's co-process writes
 * (workers/persistent.c). A co-process is the user's own program: no bytes
 * it writes on stdout or stderr may crash its worker, read out of bounds,
 * leak, or leave in doubt how a task ended. The input is
 *
 *   byte 0     how the rest is cut into reads (struct cutter)
 *   the rest   the co-process's stdout, read by take_lines() task after
 *              task as persistent_run() does; the same bytes as its
 *              stderr, split into log lines by take_stderr(); and a task's
 *              input, made into its request line by build_request()
 *
 * The file includes persistent.c, so that its static functions can be
 * called, and links the real lib/ and workers/ sources with the worker's
 * side of a task wrapped (-Wl,--wrap): progress updates and the log lines
 * of stderr are recorded here instead of sent. Each line read is checked
 * against a reading of the protocol written from docs/HANDLERS.md
 * (expect_line): the same progress updates, the same start-up state, the
 * same end of the task, after the same line.
 *
 *   make fuzz           runs it with tests/fuzz/corpus_coproc as seeds
 */
#include "../../workers/persistent.c"

#include <ctype.h>
#include <math.h>
#include <stdint.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

#include "check_json.h"

/* Stands for the task: never dereferenced, only compared. */
static char task_mark;
#define TASK ((struct batchd_task *)&task_mark)
#define TASK_JOB ((1LL << 52) + 3)
#define TASK_INDEX 4294967295LL
#define TASK_ATTEMPT 2147483647

/* The longest prefix a fault's message puts before the line it shows. */
#define FAULT_PREFIX_MAX 160

/* ---- the worker's side, wrapped ---- */

struct update {
	double fraction;
	char *message;		/* NULL: none */
};

static struct update *updates;
static size_t nupdates, updates_cap;
/* Where the stderr lines logged go, a '\n' after each; NULL: nowhere. */
static struct buf *logged;

void __wrap_batchd_progress(struct batchd_task *t, double fraction, const char *message)
{
	CHECK(t == TASK);
	/* 1e999 parses as infinity, which batchd_progress would quietly
	 * clamp: not what the co-process wrote. */
	CHECK(isfinite(fraction));
	if (nupdates == updates_cap) {
		updates_cap = updates_cap ? 2 * updates_cap : 16;
		updates = realloc(updates, updates_cap * sizeof(*updates));
		if (!updates)
			abort();
	}
	updates[nupdates].fraction = fraction;
	updates[nupdates].message = message ? xstrdup(message) : NULL;
	nupdates++;
}

static void updates_reset(void)
{
	for (size_t i = 0; i < nupdates; i++)
		free(updates[i].message);
	nupdates = 0;
}

int64_t __wrap_batchd_task_job(const struct batchd_task *t)
{
	CHECK(t == TASK);
	return TASK_JOB;
}

int64_t __wrap_batchd_task_index(const struct batchd_task *t)
{
	CHECK(t == TASK);
	return TASK_INDEX;
}

int __wrap_batchd_task_attempt(const struct batchd_task *t)
{
	CHECK(t == TASK);
	return TASK_ATTEMPT;
}

/* Keeps the stderr lines; the rest of the log would only slow the fuzzer. */
void __wrap_log_emit(enum log_level level, const char *msg, const struct log_field *f)
{
	if (!logged || strcmp(msg, "co-process stderr"))
		return;
	for (; f->key; f++) {
		size_t n;

		if (strcmp(f->key, "line"))
			continue;
		n = strlen(f->s);
		/* One line of valid UTF-8, of a bounded length: a piece of at
		 * most STDERR_LINE_MAX bytes, each bad byte three at most. */
		CHECK(!memchr(f->s, '\n', n));
		CHECK(utf8_valid(f->s, n, NULL));
		CHECK(n <= 3 * STDERR_LINE_MAX);
		buf_add(logged, f->s, n);
		buf_addc(logged, '\n');
	}
}

/* ---- reads ---- */

/* Cuts the input into reads, as a pipe may deliver it: of 1 byte, of up
 * to 2, 7, 16, 64, 300 or 5000 bytes (chosen from a seed), or whole. */
struct cutter {
	size_t size, off;
	size_t limit;
	uint32_t x;
};

static void cutter_init(struct cutter *c, size_t size, uint8_t how)
{
	static const size_t limits[8] = { 1, 2, 7, 16, 64, 300, 5000, SIZE_MAX };

	c->size = size;
	c->off = 0;
	c->limit = limits[how >> 5];
	c->x = 2463534242u ^ how;
}

/* The length of the next read (0 at the end); c->off moves past it. */
static size_t next_read(struct cutter *c)
{
	size_t left = c->size - c->off, n;

	c->x ^= c->x << 13;
	c->x ^= c->x >> 17;
	c->x ^= c->x << 5;
	n = c->limit == SIZE_MAX ? left : 1 + c->x % c->limit;
	if (n > left)
		n = left;
	c->off += n;
	return n;
}

static void coproc_init(struct persistent *p)
{
	static char name[] = "fuzz";

	memset(p, 0, sizeof(*p));
	p->name = name;
	p->in = p->out = p->err = -1;
	buf_init(&p->obuf);
	buf_init(&p->ebuf);
	buf_init(&p->tail);
}

static void coproc_release(struct persistent *p)
{
	buf_release(&p->obuf);
	buf_release(&p->ebuf);
	buf_release(&p->tail);
}

/* ---- the protocol, as documented ---- */

enum want { W_BLANK, W_READY, W_PROGRESS, W_RESULT, W_ERROR, W_FAULT };

struct expect {
	enum want what;
	size_t len;		/* the line's, without a final '\r' */
	int can_stop;		/* W_READY */
	double fraction;	/* W_PROGRESS */
	const char *message;	/* W_PROGRESS: NULL or in doc */
	char *text;		/* W_RESULT, W_ERROR: what the task ends with, as
				 * cJSON prints it unless a string error */
	int error_string;	/* W_ERROR: given as a string */
	cJSON *doc;
};

static int numbers_finite(const cJSON *v)
{
	const cJSON *c;

	if (cJSON_IsNumber(v))
		return isfinite(v->valuedouble);
	cJSON_ArrayForEach(c, v)
		if (!numbers_finite(c))
			return 0;
	return 1;
}

/* Whether valid JSON text holds a \u0000 escape, which a C string cannot
 * carry, or a \u without 4 hex digits, which is not JSON (cJSON reads it
 * as \u0000): in valid JSON every backslash starts an escape. */
static int holds_nul_escape(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u') {
			if (i + 5 >= len || !memcmp(s + i + 2, "0000", 4))
				return 1;
			for (size_t k = i + 2; k < i + 6; k++)
				if (!isxdigit((unsigned char)s[k]))
					return 1;
		}
		i++;
	}
	return 0;
}

static int members(const cJSON *doc, const char *key)
{
	const cJSON *c;
	int n = 0;

	cJSON_ArrayForEach(c, doc)
		n += !strcmp(c->string, key);
	return n;
}

/* What one line of stdout must do (answered: the start-up is over). A
 * line is one JSON object and nothing else; the protocol's members are
 * named exactly and given once; every number and string in it can be
 * kept as it was written. */
static void expect_line(const char *line, size_t len, int answered, struct expect *e)
{
	static const char *const keys[] = {
		"ready", "stop", "progress", "message", "result", "error", NULL
	};
	const char *end = NULL;
	const cJSON *v, *m;
	size_t i;

	memset(e, 0, sizeof(*e));
	if (len && line[len - 1] == '\r')
		len--;
	e->len = len;
	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i == len) {
		e->what = W_BLANK;
		return;
	}
	e->what = W_FAULT;
	if (memchr(line, '\0', len) || !utf8_valid(line, len, NULL))
		return;
	e->doc = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	if (!e->doc)
		return;
	/* cJSON's white space: any byte up to ' ' (NUL is ruled out above). */
	while (end < line + len && (unsigned char)*end <= ' ')
		end++;
	if (end != line + len || !cJSON_IsObject(e->doc) || !numbers_finite(e->doc) ||
	    holds_nul_escape(line, len))
		return;
	for (i = 0; keys[i]; i++)
		if (members(e->doc, keys[i]) > 1)
			return;
	if (cJSON_GetObjectItemCaseSensitive(e->doc, "ready")) {
		v = cJSON_GetObjectItemCaseSensitive(e->doc, "stop");
		if (answered || cJSON_GetArraySize(e->doc) != 1 + !!v || (v && !cJSON_IsBool(v)) ||
		    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e->doc, "ready")))
			return;
		e->can_stop = cJSON_IsTrue(v);
		e->what = W_READY;
		return;
	}
	if (members(e->doc, "progress") + members(e->doc, "result") +
	    members(e->doc, "error") != 1)
		return;
	if ((v = cJSON_GetObjectItemCaseSensitive(e->doc, "result"))) {
		e->text = cJSON_PrintUnformatted(v);
		CHECK(e->text);
		e->what = W_RESULT;
	} else if ((v = cJSON_GetObjectItemCaseSensitive(e->doc, "error"))) {
		e->error_string = cJSON_IsString(v);
		e->text = cJSON_IsString(v) ? xstrdup(v->valuestring[0] ? v->valuestring : EMPTY_ERROR)
					    : cJSON_PrintUnformatted(v);
		CHECK(e->text);
		e->what = W_ERROR;
	} else {
		v = cJSON_GetObjectItemCaseSensitive(e->doc, "progress");
		m = cJSON_GetObjectItemCaseSensitive(e->doc, "message");
		if (!cJSON_IsNumber(v) || (m && !cJSON_IsString(m) && !cJSON_IsNull(m)))
			return;
		e->fraction = v->valuedouble;
		e->message = cJSON_IsString(m) ? m->valuestring : NULL;
		e->what = W_PROGRESS;
	}
}

static void expect_release(struct expect *e)
{
	cJSON_Delete(e->doc);
	free(e->text);
}

/* A fault's message: one line of valid UTF-8 that starts with what the
 * co-process did and shows the line (len bytes) cut to SHOWN_LINE bytes,
 * marked with its length when cut. */
static void check_fault(const struct buf *msg, const char *line, size_t len)
{
	char mark[64];
	struct buf shown = BUF_INIT;

	CHECK(!strncmp(msg->data, "co-process ", 11));
	CHECK(strlen(msg->data) == msg->len);
	CHECK(!memchr(msg->data, '\n', msg->len));
	CHECK(utf8_valid(msg->data, msg->len, NULL));
	CHECK(msg->len <= FAULT_PREFIX_MAX + 3 * SHOWN_LINE + sizeof(mark));
	if (len > SHOWN_LINE) {
		snprintf(mark, sizeof(mark), "... (%zu bytes)", len);
		CHECK(msg->len >= strlen(mark) &&
		      !strcmp(msg->data + msg->len - strlen(mark), mark));
	} else {
		utf8_sanitize(&shown, line, len);
		CHECK(msg->len >= shown.len &&
		      !memcmp(msg->data + msg->len - shown.len, shown.data, shown.len));
	}
	buf_release(&shown);
}

/* Runs take_lines() once on what p has read, and checks what it did line
 * by line against expect_line(): the same updates, the same start-up
 * state, and the task ended at most once, by the first line that ends it,
 * with everything after that line left for the next read. */
static enum line_kind take_checked(struct persistent *p, struct buf *msg)
{
	size_t blen = p->obuf.len, from = 0, used = 0;
	char *before = xmalloc(blen + 1);
	int answered = p->answered, can_stop = p->can_stop;
	enum line_kind kind, want = LINE_MORE;

	memcpy(before, p->obuf.data, blen + 1);
	updates_reset();
	CHECK(msg->len == 0);
	kind = take_lines(p, TASK, msg);

	while (want == LINE_MORE) {
		char *nl = memchr(before + from, '\n', blen - from);
		const char *line = before + from;
		struct expect e;

		if (!nl)
			break;
		expect_line(line, (size_t)(nl - line), answered, &e);
		from = (size_t)(nl - before) + 1;
		switch (e.what) {
		case W_BLANK:
			break;
		case W_READY:
			answered = 1;
			can_stop = e.can_stop;
			break;
		case W_PROGRESS:
			answered = 1;
			CHECK(used < nupdates);
			CHECK(updates[used].fraction == e.fraction);
			CHECK(!updates[used].message == !e.message);
			CHECK(!e.message || !strcmp(updates[used].message, e.message));
			used++;
			break;
		case W_RESULT:
			answered = 1;
			want = LINE_RESULT;
			CHECK(kind == want);
			check_stored(msg->data, msg->len, e.text);
			break;
		case W_ERROR:
			answered = 1;
			want = LINE_ERROR;
			CHECK(kind == want);
			if (e.error_string) {
				CHECK(!strcmp(msg->data, e.text));
				CHECK(strlen(msg->data) == msg->len);
				CHECK(utf8_valid(msg->data, msg->len, NULL));
			} else {
				check_stored(msg->data, msg->len, e.text);
			}
			break;
		case W_FAULT:
			want = LINE_FAULT;
			CHECK(kind == want);
			check_fault(msg, line, e.len);
			break;
		}
		expect_release(&e);
	}
	CHECK(kind == want);
	CHECK(used == nupdates);
	/* A line that breaks the protocol does not end the start-up: the
	 * fault is a failed set-up, as docs/HANDLERS.md says. */
	CHECK(p->answered == answered && p->can_stop == can_stop);
	CHECK(blen - p->obuf.len == from);
	CHECK(!memcmp(p->obuf.data, before + from, p->obuf.len));
	CHECK(p->obuf.data[p->obuf.len] == '\0');
	CHECK(kind != LINE_MORE || !msg->len);
	if (kind == LINE_MORE)
		CHECK(!memchr(p->obuf.data, '\n', p->obuf.len));
	free(before);
	return kind;
}

/* The input as stdout, read by one co-process after another: a fault
 * kills it, and so does anything it wrote after its answer before its
 * next task (check_idle); otherwise it serves the next task. */
static void run_stdout(const uint8_t *data, size_t size, uint8_t how)
{
	struct persistent p;
	struct buf msg = BUF_INIT;
	struct cutter c;
	size_t n;

	coproc_init(&p);
	cutter_init(&c, size, how);
	while ((n = next_read(&c))) {
		enum line_kind kind;

		buf_add(&p.obuf, data + c.off - n, n);
		kind = take_checked(&p, &msg);
		if (kind == LINE_MORE)
			continue;
		buf_reset(&msg);
		if (kind == LINE_FAULT || p.obuf.len) {
			buf_reset(&p.obuf);
			p.answered = 0;
			p.can_stop = 0;
		}
	}
	/* Its stdout ends with it: an unfinished last line still counts. */
	if (p.obuf.len) {
		buf_addc(&p.obuf, '\n');
		take_checked(&p, &msg);
	}
	buf_release(&msg);
	coproc_release(&p);
	updates_reset();
}

/* ---- stderr ---- */

/* The log lines stderr makes: each line, cut into pieces of at most
 * STDERR_LINE_MAX bytes, without a final '\r', made valid UTF-8; an
 * unfinished last line too. */
static void expect_log(struct buf *out, const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t from = 0;

	while (from < size) {
		const char *nl = memchr(s + from, '\n', size - from);
		size_t len = nl ? (size_t)(nl - s) - from : size - from, off = 0;

		do {
			size_t k = len - off > STDERR_LINE_MAX ? STDERR_LINE_MAX : len - off;
			size_t m = k;

			if (m && s[from + off + m - 1] == '\r')
				m--;
			utf8_sanitize(out, s + from + off, m);
			buf_addc(out, '\n');
			off += k;
		} while (off < len);
		from += len + !!nl;
	}
}

/* Feeds the input to take_stderr() in reads cut as how says; the log
 * lines go to out. The tail kept for the task's error is the end of what
 * was written, of bounded size; an unfinished line waits, bounded too. */
static void stderr_log(struct buf *out, const uint8_t *data, size_t size, uint8_t how)
{
	struct persistent p;
	struct cutter c;
	size_t n;

	coproc_init(&p);
	cutter_init(&c, size, how);
	logged = out;
	while ((n = next_read(&c))) {
		take_stderr(&p, (const char *)data + c.off - n, n, 0);
		CHECK(p.ebuf.len <= STDERR_LINE_MAX);
		CHECK(p.tail.len <= 2 * STDERR_TAIL);
		CHECK(p.tail.len >= (c.off < STDERR_TAIL ? c.off : STDERR_TAIL));
		CHECK(!memcmp(p.tail.data, data + c.off - p.tail.len, p.tail.len));
	}
	take_stderr(&p, "", 0, 1);
	CHECK(p.ebuf.len == 0);
	logged = NULL;
	coproc_release(&p);
}

/* The same lines whatever the reads, and the lines expect_log() says. */
static void run_stderr(const uint8_t *data, size_t size, uint8_t how)
{
	struct buf cut = BUF_INIT, whole = BUF_INIT, want = BUF_INIT;

	stderr_log(&cut, data, size, how);
	stderr_log(&whole, data, size, 0xff);
	expect_log(&want, data, size);
	CHECK(cut.len == want.len && !memcmp(cut.data, want.data, want.len));
	CHECK(whole.len == want.len && !memcmp(whole.data, want.data, want.len));
	buf_release(&cut);
	buf_release(&whole);
	buf_release(&want);
}

/* ---- requests ---- */

/* A request is one line, whatever the input. */
static void request(struct buf *req, const char *input)
{
	build_request(req, TASK, input);
	CHECK(req->len && req->data[req->len - 1] == '\n');
	CHECK(memchr(req->data, '\n', req->len) == req->data + req->len - 1);
	CHECK(!memchr(req->data, '\r', req->len));
}

/* The input as bytes, and (when it is JSON a job could hold) as the store
 * keeps it, printed compactly: then the request reads back as the task's
 * numbers and that input, in that order. */
static void run_request(const uint8_t *data, size_t size)
{
	static const char *const order[] = { "task", "job", "attempt", "input" };
	struct buf req = BUF_INIT;
	char *input = xmalloc(size + 1), *text, *again;
	const char *end = NULL;
	const cJSON *c;
	cJSON *doc, *back;
	int i = 0;

	memcpy(input, data, size);
	input[size] = '\0';
	request(&req, input);
	buf_reset(&req);
	doc = cJSON_ParseWithLengthOpts(input, size + 1, &end, 1);
	free(input);
	if (!doc || !numbers_finite(doc) || holds_nul_escape((const char *)data, size)) {
		cJSON_Delete(doc);
		buf_release(&req);
		return;
	}
	text = cJSON_PrintUnformatted(doc);
	CHECK(text);
	request(&req, text);
	back = cJSON_ParseWithLengthOpts(req.data, req.len + 1, &end, 1);
	CHECK(cJSON_IsObject(back) && cJSON_GetArraySize(back) == 4);
	cJSON_ArrayForEach(c, back)
		CHECK(!strcmp(c->string, order[i++]));
	CHECK(cJSON_GetObjectItem(back, "task")->valuedouble == (double)TASK_INDEX);
	CHECK(cJSON_GetObjectItem(back, "job")->valuedouble == (double)TASK_JOB);
	CHECK(cJSON_GetObjectItem(back, "attempt")->valuedouble == (double)TASK_ATTEMPT);
	again = cJSON_PrintUnformatted(cJSON_GetObjectItem(back, "input"));
	CHECK(again && !strcmp(again, text));
	cJSON_free(again);
	cJSON_Delete(back);
	cJSON_free(text);
	cJSON_Delete(doc);
	buf_release(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t how;

	if (!size)
		return 0;
	how = data[0];
	data++;
	size--;
	run_stdout(data, size, how);
	run_stderr(data, size, how);
	run_request(data, size);
	return 0;
}
