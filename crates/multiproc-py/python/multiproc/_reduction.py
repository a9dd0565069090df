"""Pickling of multiproc objects through ``multiprocessing.reduction``.

Every object is one or more file descriptors (memfds, socketpairs) plus a
little state. Pickling wraps each descriptor in
``multiprocessing.reduction.DupFd``: while ``multiprocessing`` starts a
child (spawn, forkserver) the descriptor is passed to the child by the
start method itself; otherwise (an object sent over a queue or a pipe) by
``multiprocessing.resource_sharer``. Under fork the objects are inherited
and never pickled.
"""

import collections
import copyreg
import io
import os
import pickle
import threading
import weakref
from multiprocessing import context as _context
from multiprocessing import reduction as _reduction

_ForkingPickler = _reduction.ForkingPickler


class _Pickler5(pickle.Pickler):
    """``ForkingPickler``'s reducers (live), with protocol 5 and a buffer callback."""

    def __init__(self, file, buffer_callback):
        super().__init__(file, 5, buffer_callback=buffer_callback)
        self.dispatch_table = collections.ChainMap(
            _ForkingPickler._extra_reducers, copyreg.dispatch_table
        )


_local = threading.local()


class refusing_handles:
    """While active in this thread, pickling a multiproc object raises
    ``TypeError`` naming ``where``: for transports that carry bytes only
    (a Redis server), where a descriptor cannot follow."""

    def __init__(self, where):
        self._where = where

    def __enter__(self):
        self._outer = getattr(_local, "refusing", None)
        _local.refusing = self._where
        return self

    def __exit__(self, *exc):
        _local.refusing = self._outer


def dup_fds(fds):
    """Wrap descriptors for pickling (see the module docstring)."""
    where = getattr(_local, "refusing", None)
    if where is not None:
        raise TypeError(f"multiproc objects hold OS handles, which cannot travel through {where}")
    popen = _context.get_spawning_popen()
    if popen is not None and getattr(popen, "method", None) == "spawn":
        # spawn passes the descriptors themselves to the child and needs
        # each number once; one object's descriptor may be pickled twice
        # (a Lock and a Condition over it): pass a duplicate, closed when
        # the Popen goes.
        passed = popen._fds
        out = []
        for fd in fds:
            if fd in passed:
                fd = os.dup(fd)
                weakref.finalize(popen, os.close, fd)
            out.append(_reduction.DupFd(fd))
        return out
    return [_reduction.DupFd(fd) for fd in fds]


def detach_fds(dfs):
    """The descriptors of unpickled ``DupFd`` wrappers, now owned by us."""
    return [df.detach() for df in dfs]


def rebuild(cls, raw_rebuild, args, state, dfs, extra):
    """Rebuild an object pickled by :func:`reduce`."""
    raw = raw_rebuild(*args, state, detach_fds(dfs))
    obj = cls.__new__(cls)
    obj._setstate(raw, extra)
    return obj


def dumps(obj):
    """Pickle ``obj`` with protocol 5; contiguous ``PickleBuffer``s (NumPy
    arrays, ...) go out of band. Returns ``(pickle, [buffers])``."""
    bufs = []

    def callback(pb):
        try:
            m = pb.raw()
        except BufferError:
            return True  # not contiguous: in band
        bufs.append(m)
        return False

    f = io.BytesIO()
    _Pickler5(f, callback).dump(obj)
    return f.getbuffer(), bufs


def loads(data, buffers):
    """Unpickle what :func:`dumps` produced."""
    return pickle.loads(data, buffers=buffers)
