"""The interpreter exits cleanly while daemon threads wait in multiproc.

CPython 3.11-3.13 ends a daemon thread that takes the GIL back during
finalization with ``pthread_exit``; through Rust frames that aborted the
process ("FATAL: exception not rethrown", exit status 134) in about two exits
of three when a daemon thread waited in ``Queue.get``. Each script below
leaves daemon threads blocked in every kind of multiproc wait and exits."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import threading
    import multiproc as mp

    q, sq, jq = mp.Queue(), mp.SimpleQueue(), mp.JoinableQueue()
    jq.put(1)
    lock, rlock, sem = mp.Lock(), mp.RLock(), mp.Semaphore(0)
    ev, cond, barrier = mp.Event(), mp.Condition(), mp.Barrier(2)
    a, b = mp.Pipe()
    lock.acquire()
    rlock.acquire()
    started = mp.Semaphore(0)

    def waiting(f):
        def run():
            started.release()
            f()
        return run

    def cond_wait():
        with cond:
            cond.wait()

    waits = [q.get, sq.get, jq.join, lock.acquire, rlock.acquire, sem.acquire, ev.wait,
             cond_wait, barrier.wait, b.recv]
    for w in waits:
        threading.Thread(target=waiting(w), daemon=True).start()
    for _ in waits:
        started.acquire()
    print("exiting", flush=True)
    """
)


@pytest.mark.parametrize("run", range(5))
def test_exit_with_daemon_threads_blocked_in_multiproc_waits(run):
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "exiting" in p.stdout, (p.returncode, p.stderr)
