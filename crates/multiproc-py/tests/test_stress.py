"""The seeds' producer/consumer programs, repeated thousands of times while
busy processes oversubscribe the cores: every item arrives exactly once, in
each producer's order, before the sentinel the parent puts after joining
the producers (the pattern whose lost items once failed test_002_queue)."""

import os
import time

import pytest

import multiproc as mp

ROUNDS = int(os.environ.get("MULTIPROC_PY_STRESS_ROUNDS", "2000"))
# Spawned interpreters are ~50x slower to start than forks: one round in
# this many uses spawn.
SPAWN_EVERY = 40
ITEMS = 5


def _busy(stop):
    while not stop.is_set():
        pass


def _producer(q, p, n):
    for i in range(n):
        q.put((p, i))
    # Exit right after the last put, as the seeds' producers do.


def _consumer(q, out):
    got = []
    while True:
        item = q.get()
        if item is None:
            break
        got.append(item)
    out.send(got)


def _round(ctx, producers, joinable):
    q = mp.JoinableQueue() if joinable else mp.Queue()
    rx, tx = mp.Pipe(duplex=False)
    ps = [ctx.Process(target=_producer, args=(q, p, ITEMS)) for p in range(producers)]
    c = ctx.Process(target=_consumer, args=(q, tx))
    for p in ps:
        p.start()
    c.start()
    for p in ps:
        p.join()
        assert p.exitcode == 0
    q.put(None)
    assert rx.poll(60), "the consumer never reported"
    got = rx.recv()
    c.join(60)
    assert c.exitcode == 0, c.exitcode
    return got


def test_seed_producer_consumer_rounds_under_oversubscription():
    busy_ctx = mp.get_context("fork")
    stop = busy_ctx.Event()
    busy = [busy_ctx.Process(target=_busy, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 2)]
    for b in busy:
        b.start()
    bad = []
    t0 = time.monotonic()
    try:
        for r in range(ROUNDS):
            method = "spawn" if r % SPAWN_EVERY == SPAWN_EVERY - 1 else "fork"
            producers = 1 + r % 3
            got = _round(mp.get_context(method), producers, joinable=(r % 2 == 1))
            want = sorted((p, i) for p in range(producers) for i in range(ITEMS))
            in_order = all(
                [i for (q, i) in got if q == p] == list(range(ITEMS)) for p in range(producers)
            )
            if sorted(got) != want or not in_order:
                bad.append((r, method, producers, got))
    finally:
        stop.set()
        for b in busy:
            b.join(10)
    elapsed = time.monotonic() - t0
    assert not bad, f"{len(bad)} of {ROUNDS} rounds lost or reordered items; first: {bad[:3]}"
    print(f"{ROUNDS} rounds in {elapsed:.1f} s")
