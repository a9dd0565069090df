"""``SharedMemory`` and ``ShareableList`` (``multiprocessing.shared_memory``'s
API) on multiproc's named segments (``/dev/shm/multiproc.NAME``, created
``O_EXCL`` with mode 0600, owner and header checked on open).

A named segment lives until ``unlink()``, as POSIX shared memory does;
``multiproc clean`` removes those whose creator died. For memory that
nothing can leak, pass the ``SharedMemory`` object itself (not its name) to
children, or use ``Value``/``Array`` (anonymous memfds).
"""

import os
import secrets
import types
from multiprocessing import shared_memory as _mp_shared_memory

from ._multiproc import RawSharedMemory

__all__ = ["SharedMemory", "ShareableList"]


class SharedMemory:
    """``multiprocessing.shared_memory.SharedMemory(name=None, create=False, size=0)``."""

    def __init__(self, name=None, create=False, size=0):
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            if name is None:
                while True:
                    name = "psm_" + secrets.token_hex(4)
                    try:
                        raw = RawSharedMemory(size, name, True)
                        break
                    except FileExistsError:
                        continue
            else:
                raw = RawSharedMemory(size, name, True)
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            raw = RawSharedMemory(0, name, False)
        self._raw = raw
        self._name = name
        self._size = raw.size
        self._buf = memoryview(raw)

    def __reduce__(self):
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self):
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def buf(self):
        """A writable memoryview of the shared bytes."""
        return self._buf

    @property
    def name(self):
        """The name (pass it to ``SharedMemory(name)`` in another process)."""
        return self._name

    @property
    def size(self):
        """Size in bytes."""
        return self._size

    def close(self):
        """Release this process's view (the segment stays until ``unlink``)."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        self._raw = None

    def unlink(self):
        """Remove the name; call once, from one process."""
        RawSharedMemory.unlink_name(self._name)


def _rebind(cls):
    """``multiprocessing.shared_memory.ShareableList``'s code, with our ``SharedMemory``."""
    g = dict(vars(_mp_shared_memory))
    g["SharedMemory"] = SharedMemory
    ns = {}
    for k, v in vars(cls).items():
        if isinstance(v, types.FunctionType):
            v = types.FunctionType(v.__code__, g, v.__name__, v.__defaults__, v.__closure__)
        elif isinstance(v, (classmethod, staticmethod)) and isinstance(v.__func__, types.FunctionType):
            f = v.__func__
            v = type(v)(types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__))
        if k not in ("__dict__", "__weakref__"):
            ns[k] = v
    ns["__module__"] = __name__
    return type(cls.__name__, (), ns)


ShareableList = _rebind(_mp_shared_memory.ShareableList)
del os
