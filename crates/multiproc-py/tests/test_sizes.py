"""No size limits the standard library lacks: 100 MB messages through a
Pipe in both directions of a process boundary, from a standard-library peer,
and 20 MB Manager values; `max_message_size` sets a limit when wanted."""

import multiprocessing
import multiprocessing.connection as stdlib

import pytest

import multiproc as mp
from multiproc.connection import Listener

BIG = 100 << 20
KEY = b"sizes"


def _pattern(n):
    # Not all one byte, so a torn or shifted message is noticed.
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def _send_big(conn, n, pickled):
    data = _pattern(n)
    if pickled:
        conn.send(bytearray(data))
    else:
        conn.send_bytes(data)
    conn.close()


@pytest.mark.parametrize("pickled", [False, True], ids=["send_bytes", "send"])
def test_a_100_mb_message_crosses_a_pipe_between_processes(pickled):
    a, b = mp.Pipe()
    p = multiprocessing.get_context("fork").Process(target=_send_big, args=(b, BIG, pickled))
    p.start()
    b.close()
    got = a.recv() if pickled else a.recv_bytes()
    p.join(60)
    assert p.exitcode == 0
    assert len(got) == BIG and got == _pattern(BIG)


def _stdlib_client(address, n):
    with stdlib.Client(address, authkey=KEY) as c:
        c.send_bytes(_pattern(n))
        assert c.recv_bytes() == b"ok"


def test_a_standard_library_peer_sends_100_mb_to_a_multiproc_connection():
    with Listener(authkey=KEY) as l:
        p = multiprocessing.get_context("spawn").Process(
            target=_stdlib_client, args=(l.address, BIG)
        )
        p.start()
        with l.accept() as conn:
            got = conn.recv_bytes()
            assert len(got) == BIG and got == _pattern(BIG)
            conn.send_bytes(b"ok")
        p.join(60)
    assert p.exitcode == 0


def test_a_20_mb_manager_value():
    with mp.Manager() as m:
        d = m.dict()
        v = _pattern(20 << 20)
        d["k"] = v
        assert d["k"] == v
        lst = m.list([v])
        assert lst[0] == v


def test_a_manager_value_past_the_rust_default_limit():
    # Rust's managers stop at 256 MiB by default; Python's have no limit.
    with mp.Manager() as m:
        d = m.dict()
        d["k"] = bytes(257 << 20)
        assert len(d["k"]) == 257 << 20


def test_max_message_size_sets_a_limit_when_wanted():
    a, b = mp.Pipe()
    assert a.max_message_size is None and b.max_message_size is None
    b.max_message_size = 1000
    assert b.max_message_size == 1000
    with pytest.raises(ValueError):
        b.send_bytes(bytes(1001))
    b.send_bytes(bytes(1000))
    assert len(a.recv_bytes()) == 1000
    # The receiving side's limit: a longer message breaks the connection.
    a.max_message_size = 10
    b.max_message_size = None
    b.send_bytes(bytes(11))
    with pytest.raises(OSError):
        a.recv_bytes()
    with pytest.raises(ValueError):
        a.max_message_size = -1
