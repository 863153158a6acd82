"""The Python recipes batchd is measured against, run by Debian's python3.

    /usr/bin/python3 bench/recipes.py RECIPE WORKLOAD N MS WORKERS [CHUNKSIZE]

RECIPE is imap (Pool.imap_unordered under a tqdm bar) or apply
(Pool.apply_async with a callback that advances a tqdm bar); WORKLOAD is
noop, sleep (MS milliseconds) or cpu (a busy loop of MS milliseconds).
Prints one JSON line: {"wall": seconds, "done": tasks}.

The clock starts once the pool's processes are up, as batchd's workers are
before a job arrives, and stops when the last result is back in the parent.
The bar is drawn to /dev/null: a terminal would only make it slower.
"""
import json
import multiprocessing
import os
import sys
import time

from tqdm import tqdm


def noop(x):
    return None


def sleep(ms):
    time.sleep(ms / 1000.0)
    return None


def cpu(ms):
    end = time.perf_counter() + ms / 1000.0
    x = 0
    while time.perf_counter() < end:
        for _ in range(1000):
            x = (x * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF
    return None


def warm(_):
    return os.getpid()


def main():
    recipe, workload, n, ms, workers = sys.argv[1:6]
    n, ms, workers = int(n), float(ms), int(workers)
    chunksize = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    fn = {"noop": noop, "sleep": sleep, "cpu": cpu}[workload]
    items = [None] * n if workload == "noop" else [ms] * n
    bar_out = open(os.devnull, "w")
    with multiprocessing.Pool(workers) as pool:
        # Every worker process started and answering before the clock runs.
        pool.map(warm, range(workers * 4), chunksize=1)
        done = 0
        t0 = time.perf_counter()
        if recipe == "imap":
            with tqdm(total=n, file=bar_out) as bar:
                for _ in pool.imap_unordered(fn, items, chunksize=chunksize):
                    bar.update()
                    done += 1
        elif recipe == "apply":
            with tqdm(total=n, file=bar_out) as bar:
                def advance(_):
                    bar.update()

                results = [pool.apply_async(fn, (x,), callback=advance) for x in items]
                for r in results:
                    r.get()
                    done += 1
        else:
            raise SystemExit("unknown recipe " + recipe)
        wall = time.perf_counter() - t0
    print(json.dumps({"wall": wall, "done": done}))


if __name__ == "__main__":
    main()
