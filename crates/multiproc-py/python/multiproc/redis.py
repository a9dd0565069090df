"""``multiproc.redis``: ``Queue``, ``JoinableQueue`` and ``Dict`` on a Redis
server, for work that spans machines.

They keep ``multiprocessing``'s method names and exceptions (``put``,
``get``, ``put_nowait``, ``get_nowait``, ``task_done``, ``join``, ``qsize``,
``empty``, ``full``, ``close``; ``queue.Empty``/``queue.Full``,
``ValueError`` for a closed handle or too many ``task_done`` calls), and
items are pickled as for local queues. The protocol is multiproc's Rust
one (``multiproc::redis``): a stream read by one consumer group, Lua
scripts for the atomic steps, heartbeats for dead consumers.

What differs from a local queue:

- A ``JoinableQueue`` item stays pending with the consumer that got it until
  ``task_done``; if that consumer dies first (``kill -9``, a lost machine),
  the item is delivered again to a live consumer within the heartbeat's
  time to live plus a second: *at least once*, where a local queue loses it.
  ``get_delivery()`` tells how many times an item was delivered.
- ``task_done()`` finishes the oldest item *this handle* got.
- An item delivered more than ``max_deliveries`` times, or that cannot be
  unpickled, goes to the dead-letter stream (``dead_letters()``,
  ``requeue(id)``).
- Every item is signed with ``authkey`` (HMAC-SHA256); an item without the
  right signature is refused and never unpickled, since anyone who can write
  to the server could otherwise run code in the consumers. The default is
  ``multiprocessing.current_process().authkey``, which the processes of one
  program share; processes on other machines must be given the same key.
- Handles (``Queue``, ``Lock``, … of multiproc itself) cannot travel through
  a server; pickling one fails.
"""

import collections
import os
from collections.abc import MutableMapping
from multiprocessing import current_process as _current_process

from ._reduction import refusing_handles as _refusing_handles
from ._multiproc import (
    RawRedisDict as _RawDict,
    RawRedisQueue as _RawQueue,
    RedisAuthenticationError,
    RedisReclaimedError,
    RedisRemovedError,
    RedisServerError,
    redis_remove as _remove,
)

__all__ = [
    "Queue", "JoinableQueue", "Dict", "Delivery", "DeadLetter", "remove",
    "RedisServerError", "RedisReclaimedError", "RedisRemovedError", "RedisAuthenticationError",
]

Delivery = collections.namedtuple("Delivery", "value id deliveries")
Delivery.__doc__ = "An item as delivered: ``value``, its entry ``id`` and its delivery count."

DeadLetter = collections.namedtuple("DeadLetter", "id original_id deliveries consumer reason value")
DeadLetter.__doc__ = ("An entry of the dead-letter stream; ``value`` is the item, or the "
                      "exception that kept it from being unpickled.")


# Handles a forked child inherited: never dropped there, since dropping one
# joins its heartbeat thread, which only the parent has.
_inherited = []


def _key(authkey):
    if authkey is None:
        return bytes(_current_process().authkey)
    return bytes(authkey)


def remove(url, name):
    """Delete queue or dict ``name`` and everything of it on the server."""
    _remove(url, name)


class Queue:
    """``multiprocessing.Queue`` on a Redis server: ``Queue(url, name,
    maxsize=0, *, heartbeat=5.0, max_deliveries=5, consumer=None,
    authkey=None)``. An item is acknowledged as it is read."""

    _joinable = False

    def __init__(self, url, name, maxsize=0, *, heartbeat=5.0, max_deliveries=5, consumer=None,
                 authkey=None):
        self._args = (url, name, maxsize)
        self._opts = dict(heartbeat=heartbeat, max_deliveries=max_deliveries, consumer=consumer,
                          authkey=_key(authkey))
        self._pid = os.getpid()
        self._handle = self._open()

    def _open(self, consumer=None):
        url, name, maxsize = self._args
        o = self._opts
        return _RawQueue(url, name, self._joinable, maxsize, o["heartbeat"], o["max_deliveries"],
                         consumer or o["consumer"], o["authkey"], o.get("existing", False))

    @classmethod
    def _existing(cls, url, name, **opts):
        """A handle that only puts while the queue exists: once it is
        removed, ``put`` raises ``RedisRemovedError`` instead of creating it
        again (a pool's reply queue, answered after the pool ended)."""
        self = cls.__new__(cls)
        self._args = (url, name, 0)
        self._opts = dict(heartbeat=opts.get("heartbeat", 5.0), max_deliveries=5, consumer=None,
                          authkey=_key(opts.get("authkey")), existing=True)
        self._pid = os.getpid()
        self._handle = self._open()
        return self

    @property
    def _raw(self):
        # A forked child is a consumer of its own, on a connection of its
        # own (its parent's socket would cross their replies).
        if self._pid != os.getpid():
            _inherited.append(self._handle)
            self._pid = os.getpid()
            # Never the parent's consumer name: two live processes under
            # one name would take each other's items.
            named = self._opts["consumer"]
            self._handle = self._open(f"{named}-{self._pid}" if named else None)
        return self._handle

    def __reduce__(self):
        # Another process opens the queue again (as a consumer of its own).
        opts = dict(self._opts, consumer=None)
        return (_rebuild, (type(self), self._args, opts))

    def __repr__(self):
        url, name, maxsize = self._args
        return f"<{type(self).__module__}.{type(self).__qualname__} {name!r} at {url!r}>"

    def put(self, obj, block=True, timeout=None):
        """Put ``obj``, waiting for room if ``block`` (``queue.Full``
        after ``timeout`` seconds or at once if not)."""
        with _refusing_handles("a Redis server"):
            self._raw.put(obj, block, timeout)

    def put_nowait(self, obj):
        """``put(obj, False)``."""
        self.put(obj, False)

    def get(self, block=True, timeout=None):
        """Remove and return an item (``queue.Empty`` after ``timeout``
        seconds, or at once if not ``block``)."""
        return self._raw.get(block, timeout)[0]

    def get_nowait(self):
        """``get(False)``."""
        return self._raw.get(False)[0]

    def get_delivery(self, block=True, timeout=None):
        """``get()`` as a :class:`Delivery`: the item, its entry id and
        its delivery count."""
        return Delivery(*self._raw.get(block, timeout))

    def qsize(self):
        """Items put and not yet delivered."""
        return self._raw.qsize()

    def empty(self):
        """Whether no item waits for delivery."""
        return self._raw.qsize() == 0

    def full(self):
        """Whether ``maxsize`` items wait."""
        return self._raw.full()

    def close(self):
        """This handle puts no more; the queue lives on for the others."""
        self._raw.close()

    def join_thread(self):
        """Nothing to wait for: there is no feeder thread."""

    def cancel_join_thread(self):
        """Nothing to cancel: there is no feeder thread."""

    @property
    def consumer(self):
        """This handle's consumer name."""
        return self._raw.consumer

    def dead_letters(self):
        """The dead-letter stream, as :class:`DeadLetter` tuples."""
        return [DeadLetter(*d) for d in self._raw.dead_letters()]

    def requeue(self, id):
        """Put dead letter ``id`` back on the queue; ``False`` if none."""
        return self._raw.requeue(id)


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue`` on a Redis server: an item stays
    pending with its consumer until ``task_done()``, and goes to a live
    consumer if that one dies first."""

    _joinable = True

    def task_done(self):
        """Finish the oldest item this handle got (``ValueError`` if none)."""
        self._raw.task_done()

    def task_done_for(self, id):
        """Finish delivery ``id`` (from :meth:`get_delivery`)."""
        self._raw.task_done_for(id)

    def join(self, timeout=None):
        """Wait until every item put is finished, by any process. With a
        ``timeout``, return whether that happened in time."""
        return self._raw.join(timeout)

    def unfinished(self):
        """Items put and not finished yet."""
        return self._raw.unfinished()


def _rebuild(cls, args, opts):
    return cls(*args, **opts)


_MISSING = object()


class Dict(MutableMapping):
    """A dict on a Redis hash: ``Dict(url, name, *, authkey=None)``. Keys
    are compared by their pickles (equal ``str``, ``int``, ``bytes`` and
    tuples of them pickle alike; ``1`` and ``1.0`` are two keys here)."""

    def __init__(self, url, name, *, authkey=None):
        self._args = (url, name)
        self._authkey = _key(authkey)
        self._pid = os.getpid()
        self._handle = _RawDict(url, name, self._authkey)

    @property
    def _raw(self):
        if self._pid != os.getpid():  # a forked child: a connection of its own
            _inherited.append(self._handle)
            self._pid = os.getpid()
            self._handle = _RawDict(*self._args, self._authkey)
        return self._handle

    def __reduce__(self):
        return (_rebuild, (type(self), self._args, {"authkey": self._authkey}))

    def __getitem__(self, key):
        value = self._raw.get(key)
        if value is None and not self._raw.contains(key):
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        with _refusing_handles("a Redis server"):
            self._raw.set(key, value)

    def __delitem__(self, key):
        found, _value = self._raw.remove(key)
        if not found:
            raise KeyError(key)

    def __contains__(self, key):
        return self._raw.contains(key)

    def __len__(self):
        return self._raw.len()

    def __iter__(self):
        return iter([k for k, _v in self._raw.items()])

    def get(self, key, default=None):
        """``d[key]``, or ``default``."""
        value = self._raw.get(key)
        if value is None and not self._raw.contains(key):
            return default
        return value

    def items(self):
        """The ``(key, value)`` pairs, read in one request."""
        return self._raw.items()

    def keys(self):
        """The keys."""
        return [k for k, _v in self._raw.items()]

    def values(self):
        """The values."""
        return [v for _k, v in self._raw.items()]

    def pop(self, key, default=_MISSING):
        """Remove ``key`` and return its value, in one step."""
        found, value = self._raw.remove(key)
        if found:
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def clear(self):
        """Remove every key."""
        self._raw.clear()

    def copy(self):
        """A plain ``dict`` of the contents."""
        return dict(self._raw.items())

    def setdefault(self, key, default=None):
        """``d[key]``, set to ``default`` first if absent (atomically)."""
        while True:
            with _refusing_handles("a Redis server"):
                if self._raw.compare_and_set(key, False, None, default):
                    return default
            value = self._raw.get(key)
            if value is not None or self._raw.contains(key):
                return value

    def compare_and_set(self, key, expected, new, *, absent=False):
        """Set ``key`` to ``new`` if its value is ``expected`` now (with
        ``absent=True``: if it has none); whether it was set."""
        with _refusing_handles("a Redis server"):
            return self._raw.compare_and_set(key, not absent, expected, new)

    def incr(self, key, delta=1):
        """Add ``delta`` to the number at ``key`` (absent: 0) atomically
        against every other writer; the new value."""
        while True:
            if key in self:
                old = self._raw.get(key)
                if self._raw.compare_and_set(key, True, old, old + delta):
                    return old + delta
            elif self._raw.compare_and_set(key, False, None, delta):
                return delta

    def __repr__(self):
        url, name = self._args
        return f"<multiproc.redis.Dict {name!r} at {url!r}>"


# Pool workers on many machines (they use the queues above).
from ._redis_pool import Pool, serve  # noqa: E402

__all__ += ["Pool", "serve"]
