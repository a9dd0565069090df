"""Process-shared ``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``,
``Condition``, ``Event`` and ``Barrier``.

A lock whose holder died holding it (SIGKILL) is acquired anyway by the
next caller, with a :class:`multiproc.OwnerDiedWarning`. Unlike
``multiprocessing``, these objects may be pickled at any time (sent over a
queue or pipe, or to a child of any start method).
"""

import threading
import time

from . import _reduction
from . import _aio
from ._multiproc import RawBarrier, RawCondition, RawEvent, RawLock, RawRLock, RawSemaphore

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier"]


class _Handle:
    _raw_type = None

    def _setstate(self, raw, extra):
        self._raw = raw

    def _extra(self):
        return None

    def __reduce__(self):
        state, fds = self._raw._state()
        return (
            _reduction.rebuild,
            (type(self), self._raw_type._rebuild, (), state, _reduction.dup_fds(fds), self._extra()),
        )


def _rebuild_lock(cls, state, dfs):
    return cls(_state=state, _fds=_reduction.detach_fds(dfs))


class _LockBase:
    # The native class is the base: acquire, release, __enter__ and __exit__
    # run without a Python frame.
    @property
    def _raw(self):
        return self

    def __reduce__(self):
        state, fds = self._state()
        return (_rebuild_lock, (type(self), state, _reduction.dup_fds(fds)))


class Lock(_LockBase, RawLock):
    """``multiprocessing.Lock``: a non-recursive lock any process may release.

    ``acquire(block=True, timeout=None)``, ``release()``, ``with lock:``.
    """

    def __repr__(self):
        return f"<Lock({'locked' if self._is_locked() else 'unlocked'})>"

    async def acquire_async(self, timeout=None):
        """``await`` the lock without blocking the event loop; ``False`` after
        ``timeout`` s. A cancelled call holds no lock. A lock whose owner
        died is taken with an ``OwnerDiedWarning``, as by ``acquire``."""
        if self.acquire(False):
            return True
        return await _aio.with_timeout(_aio.drive(self._acquire_async()), timeout, lambda: False)

    coro_acquire = acquire_async


class RLock(_LockBase, RawRLock):
    """``multiprocessing.RLock``: a recursive lock owned by one thread of one process."""

    def __repr__(self):
        return f"<RLock({'locked' if self._is_locked() else 'unlocked'})>"


class Semaphore(_Handle):
    """``multiprocessing.Semaphore(value=1)``."""

    _raw_type = RawSemaphore
    _bounded = False

    def __init__(self, value=1, *, ctx=None):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._setstate(RawSemaphore(value, self._bounded), None)

    def _setstate(self, raw, extra):
        self._raw = raw
        self.acquire = raw.acquire

    def acquire(self, block=True, timeout=None):
        """Take a permit; ``False`` if none was taken."""
        return self._raw.acquire(block, timeout)

    async def acquire_async(self, timeout=None):
        """``await`` a permit without blocking the event loop; ``False`` after
        ``timeout`` s. A cancelled call takes no permit."""
        if self._raw.acquire(False):
            return True
        return await _aio.with_timeout(_aio.drive(self._raw._acquire_async()), timeout, lambda: False)

    coro_acquire = acquire_async

    def release(self, n=1):
        """Return ``n`` permits (``ValueError`` past a bounded semaphore's value)."""
        self._raw.release(n)

    def get_value(self):
        """The number of permits available."""
        return self._raw.get_value()

    def __enter__(self):
        return self._raw.acquire()

    def __exit__(self, *args):
        self._raw.release()

    def __repr__(self):
        return f"<{type(self).__name__}(value={self.get_value()})>"


class BoundedSemaphore(Semaphore):
    """``multiprocessing.BoundedSemaphore``: releasing past the initial value is a ``ValueError``."""

    _bounded = True


class Event(_Handle):
    """``multiprocessing.Event``."""

    _raw_type = RawEvent

    def __init__(self, *, ctx=None):
        self._setstate(RawEvent(), None)

    def is_set(self):
        """Whether the flag is set."""
        return self._raw.is_set()

    def set(self):
        """Set the flag and wake every waiter."""
        self._raw.set()

    def clear(self):
        """Clear the flag."""
        self._raw.clear()

    async def wait_async(self, timeout=None):
        """``await`` the flag without blocking the event loop; the flag after
        at most ``timeout`` s."""
        if self._raw.is_set():
            return True
        return await _aio.with_timeout(_aio.drive(self._raw._wait_async()), timeout, self._raw.is_set)

    coro_wait = wait_async

    def wait(self, timeout=None):
        """Wait for the flag (at most ``timeout`` s); the flag."""
        return self._raw.wait(timeout)

    def __repr__(self):
        set_status = "set" if self.is_set() else "unset"
        return f"<{type(self).__qualname__} at {id(self):#x} {set_status}>"


class Condition(_Handle):
    """``multiprocessing.Condition(lock=None)`` over a multiproc ``Lock`` or ``RLock``."""

    _raw_type = RawCondition

    def __init__(self, lock=None, *, ctx=None):
        if lock is None:
            lock = RLock()
        if not isinstance(lock, (Lock, RLock)):
            raise TypeError("a multiproc Condition needs a multiproc Lock or RLock")
        self._setstate(RawCondition(lock._raw), lock)

    def _setstate(self, raw, lock):
        self._raw = raw
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release

    def _extra(self):
        return self._lock

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def _check_owned(self):
        if isinstance(self._lock, RLock):
            if not self._lock._is_owned():
                raise AssertionError("must acquire() condition before using wait()")
        elif not self._lock._raw._is_locked():
            raise AssertionError("must acquire() condition before using wait()")

    def wait(self, timeout=None):
        """Release the lock, wait for a notification (at most ``timeout`` s),
        re-acquire; ``False`` on timeout."""
        self._check_owned()
        return self._raw.wait(timeout)

    def wait_for(self, predicate, timeout=None):
        """Wait until ``predicate()`` is true (at most ``timeout`` s); its last value."""
        result = predicate()
        if result:
            return result
        if timeout is not None:
            endtime = time.monotonic() + timeout
        else:
            endtime = None
            waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n=1):
        """Wake up to ``n`` waiters (the lock must be held)."""
        self._check_owned()
        self._raw.notify(n)

    def notify_all(self):
        """Wake every waiter (the lock must be held)."""
        self._check_owned()
        self._raw.notify(2**32 - 1)

    def __repr__(self):
        return f"<Condition({self._lock!r})>"


class _BarrierPhase(_Handle):
    """The second phase of a ``Barrier`` with an action."""

    _raw_type = RawBarrier

    def __init__(self, parties):
        self._setstate(RawBarrier(parties), None)


class Barrier(_Handle):
    """``multiprocessing.Barrier(parties, action=None, timeout=None)``.

    ``action`` runs in the party that gets index 0 once every party
    arrived, and before any party returns (a second, internal barrier
    holds them). Broken barriers raise ``threading.BrokenBarrierError``.
    """

    _raw_type = RawBarrier

    def __init__(self, parties, action=None, timeout=None, *, ctx=None):
        done = _BarrierPhase(parties) if action is not None else None
        self._setstate(RawBarrier(parties), (action, timeout, done))

    def _setstate(self, raw, extra):
        self._raw = raw
        self._action, self._timeout, self._done = extra

    def _extra(self):
        return (self._action, self._timeout, self._done)

    def wait(self, timeout=None):
        """Wait for every party; this party's index in ``range(parties)``."""
        if timeout is None:
            timeout = self._timeout
        index = self._raw.wait(timeout)
        if self._done is not None:
            # Past the first phase every party must reach the second, or the
            # others wait for it there for ever: a failed action, an
            # interrupt or a timeout breaks both.
            try:
                if index == 0:
                    self._action()
                self._done._raw.wait(timeout)
            except BaseException:
                self.abort()
                raise
        return index

    async def wait_async(self, timeout=None):
        """``wait`` without blocking the event loop. A timeout breaks the
        barrier, as with ``wait``; a cancelled task leaves it as if this
        party had never arrived (the barrier is not broken)."""
        if timeout is None:
            timeout = self._timeout
        index = await _aio.drive(self._raw._wait_async(timeout))
        if self._done is not None:
            # As in ``wait``; a cancelled task breaks both phases too.
            try:
                if index == 0:
                    self._action()
                await _aio.drive(self._done._raw._wait_async(timeout))
            except BaseException:
                self.abort()
                raise
        return index

    coro_wait = wait_async

    def abort(self):
        """Break the barrier: current and later waiters get ``BrokenBarrierError``."""
        self._raw.abort()
        if self._done is not None:
            self._done._raw.abort()

    def reset(self):
        """Return the barrier to its initial state."""
        self._raw.reset()
        if self._done is not None:
            self._done._raw.reset()

    @property
    def parties(self):
        """The number of parties."""
        return self._raw.parties

    @property
    def n_waiting(self):
        """The number of parties waiting."""
        return self._raw.n_waiting

    @property
    def broken(self):
        """Whether the barrier is broken."""
        return self._raw.broken or (self._done is not None and self._done._raw.broken)


BrokenBarrierError = threading.BrokenBarrierError
