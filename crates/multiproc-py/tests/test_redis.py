"""multiproc.redis against a real server (MULTIPROC_REDIS_URL, which .ci/run
sets), across real processes. Without the variable every test is skipped,
saying why."""

import os
import queue
import signal
import time
import uuid

import pytest

import multiproc as mp
from multiproc import redis as mr

URL = os.environ.get("MULTIPROC_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="MULTIPROC_REDIS_URL is not set (.ci/run starts a redis-server and sets it)"
)
HANG = 60


@pytest.fixture
def name():
    n = f"pytest-{uuid.uuid4().hex}"
    yield n
    mr.remove(URL, n)


def test_queue_operations(name):
    q = mr.Queue(URL, name)
    for x in ["a", b"raw bytes", {"k": (1, 2.5)}]:
        q.put(x)
    assert q.qsize() == 3 and not q.empty() and not q.full()
    other = mr.Queue(URL, name)  # another consumer of the same queue
    assert other.get() == "a"
    assert q.get(timeout=HANG) == b"raw bytes"
    assert q.get_nowait() == {"k": (1, 2.5)}
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    q.close()
    with pytest.raises(ValueError):
        q.put(1)
    other.put(2)
    assert other.get() == 2


def test_maxsize(name):
    q = mr.Queue(URL, name, 2)
    q.put_nowait(1)
    q.put(2)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.05)
    assert q.get() == 1
    q.put(3)
    assert [q.get(), q.get()] == [2, 3]


def _consume(q, out):
    while True:
        item = q.get()
        q.task_done()
        if item is None:
            return
        out.put(item)


def test_joinable_queue_across_processes(name):
    q = mr.JoinableQueue(URL, name)
    results = mp.Queue()
    # The queue pickles as "open it again": each child is a consumer.
    procs = [mp.Process(target=_consume, args=(q, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for i in range(200):
        q.put(i)
    for _ in procs:
        q.put(None)
    assert q.join(timeout=HANG)
    got = sorted(results.get(timeout=HANG) for _ in range(200))
    assert got == list(range(200))
    for p in procs:
        p.join(HANG)
        assert p.exitcode == 0
    assert q.unfinished() == 0
    with pytest.raises(ValueError):
        q.task_done()


def _hold(url, name, n, ready):
    q = mr.JoinableQueue(url, name, heartbeat=1.0)
    for _ in range(n):
        q.get()
    ready.set()
    time.sleep(HANG)


def test_a_killed_consumers_items_are_delivered_again(name):
    q = mr.JoinableQueue(URL, name, heartbeat=1.0)
    for i in range(10):
        q.put(i)
    ready = mp.Event()
    p = mp.Process(target=_hold, args=(URL, name, 10, ready))
    p.start()
    assert ready.wait(HANG)
    assert q.qsize() == 0
    os.kill(p.pid, signal.SIGKILL)
    p.join(HANG)
    got = []
    for _ in range(10):
        d = q.get_delivery(timeout=HANG)
        assert d.deliveries == 2
        got.append(d.value)
        q.task_done_for(d.id)
    assert sorted(got) == list(range(10))
    assert q.join(timeout=HANG)


def test_dead_letters_and_requeue(name):
    mr.Queue(URL, name, authkey=b"other key").put("forged")
    q = mr.Queue(URL, name)
    with pytest.raises(mr.RedisAuthenticationError):
        q.get(timeout=HANG)
    dead = q.dead_letters()
    assert len(dead) == 1 and dead[0].reason == "authentication"
    assert isinstance(dead[0].value, mr.RedisAuthenticationError)
    # Requeued as it was: still refused by this key's readers.
    assert q.requeue(dead[0].id)
    assert not q.requeue(dead[0].id)
    with pytest.raises(mr.RedisAuthenticationError):
        q.get(timeout=HANG)


def test_handles_cannot_travel(name):
    q = mr.Queue(URL, name)
    for obj in (mp.Lock(), mp.Queue(), {"nested": mp.Event()}):
        with pytest.raises(TypeError, match="Redis"):
            q.put(obj)
    with pytest.raises(TypeError, match="Redis"):
        mr.Dict(URL, name)["k"] = mp.Lock()
    assert q.qsize() == 0
    # The refusal ends with the put: local queues still pass handles.
    local = mp.Queue()
    local.put(mp.Lock())
    assert local.get(timeout=HANG) is not None


def _incr(url, name, n):
    d = mr.Dict(url, name)
    for _ in range(n):
        d.incr("n")


def test_dict(name):
    d = mr.Dict(URL, name)
    assert len(d) == 0
    d["a"] = 1
    d[("t", 2)] = [1, 2]
    d["none"] = None
    assert d["a"] == 1 and d[("t", 2)] == [1, 2] and d["none"] is None
    assert "a" in d and "zz" not in d
    with pytest.raises(KeyError):
        d["zz"]
    assert d.get("zz", 5) == 5 and d.get("none", 5) is None
    assert sorted(map(repr, d.keys())) == sorted(map(repr, ["a", ("t", 2), "none"]))
    assert d.pop("a") == 1 and d.pop("a", "gone") == "gone"
    del d["none"]
    with pytest.raises(KeyError):
        del d["none"]
    assert d.setdefault("s", 7) == 7 and d.setdefault("s", 8) == 7
    assert d.compare_and_set("s", 7, 9) and not d.compare_and_set("s", 7, 10)
    assert d.compare_and_set("new", None, 1, absent=True)
    assert dict(d.items()) == {("t", 2): [1, 2], "s": 9, "new": 1}
    procs = [mp.Process(target=_incr, args=(URL, name, 200)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(HANG)
        assert p.exitcode == 0
    assert d["n"] == 600
    d.clear()
    assert len(d) == 0


def _slow_square(x):
    time.sleep(0.2)
    return x * x


def _fail(x):
    raise KeyError(x)


def _serve(url, name, stop):
    mr.serve(url, name, 2, heartbeat=1.0, stop=stop)


def _start_workers(name, n):
    stop = mp.Event()
    workers = [mp.Process(target=_serve, args=(URL, name, stop)) for _ in range(n)]
    for w in workers:
        w.start()
    return stop, workers


def test_pool_on_workers_of_two_machines(name):
    stop, workers = _start_workers(name, 2)
    try:
        with mp.Pool.redis(URL, name) as pool:
            assert pool.apply(pow, (2, 10)) == 1024
            assert pool.map(abs, range(-500, 500)) == [abs(x) for x in range(-500, 500)]
            assert pool.starmap(pow, [(2, i) for i in range(10)], chunksize=3) == [2 ** i for i in range(10)]
            assert sorted(pool.imap_unordered(abs, range(-50, 0), chunksize=7)) == list(range(1, 51))
            assert list(pool.imap(abs, range(-20, 0))) == [abs(x) for x in range(-20, 0)]
            with pytest.raises(KeyError):
                pool.apply(_fail, (1,))
            got = []
            r = pool.apply_async(pow, (3, 3), callback=got.append)
            assert r.get(HANG) == 27
            assert got == [27]
            # Both machines served (tasks of 0.2 s, four workers in all).
            pids = set(pool.map(_pid, range(16), chunksize=1))
            assert len(pids) >= 2
    finally:
        stop.set()
        for w in workers:
            w.join(HANG)
            assert w.exitcode == 0


def _pid(_x):
    time.sleep(0.05)
    return os.getpid()


def test_a_dead_worker_machines_tasks_run_elsewhere(name):
    stop, workers = _start_workers(name, 2)
    try:
        pool = mp.Pool.redis(URL, name)
        results = [pool.apply_async(_slow_square, (i,)) for i in range(12)]
        time.sleep(0.3)  # both machines hold tasks now
        os.kill(workers[0].pid, signal.SIGKILL)  # its local workers die with it
        assert [r.get(HANG) for r in results] == [i * i for i in range(12)]
        pool.close()
        pool.join()
    finally:
        stop.set()
        for w in workers:
            w.join(HANG)


def test_an_answer_after_its_pool_ended_does_not_bring_back_its_reply_queue(name):
    pool = mp.Pool.redis(URL, name)
    r = pool.apply_async(_slow_square, (3,))
    pool.terminate()
    with pytest.raises(Exception):
        r.get(HANG)
    # The task waits on the queue; a machine takes it and answers now.
    stop, workers = _start_workers(name, 1)
    try:
        tasks = mr.JoinableQueue(URL, name)
        assert tasks.join(HANG)
        # Opening it as an existing queue fails: its stream is not there.
        with pytest.raises(mr.RedisRemovedError):
            mr.Queue._existing(URL, pool._reply_name)
    finally:
        stop.set()
        for w in workers:
            w.join(HANG)


def test_the_worker_command(name, tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, MULTIPROC_REDIS_AUTHKEY="shared secret")
    proc = subprocess.Popen(
        [sys.executable, "-m", "multiproc", "worker", "--redis", URL, "--queue", name, "--processes", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert "serving" in proc.stdout.readline()
        with mr.Pool(URL, name, authkey=b"shared secret") as pool:
            assert pool.apply(pow, (2, 16)) == 65536
            assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, err


def _refuse():
    raise RuntimeError("cannot be rebuilt here")


class Unloadable:
    def __reduce__(self):
        return (_refuse, ())


def test_an_item_that_does_not_unpickle_goes_to_the_dead_letters(name):
    for cls in (mr.Queue, mr.JoinableQueue):
        q = cls(URL, name)
        q.put(Unloadable())
        q.put("next")
        with pytest.raises(RuntimeError, match="rebuilt"):
            q.get(timeout=HANG)
        assert q.get(timeout=HANG) == "next"
        if cls is mr.JoinableQueue:
            q.task_done()
            assert q.join(timeout=HANG), "a dead letter counts as finished"
        dead = q.dead_letters()
        assert [d.reason for d in dead] == ["unpickle"]
        mr.remove(URL, name)


def test_a_forked_child_is_a_consumer_of_its_own(name):
    q = mr.JoinableQueue(URL, name, consumer="fixed")
    assert q.consumer == "fixed"
    out = mp.Queue()
    ctx = mp.get_context("fork")
    p = ctx.Process(target=lambda: out.put(q.consumer))
    p.start()
    child = out.get(timeout=HANG)
    p.join(HANG)
    assert child != "fixed" and child.startswith("fixed-")
