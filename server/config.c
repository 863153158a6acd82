/*
 * config: options of `batchd serve`. See config.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/log.h"

enum {
	O_LISTEN = 1000, O_DB, O_WORKERS, O_HANDLERS, O_TOKEN, O_TOKEN_FILE,
	O_GRACE, O_MAX_BODY, O_MAX_TASKS, O_TIMEOUT, O_LOG_LEVEL, O_LOG_FORMAT,
	O_MAX_CONN, O_CONN_TIMEOUT, O_METRICS_PUBLIC, O_CORS_ORIGIN,
	O_MAX_TASKS_PER_WORKER, O_WORKER_MEMORY, O_USER, O_KEEP_FINISHED, O_SYNC, O_HELP,
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "db", required_argument, NULL, O_DB },
	{ "workers", required_argument, NULL, O_WORKERS },
	{ "handlers", required_argument, NULL, O_HANDLERS },
	{ "token", required_argument, NULL, O_TOKEN },
	{ "token-file", required_argument, NULL, O_TOKEN_FILE },
	{ "grace", required_argument, NULL, O_GRACE },
	{ "max-body", required_argument, NULL, O_MAX_BODY },
	{ "max-tasks", required_argument, NULL, O_MAX_TASKS },
	{ "default-timeout", required_argument, NULL, O_TIMEOUT },
	{ "log-level", required_argument, NULL, O_LOG_LEVEL },
	{ "log-format", required_argument, NULL, O_LOG_FORMAT },
	{ "max-connections", required_argument, NULL, O_MAX_CONN },
	{ "connection-timeout", required_argument, NULL, O_CONN_TIMEOUT },
	{ "metrics-public", no_argument, NULL, O_METRICS_PUBLIC },
	{ "cors-origin", required_argument, NULL, O_CORS_ORIGIN },
	{ "max-tasks-per-worker", required_argument, NULL, O_MAX_TASKS_PER_WORKER },
	{ "worker-memory-limit", required_argument, NULL, O_WORKER_MEMORY },
	{ "user", required_argument, NULL, O_USER },
	{ "keep-finished", required_argument, NULL, O_KEEP_FINISHED },
	{ "sync", required_argument, NULL, O_SYNC },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Environment variable of each option, in long_opts order. */
static const char *const env_names[] = {
	"BATCHD_LISTEN", "BATCHD_DB", "BATCHD_WORKERS", "BATCHD_HANDLERS",
	"BATCHD_TOKEN", "BATCHD_TOKEN_FILE", "BATCHD_GRACE", "BATCHD_MAX_BODY",
	"BATCHD_MAX_TASKS", "BATCHD_DEFAULT_TIMEOUT", "BATCHD_LOG_LEVEL",
	"BATCHD_LOG_FORMAT", "BATCHD_MAX_CONNECTIONS",
	"BATCHD_CONNECTION_TIMEOUT", "BATCHD_METRICS_PUBLIC", "BATCHD_CORS_ORIGIN",
	"BATCHD_MAX_TASKS_PER_WORKER", "BATCHD_WORKER_MEMORY_LIMIT", "BATCHD_USER",
	"BATCHD_KEEP_FINISHED", "BATCHD_SYNC",
	NULL,
};

void config_usage(FILE *out)
{
	fputs("usage: batchd serve [options]\n"
	      "\n"
	      "Runs the job server: the HTTP API and dashboard, the database and the\n"
	      "worker pool. Every option can also be set through the environment\n"
	      "variable shown; the command line wins.\n"
	      "\n"
	      "  --listen HOST:PORT     address to serve on (BATCHD_LISTEN,\n"
	      "                         default 127.0.0.1:8080; port 0 picks one)\n"
	      "  --db PATH              SQLite database (BATCHD_DB, default ./batchd.db)\n"
	      "  --workers N            worker processes (BATCHD_WORKERS, default: one per CPU)\n"
	      "  --handlers FILE        handlers file adding command, persistent and plugin\n"
	      "                         handlers (BATCHD_HANDLERS; see docs/HANDLERS.md)\n"
	      "  --token TOKEN          require \"Authorization: Bearer TOKEN\" on /api\n"
	      "                         (BATCHD_TOKEN)\n"
	      "  --token-file FILE      read the token from FILE (BATCHD_TOKEN_FILE)\n"
	      "  --metrics-public       serve /metrics without the token (BATCHD_METRICS_PUBLIC=1;\n"
	      "                         by default a token, when set, guards /metrics too)\n"
	      "  --grace SECONDS        on SIGTERM/SIGINT, wait this long for running tasks\n"
	      "                         (BATCHD_GRACE, default 10)\n"
	      "  --max-body SIZE        largest request body, e.g. 64M (BATCHD_MAX_BODY,\n"
	      "                         default 64M)\n"
	      "  --max-tasks N          most tasks in one job (BATCHD_MAX_TASKS,\n"
	      "                         default 1000000)\n"
	      "  --default-timeout SECONDS\n"
	      "                         task timeout when neither job nor handler sets one\n"
	      "                         (BATCHD_DEFAULT_TIMEOUT, default 3600)\n"
	      "  --max-connections N    concurrent HTTP connections; past it a client is\n"
	      "                         answered 503 at once (BATCHD_MAX_CONNECTIONS,\n"
	      "                         default 4096, less if open files are limited)\n"
	      "  --connection-timeout SECONDS\n"
	      "                         close a connection that is idle, or whose request\n"
	      "                         has not arrived whole, after this long\n"
	      "                         (BATCHD_CONNECTION_TIMEOUT, default 30)\n"
	      "  --cors-origin ORIGIN   let pages from this one origin (like\n"
	      "                         https://ops.example.com) call the API from a\n"
	      "                         browser (BATCHD_CORS_ORIGIN; default: no CORS)\n"
	      "  --max-tasks-per-worker N\n"
	      "                         replace a worker after it has run N tasks\n"
	      "                         (BATCHD_MAX_TASKS_PER_WORKER, default 0: never)\n"
	      "  --worker-memory-limit SIZE\n"
	      "                         replace a worker holding more than SIZE resident,\n"
	      "                         e.g. 512M; the task it runs fails with an\n"
	      "                         out-of-memory error (BATCHD_WORKER_MEMORY_LIMIT,\n"
	      "                         default: no limit)\n"
	      "  --keep-finished DURATION\n"
	      "                         delete each finished job, its tasks and results,\n"
	      "                         this long after it finished, like 30d, 12h or 90m\n"
	      "                         (BATCHD_KEEP_FINISHED, default 0: keep them all)\n"
	      "  --sync WHEN            when commits reach the disk: \"second\", within a\n"
	      "                         second (a power loss may undo that second), or\n"
	      "                         \"commit\", each one before it is answered or goes\n"
	      "                         on (slower) (BATCHD_SYNC, default second)\n"
	      "  --user NAME            started as root: after binding, run as this user\n"
	      "                         (server, workers and handlers); the database and\n"
	      "                         its directory must be writable by it (BATCHD_USER)\n"
	      "  --log-level LEVEL      debug, info, warn or error (BATCHD_LOG_LEVEL,\n"
	      "                         default info)\n"
	      "  --log-format FORMAT    logfmt or json (BATCHD_LOG_FORMAT, default logfmt)\n"
	      "  --help                 show this help\n", out);
}

int64_t config_parse_size(const char *s)
{
	char *end;
	double v;
	int64_t mult = 1;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v < 0)
		return -1;
	switch (*end) {
	case 'k': case 'K':
		mult = 1024;
		end++;
		break;
	case 'm': case 'M':
		mult = 1024 * 1024;
		end++;
		break;
	case 'g': case 'G':
		mult = 1024LL * 1024 * 1024;
		end++;
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || v * (double)mult > 9e15)
		return -1;
	return (int64_t)(v * (double)mult);
}

static int parse_number(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int64_t config_parse_duration(const char *s)
{
	char *end;
	double v, mult = 1;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v < 0 || *s == '-' || *s == '+' ||
	    isspace((unsigned char)*s))
		return -1;
	switch (*end) {
	case '\0': break;
	case 's': mult = 1; end++; break;
	case 'm': mult = 60; end++; break;
	case 'h': mult = 3600; end++; break;
	case 'd': mult = 86400; end++; break;
	case 'w': mult = 7 * 86400; end++; break;
	default: return -1;
	}
	if (*end || v * mult * 1000 > 9e15)
		return -1;
	return (int64_t)(v * mult * 1000 + 0.5);
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	if (!*dst)
		abort();
}

/* A token is what a client can send after "Bearer ": no control
 * character, which no header carries as it is. */
static int set_token(struct config *c, const char *name, const char *v, char *err,
		     size_t errlen)
{
	if (!*v) {
		snprintf(err, errlen, "%s: empty token", name);
		return -1;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < ' ' || *p == 0x7f) {
			snprintf(err, errlen, "%s: the token holds a control character (at byte"
				 " %zu), which a client cannot send", name, (size_t)(p - v));
			return -1;
		}
	}
	set_str(&c->token, v);
	return 0;
}

static int read_token_file(struct config *c, const char *path, char *err,
			   size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	size_t n;

	if (!f) {
		snprintf(err, errlen, "--token-file %s: %s", path, strerror(errno));
		return -1;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	n = strlen(line);
	/* A line that did not fit would be cut: the token the clients send
	 * would never match. */
	if (n == sizeof(line) - 1 && line[n - 1] != '\n' && fgetc(f) != EOF) {
		fclose(f);
		snprintf(err, errlen, "--token-file %s: the token is longer than %zu bytes",
			 path, sizeof(line) - 2);
		return -1;
	}
	fclose(f);
	while (n && isspace((unsigned char)line[n - 1]))
		line[--n] = '\0';
	if (!n) {
		snprintf(err, errlen, "--token-file %s: the file is empty", path);
		return -1;
	}
	return set_token(c, "--token-file", line, err, errlen);
}

/* An origin as browsers send it: scheme://host[:port], nothing after. */
static int valid_origin(const char *v)
{
	const char *host;

	if (!strncmp(v, "http://", 7))
		host = v + 7;
	else if (!strncmp(v, "https://", 8))
		host = v + 8;
	else
		return 0;
	if (!*host || strlen(v) > 255)
		return 0;
	for (const char *p = host; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-:[]", *p))
			return 0;
	return 1;
}

/* Applies one option; name is how the user spelt it, for errors. */
static int apply(struct config *c, int opt, const char *v, const char *name,
		 char *err, size_t errlen)
{
	double d;
	int64_t n;

	switch (opt) {
	case O_LISTEN: {
		const char *port = strrchr(v, ':');
		size_t digits = port ? strspn(port + 1, "0123456789") : 0;

		if (!port) {
			snprintf(err, errlen, "%s: expected HOST:PORT, got \"%s\"", name, v);
			return -1;
		}
		/* getaddrinfo would take 99999 as 34463: a typo, served elsewhere. */
		if (!digits || port[1 + digits] || digits > 5 || atoi(port + 1) > 65535) {
			snprintf(err, errlen, "%s: expected HOST:PORT with a PORT from 0 to 65535,"
				 " got \"%s\"", name, v);
			return -1;
		}
		set_str(&c->listen, v);
		return 0;
	}
	case O_DB:
		if (!*v) {
			snprintf(err, errlen, "%s: empty path", name);
			return -1;
		}
		set_str(&c->db, v);
		return 0;
	case O_WORKERS:
		if (parse_number(v, 1, 1024, &d) < 0 || d != (int)d) {
			snprintf(err, errlen, "%s: expected a whole number from 1 to 1024, got \"%s\"",
				 name, v);
			return -1;
		}
		c->workers = (int)d;
		return 0;
	case O_HANDLERS:
		set_str(&c->handlers, v);
		return 0;
	case O_TOKEN:
		return set_token(c, name, v, err, errlen);
	case O_TOKEN_FILE:
		return read_token_file(c, v, err, errlen);
	case O_GRACE:
		if (parse_number(v, 0, 86400, &d) < 0) {
			snprintf(err, errlen, "%s: expected seconds from 0 to 86400, got \"%s\"",
				 name, v);
			return -1;
		}
		c->grace_s = d;
		return 0;
	case O_MAX_BODY:
		n = config_parse_size(v);
		if (n < 1024 || n > (1LL << 32)) {
			snprintf(err, errlen, "%s: expected a size from 1K to 4G (like 64M), got \"%s\"",
				 name, v);
			return -1;
		}
		c->max_body = n;
		return 0;
	case O_MAX_TASKS:
		if (parse_number(v, 1, 100000000, &d) < 0 || d != (int64_t)d) {
			snprintf(err, errlen, "%s: expected a whole number from 1 to 100000000, got \"%s\"",
				 name, v);
			return -1;
		}
		c->max_tasks = (int64_t)d;
		return 0;
	case O_TIMEOUT:
		if (parse_number(v, 0.001, 604800, &d) < 0) {
			snprintf(err, errlen, "%s: expected seconds from 0.001 to 604800, got \"%s\"",
				 name, v);
			return -1;
		}
		c->default_timeout_s = d;
		return 0;
	case O_LOG_LEVEL:
		if ((c->log_level = log_level_parse(v)) < 0) {
			snprintf(err, errlen, "%s: expected debug, info, warn or error, got \"%s\"",
				 name, v);
			return -1;
		}
		return 0;
	case O_LOG_FORMAT:
		if ((c->log_format = log_format_parse(v)) < 0) {
			snprintf(err, errlen, "%s: expected logfmt or json, got \"%s\"", name, v);
			return -1;
		}
		return 0;
	case O_MAX_CONN:
		if (parse_number(v, 1, 1000000, &d) < 0 || d != (int)d) {
			snprintf(err, errlen, "%s: expected a whole number from 1 to 1000000, got \"%s\"",
				 name, v);
			return -1;
		}
		c->max_connections = (int)d;
		return 0;
	case O_METRICS_PUBLIC:
		/* A flag on the command line (v NULL); a boolean in the
		 * environment. */
		if (!v || !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes")) {
			c->metrics_public = 1;
			return 0;
		}
		if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no")) {
			c->metrics_public = 0;
			return 0;
		}
		snprintf(err, errlen, "%s: expected 1, true, yes, 0, false or no, got \"%s\"",
			 name, v);
		return -1;
	case O_CORS_ORIGIN:
		if (!valid_origin(v)) {
			snprintf(err, errlen,
				 "%s: expected one origin like https://example.com:8443, got \"%s\"",
				 name, v);
			return -1;
		}
		set_str(&c->cors_origin, v);
		return 0;
	case O_MAX_TASKS_PER_WORKER:
		if (parse_number(v, 0, 1000000000, &d) < 0 || d != (int)d) {
			snprintf(err, errlen,
				 "%s: expected a whole number from 0 (never) to 1000000000, got \"%s\"",
				 name, v);
			return -1;
		}
		c->max_tasks_per_worker = (int)d;
		return 0;
	case O_WORKER_MEMORY:
		n = config_parse_size(v);
		if (n != 0 && (n < (16 << 20) || n > (1LL << 50))) {
			snprintf(err, errlen,
				 "%s: expected a size of at least 16M (like 512M or 2G), or 0, got \"%s\"",
				 name, v);
			return -1;
		}
		c->worker_memory_limit = n;
		return 0;
	case O_USER:
		if (!*v) {
			snprintf(err, errlen, "%s: empty user name", name);
			return -1;
		}
		set_str(&c->user, v);
		return 0;
	case O_SYNC:
		if (strcmp(v, "second") && strcmp(v, "commit")) {
			snprintf(err, errlen, "%s: expected second or commit, got \"%s\"", name, v);
			return -1;
		}
		c->sync_commit = !strcmp(v, "commit");
		return 0;
	case O_KEEP_FINISHED:
		n = config_parse_duration(v);
		if (n < 0 || (n > 0 && n < 1000)) {
			snprintf(err, errlen,
				 "%s: expected a duration of at least 1s (like 30d, 12h, 90m or 3600),"
				 " or 0, got \"%s\"", name, v);
			return -1;
		}
		c->keep_finished_ms = n;
		return 0;
	case O_CONN_TIMEOUT:
		if (parse_number(v, 1, 86400, &d) < 0) {
			snprintf(err, errlen, "%s: expected seconds from 1 to 86400, got \"%s\"",
				 name, v);
			return -1;
		}
		c->conn_timeout_s = d;
		return 0;
	}
	snprintf(err, errlen, "unknown option");
	return -1;
}

int config_parse(struct config *c, int argc, char **argv, char *err,
		 size_t errlen)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	char given[O_HELP - O_LISTEN] = { 0 };
	int opt;

	memset(c, 0, sizeof(*c));
	set_str(&c->listen, "127.0.0.1:8080");
	set_str(&c->db, "./batchd.db");
	c->workers = cpus > 0 ? (int)(cpus > 1024 ? 1024 : cpus) : 1;
	c->grace_s = 10;
	c->max_body = 64LL << 20;
	c->max_tasks = 1000000;
	c->default_timeout_s = 3600;
	c->log_level = LOG_INFO;
	c->log_format = LOG_LOGFMT;
	c->max_connections = 4096;
	c->conn_timeout_s = 30;

	/* The command line wins: a variable of an option given there is not
	 * read at all, so that a bad one it overrides does not stop the
	 * start. --token and --token-file stand for each other. */
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", long_opts, NULL)) != -1)
		if (opt >= O_LISTEN && opt < O_HELP)
			given[(opt == O_TOKEN_FILE ? O_TOKEN : opt) - O_LISTEN] = 1;
	for (int i = 0; env_names[i]; i++) {
		const char *v = getenv(env_names[i]);
		int o = long_opts[i].val;

		if (given[(o == O_TOKEN_FILE ? O_TOKEN : o) - O_LISTEN])
			continue;
		if (v && *v && apply(c, o, v, env_names[i], err, errlen) < 0)
			return -1;
	}
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", long_opts, NULL)) != -1) {
		char name[64];

		if (opt == O_HELP) {
			config_usage(stdout);
			return 1;
		}
		if (opt == '?' || opt == ':') {
			const char *bad = argv[optind - 1];

			if (optopt && optopt >= O_LISTEN)
				snprintf(err, errlen, "option %s needs a value (see batchd serve --help)", bad);
			else
				snprintf(err, errlen, "unknown option %s (see batchd serve --help)", bad);
			return -1;
		}
		for (int i = 0; long_opts[i].name; i++)
			if (long_opts[i].val == opt)
				snprintf(name, sizeof(name), "--%s", long_opts[i].name);
		if (apply(c, opt, optarg, name, err, errlen) < 0)
			return -1;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument \"%s\" (see batchd serve --help)",
			 argv[optind]);
		return -1;
	}
	return 0;
}

void config_release(struct config *c)
{
	free(c->listen);
	free(c->db);
	free(c->handlers);
	free(c->token);
	free(c->cors_origin);
	free(c->user);
	memset(c, 0, sizeof(*c));
}
