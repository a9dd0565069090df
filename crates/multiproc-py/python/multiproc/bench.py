"""``python -m multiproc.bench``: multiproc against ``multiprocessing`` (and
``faster-fifo`` and pyzmq, if installed: ``pip install faster-fifo pyzmq``)
in one run.

Rows: Queue streams of ``bytes`` (64 B, 4 KiB, 1 MiB; 1 producer → 1
consumer and 4 → 4; pyzmq as PUSH/PULL over ``ipc://``, raw bytes with no
pickling, through a streamer device for 4 → 4), ``Pipe`` ping-pong round trips, ``Lock``
acquire+release, ``Value`` increments, a ``Manager().dict()`` get
round trip (multiproc's Rust server vs ``multiprocessing.Manager``), and
pools: ``imap_unordered`` of tiny tasks at chunksize 1, ``map`` at the
default chunksize and an ``apply`` round trip, for ``multiproc.Pool``,
``multiprocessing.Pool``, both ``ProcessPoolExecutor``s and loky's executor
if installed (``pip install loky``). Ratios are against
``multiprocessing`` (higher is better for throughput, lower for time).
Processes are forked; the clock runs from a start signal to the last
consumer's exit, so process start-up is not measured.
"""

import argparse
import concurrent.futures
import os
import queue
import multiprocessing
import statistics
import sys
import time

import multiproc

CTX = multiprocessing.get_context("fork")


def _queue_impls():
    impls = {
        "multiproc": lambda: multiproc.Queue(),
        "multiprocessing": lambda: CTX.Queue(),
    }
    try:
        import faster_fifo

        impls["faster-fifo"] = lambda: faster_fifo.Queue(max_size_bytes=64 << 20)
    except ImportError:
        pass
    return impls


class _Zmq:
    """pyzmq PUSH/PULL over ``ipc://`` with a queue's ``put``/``get``:
    raw bytes (its natural form, no pickling; ``None`` is an empty
    message). 1 → 1 connects the producer straight to the consumer; several
    go through a streamer device (``zmq.proxy``) in a thread of the parent,
    zmq's own way to share work among many. Each process makes its own
    sockets (a zmq socket does not survive ``fork``)."""

    def __init__(self, many):
        import tempfile
        import threading

        import zmq

        self._dir = tempfile.mkdtemp(prefix="multiproc-bench-zmq-")
        self._in = f"ipc://{self._dir}/in"
        self._out = f"ipc://{self._dir}/out" if many else self._in
        self._many = many
        self._socks = {}
        self._proxy_ctx = None
        if many:
            ctx = self._proxy_ctx = zmq.Context()
            front, back = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
            front.bind(self._in)
            back.bind(self._out)
            threading.Thread(target=self._proxy, args=(front, back), daemon=True).start()

    @staticmethod
    def _proxy(front, back):
        import zmq

        try:
            zmq.proxy(front, back)
        except zmq.ZMQError:
            pass  # the context was destroyed: the run is over
        finally:
            front.close(0)
            back.close(0)

    def close(self):
        """Close this process's sockets, stop the device, remove the
        socket files."""
        import shutil

        for s in self._socks.values():
            s.close(0)
        self._socks.clear()
        if self._proxy_ctx is not None:
            self._proxy_ctx.destroy(0)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _sock(self, kind):
        import zmq

        key = (os.getpid(), kind)
        s = self._socks.get(key)
        if s is None:
            if key[0] != getattr(self, "_ctx_pid", None):
                self._ctx = zmq.Context()  # a fresh context in a forked child
                self._ctx_pid = key[0]
            s = self._ctx.socket(kind)
            if kind == zmq.PULL and not self._many:
                s.bind(self._out)
            else:
                s.connect(self._in if kind == zmq.PUSH else self._out)
            self._socks[key] = s
        return s

    def put(self, obj):
        import zmq

        self._sock(zmq.PUSH).send(b"" if obj is None else obj)

    def get(self, block=True, timeout=None):
        import zmq

        m = self._sock(zmq.PULL).recv()
        return None if m == b"" else m


def _ready(q, kind):
    # Sockets made before the start signal: zmq's connect is asynchronous
    # and retried every 100 ms, which is start-up, not throughput.
    if isinstance(q, _Zmq):
        import zmq

        q._sock(zmq.PUSH if kind == "put" else zmq.PULL)


def _producer(q, go, n, payload):
    _ready(q, "put")
    go.wait()
    put = q.put
    for _ in range(n):
        put(payload)


def _consumer(q, go):
    _ready(q, "get")
    go.wait()
    get = q.get
    while True:
        try:
            item = get(True, 3600)
        except queue.Empty:
            # faster-fifo's get can give up before its timeout with large
            # messages and several consumers: ask again.
            continue
        if item is None:
            return


def queue_stream(make, size, nprod, ncons, count):
    q = make()
    go = CTX.Event()
    payload = bytes(size)
    per = count // nprod
    prods = [CTX.Process(target=_producer, args=(q, go, per, payload)) for _ in range(nprod)]
    cons = [CTX.Process(target=_consumer, args=(q, go)) for _ in range(ncons)]
    for p in prods + cons:
        p.start()
    _ready(q, "put")  # the parent's, for the Nones at the end
    time.sleep(0.2)  # let every process reach go.wait() (start-up is not measured)
    t0 = time.perf_counter()
    go.set()
    for p in prods:
        p.join()
    for _ in cons:
        q.put(None)
    for p in cons:
        if isinstance(q, _Zmq):
            p.join(0.01)
            while p.is_alive():
                # zmq's round robin skips a consumer whose pipe is full, so
                # one may have had two Nones and another none: send more.
                q.put(None)
                p.join(0.01)
        p.join()
    dt = time.perf_counter() - t0
    if hasattr(q, "close") and isinstance(q, _Zmq):
        q.close()
    return per * nprod / dt


def asyncio_stream(make, n, how):
    """64-byte messages from a producer process to this one, got ``how``:
    ``"blocking"`` (``get()``), ``"get_async"`` or ``"coro_get"`` (awaited
    in an asyncio event loop); messages/s."""
    import asyncio

    q = make()
    go = CTX.Event()
    p = CTX.Process(target=_producer, args=(q, go, n, bytes(64)))
    p.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    go.set()
    if how == "blocking":
        get = q.get
        for _ in range(n):
            get()
    else:
        get = getattr(q, how)

        async def consume():
            for _ in range(n):
                await get()

        asyncio.run(consume())
    dt = time.perf_counter() - t0
    p.join()
    return n / dt


def _echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def pipe_pingpong(pipe, n):
    a, b = pipe()
    p = CTX.Process(target=_echo, args=(b, n + 100))
    p.start()
    msg = bytes(64)
    for _ in range(100):  # warm-up
        a.send_bytes(msg)
        a.recv_bytes()
    t0 = time.perf_counter()
    for _ in range(n):
        a.send_bytes(msg)
        a.recv_bytes()
    dt = time.perf_counter() - t0
    p.join()
    return dt / n


def lock_pairs(lock, n):
    acquire, release = lock.acquire, lock.release
    t0 = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return (time.perf_counter() - t0) / n


def value_increments(value, n):
    t0 = time.perf_counter()
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    return (time.perf_counter() - t0) / n


def manager_dict_get(make_manager, n):
    """Seconds per ``d["k"]`` on a manager dict (a round trip to the server)."""
    m = make_manager()
    try:
        d = m.dict(k="value")
        for _ in range(100):  # warm-up
            d["k"]
        t0 = time.perf_counter()
        for _ in range(n):
            d["k"]
        return (time.perf_counter() - t0) / n
    finally:
        m.shutdown()


def _tiny(x):
    return x


def _pool_impls(workers):
    """name -> (kind, factory): pools and executors with ``workers`` workers."""
    impls = {
        "multiproc.Pool": ("pool", lambda: multiproc.Pool(workers, context=CTX)),
        "multiprocessing.Pool": ("pool", lambda: CTX.Pool(workers)),
        "multiproc.PPExecutor": ("executor", lambda: multiproc.ProcessPoolExecutor(workers, mp_context=CTX)),
        "futures.PPExecutor": ("executor", lambda: concurrent.futures.ProcessPoolExecutor(workers, mp_context=CTX)),
    }
    try:
        import loky

        impls["loky"] = ("executor", lambda: loky.get_reusable_executor(max_workers=workers))
    except ImportError:
        pass
    return impls


def _pool_run(kind, pool, case, n, chunksize):
    """One measurement on a warm pool: tasks/s for ``imap``/``map``, the
    median seconds per call for ``apply``."""
    if case == "apply":
        call = (lambda: pool.apply(_tiny, (1,))) if kind == "pool" else (lambda: pool.submit(_tiny, 1).result())
        times = []
        for _ in range(n):
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        return statistics.median(times)
    t = time.perf_counter()
    if kind == "pool" and case == "imap_unordered":
        for _ in pool.imap_unordered(_tiny, range(n), chunksize=1):
            pass
    elif kind == "pool":
        pool.map(_tiny, range(n))
    else:  # executors: map with the same chunk size
        for _ in pool.map(_tiny, range(n), chunksize=chunksize):
            pass
    return n / (time.perf_counter() - t)


def _pool_stop(kind, pool):
    if kind == "pool":
        pool.terminate()
        pool.join()
    elif not hasattr(pool, "_kill_workers"):  # loky's reusable executor stays
        pool.shutdown(wait=True)


def pool_rows(scale, out=print, rounds=5):
    """Every pool is started and warm before the clock runs; each case runs
    ``rounds`` times, the pools taking turns round by round (a noisy moment
    hits them alike), and the median round is shown."""
    workers = os.cpu_count() or 1
    impls = _pool_impls(workers)
    if "loky" not in impls:
        out("loky is not installed (pip install loky): its rows are left out")
    n = max(int(100000 * scale), 1000)
    default_chunk = -(-n // (workers * 4))
    cases = [
        ("imap_unordered", f"imap_unordered of {n} tiny tasks, chunksize 1 (executors: map); tasks/s", 1),
        ("map", f"map of {n} tiny tasks, default chunksize ({default_chunk}); tasks/s", default_chunk),
        ("apply", "apply round trip, p50 (executors: submit().result()); lower is better", None),
    ]
    for case, title, chunk in cases:
        out(f"\nPool {title}; median of {rounds} rounds; ratio vs multiprocessing.Pool")
        count = max(int(2000 * scale), 200) if case == "apply" else n
        pools = {}
        try:
            for name, (kind, make) in impls.items():
                pool = pools[name] = (kind, make())
                _pool_run(kind, pool[1], "map" if case != "apply" else case, 100, 1)  # warm
            runs = {name: [] for name in impls}
            for _ in range(rounds):
                for name, (kind, pool) in pools.items():
                    runs[name].append(_pool_run(kind, pool, case, count, chunk))
        finally:
            for kind, pool in pools.values():
                _pool_stop(kind, pool)
        res = {name: statistics.median(r) for name, r in runs.items()}
        base = res["multiprocessing.Pool"]
        for name, r in res.items():
            shown = _fmt_time(r) if case == "apply" else _fmt_rate(r)
            out(f"  {name:<22} {shown:>12} {r / base:8.2f}x")


def _fmt_rate(r):
    return f"{r / 1e6:.2f} M/s" if r >= 1e6 else f"{r / 1e3:.1f} k/s"


def _fmt_time(t):
    return f"{t * 1e6:.2f} µs" if t >= 1e-6 else f"{t * 1e9:.0f} ns"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m multiproc.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages (noisier)")
    ap.add_argument("--pool", action="store_true", help="only the pool rows")
    args = ap.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    rounds = 3 if args.quick else 5
    if args.pool:
        pool_rows(scale, out=lambda line: print(line, flush=True), rounds=rounds)
        return 0
    impls = _queue_impls()
    if "faster-fifo" not in impls:
        print("faster-fifo is not installed (pip install faster-fifo): its rows are left out\n")
    import importlib.util

    have_zmq = importlib.util.find_spec("zmq") is not None
    if not have_zmq:
        print("pyzmq is not installed (pip install pyzmq): its rows are left out\n")
    rows = []
    print("Queue streams of bytes (messages/s; ratio vs multiprocessing.Queue, higher is better)")
    for size, label, count in [(64, "64 B", 40000), (4096, "4 KiB", 20000), (1 << 20, "1 MiB", 400)]:
        for nprod, ncons in [(1, 1), (4, 4)]:
            n = max(int(count * scale) // 4 * 4, 8)
            res = {name: queue_stream(make, size, nprod, ncons, n) for name, make in impls.items()}
            if have_zmq:
                many = nprod > 1 or ncons > 1
                res["pyzmq"] = queue_stream(lambda: _Zmq(many), size, nprod, ncons, n)
            base = res["multiprocessing"]
            for name, r in res.items():
                line = f"  {label:>6} {nprod}→{ncons} {name:<16} {_fmt_rate(r):>12} {r / base:8.2f}x"
                print(line, flush=True)
                rows.append(line)
            for peer in ("faster-fifo", "pyzmq"):
                if peer in res:
                    print(f"  {'':>6}     multiproc vs {peer}: {res['multiproc'] / res[peer]:.2f}x", flush=True)
    print("\nasyncio: a queue stream of 64 B awaited in an event loop (messages/s; ratio vs multiproc's blocking get)")
    n = int(40000 * scale)
    res = {"multiproc get()": asyncio_stream(multiproc.Queue, n, "blocking"),
           "multiproc get_async()": asyncio_stream(multiproc.Queue, n, "get_async")}
    if importlib.util.find_spec("aioprocessing") is not None:
        import aioprocessing

        res["aioprocessing coro_get()"] = asyncio_stream(aioprocessing.AioQueue, n, "coro_get")
    else:
        print("  aioprocessing is not installed (pip install aioprocessing): its row is left out")
    base = res["multiproc get()"]
    for name, r in res.items():
        print(f"  {name:<26} {_fmt_rate(r):>12} {r / base:8.2f}x", flush=True)
    print("\nPipe ping-pong, 64 B (round trip; ratio vs multiprocessing.Pipe, lower is better)")
    n = int(5000 * scale)
    res = {"multiproc": pipe_pingpong(multiproc.Pipe, n), "multiprocessing": pipe_pingpong(CTX.Pipe, n)}
    for name, t in res.items():
        print(f"  {name:<16} {_fmt_time(t):>12} {t / res['multiprocessing']:8.2f}x", flush=True)
    print("\nLock acquire+release, uncontended (ratio vs multiprocessing.Lock, lower is better)")
    n = int(400000 * scale)
    res = {"multiproc": lock_pairs(multiproc.Lock(), n), "multiprocessing": lock_pairs(CTX.Lock(), n)}
    for name, t in res.items():
        print(f"  {name:<16} {_fmt_time(t):>12} {t / res['multiprocessing']:8.2f}x", flush=True)
    print("\nValue increments under get_lock() (ratio vs multiprocessing.Value, lower is better)")
    n = int(200000 * scale)
    res = {"multiproc": value_increments(multiproc.Value("i", 0), n), "multiprocessing": value_increments(CTX.Value("i", 0), n)}
    for name, t in res.items():
        print(f"  {name:<16} {_fmt_time(t):>12} {t / res['multiprocessing']:8.2f}x", flush=True)
    print("\nManager dict get round trip (ratio vs multiprocessing.Manager, lower is better)")
    n = int(20000 * scale)
    res = {"multiproc": manager_dict_get(multiproc.Manager, n),
           "multiprocessing": manager_dict_get(CTX.Manager, n)}
    for name, t in res.items():
        print(f"  {name:<16} {_fmt_time(t):>12} {t / res['multiprocessing']:8.2f}x", flush=True)
    pool_rows(scale, out=lambda line: print(line, flush=True), rounds=rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
