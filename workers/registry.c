/*
 * registry: built-in handlers plus those of the operator's handlers file.
 * See registry.h.
 */
#include "registry.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/json.h"
#include "../lib/xalloc.h"

struct registry {
	struct handler *items;
	int count;
	int cap;
};

static struct handler *add(struct registry *r)
{
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->items = realloc(r->items, (size_t)r->cap * sizeof(*r->items));
		if (!r->items)
			abort();
	}
	memset(&r->items[r->count], 0, sizeof(r->items[0]));
	return &r->items[r->count++];
}

struct registry *registry_new(void)
{
	struct registry *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	for (size_t i = 0; i < builtin_count; i++) {
		struct handler *h = add(r);

		h->name = xstrdup(builtin_handlers[i].ops->name);
		h->kind = HANDLER_BUILTIN;
		h->ops = builtin_handlers[i].ops;
		h->validate = builtin_handlers[i].validate;
	}
	return r;
}

static void handler_release(struct handler *h)
{
	free(h->name);
	free(h->config);
	free(h->path);
	if (h->dl)
		dlclose(h->dl);
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->count; i++)
		handler_release(&r->items[i]);
	free(r->items);
	free(r);
}

const struct handler *registry_find(const struct registry *r, const char *name,
				    int *id)
{
	for (int i = 0; i < r->count; i++) {
		if (!strcmp(r->items[i].name, name)) {
			if (id)
				*id = i;
			return &r->items[i];
		}
	}
	return NULL;
}

const struct handler *registry_get(const struct registry *r, int id)
{
	return id >= 0 && id < r->count ? &r->items[id] : NULL;
}

int registry_count(const struct registry *r)
{
	return r->count;
}

const char *handler_kind_name(enum handler_kind kind)
{
	switch (kind) {
	case HANDLER_BUILTIN:
		return "builtin";
	case HANDLER_COMMAND:
		return "command";
	case HANDLER_PERSISTENT:
		return "persistent";
	case HANDLER_PLUGIN:
		return "plugin";
	}
	return "unknown";
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return 0;
	return 1;
}

/* Resolves a path from the handlers file: absolute as is, with a slash
 * relative to the file's directory, else (programs only) through PATH. */
static char *resolve(const char *p, const char *dir, int search_path)
{
	struct buf b = BUF_INIT;

	if (p[0] == '/')
		return xstrdup(p);
	if (strchr(p, '/') || !search_path) {
		buf_addf(&b, "%s/%s", dir, p);
		return buf_detach(&b, NULL);
	}
	const char *path = getenv("PATH");

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);

		buf_reset(&b);
		buf_add(&b, path, n ? n : 1);
		if (!n)
			b.data[0] = '.';
		buf_addf(&b, "/%s", p);
		if (access(b.data, X_OK) == 0)
			return buf_detach(&b, NULL);
		path += n + (colon ? 1 : 0);
	}
	buf_release(&b);
	return NULL;
}

/* A program's handler: "argv" and "env", one process per task or, with
 * persistent set, one kept per worker ("init_timeout_s" bounds its
 * start-up). */
static int load_command(struct handler *h, const cJSON *spec, const char *dir,
			int persistent, char *err, size_t errlen)
{
	const cJSON *argv = cJSON_GetObjectItemCaseSensitive(spec, "argv");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(spec, "env");
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(spec, "init_timeout_s");
	const cJSON *a;
	cJSON *cfg = NULL, *out_argv, *out_env;
	struct stat st;
	char *prog;
	int i = 0;

	if (!cJSON_IsArray(argv) || cJSON_GetArraySize(argv) < 1) {
		snprintf(err, errlen, "\"argv\" must be a non-empty array of strings");
		return -1;
	}
	cJSON_ArrayForEach(a, argv) {
		if (!cJSON_IsString(a) || (i == 0 && !*a->valuestring)) {
			snprintf(err, errlen, "\"argv\"[%d] must be a %sstring",
				 i, i ? "" : "non-empty ");
			return -1;
		}
		i++;
	}
	if (env && !cJSON_IsObject(env)) {
		snprintf(err, errlen, "\"env\" must be an object of strings");
		return -1;
	}
	cJSON_ArrayForEach(a, env) {
		if (!cJSON_IsString(a) || !*a->string || strchr(a->string, '=')) {
			snprintf(err, errlen, "\"env\".%s must be a string", a->string);
			return -1;
		}
	}
	if (cJSON_GetArraySize(env) > ENV_MAX) {
		snprintf(err, errlen, "\"env\" has more than %d entries", ENV_MAX);
		return -1;
	}
	if (it && !persistent) {
		snprintf(err, errlen, "\"init_timeout_s\" is for \"mode\": \"persistent\"");
		return -1;
	}
	if (it && (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) ||
		   it->valuedouble <= 0 || it->valuedouble > 86400)) {
		snprintf(err, errlen,
			 "\"init_timeout_s\" must be a number of seconds in (0, 86400]");
		return -1;
	}
	prog = resolve(argv->child->valuestring, dir, 1);
	if (!prog) {
		snprintf(err, errlen, "%s: not found in PATH",
			 argv->child->valuestring);
		return -1;
	}
	if (stat(prog, &st) < 0 || access(prog, X_OK) < 0) {
		snprintf(err, errlen, "%s: %s", prog, strerror(errno));
		free(prog);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", prog);
		free(prog);
		return -1;
	}
	cfg = cJSON_CreateObject();
	out_argv = cJSON_AddArrayToObject(cfg, "argv");
	cJSON_AddItemToArray(out_argv, cJSON_CreateString(prog));
	for (a = argv->child->next; a; a = a->next)
		cJSON_AddItemToArray(out_argv, cJSON_CreateString(a->valuestring));
	out_env = cJSON_AddObjectToObject(cfg, "env");
	cJSON_ArrayForEach(a, env)
		cJSON_AddStringToObject(out_env, a->string, a->valuestring);
	if (persistent) {
		cJSON_AddStringToObject(cfg, "handler", h->name);
		if (it) {
			h->init_timeout_ms = (int64_t)ceil(it->valuedouble * 1000);
			cJSON_AddNumberToObject(cfg, "init_timeout_ms",
						(double)h->init_timeout_ms);
		}
	}
	h->kind = persistent ? HANDLER_PERSISTENT : HANDLER_COMMAND;
	h->ops = persistent ? &persistent_handler_ops : &command_handler_ops;
	h->path = prog;
	h->config = cJSON_PrintUnformatted(cfg);
	cJSON_Delete(cfg);
	return 0;
}

static int load_plugin(struct handler *h, const cJSON *spec, const char *dir,
		       char *err, size_t errlen)
{
	const cJSON *plugin = cJSON_GetObjectItemCaseSensitive(spec, "plugin");
	const cJSON *config = cJSON_GetObjectItemCaseSensitive(spec, "config");
	batchd_handler_get_fn get;
	const struct batchd_handler *ops;

	if (!cJSON_IsString(plugin) || !*plugin->valuestring) {
		snprintf(err, errlen, "\"plugin\" must be a path to a shared object");
		return -1;
	}
	h->path = resolve(plugin->valuestring, dir, 0);
	if (access(h->path, R_OK) < 0) {
		snprintf(err, errlen, "%s: %s", h->path, strerror(errno));
		return -1;
	}
	h->dl = dlopen(h->path, RTLD_NOW | RTLD_LOCAL);
	if (!h->dl) {
		snprintf(err, errlen, "%s", dlerror());
		return -1;
	}
	get = (batchd_handler_get_fn)dlsym(h->dl, BATCHD_HANDLER_SYMBOL);
	if (!get) {
		snprintf(err, errlen, "%s: no symbol %s", h->path,
			 BATCHD_HANDLER_SYMBOL);
		return -1;
	}
	ops = get();
	if (!ops) {
		snprintf(err, errlen, "%s: %s() returned NULL", h->path,
			 BATCHD_HANDLER_SYMBOL);
		return -1;
	}
	if (ops->abi_version != BATCHD_ABI_VERSION) {
		snprintf(err, errlen,
			 "%s: built for batchd ABI %d, this batchd has ABI %d",
			 h->path, ops->abi_version, BATCHD_ABI_VERSION);
		return -1;
	}
	if (!ops->run) {
		snprintf(err, errlen, "%s: the handler has no run()", h->path);
		return -1;
	}
	h->kind = HANDLER_PLUGIN;
	h->ops = ops;
	if (config)
		h->config = cJSON_PrintUnformatted(config);
	return 0;
}

static const char *const known_keys[] = {
	"argv", "env", "timeout_s", "plugin", "config", "mode", "init_timeout_s",
	NULL
};

static int load_one(struct handler *h, const cJSON *spec, const char *dir,
		    char *err, size_t errlen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "timeout_s");
	const cJSON *mode = cJSON_GetObjectItemCaseSensitive(spec, "mode");
	const cJSON *k;

	if (!cJSON_IsObject(spec)) {
		snprintf(err, errlen, "must be an object");
		return -1;
	}
	cJSON_ArrayForEach(k, spec) {
		int known = 0;

		for (int i = 0; known_keys[i]; i++)
			known |= !strcmp(k->string, known_keys[i]);
		if (!known) {
			struct buf q = BUF_INIT;

			buf_add_quoted(&q, k->string, 100);
			snprintf(err, errlen, "unknown field \"%s\"", q.data);
			buf_release(&q);
			return -1;
		}
	}
	if (t) {
		if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) ||
		    t->valuedouble <= 0 || t->valuedouble > 7 * 86400) {
			snprintf(err, errlen,
				 "\"timeout_s\" must be a number of seconds in (0, 604800]");
			return -1;
		}
		h->timeout_ms = (int64_t)(t->valuedouble * 1000);
		if (h->timeout_ms < 1)
			h->timeout_ms = 1;
	}
	if (mode && (!cJSON_IsString(mode) || (strcmp(mode->valuestring, "exec") &&
						strcmp(mode->valuestring, "persistent")))) {
		snprintf(err, errlen, "\"mode\" must be \"exec\" or \"persistent\"");
		return -1;
	}
	if (cJSON_HasObjectItem(spec, "plugin")) {
		if (cJSON_HasObjectItem(spec, "argv")) {
			snprintf(err, errlen, "give either \"plugin\" or \"argv\", not both");
			return -1;
		}
		if (mode || cJSON_HasObjectItem(spec, "env") ||
		    cJSON_HasObjectItem(spec, "init_timeout_s")) {
			snprintf(err, errlen, "\"%s\" is for programs (\"argv\"), not plugins",
				 mode ? "mode" : cJSON_HasObjectItem(spec, "env") ? "env"
				 : "init_timeout_s");
			return -1;
		}
		return load_plugin(h, spec, dir, err, errlen);
	}
	if (cJSON_HasObjectItem(spec, "config")) {
		snprintf(err, errlen, "\"config\" is for plugins");
		return -1;
	}
	return load_command(h, spec, dir,
			    mode && !strcmp(mode->valuestring, "persistent"), err, errlen);
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT;
	char chunk[8192];
	size_t n;

	if (!f) {
		snprintf(err, errlen, "handlers file %s: %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		buf_add(&b, chunk, n);
		if (b.len > (16u << 20)) {
			snprintf(err, errlen, "handlers file %s: larger than 16 MiB", path);
			fclose(f);
			buf_release(&b);
			return NULL;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "handlers file %s: %s", path, strerror(errno));
		fclose(f);
		buf_release(&b);
		return NULL;
	}
	fclose(f);
	return buf_detach(&b, len);
}

int registry_load_file(struct registry *r, const char *path, char *err,
		       size_t errlen)
{
	char msg[512];
	const char *end = NULL;
	const cJSON *handlers, *spec, *config;
	size_t len, bom;
	char *text, *dir, *slash;
	cJSON *doc;
	int first = r->count;

	text = read_file(path, &len, err, errlen);
	if (!text)
		return -1;
	/* A byte order mark is no part of the JSON. */
	if ((bom = json_bom(text, len))) {
		len -= bom;
		memmove(text, text + bom, len + 1);
	}
	/* JSON has no raw NUL, and cJSON would end a string at one. */
	end = memchr(text, '\0', len);
	doc = end ? NULL : cJSON_ParseWithLengthOpts(text, len, &end, 0);
	/* One JSON value, and nothing after it but white space: a second
	 * object after the first would be ignored, not read. */
	while (doc && end < text + len && strchr(" \t\r\n", *end))
		end++;
	if (doc && end < text + len) {
		cJSON_Delete(doc);
		doc = NULL;
	}
	if (!doc) {
		if (!end)
			end = cJSON_GetErrorPtr();
		snprintf(err, errlen, "handlers file %s: invalid JSON at byte %zu",
			 path, end && end >= text ? (size_t)(end - text) : (size_t)0);
		free(text);
		return -1;
	}
	handlers = cJSON_GetObjectItemCaseSensitive(doc, "handlers");
	if (!cJSON_IsObject(doc) || !cJSON_IsObject(handlers)) {
		snprintf(err, errlen,
			 "handlers file %s: expected {\"handlers\": {\"name\": {...}}}",
			 path);
		cJSON_Delete(doc);
		free(text);
		return -1;
	}
	/* Strict, as each handler's fields are: a misspelt key is an error,
	 * and so is "handlers" twice (only the first would be read). */
	for (const cJSON *k = doc->child; k; k = k->next) {
		if (k != handlers && !strcmp(k->string, "handlers")) {
			snprintf(err, errlen, "handlers file %s: field \"handlers\" is given twice",
				 path);
			cJSON_Delete(doc);
			free(text);
			return -1;
		}
		if (strcmp(k->string, "handlers")) {
			struct buf q = BUF_INIT;

			buf_add_quoted(&q, k->string, 100);
			snprintf(err, errlen, "handlers file %s: unknown field \"%s\" (only"
				 " \"handlers\" belongs at the top)", path, q.data);
			buf_release(&q);
			cJSON_Delete(doc);
			free(text);
			return -1;
		}
	}
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		strcpy(dir, ".");

	cJSON_ArrayForEach(spec, handlers) {
		struct handler *h;

		if (!valid_name(spec->string)) {
			struct buf q = BUF_INIT;

			buf_add_quoted(&q, spec->string, 100);
			snprintf(err, errlen,
				 "handlers file %s: bad handler name \"%s\" (letters, digits, _ . -; at most 64)",
				 path, q.data);
			buf_release(&q);
			goto fail;
		}
		if (registry_find(r, spec->string, NULL)) {
			snprintf(err, errlen,
				 "handlers file %s: handler \"%s\" is defined twice or is built in",
				 path, spec->string);
			goto fail;
		}
		if (r->count >= REGISTRY_MAX) {
			snprintf(err, errlen, "handlers file %s: more than %d handlers",
				 path, REGISTRY_MAX);
			goto fail;
		}
		h = add(r);
		h->name = xstrdup(spec->string);
		if (load_one(h, spec, dir, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "handlers file %s: handler \"%s\": %s",
				 path, spec->string, msg);
			goto fail;
		}
		/* A plugin's config as written: its numbers, not cJSON's
		 * doubles. */
		config = cJSON_GetObjectItemCaseSensitive(spec, "config");
		if (h->kind == HANDLER_PLUGIN && config) {
			struct buf b = BUF_INIT;

			json_text_of(&b, doc, config, text, len);
			free(h->config);
			h->config = buf_detach(&b, NULL);
		}
	}
	free(dir);
	cJSON_Delete(doc);
	free(text);
	return 0;
fail:
	while (r->count > first)
		handler_release(&r->items[--r->count]);
	free(dir);
	cJSON_Delete(doc);
	free(text);
	return -1;
}
