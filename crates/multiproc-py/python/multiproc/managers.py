"""``Manager()`` and ``SyncManager``: ``multiprocessing.managers``' shared
objects on the Rust manager server.

``multiproc.Manager()`` starts a server process (with the default start
method, as ``multiprocessing`` does; ``SIGINT`` is ignored there) listening
on a Unix socket in a private directory, authenticated with HMAC-SHA256 and
the process's ``authkey``. ``dict()``, ``list()``, ``Namespace()``,
``Value()``, ``Array()``, ``Queue()``, ``JoinableQueue()``, ``Lock()``,
``RLock()``, ``Semaphore()``, ``BoundedSemaphore()``, ``Condition()``,
``Event()`` and ``Barrier()`` return proxies with ``multiprocessing``'s
proxy methods.

Values: ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``, ``bytes``,
``list``, ``dict`` and ``tuple`` are stored as themselves (Rust clients
read them, and comparisons such as ``list.index`` run on the server);
anything else (sets, big ints, instances, NumPy scalars) is stored as a
pickle that only clients unpickle, together with its plain equal form when
it has one (``numpy.int64(1)``: ``1``); the server never unpickles
anything. Keys and items compare as in Python: ``1``, ``1.0``, ``True`` and
``numpy.int64(1)`` are one key (the first one stored is kept, as in a
``dict``), ``(1, 2)`` finds ``(1.0, 2)``, and ``in``, ``index``, ``count``
and ``remove`` use that equality. A pickled value without a plain form (a
set, an instance) equals only an identical pickle.

Proxies pickle into children of any start method: the pickle carries the
server's address, the authkey and the object id (never argv or the
environment) and the child connects on arrival; a proxy inherited by
``fork`` connects on first use in the child.

A server that dies makes proxy calls raise ``EOFError`` (what
``multiprocessing``'s proxies raise when the server goes away under them).

A proxy stored inside a managed object (``l.append(m.Queue())``) is kept
by id: any client reads it back as a proxy, and the object lives while the
process that stored it lives (30 s more), or while any proxy of it does.

Not mapped: ``register()`` of Python callables (the Rust server runs no
Python code), ``Pool()``, ``get_server()``. For those use
``multiprocessing.managers`` (still available).
"""

import operator
import os
import pickle
import signal
import threading
import weakref
from multiprocessing import context as _context
from multiprocessing import process as _process
from multiprocessing import reduction as _reduction

from ._multiproc import RawHandle, RawManager, RawServer, remove_named_object

__all__ = ["BaseManager", "SyncManager", "BaseProxy", "RemoteError", "Namespace"]


def __getattr__(name):
    # multiprocessing.managers (and its pool import) loads only when asked.
    if name == "RemoteError":
        from multiprocessing.managers import RemoteError

        return RemoteError
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


_storing = threading.local()


def _dumps(obj):
    # Proxies inside a stored value pickle by id (see BaseProxy.__reduce__).
    _storing.on = True
    try:
        return bytes(_reduction.ForkingPickler.dumps(obj))
    finally:
        _storing.on = False


def _loads(data):
    return pickle.loads(data)


def _eq_conversions(obj):
    # The plain types an object of another type may equal, most specific
    # first; each guess is checked by _eq_form, so a wrong one costs nothing.
    t = type(obj)
    convs = []
    if isinstance(obj, tuple):
        convs.append(_plain_tuple)
    if isinstance(obj, str):
        convs.append(str)
    if isinstance(obj, bytes):
        convs.append(bytes)
    if hasattr(t, "__index__"):
        convs.append(operator.index)
    if hasattr(t, "__float__"):
        convs.append(float)
    if hasattr(t, "__bool__") and not hasattr(t, "__len__"):
        convs.append(bool)
    return convs


_PLAIN = (type(None), bool, int, float, str, bytes)


def _plain_tuple(obj):
    items = []
    for x in obj:
        if type(x) not in _PLAIN:
            x = _eq_form(x)
            if x is None:
                raise TypeError("no plain form")
        items.append(x)
    return tuple(items)


def _eq_form(obj):
    """A plain value (``None``, ``bool``, ``int``, ``float``, ``str``,
    ``bytes``, or a tuple of such) that is equal to ``obj`` and hashes the
    same, or None: what the server compares a pickled ``obj`` as, so that
    ``numpy.int64(1)`` finds the key ``1``, ``numpy.str_("k")`` the key
    ``"k"`` and a namedtuple its plain tuple, as in a ``dict``."""
    for conv in _eq_conversions(obj):
        try:
            cand = conv(obj)
            if bool(cand == obj) and hash(cand) == hash(obj):
                return cand
        except Exception:  # noqa: BLE001  (unhashable, odd __eq__: no form)
            continue
    return None


def _native_address(address):
    from .connection import _address_type, _native_address as native

    if address is None:
        return None
    return native(address, _address_type(address))


def _run_server(address, authkey, writer):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server = RawServer(address, authkey)
    except BaseException as e:  # noqa: BLE001  (reported to the parent)
        writer.send(("error", e))
        writer.close()
        return
    writer.send(("ok", server.address))
    writer.close()
    server.serve()


class BaseManager:
    """``multiprocessing.managers.BaseManager``/``SyncManager`` with the
    built-in types (see the module docs): ``start()`` a server, or
    ``connect()`` to one at ``address`` with ``authkey``."""

    def __init__(self, address=None, authkey=None, serializer="pickle", ctx=None, *,
                 shutdown_timeout=1.0):
        if authkey is None:
            authkey = _process.current_process().authkey
        self._address = address
        self._authkey = bytes(authkey)
        self._ctx = ctx or _context._default_context
        self._shutdown_timeout = shutdown_timeout
        self._raw = None
        self._process = None
        self._finalizer = None

    @classmethod
    def register(cls, typeid, callable=None, *args, **kwargs):
        raise NotImplementedError(
            "multiproc's manager server runs no Python code: register() is not "
            "supported; use multiprocessing.managers.BaseManager for custom types"
        )

    def get_server(self):
        raise NotImplementedError("use start() (or multiprocessing.managers for get_server)")

    @property
    def address(self):
        """The server's address."""
        return self._raw.address if self._raw is not None else self._address

    def start(self, initializer=None, initargs=()):
        """Start a server process and connect to it."""
        if self._raw is not None:
            raise _process.ProcessError("Already started server")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        reader, writer = self._ctx.Pipe(duplex=False)
        self._process = self._ctx.Process(
            target=_run_server,
            args=(_native_address(self._address), self._authkey, writer),
            name="SyncManager-" + ":".join(str(i) for i in self._process_identity()),
        )
        self._process.start()
        writer.close()
        try:
            status, value = reader.recv()
        except EOFError:
            self._process.join()
            raise _process.ProcessError("the manager server process failed to start") from None
        finally:
            reader.close()
        if status != "ok":
            self._process.join()
            raise value
        self._raw = RawManager(_native_address(value), self._authkey)
        self._finalizer = weakref.finalize(
            self, BaseManager._finalize, self._raw, self._process, self._shutdown_timeout
        )
        return None

    @staticmethod
    def _process_identity():
        ident = _process.current_process()._identity
        return ident or (os.getpid(),)

    def connect(self):
        """Connect to a running server at ``address``."""
        self._raw = RawManager(_native_address(self._address), self._authkey)

    @staticmethod
    def _finalize(raw, process, timeout):
        try:
            address = raw.address
        except Exception:  # noqa: BLE001
            address = None
        try:
            raw.shutdown()
        except Exception:  # noqa: BLE001  (the server may be gone already)
            pass
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(timeout)
                if process.is_alive():
                    process.kill()
                    process.join()
            if (
                process.exitcode is not None
                and process.exitcode < 0
                and isinstance(address, str)
                and not address.startswith("\0")
            ):
                # A server ended by a signal could not remove its socket
                # file: do what `multiproc clean` does for it.
                try:
                    remove_named_object("socket", os.path.abspath(address))
                except OSError:
                    pass

    def shutdown(self):
        """Stop the server (a started one) and wait for its process."""
        if self._finalizer is not None:
            self._finalizer()
        elif self._raw is not None:
            self._raw.close()

    def join(self, timeout=None):
        if self._process is not None:
            self._process.join(timeout)

    def __enter__(self):
        if self._raw is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.shutdown()

    def _create(self, typeid, init):
        if self._raw is None:
            raise _process.ProcessError("the manager is not started or connected")
        return self._raw.create(typeid, init)

    # The built-in types.

    def dict(self, *args, **kwds):
        return DictProxy(self._create("dict", dict(*args, **kwds)), self)

    def list(self, sequence=()):
        return ListProxy(self._create("list", list(sequence)), self)

    def Namespace(self, **kwds):
        return NamespaceProxy(self._create("Namespace", kwds), self)

    def Value(self, typecode, value, lock=True):
        return ValueProxy(self._create("Value", value), self)

    def Array(self, typecode, sequence, lock=True):
        return ArrayProxy(self._create("Array", list(sequence)), self)

    def Queue(self, maxsize=0):
        return QueueProxy(self._create("Queue", max(0, maxsize)), self)

    def JoinableQueue(self, maxsize=0):
        return JoinableQueueProxy(self._create("JoinableQueue", max(0, maxsize)), self)

    def Lock(self):
        return AcquirerProxy(self._create("Lock", None), self)

    def RLock(self):
        return AcquirerProxy(self._create("RLock", None), self)

    def Semaphore(self, value=1):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        return SemaphoreProxy(self._create("Semaphore", value), self)

    def BoundedSemaphore(self, value=1):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        return SemaphoreProxy(self._create("BoundedSemaphore", value), self)

    def Condition(self, lock=None):
        if lock is not None:
            raise NotImplementedError("a manager Condition has its own RLock")
        return ConditionProxy(self._create("Condition", None), self)

    def Event(self):
        return EventProxy(self._create("Event", None), self)

    def Barrier(self, parties, action=None, timeout=None):
        after = None
        if action is not None:
            # The action runs in the last process to arrive, before any
            # returns: a second barrier holds the others (the server runs
            # no Python code).
            after = BarrierProxy(self._create("Barrier", parties), self)
        return BarrierProxy(self._create("Barrier", parties), self,
                            (timeout, parties, action, after))

    def Pool(self, *args, **kwds):
        raise NotImplementedError("use multiprocessing.Manager().Pool")


SyncManager = BaseManager


def Manager(ctx=None):
    """A started ``SyncManager`` (``multiprocessing.Manager()``)."""
    m = SyncManager(ctx=ctx)
    m.start()
    return m


# ----- proxies -----------------------------------------------------------------


def _rebuild_proxy(cls, state, extra):
    obj = cls.__new__(cls)
    BaseProxy.__init__(obj, RawHandle._rebuild(state), None)
    obj._setextra(extra)
    return obj


def _attach_proxy(cls, address, authkey, ident, extra):
    obj = cls.__new__(cls)
    BaseProxy.__init__(obj, RawHandle.attach(_native_address(address), authkey, ident), None)
    obj._setextra(extra)
    return obj


class BaseProxy:
    """A reference to an object on a manager server."""

    _typeid = "?"

    def __init__(self, raw, manager=None):
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_pid", os.getpid())
        object.__setattr__(self, "_manager", manager)

    def _setextra(self, extra):
        pass

    def _getextra(self):
        return None

    def _handle(self):
        if self._pid != os.getpid():
            # Inherited by fork: this process connects on its own.
            object.__setattr__(self, "_raw", self._raw.reattach())
            object.__setattr__(self, "_pid", os.getpid())
        return self._raw

    def _call(self, method, *args):
        return self._handle().call(method, list(args))

    def _callt(self, method, timeout, *args):
        return self._handle().call(method, list(args), timeout)

    def __reduce__(self):
        h = self._handle()
        if getattr(_storing, "on", False):
            # Stored inside a managed object: any client may read it, any
            # number of times, so it names the object by id; a loan keeps
            # the object alive while this process lives (and 30 s more).
            h.lend()
            return (_attach_proxy, (type(self), h.address, h.authkey, h.id, self._getextra()))
        return (_rebuild_proxy, (type(self), h._state(), self._getextra()))

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return "<%s object, typeid %r at %#x>" % (type(self).__name__, self._typeid, id(self))


def _timeout(block, timeout):
    if not block:
        return 0.0
    if timeout is None:
        return None
    return max(0.0, timeout)


class DictProxy(BaseProxy):
    _typeid = "dict"

    def __getitem__(self, key):
        try:
            return self._call("getitem", key)
        except KeyError:
            raise KeyError(key) from None

    def __setitem__(self, key, value):
        self._call("setitem", key, value)

    def __delitem__(self, key):
        try:
            self._call("delitem", key)
        except KeyError:
            raise KeyError(key) from None

    def __contains__(self, key):
        return self._call("contains", key)

    def __len__(self):
        return self._call("len")

    def __iter__(self):
        keys = self.keys()
        return self._iter(keys, len(keys))

    def _iter(self, keys, n):
        # As a live dict iterator: a change of size is a RuntimeError.
        for k in keys:
            if self._call("len") != n:
                raise RuntimeError("dictionary changed size during iteration")
            yield k

    def get(self, key, default=None):
        r = self._call("get", key)
        return r[0] if r else default

    def keys(self):
        return self._call("keys")

    def values(self):
        return self._call("values")

    def items(self):
        return list(self._call("items").items())

    def update(self, *args, **kwds):
        self._call("update", dict(*args, **kwds))

    def pop(self, key, *default):
        r = self._call("pop", key)
        if r:
            return r[0]
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self):
        try:
            return tuple(self._call("popitem"))
        except KeyError:
            raise KeyError("popitem(): dictionary is empty") from None

    def setdefault(self, key, default=None):
        return self._call("setdefault", key, default)

    def clear(self):
        self._call("clear")

    def copy(self):
        return self._call("copy")

    def incr(self, key, delta=1):
        """Add ``delta`` to the number at ``key`` on the server (atomic);
        the new value. multiproc's addition."""
        return self._call("incr", key, delta)

    def __str__(self):
        return str(self.copy())


class ListProxy(BaseProxy):
    _typeid = "list"

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._call("tolist")[i]
        return self._call("getitem", i)

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            items = self._call("tolist")
            items[i] = value
            self._replace(items)
        else:
            self._call("setitem", i, value)

    def __delitem__(self, i):
        if isinstance(i, slice):
            items = self._call("tolist")
            del items[i]
            self._replace(items)
        else:
            self._call("delitem", i)

    def _replace(self, items):
        # Not atomic: slice assignment is two calls.
        self._call("clear")
        self._call("extend", items)

    def __len__(self):
        return self._call("len")

    def __iter__(self):
        # A live iterator, as the server-side one of multiprocessing: one
        # call per item, so changes made meanwhile are seen.
        i = 0
        while True:
            try:
                x = self._call("getitem", i)
            except IndexError:
                return
            yield x
            i += 1

    def __contains__(self, x):
        return self._call("contains", x)

    def __add__(self, other):
        return self._call("tolist") + other

    def __iadd__(self, other):
        self.extend(other)
        return self

    def __imul__(self, n):
        items = self._call("tolist")
        self._replace(items * n)
        return self

    def __mul__(self, n):
        return self._call("tolist") * n

    __rmul__ = __mul__

    def append(self, x):
        self._call("append", x)

    def extend(self, iterable):
        self._call("extend", list(iterable))

    def insert(self, i, x):
        self._call("insert", i, x)

    def pop(self, i=-1):
        return self._call("pop", i)

    def remove(self, x):
        self._call("remove", x)

    def index(self, x, *args):
        if args:
            return self._call("tolist").index(x, *args)
        return self._call("index", x)

    def count(self, x):
        return self._call("count", x)

    def reverse(self):
        self._call("reverse")

    def sort(self, key=None, reverse=False):
        if key is None and not reverse:
            try:
                self._call("sort")
                return
            except TypeError:
                pass
        items = self._call("tolist")
        items.sort(key=key, reverse=reverse)
        self._replace(items)

    def clear(self):
        self._call("clear")

    def incr(self, i, delta=1):
        """Add ``delta`` to the number at index ``i`` on the server (atomic)."""
        return self._call("incr", i, delta)

    def __str__(self):
        return str(self._call("tolist"))

    def __eq__(self, other):
        if isinstance(other, ListProxy):
            other = other._call("tolist")
        return self._call("tolist") == other

    __hash__ = None


class ArrayProxy(ListProxy):
    _typeid = "Array"

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            items = self._call("tolist")
            items[i] = value
            self._call("setall", items)
        else:
            self._call("setitem", i, value)

    def tolist(self):
        return self._call("tolist")


class NamespaceProxy(BaseProxy):
    _typeid = "Namespace"

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        r = self._call("get", name)
        if not r:
            raise AttributeError(name)
        return r[0]

    def __setattr__(self, name, value):
        if name.startswith("_"):
            return object.__setattr__(self, name, value)
        self._call("setattr", name, value)

    def __delattr__(self, name):
        if name.startswith("_"):
            return object.__delattr__(self, name)
        try:
            self._call("delattr", name)
        except KeyError:
            raise AttributeError(name) from None

    def incr(self, name, delta=1):
        """Add ``delta`` to the number attribute ``name`` on the server (atomic)."""
        return self._call("incr", name, delta)

    def __repr__(self):
        items = sorted(self._call("items").items())
        return "Namespace(%s)" % ", ".join("%s=%r" % kv for kv in items)

    __str__ = __repr__


Namespace = NamespaceProxy


class ValueProxy(BaseProxy):
    _typeid = "Value"

    def get(self):
        return self._call("get")

    def set(self, value):
        self._call("set", value)

    value = property(get, set, doc="The value.")

    def incr(self, delta=1):
        """Add ``delta`` on the server (atomic); the new value."""
        return self._call("incr", delta)

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.get())


class QueueProxy(BaseProxy):
    _typeid = "Queue"

    def put(self, obj, block=True, timeout=None):
        self._callt("put", _timeout(block, timeout), obj)

    def get(self, block=True, timeout=None):
        return self._callt("get", _timeout(block, timeout))

    def put_nowait(self, obj):
        self.put(obj, False)

    def get_nowait(self):
        return self.get(False)

    def qsize(self):
        return self._call("qsize")

    def empty(self):
        return self._call("empty")

    def full(self):
        return self._call("full")


class JoinableQueueProxy(QueueProxy):
    _typeid = "JoinableQueue"

    def task_done(self):
        self._call("task_done")

    def join(self):
        self._callt("join", None)


class AcquirerProxy(BaseProxy):
    _typeid = "Lock"

    def acquire(self, blocking=True, timeout=None):
        if timeout is not None and timeout < 0:
            timeout = None
        try:
            self._callt("acquire", _timeout(blocking, timeout))
            return True
        except TimeoutError:
            return False

    def release(self):
        self._call("release")

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.release()


class SemaphoreProxy(AcquirerProxy):
    _typeid = "Semaphore"

    def get_value(self):
        return self._call("get_value")


class ConditionProxy(AcquirerProxy):
    _typeid = "Condition"

    def wait(self, timeout=None):
        return self._callt("wait", timeout)

    def notify(self, n=1):
        self._call("notify", n)

    def notify_all(self):
        self._call("notify_all")

    def wait_for(self, predicate, timeout=None):
        import time

        result = predicate()
        if result:
            return result
        endtime = None if timeout is None else time.monotonic() + timeout
        waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class EventProxy(BaseProxy):
    _typeid = "Event"

    def is_set(self):
        return self._call("is_set")

    def set(self):
        self._call("set")

    def clear(self):
        self._call("clear")

    def wait(self, timeout=None):
        try:
            return self._callt("wait", timeout)
        except TimeoutError:
            return False


class BarrierProxy(BaseProxy):
    _typeid = "Barrier"

    def __init__(self, raw, manager=None, extra=(None, None, None, None)):
        super().__init__(raw, manager)
        self._setextra(extra)

    def _setextra(self, extra):
        object.__setattr__(self, "_extra", extra)

    def _getextra(self):
        return self._extra

    def wait(self, timeout=None):
        default, parties, action, after = self._extra
        if timeout is None:
            timeout = default
        try:
            i = self._callt("wait", timeout)
            if action is not None:
                if i == parties - 1:
                    try:
                        action()
                    except BaseException:
                        after.abort()
                        self.abort()
                        raise
                after._callt("wait", timeout)
            return i
        except TimeoutError:
            import threading as _t

            raise _t.BrokenBarrierError from None

    def abort(self):
        self._call("abort")
        if self._extra[3] is not None:
            self._extra[3]._call("abort")

    def reset(self):
        self._call("reset")
        if self._extra[3] is not None:
            self._extra[3]._call("reset")

    @property
    def parties(self):
        return self._call("parties")

    @property
    def n_waiting(self):
        return self._call("n_waiting")

    @property
    def broken(self):
        return self._call("broken")
