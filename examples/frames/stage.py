#!/usr/bin/env python3
"""One stage of the frame pipeline as a persistent batchd handler.

    stage.py detect|size|classify|aggregate

batchd starts it once per worker; the stage's set-up runs once, then each
task is a line in and a line out (docs/HANDLERS.md has the protocol).
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # leave the examples directory as it is
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frames  # noqa: E402

protocol = sys.stdout
sys.stdout = sys.stderr  # prints go to batchd's log, not the protocol


def send(message):
    protocol.write(json.dumps(message, separators=(",", ":")) + "\n")
    protocol.flush()


setup, run = frames.STAGES[sys.argv[1]]
state = setup()
send({"ready": True})
for line in sys.stdin:
    request = json.loads(line)
    try:
        send({"result": run(state, request["input"])})
    except Exception as e:
        send({"error": "%s: %s" % (type(e).__name__, e)})
