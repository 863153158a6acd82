/*
 * Unit tests of job request validation (server/jobreq.c): what is accepted,
 * and for everything refused, the status, the code and a message that
 * names the field or the byte at fault.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/buf.h"
#include "../../lib/utf8.h"
#include "../../server/jobreq.h"

static struct registry *reg;
static const struct jobreq_limits lim = { .max_tasks = 5, .default_timeout_s = 3600 };

static int group_setup(void **state)
{
	(void)state;
	reg = registry_new();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	registry_free(reg);
	return 0;
}

static int parse(const char *body, struct jobreq *r, const char **code, char *msg,
		 size_t len)
{
	return jobreq_parse(r, body, strlen(body), reg, &lim, code, msg, len);
}

static void refused(const char *body, int status, const char *code, const char *words)
{
	struct jobreq r;
	const char *got;
	char msg[512];
	int rc = parse(body, &r, &got, msg, sizeof(msg));

	if (rc != status || strcmp(got, code) || !strstr(msg, words))
		fail_msg("%s: want %d %s \"%s\", got %d %s \"%s\"", body, status, code,
			 words, rc, got, msg);
	assert_null(r.doc);
}

static void test_accepts_full_request(void **state)
{
	struct jobreq r;
	const char *code;
	char msg[256];

	(void)state;
	assert_int_equal(parse("{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 1}, {\"ms\": 2, \"steps\": 3}],"
			       " \"name\": \"x\", \"timeout_s\": 2.5, \"max_attempts\": 3,"
			       " \"priority\": -4, \"paused\": true}", &r, &code, msg, sizeof(msg)), 0);
	assert_string_equal(r.handler, "sleep");
	assert_int_equal(r.ntasks, 2);
	assert_string_equal(r.name, "x");
	assert_int_equal(r.timeout_ms, 2500);
	assert_int_equal(r.max_attempts, 3);
	assert_int_equal(r.priority, -4);
	assert_int_equal(r.paused, 1);
	jobreq_release(&r);
}

static void test_defaults(void **state)
{
	struct jobreq r;
	const char *code;
	char msg[256];

	(void)state;
	assert_int_equal(parse("{\"handler\": \"noop\", \"tasks\": [null], \"name\": null}", &r,
			       &code, msg, sizeof(msg)), 0);
	assert_null(r.name);
	assert_int_equal(r.timeout_ms, 3600000);
	assert_int_equal(r.max_attempts, 1);
	assert_int_equal(r.priority, 0);
	assert_int_equal(r.paused, 0);
	jobreq_release(&r);
}

static void test_refusals(void **state)
{
	(void)state;
	refused("", 400, "invalid_request", "empty");
	refused("{\"handler\":", 400, "bad_json", "at byte 11");
	refused("{} trailing", 400, "bad_json", "at byte 3");
	refused("\"str\"", 400, "invalid_request", "JSON object");
	refused("{\"handler\": \"noop\", \"tasks\": [\"\xc3\x28\"]}", 400, "bad_json", "UTF-8 (at byte 31)");
	refused("{\"tasks\": [1]}", 400, "invalid_request", "\"handler\" is required");
	refused("{\"handler\": \"\", \"tasks\": [1]}", 400, "invalid_request", "non-empty string");
	refused("{\"handler\": \"zzz\", \"tasks\": [1]}", 422, "unknown_handler", "noop");
	refused("{\"handler\": \"noop\", \"tasks\": 1}", 400, "invalid_request", "array");
	refused("{\"handler\": \"noop\", \"tasks\": []}", 400, "invalid_request", "empty");
	refused("{\"handler\": \"noop\", \"tasks\": [1,2,3,4,5,6]}", 413, "too_many_tasks", "at most 5");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"name\": [1]}", 400, "invalid_request", "\"name\"");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"timeout_s\": 0}", 400, "invalid_request", "timeout_s");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"timeout_s\": 1e300}", 400, "invalid_request", "timeout_s");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"max_attempts\": 0}", 400, "invalid_request", "max_attempts");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"max_attempts\": 101}", 400, "invalid_request", "max_attempts");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"priority\": 1e12}", 400, "invalid_request", "priority");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"paused\": 1}", 400, "invalid_request",
		"field \"paused\" must be true or false");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"extra\": 1}", 400, "invalid_request", "unknown field \"extra\"");
	refused("{\"handler\": \"noop\", \"tasks\": [{\"a\": [1, -1e999]}]}", 400, "invalid_request",
		"tasks[0].a[1]: number out of range");
	refused("{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 1}, 5]}", 400, "invalid_request",
		"tasks[1]: must be an object");
	refused("{\"handler\": \"sleep\", \"tasks\": [{\"ms\": -1}]}", 400, "invalid_request", "tasks[0].ms");
	refused("{\"handler\": \"sleep\", \"tasks\": [{\"ms\": 1, \"steps\": 0.5}]}", 400,
		"invalid_request", "tasks[0].steps");
	refused("{\"handler\": \"fail\", \"tasks\": [{\"message\": 1}]}", 400, "invalid_request",
		"tasks[0].message");
	refused("{\"handler\": \"noop\", \"handler\": \"crash\", \"tasks\": [1]}", 400,
		"invalid_request", "field \"handler\" is given twice");
	refused("{\"handler\": \"noop\", \"tasks\": [1], \"priority\": 1, \"priority\": 2}", 400,
		"invalid_request", "field \"priority\" is given twice");
	/* \u0000 would end the string early: "noop\u0000x" named "noop". */
	refused("{\"handler\": \"noop\\u0000x\", \"tasks\": [1]}", 400, "invalid_request",
		"\\u0000 (at byte 17)");
	refused("{\"handler\": \"echo\", \"tasks\": [\"a\\u0000b\"]}", 400, "invalid_request",
		"\\u0000");
	/* cJSON reads a \u without 4 hex digits as \u0000; JSON has none. */
	refused("{\"handler\": \"echo\", \"tasks\": [\"a\\uzzzzb\"]}", 400, "bad_json",
		"malformed JSON at byte 32: \\u needs 4 hex digits");
	refused("{\"handler\": \"echo\", \"tasks\": [\"\\u12zz\"]}", 400, "bad_json",
		"\\u needs 4 hex digits");
	/* A raw NUL is no JSON either; in a string cJSON would end the string
	 * there: the handler "echo<NUL>x" taken for "echo", a field
	 * "paused<NUL>x" for "paused". */
	static const char *const nul[] = {
		"{\"handler\": \"echo\0x\", \"tasks\": [1]}",
		"{\"handler\": \"echo\", \"tasks\": [1], \"paused\0x\": true}",
		"{\"handler\": \"echo\", \"tasks\": [\"a\0b\"]}",
		"{\"handler\": \"echo\", \"tasks\": [1]}\0",
	};
	static const size_t nul_len[] = { 35, 51, 37, 34 };
	static const size_t nul_at[] = { 17, 41, 32, 33 };

	for (size_t i = 0; i < sizeof(nul) / sizeof(nul[0]); i++) {
		struct jobreq r;
		const char *code;
		char msg[256], want[64];

		assert_int_equal(nul[i][nul_at[i]], '\0');
		assert_int_equal(jobreq_parse(&r, nul[i], nul_len[i], reg, &lim, &code, msg,
					      sizeof(msg)), 400);
		assert_string_equal(code, "bad_json");
		snprintf(want, sizeof(want), "malformed JSON at byte %zu: a NUL byte", nul_at[i]);
		assert_string_equal(msg, want);
		assert_null(r.doc);
	}
}

static size_t allocations;

static void *counting_malloc(size_t n)
{
	allocations++;
	return malloc(n);
}

/* A request over --max-tasks is refused before its tree is built: a body
 * of millions of tiny tasks would take gigabytes as cJSON's tree (and
 * seconds of the server's one thread) only to be refused. */
static void test_too_many_refused_unparsed(void **state)
{
	cJSON_Hooks counting = { counting_malloc, free }, plain = { NULL, NULL };
	struct buf body = BUF_INIT;
	struct jobreq r;
	const char *code;
	char msg[256];

	(void)state;
	buf_adds(&body, "{\"handler\": \"noop\", \"tasks\": [0");
	for (int i = 1; i < 100000; i++)
		buf_adds(&body, ",{\"a\":[1,2]}");
	buf_adds(&body, "]}");
	cJSON_InitHooks(&counting);
	allocations = 0;
	assert_int_equal(jobreq_parse(&r, body.data, body.len, reg, &lim, &code, msg,
				      sizeof(msg)), 413);
	cJSON_InitHooks(&plain);
	assert_string_equal(code, "too_many_tasks");
	assert_string_equal(msg, "100000 tasks; this server takes at most 5 in one job (--max-tasks)");
	assert_int_equal(allocations, 0);
	assert_null(r.doc);
	buf_release(&body);
}

/* Each input is stored as the client wrote it, compact: its numbers are
 * not the doubles cJSON read (9007199254740993 is not one), 1.0 stays
 * 1.0; and a pretty-printed request stores one line per input. */
static void test_inputs_as_written(void **state)
{
	static const char *const want[] = {
		"9007199254740993", "1.0", "{\"a\":[1E22,\"x\\ty \\u00e9\"],\"b\":null}",
		"-0.5", "[\"\\ud83d\\ude00\"]",
	};
	struct jobreq r;
	struct buf in = BUF_INIT;
	const char *code;
	char msg[256];

	(void)state;
	assert_int_equal(parse("{\"tasks\" : [\n  9007199254740993,\n  1.0,\n"
			       "  {\"a\" : [ 1E22, \"x\ty \\u00e9\" ], \"b\": null},\n  -.5,"
			       " [ \"\\ud83d\\ude00\" ] ],\n \"name\": \"tasks\", \"handler\": \"echo\"}",
			       &r, &code, msg, sizeof(msg)), 0);
	assert_int_equal(r.ntasks, 5);
	for (int i = 0; i < 5; i++) {
		buf_reset(&in);
		assert_int_equal(jobreq_next_input(&r, &in), 0);
		assert_string_equal(in.data, want[i]);
	}
	assert_int_equal(jobreq_next_input(&r, &in), -1);
	buf_release(&in);
	jobreq_release(&r);
}

static void test_escaped_backslash_is_not_nul(void **state)
{
	struct jobreq r;
	const char *code;
	char msg[256];

	(void)state;
	assert_int_equal(parse("{\"handler\": \"echo\", \"tasks\": [\"\\\\u0000\", \"\\u00001\"]}",
			       &r, &code, msg, sizeof(msg)), 400);
	assert_int_equal(parse("{\"handler\": \"echo\", \"tasks\": [\"\\\\u0000\"]}",
			       &r, &code, msg, sizeof(msg)), 0);
	jobreq_release(&r);
}

/* A byte order mark before the JSON is ignored; offsets count it. */
static void test_byte_order_mark(void **state)
{
	struct jobreq r;
	struct buf in = BUF_INIT;
	const char *code;
	char msg[256];

	(void)state;
	assert_int_equal(parse("\xEF\xBB\xBF{\"handler\": \"echo\", \"tasks\": [1.0]}", &r, &code,
			       msg, sizeof(msg)), 0);
	assert_int_equal(jobreq_next_input(&r, &in), 0);
	assert_string_equal(in.data, "1.0");
	buf_release(&in);
	jobreq_release(&r);
	refused("\xEF\xBB\xBF[1] x", 400, "bad_json", "malformed JSON at byte 7");
	refused("\xEF\xBB\xBF", 400, "bad_json", "malformed JSON at byte 3");
	refused("\xEF\xBB{}", 400, "bad_json", "not valid UTF-8 (at byte 0)");
}

/* A NUL byte inside the body does not end it: what follows is still
 * checked (it used to be ignored). */
static void test_nul_inside_body(void **state)
{
	static const char ok[] = "{\"handler\": \"noop\", \"tasks\": [1]} \r\n";
	static const char junk[] = "{\"handler\": \"noop\", \"tasks\": [1]}\0junk";
	static const char nul[] = "{\"handler\": \"noop\", \"tasks\": [1]}\0";
	struct jobreq r;
	const char *code;
	char msg[256];

	(void)state;
	assert_int_equal(jobreq_parse(&r, ok, sizeof(ok) - 1, reg, &lim, &code, msg,
				      sizeof(msg)), 0);
	jobreq_release(&r);
	assert_int_equal(jobreq_parse(&r, junk, sizeof(junk) - 1, reg, &lim, &code, msg,
				      sizeof(msg)), 400);
	assert_string_equal(code, "bad_json");
	assert_string_equal(msg, "malformed JSON at byte 33: a NUL byte");
	assert_null(r.doc);
	assert_int_equal(jobreq_parse(&r, nul, sizeof(nul) - 1, reg, &lim, &code, msg,
				      sizeof(msg)), 400);
	assert_string_equal(code, "bad_json");
}

/* Found by tests/fuzz/fuzz_jobreq: a key with a newline made a message of
 * two lines. Quoted keys and names are escaped and cut at a character. */
static void test_message_is_one_line(void **state)
{
	struct jobreq r;
	const char *code;
	char msg[512];
	char body[1024];

	(void)state;
	assert_int_equal(parse(" \r\n\t{\"ha\\ndler\":\"noop\",\"tasks\":[1]}\n", &r, &code,
			       msg, sizeof(msg)), 400);
	assert_string_equal(msg, "unknown field \"ha\\ndler\"");
	assert_int_equal(parse("{\"handler\": \"a\\tb\", \"tasks\": [1]}", &r, &code, msg,
			       sizeof(msg)), 422);
	assert_non_null(strstr(msg, "unknown handler \"a\\x09b\""));
	assert_int_equal(parse("{\"handler\": \"echo\", \"tasks\": [{\"k\\r\": 1e999}]}", &r,
			       &code, msg, sizeof(msg)), 400);
	assert_string_equal(msg, "tasks[0].k\\x0d: number out of range");
	/* 99 ASCII bytes then a 2-byte character: cut before it. */
	snprintf(body, sizeof(body), "{\"%099d\xc3\xa9x\": 1}", 0);
	assert_int_equal(parse(body, &r, &code, msg, sizeof(msg)), 400);
	assert_non_null(strstr(msg, "0...\""));
	assert_true(utf8_valid(msg, strlen(msg), NULL));
}

/* Nesting deeper than the parser allows is refused, not a crash. */
static void test_deep_nesting(void **state)
{
	char body[8192];
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(body, sizeof(body), "{\"handler\": \"echo\", \"tasks\": [");
	for (int i = 0; i < 3000; i++)
		body[n++] = '[';
	body[n] = '\0';
	/* Said as it is: valid JSON, but deeper than the parser goes. */
	refused(body, 400, "bad_json", "JSON nested deeper than 1000 levels at byte 1028");
	/* Brackets in strings do not count; truncated text is malformed. */
	refused("{\"handler\": \"echo\", \"tasks\": [\"[[[[\"", 400, "bad_json",
		"malformed JSON at byte 36");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_full_request),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_too_many_refused_unparsed),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_nul_inside_body),
		cmocka_unit_test(test_escaped_backslash_is_not_nul),
		cmocka_unit_test(test_inputs_as_written),
		cmocka_unit_test(test_byte_order_mark),
		cmocka_unit_test(test_message_is_one_line),
	};

	return cmocka_run_group_tests_name("jobreq", tests, group_setup, group_teardown);
}
