"""Pool workers on many machines: :func:`serve` runs a local
``multiproc.Pool`` that takes tasks from a Redis ``JoinableQueue``
(``multiproc worker --redis URL --queue NAME``), and :class:`Pool` submits
to it from anywhere, with ``multiprocessing.Pool``'s methods.

A task is ``(task id, reply queue, func, args, kwds)`` on the queue ``NAME``;
its result ``(task id, ok, value)`` goes to the submitting pool's own reply
queue. A worker acknowledges a task (``task_done``) once its result is on
the reply queue, so a task whose worker machine dies is run again by another
worker (at least once; a result that arrives twice is taken once). A task
whose *local* worker process dies fails with ``WorkerLostError``, as on one
machine: the task is not retried on every machine in turn.
"""

import itertools
import pickle
import queue as _queue
import sys
import threading
import time
import uuid
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.pool import (
    CLOSE,
    RUN,
    TERMINATE,
    ApplyResult,
    IMapIterator,
    IMapUnorderedIterator,
    MapResult,
    MaybeEncodingError,
    mapstar,
    starmapstar,
)

from . import redis as _redis
from ._reduction import refusing_handles as _refusing_handles

# How long the collector and the fetcher wait for one item before they look
# at their flags again.
POLL = 0.2
# Tries (0.5 s apart) at answering a task while the server does not.
ANSWER_TRIES = 60
# Reply queues a worker keeps open at most (one per submitting pool).
REPLY_HANDLES = 64


class Pool:
    """``multiprocessing.Pool``'s submitting side, for workers that
    :func:`serve` the queue ``name`` on the server at ``url`` (on any
    machine): ``apply``/``apply_async``, ``map``/``map_async``,
    ``starmap``/``starmap_async``, ``imap``, ``imap_unordered``, ``close``,
    ``join``, ``terminate`` and use as a context manager. Functions and
    arguments are pickled, so the workers must be able to import the
    functions; ``authkey`` must be the workers' (the default is this
    program's ``multiprocessing`` authkey)."""

    def __init__(self, url, name, *, authkey=None, heartbeat=5.0):
        self._url = url
        self._name = name
        self._tasks = _redis.JoinableQueue(url, name, authkey=authkey, heartbeat=heartbeat)
        self._reply_name = f"{name}:reply:{uuid.uuid4().hex}"
        self._replies = _redis.Queue(url, self._reply_name, authkey=authkey, heartbeat=heartbeat)
        self._cache = {}
        self._state = RUN
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending = {}  # task id -> (result, index)
        self._idle = threading.Condition(self._lock)
        self._collector = threading.Thread(target=self._collect, name="multiproc-redis-pool", daemon=True)
        self._collector.start()

    def __repr__(self):
        return f"<multiproc.redis.Pool {self._name!r} at {self._url!r} state={self._state}>"

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    # -- submitting

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _submit(self, result, i, func, args, kwds):
        task_id = next(self._ids)
        with self._lock:
            self._pending[task_id] = (result, i)
        try:
            self._tasks.put((task_id, self._reply_name, func, tuple(args), dict(kwds) if kwds else None))
        except BaseException:
            with self._lock:
                self._pending.pop(task_id, None)
                self._idle.notify_all()
            raise

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        """``func(*args, **kwds)`` on a worker; an ``AsyncResult``."""
        self._check_running()
        result = ApplyResult(self, callback, error_callback)
        try:
            self._submit(result, 0, func, args, kwds)
        except BaseException:
            self._cache.pop(result._job, None)
            raise
        return result

    def apply(self, func, args=(), kwds={}):
        """``func(*args, **kwds)`` on a worker; waits for the result."""
        return self.apply_async(func, args, kwds).get()

    def _map_async(self, func, iterable, mapper, chunksize, callback=None, error_callback=None):
        self._check_running()
        items = list(iterable)
        if chunksize is None:
            chunksize = max(1, -(-len(items) // 16))
        chunks = [tuple(items[i:i + chunksize]) for i in range(0, len(items), chunksize)]
        result = MapResult(self, chunksize, len(items), callback, error_callback=error_callback)
        for i, chunk in enumerate(chunks):
            self._submit(result, i, mapper, ((func, chunk),), None)
        return result

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """``map`` returning an ``AsyncResult``."""
        return self._map_async(func, iterable, mapstar, chunksize, callback, error_callback)

    def map(self, func, iterable, chunksize=None):
        """``list(map(func, iterable))`` on the workers, in chunks (default:
        about 16 chunks, so many machines share the work)."""
        return self.map_async(func, iterable, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """``starmap`` returning an ``AsyncResult``."""
        return self._map_async(func, iterable, starmapstar, chunksize, callback, error_callback)

    def starmap(self, func, iterable, chunksize=None):
        """``list(itertools.starmap(func, iterable))`` on the workers."""
        return self.starmap_async(func, iterable, chunksize).get()

    def _imap(self, cls, func, iterable, chunksize):
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize!r}")
        result = cls(self)
        n = 0
        it = iter(iterable)
        while True:
            chunk = tuple(itertools.islice(it, chunksize))
            if not chunk:
                break
            self._submit(result, n, mapstar, ((func, chunk),), None)
            n += 1
        result._set_length(n)
        return (item for chunk in result for item in chunk)

    def imap(self, func, iterable, chunksize=1):
        """The results in order, each as soon as it and those before it are
        done."""
        return self._imap(IMapIterator, func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        """The results as they finish."""
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize)

    # -- results

    def _collect(self):
        get = self._replies.get
        while True:
            with self._lock:
                if self._state == TERMINATE or (self._state == CLOSE and not self._pending):
                    return
            try:
                task_id, ok, blob = get(timeout=POLL)
            except _queue.Empty:
                continue
            except _redis.RedisServerError as e:
                # The server restarted, a connection broke: the tasks wait
                # in the queue and their results will come; look again.
                _warn(f"multiproc.redis.Pool: reading replies failed ({e!r}); retrying")
                time.sleep(POLL)
                continue
            except Exception as e:  # a reply that is no reply (dead-lettered): not one of ours
                _warn(f"multiproc.redis.Pool: a reply was refused ({e!r})")
                continue
            # The value was pickled on its own: one that does not unpickle
            # here fails its own task, not the pool.
            try:
                value = pickle.loads(blob)
            except Exception as e:
                ok, value = False, e
            with self._lock:
                entry = self._pending.pop(task_id, None)  # a second result of a redelivered task: dropped
                if not self._pending:
                    self._idle.notify_all()
            if entry is not None:
                result, i = entry
                if result._job in self._cache:
                    result._set(i, (ok, value))

    def _fail_all(self, exc):
        with self._lock:
            pending, self._pending = self._pending, {}
            self._idle.notify_all()
        for result, i in pending.values():
            if result._job in self._cache:
                result._set(i, (False, exc))

    # -- lifetime

    def close(self):
        """No more tasks; ``join`` waits for those submitted."""
        with self._lock:
            if self._state == RUN:
                self._state = CLOSE

    def terminate(self):
        """Stop waiting: tasks not answered yet fail with
        ``BrokenProcessPool`` (workers that already took them still run
        them; their results are dropped)."""
        with self._lock:
            self._state = TERMINATE
        self._fail_all(BrokenProcessPool("the pool was terminated before this task finished"))
        self._collector.join()
        self._remove_replies()

    def join(self):
        """Wait until every submitted task is answered (after ``close``)."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        with self._lock:
            while self._pending and self._state != TERMINATE:
                self._idle.wait()
        self._collector.join()
        self._remove_replies()

    def _remove_replies(self):
        try:
            _redis.remove(self._url, self._reply_name)
        except Exception:
            pass

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()


def _warn(message):
    print(message, file=sys.stderr, flush=True)


def serve(url, name, processes=None, *, authkey=None, heartbeat=5.0, stop=None, context=None):
    """Run tasks from the queue ``name`` on the server at ``url`` in a local
    ``multiproc.Pool`` of ``processes`` workers until ``stop`` (a
    ``threading.Event`` or ``multiprocessing.Event``) is set. At most two
    tasks per worker are taken at a time, so other machines get the rest."""
    from .pool import Pool as _LocalPool

    tasks = _redis.JoinableQueue(url, name, authkey=authkey, heartbeat=heartbeat)
    key = tasks._opts["authkey"]
    replies = {}
    pool = _LocalPool(processes, context=context)
    room = threading.BoundedSemaphore(2 * len(pool._pool))

    def answer(delivery_id, reply, task_id, ok, value):
        try:
            q = replies.get(reply)
            if q is None:
                if len(replies) >= REPLY_HANDLES:
                    replies.clear()
                try:
                    q = _redis.Queue._existing(url, reply, authkey=key, heartbeat=heartbeat)
                except _redis.RedisRemovedError:
                    q = None  # the pool has ended: the answer is dropped
                else:
                    replies[reply] = q
            try:
                with _refusing_handles("a Redis server"):
                    blob = pickle.dumps(value, 5)
            except Exception as e:  # a result that does not pickle
                ok, blob = False, pickle.dumps(MaybeEncodingError(e, value), 5)
            # A server that restarts or a connection that breaks: try
            # again for a while (the answer and then the acknowledgement;
            # a reply that arrives twice is taken once).
            for attempt in range(ANSWER_TRIES):
                try:
                    if q is not None:
                        try:
                            q.put((task_id, ok, blob))
                        except _redis.RedisRemovedError:
                            # The pool ended meanwhile: an answer must not
                            # bring its reply queue back.
                            replies.pop(reply, None)
                        q = None
                    tasks.task_done_for(delivery_id)
                    return
                except _redis.RedisServerError as e:
                    if attempt == ANSWER_TRIES - 1:
                        raise
                    _warn(f"multiproc worker: answering task {task_id} failed ({e!r}); retrying")
                    time.sleep(0.5)
        except Exception as e:
            # Given up: the task stays with this worker until it stops (its
            # heartbeat then lapses and another worker runs it).
            _warn(f"multiproc worker: answering task {task_id} failed ({e!r}); giving up")
        finally:
            room.release()

    try:
        while stop is None or not stop.is_set():
            if not room.acquire(timeout=POLL):
                continue
            try:
                d = tasks.get_delivery(timeout=POLL)
            except _queue.Empty:
                room.release()
                continue
            except _redis.RedisServerError as e:
                # The server restarted, a connection broke, a forged task
                # was refused: the worker goes on.
                room.release()
                _warn(f"multiproc worker: taking a task failed ({e!r}); retrying")
                time.sleep(POLL)
                continue
            except Exception as e:  # a task that does not unpickle here: dead-lettered
                room.release()
                _warn(f"multiproc worker: a task was refused ({e!r})")
                continue
            except BaseException:
                room.release()
                raise
            task_id, reply, func, args, kwds = d.value
            pool.apply_async(
                func, args, kwds or {},
                callback=lambda v, d=d, r=reply, t=task_id: answer(d.id, r, t, True, v),
                error_callback=lambda e, d=d, r=reply, t=task_id: answer(d.id, r, t, False, e),
            )
    finally:
        pool.close()
        pool.join()
