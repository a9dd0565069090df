"""multiproc.Pool and multiproc.ProcessPoolExecutor when things go wrong:
a worker killed in the middle of each operation, task timeouts, recycling,
the death policies, restart storms, terminate, lazy imap, Ctrl-C and a
SIGKILLed parent. Every test crosses real process boundaries; waits are on
events and process exits, with generous deadlines that only bound a hang."""

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

import multiproc as mp

ROUNDS = int(os.environ.get("MULTIPROC_POOL_ROUNDS", "20"))
HANG = 60  # seconds: only a hang takes this long


def sqr(x):
    return x * x


def pid_of(_x=None):
    return os.getpid()


def hold(i, target, pid, release):
    """Task ``target`` publishes its worker's pid and waits to be killed;
    the others return ``i``."""
    if i == target:
        pid.value = os.getpid()
        release.wait(HANG)
    return i


def die_always(_x=None):
    os.kill(os.getpid(), signal.SIGKILL)


def die_first_time(counter):
    with counter.get_lock():
        counter.value += 1
        first = counter.value == 1
    if first:
        os.kill(os.getpid(), signal.SIGKILL)
    return "second try"


def bad_initializer(counter):
    with counter.get_lock():
        counter.value += 1
    raise RuntimeError("initializer fails")


def wait_for_pid(pid):
    deadline = time.monotonic() + HANG
    while pid.value == 0:
        assert time.monotonic() < deadline, "the target task never started"
        time.sleep(0.001)
    return pid.value


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_gone(pids):
    deadline = time.monotonic() + HANG
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"workers still alive: {[p for p in pids if alive(p)]}"
        time.sleep(0.01)


@pytest.fixture(params=["fork", "spawn"])
def ctx(request):
    return mp.get_context(request.param)


def _kill_round(pool, op, n, target):
    pid = mp.Value("q", 0, lock=False)
    release = mp.Event()
    args = [(i, target, pid, release) for i in range(n)]
    if op == "map":
        res = pool.starmap_async(hold, args, chunksize=1)
    elif op == "imap_unordered":
        res = pool.imap_unordered(_hold_star, args)
    else:
        res = [pool.apply_async(hold, a) for a in args]
    victim = wait_for_pid(pid)
    os.kill(victim, signal.SIGKILL)
    if op == "map":
        with pytest.raises(mp.WorkerLostError) as e:
            res.get(HANG)
        failed = {target: e.value}
        values = set(range(n)) - {target}  # map gives all or the error
    elif op == "imap_unordered":
        failed, values = {}, set()
        for _ in range(n):
            try:
                values.add(res.next(HANG))
            except mp.WorkerLostError as e:
                failed[target] = e
        with pytest.raises(StopIteration):
            res.next(HANG)
    else:
        failed, values = {}, set()
        for i, r in enumerate(res):
            try:
                values.add(r.get(HANG))
            except mp.WorkerLostError as e:
                failed[i] = e
    release.set()
    assert list(failed) == [target], failed
    err = failed[target]
    assert err.pid == victim and err.exitcode == -signal.SIGKILL and err.signal == signal.SIGKILL
    assert values == set(range(n)) - {target}


def _hold_star(a):
    return hold(*a)


@pytest.mark.parametrize("op", ["map", "imap_unordered", "apply_async"])
def test_a_killed_worker_fails_exactly_its_task_and_the_pool_serves_on(ctx, op):
    with ctx.Pool(3) as pool:
        rounds = ROUNDS if ctx.get_start_method() == "fork" else max(2, ROUNDS // 5)
        for r in range(rounds):
            _kill_round(pool, op, 12, target=r % 12)
            assert pool.map(sqr, range(1000), chunksize=1) == [x * x for x in range(1000)]
        pids = [p.pid for p in pool._pool]
    pool.join()
    wait_gone(pids)


def count_run(a):
    """Count each run of task ``i``; task ``target`` kills its worker."""
    i, counts, target = a
    counts[i] += 1
    if i == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return i


def test_a_death_inside_a_batch_blames_one_task_and_runs_the_rest_once(ctx):
    """Tiny tasks travel in batches: a worker killed in the middle of one
    fails the task it ran, and the rest of its batch runs elsewhere, once."""
    n = 600
    with ctx.Pool(2) as pool:
        assert pool.map(sqr, range(3000), chunksize=1) == [x * x for x in range(3000)]
        assert pool._core._batch > 1, "tiny tasks should travel in batches"
        for target in (n // 3, 2 * n // 3):
            counts = mp.RawArray("i", n)
            it = pool.imap(count_run, [(i, counts, target) for i in range(n)], chunksize=1)
            got, failed = [], []
            for i in range(n):
                try:
                    got.append(it.next(HANG))
                except mp.WorkerLostError:
                    failed.append(i)
            assert failed == [target]
            assert got == [i for i in range(n) if i != target]
            assert list(counts) == [1] * n, [i for i in range(n) if counts[i] != 1]


def test_a_task_over_its_timeout_kills_its_worker(ctx):
    with ctx.Pool(2, task_timeout=0.5) as pool:
        before = set(pool.map(pid_of, range(50), chunksize=1))
        slow = pool.apply_async(time.sleep, (HANG,))
        quick = [pool.apply_async(sqr, (i,)) for i in range(20)]
        with pytest.raises(mp.TaskTimeoutError) as e:
            slow.get(HANG)
        assert isinstance(e.value, TimeoutError) and isinstance(e.value, mp.TimeoutError)
        assert [r.get(HANG) for r in quick] == [i * i for i in range(20)]
        # The killed worker is replaced (spawn takes a while to start one).
        deadline = time.monotonic() + HANG
        while not (len(pool._pool) == 2 and all(p.is_alive() for p in pool._pool)
                   and {p.pid for p in pool._pool} - before):
            assert time.monotonic() < deadline, "the timed-out worker was not replaced"
            time.sleep(0.01)
        assert pool.map(sqr, range(100), chunksize=1) == [x * x for x in range(100)]


def test_max_tasks_per_child_recycles_workers(ctx):
    with ctx.Pool(2, maxtasksperchild=3) as pool:
        pids = [pool.apply_async(pid_of).get(HANG) for _ in range(30)]
    pool.join()
    counts = {p: pids.count(p) for p in set(pids)}
    assert max(counts.values()) <= 3 and len(counts) >= 10, counts


def test_retry_runs_a_task_again_after_its_worker_died():
    counter = mp.Value("i", 0)
    with mp.Pool(2, on_worker_death=mp.Retry(2)) as pool:
        assert pool.apply(die_first_time, (counter,)) == "second try"
        assert counter.value == 2
        with pytest.raises(mp.WorkerLostError):
            pool.apply_async(die_always).get(HANG)  # 1 try + 2 retries, then fails
        assert pool.apply(sqr, (7,)) == 49


def test_break_policy_fails_every_pending_task():
    with mp.Pool(1, on_worker_death="break") as pool:
        doomed = pool.apply_async(die_always)
        pending = [pool.apply_async(time.sleep, (0.05,)) for _ in range(5)]
        with pytest.raises(mp.WorkerLostError):
            doomed.get(HANG)
        for r in pending:
            with pytest.raises(BrokenProcessPool):
                r.get(HANG)
        with pytest.raises(BrokenProcessPool):
            pool.apply_async(sqr, (1,))


def test_a_restart_storm_breaks_the_pool_instead_of_forking_for_ever():
    # A task that kills every worker it reaches, retried without end.
    with mp.Pool(2, on_worker_death=mp.Retry(10**6), restart_limit=(5, 60)) as pool:
        with pytest.raises(BrokenProcessPool, match="restart_limit 5"):
            pool.apply_async(die_always).get(HANG)
    # An initializer that always raises.
    counter = mp.Value("i", 0)
    pool = mp.Pool(2, initializer=bad_initializer, initargs=(counter,), restart_limit=(4, 60))
    with pytest.raises(BrokenProcessPool):
        pool.apply_async(sqr, (1,)).get(HANG)
    pool.terminate()
    pool.join()
    assert counter.value <= 2 + 4 + 1, counter.value


def test_terminate_fails_pending_tasks_instead_of_hanging():
    pool = mp.Pool(2)
    running = pool.map_async(time.sleep, [HANG] * 6, chunksize=1)
    it = pool.imap(time.sleep, itertools.repeat(HANG))
    pids = [p.pid for p in pool._pool]
    pool.terminate()
    with pytest.raises(BrokenProcessPool):
        running.get(HANG)
    with pytest.raises(BrokenProcessPool):
        it.next(HANG)
    pool.join()
    wait_gone(pids)


def test_imap_reads_an_endless_input_at_its_consumers_pace():
    produced = [0]

    def numbers():
        for x in itertools.count():
            produced[0] += 1
            yield x

    with mp.Pool(2) as pool:
        it = pool.imap(sqr, numbers())
        for k in range(500):
            assert next(it) == k * k
            # Never more than the look-ahead (64 results) past the consumer.
            assert produced[0] <= k + 1 + 64 + 1, (k, produced[0])
        # An endless imap left unread does not starve the jobs behind it.
        unordered = pool.imap_unordered(sqr, itertools.count(), chunksize=7)
        assert len({next(unordered) for _ in range(500)}) == 500
        assert pool.map(sqr, range(100)) == [x * x for x in range(100)]
        assert produced[0] <= 500 + 64 + 1


def test_the_pool_serves_many_threads_at_once():
    with mp.Pool(2) as pool:
        out = {}

        def client(k):
            out[k] = [pool.apply(sqr, (k * 1000 + i,)) for i in range(50)] + pool.map(sqr, range(k, k + 50))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG)
        for k in range(4):
            assert out[k] == [(k * 1000 + i) ** 2 for i in range(50)] + [x * x for x in range(k, k + 50)]


def test_executor_fails_one_future_per_dead_worker_and_serves_on():
    with mp.ProcessPoolExecutor(2) as ex:
        pid = mp.Value("q", 0, lock=False)
        release = mp.Event()
        futures = [ex.submit(hold, i, 3, pid, release) for i in range(8)]
        victim = wait_for_pid(pid)
        os.kill(victim, signal.SIGKILL)
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result(HANG))
            except mp.WorkerLostError as e:
                assert isinstance(e, BrokenProcessPool) and e.pid == victim
                outcomes.append("lost")
        release.set()
        assert outcomes == [0, 1, 2, "lost", 4, 5, 6, 7]
        assert list(ex.map(sqr, range(100), chunksize=7)) == [x * x for x in range(100)]


def test_executor_task_timeout():
    with mp.ProcessPoolExecutor(1, task_timeout=0.3) as ex:
        f = ex.submit(time.sleep, HANG)
        with pytest.raises(TimeoutError):
            f.result(HANG)
        assert ex.submit(sqr, 5).result(HANG) == 25


def _raise(_value):
    raise RuntimeError("a callback that raises")


def raise_key():
    raise KeyError("task")


def test_a_raising_callback_neither_hangs_its_result_nor_stops_the_pool():
    with mp.Pool(2) as pool:
        r = pool.apply_async(sqr, (3,), callback=_raise)
        assert r.get(HANG) == 9
        m = pool.map_async(sqr, range(10), callback=_raise)
        assert m.get(HANG) == [x * x for x in range(10)]
        e = pool.apply_async(raise_key, error_callback=_raise)
        with pytest.raises(KeyError):
            e.get(HANG)
        assert pool.map(sqr, range(100)) == [x * x for x in range(100)]


def test_imap_results_read_after_close_and_join():
    pool = mp.Pool(2)
    it = pool.imap(sqr, range(1000))  # more than the look-ahead
    unordered = pool.imap_unordered(sqr, range(1000), chunksize=3)
    pool.close()
    joiner = threading.Thread(target=pool.join)
    joiner.start()
    joiner.join(HANG)
    assert not joiner.is_alive(), "join() waited for an imap nobody read"
    assert list(it) == [x * x for x in range(1000)]
    assert sorted(unordered) == [x * x for x in range(1000)]


def test_terminate_from_a_callback_returns_and_join_follows():
    pool = mp.Pool(2)
    done = threading.Event()

    def stop(_exc):
        pool.terminate()  # on the pool's collector thread
        done.set()

    pool.apply_async(raise_key, error_callback=stop)
    assert done.wait(HANG), "terminate() from a callback did not return"
    joiner = threading.Thread(target=pool.join)
    joiner.start()
    joiner.join(HANG)
    assert not joiner.is_alive()


SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    import multiproc as mp
    if __name__ == "__main__":
        # As at a terminal: a runner that started this test in the
        # background (SIGINT ignored, inherited) must not hide a hang.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        pool = mp.get_context(sys.argv[1]).Pool(2)
        print(" ".join(str(p.pid) for p in pool._pool), flush=True)
        pool.map(time.sleep, [600] * 4, chunksize=1)
    """
)


def _start_script(method):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, method], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2, proc.stderr.read()
    return proc, pids


METHODS = ["fork", "spawn", "forkserver"]


@pytest.mark.parametrize("method", METHODS)
def test_ctrl_c_during_map_raises_at_once_and_leaves_no_worker(method):
    proc, pids = _start_script(method)
    # The pool exists: wherever the main thread is now (starting map or
    # waiting in it), SIGINT must surface as KeyboardInterrupt.
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=HANG)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err
    wait_gone(pids)


@pytest.mark.parametrize("method", METHODS)
def test_sigkill_of_the_parent_leaves_no_worker(method):
    """Under forkserver too, where the workers' parent is the fork server:
    they watch the pool's owner by pid and start time."""
    proc, pids = _start_script(method)
    proc.kill()
    proc.wait(HANG)
    wait_gone(pids)
