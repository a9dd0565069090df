"""CPython's own multiprocessing tests (``test._test_multiprocessing``), run
against multiproc's objects under the fork and spawn start methods, and the
manager flavour of the mixins (CPython's ManagerMixin) on multiproc.Manager().

The mixins take their primitives from the class they are mixed into
(``self.Queue``, ``self.Lock``, ...); ``MultiprocMixin`` points those at
multiproc. Tests that check a CPython-private detail are excluded in
``EXCLUDED`` with the reason.
"""

import multiprocessing
import sys
import types
import unittest

import multiproc
import multiproc.connection
import multiproc.shared_memory
import test._test_multiprocessing as T

# _TestSharedMemory uses the module-level `shared_memory` (in this process
# and, since children import this module to find the test classes, in
# spawned children too).
T.shared_memory = multiproc.shared_memory

MIXINS = [
    "_TestQueue",
    "_TestConnection",
    "_TestLock",
    "_TestSemaphore",
    "_TestCondition",
    "_TestEvent",
    "_TestBarrier",
    "_TestValue",
    "_TestArray",
    "_TestPoll",
    "_TestSharedMemory",
    "_TestListener",
    "_TestListenerClient",
    "_TestPicklingConnections",
    "_TestPool",
    "_TestPoolWorkerLifetime",
    "_TestPoolWorkerErrors",
]

# These mixins call the module-level ``multiprocessing.Pool`` (not
# ``self.Pool``): their test functions are rebound to globals whose
# ``multiprocessing`` is the real module with ``Pool`` replaced by
# multiproc's, and a child script's ``from multiprocessing import Pool``
# becomes ``from multiproc import Pool``.
REBOUND_MIXINS = {"_TestPoolWorkerLifetime", "_TestPoolWorkerErrors"}

# Mixins run a second time with their objects made by multiproc.Manager()
# (CPython's ManagerMixin), where they allow the manager type.
MANAGER_MIXINS = [
    "_TestQueue",
    "_TestLock",
    "_TestSemaphore",
    "_TestCondition",
    "_TestEvent",
    "_TestBarrier",
    "_TestValue",
    "_TestArray",
    "_TestContainers",
]

START_METHODS = ["fork", "spawn"]

# name of the test method -> why it is excluded (a CPython-private detail).
EXCLUDED = {
    "test_queue_feeder_donot_stop_onexc": "checks the feeder thread's handling of a pickling "
    "error; multiproc has no feeder thread and put() raises the error to the caller",
}

# Tests of objects multiproc does not bind (none now: the SharedMemoryManager
# test uses the standard library's server, whose segments
# multiproc.shared_memory opens by name).
LATER = {}


# Manager-flavour tests -> why they are excluded (none now).
MANAGER_EXCLUDED = {}


class _Unknown:
    def get_value(self):
        raise NotImplementedError  # as on platforms without sem_getvalue


class AdapterCondition(multiproc.Condition):
    """``check_invariant`` reads the private semaphores of CPython's Condition
    and skips when they raise NotImplementedError (as on macOS)."""

    _sleeping_count = _woken_count = _wait_semaphore = _Unknown()


class MultiprocMixin(T.ProcessesMixin):
    connection = multiproc.connection
    Pool = staticmethod(multiproc.Pool)
    Pipe = staticmethod(multiproc.Pipe)
    Queue = staticmethod(multiproc.Queue)
    JoinableQueue = staticmethod(multiproc.JoinableQueue)
    Lock = staticmethod(multiproc.Lock)
    RLock = staticmethod(multiproc.RLock)
    Semaphore = staticmethod(multiproc.Semaphore)
    BoundedSemaphore = staticmethod(multiproc.BoundedSemaphore)
    Condition = AdapterCondition
    Event = staticmethod(multiproc.Event)
    Barrier = staticmethod(multiproc.Barrier)
    Value = staticmethod(multiproc.Value)
    Array = staticmethod(multiproc.Array)
    RawValue = staticmethod(multiproc.RawValue)
    RawArray = staticmethod(multiproc.RawArray)

    @classmethod
    def setUpClass(cls):
        cls._old_start_method = multiprocessing.get_start_method(allow_none=True)
        multiprocessing.set_start_method(cls.START_METHOD, force=True)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        multiprocessing.set_start_method(cls._old_start_method, force=True)


class MultiprocManagerMixin(T.ManagerMixin):
    """CPython's ManagerMixin with ``multiproc.Manager()``."""

    connection = multiproc.connection

    @classmethod
    def setUpClass(cls):
        cls._old_start_method = multiprocessing.get_start_method(allow_none=True)
        multiprocessing.set_start_method(cls.START_METHOD, force=True)
        T.BaseMixin.setUpClass.__func__(cls)
        cls.manager = multiproc.Manager()

    @classmethod
    def tearDownClass(cls):
        cls.manager.shutdown()
        cls.manager = None
        T.BaseMixin.tearDownClass.__func__(cls)
        multiprocessing.set_start_method(cls._old_start_method, force=True)


def _multiprocessing_with_our_pool():
    shim = types.ModuleType("multiprocessing")
    shim.__getattr__ = lambda name: getattr(multiprocessing, name)
    shim.Pool = multiproc.Pool
    return shim


def _rebind(base):
    """``base``'s test functions, looking up ``multiprocessing`` in globals
    where its ``Pool`` is multiproc's."""
    g = dict(vars(T))
    g["multiprocessing"] = _multiprocessing_with_our_pool()
    attrs = {}
    for name, f in vars(base).items():
        if not (name.startswith("test") and isinstance(f, types.FunctionType)):
            continue
        code = f.__code__
        consts = tuple(
            c.replace("from multiprocessing import Pool", "from multiproc import Pool")
            if isinstance(c, str) else c
            for c in code.co_consts
        )
        attrs[name] = types.FunctionType(
            code.replace(co_consts=consts), g, f.__name__, f.__defaults__, f.__closure__
        )
    return attrs


def _install():
    g = globals()
    for name in MIXINS:
        base = getattr(T, name)
        if "processes" not in base.ALLOWED_TYPES:
            continue
        for method in START_METHODS:
            newname = "TestMultiproc" + name[5:] + "_" + method
            attrs = {"START_METHOD": method, "__module__": __name__, "__qualname__": newname}
            if name in REBOUND_MIXINS:
                attrs.update(_rebind(base))
            for test, why in {**EXCLUDED, **LATER}.items():
                if hasattr(base, test):
                    attrs[test] = unittest.skip("excluded: " + why)(getattr(base, test))
            g[newname] = type(newname, (base, MultiprocMixin, unittest.TestCase), attrs)
    for name in MANAGER_MIXINS:
        base = getattr(T, name)
        if "manager" not in base.ALLOWED_TYPES:
            continue
        for method in START_METHODS:
            newname = "TestMultiprocManager" + name[5:] + "_" + method
            attrs = {"START_METHOD": method, "__module__": __name__, "__qualname__": newname}
            for test, why in {**EXCLUDED, **MANAGER_EXCLUDED}.items():
                if hasattr(base, test):
                    attrs[test] = unittest.skip("excluded: " + why)(getattr(base, test))
            g[newname] = type(newname, (base, MultiprocManagerMixin, unittest.TestCase), attrs)


_install()

if __name__ == "__main__":
    unittest.main()
