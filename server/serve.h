/*
 * serve: `batchd serve`, the server process: it sets everything up, runs
 * the event loop until SIGINT or SIGTERM, and shuts down gracefully.
 */
#ifndef BATCHD_SERVE_H
#define BATCHD_SERVE_H

/* Runs the server; returns the process exit status. */
int serve_main(int argc, char **argv);

#endif
