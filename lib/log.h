/*
 * log: one line per event on stderr, in logfmt (the default) or JSON.
 *
 *   LOG_INFO("job submitted", LF_I("job", id), LF_I("tasks", n));
 *   ts=2026-11-27T21:37:26.123Z level=info msg="job submitted" job=17 tasks=1000
 *
 * Each line is written with a single write(2), so lines from the server and
 * its workers (which share stderr) never interleave.
 */
#ifndef BATCHD_LOG_H
#define BATCHD_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_LOGFMT, LOG_JSON };

struct log_field {
	const char *key;	/* NULL ends a list */
	char type;		/* 'i' integer, 'f' double, 's' string */
	long long i;
	double f;
	const char *s;
};

#define LF_I(k, v) ((struct log_field){ .key = (k), .type = 'i', .i = (long long)(v) })
#define LF_F(k, v) ((struct log_field){ .key = (k), .type = 'f', .f = (double)(v) })
#define LF_S(k, v) ((struct log_field){ .key = (k), .type = 's', .s = (v) })

#define LOG_AT(level, msg, ...)                                               \
	log_emit((level), (msg),                                              \
		 (const struct log_field[]){ __VA_ARGS__ __VA_OPT__(,) { 0 } })
#define LOG_DEBUG(msg, ...) LOG_AT(LOG_DEBUG, msg __VA_OPT__(,) __VA_ARGS__)
#define LOG_INFO(msg, ...) LOG_AT(LOG_INFO, msg __VA_OPT__(,) __VA_ARGS__)
#define LOG_WARN(msg, ...) LOG_AT(LOG_WARN, msg __VA_OPT__(,) __VA_ARGS__)
#define LOG_ERROR(msg, ...) LOG_AT(LOG_ERROR, msg __VA_OPT__(,) __VA_ARGS__)

/* Sets the threshold and the format; the defaults are info and logfmt. */
void log_setup(enum log_level level, enum log_format format);
/* Parses "debug", "info", "warn", "error" / "logfmt", "json"; -1 if unknown. */
int log_level_parse(const char *s);
int log_format_parse(const char *s);
/* Fields added to every line from now on (a worker adds worker=N). */
void log_set_context(const char *key, long long value);
/* Writes one event if level passes the threshold. fields ends with {0}. */
void log_emit(enum log_level level, const char *msg,
	      const struct log_field *fields);
int log_enabled(enum log_level level);

#endif
