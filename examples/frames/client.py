#!/usr/bin/env python3
"""Pushes frames through the four-stage pipeline and prints frames per second.

    client.py [--url http://127.0.0.1:8080] [--frames 200] [--runs 2]
    client.py --local [--frames 200]

With --url (the default), every stage runs in batchd, started with
examples/frames/handlers.json: the frames go to the detector as one job,
the detections to the size estimator and the classifier as two jobs that
run side by side, and the frames' results, in windows of WINDOW frames, to
the aggregator. --runs pushes the frames more than once: the first run pays
the stages' start-up in each worker, the next ones find them warm.

With --local, the same stages run one after another in this one process,
set-up included: the baseline.
"""
import argparse
import json
import os
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # leave the examples directory as it is
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frames  # noqa: E402

WINDOW = 20


def call(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def submit(base, handler, inputs):
    return call(base + "/api/jobs", "POST", {"handler": handler, "tasks": inputs})["id"]


def results(base, job):
    """Waits for the job, then returns its tasks' results in order."""
    while True:
        state = call("%s/api/jobs/%d" % (base, job))["state"]
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.01)
    out = []
    while len(out) < call("%s/api/jobs/%d" % (base, job))["progress"]["total"]:
        page = call("%s/api/jobs/%d/tasks?offset=%d&limit=1000" % (base, job, len(out)))
        for t in page["tasks"]:
            if t["state"] != "succeeded":
                sys.exit("job %d task %d %s: %s" % (job, t["index"], t["state"], t["error"]))
            out.append(t["result"])
    return out


def windows(merged):
    return [{"frames": merged[i:i + WINDOW]} for i in range(0, len(merged), WINDOW)]


def through_batchd(base, n):
    detected = results(base, submit(base, "frames.detect", [{"frame": i} for i in range(n)]))
    size_job = submit(base, "frames.size", detected)
    class_job = submit(base, "frames.classify", detected)
    sizes, labels = results(base, size_job), results(base, class_job)
    merged = [dict(d, sizes=s["sizes"], classes=c["classes"])
              for d, s, c in zip(detected, sizes, labels)]
    return results(base, submit(base, "frames.aggregate", windows(merged)))


def in_one_process(n):
    """Returns the reports and the time the set-up took."""
    start = time.monotonic()
    state = {name: setup() for name, (setup, _) in frames.STAGES.items()}
    setup_s = time.monotonic() - start
    merged = []
    for i in range(n):
        d = frames.detect(state["detect"], {"frame": i})
        s = frames.size(state["size"], d)
        c = frames.classify(state["classify"], d)
        merged.append(dict(d, sizes=s["sizes"], classes=c["classes"]))
    return [frames.aggregate(state["aggregate"], w) for w in windows(merged)], setup_s


def summary(reports):
    objects = {c: sum(r["objects"][c] for r in reports) for c in frames.CLASSES}
    return " ".join("%s=%d" % kv for kv in objects.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--local", action="store_true")
    args = ap.parse_args()
    for run in range(1 if args.local else args.runs):
        start = time.monotonic()
        if args.local:
            reports, setup_s = in_one_process(args.frames)
        else:
            reports = through_batchd(args.url.rstrip("/"), args.frames)
        took = time.monotonic() - start
        where = "one process" if args.local else "batchd, run %d" % (run + 1)
        print("%s: %d frames in %.2f s = %.1f frames/s" % (where, args.frames, took,
                                                          args.frames / took))
        if args.local:
            print("  set-up %.2f s, then %.1f frames/s"
                  % (setup_s, args.frames / (took - setup_s)))
        print("  objects: " + summary(reports))


if __name__ == "__main__":
    main()
