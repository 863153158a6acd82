/*
 * main: the batchd command: `batchd serve` runs the server; submit, status,
 * cancel, retry and results talk to one.
 */
#include <gnu/libc-version.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include "ckpt.h"
#include "cli.h"
#include "http.h"
#include "serve.h"
#include "version.h"

static void usage(FILE *out)
{
	fputs("usage: batchd COMMAND [options]\n"
	      "\n"
	      "batchd runs batches of tasks on a pool of worker processes, keeps every\n"
	      "task in SQLite, and shows the progress in a browser and here.\n"
	      "\n"
	      "commands:\n"
	      "  serve      run the server (HTTP API, dashboard, workers)\n"
	      "  submit     submit a job, optionally waiting with a progress bar\n"
	      "  status     show jobs, or one job's progress\n"
	      "  wait       draw a job's progress bar until it finishes\n"
	      "  cancel     cancel a job\n"
	      "  retry      queue a job's failed and cancelled tasks again\n"
	      "  pause      let a job's running tasks finish and start no other\n"
	      "  resume     start a paused job's tasks again\n"
	      "  results    write a job's tasks, results and errors as JSON lines\n"
	      "  delete     delete a finished job and its tasks\n"
	      "  health     check that a server is serving (exit 0), for health checks\n"
	      "  version    print the version and the libraries' versions\n"
	      "\n"
	      "Run \"batchd COMMAND --help\" for a command's options.\n", out);
}

/* The versions are those of the libraries loaded now, not of the headers
 * batchd was built with: what an operator needs to know for a bug report. */
static void version(void)
{
	printf("batchd %s\n", BATCHD_VERSION);
	printf("libmicrohttpd %s\n", MHD_get_version());
	printf("cJSON %s\n", cJSON_Version());
	printf("SQLite %s\n", sqlite3_libversion());
	const curl_version_info_data *c = curl_version_info(CURLVERSION_NOW);

	printf("libcurl %s%s%s%s\n", c->version, c->ssl_version ? " (" : "",
	       c->ssl_version ? c->ssl_version : "", c->ssl_version ? ")" : "");
	printf("glibc %s\n", gnu_get_libc_version());
}

/* `batchd routes`, not in the usage: the compiled route table, one
 * "METHOD PATTERN" a line, for the test that holds the OpenAPI document to
 * it. A trailing * (the rest of the path) is written as OpenAPI writes it,
 * a {path} parameter. */
static void print_routes(void)
{
	for (size_t i = 0; i < route_count; i++) {
		const char *p = routes[i].pattern;
		size_t n = strlen(p);

		if (n && p[n - 1] == '*')
			printf("%s %.*s{path}\n", routes[i].method, (int)(n - 1), p);
		else
			printf("%s %s\n", routes[i].method, p);
	}
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "serve"))
		return serve_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "__checkpointer"))
		return ckpt_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "submit"))
		return cli_submit(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return cli_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "wait"))
		return cli_wait(argc - 1, argv + 1);
	if (!strcmp(cmd, "cancel"))
		return cli_cancel(argc - 1, argv + 1);
	if (!strcmp(cmd, "retry"))
		return cli_retry(argc - 1, argv + 1);
	if (!strcmp(cmd, "pause"))
		return cli_pause(argc - 1, argv + 1);
	if (!strcmp(cmd, "resume"))
		return cli_resume(argc - 1, argv + 1);
	if (!strcmp(cmd, "delete"))
		return cli_delete(argc - 1, argv + 1);
	if (!strcmp(cmd, "results"))
		return cli_results(argc - 1, argv + 1);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		version();
		return 0;
	}
	if (!strcmp(cmd, "health"))
		return cli_health(argc - 1, argv + 1);
	if (!strcmp(cmd, "routes")) {
		print_routes();
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "batchd: unknown command \"%s\"\n\n", cmd);
	usage(stderr);
	return 2;
}
