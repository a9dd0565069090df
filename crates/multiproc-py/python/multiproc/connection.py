"""``Pipe`` and ``Connection`` (socketpair or OS pipe, ``multiprocessing``'s
framing). ``Listener``/``Client`` are ``multiprocessing``'s until the Rust
bindings land."""

from multiprocessing.connection import Client, Listener, wait  # noqa: F401  (re-exported)

from . import _reduction
from ._multiproc import RawConnection
from ._multiproc import pipe as _pipe

__all__ = ["Connection", "Pipe", "Listener", "Client", "wait"]

_ForkingPickler = _reduction._ForkingPickler


class Connection:
    """One end of a ``Pipe``: ``multiprocessing.connection.Connection``'s API."""

    def __init__(self, raw):
        self._setstate(raw, None)

    def _setstate(self, raw, _extra):
        self._raw = raw
        self.recv_bytes = raw.recv_bytes
        self.poll = raw.poll
        self.fileno = raw.fileno

    def __reduce__(self):
        state, fds = self._raw._state()
        return (
            _reduction.rebuild,
            (type(self), RawConnection._rebuild, (), state, _reduction.dup_fds(fds), None),
        )

    @property
    def closed(self):
        """Whether it was closed."""
        return self._raw.closed

    @property
    def readable(self):
        """Whether it can receive."""
        return self._raw.readable

    @property
    def writable(self):
        """Whether it can send."""
        return self._raw.writable

    def fileno(self):
        """The file descriptor."""
        return self._raw.fileno()

    def close(self):
        """Close it."""
        self._raw.close()

    def send_bytes(self, buf, offset=0, size=None):
        """Send bytes of a bytes-like object as one message."""
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        n = m.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        self._raw._send_bytes(m, offset, size)

    def send(self, obj):
        """Send a picklable object."""
        self._raw._send_bytes(_ForkingPickler.dumps(obj))

    def recv_bytes(self, maxlength=None):
        """Receive one message as ``bytes``; ``EOFError`` when the peer closed."""
        return self._raw.recv_bytes(maxlength)

    def recv_bytes_into(self, buf, offset=0):
        """Receive one message into a writable buffer at byte ``offset``; its
        length in bytes. ``multiprocessing.BufferTooShort`` if it does not fit."""
        with memoryview(buf) as m:
            itemsize = m.itemsize
            bytesize = itemsize * len(m)
            if offset < 0:
                raise ValueError("negative offset")
            elif offset > bytesize:
                raise ValueError("offset too large")
            return self._raw._recv_bytes_into(buf, offset)

    def recv(self):
        """Receive a pickled object."""
        return _ForkingPickler.loads(self._raw.recv_bytes())

    def poll(self, timeout=0.0):
        """Whether data is available (waiting at most ``timeout`` s; ``None``: forever)."""
        return self._raw.poll(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def __del__(self):
        raw = getattr(self, "_raw", None)
        if raw is not None:
            raw.close()


def Pipe(duplex=True):
    """``multiprocessing.Pipe``: a pair of ``Connection``s; with ``duplex=False``
    the first only receives and the second only sends."""
    a, b = _pipe(duplex)
    return Connection(a), Connection(b)
