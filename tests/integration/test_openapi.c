/*
 * Integration test of GET /api/openapi.json: the document the server serves
 * describes exactly the routes it has. The routes come from the binary
 * itself (`batchd routes` prints the compiled route table), so a route
 * added without documenting it, or documented and then removed, fails here.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 256

struct set {
	char *item[MAX_ROUTES];
	int n;
};

static void set_add(struct set *s, const char *method, const char *path)
{
	char line[512];

	assert_true(s->n < MAX_ROUTES);
	snprintf(line, sizeof(line), "%s %s", method, path);
	s->item[s->n] = strdup(line);
	assert_non_null(s->item[s->n]);
	s->n++;
}

static int set_has(const struct set *s, const char *item)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->item[i], item))
			return 1;
	return 0;
}

static void set_free(struct set *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->item[i]);
	s->n = 0;
}

/* The route table, from `batchd routes`. */
static void compiled_routes(struct set *out)
{
	char cmd[1024], line[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' routes", batchd_bin());
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		char method[16], path[400];

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%15s %399s", method, path) != 2)
			fail_msg("`batchd routes` printed \"%s\"", line);
		set_add(out, method, path);
	}
	assert_int_equal(pclose(p), 0);
	assert_true(out->n >= 10);
}

static void upper(char *s)
{
	for (; *s; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
}

/* Whether op (or its path item) declares the path parameter name. */
static int declares_param(const cJSON *item, const cJSON *op, const char *name)
{
	const cJSON *lists[2] = { cJSON_GetObjectItem(item, "parameters"),
				  cJSON_GetObjectItem(op, "parameters") };

	for (int i = 0; i < 2; i++) {
		const cJSON *p;

		cJSON_ArrayForEach(p, lists[i]) {
			const char *ref = jstr(p, "$ref");

			/* Only the shared {id} is referenced. */
			if (ref && !strcmp(name, "id") && strstr(ref, "JobId"))
				return 1;
			if (jstr(p, "name") && !strcmp(jstr(p, "name"), name) &&
			    jstr(p, "in") && !strcmp(jstr(p, "in"), "path"))
				return 1;
		}
	}
	return 0;
}

static void test_openapi_matches_routes(void **state)
{
	static const char *const methods[] = { "get", "put", "post", "delete",
						"patch", "head", "options", "trace", NULL };
	struct server s;
	struct set routes = { 0 }, documented = { 0 }, ids = { 0 };
	struct resp r;
	const cJSON *paths, *item;
	cJSON *health;
	char type[128];
	int bad = 0;

	(void)state;
	compiled_routes(&routes);
	server_init(&s);
	server_start(&s, (const char *const[]){ "--workers", "1", NULL });
	http_request(&s, "GET", "/api/openapi.json", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(resp_header(&r, "Content-Type", type, sizeof(type)));
	assert_string_equal(type, "application/json");
	assert_non_null(r.json);
	assert_non_null(jstr(r.json, "openapi"));
	assert_true(!strncmp(jstr(r.json, "openapi"), "3.1.", 4));
	assert_non_null(jstr(r.json, "info.title"));
	health = api(&s, "GET", "/healthz", NULL, 200);
	assert_string_equal(jstr(r.json, "info.version"), jstr(health, "version"));
	cJSON_Delete(health);

	paths = cJSON_GetObjectItem(r.json, "paths");
	assert_true(cJSON_IsObject(paths));
	cJSON_ArrayForEach(item, paths) {
		for (int i = 0; methods[i]; i++) {
			const cJSON *op = cJSON_GetObjectItem(item, methods[i]);
			char m[16];
			const char *p;

			if (!op)
				continue;
			snprintf(m, sizeof(m), "%s", methods[i]);
			upper(m);
			set_add(&documented, m, item->string);
			/* Every operation answers something and is named once. */
			if (!cJSON_IsObject(cJSON_GetObjectItem(op, "responses")) ||
			    !cJSON_GetObjectItem(op, "responses")->child) {
				print_error("%s %s: no responses\n", m, item->string);
				bad++;
			}
			if (!jstr(op, "operationId") || set_has(&ids, jstr(op, "operationId"))) {
				print_error("%s %s: missing or repeated operationId\n", m, item->string);
				bad++;
			} else {
				set_add(&ids, "", jstr(op, "operationId"));
			}
			/* Every {param} in the path is declared. */
			for (p = strchr(item->string, '{'); p; p = strchr(p + 1, '{')) {
				char name[64];

				if (sscanf(p + 1, "%63[^}]", name) == 1 &&
				    !declares_param(item, op, name)) {
					print_error("%s %s: path parameter {%s} not declared\n", m,
						    item->string, name);
					bad++;
				}
			}
		}
	}
	for (int i = 0; i < routes.n; i++) {
		if (!set_has(&documented, routes.item[i])) {
			print_error("route not documented in docs/openapi.json: %s\n", routes.item[i]);
			bad++;
		}
	}
	for (int i = 0; i < documented.n; i++) {
		if (!set_has(&routes, documented.item[i])) {
			print_error("documented in docs/openapi.json but not a route: %s\n",
				    documented.item[i]);
			bad++;
		}
	}
	assert_int_equal(routes.n, documented.n);
	resp_free(&r);
	set_free(&routes);
	set_free(&documented);
	set_free(&ids);
	server_free(&s);
	assert_int_equal(bad, 0);
}

/* Under /api, the document needs the token like the rest of the API. */
static void test_openapi_token(void **state)
{
	struct server s;
	struct resp r;

	(void)state;
	server_init(&s);
	server_start(&s, (const char *const[]){ "--workers", "1", "--token", "t0k", NULL });
	http_request(&s, "GET", "/api/openapi.json", NULL, NULL, &r);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	s.token = "t0k";
	http_request(&s, "GET", "/api/openapi.json", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(r.json);
	resp_free(&r);
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openapi_matches_routes),
		cmocka_unit_test(test_openapi_token),
	};

	return cmocka_run_group_tests_name("openapi", tests, NULL, NULL);
}
