"""``Value``, ``Array``, ``RawValue`` and ``RawArray``: ctypes objects in
multiproc shared memory (a memfd each), with a multiproc ``RLock`` (or a
given lock) for the synchronized forms."""

import ctypes
import weakref
from multiprocessing import sharedctypes as _mp_sharedctypes

from . import _reduction
from ._multiproc import RawSharedMemory
from .synchronize import RLock

__all__ = ["RawValue", "RawArray", "Value", "Array", "synchronized"]

typecode_to_type = dict(_mp_sharedctypes.typecode_to_type)


def _reduce_ctype(obj):
    shm = getattr(obj, "_multiproc_shm", None)
    if shm is None:  # a multiprocessing.sharedctypes object of the same type
        return _mp_sharedctypes.reduce_ctype(obj)
    if isinstance(obj, ctypes.Array):
        return _rebuild_ctype, (obj._type_, SharedBytes(shm), obj._length_)
    return _rebuild_ctype, (type(obj), SharedBytes(shm), None)


class SharedBytes:
    """A picklable wrapper of a ``RawSharedMemory`` (its memfd travels)."""

    def __init__(self, raw):
        self._setstate(raw, None)

    def _setstate(self, raw, _extra):
        self.raw = raw

    def __reduce__(self):
        state, fds = self.raw._state()
        return (
            _reduction.rebuild,
            (SharedBytes, RawSharedMemory._rebuild, (), state, _reduction.dup_fds(fds), None),
        )


def _rebuild_ctype(type_, shared, length):
    if length is not None:
        type_ = type_ * length
    _reduction._ForkingPickler.register(type_, _reduce_ctype)
    obj = type_.from_buffer(shared.raw)
    obj._multiproc_shm = shared.raw
    return obj


def _new_value(type_):
    raw = RawSharedMemory(max(ctypes.sizeof(type_), 1))
    return _rebuild_ctype(type_, SharedBytes(raw), None)


def RawValue(typecode_or_type, *args):
    """A ctypes object in shared memory (zeroed, then ``__init__(*args)``)."""
    type_ = typecode_to_type.get(typecode_or_type, typecode_or_type)
    obj = _new_value(type_)
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type, size_or_initializer):
    """A ctypes array in shared memory, of a length or from a sequence."""
    type_ = typecode_to_type.get(typecode_or_type, typecode_or_type)
    if isinstance(size_or_initializer, int):
        return _new_value(type_ * size_or_initializer)
    result = _new_value(type_ * len(size_or_initializer))
    result.__init__(*size_or_initializer)
    return result


def _with_lock(obj, lock):
    if lock is False:
        return obj
    if lock in (True, None):
        lock = RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % lock)
    return synchronized(obj, lock)


def Value(typecode_or_type, *args, lock=True, ctx=None):
    """A synchronized shared ctypes value (``lock=False``: a ``RawValue``)."""
    return _with_lock(RawValue(typecode_or_type, *args), lock)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    """A synchronized shared ctypes array (``lock=False``: a ``RawArray``)."""
    return _with_lock(RawArray(typecode_or_type, size_or_initializer), lock)


def synchronized(obj, lock=None, ctx=None):
    """Wrap a shared ctypes object with a lock."""
    assert not isinstance(obj, SynchronizedBase), "object already synchronized"
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock)
    if isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock)
        return SynchronizedArray(obj, lock)
    cls = type(obj)
    try:
        scls = _class_cache[cls]
    except KeyError:
        d = {name: _make_property(name) for name, *_ in cls._fields_}
        scls = _class_cache[cls] = type("Synchronized" + cls.__name__, (SynchronizedBase,), d)
    return scls(obj, lock)


_class_cache = weakref.WeakKeyDictionary()


def _make_property(name):
    def get(self):
        with self._lock:
            return getattr(self._obj, name)

    def set(self, value):
        with self._lock:
            setattr(self._obj, name, value)

    return property(get, set)


class SynchronizedBase:
    """A shared ctypes object and the lock that guards it."""

    def __init__(self, obj, lock=None, ctx=None):
        self._obj = obj
        self._lock = lock if lock else RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __reduce__(self):
        return synchronized, (self._obj, self._lock)

    def get_obj(self):
        """The ctypes object."""
        return self._obj

    def get_lock(self):
        """The lock."""
        return self._lock

    def __repr__(self):
        return "<%s wrapper for %s>" % (type(self).__name__, self._obj)


class Synchronized(SynchronizedBase):
    """A synchronized ``Value``."""

    value = _make_property("value")


class SynchronizedArray(SynchronizedBase):
    """A synchronized ``Array``."""

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        with self:
            return self._obj[i]

    def __setitem__(self, i, value):
        with self:
            self._obj[i] = value


class SynchronizedString(SynchronizedArray):
    """A synchronized ``Array('c', ...)``."""

    value = _make_property("value")
    raw = _make_property("raw")
