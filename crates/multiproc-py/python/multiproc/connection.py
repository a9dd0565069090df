"""``Pipe``, ``Connection``, ``Listener``, ``Client`` and ``wait``:
``multiprocessing.connection``'s API on the Rust core (``multiprocessing``'s
framing and handshake, so either side may be CPython's own).

Authentication: with an ``authkey`` both sides prove they know it by
Python's challenge. By default multiproc speaks HMAC-SHA256 (Python 3.12+)
and also accepts and answers HMAC-MD5 (Python 3.11 and earlier), so it talks
to ``multiprocessing.connection`` peers of any Python version; pass
``legacy_md5=False`` to ``Listener``/``Client`` to refuse MD5. Without an
authkey nobody is authenticated, as in ``multiprocessing``. A handshake must
finish within 5 s.
"""

import hmac
import os
import socket
from multiprocessing import AuthenticationError

from . import _aio, _reduction
from ._multiproc import RawConnection, RawListener, wait_fds
from ._multiproc import connect as _connect
from ._multiproc import pipe as _pipe

__all__ = [
    "Connection",
    "Pipe",
    "Listener",
    "Client",
    "wait",
    "families",
    "answer_challenge",
    "deliver_challenge",
]

families = ["AF_UNIX", "AF_INET"]

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
    def max_message_size(self):
        """The largest message, in bytes, this end sends or accepts; ``None``
        (the default) for no limit, as in ``multiprocessing``. Memory grows
        with the bytes that arrive, never with a length prefix alone."""
        return self._raw.max_message_size

    @max_message_size.setter
    def max_message_size(self, value):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError("max_message_size must be None or a non-negative int")
        self._raw.max_message_size = value

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
        """Close it (tasks awaiting it wake and find it closed)."""
        if not self._raw.closed:
            _aio.forget(self._raw.fileno())
            _aio.forget(self._raw._send_fileno())
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

    async def send_bytes_async(self, buf, offset=0, size=None):
        """``send_bytes`` without blocking the event loop: awaits room in the
        pipe or socket. A cancelled call sent nothing, or its message goes
        out whole (the rest of a message already started is written before
        anything else sent on this connection)."""
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        n = m.nbytes
        if offset < 0 or n < offset:
            raise ValueError("offset is out of range")
        if size is None:
            size = n - offset
        elif size < 0 or offset + size > n:
            raise ValueError("buffer length < offset + size")
        fd = self._raw._send_fileno()
        while not self._raw._try_start_send_bytes(m, offset, size):
            await _aio.writable(fd)
        while not self._raw._flush_unsent():
            await _aio.writable(fd)

    async def send_async(self, obj):
        """``send`` without blocking the event loop (see ``send_bytes_async``)."""
        await self.send_bytes_async(_ForkingPickler.dumps(obj))

    coro_send = send_async

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

    async def recv_bytes_async(self):
        """``await`` one byte message without blocking the event loop;
        ``EOFError`` when the peer closed (or died). A cancelled call loses
        nothing: a message's first bytes stay buffered for the next receive."""
        while True:
            m = self._raw._try_recv_bytes()
            if m is not None:
                return m
            await _aio.readable(self._raw.fileno())

    async def recv_async(self):
        """``await`` one object (``recv`` without blocking the event loop)."""
        return _ForkingPickler.loads(await self.recv_bytes_async())

    coro_recv = recv_async

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


def _check_authkey(authkey):
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")


def _address_type(address):
    if isinstance(address, tuple):
        return "AF_INET"
    if isinstance(address, str) and address.startswith("\\\\"):
        return "AF_PIPE"
    if isinstance(address, (str, bytes, os.PathLike)):
        return "AF_UNIX"
    raise ValueError("address type of %r unrecognized" % (address,))


def _native_address(address, family):
    """``address`` as the native layer takes it: a path, or ``(ip, port)``."""
    if family == "AF_INET":
        host, port = address
        if host in ("", None):
            host = "0.0.0.0"
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        ip, port = infos[0][4][:2]
        return (ip, port)
    if family == "AF_UNIX":
        # A leading NUL is Linux's abstract namespace: the native layer
        # binds no file and serves only peers of this process's uid.
        return os.fsdecode(address)
    raise ValueError("unsupported address family %r (multiproc supports AF_UNIX and AF_INET)"
                     % (family,))


class Listener:
    """``multiprocessing.connection.Listener``: accepts ``Client`` connections
    on a Unix socket path (``str``), a TCP ``(host, port)``, or (``None``) a
    fresh Unix socket in a private directory. ``accept()`` returns a
    multiproc ``Connection``. ``legacy_md5=False`` refuses HMAC-MD5 peers
    (Python 3.11 and earlier)."""

    def __init__(self, address=None, family=None, backlog=1, authkey=None, *, legacy_md5=True):
        _check_authkey(authkey)
        family = family or (address and _address_type(address)) or "AF_UNIX"
        if address is None and family == "AF_INET":
            address = ("localhost", 0)
        native = None if address is None else _native_address(address, family)
        self._family = family
        self._raw = RawListener(native, backlog, authkey, legacy_md5)
        self._last_accepted = None

    def accept(self):
        """Accept a connection (blocking); ``multiprocessing.AuthenticationError``
        when the client's authkey is wrong."""
        raw = self._raw
        if raw.closed:
            raise OSError("listener is closed")
        conn = Connection(raw.accept())
        try:
            with socket.socket(fileno=os.dup(conn.fileno())) as s:
                self._last_accepted = s.getpeername()
        except OSError:
            self._last_accepted = None
        return conn

    def close(self):
        """Stop listening (and remove the socket file)."""
        raw = self._raw
        if raw is not None:
            raw.close()

    def fileno(self):
        """The listening socket's descriptor (``wait`` accepts a listener)."""
        return self._raw.fileno()

    @property
    def address(self):
        """The address clients connect to (for port 0: the port chosen)."""
        return self._raw.address

    @property
    def last_accepted(self):
        """The peer address of the last accepted connection."""
        return self._last_accepted

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()


def Client(address, family=None, authkey=None, *, legacy_md5=True):
    """``multiprocessing.connection.Client``: connect to a ``Listener`` (multiproc's
    or ``multiprocessing``'s) and return a multiproc ``Connection``."""
    _check_authkey(authkey)
    family = family or _address_type(address)
    return Connection(_connect(_native_address(address, family), authkey, legacy_md5))


def wait(object_list, timeout=None):
    """``multiprocessing.connection.wait``: the objects of ``object_list``
    (connections, listeners, sockets, process sentinels, ints: anything with
    a ``fileno()``) that are ready to read, waiting at most ``timeout``
    seconds (``None``: forever). An empty list on timeout."""
    objs = list(object_list)
    ready = set()
    for i, o in enumerate(objs):
        # A multiproc Connection may hold a whole message read ahead.
        if isinstance(o, Connection) and o.poll(0):
            ready.add(i)
    fds = [o if isinstance(o, int) else o.fileno() for o in objs]
    if ready:
        timeout = 0
    elif timeout is not None:
        timeout = max(0.0, timeout)
    ready.update(wait_fds(fds, timeout))
    return [o for i, o in enumerate(objs) if i in ready]


# The challenge protocol of ``multiprocessing.connection`` (the same bytes the
# native handshake speaks), for code that authenticates its own connections.
# Python 3.12+ frames: the server sends ``#CHALLENGE#{digest}<40 random
# bytes>``, the client answers ``{digest}<HMAC(authkey, challenge)>``. Python
# 3.11 and earlier send 20 bytes without a prefix and answer a bare 16-byte
# HMAC-MD5; both sides here understand those too.

MESSAGE_LENGTH = 40
CHALLENGE = _CHALLENGE = b"#CHALLENGE#"
WELCOME = _WELCOME = b"#WELCOME#"
FAILURE = _FAILURE = b"#FAILURE#"
_ALLOWED_DIGESTS = frozenset({b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"})
_MAX_DIGEST_LEN = max(len(d) for d in _ALLOWED_DIGESTS)
# The lengths of a legacy challenge (20 bytes) and a legacy answer (16 bytes,
# a bare HMAC-MD5): no prefixed message is this short.
_LEGACY_LENGTHS = (20, 16)
# Longest handshake message either side reads: a length prefix cannot make
# a peer that is not authenticated yet allocate more.
_MAX_HANDSHAKE_MESSAGE = 256


def _check_key(authkey):
    if not isinstance(authkey, bytes):
        raise ValueError(f"Authkey must be bytes, not {type(authkey)!s:.100}")


def _split_digest(message):
    """(digest name, payload) of a handshake message; ``""`` for legacy MD5."""
    if len(message) in _LEGACY_LENGTHS:
        return "", message
    if message.startswith(b"{"):
        end = message.find(b"}", 1, _MAX_DIGEST_LEN + 2)
        if end > 0 and message[1:end] in _ALLOWED_DIGESTS:
            return message[1:end].decode("ascii"), message[end + 1 :]
    raise AuthenticationError(
        "unsupported message length, missing digest prefix, "
        f"or unsupported digest: message={message!r}"
    )


def _response(authkey, challenge):
    name = _split_digest(challenge)[0]
    if not name:
        return hmac.new(authkey, challenge, "md5").digest()
    mac = hmac.new(authkey, challenge, name).digest()
    return b"{%s}%s" % (name.encode("ascii"), mac)


def _verify(authkey, challenge, response):
    name, mac = _split_digest(response)
    name = name or "md5"
    try:
        expected = hmac.new(authkey, challenge, name).digest()
    except ValueError:
        raise AuthenticationError(f"digest {name!r} unsupported") from None
    if len(expected) != len(mac):
        raise AuthenticationError(f"expected {name!r} of length {len(expected)} got {len(mac)}")
    if not hmac.compare_digest(expected, mac):
        raise AuthenticationError("digest received was wrong")


def deliver_challenge(connection, authkey, digest_name="sha256"):
    """The server side of ``multiprocessing.connection``'s handshake on any
    object with ``send_bytes``/``recv_bytes``: send a random challenge, check
    the peer's HMAC with ``authkey``, and answer ``#WELCOME#`` or
    ``#FAILURE#``. Raises ``multiprocessing.AuthenticationError`` when the
    peer does not prove it knows the key."""
    _check_key(authkey)
    if digest_name.encode("ascii") not in _ALLOWED_DIGESTS:
        raise ValueError(f"{digest_name=!r} unsupported")
    challenge = b"{%s}%s" % (digest_name.encode("ascii"), os.urandom(MESSAGE_LENGTH))
    connection.send_bytes(_CHALLENGE + challenge)
    response = connection.recv_bytes(_MAX_HANDSHAKE_MESSAGE)
    try:
        _verify(authkey, challenge, response)
    except AuthenticationError:
        connection.send_bytes(_FAILURE)
        raise
    connection.send_bytes(_WELCOME)


def answer_challenge(connection, authkey):
    """The client side of ``multiprocessing.connection``'s handshake: answer
    the peer's challenge with an HMAC of ``authkey`` (in the digest the
    challenge names, MD5 for a legacy one) and wait for its verdict. Raises
    ``multiprocessing.AuthenticationError`` when the peer rejects it or does
    not speak the protocol."""
    _check_key(authkey)
    message = connection.recv_bytes(_MAX_HANDSHAKE_MESSAGE)
    if not message.startswith(_CHALLENGE):
        raise AuthenticationError(f"Protocol error, expected challenge: {message=}")
    challenge = message[len(_CHALLENGE) :]
    if len(challenge) < _LEGACY_LENGTHS[0]:
        raise AuthenticationError(f"challenge too short: {len(challenge)} bytes")
    connection.send_bytes(_response(authkey, challenge))
    if connection.recv_bytes(_MAX_HANDSHAKE_MESSAGE) != _WELCOME:
        raise AuthenticationError("digest sent was rejected")
