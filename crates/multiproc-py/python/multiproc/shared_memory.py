"""``SharedMemory`` and ``ShareableList`` (``multiprocessing.shared_memory``'s
API) on multiproc's named segments (``/dev/shm/multiproc.NAME``, created
``O_EXCL`` with mode 0600, owner and header checked on open).

``SharedMemory(name)`` without ``create`` opens multiproc's segment of that
name or, when there is none, a segment the standard library made
(``multiprocessing.shared_memory``, ``SharedMemoryManager``: ``/dev/shm/NAME``,
no header): opened without following symlinks, and only if it is a regular
file of this user that no one else may write (``PermissionError``
otherwise); ``unlink()`` then removes that name. multiproc never creates
such segments (``create=True`` makes its own).

A named segment lives until ``unlink()``, as POSIX shared memory does;
``multiproc clean`` removes those whose creator died. For memory that
nothing can leak, pass the ``SharedMemory`` object itself (not its name) to
children, or use ``Value``/``Array`` (anonymous memfds).
"""

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
                    # CPython's names ('/psm_' + random hex), looked up at
                    # call time so code that patches it sees the effect.
                    name = _mp_shared_memory._make_filename()
                    try:
                        raw = RawSharedMemory(size, _bare(name), True)
                        break
                    except FileExistsError:
                        continue
            else:
                raw = RawSharedMemory(size, _bare(name), True)
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            raw = RawSharedMemory(0, _bare(name), False)
        self._raw = raw
        self._foreign = raw.foreign
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
        return _bare(self._name)

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
        RawSharedMemory.unlink_name(_bare(self._name), self._foreign)


_SHM_NAME_PREFIX = _mp_shared_memory._SHM_NAME_PREFIX
_USE_POSIX = True


def _bare(name):
    """A name without CPython's leading slash."""
    return name[1:] if name.startswith("/") else name


def _copy(f, g):
    c = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
    c.__kwdefaults__ = f.__kwdefaults__
    c.__doc__ = f.__doc__
    c.__qualname__ = f.__qualname__
    return c


def _rebind(cls):
    """``multiprocessing.shared_memory.ShareableList``'s code, with our ``SharedMemory``."""
    g = dict(vars(_mp_shared_memory))
    g["SharedMemory"] = SharedMemory
    ns = {}
    for k, v in vars(cls).items():
        if isinstance(v, types.FunctionType):
            v = _copy(v, g)
        elif isinstance(v, (classmethod, staticmethod)) and isinstance(v.__func__, types.FunctionType):
            v = type(v)(_copy(v.__func__, g))
        if k not in ("__dict__", "__weakref__"):
            ns[k] = v
    ns["__module__"] = __name__
    return type(cls.__name__, (), ns)


ShareableList = _rebind(_mp_shared_memory.ShareableList)
