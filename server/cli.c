/*
 * cli: submit, status, cancel, retry, results. See cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "../lib/buf.h"
#include "../lib/json.h"
#include "../lib/clock.h"
#include "client.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
#define EXIT_INTERRUPTED 130

/* Jobs per request when listing: the API's most. */
#define LIST_PAGE 1000
#define DEFAULT_URL "http://127.0.0.1:8080"
/* Symbolic links followed in a row before giving up, as Linux does. */
#define MAX_LINKS 40
/* A job's failed and running tasks that status ID shows. */
#define FAILED_SHOWN 5
#define RUNNING_SHOWN 5

struct common {
	const char *url;
	const char *token;
	int json;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void common_defaults(struct common *c)
{
	memset(c, 0, sizeof(*c));
	c->url = getenv("BATCHD_URL");
	if (!c->url || !*c->url)
		c->url = DEFAULT_URL;
	c->token = getenv("BATCHD_TOKEN");
}

/* Prints the server's error message for a failed request. */
static void print_error(const char *what, long status, const struct buf *body)
{
	cJSON *doc = cJSON_Parse(body->data);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");

	if (cJSON_IsString(m))
		fprintf(stderr, "batchd: %s: %s (HTTP %ld)\n", what, m->valuestring, status);
	else
		fprintf(stderr, "batchd: %s: HTTP %ld\n", what, status);
	if (status == 401)
		fputs("batchd: give the server's token with --token TOKEN, or in $BATCHD_TOKEN\n",
		      stderr);
	cJSON_Delete(doc);
}

static long request(struct client *cl, const char *method, const char *path,
		    const char *body, size_t len, const char *header, struct buf *out)
{
	long status = client_request(cl, method, path, body, len, header, out);

	if (status < 0)
		fprintf(stderr, "batchd: cannot reach the server: %s\n", client_error(cl));
	return status;
}

static void fmt_duration(double s, char *out, size_t len)
{
	long t = (long)(s + 0.5);

	if (!isfinite(s) || s < 0)
		snprintf(out, len, "?");
	else if (t >= 3600)
		snprintf(out, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(out, len, "%02ld:%02ld", t / 60, t % 60);
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* What a successful answer of batchd's holds. */
enum answer {
	ANSWER_JOB,	/* a job object */
	ANSWER_JOBS,	/* a page of the list of jobs */
};

/*
 * The body of a successful answer (HTTP status) from cl's server, parsed,
 * when it is the JSON batchd sends: a job object, with the members the
 * commands read (a numeric "id", a string "state" and "handler", a
 * "progress" object), or for ANSWER_JOBS an object with a "jobs" array.
 * When it is not, as when --url names another HTTP server, says so on
 * stderr, with what was wrong, and returns NULL: the command then fails
 * (EXIT_FAILED, as for a server's error) rather than show a job of nan
 * tasks, or wait on it forever. The caller deletes what it returns.
 */
static cJSON *batchd_answer(const struct client *cl, long status, const struct buf *body,
			    enum answer want)
{
	cJSON *doc = cJSON_ParseWithOpts(body->data, NULL, 1);
	struct buf why = BUF_INIT;

	if (!doc && !body->len) {
		buf_adds(&why, "an empty body");
	} else if (!doc) {
		buf_adds(&why, "not JSON: \"");
		buf_add_quoted(&why, body->data, 40);
		buf_addc(&why, '"');
	} else if (!cJSON_IsObject(doc)) {
		buf_adds(&why, "JSON, but not an object");
	} else if (want == ANSWER_JOBS) {
		if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "jobs")))
			buf_adds(&why, "no \"jobs\" array");
	} else if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(doc, "id"))) {
		buf_adds(&why, "no numeric \"id\"");
	} else if (!str(doc, "state")) {
		buf_adds(&why, "no string \"state\"");
	} else if (!str(doc, "handler")) {
		buf_adds(&why, "no string \"handler\"");
	} else if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "progress"))) {
		buf_adds(&why, "no \"progress\" object");
	}
	if (why.len) {
		fprintf(stderr, "batchd: %s did not answer as batchd does (HTTP %ld, %s)\n",
			client_url(cl), status, why.data);
		cJSON_Delete(doc);
		doc = NULL;
	}
	buf_release(&why);
	return doc;
}

/* An RFC 3339 time of the API ("2026-11-27T21:37:26.123Z") in seconds
 * since the epoch, milliseconds kept; 0 when there is none. */
static double parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	double t, scale = 0.1;

	if (!rest)
		return 0;
	t = (double)timegm(&tm);
	if (*rest == '.')
		for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
			t += (*rest - '0') * scale;
	return t;
}

/* How much of a job is done, from 0 to 1: its finished tasks and what
 * its running tasks have reported of their own progress (so that a job
 * of a few long tasks moves before one finishes); never 1 before the end. */
static double work_fraction(const cJSON *p, double done, double total)
{
	double rp = num(p, "running_progress"), f;

	if (!(total > 0))
		return 0;
	f = (done + (isfinite(rp) && rp > 0 ? rp : 0)) / total;
	if (done < total && f > 0.999)
		f = 0.999;
	return f > 1 ? 1 : f;
}

/* The state to show: "paused" for a paused job, which the API shows as
 * queued or running with "paused": true. */
static const char *shown_state(const cJSON *job)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "paused")) ? "paused" :
	       str(job, "state");
}

/* Whether job is in a final state: succeeded, failed or cancelled. */
static int job_over(const cJSON *job)
{
	const char *state = str(job, "state");

	return state && (!strcmp(state, "succeeded") || !strcmp(state, "failed") ||
			 !strcmp(state, "cancelled"));
}

static void format_bar(const cJSON *job, int width, char *out, size_t len)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(job, "progress");
	double total = num(p, "total"), ok = num(p, "succeeded"), bad = num(p, "failed"),
	       cancelled = num(p, "cancelled"), rate = num(p, "rate"), eta = num(p, "eta_s");
	double done = ok + bad + cancelled, frac = work_fraction(p, done, total);
	double start = parse_time(str(job, "started_at"));
	double end = parse_time(str(job, "finished_at"));
	char elapsed[32], left[32], bar[256 * 3 + 1];
	static const char *const parts[] = { " ", "▏", "▎", "▍", "▌", "▋", "▊", "▉" };
	size_t bl = 0;
	int cells = width * 8;
	int filled = (int)(frac * cells);

	fmt_duration(start ? (end ? end : (double)clock_wall_ms() / 1000) - start : 0, elapsed,
		     sizeof(elapsed));
	fmt_duration(eta, left, sizeof(left));
	if (width > 256)
		width = 256;
	for (int i = 0; i < width; i++) {
		const char *c = filled >= (i + 1) * 8 ? "█" :
				filled > i * 8 ? parts[filled - i * 8] : " ";

		bl += (size_t)snprintf(bar + bl, sizeof(bar) - bl, "%s", c);
	}
	char extra[64] = "";

	if (bad > 0)
		snprintf(extra, sizeof(extra), ", failed=%.0f", bad);
	if (cancelled > 0)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 ", cancelled=%.0f", cancelled);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "paused")))
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ", paused");
	/* No rate yet, or a job over within its first millisecond: "?", as
	 * tqdm says it, not a rate of 0. */
	char speed[32] = "?";

	if (isfinite(rate) && rate > 0)
		snprintf(speed, sizeof(speed), "%.1f", rate);
	snprintf(out, len, "job %.0f %s: %3.0f%%|%s| %.0f/%.0f [%s<%s, %s tasks/s%s]",
		 num(job, "id"), str(job, "handler") ? str(job, "handler") : "?",
		 floor(frac * 100), bar, done, total, elapsed, left, speed, extra);
}

void cli_format_bar(const char *job_json, int bar_width, char *out, size_t len)
{
	cJSON *job = cJSON_Parse(job_json);

	format_bar(job, bar_width, out, len);
	cJSON_Delete(job);
}

/* ---- submit ---- */

static char *read_all(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;

	if (!f) {
		fprintf(stderr, "batchd: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	if (ferror(f)) {
		fprintf(stderr, "batchd: %s: %s\n", path, strerror(errno));
		if (f != stdin)
			fclose(f);
		buf_release(&b);
		return NULL;
	}
	if (f != stdin)
		fclose(f);
	return buf_detach(&b, len);
}

static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* JSON Lines, one task per non-empty line, into out as a JSON array: the
 * lines' own text, each checked to be one JSON value and let go, so that
 * a million lines take their bytes and not a tree of a million objects.
 * 0, or -1 with err said. */
static int lines_to_array(const char *text, size_t len, struct buf *out, char *err,
			  size_t errlen)
{
	const char *p = text, *end = text + len;
	int line = 0, n = 0;

	buf_addc(out, '[');
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *a = p, *z = nl ? nl : end, *parsed;
		cJSON *t;

		line++;
		p = nl ? nl + 1 : end;
		while (a < z && blank(*a))
			a++;
		while (z > a && blank(z[-1]))
			z--;
		if (a == z)
			continue;
		t = cJSON_ParseWithLengthOpts(a, (size_t)(z - a), &parsed, 0);
		cJSON_Delete(t);
		if (!t || parsed != z) {
			snprintf(err, errlen, t ? "line %d holds more than one JSON value" :
				 "line %d is not JSON", line);
			return -1;
		}
		if (n++)
			buf_addc(out, ',');
		buf_add(out, a, (size_t)(z - a));
	}
	buf_addc(out, ']');
	return 0;
}

static void submit_usage(FILE *out)
{
	fputs("usage: batchd submit [options] FILE|-\n"
	      "\n"
	      "Submits a job. FILE holds either a whole job request\n"
	      "  {\"handler\": \"sleep\", \"tasks\": [{\"ms\": 100}, ...], \"name\": \"...\"}\n"
	      "or only the tasks (a JSON array, or JSON Lines: one task per line), with\n"
	      "--handler naming the handler; with it, a single object without \"tasks\"\n"
	      "is one task. Options override the file's fields.\n"
	      "Prints the job id on stdout.\n"
	      "\n"
	      "  --handler NAME     the handler to run\n"
	      "  --name NAME        a name for the job\n"
	      "  --priority N       higher runs first (default 0)\n"
	      "  --timeout SECONDS  per-task timeout\n"
	      "  --attempts N       attempts per task, the first included (default 1)\n"
	      "  --paused           submit it paused: nothing starts until batchd resume\n"
	      "  --key KEY          idempotency key: resubmitting the same job with it\n"
	      "                     returns the first instead of creating another;\n"
	      "                     the key with another job is refused\n"
	      "  --wait             show a progress bar until the job finishes; exit 0\n"
	      "                     only if every task succeeded\n"
	      "  --json             print the job object instead of its id (with\n"
	      "                     --wait, the finished job's)\n"
	      "  --url URL          server (default $BATCHD_URL or http://127.0.0.1:8080)\n"
	      "  --token TOKEN      API token (default $BATCHD_TOKEN)\n", out);
}

/* How long a wait goes on through an outage of a server that had answered
 * it: a restart, an upgrade, a crash and its service manager's restart. */
#define WAIT_OUTAGE_MS 60000

/* Waits for job id to finish, drawing its bar on stderr; with json, the
 * finished job's object goes to stdout. Once the server has answered, a
 * server that stops answering (or answers 503) is asked again every half
 * second for up to WAIT_OUTAGE_MS: the job is durable, so the wait is
 * too. */
static int wait_job(struct client *cl, long long id, int json)
{
	int tty = isatty(STDERR_FILENO);
	struct buf body = BUF_INIT;
	char path[64], line[1024];
	int64_t last_print = 0, lost_at = 0;
	int rc = EXIT_FAILED, answered = 0;
	struct sigaction sa = { .sa_handler = on_interrupt };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	snprintf(path, sizeof(path), "/api/jobs/%lld", id);
	for (;;) {
		long status = client_request(cl, "GET", path, NULL, 0, NULL, &body);
		cJSON *job;
		const char *state;
		int done;

		if (interrupted)
			break;
		if (answered && (status < 0 || status == 503)) {
			int64_t now = clock_mono_ms();

			if (!lost_at) {
				lost_at = now;
				fprintf(stderr, "%sbatchd: lost the server (%s); job %lld is safe in it, "
					"waiting up to %d s for it to come back\n", tty ? "\r\033[K" : "",
					status < 0 ? client_error(cl) : "HTTP 503", id,
					WAIT_OUTAGE_MS / 1000);
			}
			if (now - lost_at < WAIT_OUTAGE_MS) {
				for (int i = 0; i < 50 && !interrupted; i++)
					usleep(10000);
				if (interrupted)
					break;
				continue;
			}
		}
		if (status < 0) {
			fprintf(stderr, "batchd: cannot reach the server: %s\n", client_error(cl));
			rc = EXIT_UNREACHABLE;
			goto out;
		}
		if (lost_at && status != 503) {
			fprintf(stderr, "batchd: the server is back after %.1f s\n",
				(double)(clock_mono_ms() - lost_at) / 1000);
			lost_at = 0;
		}
		answered = 1;
		if (status != 200) {
			print_error("cannot follow the job", status, &body);
			goto out;
		}
		job = batchd_answer(cl, status, &body, ANSWER_JOB);
		if (!job)
			goto out;
		state = str(job, "state");
		done = job_over(job);
		format_bar(job, 30, line, sizeof(line));
		if (tty) {
			fprintf(stderr, "\r%s\033[K", line);
		} else if (done || clock_mono_ms() - last_print >= 5000) {
			fprintf(stderr, "%s\n", line);
			last_print = clock_mono_ms();
		}
		if (done) {
			if (tty)
				fputc('\n', stderr);
			fprintf(stderr, "job %lld %s\n", id, state);
			if (json)
				printf("%s\n", body.data);
			rc = !strcmp(state, "succeeded") ? 0 : EXIT_FAILED;
			cJSON_Delete(job);
			goto out;
		}
		cJSON_Delete(job);
		for (int i = 0; i < 20 && !interrupted; i++)
			usleep(10000);
		if (interrupted)
			break;
	}
	if (tty)
		fputc('\n', stderr);
	fprintf(stderr, "batchd: stopped waiting; job %lld goes on (batchd cancel %lld stops it)\n",
		id, id);
	rc = EXIT_INTERRUPTED;
out:
	buf_release(&body);
	return rc;
}

/* A job object's tasks go out as written, like an array's: printed again
 * from cJSON's tree, 9007199254740993 would go as a double. Moves the
 * "tasks" member of doc, read from text[0..len), into tasks as its text;
 * leaves doc whole when "tasks" is absent or given twice (the server
 * says what is wrong with that). */
static void object_tasks(cJSON *doc, const char *text, size_t len, struct buf *tasks)
{
	cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "tasks");

	if (!t)
		return;
	for (const cJSON *c = t->next; c; c = c->next)
		if (!strcmp(c->string, "tasks"))
			return;
	json_text_of(tasks, doc, t, text, len);
	cJSON_Delete(cJSON_DetachItemViaPointer(doc, t));
}

int cli_submit(int argc, char **argv)
{
	enum { O_URL = 1, O_TOKEN, O_HANDLER, O_NAME, O_PRIORITY, O_TIMEOUT, O_ATTEMPTS,
	       O_KEY, O_PAUSED, O_WAIT, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "url", required_argument, NULL, O_URL },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "handler", required_argument, NULL, O_HANDLER },
		{ "name", required_argument, NULL, O_NAME },
		{ "priority", required_argument, NULL, O_PRIORITY },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "attempts", required_argument, NULL, O_ATTEMPTS },
		{ "key", required_argument, NULL, O_KEY },
		{ "paused", no_argument, NULL, O_PAUSED },
		{ "wait", no_argument, NULL, O_WAIT },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct common c;
	const char *handler = NULL, *name = NULL, *key = NULL;
	double priority = NAN, timeout = NAN, attempts = NAN;
	int wait = 0, paused = 0, opt, rc = EXIT_FAILED;
	struct client *cl = NULL;
	struct buf body = BUF_INIT, hdr = BUF_INIT, tasks = BUF_INIT, payload = BUF_INIT;
	cJSON *doc = NULL, *req = NULL;
	char *text = NULL, *out = NULL, err[128];
	size_t len, bom;
	long status;

	common_defaults(&c);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case O_URL: c.url = optarg; break;
		case O_TOKEN: c.token = optarg; break;
		case O_HANDLER: handler = optarg; break;
		case O_NAME: name = optarg; break;
		case O_PRIORITY:
		case O_TIMEOUT:
		case O_ATTEMPTS: {
			char *end;
			double v = strtod(optarg, &end);

			if (end == optarg || *end || !isfinite(v)) {
				fprintf(stderr, "batchd submit: --%s: expected a number, got \"%s\"\n",
					opt == O_PRIORITY ? "priority" :
					opt == O_TIMEOUT ? "timeout" : "attempts", optarg);
				return EXIT_USAGE;
			}
			*(opt == O_PRIORITY ? &priority : opt == O_TIMEOUT ? &timeout : &attempts) = v;
			break;
		}
		case O_KEY: key = optarg; break;
		case O_PAUSED: paused = 1; break;
		case O_WAIT: wait = 1; break;
		case O_JSON: c.json = 1; break;
		case O_HELP: submit_usage(stdout); return 0;
		default:
			fprintf(stderr, "batchd submit: bad option %s (see batchd submit --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, optind == argc ?
			"batchd submit: which file? Give one, or - for stdin (see batchd submit --help)\n" :
			"batchd submit: one file, not %d arguments (see batchd submit --help)\n",
			argc - optind);
		return EXIT_USAGE;
	}
	text = read_all(argv[optind], &len);
	if (!text)
		return EXIT_USAGE;
	/* A byte order mark is no part of the JSON. */
	if ((bom = json_bom(text, len))) {
		len -= bom;
		memmove(text, text + bom, len + 1);
	}
	/* One JSON document, or else JSON Lines. The tasks of an array or of
	 * lines go out as their own text, spliced into the request below. */
	doc = cJSON_ParseWithOpts(text, NULL, 1);
	if (!doc) {
		if (lines_to_array(text, len, &tasks, err, sizeof(err)) < 0) {
			fprintf(stderr, "batchd submit: %s: not JSON and not JSON Lines (%s)\n",
				argv[optind], err);
			rc = EXIT_USAGE;
			goto out;
		}
		free(text);
		text = NULL;
		req = cJSON_CreateObject();
	} else if (cJSON_IsArray(doc)) {
		cJSON_Delete(doc);
		doc = NULL;
		buf_adds(&tasks, text);
		free(text);
		text = NULL;
		req = cJSON_CreateObject();
	} else if (cJSON_IsObject(doc) &&
		   (!handler || cJSON_GetObjectItemCaseSensitive(doc, "tasks"))) {
		object_tasks(doc, text, len, &tasks);
		req = doc;
		doc = NULL;
	} else if (handler) {
		/* JSON Lines of one line: one task. A job request, which
		 * this could otherwise be, has "tasks". */
		cJSON_Delete(doc);
		doc = NULL;
		buf_addc(&tasks, '[');
		buf_adds(&tasks, text);
		buf_addc(&tasks, ']');
		free(text);
		text = NULL;
		req = cJSON_CreateObject();
	} else {
		fprintf(stderr, "batchd submit: %s: expected a job object or an array of tasks\n",
			argv[optind]);
		rc = EXIT_USAGE;
		goto out;
	}
#define SET(key, item)                                                              \
	do {                                                                        \
		cJSON *it_ = (item);                                                \
		if (!cJSON_ReplaceItemInObjectCaseSensitive(req, key, it_))         \
			cJSON_AddItemToObject(req, key, it_);                       \
	} while (0)
	if (handler)
		SET("handler", cJSON_CreateString(handler));
	if (!cJSON_HasObjectItem(req, "handler")) {
		fprintf(stderr, "batchd submit: no handler: give --handler NAME\n");
		rc = EXIT_USAGE;
		goto out;
	}
	if (name)
		SET("name", cJSON_CreateString(name));
	if (!isnan(priority))
		SET("priority", cJSON_CreateNumber(priority));
	if (!isnan(timeout))
		SET("timeout_s", cJSON_CreateNumber(timeout));
	if (!isnan(attempts))
		SET("max_attempts", cJSON_CreateNumber(attempts));
	if (paused)
		SET("paused", cJSON_CreateTrue());
#undef SET
	out = cJSON_PrintUnformatted(req);
	if (tasks.len) {
		/* {"handler":...} and the tasks: {"handler":...,"tasks":[...]} */
		size_t n = strlen(out);

		buf_add(&payload, out, n - 1);
		buf_adds(&payload, n > 2 ? ",\"tasks\":" : "\"tasks\":");
		buf_add(&payload, tasks.data, tasks.len);
		buf_release(&tasks);
		buf_addc(&payload, '}');
	} else {
		buf_adds(&payload, out);
	}
	free(out);
	out = NULL;
	cl = client_new(c.url, c.token);
	if (!cl) {
		fprintf(stderr, "batchd: cannot start the HTTP client\n");
		goto out;
	}
	if (key)
		buf_addf(&hdr, "Idempotency-Key: %s", key);
	status = request(cl, "POST", "/api/jobs", payload.data, payload.len, key ? hdr.data : NULL,
			 &body);
	if (status < 0) {
		rc = EXIT_UNREACHABLE;
		goto out;
	}
	if (status != 201 && status != 200) {
		print_error("the job was refused", status, &body);
		rc = status == 401 || status >= 500 ? EXIT_FAILED : EXIT_USAGE;
		goto out;
	}
	cJSON *job = batchd_answer(cl, status, &body, ANSWER_JOB);

	if (!job)
		goto out;
	long long id = (long long)num(job, "id");

	/* With --wait, --json prints the finished job, as batchd wait does. */
	if (c.json && !wait)
		printf("%s\n", body.data);
	else if (!c.json)
		printf("%lld\n", id);
	fflush(stdout);
	if (!wait) {
		double total = num(cJSON_GetObjectItemCaseSensitive(job, "progress"), "total");

		fprintf(stderr, "job %lld submitted: %.0f task%s for \"%s\"%s\n", id, total,
			total == 1 ? "" : "s", str(job, "handler"),
			status == 200 ? " (already submitted with this key)" : "");
	}
	cJSON_Delete(job);
	rc = wait ? wait_job(cl, id, c.json) : 0;
out:
	cJSON_Delete(doc);
	cJSON_Delete(req);
	free(text);
	free(out);
	buf_release(&tasks);
	buf_release(&payload);
	buf_release(&body);
	buf_release(&hdr);
	client_free(cl);
	return rc;
}

/* ---- status, cancel, retry ---- */

static int parse_common(int argc, char **argv, struct common *c, void (*usage)(FILE *),
			const char *cmd)
{
	enum { O_URL = 1, O_TOKEN, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "url", required_argument, NULL, O_URL },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	common_defaults(c);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case O_URL: c->url = optarg; break;
		case O_TOKEN: c->token = optarg; break;
		case O_JSON: c->json = 1; break;
		case O_HELP: usage(stdout); return 1;
		default:
			fprintf(stderr, "batchd %s: bad option %s (see batchd %s --help)\n", cmd,
				argv[optind - 1], cmd);
			return -1;
		}
	}
	return 0;
}

static long long parse_id(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	return !*s || *end || errno || v <= 0 ? -1 : v;
}

/* The job id that cmd takes, left by getopt at argv[optind]; or, after
 * saying what is wrong with the arguments, -1. With optional set, no id
 * at all gives 0. */
static long long job_id_arg(int argc, char **argv, const char *cmd, int optional)
{
	long long id;

	if (optind == argc) {
		if (optional)
			return 0;
		fprintf(stderr, "batchd %s: which job? Give its id (see batchd %s --help)\n",
			cmd, cmd);
		return -1;
	}
	if (optind < argc - 1) {
		fprintf(stderr, "batchd %s: one job id, not %d arguments (see batchd %s --help)\n",
			cmd, argc - optind, cmd);
		return -1;
	}
	id = parse_id(argv[optind]);
	if (id < 0)
		fprintf(stderr, "batchd %s: \"%s\" is not a job id (a whole number from 1)\n",
			cmd, argv[optind]);
	return id;
}

/* Whether a --state given to cmd is a task or job state; says so if not. */
static int known_state(const char *cmd, const char *s)
{
	static const char *const states[] = { "queued", "running", "succeeded", "failed",
					      "cancelled" };

	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (!strcmp(s, states[i]))
			return 1;
	fprintf(stderr, "batchd %s: --state must be queued, running, succeeded, failed or"
		" cancelled\n", cmd);
	return 0;
}

static void status_usage(FILE *out)
{
	fputs("usage: batchd status [--state STATE] [--limit N | --all] [--json]\n"
	      "                     [--url URL] [--token TOKEN] [ID]\n"
	      "\n"
	      "Without ID: the most recent jobs, newest first, one line each; when\n"
	      "there are more, stderr says so. With ID: that job's progress and its\n"
	      "first failed tasks.\n"
	      "\n"
	      "  --state STATE  only jobs in this state: queued, running, succeeded,\n"
	      "                 failed or cancelled\n"
	      "  --limit N      list at most N jobs (default 20)\n"
	      "  --all          list every job\n"
	      "  --json         print the API's objects: with ID the job, without it\n"
	      "                 {\"jobs\": [...], \"next\": cursor or null}\n", out);
}

static void print_job_line(const cJSON *job)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(job, "progress");
	double total = num(p, "total");
	double done = num(p, "succeeded") + num(p, "failed") + num(p, "cancelled");
	char eta[32];

	double rate = num(p, "rate");
	char speed[32] = "-";
	/* A finished job has nothing left to wait for: no ETA. */
	int over = job_over(job);

	if (isfinite(rate) && rate > 0)
		snprintf(speed, sizeof(speed), rate < 100 ? "%.1f/s" : "%.0f/s", rate);
	fmt_duration(num(p, "eta_s"), eta, sizeof(eta));
	printf("%6.0f  %-9s  %-12.12s  %9.0f/%-9.0f %5.1f%%  %11s  %8s  %s\n",
	       num(job, "id"), shown_state(job), str(job, "handler"), done, total,
	       work_fraction(p, done, total) * 100, speed,
	       over || isnan(num(p, "eta_s")) ? "-" : eta, str(job, "name") ? str(job, "name") : "");
}

/* Lists up to limit jobs (0: all), of one state unless state is NULL,
 * paging through GET /api/jobs with its cursor, each page printed as it
 * comes (a long history is never held whole). */
static int list_jobs(struct client *cl, const char *state, long long limit, int json)
{
	struct buf path = BUF_INIT, body = BUF_INIT;
	char cursor[32] = "";
	long long shown = 0;
	int rc = 0, more = 0, pages = 0;

	for (;;) {
		long long want = limit ? limit - shown : LIST_PAGE;
		const cJSON *j, *next;
		cJSON *doc;
		long status;

		buf_reset(&path);
		buf_addf(&path, "/api/jobs?limit=%lld", want < LIST_PAGE ? want : LIST_PAGE);
		if (state)
			buf_addf(&path, "&state=%s", state);
		if (*cursor)
			buf_addf(&path, "&cursor=%s", cursor);
		status = request(cl, "GET", path.data, NULL, 0, NULL, &body);
		if (status < 0) {
			rc = EXIT_UNREACHABLE;
			goto out;
		}
		if (status != 200) {
			print_error("cannot list jobs", status, &body);
			rc = EXIT_FAILED;
			goto out;
		}
		doc = batchd_answer(cl, status, &body, ANSWER_JOBS);
		if (!doc) {
			rc = EXIT_FAILED;
			goto out;
		}
		if (!pages++) {
			if (json)
				fputs("{\"jobs\":[", stdout);
			else
				printf("%6s  %-9s  %-12s  %19s %6s  %11s  %8s  %s\n", "ID", "STATE",
				       "HANDLER", "DONE/TOTAL", "", "RATE", "ETA", "NAME");
		}
		cJSON_ArrayForEach(j, cJSON_GetObjectItemCaseSensitive(doc, "jobs")) {
			if (json) {
				char *text = cJSON_PrintUnformatted(j);

				printf("%s%s", shown ? "," : "", text ? text : "null");
				free(text);
			} else {
				print_job_line(j);
			}
			shown++;
		}
		/* The cursor is a job id, digits only. */
		next = cJSON_GetObjectItemCaseSensitive(doc, "next");
		more = cJSON_IsString(next) && *next->valuestring &&
		       strlen(next->valuestring) < sizeof(cursor) &&
		       next->valuestring[strspn(next->valuestring, "0123456789")] == '\0';
		if (more)
			snprintf(cursor, sizeof(cursor), "%s", next->valuestring);
		cJSON_Delete(doc);
		if (!more || (limit && shown >= limit))
			break;
	}
	if (json && more) {
		printf("],\"next\":\"%s\"}\n", cursor);
	} else if (json) {
		fputs("],\"next\":null}\n", stdout);
	} else {
		if (!shown)
			fprintf(stderr, "batchd: no %s%sjobs\n", state ? state : "", state ? " " : "");
		if (more)
			fprintf(stderr, "batchd: the newest %lld%s%s jobs shown; there are more "
				"(--limit N, or --all)\n", shown, state ? " " : "",
				state ? state : "");
	}
out:
	if (rc && pages && json)
		putchar('\n');
	buf_release(&path);
	buf_release(&body);
	return rc;
}

/* The first limit tasks of job id in state, as GET .../tasks answers
 * them ({"tasks": [...], "total": N}); NULL when it did not. */
static cJSON *job_tasks(struct client *cl, long long id, const char *state, int limit)
{
	struct buf body = BUF_INIT;
	char path[96];
	cJSON *doc = NULL;

	snprintf(path, sizeof(path), "/api/jobs/%lld/tasks?state=%s&limit=%d", id, state, limit);
	if (request(cl, "GET", path, NULL, 0, NULL, &body) == 200)
		doc = cJSON_Parse(body.data);
	buf_release(&body);
	return doc;
}

/* status ID: the job's tasks running now, with how far each has got
 * (the progress its handler reports) and for how long. */
static void print_running(struct client *cl, long long id)
{
	cJSON *doc = job_tasks(cl, id, "running", RUNNING_SHOWN);
	const cJSON *t, *tasks = cJSON_GetObjectItemCaseSensitive(doc, "tasks");
	double now = (double)clock_wall_ms() / 1000, running = num(doc, "total");
	int n = cJSON_GetArraySize(tasks);

	/* None: they ended between the two requests. */
	if (n > 0 && running > n)
		printf("running now (the first %d of %.0f):\n", n, running);
	else if (n > 0)
		printf("running now:\n");
	cJSON_ArrayForEach(t, tasks) {
		double p = num(t, "progress"), since = parse_time(str(t, "started_at"));
		double worker = num(t, "worker");
		const char *msg = str(t, "message");
		char pct[16] = "-", took[32] = "?", on[16] = "-";

		if (isfinite(p))
			snprintf(pct, sizeof(pct), "%.0f%%", p * 100);
		if (since > 0)
			fmt_duration(now > since ? now - since : 0, took, sizeof(took));
		if (isfinite(worker))
			snprintf(on, sizeof(on), "%.0f", worker);
		printf("  #%-6.0f %4s  worker %-3s  for %s%s%s\n", num(t, "index"), pct, on, took,
		       msg ? "  " : "", msg ? msg : "");
	}
	cJSON_Delete(doc);
}

/* status ID: the job's first failed tasks with their errors, and where
 * the rest are when there are more. */
static void print_failed(struct client *cl, long long id, const char *url)
{
	cJSON *doc = job_tasks(cl, id, "failed", FAILED_SHOWN);
	const cJSON *t;
	double failed = num(doc, "total");
	/* The hint names the server when --url did. */
	const char *env = getenv("BATCHD_URL");
	int named = strcmp(url, env && *env ? env : DEFAULT_URL) != 0;

	if (!doc)
		return;
	if (failed > FAILED_SHOWN)
		printf("failed tasks (the first %d of %.0f; all of them: batchd results%s%s"
		       " --state failed %lld):\n", FAILED_SHOWN, failed, named ? " --url " : "",
		       named ? url : "", id);
	else
		printf("failed tasks:\n");
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "tasks"))
		printf("  #%-6.0f attempts=%.0f  %s\n", num(t, "index"), num(t, "attempts"),
		       str(t, "error") ? str(t, "error") : "");
	cJSON_Delete(doc);
}

int cli_status(int argc, char **argv)
{
	enum { O_URL = 1, O_TOKEN, O_JSON, O_STATE, O_LIMIT, O_ALL, O_HELP };
	static const struct option opts[] = {
		{ "url", required_argument, NULL, O_URL },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "json", no_argument, NULL, O_JSON },
		{ "state", required_argument, NULL, O_STATE },
		{ "limit", required_argument, NULL, O_LIMIT },
		{ "all", no_argument, NULL, O_ALL },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct common c;
	struct client *cl;
	struct buf body = BUF_INIT;
	const char *state = NULL;
	long long id, limit = 20;
	int opt, all = 0, listing = 0, rc = 0;
	char path[96];
	long status;
	cJSON *job;

	common_defaults(&c);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case O_URL: c.url = optarg; break;
		case O_TOKEN: c.token = optarg; break;
		case O_JSON: c.json = 1; break;
		case O_STATE: state = optarg; listing = 1; break;
		case O_LIMIT:
			limit = parse_id(optarg);
			if (limit < 0) {
				fprintf(stderr, "batchd status: --limit: expected a whole number from 1,"
					" got \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			listing = 1;
			break;
		case O_ALL: all = 1; listing = 1; break;
		case O_HELP: status_usage(stdout); return 0;
		default:
			fprintf(stderr, "batchd status: bad option %s (see batchd status --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if ((id = job_id_arg(argc, argv, "status", 1)) < 0)
		return EXIT_USAGE;
	if (id && listing) {
		fprintf(stderr, "batchd status: --state, --limit and --all are for the list of"
			" jobs, not for one job\n");
		return EXIT_USAGE;
	}
	if (state && !known_state("status", state))
		return EXIT_USAGE;
	cl = client_new(c.url, c.token);
	if (!cl)
		return EXIT_FAILED;
	if (!id) {
		rc = list_jobs(cl, state, all ? 0 : limit, c.json);
		client_free(cl);
		return rc;
	}
	snprintf(path, sizeof(path), "/api/jobs/%lld", id);
	status = request(cl, "GET", path, NULL, 0, NULL, &body);
	if (status < 0) {
		rc = EXIT_UNREACHABLE;
	} else if (status != 200) {
		print_error("cannot show the job", status, &body);
		rc = EXIT_FAILED;
	} else if (!(job = batchd_answer(cl, status, &body, ANSWER_JOB))) {
		rc = EXIT_FAILED;
	} else if (c.json) {
		printf("%s\n", body.data);
		cJSON_Delete(job);
	} else {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(job, "progress");
		char line[1024];

		format_bar(job, 30, line, sizeof(line));
		printf("%s\nstate: %s   name: %s   created: %s\n", line, shown_state(job),
		       str(job, "name") ? str(job, "name") : "-", str(job, "created_at"));
		printf("started: %s   finished: %s   max attempts: %.0f   priority: %.0f\n",
		       str(job, "started_at") ? str(job, "started_at") : "-",
		       str(job, "finished_at") ? str(job, "finished_at") : "-",
		       num(job, "max_attempts"), num(job, "priority"));
		if (num(p, "running") > 0)
			print_running(cl, id);
		if (num(p, "failed") > 0)
			print_failed(cl, id, c.url);
		cJSON_Delete(job);
	}
	buf_release(&body);
	client_free(cl);
	return rc;
}

/* POST /api/jobs/ID/action, or with action NULL, DELETE /api/jobs/ID. */
static int job_action(int argc, char **argv, const char *cmd, const char *action,
		      const char *done, void (*usage)(FILE *))
{
	struct common c;
	struct client *cl;
	struct buf body = BUF_INIT;
	char path[96];
	long status;
	long long id;
	cJSON *job = NULL;
	int rc = parse_common(argc, argv, &c, usage, cmd);

	if (rc)
		return rc > 0 ? 0 : EXIT_USAGE;
	if ((id = job_id_arg(argc, argv, cmd, 0)) < 0)
		return EXIT_USAGE;
	cl = client_new(c.url, c.token);
	if (!cl)
		return EXIT_FAILED;
	if (action)
		snprintf(path, sizeof(path), "/api/jobs/%lld/%s", id, action);
	else
		snprintf(path, sizeof(path), "/api/jobs/%lld", id);
	status = request(cl, action ? "POST" : "DELETE", path, NULL, 0, NULL, &body);
	if (status < 0) {
		rc = EXIT_UNREACHABLE;
	} else if (status != (action ? 200 : 204)) {
		print_error(cmd, status, &body);
		rc = EXIT_FAILED;
	} else if (action && !(job = batchd_answer(cl, status, &body, ANSWER_JOB))) {
		rc = EXIT_FAILED;
	} else if (c.json && !action) {
		printf("{\"id\":%lld,\"deleted\":true}\n", id);	/* 204: no body */
	} else if (c.json) {
		printf("%s\n", body.data);
	} else {
		printf("job %lld %s\n", id, done);
	}
	cJSON_Delete(job);
	buf_release(&body);
	client_free(cl);
	return rc;
}

static void wait_usage(FILE *out)
{
	fputs("usage: batchd wait [--json] [--url URL] [--token TOKEN] ID\n"
	      "\n"
	      "Draws job ID's progress bar on stderr until the job finishes, from any\n"
	      "terminal, whoever submitted it (as submit --wait does for its own job).\n"
	      "With --json, the finished job's object is printed on stdout.\n"
	      "\n"
	      "The wait outlives a restart of the server: once it has answered, it\n"
	      "is asked again for up to 60 s while it does not.\n"
	      "\n"
	      "Exits 0 when every task succeeded; 1 when some failed or were\n"
	      "cancelled, or the server refuses (no such job) or does not answer\n"
	      "as batchd does; 3 when the server cannot be reached; 130 when\n"
	      "interrupted (the job goes on).\n", out);
}

int cli_wait(int argc, char **argv)
{
	struct common c;
	struct client *cl;
	long long id;
	int rc = parse_common(argc, argv, &c, wait_usage, "wait");

	if (rc)
		return rc > 0 ? 0 : EXIT_USAGE;
	if ((id = job_id_arg(argc, argv, "wait", 0)) < 0)
		return EXIT_USAGE;
	cl = client_new(c.url, c.token);
	if (!cl)
		return EXIT_FAILED;
	rc = wait_job(cl, id, c.json);
	client_free(cl);
	return rc;
}

static void cancel_usage(FILE *out)
{
	fputs("usage: batchd cancel [--json] [--url URL] [--token TOKEN] ID\n"
	      "\n"
	      "Cancels a job: its queued tasks are cancelled and its running tasks\n"
	      "stopped.\n", out);
}

static void retry_usage(FILE *out)
{
	fputs("usage: batchd retry [--json] [--url URL] [--token TOKEN] ID\n"
	      "\n"
	      "Queues a job's failed and cancelled tasks again.\n", out);
}

static void pause_usage(FILE *out)
{
	fputs("usage: batchd pause [--json] [--url URL] [--token TOKEN] ID\n"
	      "\n"
	      "Pauses a queued or running job: its running tasks finish, and no other\n"
	      "task of it starts until it is resumed (batchd resume ID), even across\n"
	      "a restart of the server. Other jobs run meanwhile.\n", out);
}

static void resume_usage(FILE *out)
{
	fputs("usage: batchd resume [--json] [--url URL] [--token TOKEN] ID\n"
	      "\n"
	      "Resumes a paused job: its tasks start again where they stopped.\n", out);
}

int cli_pause(int argc, char **argv)
{
	return job_action(argc, argv, "pause", "pause", "paused", pause_usage);
}

int cli_resume(int argc, char **argv)
{
	return job_action(argc, argv, "resume", "resume", "resumed", resume_usage);
}

static void delete_usage(FILE *out)
{
	fputs("usage: batchd delete [--json] [--url URL] [--token TOKEN] ID\n"
	      "\n"
	      "Deletes a finished job with its tasks and their results. A job still\n"
	      "queued or running is refused: cancel it first. With --json, prints\n"
	      "{\"id\":ID,\"deleted\":true}.\n", out);
}

int cli_delete(int argc, char **argv)
{
	return job_action(argc, argv, "delete", NULL, "deleted", delete_usage);
}

int cli_cancel(int argc, char **argv)
{
	return job_action(argc, argv, "cancel", "cancel", "cancelled", cancel_usage);
}

int cli_retry(int argc, char **argv)
{
	return job_action(argc, argv, "retry", "retry", "retried", retry_usage);
}

/* ---- results ---- */

static void results_usage(FILE *out)
{
	fputs("usage: batchd results [options] ID\n"
	      "\n"
	      "Writes every task of job ID as a JSON object on a line of its own, in\n"
	      "index order: its state, its result or error, attempts and times (the\n"
	      "lines of GET /api/jobs/ID/results). A large job streams as it is read.\n"
	      "\n"
	      "  --state STATE      only tasks in this state: queued, running,\n"
	      "                     succeeded, failed or cancelled\n"
	      "  --input            add each task's input to its line\n"
	      "  --output FILE      write to FILE, whole or not at all, instead of\n"
	      "                     stdout; a symbolic link's file is written so,\n"
	      "                     the link kept; a FIFO or a device (/dev/stdout)\n"
	      "                     is written to as the lines come\n"
	      "  --url URL          server (default $BATCHD_URL or http://127.0.0.1:8080)\n"
	      "  --token TOKEN      API token (default $BATCHD_TOKEN)\n"
	      "\n"
	      "Exits 0 once every line is written; 1 when the server refuses, or the\n"
	      "answer is cut short (the job was deleted meanwhile); 3 when the server\n"
	      "cannot be reached.\n", out);
}

/* results --output's temporary file while it is being written: a signal
 * that ends the command removes it first, so nothing half-written stays
 * beside the output (timeout(1), Ctrl-C, a closed terminal). */
static char results_tmp[4096];

static void on_results_signal(int sig)
{
	unlink(results_tmp);
	raise(sig);	/* SA_RESETHAND: now as if never caught */
}

static void results_cleanup_on_signals(const char *tmp)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa = { .sa_handler = on_results_signal, .sa_flags = SA_RESETHAND };

	snprintf(results_tmp, sizeof(results_tmp), "%s", tmp);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old;

		/* One the shell made us ignore (a background job's SIGINT) stays so. */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(sigs[i], &sa, NULL);
	}
}

/* Follows path through its symbolic links into out (a relative link from
 * the link's directory): the name of the file path stands for, which need
 * not exist yet. 0, or -1 with errno set (ELOOP for a loop). */
static int follow_links(const char *path, struct buf *out)
{
	struct buf next = BUF_INIT;
	char link[PATH_MAX];
	struct stat st;
	int hops = 0, rc = 0;

	buf_reset(out);
	buf_adds(out, path);
	while (lstat(out->data, &st) == 0 && S_ISLNK(st.st_mode)) {
		const char *slash = strrchr(out->data, '/');
		ssize_t n;

		if (++hops > MAX_LINKS) {
			errno = ELOOP;
			rc = -1;
			break;
		}
		n = readlink(out->data, link, sizeof(link));
		if (n < 0 || n == (ssize_t)sizeof(link)) {
			if (n >= 0)
				errno = ENAMETOOLONG;
			rc = -1;
			break;
		}
		buf_reset(&next);
		if (link[0] != '/' && slash)
			buf_add(&next, out->data, (size_t)(slash - out->data) + 1);
		buf_add(&next, link, (size_t)n);
		buf_reset(out);
		buf_add(out, next.data, next.len);
	}
	buf_release(&next);
	return rc;
}

/*
 * Opens results --output's file for writing. A regular file, or a name
 * not there yet, is written as a temporary file beside it (its name in
 * tmp), to be renamed over target once whole. A symbolic link stands for
 * the file it points at: that is target, the link is kept. Anything else
 * that is there (a FIFO, /dev/null, the terminal /dev/stdout points at)
 * is opened and written as the lines come, tmp left empty: renamed over,
 * it would be replaced by a file, and whoever reads it would get nothing.
 * Returns the stream, or NULL after saying why, with nothing left behind.
 */
static FILE *open_output(const char *output, struct buf *target, struct buf *tmp)
{
	struct stat st, at;
	int there = stat(output, &st) == 0, in_place = there && !S_ISREG(st.st_mode);
	int fd = -1;
	FILE *f = NULL;

	buf_reset(target);
	buf_reset(tmp);
	if (!in_place) {
		if (follow_links(output, target) < 0)
			goto fail;
		/* A link of /proc's (/dev/stdout to a file) may name no file:
		 * "/x (deleted)", "/memfd:y". Then what it opens is written. */
		in_place = there && (stat(target->data, &at) != 0 || at.st_dev != st.st_dev ||
				     at.st_ino != st.st_ino);
	}
	if (in_place) {
		fd = open(output, O_WRONLY | O_TRUNC | O_CLOEXEC);
	} else {
		buf_addf(tmp, "%s.tmp.%ld", target->data, (long)getpid());
		if (tmp->len >= sizeof(results_tmp)) {
			buf_reset(tmp);
			errno = ENAMETOOLONG;
			goto fail;
		}
		results_cleanup_on_signals(tmp->data);
		fd = open(tmp->data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	}
	if (fd < 0 || !(f = fdopen(fd, "w")))
		goto fail;
	return f;
fail:
	fprintf(stderr, "batchd results: cannot write %s: %s\n", output, strerror(errno));
	if (fd >= 0) {
		close(fd);
		if (tmp->len)
			unlink(tmp->data);
	}
	results_tmp[0] = '\0';
	buf_reset(tmp);
	return NULL;
}

int cli_results(int argc, char **argv)
{
	enum { O_URL = 1, O_TOKEN, O_STATE, O_INPUT, O_OUTPUT, O_HELP };
	static const struct option opts[] = {
		{ "url", required_argument, NULL, O_URL },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "state", required_argument, NULL, O_STATE },
		{ "input", no_argument, NULL, O_INPUT },
		{ "output", required_argument, NULL, O_OUTPUT },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct common c;
	const char *state = NULL, *output = NULL;
	struct buf path = BUF_INIT, other = BUF_INIT, target = BUF_INIT, tmp = BUF_INIT;
	struct client *cl;
	FILE *out = stdout;
	long long id;
	long status;
	int opt, input = 0, complete = 0, rc = EXIT_FAILED;

	common_defaults(&c);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case O_URL: c.url = optarg; break;
		case O_TOKEN: c.token = optarg; break;
		case O_STATE: state = optarg; break;
		case O_INPUT: input = 1; break;
		case O_OUTPUT: output = optarg; break;
		case O_HELP: results_usage(stdout); return 0;
		default:
			fprintf(stderr, "batchd results: bad option %s (see batchd results --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if ((id = job_id_arg(argc, argv, "results", 0)) < 0)
		return EXIT_USAGE;
	if (state && !known_state("results", state))
		return EXIT_USAGE;
	cl = client_new(c.url, c.token);
	if (!cl)
		return EXIT_FAILED;
	if (output && !(out = open_output(output, &target, &tmp)))
		goto done;
	buf_addf(&path, "/api/jobs/%lld/results%s%s%s", id, state ? "?state=" : "",
		 state ? state : "", input ? (state ? "&input=true" : "?input=true") : "");
	status = client_get_to(cl, path.data, "application/x-ndjson", out, &other, &complete);
	if (status == CLIENT_NOT_TYPE) {
		fprintf(stderr, "batchd: %s did not answer as batchd does (HTTP 200, %s)\n",
			client_url(cl), client_error(cl));
	} else if (status < 0) {
		fprintf(stderr, "batchd: cannot reach the server: %s\n", client_error(cl));
		rc = EXIT_UNREACHABLE;
	} else if (status != 200) {
		print_error("results", status, &other);
	} else if (!complete) {
		fprintf(stderr, "batchd results: the answer was cut short: %s\n",
			client_error(cl));
	} else if (fflush(out) != 0 || (tmp.len && fsync(fileno(out)) != 0)) {
		fprintf(stderr, "batchd results: cannot write %s: %s\n",
			output ? output : "the output", strerror(errno));
	} else {
		rc = 0;
	}
	if (output) {
		if (fclose(out) != 0 && rc == 0) {
			fprintf(stderr, "batchd results: cannot write %s: %s\n", output,
				strerror(errno));
			rc = EXIT_FAILED;
		}
		if (tmp.len && rc == 0 && rename(tmp.data, target.data) != 0) {
			fprintf(stderr, "batchd results: cannot write %s: %s\n", output,
				strerror(errno));
			rc = EXIT_FAILED;
		}
		if (tmp.len && rc != 0)
			unlink(tmp.data);
		results_tmp[0] = '\0';
	}
done:
	client_free(cl);
	buf_release(&path);
	buf_release(&other);
	buf_release(&target);
	buf_release(&tmp);
	return rc;
}

static void health_usage(FILE *out)
{
	fputs("usage: batchd health [--json] [--url URL]\n"
	      "\n"
	      "Asks a server whether it is healthy (GET /healthz, which needs no\n"
	      "token): exits 0 when it is serving, 1 when it answers otherwise, 3\n"
	      "when it cannot be reached (as once it shuts down: it stops taking\n"
	      "connections at once). Without --url or $BATCHD_URL it asks the port\n"
	      "of $BATCHD_LISTEN on this machine, so a container's health check\n"
	      "follows its configuration.\n", out);
}

/* http://127.0.0.1:PORT for a listen address "HOST:PORT" when HOST means
 * every address (or is empty), else http://HOST:PORT. */
static void url_of_listen(const char *listen, char *out, size_t len)
{
	const char *colon = strrchr(listen, ':');
	size_t hl = colon ? (size_t)(colon - listen) : 0;

	if (!colon)
		snprintf(out, len, "http://127.0.0.1:8080");
	else if (hl == 0 || !strncmp(listen, "0.0.0.0", hl) || !strncmp(listen, "*", hl))
		snprintf(out, len, "http://127.0.0.1%s", colon);
	else if ((hl == 4 && !strncmp(listen, "[::]", hl)) || (hl == 2 && !strncmp(listen, "::", hl)))
		snprintf(out, len, "http://[::1]%s", colon);
	else if (listen[0] != '[' && memchr(listen, ':', hl))
		/* A bare IPv6 address, which serve takes ("::1:8080"): a URL
		 * wants it in brackets. */
		snprintf(out, len, "http://[%.*s]%s", (int)hl, listen, colon);
	else
		snprintf(out, len, "http://%s", listen);
}

int cli_health(int argc, char **argv)
{
	struct common c, defaults;
	struct client *cl;
	struct buf body = BUF_INIT;
	char url[300];
	const char *listen = getenv("BATCHD_LISTEN");
	const char *env_url = getenv("BATCHD_URL");
	long status;
	int rc = parse_common(argc, argv, &c, health_usage, "health");

	if (rc)
		return rc > 0 ? 0 : EXIT_USAGE;
	if (optind != argc) {
		fprintf(stderr, "batchd health: no argument expected, got \"%s\" "
			"(see batchd health --help)\n", argv[optind]);
		return EXIT_USAGE;
	}
	common_defaults(&defaults);
	/* Neither --url nor $BATCHD_URL: follow $BATCHD_LISTEN. */
	if (c.url == defaults.url && (!env_url || !*env_url) && listen && *listen) {
		url_of_listen(listen, url, sizeof(url));
		c.url = url;
	}
	cl = client_new(c.url, NULL);
	if (!cl)
		return EXIT_FAILED;
	status = request(cl, "GET", "/healthz", NULL, 0, NULL, &body);
	if (status < 0) {
		rc = EXIT_UNREACHABLE;
	} else {
		cJSON *doc = cJSON_Parse(body.data);
		const char *state = str(doc, "status");

		if (c.json)
			printf("%s\n", body.data);
		else
			printf("%s: %s (HTTP %ld)\n", c.url, state ? state : "?", status);
		rc = status == 200 && state && !strcmp(state, "ok") ? 0 : EXIT_FAILED;
		cJSON_Delete(doc);
	}
	buf_release(&body);
	client_free(cl);
	return rc;
}
