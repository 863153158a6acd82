#!/usr/bin/env python3
"""A persistent handler for the tests: it does what each task's input asks.

Environment (from the handlers file):
  STARTS     a file to which it appends its pid as it starts
  STARTUP_S  seconds of set-up before it is ready (default 0)
  READY      "0": no {"ready": true} line (default: one, after the set-up)
  NEEDS      a path: the set-up fails (stderr, exit 1) unless it exists

Input {"do": ...}:
  "echo"      (also a missing "do") result {"input", "pid", "task", "served"}
  "progress"  a progress line (p, message), then waits for the file "until"
  "error"     an error line with "message"
  "print"     writes "text" as a line on stdout, then waits for the next task
  "crash"     writes "stderr" on stderr, then dies by SIGSEGV
  "exit"      writes "stderr" on stderr, then exits with "code", no result
  "answer_exit"  a result, then exits
  "answer_twice" a result, then a stray line while it has no task
  "sleep"     sleeps "s" seconds, then a result
"""
import json
import os
import signal
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
if os.environ.get("READY", "1") != "0":
    send({"ready": True})

served = 0
for line in sys.stdin:
    req = json.loads(line)
    x = req["input"]
    do = x.get("do", "echo") if isinstance(x, dict) else "echo"
    served += 1
    if do == "progress":
        send({"progress": x["p"], "message": x["message"]})
        while not os.path.exists(x["until"]):
            time.sleep(0.01)
    elif do == "error":
        send({"error": x["message"]})
        continue
    elif do == "print":
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
        time.sleep(x["s"])
    send({"result": {"input": x, "pid": os.getpid(), "task": req["task"],
                     "served": served}})
    if do == "answer_exit":
        sys.exit(0)
    if do == "answer_twice":
        send({"progress": 1})
