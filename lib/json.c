/*
 * json: copying JSON values as written. See json.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

/* Deeper than cJSON nests (1000), so that all it parsed is walked, and
 * shallow enough for the stack whatever the text. */
#define DEPTH_MAX 1024

/* cJSON takes every byte up to the space as white space. */
static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= ' ')
		p++;
	return p;
}

static void put(struct buf *out, const char *s, size_t n)
{
	if (out)
		buf_add(out, s, n);
}

static int hex4(const char *s, const char *end)
{
	if (end - s < 4)
		return 0;
	for (int i = 0; i < 4; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
			return 0;
	return 1;
}

static int copy_string(struct buf *out, const char **p, const char *end)
{
	const char *s = *p + 1, *run = *p;

	for (;;) {
		unsigned char c;

		if (s >= end)
			return -1;
		c = (unsigned char)*s;
		if (c == '"') {
			put(out, run, (size_t)(s + 1 - run));
			*p = s + 1;
			return 0;
		}
		if (c == '\\') {
			/* Copied as it stands: \u00e9 stays \u00e9. */
			if (end - s < 2 || !s[1] || !strchr("\"\\/bfnrtu", s[1]))
				return -1;
			if (s[1] == 'u' && !hex4(s + 2, end))
				return -1;
			s += s[1] == 'u' ? 6 : 2;
		} else if (c < 0x20) {
			/* JSON wants these escaped; cJSON does not. */
			static const char shortcut[] = "btnvfr";
			char esc[8];

			put(out, run, (size_t)(s - run));
			if (c >= '\b' && c <= '\r' && c != '\v')
				snprintf(esc, sizeof(esc), "\\%c", shortcut[c - '\b']);
			else
				snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(out, esc, strlen(esc));
			run = ++s;
		} else {
			s++;
		}
	}
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, the whole of s[0..n). */
static int strict_number(const char *s, size_t n)
{
	size_t i = 0, d;

	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0') {
		i++;
	} else {
		for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	if (i < n && s[i] == '.') {
		for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	return i == n;
}

static int copy_number(struct buf *out, const char **p, const char *end)
{
	const char *s = *p;
	size_t n = 0;
	char *text, *stop, num[40];
	double v;

	/* The characters cJSON reads a number from. */
	while (s + n < end && strchr("0123456789+-.eE", s[n]) && s[n])
		n++;
	*p = s + n;
	if (strict_number(s, n)) {
		put(out, s, n);
		return 0;
	}
	text = malloc(n + 1);
	if (!text)
		abort();
	memcpy(text, s, n);
	text[n] = '\0';
	v = strtod(text, &stop);
	n = (size_t)(stop - text);
	free(text);
	if (!n)
		return -1;
	/* As few digits as read back the same double, as cJSON prints. */
	if (!isfinite(v))
		snprintf(num, sizeof(num), "null");
	else if (snprintf(num, sizeof(num), "%.15g", v), strtod(num, NULL) != v)
		snprintf(num, sizeof(num), "%.17g", v);
	put(out, num, strlen(num));
	return 0;
}

static int copy_value(struct buf *out, const char **p, const char *end, int depth);

/* An array or an object at *p: its elements, or its "key":value members. */
static int copy_container(struct buf *out, const char **p, const char *end, int depth)
{
	char close = **p == '[' ? ']' : '}';
	const char *s = skip_ws(*p + 1, end);

	if (depth >= DEPTH_MAX)
		return -1;
	put(out, *p, 1);
	if (s < end && *s == close)
		goto done;
	for (;;) {
		if (close == '}') {
			if (s >= end || *s != '"' || copy_string(out, &s, end) < 0)
				return -1;
			s = skip_ws(s, end);
			if (s >= end || *s != ':')
				return -1;
			put(out, ":", 1);
			s++;
		}
		if (copy_value(out, &s, end, depth + 1) < 0)
			return -1;
		s = skip_ws(s, end);
		if (s < end && *s == close)
			break;
		if (s >= end || *s != ',')
			return -1;
		put(out, ",", 1);
		s = skip_ws(s + 1, end);
	}
done:
	put(out, &close, 1);
	*p = s + 1;
	return 0;
}

static int copy_value(struct buf *out, const char **p, const char *end, int depth)
{
	const char *s = skip_ws(*p, end);
	static const char *const words[] = { "true", "false", "null" };

	*p = s;
	if (s >= end)
		return -1;
	if (*s == '"')
		return copy_string(out, p, end);
	if (*s == '[' || *s == '{')
		return copy_container(out, p, end, depth);
	if (*s == '-' || (*s >= '0' && *s <= '9'))
		return copy_number(out, p, end);
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);

		if ((size_t)(end - s) >= n && !memcmp(s, words[i], n)) {
			put(out, s, n);
			*p = s + n;
			return 0;
		}
	}
	return -1;
}

int json_copy(struct buf *out, const char **p, const char *end)
{
	return copy_value(out, p, end, 0);
}

size_t json_bom(const char *s, size_t len)
{
	return len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0;
}

long json_nul_escape(const char *s, size_t len, int *zero)
{
	/* In JSON text every backslash is in a string and starts an escape,
	 * so a scan two bytes at a time is enough. */
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u') {
			*zero = hex4(s + i + 2, s + len);
			if (!*zero || !memcmp(s + i + 2, "0000", 4))
				return (long)i;
		}
		i++;
	}
	return -1;
}

/* Moves past the value at s (white space before it skipped), counting the
 * elements of an array into *n when n is not NULL. Checks only what it
 * needs to find the value's end: NULL when it cannot. */
static const char *scan_value(const char *s, const char *end, long long *n)
{
	int depth = 0, any = 0;

	s = skip_ws(s, end);
	if (s < end && *s != '[' && *s != '{' && *s != '"') {
		while (s < end && *s != ',' && *s != '}' && *s != ']' && (unsigned char)*s > ' ')
			s++;
		return n ? NULL : s;
	}
	if (n && (s >= end || *s != '['))
		return NULL;
	for (; s < end; s++) {
		char c = *s;

		if (c == '"') {
			for (s++; s < end && *s != '"'; s++)
				if (*s == '\\')
					s++;
			if (s >= end)
				return NULL;
			any |= depth == 1;
			if (!depth)
				return s + 1;
		} else if (c == '[' || c == '{') {
			any |= depth == 1;
			if (++depth > DEPTH_MAX)
				return NULL;
		} else if (c == ']' || c == '}') {
			if (--depth <= 0) {
				if (n)
					*n = any ? *n + 1 : 0;
				return s + 1;
			}
		} else if (depth == 1) {
			if (c == ',' && n)
				++*n;
			else if ((unsigned char)c > ' ')
				any = 1;
		}
	}
	return NULL;
}

long long json_array_member_len(const char *s, size_t len, const char *key)
{
	const char *end = s + len;
	size_t klen = strlen(key);

	s = skip_ws(s, end);
	if (s >= end || *s != '{')
		return -1;
	s = skip_ws(s + 1, end);
	while (s < end && *s == '"') {
		const char *k = s + 1;
		long long n = 0;
		int same;

		if (!(s = scan_value(s, end, NULL)))
			return -1;
		same = (size_t)(s - 1 - k) == klen && !memcmp(k, key, klen);
		s = skip_ws(s, end);
		if (s >= end || *s != ':')
			return -1;
		if (same)
			return scan_value(s + 1, end, &n) ? n : -1;
		if (!(s = scan_value(s + 1, end, NULL)))
			return -1;
		s = skip_ws(s, end);
		if (s >= end || *s != ',')
			return -1;
		s = skip_ws(s + 1, end);
	}
	return -1;
}

int json_parse_kept(const char *s, size_t len, cJSON **doc)
{
	const char *end = NULL;
	int zero = 0, why = JSON_KEPT;
	long esc;

	*doc = memchr(s, '\0', len) ? NULL : cJSON_ParseWithLengthOpts(s, len + 1, &end, 1);
	esc = *doc ? json_nul_escape(s, len, &zero) : -1;
	if (!*doc || (esc >= 0 && !zero))
		why = JSON_NOT_JSON;
	else if (esc >= 0)
		why = JSON_HOLDS_NUL;
	else if (!utf8_valid(s, len, NULL))
		why = JSON_NOT_JSON;
	else if (!json_all_finite(*doc))
		why = JSON_OUT_OF_RANGE;
	if (why != JSON_KEPT) {
		cJSON_Delete(*doc);
		*doc = NULL;
	}
	return why;
}

int json_all_finite(const cJSON *v)
{
	const cJSON *c;

	if (cJSON_IsNumber(v))
		return isfinite(v->valuedouble);
	cJSON_ArrayForEach(c, v)
		if (!json_all_finite(c))
			return 0;
	return 1;
}

void json_copy_of(struct buf *out, const cJSON *v, const char **p, const char *end)
{
	size_t mark = out->len;
	char *text;

	if (*p && json_copy(out, p, end) == 0)
		return;
	*p = NULL;
	out->len = mark;
	out->data[mark] = '\0';
	text = cJSON_PrintUnformatted(v);
	if (!text)
		abort();
	buf_adds(out, text);
	free(text);
}

static int holds(const cJSON *tree, const cJSON *v)
{
	if (tree == v)
		return 1;
	for (const cJSON *c = tree->child; c; c = c->next)
		if (holds(c, v))
			return 1;
	return 0;
}

/* Moves *p from the text of tree to that of v, inside it. */
static int walk_to(const cJSON *tree, const cJSON *v, const char **p, const char *end)
{
	int n = 0;

	while (tree != v) {
		const cJSON *c = tree->child;

		for (n = 0; c && !holds(c, v); c = c->next)
			n++;
		if (!c)
			return -1;
		if (cJSON_IsObject(tree)) {
			if (json_member(p, end, n) < 0)
				return -1;
		} else {
			for (int i = 0; i <= n; i++)
				if (json_next(p, end) != 1 || (i < n && json_copy(NULL, p, end) < 0))
					return -1;
		}
		tree = c;
	}
	return 0;
}

void json_text_of(struct buf *out, const cJSON *root, const cJSON *v, const char *text,
		  size_t len)
{
	const char *p = text + json_bom(text, len);

	if (walk_to(root, v, &p, text + len) < 0)
		p = NULL;
	json_copy_of(out, v, &p, text + len);
}

int json_next(const char **p, const char *end)
{
	const char *s = skip_ws(*p, end);

	if (s < end && (*s == '[' || *s == ','))
		s = skip_ws(s + 1, end);
	else if (s >= end || *s != ']')
		return -1;
	if (s >= end)
		return -1;
	if (*s == ']') {
		*p = s + 1;
		return 0;
	}
	*p = s;
	return 1;
}

int json_member(const char **p, const char *end, int n)
{
	const char *s = skip_ws(*p, end);

	if (s >= end || *s != '{' || n < 0)
		return -1;
	s++;
	for (int i = 0;; i++) {
		s = skip_ws(s, end);
		if (i && (s >= end || *s++ != ','))
			return -1;
		s = skip_ws(s, end);
		if (s >= end || *s != '"' || copy_string(NULL, &s, end) < 0)
			return -1;
		s = skip_ws(s, end);
		if (s >= end || *s++ != ':')
			return -1;
		if (i == n) {
			*p = skip_ws(s, end);
			return 0;
		}
		if (json_copy(NULL, &s, end) < 0)
			return -1;
	}
}
