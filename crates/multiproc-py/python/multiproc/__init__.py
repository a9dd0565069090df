"""multiproc: a faster drop-in for ``multiprocessing``'s IPC objects.

``import multiproc as mp`` in place of ``import multiprocessing as mp``:
``Queue``, ``SimpleQueue``, ``JoinableQueue``, ``Pipe``, ``Lock``, ``RLock``,
``Semaphore``, ``BoundedSemaphore``, ``Condition``, ``Event``, ``Barrier``,
``Value``, ``Array``, ``RawValue``, ``RawArray``, ``shared_memory``,
``connection.Listener``/``Client``/``wait``, ``Manager`` and ``Pool`` are
multiproc's (Rust: shared memory, memfds, sockets, a Rust manager server; a
pool that never hangs on a dead worker); ``Process`` and the rest are
``multiprocessing``'s own, re-exported so one import serves a program.
The objects work with processes of any start method, however they were
created.
"""

import multiprocessing as _mp
from multiprocessing import (  # noqa: F401  (re-exported)
    AuthenticationError,
    BufferTooShort,
    Process,
    ProcessError,
    TimeoutError,
    active_children,
    allow_connection_pickling,
    cpu_count,
    current_process,
    freeze_support,
    get_all_start_methods,
    get_logger,
    get_start_method,
    log_to_stderr,
    parent_process,
    set_executable,
    set_forkserver_preload,
    set_start_method,
)

from . import managers, shared_memory  # noqa: F401
from ._errors import OwnerDiedWarning
from .connection import Connection, Pipe
from .futures import ProcessPoolExecutor
from .managers import Manager
from .pool import Pool, Retry, TaskTimeoutError, WorkerLostError
from .queues import JoinableQueue, Queue, SimpleQueue
from .sharedctypes import Array, RawArray, RawValue, Value
from .synchronize import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore

__version__ = "0.1.0"

__all__ = [
    "Array", "AuthenticationError", "Barrier", "BoundedSemaphore", "BufferTooShort",
    "Condition", "Connection", "Event", "JoinableQueue", "Lock", "Manager",
    "OwnerDiedWarning", "Pipe", "Pool", "Process", "ProcessPoolExecutor", "ProcessError", "Queue", "RLock",
    "RawArray", "RawValue", "Retry", "Semaphore", "SimpleQueue", "TaskTimeoutError", "TimeoutError",
    "Value", "WorkerLostError",
    "active_children", "allow_connection_pickling", "cpu_count", "current_process",
    "freeze_support", "get_all_start_methods", "get_context", "get_logger",
    "get_start_method", "log_to_stderr", "parent_process", "set_executable",
    "set_forkserver_preload", "set_start_method", "shared_memory",
]


class Context:
    """A start-method context (``get_context``): ``multiprocessing``'s for
    processes, multiproc's for the IPC objects (which do not depend on it)."""

    def __init__(self, mp_context):
        self._ctx = mp_context
        self.Process = mp_context.Process

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def get_start_method(self, allow_none=False):
        return self._ctx.get_start_method(allow_none)

    Queue = staticmethod(Queue)
    SimpleQueue = staticmethod(SimpleQueue)
    JoinableQueue = staticmethod(JoinableQueue)
    Pipe = staticmethod(Pipe)
    Lock = staticmethod(Lock)
    RLock = staticmethod(RLock)
    Semaphore = staticmethod(Semaphore)
    BoundedSemaphore = staticmethod(BoundedSemaphore)
    Condition = staticmethod(Condition)
    Event = staticmethod(Event)
    Barrier = staticmethod(Barrier)
    Value = staticmethod(Value)
    Array = staticmethod(Array)
    RawValue = staticmethod(RawValue)
    RawArray = staticmethod(RawArray)

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, **kwargs):
        """A multiproc ``Pool`` whose workers start with this context."""
        from .pool import Pool

        return Pool(processes, initializer, initargs, maxtasksperchild, context=self._ctx, **kwargs)

    def Manager(self):
        """A started multiproc ``SyncManager`` whose server starts with this
        context's start method."""
        return managers.Manager(ctx=self._ctx)


def get_context(method=None):
    """``multiprocessing.get_context`` with multiproc's IPC objects."""
    return Context(_mp.get_context(method))
