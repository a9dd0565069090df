"""CPython's own ``concurrent.futures`` tests for ProcessPoolExecutor
(``test_concurrent_futures``), run against ``multiproc.ProcessPoolExecutor``
under the fork, forkserver and spawn start methods, as CPython runs them.

CPython's test module is not part of this repository. It is taken from,
in this order: the file named by ``MULTIPROC_CPYTHON_TEST_CONCURRENT_FUTURES``;
this Python's own ``test.test_concurrent_futures`` (not every build ships
it); Debian's ``libpython3.X-testsuite`` for this Python's version
(``/usr/lib/python3.X/test/test_concurrent_futures.py``). Without one the
module is skipped, saying so. Only a single-file module (CPython 3.11,
3.12) is bound.

The mixins build their executor with ``self.executor_type(...)``; every
ProcessPool-flavoured class CPython generates is bound here with that
pointed at multiproc. Tests written for the standard library's
break-everything-on-a-worker-death behaviour run with
``on_worker_death="break"`` (``BREAK``); tests that check a CPython-private
detail or a documented difference are excluded in ``EXCLUDED`` with the
reason.
"""

import importlib
import importlib.util
import os
import sys
import unittest

import pytest

import multiproc


def _locate():
    path = os.environ.get("MULTIPROC_CPYTHON_TEST_CONCURRENT_FUTURES")
    if path:
        return path
    try:
        spec = importlib.util.find_spec("test.test_concurrent_futures")
    except ImportError:
        spec = None
    if spec is not None and spec.origin and spec.submodule_search_locations is None:
        return "test.test_concurrent_futures"
    path = "/usr/lib/python%d.%d/test/test_concurrent_futures.py" % sys.version_info[:2]
    return path if os.path.exists(path) else None


def _load(where):
    if where == "test.test_concurrent_futures":
        return importlib.import_module(where)
    # Importable by name (a spawned worker unpickles ``mul`` and friends by
    # their module), from the end of sys.path so that it shadows nothing.
    folder, name = os.path.split(os.path.abspath(where))
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module(name[:-len(".py")])


_where = _locate()
if _where is None:
    pytest.skip("CPython's test_concurrent_futures is not here (install libpython%d.%d-testsuite or set "
                "MULTIPROC_CPYTHON_TEST_CONCURRENT_FUTURES)" % sys.version_info[:2],
                allow_module_level=True)
T = _load(_where)

# Tests that expect the standard library's behaviour on a worker's death (the
# whole executor breaks, every later submit raises BrokenProcessPool); they run
# with on_worker_death="break", which is that behaviour.
BREAK = {
    "test_killed_child",
}

_UNPICKLABLE = (
    "counts the workers started after submitting calls that take a multiprocessing Semaphore, which "
    "cannot be pickled outside spawning: multiproc's futures fail when their call is pickled, before "
    "a worker is needed, where the standard library starts one per submit anyway (its futures fail "
    "later, in its feeder thread)"
)

# test name (or "ClassName.test_name") -> why it is not run.
EXCLUDED = {
    "test_shutdown_deadlock_pickle": "joins executor._executor_manager_thread, the standard library's "
                                     "private manager thread (multiproc's executor has none)",
    # Under spawn and forkserver (under fork all workers start at once, in
    # both executors, and these pass).
    **{"ProcessPool%sProcessPool%s.%s" % (m, c, t): _UNPICKLABLE
       for m in ("Forkserver", "Spawn")
       for c, t in (("ExecutorTest", "test_saturation"), ("ShutdownTest", "test_processes_terminate"))},
    "ProcessPoolForkProcessPoolExecutorTest.test_max_tasks_per_child":
        "expects ValueError for max_tasks_per_child under fork; multiproc's executor supports it "
        "(documented difference)",
}


def _executor_type(self, *args, **kwargs):
    if self._testMethodName in BREAK:
        kwargs.setdefault("on_worker_death", "break")
    return multiproc.ProcessPoolExecutor(*args, **kwargs)


# Child scripts name the executor by ``executor_type.__name__``.
_executor_type.__name__ = "ProcessPoolExecutor"


def _rebind_child_scripts(f):
    """``f`` with its child scripts importing multiproc's executor, and
    CPython's helpers from the file loaded here (the children run with
    ``-I``, so the folder is put on their path by the script itself)."""
    folder = os.path.dirname(os.path.abspath(T.__file__))
    name = T.__name__
    code = f.__code__

    def fix(c):
        if not isinstance(c, str):
            return c
        c = c.replace("from concurrent.futures import {executor_type}", "from multiproc import {executor_type}")
        # test_hang_gh83386's script (CPython skips it for its own process
        # pool, which hangs there) uses multiprocessing without importing it.
        c = c.replace("if {context!r}: multiprocessing.set_start_method({context!r})",
                      "import multiprocessing; multiprocessing.set_start_method({context!r}) if {context!r} else None")
        if name != "test.test_concurrent_futures":
            c = c.replace("from test.test_concurrent_futures import",
                          "import sys; sys.path.append(%r); from %s import" % (folder, name))
        return c

    consts = tuple(fix(c) for c in code.co_consts)
    if consts == code.co_consts:
        return None
    return type(f)(code.replace(co_consts=consts), f.__globals__, f.__name__, f.__defaults__, f.__closure__)


def _excluded(reason):
    def test(self):
        self.skipTest(reason)
    return test


def _bind():
    bound = {}
    for name, cls in sorted(vars(T).items()):
        if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)
                and name.startswith("ProcessPool") and getattr(cls, "ctx", None)):
            continue
        ns = {"executor_type": _executor_type, "__module__": __name__}
        for attr in dir(cls):
            if not attr.startswith("test"):
                continue
            reason = EXCLUDED.get("%s.%s" % (name, attr), EXCLUDED.get(attr))
            if reason is not None:
                ns[attr] = _excluded(reason)
                continue
            rebound = _rebind_child_scripts(getattr(cls, attr))
            if rebound is not None:
                ns[attr] = rebound
        bound["Multiproc" + name] = type("Multiproc" + name, (cls,), ns)
    return bound


globals().update(_bind())
