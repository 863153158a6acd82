/*
 * jobreq: job request checks. See jobreq.h.
 */
#include "jobreq.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/json.h"
#include "../lib/utf8.h"

static const char *const fields[] = {
	"handler", "tasks", "name", "timeout_s", "max_attempts", "priority", "paused", NULL
};

/* Finds the first number in v that JSON cannot carry back (1e999 parses as
 * infinity); writes its path after prefix into path. */
static int bad_number(const cJSON *v, struct buf *path)
{
	const cJSON *c;
	size_t mark = path->len;
	int i = 0;

	if (cJSON_IsNumber(v))
		return !isfinite(v->valuedouble);
	cJSON_ArrayForEach(c, v) {
		if (cJSON_IsArray(v))
			buf_addf(path, "[%d]", i);
		else
		{
			buf_addc(path, '.');
			buf_add_quoted(path, c->string, 100);
		}
		if (bad_number(c, path))
			return 1;
		path->len = mark;
		path->data[mark] = '\0';
		i++;
	}
	return 0;
}

/* How deep in arrays and objects s[0..off) leaves the text that follows
 * (cJSON refuses to nest deeper than CJSON_NESTING_LIMIT). */
static long depth_at(const char *s, size_t off)
{
	long depth = 0;

	for (size_t i = 0; i < off; i++) {
		if (s[i] == '"') {
			for (i++; i < off && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
		} else if (s[i] == '[' || s[i] == '{') {
			depth++;
		} else if (s[i] == ']' || s[i] == '}') {
			depth--;
		}
	}
	return depth;
}

static int whole(double v, double lo, double hi)
{
	return isfinite(v) && v == floor(v) && v >= lo && v <= hi;
}

static int parse(struct jobreq *r, const char *body, size_t len,
		 const struct registry *reg, const struct jobreq_limits *lim,
		 const char **code, char *msg, size_t msglen)
{
	const cJSON *f, *t;
	const char *end = NULL, *nul;
	const struct handler *h;
	size_t bad;
	int64_t i = 0;
	long long n;
	long esc;
	int zero;
	size_t bom = json_bom(body, len);

	memset(r, 0, sizeof(*r));
	*code = "invalid_request";
	if (!len) {
		snprintf(msg, msglen, "the body is empty; expected a JSON object like "
			 "{\"handler\": \"noop\", \"tasks\": [null]}");
		return 400;
	}
	if (!utf8_valid(body, len, &bad)) {
		*code = "bad_json";
		snprintf(msg, msglen, "the body is not valid UTF-8 (at byte %zu)", bad);
		return 400;
	}
	/* JSON has no raw NUL anywhere, and cJSON would take one in a string
	 * for its end: "echo<NUL>x" would pass for the handler "echo". */
	if ((nul = memchr(body, '\0', len))) {
		*code = "bad_json";
		snprintf(msg, msglen, "malformed JSON at byte %zu: a NUL byte",
			 (size_t)(nul - body));
		return 400;
	}
	/* Too many tasks is known before the tree is built: a body of
	 * millions of tiny tasks takes gigabytes as cJSON's tree, and seconds
	 * of the server's thread. */
	if ((n = json_array_member_len(body + bom, len - bom, "tasks")) > lim->max_tasks) {
		*code = "too_many_tasks";
		snprintf(msg, msglen, "%lld tasks; this server takes at most %lld in one job (--max-tasks)",
			 n, (long long)lim->max_tasks);
		return 413;
	}
	/* A byte order mark is no part of the JSON (RFC 8259 lets a parser
	 * ignore it); offsets still count it. */
	r->doc = cJSON_ParseWithLengthOpts(body + bom, len - bom + 1, &end, 0);
	/* One JSON value and nothing after it but white space: a NUL byte
	 * does not end the body early. */
	while (r->doc && end < body + len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (!r->doc || end != body + len) {
		const char *at = r->doc ? end : cJSON_GetErrorPtr();
		size_t off = at && at >= body && at <= body + len ? (size_t)(at - body) : 0;
		int deep = !r->doc && off < len && (body[off] == '[' || body[off] == '{') &&
			   depth_at(body, off) >= CJSON_NESTING_LIMIT;

		cJSON_Delete(r->doc);
		r->doc = NULL;
		*code = "bad_json";
		if (deep)
			snprintf(msg, msglen, "JSON nested deeper than %d levels at byte %zu",
				 CJSON_NESTING_LIMIT, off);
		else
			snprintf(msg, msglen, "malformed JSON at byte %zu", off);
		return 400;
	}
	if ((esc = json_nul_escape(body, len, &zero)) >= 0) {
		if (!zero) {
			*code = "bad_json";
			snprintf(msg, msglen, "malformed JSON at byte %ld: \\u needs 4 hex digits", esc);
		} else {
			snprintf(msg, msglen, "a string holds \\u0000 (at byte %ld); batchd cannot "
				 "store it", esc);
		}
		goto fail400;
	}
	if (!cJSON_IsObject(r->doc)) {
		snprintf(msg, msglen, "the body must be a JSON object");
		goto fail400;
	}
	cJSON_ArrayForEach(f, r->doc) {
		int known = 0;

		for (int k = 0; fields[k]; k++)
			known |= !strcmp(f->string, fields[k]);
		/* A field given twice could be read one way here and another
		 * way by a proxy in front: refuse it. */
		if (known && cJSON_GetObjectItemCaseSensitive(r->doc, f->string) != f) {
			snprintf(msg, msglen, "field \"%s\" is given twice", f->string);
			goto fail400;
		}
		if (!known) {
			struct buf q = BUF_INIT;

			buf_add_quoted(&q, f->string, 100);
			snprintf(msg, msglen, "unknown field \"%s\"", q.data);
			buf_release(&q);
			goto fail400;
		}
	}

	f = cJSON_GetObjectItemCaseSensitive(r->doc, "handler");
	if (!f) {
		snprintf(msg, msglen, "field \"handler\" is required");
		goto fail400;
	}
	if (!cJSON_IsString(f) || !*f->valuestring) {
		snprintf(msg, msglen, "field \"handler\" must be a non-empty string");
		goto fail400;
	}
	r->handler = f->valuestring;
	h = registry_find(reg, r->handler, &r->handler_id);
	if (!h) {
		struct buf names = BUF_INIT;

		for (int k = 0; k < registry_count(reg) && names.len < 300; k++)
			buf_addf(&names, "%s%s", k ? ", " : "", registry_get(reg, k)->name);
		*code = "unknown_handler";
		struct buf q = BUF_INIT;

		buf_add_quoted(&q, r->handler, 100);
		snprintf(msg, msglen, "unknown handler \"%s\"; this server has: %s",
			 q.data, names.data);
		buf_release(&q);
		buf_release(&names);
		jobreq_release(r);
		return 422;
	}

	r->tasks = cJSON_GetObjectItemCaseSensitive(r->doc, "tasks");
	if (!r->tasks) {
		snprintf(msg, msglen, "field \"tasks\" is required");
		goto fail400;
	}
	if (!cJSON_IsArray(r->tasks)) {
		snprintf(msg, msglen, "field \"tasks\" must be an array of task inputs");
		goto fail400;
	}
	for (t = r->tasks->child; t; t = t->next)
		r->ntasks++;
	if (!r->ntasks) {
		snprintf(msg, msglen, "field \"tasks\" must not be empty");
		goto fail400;
	}
	if (r->ntasks > lim->max_tasks) {
		*code = "too_many_tasks";
		snprintf(msg, msglen, "%lld tasks; this server takes at most %lld in one job (--max-tasks)",
			 (long long)r->ntasks, (long long)lim->max_tasks);
		jobreq_release(r);
		return 413;
	}

	f = cJSON_GetObjectItemCaseSensitive(r->doc, "name");
	if (f && !cJSON_IsNull(f)) {
		if (!cJSON_IsString(f) || strlen(f->valuestring) > JOBREQ_NAME_MAX) {
			snprintf(msg, msglen, "field \"name\" must be a string of at most %d bytes",
				 JOBREQ_NAME_MAX);
			goto fail400;
		}
		r->name = f->valuestring;
	}

	r->timeout_ms = h->timeout_ms ? h->timeout_ms
				      : (int64_t)(lim->default_timeout_s * 1000);
	f = cJSON_GetObjectItemCaseSensitive(r->doc, "timeout_s");
	if (f && !cJSON_IsNull(f)) {
		if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble) ||
		    f->valuedouble < 0.001 || f->valuedouble > JOBREQ_TIMEOUT_MAX) {
			snprintf(msg, msglen,
				 "field \"timeout_s\" must be a number of seconds from 0.001 to %.0f",
				 JOBREQ_TIMEOUT_MAX);
			goto fail400;
		}
		r->timeout_ms = (int64_t)llround(f->valuedouble * 1000);
	}

	r->max_attempts = 1;
	f = cJSON_GetObjectItemCaseSensitive(r->doc, "max_attempts");
	if (f && !cJSON_IsNull(f)) {
		if (!cJSON_IsNumber(f) || !whole(f->valuedouble, 1, JOBREQ_ATTEMPTS_MAX)) {
			snprintf(msg, msglen, "field \"max_attempts\" must be a whole number from 1 to %d",
				 JOBREQ_ATTEMPTS_MAX);
			goto fail400;
		}
		r->max_attempts = (int)f->valuedouble;
	}

	f = cJSON_GetObjectItemCaseSensitive(r->doc, "priority");
	if (f && !cJSON_IsNull(f)) {
		if (!cJSON_IsNumber(f) ||
		    !whole(f->valuedouble, -JOBREQ_PRIORITY_MAX, JOBREQ_PRIORITY_MAX)) {
			snprintf(msg, msglen, "field \"priority\" must be a whole number from %d to %d",
				 -JOBREQ_PRIORITY_MAX, JOBREQ_PRIORITY_MAX);
			goto fail400;
		}
		r->priority = (int)f->valuedouble;
	}

	f = cJSON_GetObjectItemCaseSensitive(r->doc, "paused");
	if (f && !cJSON_IsNull(f)) {
		if (!cJSON_IsBool(f)) {
			snprintf(msg, msglen, "field \"paused\" must be true or false");
			goto fail400;
		}
		r->paused = cJSON_IsTrue(f);
	}

	/* The tasks' text: the members of the body come in the tree's order. */
	for (f = r->doc->child; f != r->tasks; f = f->next)
		i++;
	r->at = body + bom;
	r->end = body + len;
	r->at_task = r->tasks->child;
	if (json_member(&r->at, r->end, (int)i) < 0)
		r->at = NULL;		/* never: then the tree is printed */
	i = 0;

	for (t = r->tasks->child; t; t = t->next, i++) {
		struct buf path = BUF_INIT;
		char why[256];

		if (bad_number(t, &path)) {
			snprintf(msg, msglen, "tasks[%lld]%s: number out of range",
				 (long long)i, path.data);
			buf_release(&path);
			goto fail400;
		}
		buf_release(&path);
		if (h->validate && h->validate(t, why, sizeof(why)) < 0) {
			snprintf(msg, msglen, "tasks[%lld]%s%s (handler \"%s\")", (long long)i,
				 why[0] == '.' ? "" : ": ", why, r->handler);
			goto fail400;
		}
	}
	return 0;
fail400:
	jobreq_release(r);
	return 400;
}

int jobreq_parse(struct jobreq *r, const char *body, size_t len,
		 const struct registry *reg, const struct jobreq_limits *lim,
		 const char **code, char *msg, size_t msglen)
{
	int status = parse(r, body, len, reg, lim, code, msg, msglen);
	size_t bad;

	/* A message cut short by its buffer may end inside a character. */
	if (status && !utf8_valid(msg, strlen(msg), &bad))
		msg[bad] = '\0';
	return status;
}

int jobreq_next_input(struct jobreq *r, struct buf *out)
{
	const cJSON *t = r->at_task;

	if (!t)
		return -1;
	r->at_task = t->next;
	if (r->at && json_next(&r->at, r->end) != 1)
		r->at = NULL;
	json_copy_of(out, t, &r->at, r->end);
	return 0;
}

void jobreq_release(struct jobreq *r)
{
	cJSON_Delete(r->doc);
	memset(r, 0, sizeof(*r));
}
