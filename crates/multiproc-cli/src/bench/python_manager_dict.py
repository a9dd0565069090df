# Round-trip time of a `multiprocessing.Manager` dict get, for `multiproc
# bench` (row `python-manager-dict`).
# Usage: python3 -c "$(cat this)" N [CLIENT_CPU SERVER_CPU]
# Prints one JSON object: every sample (ns) and the wall time of all of them.
import json
import os
import sys
import time
from multiprocessing import Manager


def main():
    n = int(sys.argv[1])
    cpus = [int(c) for c in sys.argv[2:4]]
    if len(cpus) == 2:
        # The server process inherits this affinity; the client then moves.
        os.sched_setaffinity(0, {cpus[1]})
    with Manager() as m:
        if len(cpus) == 2:
            os.sched_setaffinity(0, {cpus[0]})
        d = m.dict()
        d["key"] = 1
        get = d.__getitem__
        for _ in range(max(n // 10, 5)):
            get("key")
        samples = []
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(n):
            t = clock()
            get("key")
            samples.append(clock() - t)
        wall = clock() - start
    print(json.dumps({"samples": samples, "wall_ns": wall}))


if __name__ == "__main__":
    main()
