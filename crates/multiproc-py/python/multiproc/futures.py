"""``multiproc.ProcessPoolExecutor``: a ``concurrent.futures`` executor on
the machinery of :class:`multiproc.Pool`.

Where it differs from ``concurrent.futures.ProcessPoolExecutor``: a worker
that dies fails only the future of the task it was running, with
:class:`multiproc.WorkerLostError` (a ``BrokenProcessPool``, so code that
catches that keeps working); the worker is replaced and the executor keeps
serving. ``on_worker_death="break"`` gives the standard library's behaviour
(every pending future fails and the executor is broken for good).
``task_timeout=`` kills the worker of a task over its time and fails that
future with :class:`multiproc.TaskTimeoutError` (a builtin
``TimeoutError``). ``max_tasks_per_child`` works with every start method,
``fork`` included.
"""

import os
import threading
import weakref
from concurrent.futures import _base
from concurrent.futures.process import (
    BrokenProcessPool,
    _chain_from_iterable_of_lists,
    _get_chunks,
    _process_chunk,
)
from functools import partial
from multiprocessing import get_context as _mp_get_context

from .pool import Retry, TaskTimeoutError, WorkerLostError, _Core, job_counter

__all__ = [
    "ProcessPoolExecutor", "BrokenProcessPool", "WorkerLostError", "TaskTimeoutError", "Retry",
]

_live = weakref.WeakSet()
_exiting = False


def _python_exit():
    """At interpreter exit, as the standard library's executor does: no new
    futures, and the pending ones run to completion."""
    global _exiting
    _exiting = True
    for ex in list(_live):
        if ex._core._pid == os.getpid():  # not a forked child's copy
            ex.shutdown(wait=True)


threading._register_atexit(_python_exit)


class _FutureJob:
    """A submitted call, as the pool core sees a job: ``_claim`` when a
    worker is handed it (``False`` for a cancelled future), ``_set`` with
    ``(ok, value)``."""

    __slots__ = ("_job", "_cache", "future", "__weakref__")

    def __init__(self, cache, future):
        self._job = next(job_counter)
        self._cache = cache
        self.future = future
        cache[self._job] = self

    def _claim(self):
        if self.future.set_running_or_notify_cancel():
            return True
        self._cache.pop(self._job, None)
        return False

    def _set(self, _i, obj):
        self._cache.pop(self._job, None)
        ok, value = obj
        try:
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)
        except _base.InvalidStateError:  # cancelled before a worker had it
            pass


class ProcessPoolExecutor(_base.Executor):
    """``concurrent.futures.ProcessPoolExecutor(max_workers, mp_context,
    initializer, initargs, max_tasks_per_child=...)`` whose workers' deaths
    fail single futures; see the module docs.

    Keyword-only additions, as :class:`multiproc.Pool` has them:
    ``task_timeout``, ``on_worker_death`` (``"fail"``, ``"break"`` or
    ``Retry(n)``) and ``restart_limit`` (``(count, seconds)``).
    """

    def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=(), *,
                 max_tasks_per_child=None, task_timeout=None, on_worker_death="fail",
                 restart_limit=(50, 10.0)):
        self._core = None
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if mp_context is None:
            # As the standard library: a worker that exits after its tasks
            # is replaced by spawn unless a context says otherwise.
            mp_context = _mp_get_context("spawn" if max_tasks_per_child is not None else None)
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        if task_timeout is not None and not task_timeout > 0:
            raise ValueError("task_timeout must be a positive number of seconds or None")
        self._max_workers = max_workers
        self._mp_context = mp_context
        self._shutdown_lock = threading.Lock()
        self._shutdown_thread = False
        self._core = _Core(max_workers, initializer, initargs, max_tasks_per_child, mp_context,
                           task_timeout, on_worker_death, restart_limit, True, lazy=True)
        _live.add(self)

    @property
    def _processes(self):
        return {p.pid: p for p in self._core.processes}

    @property
    def _broken(self):
        return self._core._broken or False

    def submit(self, fn, /, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` in a worker; returns a ``Future``."""
        try:
            with self._shutdown_lock:
                if self._core._broken is not None:
                    raise BrokenProcessPool(self._core._broken)
                if self._shutdown_thread:
                    raise RuntimeError("cannot schedule new futures after shutdown")
                if _exiting:
                    raise RuntimeError("cannot schedule new futures after interpreter shutdown")
                f = _base.Future()
                job = _FutureJob(self._core._cache, f)
                try:
                    self._core.submit(job, 0, fn, args, kwargs or None, start=False)
                except BaseException:
                    self._core._cache.pop(job._job, None)
                    raise
            return f
        finally:
            # Outside the lock (starting a worker may fork), and whatever
            # interrupts the caller: a queued task needs a worker.
            self._core.start_needed()

    submit.__doc__ = _base.Executor.submit.__doc__

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """``map(fn, *iterables)`` in the workers, ``chunksize`` calls per
        task; results in order (``TimeoutError`` past ``timeout``)."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        results = super().map(partial(_process_chunk, fn), _get_chunks(*iterables, chunksize=chunksize),
                              timeout=timeout)
        return _chain_from_iterable_of_lists(results)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No new futures; with ``cancel_futures`` the ones no worker has
        started are cancelled; with ``wait``, return once the workers
        exited."""
        with self._shutdown_lock:
            self._shutdown_thread = True
            cancelled = self._core.cancel_pending() if cancel_futures else ()
            self._core.close()
        for f in cancelled:
            f.cancel()
        if wait:
            self._core.join()

    shutdown.__doc__ = _base.Executor.shutdown.__doc__

    def __del__(self):
        core = getattr(self, "_core", None)
        if core is not None:
            try:
                core.close()  # graceful: the pending futures still finish
            except Exception:
                pass
