/*
 * main: the batchd command: `batchd serve` runs the server; submit, status,
 * cancel and retry talk to one.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include "cli.h"
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
	      "  cancel     cancel a job\n"
	      "  retry      queue a job's failed and cancelled tasks again\n"
	      "  version    print the version and the libraries' versions\n"
	      "\n"
	      "Run \"batchd COMMAND --help\" for a command's options.\n", out);
}

static void version(void)
{
	printf("batchd %s\n", BATCHD_VERSION);
	printf("libmicrohttpd %s, cJSON %s, SQLite %s, %s\n", MHD_get_version(),
	       cJSON_Version(), sqlite3_libversion(), curl_version());
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
	if (!strcmp(cmd, "submit"))
		return cli_submit(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return cli_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "cancel"))
		return cli_cancel(argc - 1, argv + 1);
	if (!strcmp(cmd, "retry"))
		return cli_retry(argc - 1, argv + 1);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		version();
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
