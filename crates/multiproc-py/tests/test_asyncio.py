"""asyncio: ``await`` on queues, locks, semaphores, events and connections
fed by other processes, with many tasks on one loop, cancellation at every
await point, owner death and peer death."""

import asyncio
import multiprocessing
import os
import queue
import random
import signal
import time
import warnings

import pytest

import multiproc as mp

CTX = multiprocessing.get_context("fork")


def _daemons(*procs):
    """Daemonic, so that a failed test does not wait for its children."""
    for p in procs:
        p.daemon = True
    return procs


def _produce(q, tag, n, seed):
    rng = random.Random(seed)
    for i in range(n):
        q.put((tag, i))
        if rng.random() < 0.02:
            time.sleep(rng.random() * 0.003)


def _set_later(ev, sem):
    time.sleep(0.05)
    ev.set()
    for _ in range(3):
        time.sleep(0.01)
        sem.release()


def test_many_tasks_on_one_loop_wait_on_objects_fed_by_other_processes():
    queues = [mp.Queue(16) for _ in range(3)]
    ev, sem = mp.Event(), mp.Semaphore(0)
    n = 1500
    kids = [CTX.Process(target=_produce, args=(q, t, n, t)) for t, q in enumerate(queues)]
    kids.append(CTX.Process(target=_set_later, args=(ev, sem)))
    for k in _daemons(*kids):
        k.start()

    async def getter(q):
        mine = []
        while True:
            tag, i = await q.get_async()
            if i is None:
                return mine
            mine.append((tag, i))

    async def main():
        getters = [asyncio.create_task(getter(q)) for q in queues for _ in range(3)]
        assert await ev.wait_async(timeout=30)
        for _ in range(3):
            assert await sem.acquire_async(timeout=30)
        # The producers end; then one sentinel per getter.
        await asyncio.get_running_loop().run_in_executor(None, lambda: [k.join() for k in kids])
        for q in queues:
            for _ in range(3):
                await q.put_async((0, None))
        got = []
        for g in getters:
            got.extend(await g)
        return got

    got = asyncio.run(asyncio.wait_for(main(), 120))
    assert len(got) == 3 * n, "items lost or duplicated"
    assert len(set(got)) == len(got)
    assert all(k.exitcode == 0 for k in kids)


def _produce_plain(q, n):
    rng = random.Random(5)
    for i in range(n):
        q.put(i)
        if rng.random() < 0.25:
            time.sleep(rng.random() * 0.002)


def test_a_thousand_random_cancels_lose_no_item():
    q = mp.Queue(8)
    n = 6000
    (p,) = _daemons(CTX.Process(target=_produce_plain, args=(q, n)))
    p.start()
    rng = random.Random(11)

    async def main():
        got, cancels = [], 0
        while len(got) < n:
            try:
                got.append(await asyncio.wait_for(q.get_async(), rng.random() * 0.001))
            except (asyncio.TimeoutError, TimeoutError):
                cancels += 1
        return got, cancels

    got, cancels = asyncio.run(main())
    p.join(30)
    assert cancels >= 1000, f"only {cancels} cancels: the test did not test"
    assert got == list(range(n)), "lost, duplicated or reordered items"
    with pytest.raises(queue.Empty):
        q.get_nowait()


def _hold_and_die(lock, held):
    lock.acquire()
    held.set()
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGKILL)


def test_owner_death_while_awaiting_a_lock_is_owner_died():
    lock, held = mp.Lock(), mp.Event()
    (p,) = _daemons(CTX.Process(target=_hold_and_die, args=(lock, held)))
    p.start()

    async def main():
        assert await held.wait_async(timeout=30)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert await lock.acquire_async(timeout=30)
        return w

    w = asyncio.run(main())
    assert any(issubclass(x.category, mp.OwnerDiedWarning) for x in w)
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    lock.release()
    assert lock.acquire(timeout=1)


def _hello_then_die(conn):
    conn.send("hello")
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_peer_death_while_awaiting_recv_is_eof():
    a, b = mp.Pipe()
    (p,) = _daemons(CTX.Process(target=_hello_then_die, args=(b,)))
    p.start()
    b.close()

    async def main():
        assert await a.recv_async() == "hello"
        with pytest.raises(EOFError):
            await asyncio.wait_for(a.recv_async(), 30)

    asyncio.run(main())
    p.join(10)


def _work(q):
    while True:
        i = q.get()
        time.sleep(0.0005)
        q.task_done()
        if i is None:
            return


def test_join_async_put_async_and_timeouts():
    q = mp.JoinableQueue(2)
    (p,) = _daemons(CTX.Process(target=_work, args=(q,)))
    p.start()

    async def main():
        for i in range(100):
            await q.put_async(i)
        await q.join_async()
        await q.put_async(None)
        await q.join_async()
        empty = mp.Queue(1)
        with pytest.raises(queue.Empty):
            await empty.get_async(timeout=0.05)
        await empty.put_async(1)
        with pytest.raises(queue.Full):
            await empty.put_async(2, timeout=0.05)
        assert not await mp.Event().wait_async(timeout=0.05)
        assert not await mp.Semaphore(0).acquire_async(timeout=0.05)
        held = mp.Lock()
        held.acquire()
        assert not await held.acquire_async(timeout=0.05)

    asyncio.run(asyncio.wait_for(main(), 60))
    p.join(10)
    assert p.exitcode == 0


def test_no_thread_per_call():
    q = mp.Queue()

    async def main():
        tasks = [asyncio.create_task(q.get_async()) for _ in range(50)]
        # Let every task reach its wait: each runs a bounded number of steps
        # (its yields, then registering and awaiting its eventfd), one per
        # turn of the loop; no clock involved.
        for _ in range(1000):
            await asyncio.sleep(0)
        assert not any(t.done() for t in tasks)
        threads = len(os.listdir(f"/proc/{os.getpid()}/task"))
        for i in range(50):
            q.put(i)
        got = sorted(await asyncio.gather(*tasks))
        return threads, got

    before = len(os.listdir(f"/proc/{os.getpid()}/task"))
    threads, got = asyncio.run(main())
    assert got == list(range(50))
    # 50 waiting tasks: at most multiproc's one waiter thread more.
    assert threads <= before + 1, (before, threads)


def _message(i):
    n = 1000 + (i * 7919) % 150_000
    return i.to_bytes(4, "little") + bytes([i % 251]) * (n - 4)


def _check_messages(conn, out, n):
    """Receive slowly (so the pipe fills), report the indices that came."""
    got = []
    while True:
        m = conn.recv_bytes()
        if m == b"end":
            break
        i = int.from_bytes(m[:4], "little")
        assert m == _message(i), f"message {i} torn"
        got.append(i)
        if len(got) % 4 == 0:
            time.sleep(0.002)
    out.put(got)


def test_send_async_through_a_full_pipe_with_cancels_sends_whole_messages():
    r, w = mp.Pipe(duplex=False)
    out = mp.Queue()
    n = 600
    (p,) = _daemons(CTX.Process(target=_check_messages, args=(r, out, n)))
    p.start()
    r.close()

    async def main():
        rng = random.Random(7)
        completed, cancels = [], 0
        for i in range(n):
            if rng.random() < 0.4:
                # Cancelled after 1 to 3 turns of the loop, not after a
                # time: the pipe is full more often than not, so the cancel
                # lands before the first byte or after it, whatever the
                # machine's speed.
                t = asyncio.ensure_future(w.send_bytes_async(_message(i)))
                for _ in range(rng.randint(1, 3)):
                    await asyncio.sleep(0)
                    if t.done():
                        break
                t.cancel()
                try:
                    await t
                    completed.append(i)
                except asyncio.CancelledError:
                    cancels += 1
            else:
                await w.send_bytes_async(_message(i))
                completed.append(i)
        await w.send_bytes_async(b"end")
        return completed, cancels

    completed, cancels = asyncio.run(asyncio.wait_for(main(), 120))
    got = out.get(timeout=60)
    p.join(10)
    assert p.exitcode == 0
    assert cancels >= 20, cancels
    # Some cancelled sends had started: their rest went out first.
    assert set(got) - set(completed), "no send was cancelled part-way"
    # Every completed send arrived; a cancelled one whole or not at all;
    # nothing twice, nothing out of order.
    assert got == sorted(set(got))
    assert set(completed) <= set(got)
    assert set(got) <= set(range(n))


def _echo_objects(conn):
    while True:
        obj = conn.recv()
        if obj is None:
            return
        conn.send(obj)


def test_send_async_and_recv_async_round_trip_objects():
    a, b = mp.Pipe()
    (p,) = _daemons(CTX.Process(target=_echo_objects, args=(b,)))
    p.start()
    b.close()

    async def main():
        for i in range(200):
            obj = {"i": i, "blob": b"x" * (i * 997)}
            await a.coro_send(obj)
            assert await a.recv_async() == obj
        await a.send_async(None)

    asyncio.run(asyncio.wait_for(main(), 60))
    p.join(10)
    assert p.exitcode == 0


def _meet(b, out, rounds):
    for r in range(rounds):
        out.put((r, b.wait()))


def test_barrier_wait_async_meets_blocking_parties_and_cancels_cleanly():
    import threading

    b = mp.Barrier(3)
    out = mp.Queue()
    rounds = 50
    procs = _daemons(*(CTX.Process(target=_meet, args=(b, out, rounds)) for _ in range(2)))
    for p in procs:
        p.start()

    async def main():
        mine = [await b.wait_async() for _ in range(rounds)]
        # A cancelled party leaves the barrier as if it never arrived.
        for _ in range(10):
            with pytest.raises((asyncio.TimeoutError, TimeoutError)):
                await asyncio.wait_for(b.wait_async(), 0.01)
            assert b.n_waiting == 0
            assert not b.broken
        # A timeout of the barrier's own breaks it, as with wait().
        with pytest.raises(threading.BrokenBarrierError):
            await b.wait_async(timeout=0.02)
        assert b.broken
        return mine

    mine = asyncio.run(asyncio.wait_for(main(), 60))
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    seen = [[] for _ in range(rounds)]
    for _ in range(2 * rounds):
        r, i = out.get(timeout=10)
        seen[r].append(i)
    for r in range(rounds):
        assert sorted(seen[r] + [mine[r]]) == [0, 1, 2], r


def _send_numbers(conn, n):
    for i in range(n):
        conn.send(i)
        if i % 50 == 0:
            time.sleep(0.001)


def test_tasks_awaiting_one_connection_all_wake():
    """Several tasks ``recv_async`` on one connection at once: each message
    reaches one of them, and none is left asleep."""
    a, b = mp.Pipe()
    n = 2000
    (p,) = _daemons(CTX.Process(target=_send_numbers, args=(b, n)))
    p.start()
    b.close()

    async def main():
        got = []

        async def take():
            # With one reader callback per descriptor and task, a task
            # whose callback was replaced sleeps through the end and the
            # outer timeout fails the test.
            while True:
                try:
                    got.append(await a.recv_async())
                except EOFError:
                    return

        await asyncio.gather(*(take() for _ in range(4)))
        return got

    got = asyncio.run(asyncio.wait_for(main(), 30))
    p.join(10)
    assert sorted(got) == list(range(n))


def test_closing_a_connection_wakes_the_tasks_awaiting_it():
    a, b = mp.Pipe()

    async def main():
        waiting = asyncio.ensure_future(a.recv_async())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done()
        a.close()
        with pytest.raises(OSError):
            await asyncio.wait_for(waiting, 10)
        # The number, reused by a new connection, starts afresh.
        c, d = mp.Pipe()
        d.send("fresh")
        assert await asyncio.wait_for(c.recv_async(), 10) == "fresh"

    asyncio.run(main())


_PARENT = os.getpid()


def _slow_unless_parent():
    if os.getpid() != _PARENT:
        time.sleep(1.0)


def _wait_reporting(b, out):
    import threading

    try:
        b.wait()
        out.put("passed")
    except threading.BrokenBarrierError:
        out.put("broken")


def test_a_party_cancelled_between_a_barriers_two_phases_breaks_it():
    """With an action, a barrier has two phases; a task cancelled between
    them breaks the barrier instead of leaving the others waiting for ever
    in the second."""
    b = mp.Barrier(2, action=_slow_unless_parent)
    out = mp.Queue()
    (p,) = _daemons(CTX.Process(target=_wait_reporting, args=(b, out)))
    p.start()
    deadline = time.monotonic() + 10
    while b.n_waiting < 1:
        assert time.monotonic() < deadline
        time.sleep(0.001)

    async def main():
        # The child arrived first (index 0): it runs the slow action while
        # this task waits in the second phase, where it is cancelled.
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await asyncio.wait_for(b.wait_async(), 0.3)

    asyncio.run(main())
    assert out.get(timeout=10) == "broken"
    p.join(10)
    assert p.exitcode == 0
    assert b.broken
