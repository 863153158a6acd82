/*
 * config: the settings of `batchd serve`, from the environment (BATCHD_*)
 * and then the command line, which wins.
 */
#ifndef BATCHD_CONFIG_H
#define BATCHD_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

struct config {
	char *listen;		/* host:port */
	char *db;
	int workers;
	char *handlers;		/* handlers file, or NULL */
	char *token;		/* API token, or NULL */
	int metrics_public;	/* /metrics open even with a token */
	double grace_s;
	int64_t max_body;
	int64_t max_tasks;
	double default_timeout_s;
	int log_level;
	int log_format;
	int max_connections;
	double conn_timeout_s;
	char *cors_origin;	/* the one origin allowed by CORS, or NULL */
	int max_tasks_per_worker;	/* 0: never replace */
	int64_t worker_memory_limit;	/* resident bytes, 0: none */
	char *user;		/* run as this user after binding, or NULL */
	int64_t keep_finished_ms;	/* delete finished jobs this old; 0: never */
	int sync_commit;	/* --sync commit: every commit waits for the disk */
};

/* Fills c with defaults, then the environment, then argv (argv[0] is the
 * subcommand). Returns 0; 1 when --help was printed; -1 with a one-line
 * message in err. */
int config_parse(struct config *c, int argc, char **argv, char *err,
		 size_t errlen);
void config_release(struct config *c);
/* Prints `batchd serve --help`. */
void config_usage(FILE *out);

/* Parses "90", "90s", "15m", "12h", "30d", "2w" (a plain number counts
 * seconds; fractions allowed) into milliseconds; -1 if malformed. */
int64_t config_parse_duration(const char *s);
/* Parses "64M", "1G", "512k", "100" (bytes); -1 if malformed. */
int64_t config_parse_size(const char *s);

#endif
