/*
 * client: the HTTP client of batchd's own CLI (submit, status, cancel), on
 * libcurl. One connection is kept alive across the requests of a command.
 */
#ifndef BATCHD_CLIENT_H
#define BATCHD_CLIENT_H

#include <stddef.h>
#include <stdio.h>

#include "../lib/buf.h"

struct client;

/* A client for the server at url ("http://127.0.0.1:8080"), sending
 * token (may be NULL) as a bearer token. NULL if libcurl fails to start. */
struct client *client_new(const char *url, const char *token);
void client_free(struct client *c);
/*
 * Sends method path with body (NULL for none) and extra header (NULL for
 * none). Returns the HTTP status with the response body in out (reset
 * first), or -1 when the server could not be reached, with the reason in
 * client_error().
 */
long client_request(struct client *c, const char *method, const char *path,
		    const char *body, size_t len, const char *header,
		    struct buf *out);
/*
 * GETs path, writing the body of a 200 answer of Content-Type type to out
 * as it arrives (the body of any other answer goes to other). Returns the
 * HTTP status, or -1 when the server could not be reached, or
 * CLIENT_NOT_TYPE for a 200 of another type (its body in other, nothing
 * written to out: not the server's answer, as when the URL names another
 * server); *complete says whether the whole answer came: a transfer cut
 * short, or a write to out that failed, leaves it 0, with the reason in
 * client_error().
 */
#define CLIENT_NOT_TYPE (-2)
long client_get_to(struct client *c, const char *path, const char *type, FILE *out,
		   struct buf *other,
		   int *complete);
const char *client_error(const struct client *c);
/* The server's URL, as given to client_new() less any trailing '/'. */
const char *client_url(const struct client *c);

#endif
