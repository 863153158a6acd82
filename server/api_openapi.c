/*
 * api_openapi: the API's own description.
 *
 *   GET /api/openapi.json   OpenAPI 3.1, from docs/openapi.json
 *
 * The document is compiled into the binary (tools/embed.c makes
 * build/gen/openapi.c from it), so what a server serves is what it was
 * built with. tests/integration/test_openapi.c checks it against the route
 * table: every route documented, nothing documented that is not a route.
 */
#include "http.h"

/* build/gen/openapi.c */
extern const char openapi_json[];
extern const size_t openapi_json_len;

void api_openapi(struct request *q, struct reply *r)
{
	(void)q;
	reply_bytes(r, 200, "application/json", openapi_json, openapi_json_len);
}
