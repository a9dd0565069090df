"""``multiproc.Pool``: ``multiprocessing.Pool`` that never hangs.

What differs from ``multiprocessing.Pool`` is what happens when things go
wrong:

- **A worker that dies** (``kill -9``, the OOM killer, a segfault) fails
  exactly the task it was running with :class:`WorkerLostError` (pid, exit
  code or signal) and is replaced; the pool serves the other tasks. The
  standard library's pool waits for that task for ever (CPython issue 96062).
  ``on_worker_death`` chooses: ``"fail"`` that task (the default),
  ``Retry(n)`` it up to ``n`` times, or ``"break"`` the pool (every pending
  task fails with ``BrokenProcessPool``, as ``ProcessPoolExecutor`` does).
- **``task_timeout=``** seconds: a task over its time kills its worker (which
  is replaced) and raises :class:`TaskTimeoutError` (both a
  ``multiprocessing.TimeoutError`` and a builtin ``TimeoutError``).
- **A restart storm** (an initializer that raises, a task that kills its
  worker every time) ends in ``BrokenProcessPool`` once more than
  ``restart_limit = (count, seconds)`` workers died abnormally within that
  many seconds, not in a fork bomb.
- **The parent's death kills the workers**, ``SIGKILL`` included; Ctrl-C in
  the parent raises ``KeyboardInterrupt`` at once (the workers ignore
  ``SIGINT`` and go when the interpreter exits); ``terminate()`` fails the
  tasks still pending instead of leaving their ``get()`` waiting for ever.
- **``imap``/``imap_unordered`` read their input lazily**, a bounded number of
  tasks ahead of the workers, so an endless generator is fine.

How it works: each worker has its own multiproc ``Queue`` of orders; the
parent hands each one at most two chunks at a time and the results come back
on one shared queue. Before a worker runs a chunk it writes the chunk's id in
a shared-memory slot and clears it after its result is in the queue, so the
parent knows which chunk a dead worker was running; the chunks it had not
started go to another worker. A supervisor thread waits on the workers'
sentinels, reports a death through the result queue (after everything the
worker put there) and starts the replacement.
"""

import atexit
import builtins as _builtins
import collections
import itertools
import logging as _logging
import os
import signal
import sys
import threading
import traceback
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.process import _ExceptionWithTraceback as _FuturesExceptionWithTraceback
from multiprocessing import TimeoutError as _MpTimeoutError
from multiprocessing import connection as _mp_connection
from multiprocessing import get_context as _mp_get_context
from multiprocessing import util as _util
from multiprocessing.pool import (  # noqa: F401  (re-exported for drop-in use)
    CLOSE,
    RUN,
    TERMINATE,
    ApplyResult,
    AsyncResult,
    ExceptionWithTraceback,
    IMapIterator,
    IMapUnorderedIterator,
    MapResult,
    MaybeEncodingError,
    RemoteTraceback,
    job_counter,
    mapstar,
    starmapstar,
)

from ._multiproc import exit_with, exit_with_parent, process_start_time
from .queues import SimpleQueue
from .sharedctypes import RawArray

__all__ = [
    "Pool", "AsyncResult", "ApplyResult", "MapResult", "IMapIterator", "IMapUnorderedIterator",
    "WorkerLostError", "TaskTimeoutError", "BrokenProcessPool", "Retry", "MaybeEncodingError",
    "RemoteTraceback", "TimeoutError",
]

TimeoutError = _MpTimeoutError

# Orders handed to one worker at a time: the one it runs and the next, so it
# never waits for the parent between two. An order is a batch of tasks
# (chunks): one task while tasks are long, more as they get shorter, up to
# BATCH_MAX, so a batch holds about BATCH_NS of work. Tasks of microseconds
# would otherwise leave each worker waiting for the parent's round trip
# after every two of them.
DEPTH = 2
BATCH_MAX = 32
BATCH_NS = 2_000_000
# Reports the collector handles under one lock.
DRAIN = 64
# Tasks the feeder reads from one job's iterable per turn.
FEED_BATCH = 32
# Results an imap may run ahead of its consumer (at least 4 per worker).
LOOKAHEAD = 64


class WorkerLostError(BrokenProcessPool):
    """The worker running this task died: ``pid``, ``exitcode`` (as
    ``Process.exitcode``: negative for a signal) and ``signal`` (the signal
    number, or ``None``). A ``BrokenProcessPool``, as
    ``ProcessPoolExecutor`` raises, but only this task failed: the worker was
    replaced and the pool serves the others."""

    def __init__(self, pid, exitcode):
        self.pid = pid
        self.exitcode = exitcode
        self.signal = -exitcode if exitcode is not None and exitcode < 0 else None
        if self.signal is not None:
            try:
                how = "signal " + signal.Signals(self.signal).name
            except ValueError:
                how = f"signal {self.signal}"
        else:
            how = f"exit code {exitcode}"
        super().__init__(f"the worker (pid {pid}) running this task died ({how})")

    def __reduce__(self):
        return (type(self), (self.pid, self.exitcode))




class TaskTimeoutError(_MpTimeoutError, _builtins.TimeoutError):
    """The task ran longer than the pool's ``task_timeout``; its worker was
    killed and replaced. Both a ``multiprocessing.TimeoutError`` and a builtin
    ``TimeoutError``."""

    def __init__(self, timeout):
        self.timeout = timeout
        super().__init__(f"the task ran longer than its task_timeout of {timeout} s; its worker was killed")

    def __reduce__(self):
        return (type(self), (self.timeout,))


class Retry:
    """``on_worker_death=Retry(n)``: run a task whose worker died again, up
    to ``n`` more times, then fail it with :class:`WorkerLostError`. A task
    that timed out is not retried."""

    def __init__(self, n):
        if not isinstance(n, int) or n < 1:
            raise ValueError("Retry(n) needs an int n >= 1")
        self.n = n

    def __repr__(self):
        return f"Retry({self.n})"


def _policy(on_worker_death):
    if isinstance(on_worker_death, Retry):
        return ("retry", on_worker_death.n)
    if on_worker_death in ("fail", "break"):
        return (on_worker_death, 0)
    raise ValueError(f"on_worker_death must be 'fail', 'break' or Retry(n), not {on_worker_death!r}")


# ----------------------------------------------------------------- worker side

def _worker(orders, results, slots, seat, owner, initializer, initargs, maxtasks, futures_mode):
    """A worker's life: die with the pool's owner, run the initializer, then
    run orders until ``None``, the orders' end or ``maxtasks``."""
    pid, start = owner
    if os.getppid() == pid:
        exit_with_parent(pid)
    elif start is not None:
        # Started by a fork server: watch the owner by pid and start time
        # (a worker whose owner is gone already dies at once).
        exit_with(pid, start)
    # Ctrl-C reaches the whole foreground group; the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    get = orders._raw.get
    put = results._raw.put
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as e:
            # Tell the parent, which breaks the pool: an initializer that
            # fails once fails in every replacement (the standard library's
            # Pool restarts such workers for ever; its executor breaks).
            if futures_mode:
                _logging.getLogger("concurrent.futures").critical("Exception in initializer:", exc_info=True)
            else:
                traceback.print_exc()
            # The pool breaks when this worker's death is reported (after it
            # exited, its logging flushed), not when this message arrives.
            slots[2 * seat] = _INIT_FAILED_SLOT
            put((0, _INIT_FAILED, f"a worker's initializer raised {e!r}", 0))
            sys.exit(1)
    at = 2 * seat
    clock = time.monotonic_ns
    # A future gets whatever its call raised, SystemExit included, as the
    # standard library's executor does; a Pool task, an Exception.
    catch = BaseException if futures_mode else Exception
    done = 0
    while maxtasks is None or done < maxtasks:
        order = get()
        if order is None:
            break
        # A batch of tasks (the parent never hands more than maxtasks).
        for seq, func, args, kwds in order:
            # The start time first, then the id: the supervisor reads id,
            # time, id and trusts the time only when both ids agree.
            slots[at + 1] = start = clock()
            slots[at] = seq
            try:
                ok, value = True, (func(*args, **kwds) if kwds else func(*args))
            except catch as e:
                if futures_mode:
                    e = _FuturesExceptionWithTraceback(e, e.__traceback__)
                else:
                    e = ExceptionWithTraceback(e, e.__traceback__)
                ok, value = False, e
            # The run time sizes the parent's batches.
            took = clock() - start
            try:
                put((seq, ok, value, took))
            except catch as e:
                if futures_mode:
                    wrapped = _FuturesExceptionWithTraceback(e, e.__traceback__)
                else:
                    wrapped = MaybeEncodingError(e, value)
                put((seq, False, wrapped, took))
            # Cleared only once the result is in the queue: a death before
            # this blames exactly this task, and its result (if any) is
            # ahead of the death notice in the queue. A death between two
            # tasks of a batch blames none: the rest go to another worker.
            slots[at] = 0
            func = args = kwds = value = None
            done += 1
        order = None


# ----------------------------------------------------------------- parent side

# Cores whose threads run (a strong reference until the collector ends).
_live_cores = set()


def _exit_all():
    """At interpreter exit, before finalization: terminate the pools (as the
    standard library's finalizer does) and let executors finish their
    pending futures, so no pool thread is left to wake during finalization."""
    for core in list(_live_cores):
        if core._pid != os.getpid():
            continue  # a forked child's copy: the parent's pool, not ours
        try:
            if core._futures_mode:
                core.close()
                core.join()
            else:
                core.terminate()  # joins all but a feeder that may block
        except Exception:
            pass


atexit.register(_exit_all)

# Control records on the result queue: (0, kind, payload, 0).
_DIED = 1
_STOP = 2
_INIT_FAILED = 3
# A worker's slot after its initializer raised (no replacement for it).
_INIT_FAILED_SLOT = -1


class _Task:
    __slots__ = ("seq", "job", "i", "func", "args", "kwds", "tries", "seat", "claimed")

    def __init__(self, seq, job, i, func, args, kwds):
        self.seq = seq
        self.job = job
        self.i = i
        self.func = func
        self.args = args
        self.kwds = kwds
        self.tries = 0
        self.seat = None
        self.claimed = False


class _Feed:
    __slots__ = ("job", "it", "set_length", "total", "fed", "failed")

    def __init__(self, job, tasks, set_length, total):
        self.job = job
        self.it = iter(tasks)
        self.set_length = set_length
        self.total = total  # the number of tasks, when known (map)
        self.fed = 0
        self.failed = False

    def fail_rest(self, ready, exc):
        """Fail the tasks not fed yet: a ``map`` result completes only once
        every chunk reported; an ``imap`` ends after the failure."""
        last = max(self.total or 0, self.fed + 1)
        for i in range(self.fed, last):
            ready.append((self.job, i, (False, exc)))
        if self.set_length is not None:
            ready.append((self.set_length, None, self.fed + 1))


class _Seat:
    """One worker incarnation: its process, its own order queue, the orders
    it was handed and has not answered (oldest first)."""

    __slots__ = ("index", "gen", "proc", "orders", "put", "outstanding", "sent", "alive", "timed_out")

    def __init__(self, index, gen, proc, orders):
        self.index = index
        self.gen = gen
        self.proc = proc
        self.orders = orders
        self.put = orders._raw.put
        self.outstanding = collections.deque()
        self.sent = 0
        self.alive = True
        self.timed_out = 0


class _Core:
    """The pool's machinery, shared by :class:`Pool` and
    ``multiproc.ProcessPoolExecutor``. Its threads hold the core, not the
    façade, so an unreferenced ``Pool`` is collected (and terminated)."""

    def __init__(self, processes, initializer, initargs, maxtasks, ctx, task_timeout,
                 on_worker_death, restart_limit, futures_mode, lazy=False):
        self._ctx = ctx
        self._pid = os.getpid()
        # Who the workers die with: this process, by pid and start time.
        self._owner = (self._pid, process_start_time(self._pid))
        self._processes = processes
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._maxtasks = maxtasks
        self._task_timeout = task_timeout
        self._policy, self._retries = _policy(on_worker_death)
        count, per = restart_limit
        self._restart_count = int(count)
        self._restart_per = float(per)
        self._restarts = collections.deque()
        self._futures_mode = futures_mode

        self._cache = {}
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # the feeder waits here
        self._state = RUN
        self._broken = None
        self._terminate_requested = False
        self._init_error = None
        self._finishing = False
        self._seq = itertools.count(1)
        self._tasks = {}
        self._backlog = collections.deque()
        self._ready = []
        self._dead = {}
        self._feeds = collections.deque()
        self._feeder_waiting = False
        self._backlog_high = max(64, 8 * processes)
        # Tasks per order, from the tasks' mean run time (nanoseconds, as
        # the workers measure it): one until tasks prove short.
        self._batch = 1
        self._run_ns = float(BATCH_NS)
        self._lookahead = max(LOOKAHEAD, 4 * processes)

        self._results = SimpleQueue()
        self._slots = RawArray("q", 2 * processes)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        self._seats = [None] * processes
        self._gens = [0] * processes
        # Workers started on demand (the executor, as the standard
        # library's): seats not started yet, and those starting now.
        self._lazy = lazy
        self._starting = set()
        self._fork = lazy and ctx.get_start_method() == "fork"
        self._fork_all = False

        try:
            if not lazy:
                for i in range(processes):
                    self._install(i, self._start_worker(i))
        except BaseException:
            self._kill_all()
            raise

        self._collector = threading.Thread(target=self._collect, name="multiproc-pool-collector", daemon=True)
        self._supervisor = threading.Thread(target=self._supervise, name="multiproc-pool-supervisor", daemon=True)
        self._feeder = threading.Thread(target=self._feed, name="multiproc-pool-feeder", daemon=True)
        self._collector.start()
        self._supervisor.start()
        self._feeder.start()
        _live_cores.add(self)

    # -- workers

    def _start_worker(self, index):
        orders = SimpleQueue()
        proc = self._ctx.Process(
            target=_worker,
            args=(orders, self._results, self._slots, index, self._owner, self._initializer,
                  self._initargs, self._maxtasks, self._futures_mode),
            daemon=True,
        )
        proc.name = proc.name.replace("Process", "PoolWorker")
        proc.start()
        return proc, orders

    def _install(self, index, started):
        proc, orders = started
        self._gens[index] += 1
        seat = _Seat(index, self._gens[index], proc, orders)
        with self._lock:
            self._seats[index] = seat
            self._starting.discard(index)
            if self._state == TERMINATE or self._broken is not None:
                proc.kill()
            elif self._state != RUN and not self._pending_locked():
                self._stop_seat_locked(seat)
            else:
                self._fill_locked(seat)
            ready = self._take_ready_locked()
        self._deliver(ready)
        self._wake()  # the supervisor watches the new worker

    def _unstarted_locked(self):
        for i, seat in enumerate(self._seats):
            if seat is None and i not in self._starting:
                return i
        return None

    def _start_needed(self):
        """Start workers for tasks no started worker has room for, one per
        ``DEPTH`` of them, up to ``processes`` (lazy cores)."""
        while True:
            with self._lock:
                if self._state == TERMINATE or self._broken is not None:
                    return
                # Under fork all start at the first task, as the standard
                # library's executor does (fork pre-spawns, not on demand).
                if self._fork and self._backlog:
                    self._fork_all = True  # the first task starts them all
                if not self._fork_all:
                    if len(self._backlog) <= DEPTH * len(self._starting):
                        return
                index = self._unstarted_locked()
                if index is None:
                    return
                self._starting.add(index)
            try:
                started = self._start_worker(index)
            except BaseException as e:
                with self._lock:
                    self._starting.discard(index)
                if not isinstance(e, Exception):
                    raise
                self._break(f"cannot start a worker: {e!r}")
                return
            # `_install` takes it out of `_starting` as it seats it, so the
            # supervisor never sees neither.
            self._install(index, started)

    def _kill_all(self):
        for seat in self._seats:
            if seat is not None and seat.proc.exitcode is None:
                try:
                    seat.proc.kill()
                except Exception:
                    pass

    @property
    def processes(self):
        return [s.proc for s in self._seats if s is not None]

    # -- submitting

    def _check_running_locked(self):
        if self._broken is not None:
            raise BrokenProcessPool(self._broken)
        if self._state != RUN:
            raise ValueError("Pool not running")

    def submit(self, job, i, func, args, kwds, start=True):
        """Queue one task of ``job`` (index ``i``); with ``start``, start a
        worker for it if the core is lazy and none has room (else the
        caller does, with :meth:`start_needed`, holding no lock: a fork
        copies held locks)."""
        with self._lock:
            self._check_running_locked()
            self._add_locked(job, i, func, args, kwds)
            ready = self._take_ready_locked()
        self._deliver(ready)
        if self._lazy and start:
            # In the caller, as the standard library's executor does.
            self._start_needed()

    def start_needed(self):
        """Start the workers queued tasks need (lazy cores)."""
        if self._lazy:
            self._start_needed()

    def submit_many(self, job, tasks, set_length=None, total=None):
        """Queue a job's tasks, read lazily from the iterable ``tasks`` of
        ``(func, args)`` by the feeder thread; an exception from the iterable
        fails the job at that index. ``set_length(n)`` is called once the
        iterable ends."""
        feed = _Feed(job, tasks, set_length, total)
        if hasattr(job, "_taken"):
            job._feed = feed  # an imap: its consumer reads how far it is fed
        with self._lock:
            self._check_running_locked()
            self._feeds.append(feed)
            self._room.notify_all()

    def cancel_pending(self):
        """Drop the tasks no worker was handed whose job is a future; return
        those futures (to be cancelled outside the lock)."""
        with self._lock:
            out = []
            keep = collections.deque()
            for seq in self._backlog:
                task = self._tasks.get(seq)
                if task is None:
                    continue
                future = getattr(task.job, "future", None)
                if future is not None and not task.claimed:
                    del self._tasks[seq]
                    self._cache.pop(task.job._job, None)
                    out.append(future)
                else:
                    keep.append(seq)
            self._backlog = keep
            ready = self._take_ready_locked()
        self._deliver(ready)
        return out

    def _add_locked(self, job, i, func, args, kwds):
        seq = next(self._seq)
        task = _Task(seq, job, i, func, args, kwds)
        self._tasks[seq] = task
        self._backlog.append(seq)
        self._dispatch_locked()

    def _feed(self):
        """The feeder thread: read the jobs' task iterables in turn (one
        endless ``imap`` does not starve the jobs behind it), each at most
        ``_backlog_high`` tasks ahead of the workers and an ``imap`` at most
        ``LOOKAHEAD`` results ahead of its consumer. The iterables are read
        outside the lock."""
        while True:
            with self._lock:
                while True:
                    if self._state == TERMINATE or self._broken is not None:
                        return  # _fail_all_locked failed what was left
                    feed = self._next_feed_locked()
                    if feed is not None:
                        break
                    if not self._feeds and self._state != RUN:
                        return
                    self._feeder_waiting = True
                    self._room.wait()
                    self._feeder_waiting = False
                n = self._feed_room_locked(feed)
            batch = []
            ended = failed = None
            it = feed.it  # (dropped only once the feed is over)
            try:
                for _ in range(n):
                    batch.append(next(it))
            except StopIteration:
                ended = True
            except BaseException as e:  # SystemExit from a generator too
                failed = e
            with self._lock:
                if not feed.failed:
                    for func, args in batch:
                        task = _Task(next(self._seq), feed.job, feed.fed, func, args, None)
                        self._tasks[task.seq] = task
                        self._backlog.append(task.seq)
                        feed.fed += 1
                    self._dispatch_locked()
                    self._feeds.remove(feed)
                    if failed is not None:
                        feed.fail_rest(self._ready, failed)
                        self._ready.append((_drop, None, feed))
                    elif ended:
                        if feed.set_length is not None:
                            self._ready.append((feed.set_length, None, feed.fed))
                        self._ready.append((_drop, None, feed))
                    else:
                        self._feeds.append(feed)  # its turn is over
                ready = self._take_ready_locked()
            self._deliver(ready)
            # Keep no task's arguments alive while waiting.
            feed = it = batch = ready = failed = func = args = task = None

    def _next_feed_locked(self):
        if len(self._backlog) >= self._backlog_high:
            return None
        for feed in self._feeds:
            if self._feed_room_locked(feed) > 0:
                return feed
        return None

    def _feed_room_locked(self, feed):
        room = min(FEED_BATCH, self._backlog_high - len(self._backlog))
        taken = getattr(feed.job, "_taken", None)
        # After close() the input is read to its end (close(); join() before
        # reading the results is a common pattern).
        if taken is not None and self._state == RUN:
            room = min(room, self._lookahead - (feed.fed - taken))
        return room

    # -- dispatch (under the lock)

    def _dispatch_locked(self):
        if not self._backlog:
            return
        best = None
        for seat in self._seats:
            if seat is not None and seat.alive and self._has_room(seat):
                if best is None or len(seat.outstanding) < len(best.outstanding):
                    best = seat
                    if not seat.outstanding:
                        break
        if best is not None:
            self._fill_locked(best)
            if self._backlog:
                self._dispatch_locked()

    def _has_room(self, seat):
        """Whether ``seat`` is down to its last order (``DEPTH`` 2): it is
        then handed the next."""
        return len(seat.outstanding) <= (DEPTH - 1) * self._batch and (
            self._maxtasks is None or seat.sent < self._maxtasks
        )

    def _fill_locked(self, seat):
        """Hand ``seat`` orders from the backlog while it has room: batches
        of up to ``_batch`` tasks, no more than its share of the backlog
        (the other workers get theirs)."""
        backlog = self._backlog
        tasks = self._tasks
        batch = self._batch
        if not (backlog and seat.alive and self._has_room(seat)):
            return self._maybe_wake_feeder_locked()
        budget = DEPTH * batch - len(seat.outstanding)
        if budget > 1:
            alive = sum(1 for s in self._seats if s is not None and s.alive)
            budget = min(budget, -(-len(backlog) // max(alive, 1)))
        if self._maxtasks is not None:
            budget = min(budget, self._maxtasks - seat.sent)
        while backlog and seat.alive and budget > 0:
            n = min(batch, budget)
            budget -= n
            picked = []
            while backlog and len(picked) < n:
                seq = backlog.popleft()
                task = tasks.get(seq)
                if task is None:
                    continue
                if not task.claimed:
                    claim = getattr(task.job, "_claim", None)
                    if claim is not None and not claim():  # a cancelled future
                        del tasks[seq]
                        continue
                    task.claimed = True
                picked.append(task)
            if not picked:
                continue
            try:
                seat.put([(t.seq, t.func, t.args, t.kwds) for t in picked])
            except Exception:
                # A task that does not pickle: alone, each fails or goes
                # on its own.
                sent = []
                for task in picked:
                    try:
                        seat.put([(task.seq, task.func, task.args, task.kwds)])
                    except Exception as e:
                        del tasks[task.seq]
                        self._ready.append((task.job, task.i, (False, e)))
                    else:
                        sent.append(task)
                picked = sent
            for task in picked:
                task.seat = seat
                seat.outstanding.append(task.seq)
            seat.sent += len(picked)
        self._maybe_wake_feeder_locked()

    def _maybe_wake_feeder_locked(self):
        if self._feeder_waiting and len(self._backlog) < self._backlog_high // 2:
            self._room.notify_all()

    def _ran_locked(self, ns):
        """Tasks ran ``ns`` nanoseconds on average: resize the batches."""
        run = self._run_ns = self._run_ns + (ns - self._run_ns) * 0.25
        self._batch = max(1, min(BATCH_MAX, int(BATCH_NS // max(run, 1.0))))

    def _take_ready_locked(self):
        ready = self._ready
        if ready:
            self._ready = []
        self._maybe_finish_locked()
        return ready

    def _deliver(self, ready):
        """Set results outside the lock (callbacks run here). Nothing a
        result's code raises ends the thread delivering it."""
        n = len(ready)
        k = 0
        while k < n:
            job, i, obj = ready[k]
            k += 1
            try:
                if i is None:  # (set_length, None, n)
                    job(obj)
                elif job._job in self._cache:
                    many = getattr(job, "_set_many", None)
                    if many is not None and k < n and ready[k][0] is job:
                        # Consecutive results of one imap_unordered: one
                        # lock and one wake-up for all.
                        objs = [obj]
                        while k < n and ready[k][0] is job:
                            objs.append(ready[k][2])
                            k += 1
                        many(objs)
                    else:
                        job._set(i, obj)
            except BaseException:
                _report("delivering a result")

    # -- results

    def _collect(self):
        """The collector thread: results and death notices, in queue order,
        handled as many as are there (up to ``DRAIN``) under one lock."""
        get = self._results._raw.get
        empty = self._results._raw.empty
        failures = 0
        while True:
            msgs = []
            error = None
            try:
                msgs.append(get())
                while len(msgs) < DRAIN and not empty():
                    msgs.append(get(False))  # this thread is the only reader
            except BaseException as e:  # a record that cannot be read (SystemExit too)
                error = e
            stop = False
            if msgs:
                failures = 0
                with self._lock:
                    refill = None
                    ran = ran_ns = 0
                    for seq, a, b, ns in msgs:
                        if seq:
                            task = self._tasks.pop(seq, None)
                            if task is None:
                                continue
                            seat = task.seat
                            out = seat.outstanding
                            if out and out[0] == seq:
                                out.popleft()
                            elif seq in out:
                                # Not there only for a retried task whose
                                # first worker's result surfaced after all.
                                out.remove(seq)
                            self._ready.append((task.job, task.i, (a, b)))
                            ran += 1
                            ran_ns += ns
                            if refill is None:
                                refill = [seat]
                            elif seat not in refill:
                                refill.append(seat)
                        elif a == _STOP:
                            stop = True
                        elif a == _INIT_FAILED:
                            self._init_error = b
                        elif a == _DIED:
                            self._on_died_locked(*self._dead.pop(b))
                            self._dispatch_locked()
                    if ran:
                        self._ran_locked(ran_ns / ran)
                    if refill is not None and self._backlog:
                        for seat in refill:
                            self._fill_locked(seat)
                    ready = self._take_ready_locked()
                self._deliver(ready)
                # Keep no result alive while waiting for the next.
                msgs = a = b = task = ready = refill = seat = None
            if stop:
                _live_cores.discard(self)
                return
            if error is not None:
                self._break(f"the pool cannot read a worker's report: {error!r}")
                error = None
                failures += 1
                if failures >= 3:
                    # The queue itself fails (a corrupted ring), not one
                    # record: the broken pool failed every task; stop
                    # instead of spinning on it.
                    _live_cores.discard(self)
                    return

    def _fail_locked(self, task, exc):
        self._tasks.pop(task.seq, None)
        self._ready.append((task.job, task.i, (False, exc)))

    def _on_died_locked(self, seat, pid, exitcode, running, timed_out, ours):
        requeue = []
        lost = None
        for seq in seat.outstanding:
            task = self._tasks.get(seq)
            if task is None:
                continue
            if seq != running:
                requeue.append(seq)  # never started: another worker runs it
            elif timed_out:
                self._fail_locked(task, TaskTimeoutError(self._task_timeout))
            else:
                lost = WorkerLostError(pid, exitcode)
                if self._policy == "retry" and task.tries < self._retries and not ours:
                    task.tries += 1
                    requeue.append(seq)
                else:
                    self._fail_locked(task, lost)
        seat.outstanding.clear()
        self._backlog.extendleft(reversed(requeue))
        if self._init_error is not None:
            self._break_locked(self._init_error)
            return
        if self._policy == "break" and exitcode not in (0, None) and not ours and self._state == RUN:
            self._break_locked(f"a worker (pid {pid}) died (exit code {exitcode})")

    # -- breaking, finishing

    def _break(self, why):
        with self._lock:
            self._break_locked(why)
            ready = self._take_ready_locked()
        self._deliver(ready)

    def _break_locked(self, why):
        if self._broken is not None:
            return
        self._broken = why
        self._fail_all_locked(BrokenProcessPool(why))
        self._kill_all()
        self._room.notify_all()
        self._wake()

    def _fail_all_locked(self, exc):
        for task in list(self._tasks.values()):
            self._fail_locked(task, exc)
        self._backlog.clear()
        for feed in self._feeds:
            feed.failed = True
            feed.fail_rest(self._ready, exc)
            # Its iterable is dropped outside the lock (a generator's
            # finally blocks run then).
            self._ready.append((_drop, None, feed))
        self._feeds.clear()

    def _pending_locked(self):
        return bool(self._tasks) or bool(self._feeds)

    def _maybe_finish_locked(self):
        """After ``close()``, once nothing is pending, tell each worker to
        stop (once)."""
        if self._state == CLOSE and not self._finishing and not self._pending_locked():
            self._finishing = True
            for seat in self._seats:
                if seat is not None and seat.alive:
                    self._stop_seat_locked(seat)
            self._wake()

    def _stop_seat_locked(self, seat):
        try:
            seat.put(None)
        except Exception:
            seat.proc.kill()

    def close(self):
        with self._lock:
            if self._state == RUN:
                self._state = CLOSE
                self._room.notify_all()
                self._maybe_finish_locked()
            ready = self._take_ready_locked()
        self._deliver(ready)
        self._wake()

    def terminate(self):
        with self._lock:
            first = self._state != TERMINATE
            if first:
                self._state = TERMINATE
                self._fail_all_locked(BrokenProcessPool("the pool was terminated before this task finished"))
                self._room.notify_all()
                ready = self._take_ready_locked()
                self._kill_all()
        if first:
            self._deliver(ready)
            self._wake()
        # Synchronous, as the standard library's: the workers are reaped and
        # the pool's threads are done when it returns (not the feeder, which
        # may be inside a user's iterable). Not from one of the pool's own
        # threads (a callback, a finalizer run by GC there): the supervisor
        # and the collector wait for each other's ends. A second call (the
        # supervisor may be terminating already, for a finalizer) waits as
        # well: a caller that went on to exit the interpreter while the
        # collector still ran made it abort ("FATAL: exception not
        # rethrown" when the collector took the GIL back mid-finalization).
        own = (self._supervisor, self._collector, self._feeder)
        if threading.current_thread() not in own:
            for t in (self._supervisor, self._collector):
                t.join()

    def terminate_soon(self):
        """``terminate()`` by the supervisor: for finalizers, which GC may
        run in any thread, even one holding the pool's lock."""
        self._terminate_requested = True
        self._wake()

    def join(self):
        for t in (self._feeder, self._supervisor, self._collector):
            if t is not threading.current_thread():
                t.join()
        for seat in self._seats:
            if seat is not None:
                seat.proc.join()

    # -- supervision

    def _wake(self):
        with self._wake_lock:
            if self._wake_w < 0:
                return
            try:
                os.write(self._wake_w, b"x")
            except OSError:  # full: a wake-up is pending anyway
                pass

    def _tick(self):
        if self._task_timeout is None:
            return None
        return min(0.05, self._task_timeout / 4)

    def _supervise(self):
        """The supervisor thread: reap dead workers, report each death
        through the result queue, start replacements, kill timed-out
        tasks."""
        try:
            while True:
                live = {s.proc.sentinel: s for s in self._seats if s is not None and s.alive}
                with self._lock:
                    done = not live and (
                        self._broken is not None
                        or self._state == TERMINATE
                        or (self._state == CLOSE and not self._pending_locked() and not self._starting)
                    )
                if done:
                    break
                ready = _mp_connection.wait(list(live) + [self._wake_r], self._tick())
                if self._terminate_requested:
                    self.terminate()
                if self._wake_r in ready:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                for fd in ready:
                    seat = live.get(fd)
                    if seat is not None:
                        self._reap(seat)
                if self._task_timeout is not None:
                    self._check_timeouts()
        finally:
            self._results._raw.put((0, _STOP, None, 0))
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_w = -1

    def check_workers(self):
        """Reap dead workers and start their replacements now (for
        ``Pool._repopulate_pool``)."""
        for seat in list(self._seats):
            if seat is not None and seat.alive and not seat.proc.is_alive():
                self._reap(seat)

    def _reap(self, seat):
        with self._lock:
            if not seat.alive:
                return
            seat.alive = False
        seat.proc.join()
        exitcode = seat.proc.exitcode
        at = 2 * seat.index
        running = self._slots[at]
        self._slots[at] = 0
        # An initializer that raised: the collector breaks the pool when it
        # reads this death (after the worker's report); no replacement.
        init_failed = running == _INIT_FAILED_SLOT
        if init_failed:
            running = 0
        timed_out = running != 0 and running == seat.timed_out
        # Killed by the pool for a timeout: not a death to count or to break
        # on, even when the kill landed on the next task (which then fails
        # with WorkerLostError: it did start).
        ours = seat.timed_out != 0
        key = (seat.index, seat.gen)
        with self._lock:
            if init_failed and self._init_error is None:
                self._init_error = "a worker's initializer failed"
            self._dead[key] = (seat, seat.proc.pid, exitcode, running, timed_out, ours)
            # (An exit code of None: another thread reaped it first; unknown.)
            abnormal = exitcode not in (0, None) and not ours and not init_failed
            if abnormal:
                now = time.monotonic()
                self._restarts.append(now)
                while self._restarts and self._restarts[0] < now - self._restart_per:
                    self._restarts.popleft()
            storm = abnormal and len(self._restarts) > self._restart_count
            replace = (self._broken is None and not storm and not init_failed and self._state != TERMINATE
                       and (self._state == RUN or self._pending_locked()))
        # After everything the worker put: its results are handled first.
        self._results._raw.put((0, _DIED, key, 0))
        if storm:
            self._break(
                f"{len(self._restarts)} workers died within {self._restart_per:g} s "
                f"(restart_limit {self._restart_count}); the last exit code was {exitcode}"
            )
            return
        if replace:
            try:
                started = self._start_worker(seat.index)
            except Exception as e:
                self._break(f"cannot start a replacement worker: {e!r}")
                return
            self._install(seat.index, started)

    def _check_timeouts(self):
        limit = int(self._task_timeout * 1e9)
        now = time.monotonic_ns()
        slots = self._slots
        for seat in self._seats:
            if seat is None or not seat.alive:
                continue
            at = 2 * seat.index
            seq = slots[at]
            if seq <= 0:  # idle, or its initializer failed
                continue
            started = slots[at + 1]
            if slots[at] != seq or now - started <= limit:
                continue
            seat.timed_out = seq
            try:
                seat.proc.kill()
            except Exception:
                pass


def _drop(feed):
    """Drop a failed feed's iterable (its ``imap`` result keeps the feed)."""
    feed.it = None


def _report(what):
    """Print the exception being handled, as a thread's uncaught one would
    be, without ending the pool thread that met it."""
    print(f"Exception in a multiproc pool while {what}:", file=sys.stderr)
    traceback.print_exc()


def _guarded(callback):
    """``callback``, reporting what it raises instead of raising it (a
    result's ``_set`` must reach its event)."""
    if callback is None:
        return None

    def call(value):
        try:
            callback(value)
        except BaseException:
            _report("running a callback")

    return call


class _LockedMapResult(MapResult):
    """A ``MapResult`` whose chunks may be set from several threads (the
    standard library's is set from one): its count and completion under a
    lock, and nothing after completion."""

    def __init__(self, *args, **kwargs):
        self._set_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _set(self, i, success_result):
        with self._set_lock:
            if self._job in self._cache:
                super()._set(i, success_result)


class _Counting:
    """An ``imap`` iterator that tells the pool when its consumer takes a
    result, so its input is read only ``LOOKAHEAD`` results ahead."""

    def _init_counting(self, core):
        self._taken = 0
        self._taken_lock = threading.Lock()  # consumers may be several threads
        self._feed = None
        self._core = core

    def next(self, timeout=None):
        try:
            value = super().next(timeout)
        except (StopIteration, TimeoutError):
            raise
        except Exception:  # a failed task: taken too
            self._took()
            raise
        self._took()
        return value

    __next__ = next

    def _took(self):
        with self._taken_lock:
            taken = self._taken = self._taken + 1
        core = self._core
        # The feeder waits under the pool's lock once every feed is a
        # look-ahead ahead of its consumer: wake it when this one has room
        # for a feed batch. A wake-up missed here (the feeder about
        # to wait, not waiting yet) is made by the next take: the feeder
        # waits only with a whole look-ahead of results still to take.
        if core._feeder_waiting:
            feed = self._feed
            if feed is None or feed.fed - taken <= core._lookahead - FEED_BATCH:
                with core._lock:
                    if core._feeder_waiting:
                        core._room.notify_all()


class _IMapIterator(_Counting, IMapIterator):
    def __init__(self, pool, core):
        IMapIterator.__init__(self, pool)
        self._init_counting(core)


class _IMapUnorderedIterator(_Counting, IMapUnorderedIterator):
    def __init__(self, pool, core):
        IMapUnorderedIterator.__init__(self, pool)
        self._init_counting(core)

    def _set_many(self, objs):
        """``_set`` of several results (their order is completion order)."""
        with self._cond:
            self._items.extend(objs)
            self._index += len(objs)
            self._cond.notify(len(objs))
            if self._index == self._length:
                del self._cache[self._job]
                self._pool = None


def _default_chunksize(n, processes):
    chunksize, extra = divmod(n, processes * 4)
    return chunksize + 1 if extra else chunksize


class Pool:
    """``multiprocessing.Pool(processes, initializer, initargs,
    maxtasksperchild, context)`` that never hangs; see the module docs.

    Keyword-only additions: ``task_timeout`` (seconds per task; its worker
    is killed), ``on_worker_death`` (``"fail"``, ``"break"`` or
    ``Retry(n)``) and ``restart_limit`` (``(count, seconds)``, default
    ``(50, 10.0)``).
    """

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, task_timeout=None, on_worker_death="fail", restart_limit=(50, 10.0)):
        self._state = RUN
        self._core = None
        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if task_timeout is not None and not task_timeout > 0:
            raise ValueError("task_timeout must be a positive number of seconds or None")
        _policy(on_worker_death)
        ctx = context if context is not None else _mp_get_context()
        self._processes = processes
        self._core = _Core(processes, initializer, initargs, maxtasksperchild, ctx, task_timeout,
                           on_worker_death, restart_limit, False)
        self._cache = self._core._cache
        self._terminate = _util.Finalize(self, self._core.terminate_soon, exitpriority=15)

    @property
    def _pool(self):
        return self._core.processes

    def _repopulate_pool(self):
        self._core.check_workers()

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self):
        return f"<{type(self).__module__}.{type(self).__qualname__} state={self._state} pool_size={self._processes}>"

    def __del__(self, _warn=warnings.warn, RUN=RUN):
        if getattr(self, "_state", None) == RUN and getattr(self, "_core", None) is not None:
            _warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, source=self)

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    # -- the operations

    def apply(self, func, args=(), kwds={}):
        """``func(*args, **kwds)`` in a worker; waits for the result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        """``func(*args, **kwds)`` in a worker; returns an ``AsyncResult``."""
        self._check_running()
        result = ApplyResult(self, _guarded(callback), _guarded(error_callback))
        try:
            self._core.submit(result, 0, func, tuple(args), dict(kwds) if kwds else None)
        except BaseException:
            self._cache.pop(result._job, None)
            raise
        return result

    def map(self, func, iterable, chunksize=None):
        """``list(map(func, iterable))`` in the workers, in chunks."""
        return self._map_async(func, iterable, mapstar, chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        """``list(itertools.starmap(func, iterable))`` in the workers."""
        return self._map_async(func, iterable, starmapstar, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """``map`` that returns an ``AsyncResult``."""
        return self._map_async(func, iterable, mapstar, chunksize, callback, error_callback)

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """``starmap`` that returns an ``AsyncResult``."""
        return self._map_async(func, iterable, starmapstar, chunksize, callback, error_callback)

    def _map_async(self, func, iterable, mapper, chunksize=None, callback=None, error_callback=None):
        self._check_running()
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        if chunksize is None:
            chunksize = _default_chunksize(len(iterable), self._processes)
        if len(iterable) == 0:
            chunksize = 0
        result = _LockedMapResult(self, chunksize, len(iterable), _guarded(callback),
                                  error_callback=_guarded(error_callback))
        if chunksize:
            tasks = ((mapper, ((func, chunk),)) for chunk in _chunks(iterable, chunksize))
            self._submit_many(result, tasks, total=result._number_left)
        return result

    def imap(self, func, iterable, chunksize=1):
        """An ordered iterator of ``func(x)``, reading ``iterable`` lazily."""
        return self._imap(_IMapIterator, func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        """``imap`` in completion order."""
        return self._imap(_IMapUnorderedIterator, func, iterable, chunksize)

    def _imap(self, iterator, func, iterable, chunksize):
        self._check_running()
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0!r}".format(chunksize))
        result = iterator(self, self._core)
        if chunksize == 1:
            self._submit_many(result, ((func, (x,)) for x in iterable), result._set_length)
            return result
        tasks = ((mapstar, ((func, chunk),)) for chunk in _chunks(iterable, chunksize))
        self._submit_many(result, tasks, result._set_length)
        return (item for chunk in result for item in chunk)

    def _submit_many(self, result, tasks, set_length=None, total=None):
        try:
            self._core.submit_many(result, tasks, set_length, total)
        except BaseException:
            self._cache.pop(result._job, None)
            raise

    # -- lifetime

    def close(self):
        """No more tasks; the workers exit once the pending ones are done."""
        if self._state == RUN:
            self._state = CLOSE
        self._core.close()

    def terminate(self):
        """Kill the workers now; pending tasks fail with ``BrokenProcessPool``."""
        self._state = TERMINATE
        self._terminate.cancel()  # the finalizer is not needed any more
        self._core.terminate()

    def join(self):
        """Wait for the workers to exit (after ``close()`` or ``terminate()``)."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        self._core.join()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()

    @staticmethod
    def redis(url, name, **kwargs):
        """A pool whose workers are on other machines: a
        ``multiproc.redis.Pool`` submitting to the Redis queue ``name``,
        which ``multiproc worker --redis URL --queue NAME`` serves."""
        from ._redis_pool import Pool as _RedisPool

        return _RedisPool(url, name, **kwargs)


def _chunks(iterable, size):
    it = iter(iterable)
    while True:
        chunk = tuple(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk
