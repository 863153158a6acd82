/*
 * log: logfmt / JSON event lines on stderr. See log.h.
 */
#include "log.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "utf8.h"

static enum log_level threshold = LOG_INFO;
static enum log_format format = LOG_LOGFMT;
static const char *ctx_key;
static long long ctx_value;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level level, enum log_format fmt)
{
	threshold = level;
	format = fmt;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, level_names[i]))
			return i;
	if (!strcmp(s, "warning"))
		return LOG_WARN;
	return -1;
}

int log_format_parse(const char *s)
{
	if (!strcmp(s, "logfmt") || !strcmp(s, "text"))
		return LOG_LOGFMT;
	if (!strcmp(s, "json"))
		return LOG_JSON;
	return -1;
}

void log_set_context(const char *key, long long value)
{
	ctx_key = key;
	ctx_value = value;
}

int log_enabled(enum log_level level)
{
	return level >= threshold;
}

/* Appends s as a JSON string body (without quotes), escaping controls. */
static void add_escaped(struct buf *b, const char *s)
{
	struct buf clean = BUF_INIT;
	size_t n = strlen(s);

	/* A request's path, a program's words: any bytes. A line of JSON
	 * (or of logfmt, for the tools that read it) is UTF-8. */
	if (!utf8_valid(s, n, NULL)) {
		utf8_sanitize(&clean, s, n);
		s = clean.data;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf_addc(b, '\\');
			buf_addc(b, (char)c);
		} else if (c == '\n') {
			buf_adds(b, "\\n");
		} else if (c == '\t') {
			buf_adds(b, "\\t");
		} else if (c < 0x20) {
			buf_addf(b, "\\u%04x", c);
		} else {
			buf_addc(b, (char)c);
		}
	}
	buf_release(&clean);
}

static int needs_quotes(const char *s)
{
	if (!*s)
		return 1;
	for (; *s; s++)
		if (*s == ' ' || *s == '=' || *s == '"' || (unsigned char)*s < 0x20)
			return 1;
	return 0;
}

static void add_value(struct buf *b, const struct log_field *f)
{
	switch (f->type) {
	case 'i':
		buf_addf(b, "%lld", f->i);
		break;
	case 'f':
		if (isfinite(f->f))
			buf_addf(b, "%.6g", f->f);
		else
			buf_adds(b, format == LOG_JSON ? "null" : "NaN");
		break;
	default: {
		const char *s = f->s ? f->s : "";

		if (format == LOG_JSON || needs_quotes(s) || !utf8_valid(s, strlen(s), NULL)) {
			buf_addc(b, '"');
			add_escaped(b, s);
			buf_addc(b, '"');
		} else {
			buf_adds(b, s);
		}
	}
	}
}

static void add_pair(struct buf *b, const struct log_field *f)
{
	if (format == LOG_JSON) {
		buf_adds(b, ",\"");
		add_escaped(b, f->key);
		buf_adds(b, "\":");
	} else {
		buf_addc(b, ' ');
		buf_adds(b, f->key);
		buf_addc(b, '=');
	}
	add_value(b, f);
}

void log_emit(enum log_level level, const char *msg,
	      const struct log_field *fields)
{
	struct buf b = BUF_INIT;
	char ts[25];
	int saved = errno;

	if (level < threshold)
		return;
	clock_rfc3339(clock_wall_ms(), ts);
	if (format == LOG_JSON)
		buf_addf(&b, "{\"ts\":\"%s\",\"level\":\"%s\"", ts,
			 level_names[level]);
	else
		buf_addf(&b, "ts=%s level=%s", ts, level_names[level]);
	add_pair(&b, &LF_S("msg", msg));
	if (ctx_key)
		add_pair(&b, &LF_I(ctx_key, ctx_value));
	for (; fields && fields->key; fields++)
		add_pair(&b, fields);
	buf_adds(&b, format == LOG_JSON ? "}\n" : "\n");
	/* One write per line; a short write to a full pipe is not retried. */
	if (write(STDERR_FILENO, b.data, b.len) < 0)
		(void)0;
	buf_release(&b);
	errno = saved;
}
