"""The four stages of the frame pipeline, and the synthetic video they read.

Everything is plain Python (standard library only) and deterministic:
frame i of the synthetic video is the same wherever it is decoded, so a
stage running in any worker reads the same pixels.

  detect     finds the bright objects of a frame: threshold, connected
             components, one box per object
  size       estimates each object's real size and orientation from its
             pixels (intensity-weighted moments) and a per-row ground
             calibration built at start-up
  classify   labels each object by the nearest of four prototypes, in a
             space of features of its pixels (shape, fill, intensity
             histogram); the prototypes are learnt at start-up from
             rendered examples of each class
  aggregate  sums a window of frames: objects per class, mean size per
             class, the largest object

size and classify have a costly start-up (SETUP_S seconds, 2 by default),
as loading a model or a calibration would be.
"""
import math
import os
import random
import time

W, H = 320, 240
THRESHOLD = 100
CLASSES = ["car", "person", "bike", "debris"]
SETUP_S = float(os.environ.get("FRAMES_SETUP_S", "2"))
# What a pixel of noise may be: 0..63.
_NOISE = bytes(b & 63 for b in range(256))


def draw(px, kind, x0, y0, w, h, level, rng):
    """Draws an object of class kind: ellipses for people and bikes, boxes
    for the rest."""
    for y in range(y0, y0 + h):
        row = y * W
        for x in range(x0, x0 + w):
            if kind in (1, 2):
                dx = (x - x0 - w / 2 + 0.5) / (w / 2)
                dy = (y - y0 - h / 2 + 0.5) / (h / 2)
                if dx * dx + dy * dy > 1:
                    continue
            px[row + x] = min(255, level + rng.randrange(16))


def shape(kind, rng):
    """The size and brightness of an object of class kind."""
    w = [34, 12, 22, 8][kind] + rng.randrange(8)
    h = [20, 32, 18, 8][kind] + rng.randrange(8)
    return w, h, 140 + 25 * kind + rng.randrange(20)


def decode(i):
    """Frame i of the synthetic video: noise and a few moving objects."""
    scene = random.Random(7)  # the same objects in every frame...
    rng = random.Random(i * 7919 + 13)  # ...over noise of this frame
    px = bytearray(rng.randbytes(W * H).translate(_NOISE))
    for _ in range(8):
        kind = scene.randrange(4)
        w, h, level = shape(kind, scene)
        x0 = (scene.randrange(W) + i * scene.choice([-3, -2, 2, 3])) % (W - w)
        y0 = scene.randrange(H - h)
        draw(px, kind, x0, y0, w, h, level, rng)
    return px


# ---- detect ----

def detect_init():
    return None


def detect(state, task):
    px = decode(task["frame"])
    seen = bytearray(W * H)
    boxes = []
    for start in range(W * H):
        if seen[start] or px[start] < THRESHOLD:
            continue
        stack = [start]
        seen[start] = 1
        x0 = x1 = start % W
        y0 = y1 = start // W
        area = 0
        while stack:
            p = stack.pop()
            area += 1
            x, y = p % W, p // W
            x0, x1, y0, y1 = min(x0, x), max(x1, x), min(y0, y), max(y1, y)
            for q in (p - 1 if x else -1, p + 1 if x < W - 1 else -1, p - W, p + W):
                if 0 <= q < W * H and not seen[q] and px[q] >= THRESHOLD:
                    seen[q] = 1
                    stack.append(q)
        if area >= 4:
            boxes.append([x0, y0, x1 + 1, y1 + 1, area])
    return {"frame": task["frame"], "boxes": boxes}


# ---- size ----

def size_init():
    time.sleep(SETUP_S)  # stands for loading the camera's calibration
    # Metres per pixel on each row: the ground recedes towards the top.
    return [0.02 + 0.08 * (1 - y / H) ** 2 for y in range(H)]


def size(metres, task):
    px = decode(task["frame"])
    out = []
    for x0, y0, x1, y1, _ in task["boxes"]:
        m = mx = my = mxx = myy = mxy = 0.0
        for y in range(y0, y1):
            row = y * W
            for x in range(x0, x1):
                v = px[row + x]
                if v < THRESHOLD:
                    continue
                m += v
                mx += v * x
                my += v * y
                mxx += v * x * x
                myy += v * y * y
                mxy += v * x * y
        cx, cy = mx / m, my / m
        vxx, vyy, vxy = mxx / m - cx * cx, myy / m - cy * cy, mxy / m - cx * cy
        spread = math.sqrt(max(0.0, (vxx - vyy) ** 2 + 4 * vxy * vxy))
        major = math.sqrt(max(0.0, 2 * (vxx + vyy + spread)))
        minor = math.sqrt(max(0.0, 2 * (vxx + vyy - spread)))
        k = metres[min(H - 1, int(cy))]
        out.append({"length_m": round(2 * major * k, 3), "width_m": round(2 * minor * k, 3),
                    "angle": round(math.degrees(0.5 * math.atan2(2 * vxy, vxx - vyy)), 1)})
    return {"frame": task["frame"], "sizes": out}


# ---- classify ----

def _features(px, x0, y0, x1, y1, area):
    w, h = x1 - x0, y1 - y0
    hist = [0] * 8
    total = 0
    for y in range(y0, y1):
        row = y * W
        for x in range(x0, x1):
            v = px[row + x]
            hist[v >> 5] += 1
            total += v
    n = w * h
    return [w / 16, h / 16, w / h, 4 * area / n, 4 * total / n / 255] + \
        [4 * c / n for c in hist[4:]]


def classify_init():
    """Learns a prototype per class from rendered examples."""
    start = time.monotonic()
    rng = random.Random(42)
    protos = []
    for kind in range(len(CLASSES)):
        sums = None
        for _ in range(40):
            w, h, level = shape(kind, rng)
            px = bytearray(W * H)
            draw(px, kind, 0, 0, w, h, level, rng)
            area = sum(1 for y in range(h) for x in range(w) if px[y * W + x])
            f = _features(px, 0, 0, w, h, area)
            sums = f if sums is None else [a + b for a, b in zip(sums, f)]
        protos.append([v / 40 for v in sums])
    # The rest of the start-up stands for loading a model's weights.
    time.sleep(max(0.0, SETUP_S - (time.monotonic() - start)))
    return protos


def classify(protos, task):
    px = decode(task["frame"])
    labels = []
    for box in task["boxes"]:
        f = _features(px, *box)
        best = min(range(len(CLASSES)),
                   key=lambda c: sum((a - b) ** 2 for a, b in zip(f, protos[c])))
        labels.append(CLASSES[best])
    return {"frame": task["frame"], "classes": labels}


# ---- aggregate ----

def aggregate_init():
    return None


def aggregate(state, task):
    count = {c: 0 for c in CLASSES}
    length = {c: 0.0 for c in CLASSES}
    largest = None
    for f in task["frames"]:
        for box, sz, label in zip(f["boxes"], f["sizes"], f["classes"]):
            count[label] += 1
            length[label] += sz["length_m"]
            if largest is None or sz["length_m"] > largest["length_m"]:
                largest = {"frame": f["frame"], "class": label, "length_m": sz["length_m"]}
    return {"frames": len(task["frames"]), "objects": count,
            "mean_length_m": {c: round(length[c] / count[c], 3) if count[c] else None
                              for c in CLASSES},
            "largest": largest}


STAGES = {
    "detect": (detect_init, detect),
    "size": (size_init, size),
    "classify": (classify_init, classify),
    "aggregate": (aggregate_init, aggregate),
}
