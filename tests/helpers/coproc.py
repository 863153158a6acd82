#!/usr/bin/env python3
"""A persistent handler for the tests: it does what each task's input asks.

Environment (from the handlers file):
  STARTS     a file to which it appends its pid as it starts
  STARTUP_S  seconds of set-up before it is ready (default 0)
  READY      "0": no {"ready": true} line (default: one, after the set-up);
             "stop": {"ready": true, "stop": true}, and a stop line ends the
             task it names with an error "stopped" (it says so on stderr);
             "deaf": the same ready line, but it never reads a stop line
             during a task; text starting with "{": that line as it is;
             "hex:" then hex digits: those bytes, then a newline
  NEEDS      a path: the set-up fails (stderr, exit 1) unless it exists

Input {"do": ...}:
  "echo"      (also a missing "do") result {"input", "pid", "task", "served"}
  "progress"  a progress line (p, message), then waits for the file "until"
  "tree"      starts a child (sleep 600), appends its own pid and the
              child's to the file "pids", then waits for the file "until"
  "error"     an error line with "message"
  "print"     writes "text" as a line on stdout (or the bytes "hex" spells, then
              a newline), then waits for the next task
  "crash"     writes "stderr" on stderr, then dies by SIGSEGV
  "exit"      writes "stderr" on stderr, then exits with "code", no result
  "answer_exit"  a result, then exits (after "after_s" seconds, without
              reading stdin meanwhile; by SIGSEGV with "crash": true)
  "answer_twice" a result, then a stray line while it has no task
  "sleep"     sleeps "s" seconds, then a result
  "stderr"    writes each string of "parts" on stderr as it is, 0.3 s apart
              (each its own read for batchd), then a result
"""
import json
import os
import select
import signal
import subprocess
import sys
import time

out = sys.stdout
sys.stdout = sys.stderr  # a stray print() goes to the log, not the protocol


def send(doc):
    out.write(json.dumps(doc) + "\n")
    out.flush()


if os.environ.get("STARTS"):
    with open(os.environ["STARTS"], "a") as f:
        f.write("%d\n" % os.getpid())
time.sleep(float(os.environ.get("STARTUP_S", "0")))
needs = os.environ.get("NEEDS")
if needs and not os.path.exists(needs):
    print("cannot load model: %s is missing" % os.path.basename(needs))
    sys.exit(1)
ready = os.environ.get("READY", "1")
if ready == "1":
    send({"ready": True})
elif ready in ("stop", "deaf"):
    send({"ready": True, "stop": True})
elif ready.startswith("{"):
    out.write(ready + "\n")
    out.flush()
elif ready.startswith("hex:"):
    out.buffer.write(bytes.fromhex(ready[4:]) + b"\n")
    out.flush()

pending = b""


def read_line(timeout=None):
    """The next line on stdin, or None at its end, or "" after timeout s."""
    global pending
    while b"\n" not in pending:
        if timeout is not None and not select.select([0], [], [], timeout)[0]:
            return ""
        chunk = os.read(0, 65536)
        if not chunk:
            return None
        pending += chunk
    line, pending = pending.split(b"\n", 1)
    return line.decode()


def wait_for(path, req, s=None):
    """Waits for the file path to exist (or for s seconds); True when a
    stop line for this task came first (READY=stop only)."""
    end = None if s is None else time.monotonic() + s
    while not (path and os.path.exists(path)):
        if end is not None and time.monotonic() >= end:
            return False
        if ready != "stop":
            time.sleep(0.01)
            continue
        line = read_line(0.01)
        if line:
            stop = json.loads(line)
            if stop.get("stop") == req["task"] and stop.get("job") == req["job"]:
                print("stopping task %d of job %d" % (stop["stop"], stop["job"]),
                      flush=True)
                return True
    return False


served = 0
while True:
    line = read_line()
    if line is None:
        break
    if not line.strip():
        continue
    req = json.loads(line)
    if "stop" in req:
        continue  # a stop for a task that has ended: nothing to do
    x = req["input"]
    do = x.get("do", "echo") if isinstance(x, dict) else "echo"
    served += 1
    stopped = False
    if do == "progress":
        send({"progress": x["p"], "message": x["message"]})
        stopped = wait_for(x["until"], req)
    elif do == "tree":
        child = subprocess.Popen(["sleep", "600"])
        with open(x["pids"], "a") as f:
            f.write("%d\n%d\n" % (os.getpid(), child.pid))
        stopped = wait_for(x["until"], req)
    elif do == "error":
        send({"error": x["message"]})
        continue
    elif do == "print":
        if "hex" in x:
            out.buffer.write(bytes.fromhex(x["hex"]) + b"\n")
        else:
            out.write(x["text"] + "\n")
        out.flush()
        continue
    elif do == "crash":
        print(x.get("stderr", ""), flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    elif do == "exit":
        if x.get("stderr"):
            print(x["stderr"], flush=True)
        sys.exit(x.get("code", 0))
    elif do == "sleep":
        stopped = wait_for(None, req, x["s"])
    elif do == "stderr":
        for i, part in enumerate(x["parts"]):
            if i:
                time.sleep(0.3)
            sys.stderr.write(part)
            sys.stderr.flush()
    if stopped:
        send({"error": "stopped"})
        continue
    send({"result": {"input": x, "pid": os.getpid(), "task": req["task"],
                     "served": served}})
    if do == "answer_exit":
        time.sleep(x.get("after_s", 0))
        if x.get("crash"):
            os.kill(os.getpid(), signal.SIGSEGV)
        sys.exit(0)
    if do == "answer_twice":
        send({"progress": 1})
