/*
 * routes: the table of what batchd answers. Patterns are matched segment by
 * segment; {id} and {index} match non-negative integers and are handed to
 * the handler in struct request; a final * matches the rest of the path.
 */
#include "http.h"

const struct route routes[] = {
	{ "GET", "/api/jobs", api_jobs_list },
	{ "POST", "/api/jobs", api_jobs_create },
	{ "GET", "/api/jobs/{id}", api_jobs_get },
	{ "DELETE", "/api/jobs/{id}", api_jobs_delete },
	{ "POST", "/api/jobs/{id}/cancel", api_jobs_cancel },
	{ "POST", "/api/jobs/{id}/retry", api_jobs_retry },
	{ "POST", "/api/jobs/{id}/pause", api_jobs_pause },
	{ "POST", "/api/jobs/{id}/resume", api_jobs_resume },
	{ "GET", "/api/jobs/{id}/tasks", api_tasks_list },
	{ "GET", "/api/jobs/{id}/results", api_tasks_export },
	{ "GET", "/api/jobs/{id}/tasks/{index}", api_tasks_get },
	{ "GET", "/api/jobs/{id}/throughput", api_jobs_throughput },
	{ "GET", "/api/progress", api_progress },
	{ "GET", "/api/workers", api_workers },
	{ "GET", "/api/handlers", api_handlers },
	{ "GET", "/api/openapi.json", api_openapi },
	{ "GET", "/healthz", api_healthz },
	{ "GET", "/metrics", api_metrics },
	{ "GET", "/", static_index },
	{ "GET", "/static/*", static_get },
};

const size_t route_count = sizeof(routes) / sizeof(routes[0]);
