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

__all__ = ["drive", "readable", "with_timeout", "writable"]


def _ready(fut):
    if not fut.done():
        fut.set_result(None)


async def readable(fd):
    """Until ``fd`` is readable, in the running loop."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_reader(fd, _ready, fut)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


async def writable(fd):
    """Until ``fd`` is writable, in the running loop."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_writer(fd, _ready, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


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
