/*
 * The examples of docs/HANDLERS.md work as the document says, and the
 * document quotes them as they are: batchd serves examples/handlers/
 * handlers.json (a command, two persistent handlers and the example
 * plugin) and each handler answers what the document shows.
 */
#include "harness.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/buf.h"

static int setup(void **state)
{
	struct server *s = calloc(1, sizeof(*s));

	server_init(s);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct server *s = *state;

	server_free(s);
	free(s);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;

	if (!f)
		fail_msg("cannot read %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	return buf_detach(&b, NULL);
}

static void test_docs_quote_the_examples(void **state)
{
	static const char *const files[] = {
		"examples/handlers/handlers.json", "examples/handlers/wordcount.sh",
		"examples/handlers/sentiment.py", "examples/handlers/square.sh", NULL
	};
	char *doc = slurp("docs/HANDLERS.md");

	(void)state;
	for (int i = 0; files[i]; i++) {
		char *text = slurp(files[i]);
		size_t n = strlen(text);

		while (n && text[n - 1] == '\n')
			text[--n] = '\0';
		if (!strstr(doc, text))
			fail_msg("docs/HANDLERS.md does not quote %s as it is", files[i]);
		free(text);
	}
	free(doc);
}

/* Runs a job and returns its tasks. */
static cJSON *run_job(const struct server *s, const char *body)
{
	int64_t id = submit(s, body);

	cJSON_Delete(wait_job(s, id, "succeeded|failed", 60));
	return apif(s, "GET", 200, NULL, "/api/jobs/%lld/tasks", (long long)id);
}

static void test_examples_answer_as_documented(void **state)
{
	struct server *s = *state;
	char cwd[PATH_MAX], path[PATH_MAX + 64];
	const char *args[] = { "--workers", "2", "--handlers", path, NULL };
	cJSON *j;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(path, sizeof(path), "%s/examples/handlers/handlers.json", cwd);
	server_start(s, args);

	j = run_job(s, "{\"handler\": \"wordcount\", \"tasks\": [\"hello big world\", \"a b\"]}");
	assert_int_equal(jnum(j, "tasks.0.result.words"), 3);
	assert_int_equal(jnum(j, "tasks.1.result.words"), 2);
	assert_int_equal(jnum(j, "tasks.1.result.task"), 1);
	assert_string_equal(jstr(j, "tasks.0.message"), "counting words");
	cJSON_Delete(j);

	j = run_job(s, "{\"handler\": \"sentiment\", \"tasks\": [\"a good day\","
		    " \"an awful, sad day!\", 3]}");
	assert_int_equal(jnum(j, "tasks.0.result.score"), 1);
	assert_int_equal(jnum(j, "tasks.0.result.words"), 3);
	assert_int_equal(jnum(j, "tasks.1.result.score"), -3);
	assert_string_equal(jstr(j, "tasks.2.error"), "ValueError: input must be a string of text");
	cJSON_Delete(j);
	assert_true(server_log_has(s, "handler=sentiment pid="));
	assert_true(server_log_has(s, "line=\"loading the lexicon\""));

	j = run_job(s, "{\"handler\": \"square\", \"tasks\": [3, 12, -1, \"x\"]}");
	assert_int_equal(jnum(j, "tasks.0.result.square"), 9);
	assert_int_equal(jnum(j, "tasks.1.result.square"), 144);
	assert_string_equal(jstr(j, "tasks.2.error"), "input must be a non-negative integer");
	assert_string_equal(jstr(j, "tasks.3.error"), "input must be a non-negative integer");
	cJSON_Delete(j);

	j = run_job(s, "{\"handler\": \"primes\", \"tasks\": [{\"from\": 0, \"to\": 100}]}");
	assert_int_equal(jnum(j, "tasks.0.result.primes"), 25);
	assert_int_equal(jnum(j, "tasks.0.result.largest"), 97);
	cJSON_Delete(j);

	/* A co-process's ready line is its start-up, never stray output. */
	assert_false(server_log_has(s, "replacing co-process"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_docs_quote_the_examples),
		cmocka_unit_test_setup_teardown(test_examples_answer_as_documented, setup, teardown),
	};

	return cmocka_run_group_tests_name("examples", tests, NULL, NULL);
}
