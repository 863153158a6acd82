/*
 * Unit tests of lib/json.c: task inputs and handler results are stored as
 * written (compact), so that no number is changed by a trip through a
 * double, and so that each is one strict JSON value on one line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/json.h"

/* json_copy of the whole of text: what is stored for it. */
static void copies_as(const char *text, const char *want)
{
	struct buf out = BUF_INIT, again = BUF_INIT;
	const char *p = text, *q;
	cJSON *a, *b;

	if (json_copy(&out, &p, text + strlen(text)) < 0)
		fail_msg("%s: not copied", text);
	if (strcmp(out.data, want))
		fail_msg("%s: copied as %s, want %s", text, out.data, want);
	/* Where it stopped: only white space is left. */
	p += strspn(p, " \t\r\n");
	assert_int_equal(*p, '\0');
	/* The same value as cJSON reads it, and a copy of the copy is
	 * itself. */
	a = cJSON_Parse(text);
	b = cJSON_Parse(out.data);
	assert_non_null(a);
	assert_non_null(b);
	assert_true(cJSON_Compare(a, b, 1));
	cJSON_Delete(a);
	cJSON_Delete(b);
	q = out.data;
	assert_int_equal(json_copy(&again, &q, out.data + out.len), 0);
	assert_string_equal(again.data, out.data);
	buf_release(&again);
	buf_release(&out);
}

static void test_numbers_as_written(void **state)
{
	(void)state;
	/* Past a double's 53 bits: cJSON alone prints these otherwise. */
	copies_as("9007199254740993", "9007199254740993");
	copies_as("12345678901234567890", "12345678901234567890");
	copies_as("-9223372036854775808", "-9223372036854775808");
	copies_as("3.14159265358979323846264338327950288", "3.14159265358979323846264338327950288");
	/* A float stays a float, an exponent stays one. */
	copies_as("1.0", "1.0");
	copies_as("-0.0", "-0.0");
	copies_as("1E22", "1E22");
	copies_as("2.5e-3", "2.5e-3");
	copies_as("0", "0");
}

static void test_numbers_outside_json(void **state)
{
	(void)state;
	/* cJSON reads these; stored text is strict JSON all the same. */
	copies_as("01", "1");
	copies_as("1.", "1");
	copies_as("-.5", "-0.5");
	copies_as("[00, 1.e2]", "[0,100]");
}

static void test_compact(void **state)
{
	(void)state;
	copies_as(" {\n  \"a\" : [ 1 , 2 ],\n\t\"b\": {} ,\"c\":[ ]\r\n}\n",
		  "{\"a\":[1,2],\"b\":{},\"c\":[]}");
	copies_as("[ true ,false, null ]", "[true,false,null]");
	/* White space in strings is the string's own. */
	copies_as("\" a  b \"", "\" a  b \"");
	/* cJSON takes every control byte as white space between values. */
	copies_as("[1,\x01\x0b" "2]", "[1,2]");
}

/* A member given twice is kept twice, as cJSON keeps it (its
 * cJSON_Compare cannot say so: it is not used here). */
static void test_member_twice(void **state)
{
	const char *text = "{\"a\": 1, \"a\": 2}", *p = text;
	struct buf out = BUF_INIT;

	(void)state;
	assert_int_equal(json_copy(&out, &p, text + strlen(text)), 0);
	assert_string_equal(out.data, "{\"a\":1,\"a\":2}");
	buf_release(&out);
}

static void test_strings(void **state)
{
	(void)state;
	/* Escapes as written, not decoded then encoded again. */
	copies_as("\"\\u00e9\\ud83d\\ude00 \\\" \\\\ \\/ \\n\"",
		  "\"\\u00e9\\ud83d\\ude00 \\\" \\\\ \\/ \\n\"");
	copies_as("\"é😀\"", "\"é😀\"");
	/* Control characters are escaped: a raw newline in a stored string
	 * would break a line of JSON Lines, and strict parsers refuse them. */
	copies_as("\"a\tb\nc\rd\be\ff\x01g\x0bh\x1f\"",
		  "\"a\\tb\\nc\\rd\\be\\ff\\u0001g\\u000bh\\u001f\"");
	copies_as("{\"k\te\": \"\"}", "{\"k\\te\":\"\"}");
}

static void test_not_values(void **state)
{
	static const char *const bad[] = {
		"", "   ", "tru", "nul", "+1", "\"open", "[1,2", "{\"a\" 1}", "{\"a\":}", "[1 2]",
		"{1:2}", "]", "x",
		/* Escapes JSON does not have, which cJSON reads as \u0000 or
		 * refuses: stored text never holds them. */
		"\"\\uzzzz\"", "\"\\u12\"", "\"\\x41\"", "\"\\",
	};
	struct buf out = BUF_INIT;
	char deep[3000];
	const char *p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = bad[i];
		buf_reset(&out);
		if (json_copy(&out, &p, bad[i] + strlen(bad[i])) == 0)
			fail_msg("%s: copied as %s", bad[i], out.data);
	}
	/* Nesting past what cJSON takes is refused, not a deep recursion. */
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	p = deep;
	assert_int_equal(json_copy(NULL, &p, deep + strlen(deep)), -1);
	buf_release(&out);
}

static void test_next_and_member(void **state)
{
	const char *text = "{ \"x\" : {\"tasks\":1}, \"tasks\" :[ 1.0 ,{\"a\": [2]},\"s\" ] , \"z\":0}";
	const char *end = text + strlen(text), *p = text;
	struct buf out = BUF_INIT;

	(void)state;
	assert_int_equal(json_member(&p, end, 1), 0);
	assert_int_equal(*p, '[');
	for (int i = 0; i < 3; i++) {
		assert_int_equal(json_next(&p, end), 1);
		assert_int_equal(json_copy(&out, &p, end), 0);
		buf_addc(&out, '|');
	}
	assert_int_equal(json_next(&p, end), 0);
	assert_string_equal(out.data, "1.0|{\"a\":[2]}|\"s\"|");
	assert_int_equal(*p, ' ');

	p = text;
	assert_int_equal(json_member(&p, end, 2), 0);
	assert_int_equal(*p, '0');
	p = text;
	assert_int_equal(json_member(&p, end, 3), -1);

	p = " [ ] ";
	assert_int_equal(json_next(&p, p + 5), 0);
	assert_string_equal(p, " ");
	p = "{}";
	assert_int_equal(json_member(&p, p + 2, 0), -1);
	buf_release(&out);
}

static void test_nul_escape(void **state)
{
	int zero = -1;

	(void)state;
	assert_int_equal(json_nul_escape("\"a\\u0000b\"", 10, &zero), 2);
	assert_int_equal(zero, 1);
	assert_int_equal(json_nul_escape("[\"\\u00e9\", \"\\uzz\"]", 18, &zero), 12);
	assert_int_equal(zero, 0);
	assert_int_equal(json_nul_escape("\"\\u000\"", 7, &zero), 1);
	assert_int_equal(zero, 0);
	/* An escaped backslash, then u0000: no escape of a NUL. */
	assert_int_equal(json_nul_escape("\"\\\\u0000\"", 10, &zero), -1);
	assert_int_equal(json_nul_escape("\"\\u00e9\\n\"", 10, &zero), -1);
}

/* A value deep in a tree, found in the text by its place. */
/* The tasks counted before any parse: right for JSON, -1 when the member
 * is not found as written. */
static void test_array_member_len(void **state)
{
	static const struct {
		const char *text;
		long long n;
	} cases[] = {
		{ "{\"tasks\":[1,2,3]}", 3 },
		{ "{\"tasks\": []}", 0 },
		{ "{ \"name\" : \"x\" , \"tasks\" : [ 1 , 2 ] }", 2 },
		{ "{\"a\":{\"tasks\":[1]},\"tasks\":[ ]}", 0 },
		{ "{\"handler\":\"x\",\"tasks\":[[1,2],{\"a\":[3,4]},\"a,b]\",5]}", 4 },
		{ "{\"tasks\":[{\"x\":\"\\\"],[\"}]}", 1 },
		{ "{\"a\":true,\"b\":null,\"c\":-1.5e3,\"d\":\"}\",\"tasks\":[null]}", 1 },
		{ "\xEF\xBB\xBF{\"tasks\":[1]}", -1 },	/* the caller skips the mark */
		{ "{\"tasks\":1}", -1 },
		{ "{\"tasks\":\"[1,2]\"}", -1 },
		{ "{\"tasksx\":[1]}", -1 },
		{ "{\"t\\u0061sks\":[1]}", -1 },
		{ "[1,2]", -1 },
		{ "{\"tasks\":[1,2", -1 },
		{ "{\"a\":\"x\"", -1 },
		{ "{\"a\" 1, \"tasks\":[1]}", -1 },
		{ "", -1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long long n = json_array_member_len(cases[i].text, strlen(cases[i].text), "tasks");

		if (n != cases[i].n)
			fail_msg("%s: %lld, want %lld", cases[i].text, n, cases[i].n);
	}
}

static void test_text_of(void **state)
{
	const char *text = " {\"a\": [1, {\"b\": 2.50}, [3.0]], \"a\": 7, \"c\": 9007199254740993}";
	cJSON *doc = cJSON_Parse(text);
	const cJSON *a = cJSON_GetObjectItem(doc, "a"), *second = a->next;
	struct buf out = BUF_INIT;

	(void)state;
	json_text_of(&out, doc, cJSON_GetObjectItem(cJSON_GetArrayItem(a, 1), "b"), text,
		     strlen(text));
	assert_string_equal(out.data, "2.50");
	buf_reset(&out);
	json_text_of(&out, doc, cJSON_GetArrayItem(cJSON_GetArrayItem(a, 2), 0), text,
		     strlen(text));
	assert_string_equal(out.data, "3.0");
	buf_reset(&out);
	json_text_of(&out, doc, second, text, strlen(text));	/* "a" given twice */
	assert_string_equal(out.data, "7");
	buf_reset(&out);
	json_text_of(&out, doc, cJSON_GetObjectItem(doc, "c"), text, strlen(text));
	assert_string_equal(out.data, "9007199254740993");
	buf_reset(&out);
	json_text_of(&out, doc, doc, text, strlen(text));
	assert_string_equal(out.data, "{\"a\":[1,{\"b\":2.50},[3.0]],\"a\":7,\"c\":9007199254740993}");
	cJSON_Delete(doc);
	/* cJSON reads a document after a byte order mark: so does this. */
	text = "\xEF\xBB\xBF{\"r\": 1.0}";
	doc = cJSON_Parse(text);
	assert_non_null(doc);
	buf_reset(&out);
	json_text_of(&out, doc, doc->child, text, strlen(text));
	assert_string_equal(out.data, "1.0");
	cJSON_Delete(doc);
	buf_release(&out);
}

/* When the text does not walk, the value is printed from cJSON's tree. */
static void test_copy_of(void **state)
{
	cJSON *v = cJSON_Parse("[1.5]");
	struct buf out = BUF_INIT;
	const char *p = "[1.50]", *end = p + 6;

	(void)state;
	json_copy_of(&out, v, &p, end);
	assert_string_equal(out.data, "[1.50]");
	assert_int_equal(*p, '\0');
	buf_reset(&out);
	buf_adds(&out, "x:");
	p = "[1.50";
	json_copy_of(&out, v, &p, p + 5);
	assert_string_equal(out.data, "x:[1.5]");
	assert_null(p);
	buf_reset(&out);
	json_copy_of(&out, v, &p, NULL);
	assert_string_equal(out.data, "[1.5]");
	cJSON_Delete(v);
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbers_as_written),
		cmocka_unit_test(test_numbers_outside_json),
		cmocka_unit_test(test_compact),
		cmocka_unit_test(test_member_twice),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_not_values),
		cmocka_unit_test(test_next_and_member),
		cmocka_unit_test(test_nul_escape),
		cmocka_unit_test(test_array_member_len),
		cmocka_unit_test(test_text_of),
		cmocka_unit_test(test_copy_of),
	};

	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
