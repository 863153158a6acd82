/*
 * What both fuzz targets ask of a value batchd stores as text (a task's
 * input, a handler's result; see lib/json.h): one strict JSON value on one
 * line, valid UTF-8, that reads as the value cJSON read from what was sent
 * (printed as cJSON prints it: the same text), and that a second copy
 * leaves as it is. CHECK is the including file's.
 */
#ifndef BATCHD_CHECK_JSON_H
#define BATCHD_CHECK_JSON_H

#include <string.h>

#include <cjson/cJSON.h>

#include "../../lib/buf.h"
#include "../../lib/json.h"
#include "../../lib/utf8.h"

/* printed: v as cJSON_PrintUnformatted prints it. */
static void check_stored(const char *text, size_t len, const char *printed)
{
	const char *end = NULL, *p = text;
	struct buf again = BUF_INIT;
	cJSON *back;
	char *out;

	CHECK(strlen(text) == len);
	CHECK(utf8_valid(text, len, NULL));
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)text[i] >= 0x20);
	back = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
	CHECK(back);
	out = cJSON_PrintUnformatted(back);
	CHECK(out && !strcmp(out, printed));
	cJSON_free(out);
	cJSON_Delete(back);
	CHECK(json_copy(&again, &p, text + len) == 0 && p == text + len);
	CHECK(again.len == len && !memcmp(again.data, text, len));
	buf_release(&again);
}

#endif
