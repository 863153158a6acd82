/*
 * The examples of docs/HANDLERS.md work as the document says, and the
 * document quotes them as they are: batchd serves examples/handlers/
 * handlers.json (a command, two persistent handlers and the example
 * plugin) and each handler answers what the document shows. And the frame
 * pipeline of examples/frames/ gives through batchd what it gives in one
 * process.
 */
#include "harness.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/buf.h"

static char *slurp(const char *path)
{
	char *text = file_text(path);

	if (!text)
		fail_msg("cannot read %s", path);
	return text;
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

/* The objects line of client.py's output in file path. */
static char *objects_line(const char *path)
{
	char *text = slurp(path), *line = strstr(text, "  objects: "), *nl;

	if (!line)
		fail_msg("%s: no objects line in:\n%s", path, text);
	nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
	memmove(text, line, strlen(line) + 1);
	return text;
}

/* examples/frames/ with a short set-up and 20 frames: batchd's pipeline
 * and the one-process baseline find the same objects. */
static void test_frames_pipeline(void **state)
{
	struct server *s = *state;
	char cwd[PATH_MAX], handlers[400], out[400], local[400];
	struct buf h = BUF_INIT;
	const char *args[] = { "--workers", "2", "--handlers", handlers, NULL };
	const char *stages[] = { "detect", "size", "classify", "aggregate", NULL };
	char *a, *b;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	buf_adds(&h, "{\"handlers\": {");
	for (int i = 0; stages[i]; i++)
		buf_addf(&h, "%s\"frames.%s\": {\"argv\": [\"%s/examples/frames/stage.py\", \"%s\"],"
			 " \"mode\": \"persistent\", \"env\": {\"FRAMES_SETUP_S\": \"0.2\"}}",
			 i ? ", " : "", stages[i], cwd, stages[i]);
	buf_adds(&h, "}}");
	write_file(s, "handlers.json", h.data, 0644, handlers, sizeof(handlers));
	server_start(s, args);
	snprintf(out, sizeof(out), "%s/batchd.out", s->dir);
	snprintf(local, sizeof(local), "%s/local.out", s->dir);
	assert_int_equal(sh("python3 examples/frames/client.py --url %s --frames 20 --runs 2 >%s",
			    s->url, out), 0);
	assert_int_equal(sh("FRAMES_SETUP_S=0.2 python3 examples/frames/client.py --local"
			    " --frames 20 >%s", local), 0);
	a = objects_line(out);
	b = objects_line(local);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "car="));
	free(a);
	free(b);
	buf_release(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_docs_quote_the_examples),
		cmocka_unit_test_setup_teardown(test_examples_answer_as_documented, server_setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_frames_pipeline, server_setup, server_teardown),
	};

	return cmocka_run_group_tests_name("examples", tests, NULL, NULL);
}
