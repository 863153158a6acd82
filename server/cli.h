/*
 * cli: the client commands of the batchd binary: submit, status, cancel,
 * retry and results. They talk to a running server over its REST API
 * (--url, default $BATCHD_URL or http://127.0.0.1:8080; --token, default
 * $BATCHD_TOKEN).
 *
 * Exit status: 0 success; 1 the job (or the request) failed, or the
 * server's answer was not batchd's; 2 bad usage; 3 the server could not be
 * reached; 130 interrupted while waiting.
 */
#ifndef BATCHD_CLI_H
#define BATCHD_CLI_H

#include <stddef.h>

int cli_submit(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_wait(int argc, char **argv);
int cli_cancel(int argc, char **argv);
int cli_retry(int argc, char **argv);
int cli_delete(int argc, char **argv);
int cli_pause(int argc, char **argv);
int cli_resume(int argc, char **argv);
/* batchd results: a job's tasks as JSON lines, to stdout or a file. */
int cli_results(int argc, char **argv);
/* GET /healthz: 0 when the server is serving. */
int cli_health(int argc, char **argv);

/* Formats the progress line of a job object (a tqdm-like bar of width
 * bar_width) into out; exposed for tests. */
void cli_format_bar(const char *job_json, int bar_width, char *out, size_t len);

#endif
