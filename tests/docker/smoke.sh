#!/usr/bin/env bash
# Smoke test of the container image, as an operator would use it: build the
# Dockerfile, run it with a volume, a token and a mounted handlers file, the
# port published on 127.0.0.1 (a free one the engine picks), submit jobs over
# HTTP, check the health check, PID 1's duties (signals, reaping orphans),
# stop it gracefully while a task runs, and start it again on the same
# volume to find the jobs there.
#
# Uses podman or docker, whichever can run; where neither can (or no
# debian:bookworm-slim base image can be had) it says why and ends with
# "0 passed, 0 failed, 1 skipped". Every container, volume and image tag it
# makes is removed on exit, even on failure; build layers stay cached.
# Run from anywhere: make docker-test, or make test at its end.
set -u
cd "$(dirname "$0")/../.." || exit 1

passed=0
failed=0
out=
status=
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -gt 1 ] && echo "$2" | sed 's/^/    /' | head -30; return 0; }
summary() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
skip() {
	echo "SKIP: $*"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}

# ---- an engine that runs ---------------------------------------------------
engine=
if command -v podman >/dev/null 2>&1 && timeout 60 podman info >/dev/null 2>&1; then
	engine=podman
elif command -v docker >/dev/null 2>&1 && timeout 60 docker info >/dev/null 2>&1; then
	engine=docker
fi
[ -n "$engine" ] || skip "neither podman nor docker can run here" \
	"(podman: run ../shared/container/base-image.sh as root to install and set it up)"
e() { timeout 120 "$engine" "$@"; }
if ! e image inspect debian:bookworm-slim >/dev/null 2>&1 &&
	! timeout 300 "$engine" pull debian:bookworm-slim >/dev/null 2>&1; then
	skip "$engine runs, but there is no debian:bookworm-slim image and none can be pulled" \
		"(run ../shared/container/base-image.sh as root to make one)"
fi
echo "# engine: $engine ($("$engine" --version 2>/dev/null | head -n 1))"

# ---- names, and their removal ----------------------------------------------
id="$$-$RANDOM"
tag="localhost/batchd-smoke:$id"
volume="batchd-smoke-$id"
c1="batchd-smoke-$id-a"
c2="batchd-smoke-$id-b"
token="smoke-$RANDOM$RANDOM"
tmp=$(mktemp -d /tmp/batchd-smoke-XXXXXX)
cleanup() {
	"$engine" rm -f -t 0 "$c1" "$c2" >/dev/null 2>&1 ||
		"$engine" rm -f "$c1" "$c2" >/dev/null 2>&1
	"$engine" volume rm -f "$volume" >/dev/null 2>&1
	"$engine" rmi "$tag" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- build -----------------------------------------------------------------
build_flags=()
# --format docker keeps HEALTHCHECK. --layers=false keeps no intermediate
# images: with sources that change between runs, cached layers would pile
# up (a few hundred MB a run) and the build takes about as long without.
[ "$engine" = podman ] && build_flags=(--format docker --layers=false)
t0=$(date +%s)
if timeout 900 "$engine" build "${build_flags[@]}" -t "$tag" . >"$tmp/build.log" 2>&1; then
	ok "image builds ($(($(date +%s) - t0)) s)"
else
	not_ok "image builds" "$(tail -n 30 "$tmp/build.log")"
	summary
	exit 1
fi

# A command handler that leaves an orphan behind: sh starts a background
# sleep in a session of its own (what the program leaves in its process
# group is killed as it ends), waits until it is (setsid execs sleep once
# it has left the group) and exits, so the sleep is handed to PID 1.
cat >"$tmp/handlers.json" <<'EOF'
{"handlers": {
  "orphan": {"argv": ["/bin/sh", "-c",
    "cat >/dev/null; setsid sleep 3 </dev/null >/dev/null 2>&1 3>&- & until [ \"$(cat /proc/$!/comm 2>/dev/null)\" = sleep ]; do :; done; echo '{\"spawned\": true}'"]}
}}
EOF
chmod 644 "$tmp/handlers.json"

run_flags=(-d -p 127.0.0.1::8080 -v "$volume:/data"
	-v "$tmp/handlers.json:/etc/batchd/handlers.json:ro"
	-e "BATCHD_TOKEN=$token" -e BATCHD_WORKERS=2)
# Docker runs health checks on a timer: make it quick. (podman has no
# timers here; the test runs the check itself.)
[ "$engine" = docker ] && run_flags+=(--health-interval 1s --health-start-period 1s)

e volume create "$volume" >/dev/null

port=
# Starts container $1 and waits until it answers /healthz; sets $port.
start() {
	local name=$1 deadline
	if ! e run --name "$name" "${run_flags[@]}" "$tag" >"$tmp/run.log" 2>&1; then
		not_ok "container $name starts" "$(cat "$tmp/run.log")"
		return 1
	fi
	port=$(e port "$name" 8080 2>/dev/null | head -n 1 | sed 's/.*://')
	deadline=$(($(date +%s) + 60))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
			ok "container $name serves on 127.0.0.1:$port"
			return 0
		fi
		sleep 0.2
	done
	not_ok "container $name serves /healthz within 60 s" "$(e logs "$name" 2>&1 | tail -n 20)"
	return 1
}

body=
api() { # api METHOD PATH [BODY]: sets $status and $body
	local args=(-sS -X "$1" -H "Authorization: Bearer $token" -o "$tmp/body" -w '%{http_code}')
	[ $# -gt 2 ] && args+=(-H 'Content-Type: application/json' --data "$3")
	status=$(curl "${args[@]}" "http://127.0.0.1:$port$2")
	body=$(cat "$tmp/body" 2>/dev/null)
}

# Waits until job $1 is in state $2; 0 if it got there within 60 s (else
# $body holds the job as last seen).
wait_job() {
	local deadline=$(($(date +%s) + 60))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		api GET "/api/jobs/$1"
		case "$body" in *"\"state\":\"$2\""*) return 0 ;; esac
		sleep 0.2
	done
	return 1
}

job=
submit() { # submit BODY: sets $job (empty unless 201)
	api POST /api/jobs "$1"
	job=
	[ "$status" = 201 ] && job=$(printf '%s' "$body" | sed -n 's/^{"id":\([0-9]*\),.*/\1/p')
}

if ! start "$c1"; then
	summary
	exit 1
fi

# ---- the image and the process ---------------------------------------------
uid=$(e exec "$c1" id -u 2>/dev/null)
[ -n "$uid" ] && [ "$uid" != 0 ] && ok "runs as a non-root user (uid $uid)" || not_ok "runs as a non-root user" "uid: $uid"
comm=$(e exec "$c1" cat /proc/1/comm 2>/dev/null)
[ "$comm" = batchd ] && ok "batchd is PID 1" || not_ok "batchd is PID 1" "PID 1 is $comm"
e logs "$c1" 2>&1 | grep -q 'msg=listening addr=0.0.0.0:8080 db=/data/batchd.db' &&
	ok "listens on 0.0.0.0:8080 inside, database in /data" ||
	not_ok "listens on 0.0.0.0:8080 inside" "$(e logs "$c1" 2>&1 | tail -n 5)"
if e exec "$c1" sh -c 'command -v gcc || command -v make || command -v curl || ls /usr/include/microhttpd.h' >/dev/null 2>&1; then
	not_ok "no build tools or headers in the image" "$(e exec "$c1" sh -c 'command -v gcc make curl; ls /usr/include/microhttpd.h' 2>&1)"
else
	ok "no build tools or headers in the image"
fi

# ---- the API, with the token and the handlers file -------------------------
status=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/jobs")
[ "$status" = 401 ] && ok "the token guards /api" || not_ok "the token guards /api" "HTTP $status"
page=$(curl -fsS "http://127.0.0.1:$port/" 2>/dev/null || true)
case "$page" in
*'<title>batchd'*) ok "the dashboard is served from the binary" ;;
*) not_ok "the dashboard is served from the binary" "$(echo "$page" | head -n 5)" ;;
esac
api GET /api/handlers
case "$body" in
*'"name":"orphan","kind":"command"'*) ok "the mounted handlers file is loaded" ;;
*) not_ok "the mounted handlers file is loaded" "$body" ;;
esac

submit '{"handler": "sleep", "tasks": [{"ms": 50}, {"ms": 50}]}'
job1=$job
if [ -n "$job1" ] && wait_job "$job1" succeeded; then
	ok "a job submitted over HTTP succeeds"
else
	not_ok "a job submitted over HTTP succeeds" "HTTP $status: $body"
fi
api GET /metrics
metrics=$body
echo "$metrics" | grep -qx 'batchd_tasks_total{handler="sleep",state="succeeded"} 2' &&
	ok "/metrics counts the tasks" || not_ok "/metrics counts the tasks" "$(echo "$metrics" | grep tasks_total)"

# ---- health check ----------------------------------------------------------
if [ "$engine" = podman ]; then
	if out=$(e healthcheck run "$c1" 2>&1); then
		ok "HEALTHCHECK passes (podman healthcheck run)"
	else
		not_ok "HEALTHCHECK passes" "$out"
	fi
else
	deadline=$(($(date +%s) + 60))
	health=
	while [ "$(date +%s)" -lt "$deadline" ]; do
		health=$(e inspect --format '{{.State.Health.Status}}' "$c1" 2>&1)
		[ "$health" = healthy ] && break
		sleep 0.5
	done
	[ "$health" = healthy ] && ok "HEALTHCHECK passes" || not_ok "HEALTHCHECK passes" "$health"
fi

# ---- PID 1 reaps orphans ---------------------------------------------------
procs() { e exec "$c1" sh -c 'cat /proc/[0-9]*/stat 2>/dev/null' 2>/dev/null; }
submit '{"handler": "orphan", "tasks": [{}]}'
job2=$job
if [ -n "$job2" ] && wait_job "$job2" succeeded; then
	ok "a command handler leaving an orphan succeeds"
else
	not_ok "a command handler leaving an orphan succeeds" "HTTP $status: $body"
fi
# Its sleep is adopted by PID 1 (the 4th field of stat is the parent)...
adopted=$(procs | awk '$2 == "(sleep)" && $4 == 1' | wc -l)
[ "$adopted" -ge 1 ] && ok "the orphan is adopted by PID 1" ||
	not_ok "the orphan is adopted by PID 1" "$(procs | awk '{print $1, $2, $3, $4}')"
# ...and once it exits, reaped: no zombie is left.
deadline=$(($(date +%s) + 30))
while [ "$(date +%s)" -lt "$deadline" ] && procs | grep -q '(sleep)'; do
	sleep 0.2
done
zombies=$(procs | awk '$3 == "Z"')
if procs | grep -q '(sleep)' || [ -n "$zombies" ]; then
	not_ok "no zombie in the container" "$(procs | awk '{print $1, $2, $3, $4}')"
else
	ok "no zombie in the container"
fi

# ---- graceful stop while a task runs ---------------------------------------
submit '{"handler": "sleep", "tasks": [{"ms": 2000}]}'
job3=$job
[ -n "$job3" ] && wait_job "$job3" running
t0=$(date +%s)
e stop "$c1" >/dev/null 2>&1	# SIGTERM, then SIGKILL after 10 s
took=$(($(date +%s) - t0))
code=$(e inspect --format '{{.State.ExitCode}}' "$c1" 2>/dev/null)
if [ "$code" = 0 ] && [ "$took" -lt 10 ]; then
	ok "docker stop: exit 0 within the grace period (${took} s)"
else
	not_ok "docker stop: exit 0 within the grace period" "exit code $code after $took s"
fi
logs=$(e logs "$c1" 2>&1)
echo "$logs" | grep -q 'msg="shutting down" signal=SIGTERM' && echo "$logs" | grep -q 'msg=stopped' &&
	ok "the log shows the graceful shutdown" || not_ok "the log shows the graceful shutdown" "$(echo "$logs" | tail -n 8)"

# ---- again, on the same volume ---------------------------------------------
e rm "$c1" >/dev/null 2>&1
if start "$c2"; then
	for j in "$job1" "$job2" "$job3"; do
		if [ -n "$j" ] && wait_job "$j" succeeded; then
			ok "job $j is still there, succeeded, after a restart"
		else
			not_ok "job '$j' is still there after a restart" "HTTP $status: $body"
		fi
	done
	e stop "$c2" >/dev/null 2>&1
	code=$(e inspect --format '{{.State.ExitCode}}' "$c2" 2>/dev/null)
	[ "$code" = 0 ] && ok "second stop: exit 0" || not_ok "second stop: exit 0" "exit code $code"
fi

summary
