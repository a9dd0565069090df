"""Exception and warning classes of multiproc.

multiproc raises the classes CPython's ``multiprocessing`` raises
(``queue.Full``/``queue.Empty``, ``EOFError``, ``BrokenPipeError``,
``threading.BrokenBarrierError``, ``multiprocessing.BufferTooShort``, ...);
the only class of its own is the warning below.
"""

__all__ = ["OwnerDiedWarning"]


class OwnerDiedWarning(RuntimeWarning):
    """A lock was acquired whose previous holder died (e.g. SIGKILL) holding it.

    The caller holds the lock when this is emitted; the data the lock
    protected may be half-updated. Turn it into an error with
    ``warnings.simplefilter("error", multiproc.OwnerDiedWarning)``.
    """

    __module__ = "multiproc"
