#!/usr/bin/python3
"""batchd's benchmark: batchd against the tools people use today.

    make bench                      # builds what it needs, then runs this
    /usr/bin/python3 bench/run.py [--runs 3] [--only noop,exec,...] [--quick]
                                  [--out docs/PERFORMANCE.md]

Drives the release build ./batchd end to end, as a user would: a job is
submitted over HTTP and timed until the API reports it finished. Every peer
runs in the same process of measurement, on the same machine, with the same
number of workers. Each figure is the median of --runs runs (at least 3).

Prints one markdown table and writes it, with the machine's CPU, core count,
load and the date, between the markers in docs/PERFORMANCE.md (the prose
around them is kept). Raw figures go to build/bench/results.json.

Only loopback traffic; every loop is bounded by a count and a deadline;
every server it starts (batchd, nginx) it stops.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHD = os.path.join(ROOT, "batchd")
BUILD = os.path.join(ROOT, "build", "bench")
SPAWN = os.path.join(BUILD, "spawn")
STAMP = os.path.join(BUILD, "stamp.so")
RECIPES = os.path.join(ROOT, "bench", "recipes.py")
PYTHON = "/usr/bin/python3"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"     # sbin is not on every PATH
WORKERS = 2
POLL_S = 0.002          # a job is polled until it finishes at least this often...
POLL_MAX_S = 0.010      # ...and at most this often
JOB_DEADLINE_S = 600    # no single job may take longer than this
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs)


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def noop_body(handler, n):
    return (b'{"handler":"' + handler.encode() + b'","tasks":['
            + b",".join([b"null"] * n) + b"]}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- batchd ----

class Batchd:
    """A batchd server of our own: a fresh database in a temporary
    directory, port 0, stopped by stop()."""

    def __init__(self, tmp, name, workers=WORKERS, handlers=None):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.db = os.path.join(self.dir, "b.db")
        self.logpath = os.path.join(self.dir, "batchd.log")
        cmd = [BATCHD, "serve", "--listen", "127.0.0.1:0", "--db", self.db,
               "--workers", str(workers)]
        if handlers:
            hpath = os.path.join(self.dir, "handlers.json")
            with open(hpath, "w") as f:
                json.dump({"handlers": handlers}, f)
            cmd += ["--handlers", hpath]
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        self.port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(self.logpath) as f:
                m = re.search(r"msg=listening addr=127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        if not self.port:
            self.stop()
            with open(self.logpath) as f:
                raise RuntimeError("batchd did not start:\n" + f.read())
        self.conn = None

    def request(self, method, path, body=None):
        """One request on a kept-alive connection: (status, body bytes)."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body,
                                  headers={"Content-Type": "application/json"} if body else {})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def submit(self, body):
        status, data = self.request("POST", "/api/jobs", body)
        if status != 201:
            raise RuntimeError("submit answered %d: %s" % (status, data[:300]))
        return json.loads(data)["id"]

    def wait(self, job, deadline_s=JOB_DEADLINE_S):
        """Polls the job until it is final; returns its state. The poll
        interval is a quarter of the job's ETA as the API gives it, from 2
        to 10 ms: a long job is not slowed by a needless stream of polls,
        and its end is still seen within ~2 ms."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            status, data = self.request("GET", "/api/jobs/%d" % job)
            if status != 200:
                raise RuntimeError("GET job answered %d" % status)
            j = json.loads(data)
            if j["state"] in ("succeeded", "failed", "cancelled"):
                return j["state"]
            eta = j["progress"].get("eta_s")
            time.sleep(POLL_S if eta is None else min(POLL_MAX_S, max(POLL_S, eta / 4)))
        raise RuntimeError("job %d did not finish in %d s" % (job, deadline_s))

    def run_job(self, body, n):
        """Submits a job and waits for it: {wall, accepted}, timed from
        just before the POST is sent."""
        t0 = time.perf_counter()
        job = self.submit(body)
        t1 = time.perf_counter()
        state = self.wait(job)
        t2 = time.perf_counter()
        if state != "succeeded":
            raise RuntimeError("job %d ended %s" % (job, state))
        self.verify(job, n)
        return {"wall": t2 - t0, "accepted": t1 - t0, "job": job}

    def verify(self, job, n):
        """Checks, from another connection to the database, that every task
        of the job is committed as succeeded with its finish time: what a
        restart would find."""
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=30)
        try:
            (done,) = db.execute(
                "SELECT count(*) FROM tasks WHERE job_id = ? AND state = 2"
                " AND finished_at IS NOT NULL", (job,)).fetchone()
        finally:
            db.close()
        if done != n:
            raise RuntimeError("job %d: %d of %d tasks committed as succeeded"
                               % (job, done, n))

    def export(self, job, n):
        """Streams every result of the job (GET /api/jobs/{id}/results, as
        batchd results does) on a fresh connection: its wall seconds, from
        the request to the last line."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            t0 = time.perf_counter()
            conn.request("GET", "/api/jobs/%d/results" % job)
            r = conn.getresponse()
            if r.status != 200:
                raise RuntimeError("results answered %d" % r.status)
            lines = 0
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                lines += chunk.count(b"\n")
            wall = time.perf_counter() - t0
        finally:
            conn.close()
        if lines != n:
            raise RuntimeError("results of job %d: %d lines, not %d" % (job, lines, n))
        return wall

    def status(self):
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
        return out

    def stop(self):
        if self.conn:
            self.conn.close()
            self.conn = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


# ---- peers ----

def recipe(name, workload, n, ms, workers, chunksize=None):
    cmd = [PYTHON, RECIPES, name, workload, str(n), str(ms), str(workers)]
    if chunksize:
        cmd.append(str(chunksize))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["done"] != n:
        raise RuntimeError("%s did %d of %d" % (name, r["done"], n))
    return r["wall"]


def timed(cmd, stdin_bytes=None, shell=False):
    t0 = time.perf_counter()
    subprocess.run(cmd, input=stdin_bytes, check=True, shell=shell, timeout=900,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk(url, seconds, connections=64, threads=2):
    """Runs wrk; returns {rps, p99, p50, errors}."""
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections,
                          "-d%ds" % seconds, "--latency", "--timeout", "10s", url],
                         check=True, capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "errors": 0}
    for p in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, out, re.M)
        r["p" + p] = float(m.group(1)) * WRK_UNITS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] += sum(int(x) for x in m.groups())
    return r


class Nginx:
    """nginx serving one static file, from its own config in a temporary
    directory, in the foreground, on a free loopback port."""

    def __init__(self, tmp, size):
        self.dir = os.path.join(tmp, "nginx")
        www = os.path.join(self.dir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "progress.json"), "wb") as f:
            f.write(b"{" + b" " * max(0, size - 2) + b"}")
        for attempt in range(5):
            self.port = free_port()
            conf = os.path.join(self.dir, "nginx.conf")
            d = self.dir
            with open(conf, "w") as f:
                f.write("""
worker_processes 1;
daemon off;
master_process off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    default_type application/json;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:%(port)d;
        root %(d)s/www;
    }
}
""" % {"d": d, "port": self.port})
            self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", d],
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    return
                except OSError:
                    time.sleep(0.02)
            self.stop()
        raise RuntimeError("nginx did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- workloads ----

class Bench:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.runs = args.runs
        self.rows = []
        self.raw = {}

    def row(self, **kw):
        self.rows.append(kw)
        log("  " + " | ".join(str(v) for v in kw.values()))

    def n(self, full, quick):
        return quick if self.args.quick else full

    def interleave(self, contenders):
        """Runs every contender once per round, --runs rounds, so that a
        change in the machine's load touches all of them alike. contenders:
        [(name, fn)] where fn() returns a wall time; returns {name: walls}."""
        walls = {name: [] for name, _ in contenders}
        for _ in range(self.runs):
            for name, fn in contenders:
                walls[name].append(fn())
        return walls

    # noop: batchd against Pool.imap_unordered and apply_async with tqdm.
    def noop(self):
        n = self.n(100000, 20000)
        log("noop, %d tasks" % n)
        sweep = {c: recipe("imap", "noop", n, 0, WORKERS, c)
                 for c in (10, 100, 1000, 10000)}
        best = min(sweep, key=sweep.get)
        names = ["Pool(2).imap_unordered + tqdm, chunksize 1",
                 "Pool(2).imap_unordered + tqdm, chunksize %d (best of 10..10000)" % best,
                 "Pool(2).apply_async + tqdm callback"]
        sv = Batchd(self.tmp, "noop")
        body = noop_body("noop", n)
        try:
            sv.run_job(noop_body("noop", 1000), 1000)   # warm up
            w = self.interleave([
                ("batchd", lambda: sv.run_job(body, n)["wall"]),
                (names[0], lambda: recipe("imap", "noop", n, 0, WORKERS, 1)),
                (names[1], lambda: recipe("imap", "noop", n, 0, WORKERS, best)),
                (names[2], lambda: recipe("apply", "noop", n, 0, WORKERS)),
            ])
        finally:
            sv.stop()
        b = median(w["batchd"])
        self.raw["noop"] = dict(w, chunksize_sweep=sweep)
        self.row(workload="noop", n=n, tool="batchd", wall=b, rate=n / b,
                 ratio="", target="≥ 250,000 tasks/s, all committed",
                 met=n / b >= 250000)
        for name in names:
            m = median(w[name])
            self.row(workload="noop", n=n, tool=name, wall=m, rate=n / m,
                     ratio="batchd %s" % times(m / b), target="", met=None)

    # sleep and cpu: wall time against the ideal N * t / workers.
    def timed_tasks(self, workload, n, ms, workers):
        ideal = n * ms / 1000.0 / workers
        label = "%s %g ms" % (workload, ms) + (", %d workers" % workers
                                                if workers != WORKERS else "")
        log("%s, %d tasks" % (label, n))
        chunk = max(1, -(-n // (4 * workers)))      # what Pool.map would pick
        names = ["Pool(%d).imap_unordered + tqdm, chunksize 1" % workers,
                 "Pool(%d).imap_unordered + tqdm, chunksize %d (Pool.map's)" % (workers, chunk),
                 "Pool(%d).apply_async + tqdm callback" % workers]
        sv = Batchd(self.tmp, "%s-%d" % (workload, workers), workers=workers)
        body = json.dumps({"handler": workload,
                           "tasks": [{"ms": ms}] * n}).encode()
        try:
            sv.run_job(json.dumps({"handler": workload,
                                   "tasks": [{"ms": 1}] * (workers * 2)}).encode(),
                       workers * 2)
            w = self.interleave([
                ("batchd", lambda: sv.run_job(body, n)["wall"]),
                (names[0], lambda: recipe("imap", workload, n, ms, workers, 1)),
                (names[1], lambda: recipe("imap", workload, n, ms, workers, chunk)),
                (names[2], lambda: recipe("apply", workload, n, ms, workers)),
            ])
        finally:
            sv.stop()
        b = median(w["batchd"])
        key = label
        self.raw[key] = dict(w, ideal=ideal)
        best = min(median(w[name]) for name in names)
        floor = ""
        if workload == "sleep":
            # What one sleep of that length takes on this machine, alone:
            # the timer's own lateness is in every task of every tool.
            d = sleep_floor(ms / 1000.0)
            self.raw[key]["one_sleep_s"] = d
            least = -(-n // workers) * d
            self.raw[key]["least_s"] = least
            floor = ("; one %g ms sleep alone takes %.3f ms here (%+.1f%%), so %d rounds"
                     " of them take %.3f s (%.3f× ideal)" % (
                         ms, d * 1000, 100 * (d * 1000 / ms - 1), -(-n // workers),
                         least, least / ideal))
        self.row(workload=label, n=n, tool="batchd", wall=b, rate=n / b,
                 ratio="%.3f× ideal (%.3f s)%s" % (b / ideal, ideal, floor),
                 target="≤ 1.02× ideal, ≤ best Python",
                 met=b <= 1.02 * ideal and b <= best)
        for name in names:
            m = median(w[name])
            self.row(workload=label, n=n, tool=name, wall=m, rate=n / m,
                     ratio="%.3f× ideal; batchd %s" % (m / ideal, times(m / b)),
                     target="", met=None)

    def sleep(self):
        self.timed_tasks("sleep", self.n(1000, 200), 10, WORKERS)

    def cpu(self):
        self.timed_tasks("cpu", self.n(500, 100), 20, WORKERS)

    def sleep64(self):
        self.timed_tasks("sleep", self.n(1000, 200), 10, 64)

    # exec: a command handler against GNU parallel, xargs and raw posix_spawn.
    def exec(self):
        n = self.n(5000, 1000)
        log("exec /bin/true, %d tasks" % n)
        args = "\n".join(str(i) for i in range(n)).encode() + b"\n"

        def raw():
            out = subprocess.run([SPAWN, str(n), str(WORKERS), "/bin/true"], check=True,
                                 capture_output=True, text=True, timeout=600).stdout
            return float(out.split()[1])

        names = ["GNU parallel -j2 --bar", "xargs -P2 -n1",
                 "raw posix_spawn + waitpid, 2 spawners (bench/spawn.c)"]
        sv = Batchd(self.tmp, "exec", handlers={"true": {"argv": ["/bin/true"]}})
        body = noop_body("true", n)
        try:
            sv.run_job(noop_body("true", 100), 100)
            w = self.interleave([
                ("batchd", lambda: sv.run_job(body, n)["wall"]),
                (names[2], raw),
                (names[0], lambda: timed(["parallel", "--will-cite", "-j%d" % WORKERS,
                                          "--bar", "/bin/true"], args)),
                (names[1], lambda: timed(["xargs", "-P%d" % WORKERS, "-n1", "/bin/true"],
                                         args)),
            ])
        finally:
            sv.stop()
        b = median(w["batchd"])
        r, p = median(w[names[2]]), median(w[names[0]])
        self.raw["exec"] = w
        self.row(workload="exec /bin/true", n=n, tool="batchd (command handler)", wall=b,
                 rate=n / b, ratio="%.0f%% of raw spawn; %.1f× parallel" % (100 * r / b, p / b),
                 target="≥ 90% of raw spawn, ≥ 8× parallel",
                 met=r / b >= 0.9 and p / b >= 8)
        for name in names:
            m = median(w[name])
            self.row(workload="exec /bin/true", n=n, tool=name, wall=m, rate=n / m,
                     ratio="batchd %s" % times(m / b), target="", met=None)

    # API under load: wrk on two endpoints while 100,000-task jobs run.
    def job_batch(self, sv, body, k):
        """Queues k noop jobs behind a gate (two 1.5 s sleep tasks of a
        higher priority, one per worker), so that they run back to back
        and none of them runs while another is being submitted. Returns
        their ids once the first has started."""
        gate = sv.submit(b'{"handler":"sleep","priority":1,'
                         b'"tasks":[{"ms":1500},{"ms":1500}]}')
        ids = [sv.submit(body) for _ in range(k)]
        state = sv.wait(gate)
        if state != "succeeded":
            raise RuntimeError("gate job ended %s" % state)
        return ids

    def run_times(self, sv, ids):
        """Each job's own run time, first task started to last finished,
        from the API (ms resolution): [(started, finished)] in epoch s."""
        out = []
        for job in ids:
            sv.wait(job)
            j = json.loads(sv.request("GET", "/api/jobs/%d" % job)[1])
            out.append((iso_s(j["started_at"]), iso_s(j["finished_at"])))
        return out

    def api(self):
        n = self.n(100000, 20000)
        secs = 2
        k = 8 if not self.args.quick else 6
        log("API under load, %d-task jobs, wrk %d s" % (n, secs))
        sv = Batchd(self.tmp, "api")
        body = noop_body("noop", n)
        res = {}
        ng = None
        try:
            sv.run_job(noop_body("noop", 1000), 1000)
            alone = [f - s for s, f in self.run_times(sv, self.job_batch(sv, body, 3))]
            # The size of /api/progress while a job runs: nginx serves a
            # file of that size.
            job = sv.submit(body)
            size = len(sv.request("GET", "/api/progress")[1])
            sv.wait(job)
            ng = Nginx(self.tmp, size)
            # nginx alone, on an otherwise idle machine: the rate to match.
            nstats = [wrk("http://127.0.0.1:%d/progress.json" % ng.port, secs)
                      for _ in range(self.runs)]
            # The last series is the control: wrk loads nginx, not batchd,
            # while the jobs run. It shows what sharing 2 cores with wrk
            # costs the job by itself.
            for path in ("/api/progress", "/api/jobs/{id}", "nginx"):
                loaded, stats = [], []
                for _ in range(self.runs):
                    ids = self.job_batch(sv, body, k)
                    # /api/jobs/{id}: the last job of the batch, live in
                    # the scheduler (queued, then running) all along.
                    if path == "nginx":
                        url = "http://127.0.0.1:%d/progress.json" % ng.port
                    else:
                        url = "http://127.0.0.1:%d%s" % (
                            sv.port, path.replace("{id}", str(ids[-1])))
                    w0 = time.time()
                    out = wrk(url, secs)
                    w1 = time.time()
                    if out["errors"]:
                        raise RuntimeError("wrk saw %d errors on %s" % (out["errors"], path))
                    stats.append(out)
                    # Only the jobs that ran wholly under wrk count.
                    loaded += [f - s for s, f in self.run_times(sv, ids)
                               if s >= w0 and f <= w1]
                    for job in ids:
                        sv.verify(job, n)
                res[path] = {"loaded": loaded, "wrk": stats}
        finally:
            sv.stop()
            if ng:
                ng.stop()
        nrps = median([s["rps"] for s in nstats])
        self.raw["api"] = {"alone": alone, "body_bytes": size, "nginx": nstats, **res}
        a = median(alone)
        for path, r in res.items():
            rps = median([s["rps"] for s in r["wrk"]])
            p99 = median([s["p99"] for s in r["wrk"]])
            ld = median(r["loaded"]) if r["loaded"] else float("nan")
            slow = ld / a - 1
            if path == "nginx":
                self.row(workload="API static file (%d B), while the jobs run" % size, n=n,
                         tool="nginx (1 worker), wrk -c64", wall="",
                         rate="%s req/s, p99 %.2f ms" % (fmt_int(rps), p99 * 1000),
                         ratio="control: batchd's job run %+.0f%% (%.3f s vs %.3f s alone)"
                         % (100 * slow, ld, a), target="", met=None)
                continue
            ok = p99 < 0.010 and slow <= 0.10
            if path == "/api/progress":
                ok = ok and rps >= nrps / 2
            self.row(workload="API GET %s (%d B)" % (path, size) if path == "/api/progress"
                     else "API GET %s" % path, n=n, tool="batchd, wrk -c64",
                     wall="", rate="%s req/s, p99 %.2f ms" % (fmt_int(rps), p99 * 1000),
                     ratio="%.2f× nginx alone; job run %+.0f%% (%.3f s vs %.3f s alone)"
                     % (rps / nrps, 100 * slow, ld, a),
                     target=("≥ 0.5× nginx, " if path == "/api/progress" else "")
                     + "p99 < 10 ms, job ≤ +10%",
                     met=ok)
        self.row(workload="API static file (%d B)" % size, n="", tool="nginx (1 worker), wrk -c64",
                 wall="", rate="%s req/s, p99 %.2f ms"
                 % (fmt_int(nrps), median([s["p99"] for s in nstats]) * 1000),
                 ratio="alone", target="", met=None)

    # Scale: one job of 1,000,000 noop tasks.
    def scale(self):
        n = self.n(1000000, 100000)
        log("scale, %d tasks" % n)
        body = noop_body("noop", n)
        runs = []
        for i in range(self.runs):
            sv = Batchd(self.tmp, "scale-%d" % i)
            try:
                r = sv.run_job(body, n)
                time.sleep(0.2)
                st = sv.status()
                r["peak_rss"] = st["VmHWM"]
                r["rss_done"] = st["VmRSS"]
                r["export"] = sv.export(r["job"], n)
            finally:
                sv.stop()
            size = sum(os.path.getsize(sv.db + s) for s in ("", "-wal")
                       if os.path.exists(sv.db + s))
            r["db_bytes_per_task"] = size / n
            runs.append(r)
        self.raw["scale"] = runs
        acc = median([r["accepted"] for r in runs])
        wall = median([r["wall"] for r in runs])
        peak = median([r["peak_rss"] for r in runs])
        done = median([r["rss_done"] for r in runs])
        bpt = median([r["db_bytes_per_task"] for r in runs])
        self.row(workload="scale: one job of noop", n=n, tool="batchd", wall=wall,
                 rate=n / wall,
                 ratio="201 in %.2f s; RSS peak %.0f MiB, done %.0f MiB; %.0f B/task in the db"
                 % (acc, peak / 2**20, done / 2**20, bpt),
                 target="201 < 5 s; RSS < 256 MiB peak, < 64 MiB done; < 150 B/task",
                 met=acc < 5 and peak < 256 * 2**20 and done < 64 * 2**20 and bpt < 150)
        exp = median([r["export"] for r in runs])
        self.row(workload="scale: its results, streamed (GET /api/jobs/{id}/results)", n=n,
                 tool="batchd", wall=exp, rate=n / exp, ratio="", target="", met=None)

    # Latency: from the POST to the task running, on an idle server.
    def latency(self):
        n = self.n(1000, 200)
        log("latency, %d one-task jobs" % n)
        sv = Batchd(self.tmp, "latency", handlers={"stamp": {"plugin": STAMP}})
        body = b'{"handler":"stamp","tasks":[null]}'
        lats, acks = [], []
        try:
            for i in range(n + 20):
                t_send = time.time_ns()
                t0 = time.perf_counter()
                job = sv.submit(body)
                ack = time.perf_counter() - t0
                time.sleep(0.002)   # let it run before the first poll
                deadline = time.monotonic() + 30
                while True:
                    status, data = sv.request("GET", "/api/jobs/%d/tasks/0" % job)
                    t = json.loads(data)
                    if t["state"] == "succeeded":
                        break
                    if t["state"] == "failed" or time.monotonic() > deadline:
                        raise RuntimeError("stamp task: %s" % t)
                    time.sleep(0.001)
                if i >= 20:     # the first ones warm up the plugin and caches
                    lats.append((t["result"]["t_ns"] - t_send) / 1e9)
                    acks.append(ack)
        finally:
            sv.stop()
        self.raw["latency"] = {"post_to_running": lats, "post_to_201": acks}
        p50, p99 = pct(lats, 50), pct(lats, 99)
        self.row(workload="latency: POST to task running", n=n, tool="batchd (idle)", wall="",
                 rate="p50 %.3f ms, p99 %.3f ms" % (p50 * 1e3, p99 * 1e3),
                 ratio="POST→201 p50 %.3f ms, p99 %.3f ms"
                 % (pct(acks, 50) * 1e3, pct(acks, 99) * 1e3),
                 target="p50 < 1 ms, p99 < 5 ms", met=p50 < 0.001 and p99 < 0.005)


def iso_s(t):
    """An API time (RFC 3339, UTC, ms) in epoch seconds."""
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def sleep_floor(secs, count=200):
    """The median time one time.sleep(secs) takes (clock_nanosleep)."""
    took = []
    for _ in range(count):
        t0 = time.perf_counter()
        time.sleep(secs)
        took.append(time.perf_counter() - t0)
    return median(took)


def times(x):
    return "%.1f× faster" % x if x >= 1 else "%.2f× (slower)" % x


def fmt_int(x):
    return "{:,.0f}".format(x)


def cell(v, kind):
    if v == "" or v is None:
        return ""
    if kind == "wall":
        return "%.3f" % v
    if kind == "rate":
        return fmt_int(v) if isinstance(v, float) else str(v)
    if kind == "met":
        return "met" if v else "**missed**"
    return str(v)


def table(rows):
    head = ["workload", "N", "run by", "wall s", "tasks/s", "compared", "target", ""]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        n = r["n"]
        out.append("| " + " | ".join([
            r["workload"], fmt_int(n) if isinstance(n, int) else str(n), r["tool"],
            cell(r["wall"], "wall"), cell(r["rate"], "rate"), cell(r["ratio"], ""),
            r["target"], cell(r["met"], "met")]) + " |")
    return "\n".join(out)


def machine():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return model, os.cpu_count()


def tool_versions():
    v = {}
    for name, cmd in (("python3", [PYTHON, "-c", "import sys, tqdm; print(sys.version.split()[0], 'tqdm', tqdm.__version__)"]),
                      ("parallel", ["parallel", "--version"]),
                      ("nginx", [NGINX, "-v"]),
                      ("wrk", ["wrk", "-v"]),
                      ("batchd", [BATCHD, "version"])):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            v[name] = ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            v[name] = "?"
    return v


def write_doc(path, text):
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# batchd performance\n\n%s\n%s\n" % (BEGIN, END)
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN) + len(BEGIN)] + "\n" + text + "\n" + doc[doc.index(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n%s\n%s\n%s\n" % (BEGIN, text, END)
    with open(path, "w") as f:
        f.write(doc)


ALL = ("noop", "sleep", "cpu", "sleep64", "exec", "api", "scale", "latency")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median; at least 3)")
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated: " + ",".join(ALL))
    ap.add_argument("--quick", action="store_true",
                    help="smaller N, to try the harness; figures not comparable")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"),
                    help="the document the table goes into ('-' for none)")
    args = ap.parse_args()
    if args.runs < 3 and not args.quick:
        ap.error("--runs must be at least 3 (each figure is a median)")
    only = [w for w in args.only.split(",") if w]
    for w in only:
        if w not in ALL:
            ap.error("unknown workload %s" % w)
    for f in (BATCHD, SPAWN, STAMP):
        if not os.path.exists(f):
            sys.exit("bench: %s is missing; run `make bench`" % f)

    os.makedirs(BUILD, exist_ok=True)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    log("load average before: %.2f %.2f %.2f" % load_before)
    failed = []
    with tempfile.TemporaryDirectory(prefix="batchd-bench-") as tmp:
        b = Bench(args, tmp)
        for w in only:
            # One workload that breaks (a peer missing, a timeout) is a row
            # that says so; the others are still measured.
            try:
                getattr(b, w)()
            except Exception as e:      # noqa: BLE001 - reported, then re-raised at exit
                log("%s failed:\n%s" % (w, traceback.format_exc()))
                failed.append(w)
                b.row(workload=w, n="", tool="", wall="", rate="",
                      ratio="**error**: %s" % str(e).splitlines()[0][:200], target="",
                      met=False)
    load_after = os.getloadavg()
    took = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()

    model, cores = machine()
    versions = tool_versions()
    text = "\n".join([
        "Measured %s UTC on %s, %d cores; load average %.2f before, %.2f after; "
        "%d runs per figure (median); %s%s." % (
            started.strftime("%Y-%m-%d %H:%M"), model, cores, load_before[0], load_after[0],
            args.runs, "took %.0f s" % took, " — **--quick: smaller N, not comparable**"
            if args.quick else ""),
        "",
        table(b.rows),
        "",
        "Versions: " + "; ".join("%s: %s" % kv for kv in versions.items()) + ".",
    ])
    print(text)
    with open(os.path.join(BUILD, "results.json"), "w") as f:
        json.dump({"started": started.isoformat(), "load": [load_before, load_after],
                   "cpu": model, "cores": cores, "versions": versions, "runs": args.runs,
                   "quick": args.quick, "rows": b.rows, "raw": b.raw}, f, indent=1,
                  default=str)
    if args.out != "-":
        write_doc(args.out, text)
        log("written to %s" % os.path.relpath(args.out, ROOT))
    if failed:
        sys.exit("bench: failed: %s" % ", ".join(failed))


if __name__ == "__main__":
    main()
