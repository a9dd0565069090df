"""multiproc.Manager(): proxies in children of every start method, plain
data vs pickled values, remote connect, server death, the pickle carrying
the authkey (never argv)."""

import collections
import enum
import fractions
import multiprocessing
import os
import queue
import subprocess
import sys
import signal
import threading

import pytest

import multiproc as mp
from multiproc.managers import BaseManager, SyncManager

METHODS = ["fork", "spawn", "forkserver"]


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


@pytest.fixture(scope="module")
def manager():
    with mp.Manager() as m:
        yield m


def _child(d, l, ns, q, lock, counter):
    with lock:
        d[os.getpid()] = "seen"
    l.append(Point(1, 2))
    ns.hits = 1
    for _ in range(100):
        counter.incr("n")
    q.put(("done", os.getpid()))


@pytest.mark.parametrize("method", METHODS)
def test_proxies_in_children(manager, method):
    ctx = multiprocessing.get_context(method)
    d, l, ns, q = manager.dict(), manager.list(), manager.Namespace(), manager.Queue()
    lock, counter = manager.Lock(), manager.dict(n=0)
    ps = [ctx.Process(target=_child, args=(d, l, ns, q, lock, counter)) for _ in range(2)]
    for p in ps:
        p.start()
    got = sorted(q.get(timeout=60)[1] for _ in ps)
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert got == sorted(p.pid for p in ps)
    assert sorted(d.keys()) == got and set(d.values()) == {"seen"}
    assert l[:] == [Point(1, 2)] * 2
    assert ns.hits == 1
    # incr is atomic on the server: no update is lost.
    assert counter["n"] == 200


def test_values_keep_their_types(manager):
    d = manager.dict()
    values = [None, True, 7, -(2**63), 2**70, 1.5, "s", b"b", [1, [2]], {"k": {"n": 1}},
              (1, 2), {3}, frozenset({4}), Point(3, 4)]
    for i, v in enumerate(values):
        d[i] = v
    for i, v in enumerate(values):
        assert d[i] == v and type(d[i]) is type(v)
    d[(1, "a")] = "tuple key"
    assert d[(1, "a")] == "tuple key"
    assert d.get("missing", 5) == 5
    with pytest.raises(KeyError):
        d["missing"]


Pair = collections.namedtuple("Pair", "a b")


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


def test_keys_and_items_compare_as_in_python(manager):
    d = manager.dict()
    d[1] = "one"
    # Equal in Python, so one key (the first one stored is kept).
    for k in (1.0, True, Color.RED, fractions.Fraction(1)):
        assert k in d and d[k] == "one", k
    d[1.0] = "uno"
    assert d.keys() == [1] and type(d.keys()[0]) is int and d[1] == "uno"
    d[Name("k")] = "str subclass"
    assert d["k"] == "str subclass" and type(d.keys()[1]) is Name
    d[(1, 2)] = "tuple"
    assert d[(1.0, 2)] == d[Pair(1, 2)] == d[(True, 2.0)] == "tuple"
    assert (1, 2) in d and [1, 2] not in d.keys()
    d[0.5] = "half"
    assert d[fractions.Fraction(1, 2)] == "half"
    assert "1" not in d and b"k" not in d and 2 not in d
    # Lists: in, index, count and remove use the same equality.
    l = manager.list([1, 2.0, "x", (3, 4)])
    assert 1.0 in l and True in l and 2 in l and (3.0, 4) in l
    assert l.index(2) == 1 and l.index(Pair(3, 4)) == 3 and l.count(1.0) == 1
    l.remove(True)
    assert l[:] == [2.0, "x", (3, 4)] and type(l[2]) is tuple


def test_numpy_scalars_are_equal_keys(manager):
    np = pytest.importorskip("numpy")
    d = manager.dict()
    d[1] = "int"
    d["k"] = "str"
    d[2.5] = "float"
    assert d[np.int64(1)] == "int" and d[np.int32(1)] == "int" and d[np.True_] == "int"
    assert d[np.str_("k")] == "str" and d[np.float64(2.5)] == d[np.float32(2.5)] == "float"
    assert np.int64(1) in d and np.float64(1.5) not in d
    d[np.int64(7)] = "numpy key"
    assert d[7] == "numpy key" and type(d.keys()[-1]) is np.int64
    l = manager.list([np.int64(5), 6])
    assert l.index(5) == 0 and l.index(np.float64(6.0)) == 1 and l.count(np.int16(5)) == 1
    assert type(l[0]) is np.int64


def test_dict_and_list_methods(manager):
    d = manager.dict(a=1)
    d.update({"b": 2}, c=3)
    assert d.copy() == {"a": 1, "b": 2, "c": 3} and len(d) == 3 and "b" in d
    assert d.pop("a") == 1 and d.pop("a", None) is None
    assert d.setdefault("z", 26) == 26 and d.items() == [("b", 2), ("c", 3), ("z", 26)]
    del d["z"]
    d.clear()
    assert len(d) == 0
    l = manager.list([3, 1, 2])
    l.sort()
    assert l[:] == [1, 2, 3]
    l.extend([4, 5])
    l.insert(0, 0)
    assert l.pop() == 5 and l.index(3) == 3 and l.count(1) == 1
    l.remove(0)
    l.reverse()
    assert list(l) == [4, 3, 2, 1] and l[-1] == 1 and len(l) == 4
    l[1:3] = ["x"]
    assert l[:] == [4, "x", 1]
    l.sort(key=str)
    assert l[:] == [1, 4, "x"]


def test_sync_objects(manager):
    ev, cond, sem = manager.Event(), manager.Condition(), manager.BoundedSemaphore(1)
    assert not ev.wait(0.01)
    t = threading.Thread(target=ev.set)
    t.start()
    assert ev.wait(30)
    t.join()
    with cond:
        assert cond.wait(0.01) is False
    assert sem.acquire() and not sem.acquire(timeout=0.01)
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    lock = manager.Lock()
    with pytest.raises(RuntimeError):
        lock.release()
    q = manager.Queue(1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.01)


def _remote_user(address, authkey, out):
    m = BaseManager(address=address, authkey=authkey)
    m.connect()
    d = m.dict(via="connect")
    out.put(d)


def test_remote_connect_and_tcp():
    with SyncManager(address=("127.0.0.1", 0), authkey=b"remote key") as m:
        host, port = m.address
        assert host == "127.0.0.1" and port > 0
        other = BaseManager(address=m.address, authkey=b"remote key")
        other.connect()
        d = other.dict(x=1)
        q = m.Queue()
        p = multiprocessing.get_context("spawn").Process(
            target=_remote_user, args=(m.address, b"remote key", q))
        p.start()
        assert q.get(timeout=60).copy() == {"via": "connect"}
        p.join(60)
        assert d["x"] == 1
        with pytest.raises(mp.AuthenticationError):
            BaseManager(address=m.address, authkey=b"wrong").connect()


def test_authkey_not_in_argv(manager):
    # The server's command line carries no authkey (spawn passes it in the
    # pickled process data).
    with SyncManager(ctx=multiprocessing.get_context("spawn"), authkey=b"K" * 32) as m:
        with open("/proc/%d/cmdline" % m._process.pid, "rb") as f:
            assert b"K" * 32 not in f.read()
        with open("/proc/%d/environ" % m._process.pid, "rb") as f:
            assert b"K" * 32 not in f.read()


def test_killed_server_raises_not_hangs():
    m = mp.Manager()
    d, q = m.dict(a=1), m.Queue()
    address = m.address
    os.kill(m._process.pid, signal.SIGKILL)
    m._process.join(30)
    with pytest.raises(EOFError):
        d["a"]
    with pytest.raises(EOFError):
        q.get(timeout=1)
    assert os.path.exists(address)  # a killed server cannot remove it
    m.shutdown()  # does not raise
    # ... and removes what the killed server left: its socket and directory.
    assert not os.path.exists(address)
    assert not os.path.exists(os.path.dirname(address))


def _blocked_get(q, out):
    try:
        q.get()
    except EOFError:
        out.put("EOFError")


def test_server_death_wakes_a_blocked_child():
    m = mp.Manager()
    q = m.Queue()
    out = multiprocessing.get_context("fork").SimpleQueue()
    p = multiprocessing.get_context("fork").Process(target=_blocked_get, args=(q, out))
    p.start()
    # Whether the child is already blocked on the server or not, its get
    # ends in EOFError.
    os.kill(m._process.pid, signal.SIGKILL)
    p.join(60)
    assert p.exitcode == 0
    assert out.get() == "EOFError"
    m.shutdown()


def test_manager_from_context_and_shutdown():
    m = mp.get_context("spawn").Manager()
    d = m.dict()
    d[1] = 2
    pid = m._process.pid
    m.shutdown()
    assert not m._process.is_alive() and m._process.exitcode is not None
    with pytest.raises(EOFError):
        d[1]
    assert pid


def _read_nested(outer, out):
    out.put(outer[0]["k"])
    outer[0]["k"] = "from child"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_nested_proxies_read_many_times(manager, method):
    outer = manager.list()
    outer.append(manager.dict(k="v"))
    assert outer[0]["k"] == "v" and outer[0]["k"] == "v"  # not a single-use loan
    q = manager.Queue()
    p = multiprocessing.get_context(method).Process(target=_read_nested, args=(outer, q))
    p.start()
    assert q.get(timeout=60) == "v"
    p.join(60)
    assert p.exitcode == 0
    assert outer[0]["k"] == "from child"


def _deep(tmp_path, length):
    p = str(tmp_path)
    assert len(p) + 2 <= length, "the temp dir is too deep already"
    # Whole segments while at least 2 characters ("/x") stay for the last.
    while len(p) + 11 + 2 <= length:
        p = os.path.join(p, "d123456789")
    p = os.path.join(p, "x" * (length - len(p) - 1))
    os.makedirs(p, mode=0o700, exist_ok=True)
    assert len(p) == length
    return p


@pytest.mark.parametrize("depth", ["where the standard library fits", "too deep for any path"])
def test_manager_works_under_a_deep_tmpdir(tmp_path, depth):
    # The standard library's Manager socket is TMPDIR + 32 bytes; ours is
    # TMPDIR + 16, or an abstract socket when no path would fit.
    length = 107 - 32 if depth.startswith("where") else 100
    tmp = _deep(tmp_path, length)
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["TMPDIR"] = tmp
    code = (
        "import multiproc as mp\n"
        "with mp.Manager() as m:\n"
        "    d = m.dict(a=1); print(d['a'], type(m.address).__name__, flush=True)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 "), r.stdout
    if depth.startswith("where"):
        std = subprocess.run(
            [sys.executable, "-c", code.replace("import multiproc as mp", "import multiprocessing as mp")],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert std.returncode == 0, std.stderr
