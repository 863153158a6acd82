#!/usr/bin/env python3
"""A persistent batchd handler in Python: scores the sentiment of texts.

Its set-up (here a lexicon; in real life a model) runs once per worker.
Then each task is one line in, one line out, on the same process.
"""
import json
import sys
import time

# stdout carries the protocol; anything else printed goes to stderr,
# which batchd writes to its log.
protocol = sys.stdout
sys.stdout = sys.stderr


def send(message):
    protocol.write(json.dumps(message) + "\n")
    protocol.flush()


# The costly set-up, once per worker.
print("loading the lexicon")
time.sleep(1)  # stands for loading a model
LEXICON = {"good": 1, "great": 2, "happy": 1, "bad": -1, "awful": -2, "sad": -1}
send({"ready": True})


def score(text):
    if not isinstance(text, str):
        raise ValueError("input must be a string of text")
    words = text.lower().split()
    total = 0
    for i, word in enumerate(words):
        total += LEXICON.get(word.strip(".,;:!?"), 0)
        if i % 10000 == 9999:
            send({"progress": (i + 1) / len(words), "message": "%d words" % (i + 1)})
    return {"score": total, "words": len(words)}


for line in sys.stdin:
    request = json.loads(line)
    try:
        result = score(request["input"])
    except Exception as e:
        send({"error": "%s: %s" % (type(e).__name__, e)})
        continue
    send({"result": result})
