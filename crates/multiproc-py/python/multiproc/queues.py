"""``Queue``, ``SimpleQueue`` and ``JoinableQueue`` on multiproc's shared
memory ring: no feeder thread, no pipe; ``put`` returns once the item is in
shared memory."""

import queue as _queue

from . import _aio, _reduction
from ._multiproc import RawQueue

__all__ = ["Queue", "SimpleQueue", "JoinableQueue"]


class Queue:
    """``multiprocessing.Queue(maxsize=0)``: a process-shared FIFO queue.

    ``bytes`` and ``bytearray`` items travel as raw bytes; other objects are
    pickled (protocol 5, large buffers out of band). ``put`` raises
    ``queue.Full`` and ``get`` ``queue.Empty`` as in ``multiprocessing``.
    """

    _joinable = False

    def __init__(self, maxsize=0, *, ctx=None):
        if maxsize <= 0:
            maxsize = 0
        self._setstate(RawQueue(maxsize, self._joinable), maxsize)

    def _setstate(self, raw, maxsize):
        self._raw = raw
        self._maxsize = maxsize
        self._closed = False
        # The native methods themselves, until close() (no Python frame).
        self.put = raw.put
        self.get = raw.get

    def __reduce__(self):
        joinable, state, fds = self._raw._state()
        return (
            _reduction.rebuild,
            (type(self), RawQueue._rebuild, (joinable,), state, _reduction.dup_fds(fds), self._maxsize),
        )

    def _check_closed(self):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj, block=True, timeout=None):
        """Put ``obj``; waits for room if ``block`` (at most ``timeout`` s)."""
        if self._closed:
            self._check_closed()
        self._raw.put(obj, block, timeout)

    def get(self, block=True, timeout=None):
        """Remove and return an item; waits if ``block`` (at most ``timeout`` s)."""
        if self._closed:
            self._check_closed()
        return self._raw.get(block, timeout)

    def put_nowait(self, obj):
        """``put(obj, False)``."""
        return self.put(obj, False)

    async def get_async(self, timeout=None):
        """``await`` an item without blocking the event loop (at most
        ``timeout`` s, then ``queue.Empty``). A cancelled call takes no item."""
        if self._closed:
            self._check_closed()
        try:
            return self._raw.get(False)
        except _queue.Empty:
            pass
        return await _aio.with_timeout(_aio.drive(self._raw._get_async()), timeout, _raise(_queue.Empty))

    async def put_async(self, obj, timeout=None):
        """``await`` room and put ``obj`` without blocking the event loop (at
        most ``timeout`` s, then ``queue.Full``). A cancelled call puts nothing."""
        if self._closed:
            self._check_closed()
        try:
            return self._raw.put(obj, False)
        except _queue.Full:
            pass
        return await _aio.with_timeout(_aio.drive(self._raw._put_async(obj)), timeout, _raise(_queue.Full))

    # The names aioprocessing uses.
    coro_get = get_async
    coro_put = put_async

    def get_nowait(self):
        """``get(False)``."""
        return self.get(False)

    def qsize(self):
        """The number of items in the queue."""
        return self._raw.qsize()

    def empty(self):
        """Whether the queue is empty. After ``close()`` of a queue this
        handle put to, ``OSError``, as in ``multiprocessing`` (whose feeder
        thread closes the reader)."""
        if self._closed and self._raw._used:
            raise OSError("handle is closed")
        return self._raw.empty()

    def full(self):
        """Whether the queue holds ``maxsize`` items."""
        return self._raw.full()

    def close(self):
        """No more ``put``/``get`` through this handle (other handles and
        processes are unaffected, as in ``multiprocessing``)."""
        self._closed = True
        self.__dict__.pop("put", None)
        self.__dict__.pop("get", None)

    def join_thread(self):
        """Nothing to wait for: items are in shared memory once ``put``
        returns. Like ``multiprocessing``, only valid after ``close()``."""
        assert self._closed, "Queue {0!r} not closed".format(self)

    def cancel_join_thread(self):
        """Nothing to cancel (there is no feeder thread)."""

    def __repr__(self):
        return f"<{type(self).__module__}.{type(self).__qualname__} object at {id(self):#x}>"


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: a ``Queue`` with ``task_done``/``join``."""

    _joinable = True

    def task_done(self):
        """Mark one item done; ``ValueError`` if called more often than ``put``."""
        self._raw.task_done()

    def join(self):
        """Wait until every item put has been marked done."""
        self._raw.join()

    async def join_async(self):
        """``await`` every item put being marked done, without blocking the
        event loop."""
        await _aio.drive(self._raw._join_async())

    coro_join = join_async


class SimpleQueue:
    """``multiprocessing.SimpleQueue``: an unbounded queue with ``put``, ``get``, ``empty``, ``close``."""

    def __init__(self, *, ctx=None):
        self._setstate(RawQueue(0, False), None)

    def _setstate(self, raw, _extra):
        self._raw = raw
        self._closed = False

    def __reduce__(self):
        _joinable, state, fds = self._raw._state()
        return (
            _reduction.rebuild,
            (type(self), RawQueue._rebuild, (False,), state, _reduction.dup_fds(fds), None),
        )

    def _check_closed(self):
        # multiprocessing's SimpleQueue.close() closes its pipe's ends.
        if self._closed:
            raise OSError("handle is closed")

    def put(self, obj):
        """Put ``obj``."""
        self._check_closed()
        self._raw.put(obj)

    def get(self):
        """Remove and return an item, waiting for one."""
        self._check_closed()
        return self._raw.get()

    def empty(self):
        """Whether the queue is empty (``OSError`` after ``close()``)."""
        self._check_closed()
        return self._raw.empty()

    def close(self):
        """Close this handle."""
        self._closed = True


def _raise(exc):
    def on_timeout():
        raise exc()

    return on_timeout
