/*
 * libFuzzer target: job request validation (server/jobreq.c), the first
 * code every POST /api/jobs body meets. Whatever the bytes, jobreq_parse
 * must not crash, leak or read out of bounds, and must either refuse with
 * 400/413/422, a code and a one-line message and nothing held, or accept a
 * request whose every field is within its documented range, given once,
 * and whose task inputs, as they will be stored, are the values sent
 * (check_json.h).
 *
 *   make fuzz           runs it with tests/fuzz/corpus_jobreq as seeds
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/utf8.h"
#include "../../server/jobreq.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

#include "check_json.h"

static const struct jobreq_limits limits = { .max_tasks = 1000, .default_timeout_s = 3600 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct registry *reg;
	struct jobreq r;
	const char *code = NULL;
	char msg[512] = "";
	char *body = malloc(size + 1);
	int status;

	if (!reg)
		reg = registry_new();
	if (!body)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';
	status = jobreq_parse(&r, body, size, reg, &limits, &code, msg, sizeof(msg));
	if (status) {
		CHECK(status == 400 || status == 413 || status == 422);
		CHECK(code && *code);
		CHECK(msg[0] && !strchr(msg, '\n'));
		CHECK(utf8_valid(msg, strlen(msg), NULL));
		CHECK(r.doc == NULL);
	} else {
		const cJSON *t;
		int64_t n = 0;
		struct buf in = BUF_INIT;

		CHECK(r.doc && r.handler && r.tasks);
		CHECK(registry_get(reg, r.handler_id) &&
		      !strcmp(registry_get(reg, r.handler_id)->name, r.handler));
		CHECK(r.ntasks >= 1 && r.ntasks <= limits.max_tasks);
		CHECK(r.max_attempts >= 1 && r.max_attempts <= JOBREQ_ATTEMPTS_MAX);
		CHECK(r.priority >= -JOBREQ_PRIORITY_MAX && r.priority <= JOBREQ_PRIORITY_MAX);
		CHECK(r.timeout_ms >= 1 && r.timeout_ms <= (int64_t)(JOBREQ_TIMEOUT_MAX * 1000));
		CHECK(!r.name || strlen(r.name) <= JOBREQ_NAME_MAX);
		for (t = r.tasks->child; t; t = t->next, n++) {
			/* What api_jobs.c stores of each input: the text sent,
			 * compact, which reads as the value cJSON read. */
			char *printed = cJSON_PrintUnformatted(t);

			CHECK(printed);
			buf_reset(&in);
			CHECK(jobreq_next_input(&r, &in) == 0);
			check_stored(in.data, in.len, printed);
			cJSON_free(printed);
		}
		CHECK(jobreq_next_input(&r, &in) == -1);
		buf_release(&in);
		CHECK(n == r.ntasks);
		/* Each field at most once: no two readings of one request. */
		for (const cJSON *a = r.doc->child; a; a = a->next)
			for (const cJSON *b = a->next; b; b = b->next)
				CHECK(strcmp(a->string, b->string));
		jobreq_release(&r);
		CHECK(r.doc == NULL);
	}
	free(body);
	return 0;
}
