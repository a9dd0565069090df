"""``asyncio`` for multiproc's objects: ``await q.get_async()`` and friends.

A native operation (``_multiproc.AsyncOp``) runs multiproc's own async
protocol: it tries, registers with the object, and leaves the futex sleep to
multiproc's waiter thread, which signals the operation's eventfd. The event
loop watches that eventfd with ``add_reader``: no thread per call, and the
loop never blocks. Cancelling the awaiting task (``asyncio.wait_for``,
``TaskGroup`` cancellation, Ctrl-C) closes the operation: a cancelled get
takes no item, a cancelled put puts none.
"""

import asyncio
import weakref

__all__ = ["drive", "forget", "readable", "with_timeout", "writable"]


# Per loop, the futures awaiting each descriptor. One reader (writer)
# callback per descriptor serves them all: ``add_reader`` keeps only the
# last callback for a descriptor, so two tasks awaiting the same connection
# would otherwise leave the first asleep for ever.
_readers = weakref.WeakKeyDictionary()
_writers = weakref.WeakKeyDictionary()


def _fire(table, fd, remove):
    futs = table.pop(fd, ())
    remove(fd)
    for f in futs:
        if not f.done():
            f.set_result(None)


async def _until(fd, tables, writer):
    loop = asyncio.get_running_loop()
    add, remove = (loop.add_writer, loop.remove_writer) if writer else (loop.add_reader, loop.remove_reader)
    table = tables.setdefault(loop, {})
    fut = loop.create_future()
    futs = table.get(fd)
    if futs is None:
        futs = set()
        # Into the table only once registered: a descriptor the loop
        # refuses leaves nothing behind for the next waiter on its number.
        add(fd, _fire, table, fd, remove)
        table[fd] = futs
    futs.add(fut)
    try:
        await fut
    finally:
        # Cancelled: the last one waiting takes the callback away.
        futs.discard(fut)
        if not futs and table.get(fd) is futs:
            del table[fd]
            remove(fd)


def forget(fd):
    """Wake every task awaiting ``fd`` and drop its registrations (before
    ``fd`` is closed, so that its number, reused, starts afresh). The
    tasks look again and find the object closed."""
    for tables, writer in ((_readers, False), (_writers, True)):
        for loop, table in list(tables.items()):
            if fd not in table:
                continue
            remove = loop.remove_writer if writer else loop.remove_reader
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                _fire(table, fd, remove)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_fire, table, fd, remove)


async def readable(fd):
    """Until ``fd`` is readable, in the running loop (any number of tasks
    may await the same descriptor)."""
    await _until(fd, _readers, False)


async def writable(fd):
    """Until ``fd`` is writable, in the running loop (any number of tasks
    may await the same descriptor)."""
    await _until(fd, _writers, True)


async def drive(op):
    """Poll ``op`` to its end, awaiting its eventfd between polls."""
    try:
        while True:
            done, value = op.poll()
            if done:
                return value
            await readable(op.fileno())
    finally:
        op.close()


async def with_timeout(coro, timeout, on_timeout):
    """``await coro``, at most ``timeout`` seconds (``None``: no limit);
    ``on_timeout()`` is returned or raised when the time runs out."""
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, max(timeout, 0))
    except (asyncio.TimeoutError, TimeoutError):
        return on_timeout()
