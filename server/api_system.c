/*
 * api_system: the server itself.
 *
 *   GET /api/workers   {"workers": [...]}
 *   GET /api/handlers  {"handlers": [{"name", "kind", "timeout_s"}]}
 *   GET /healthz       liveness, open even when a token is set
 */
#include "../lib/clock.h"
#include "http.h"
#include "version.h"
#include "views.h"

void api_workers(struct request *q, struct reply *r)
{
	cJSON *doc = cJSON_CreateObject();

	cJSON_AddItemToObject(doc, "workers", view_workers(q->app));
	reply_json(r, 200, doc);
}

void api_handlers(struct request *q, struct reply *r)
{
	const struct registry *reg = q->app->reg;
	const struct config *cfg = q->app->cfg;
	cJSON *doc = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(doc, "handlers");
	cJSON *limits;

	for (int i = 0; i < registry_count(reg); i++) {
		const struct handler *h = registry_get(reg, i);
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "name", h->name);
		cJSON_AddStringToObject(o, "kind", handler_kind_name(h->kind));
		if (h->timeout_ms)
			cJSON_AddNumberToObject(o, "timeout_s", (double)h->timeout_ms / 1000);
		else
			cJSON_AddNullToObject(o, "timeout_s");
		cJSON_AddItemToArray(arr, o);
	}
	/* What a submission may be, so that a client can say so before it
	 * sends one: a browser cannot wait for a 413 before its body goes. */
	limits = cJSON_AddObjectToObject(doc, "limits");
	cJSON_AddItemToObject(limits, "max_body", view_int(cfg->max_body));
	cJSON_AddItemToObject(limits, "max_tasks", view_int(cfg->max_tasks));
	cJSON_AddNumberToObject(limits, "default_timeout_s", cfg->default_timeout_s);
	reply_json(r, 200, doc);
}

void api_healthz(struct request *q, struct reply *r)
{
	struct app *app = q->app;
	cJSON *doc = cJSON_CreateObject();
	int alive = pool_alive(app->pool);

	cJSON_AddStringToObject(doc, "status", app->stopping ? "stopping" : "ok");
	cJSON_AddStringToObject(doc, "version", BATCHD_VERSION);
	cJSON_AddNumberToObject(doc, "workers", alive);
	cJSON_AddNumberToObject(doc, "uptime_s",
				(double)(clock_wall_ms() - app->started_at) / 1000);
	reply_json(r, app->stopping ? 503 : 200, doc);
}
