"""``SharedMemory`` and ``ShareableList`` (``multiprocessing.shared_memory``'s
API) on POSIX shared memory the standard library can open.

``SharedMemory(create=True)`` makes the object exactly where and as the
standard library does (``/dev/shm/NAME``, ``O_CREAT | O_EXCL``, mode 0600,
the bytes at offset 0, no header), so any process using
``multiprocessing.shared_memory`` (or a library built on it) attaches by
name, and the other way round. ``name`` reports the name as the standard
library does (``'psm_…'`` for generated names, a given name as given).

``SharedMemory(name)`` opens such an object without following symlinks, and
only if it is a regular file of this user that no one else may write
(``PermissionError`` otherwise); failing that, a multiproc segment of that
name made from Rust (``/dev/shm/multiproc.NAME``).

With ``track=True`` (the default, and the only behaviour before Python
3.13) the object is registered with ``multiprocessing``'s resource tracker
when created or attached, and unregistered by ``unlink()``: the tracker
unlinks what is left when the program ends, with the standard library's
warning. ``track=False`` leaves the object alone until someone calls
``unlink()``. For memory that nothing can leak, pass the ``SharedMemory``
object itself (not its name) to children, or use ``Value``/``Array``
(anonymous memfds).
"""

import types
from multiprocessing import resource_tracker as _resource_tracker
from multiprocessing import shared_memory as _mp_shared_memory

from ._multiproc import RawSharedMemory

__all__ = ["SharedMemory", "ShareableList"]


class SharedMemory:
    """``multiprocessing.shared_memory.SharedMemory(name=None, create=False,
    size=0, *, track=True)``."""

    def __init__(self, name=None, create=False, size=0, *, track=True):
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if name is not None and "\0" in name:
            raise ValueError("embedded null character")
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            if name is None:
                while True:
                    # CPython's names ('/psm_' + random hex), looked up at
                    # call time so code that patches it sees the effect.
                    name = _mp_shared_memory._make_filename()
                    try:
                        raw = RawSharedMemory(size, name, True, True)
                        break
                    except FileExistsError:
                        continue
            else:
                name = "/" + name
                raw = RawSharedMemory(size, name, True, True)
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            name = "/" + name
            raw = RawSharedMemory(0, name, False)
        # As the standard library keeps it: what shm_open was given (glibc
        # skips extra leading slashes); `name` drops the first one.
        self._raw = raw
        self._foreign = raw.foreign
        self._name = name
        self._size = raw.size
        self._buf = memoryview(raw)
        self._track = track and self._foreign
        if self._track:
            _resource_tracker.register(self._os_name(), "shared_memory")

    def _os_name(self):
        # What the standard library registers and passes to shm_unlink.
        return self._name

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
        return self._name[1:]

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
        if self._track:
            _resource_tracker.unregister(self._os_name(), "shared_memory")


_SHM_NAME_PREFIX = _mp_shared_memory._SHM_NAME_PREFIX
_USE_POSIX = True


def _bare(name):
    """A name without its leading slashes."""
    return name.lstrip("/")


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
