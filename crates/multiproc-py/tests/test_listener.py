"""multiproc.connection's Listener, Client and wait: interop with the
stdlib's multiprocessing.connection (this Python's handshake: HMAC-MD5 on
3.11, SHA-256 on 3.12+), authentication failures, children of every start
method, wait over mixed objects."""

import multiprocessing
import multiprocessing.connection as stdlib
import os
import sys
import threading

import pytest

import multiproc as mp
from multiproc.connection import Client, Connection, Listener, wait

METHODS = ["fork", "spawn", "forkserver"]
KEY = b"secret key"
LEGACY = sys.version_info < (3, 12)  # this Python's stdlib speaks only MD5


def _in_thread(f):
    out = {}

    def run():
        try:
            out["value"] = f()
        except BaseException as e:  # noqa: BLE001  (reported to the test)
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, out


@pytest.mark.parametrize("address", [None, ("localhost", 0)])
def test_stdlib_client_to_multiproc_listener(address):
    with Listener(address, authkey=KEY) as l:
        t, out = _in_thread(lambda: stdlib.Client(l.address, authkey=KEY))
        with l.accept() as conn:
            t.join()
            c = out["value"]
            c.send({"x": [1, 2.5, "three"]})
            assert conn.recv() == {"x": [1, 2.5, "three"]}
            conn.send_bytes(b"back")
            assert c.recv_bytes() == b"back"
            c.close()
            assert isinstance(conn, Connection)


@pytest.mark.parametrize("family", ["AF_UNIX", "AF_INET"])
def test_multiproc_client_to_stdlib_listener(family):
    with stdlib.Listener(family=family, authkey=KEY) as l:
        t, out = _in_thread(l.accept)
        with Client(l.address, authkey=KEY) as c:
            t.join()
            server = out["value"]
            server.send(("hi", 7))
            assert c.recv() == ("hi", 7)
            c.send_bytes(b"x" * 100_000)
            assert server.recv_bytes() == b"x" * 100_000
            server.close()
            with pytest.raises(EOFError):
                c.recv()


def test_wrong_authkey_both_sides():
    with Listener(authkey=KEY) as l:
        t, out = _in_thread(lambda: Client(l.address, authkey=b"wrong"))
        with pytest.raises(mp.AuthenticationError):
            l.accept()
        t.join()
        assert isinstance(out["error"], mp.AuthenticationError)
        # The listener keeps serving.
        t, out = _in_thread(lambda: Client(l.address, authkey=KEY))
        with l.accept():
            t.join()
            out["value"].close()


def test_wrong_authkey_against_stdlib_listener():
    with stdlib.Listener(authkey=KEY) as l:
        t, out = _in_thread(l.accept)
        with pytest.raises(multiprocessing.AuthenticationError):
            Client(l.address, authkey=b"wrong")
        t.join()
        assert isinstance(out["error"], multiprocessing.AuthenticationError)


@pytest.mark.skipif(not LEGACY, reason="this Python's stdlib speaks SHA-256")
def test_sha256_only_refuses_an_md5_peer():
    with Listener(authkey=KEY, legacy_md5=False) as l:
        t, out = _in_thread(lambda: stdlib.Client(l.address, authkey=KEY))
        with pytest.raises(mp.AuthenticationError):
            l.accept()
        t.join()
        assert isinstance(out["error"], multiprocessing.AuthenticationError)
    # SHA-256 between two multiproc ends still works.
    with Listener(authkey=KEY, legacy_md5=False) as l:
        t, out = _in_thread(lambda: Client(l.address, authkey=KEY, legacy_md5=False))
        with l.accept() as conn:
            t.join()
            out["value"].send(1)
            assert conn.recv() == 1


def test_addresses():
    with Listener(("127.0.0.1", 0)) as l:
        host, port = l.address
        assert host == "127.0.0.1" and port > 0
    with Listener() as l:
        path = l.address
        assert isinstance(path, str) and os.path.exists(path)
        with pytest.raises(OSError):
            Listener(path)
    assert not os.path.exists(path)
    with pytest.raises(OSError):
        Listener("\0" + "x" * 200)  # longer than an abstract name can be
    with pytest.raises(TypeError):
        Listener(authkey="not bytes")
    with pytest.raises(OSError):
        l.accept()


def _abstract_name(tag):
    return "\0multiproc-test-%d-%s" % (os.getpid(), tag)


@pytest.mark.parametrize("authkey", [None, KEY])
def test_abstract_address_interop_with_stdlib(authkey):
    name = _abstract_name("interop")
    with Listener(name, authkey=authkey) as l:
        assert l.address == name
        with pytest.raises(OSError):
            Listener(name)  # the name is in use
        t, out = _in_thread(lambda: stdlib.Client(l.address, authkey=authkey))
        with l.accept() as conn:
            t.join()
            with out["value"] as c:
                c.send([1, 2])
                assert conn.recv() == [1, 2]
    # Closed: the name is free again, and nothing is left in the filesystem.
    with stdlib.Listener(name, authkey=authkey) as sl:
        t, out = _in_thread(lambda: sl.accept())
        with Client(name, authkey=authkey) as c:
            t.join()
            with out["value"] as conn:
                conn.send("hi")
                assert c.recv() == "hi"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching a child's uid needs root")
def test_abstract_listener_refuses_another_uid():
    name = _abstract_name("uid")
    with Listener(name) as l:
        pid = os.fork()
        if pid == 0:  # the child: become nobody and connect
            code = 1
            try:
                os.setresuid(65534, 65534, 65534)
                with stdlib.Client(name) as c:
                    try:
                        c.send(1)
                        c.recv()
                    except (EOFError, OSError):
                        code = 0  # closed unread (EOF, or a reset or broken pipe)
            finally:
                os._exit(code)
        with pytest.raises(PermissionError, match="uid 65534"):
            l.accept()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # Still serving this uid.
        t, out = _in_thread(lambda: Client(name))
        with l.accept() as conn:
            t.join()
            with out["value"] as c:
                c.send(5)
                assert conn.recv() == 5


def test_wait_over_connections_listeners_and_sentinels():
    with Listener() as l:
        assert wait([l], 0.05) == []
        c = Client(l.address)
        assert wait([l], 5) == [l]
        d = l.accept()
        a, b = mp.Pipe()
        assert wait([a, b, c, d], 0.05) == []
        b.send("x")
        c.send("y")
        assert wait([a, b, c, d], 5) == [a, d]
        assert a.recv() == "x" and d.recv() == "y"
        p = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
        p.start()
        assert wait([a, p.sentinel], 10) == [p.sentinel]
        p.join()
        # The stdlib's own wait works on multiproc connections too.
        c.send("z")
        assert stdlib.wait([d], 5) == [d]


def _child_client(address, key):
    with Client(address, authkey=key) as c:
        c.send(("child", os.getpid()))
        assert c.recv() == "ack"


@pytest.mark.parametrize("method", METHODS)
def test_child_clients(method):
    ctx = multiprocessing.get_context(method)
    for address in (None, ("localhost", 0)):
        with Listener(address, authkey=KEY) as l:
            p = ctx.Process(target=_child_client, args=(l.address, KEY))
            p.start()
            with l.accept() as conn:
                tag, pid = conn.recv()
                assert tag == "child" and pid == p.pid
                conn.send("ack")
            p.join(30)
            assert p.exitcode == 0


# answer_challenge / deliver_challenge: the handshake as functions, on any
# connection, against the standard library's in another process.

_SIDES = {
    "multiproc": mp.connection,
    "stdlib": stdlib,
}


def _handshake_child(side, role, conn, key):
    f = getattr(_SIDES[side], role)
    try:
        f(conn, key)
    except multiprocessing.AuthenticationError:
        os._exit(2)
    conn.send_bytes(b"after the handshake")
    os._exit(0)


@pytest.mark.parametrize(
    "server,client",
    [("multiproc", "multiproc"), ("multiproc", "stdlib"), ("stdlib", "multiproc")],
)
@pytest.mark.parametrize("right_key", [True, False])
def test_challenge_functions_against_each_other_across_processes(server, client, right_key):
    here, there = mp.Pipe()
    # The child answers (client); the test delivers (server).
    child_key = KEY if right_key else b"another key"
    p = multiprocessing.get_context("fork").Process(
        target=_handshake_child, args=(client, "answer_challenge", there, child_key)
    )
    p.start()
    if right_key:
        _SIDES[server].deliver_challenge(here, KEY)
        assert here.recv_bytes() == b"after the handshake"
    else:
        with pytest.raises(multiprocessing.AuthenticationError):
            _SIDES[server].deliver_challenge(here, KEY)
    p.join(30)
    assert p.exitcode == (0 if right_key else 2)


def test_challenge_functions_refuse_what_is_not_the_protocol():
    # CPython's OtherTest: a bogus answer, and a bogus verdict.
    class Bogus:
        def __init__(self, replies):
            self.replies = list(replies)
            self.sent = []

        def recv_bytes(self, maxlength=None):
            return self.replies.pop(0)

        def send_bytes(self, data):
            self.sent.append(bytes(data))

    c = Bogus([b"something bogus"])
    with pytest.raises(multiprocessing.AuthenticationError):
        mp.connection.deliver_challenge(c, b"abc")
    assert c.sent[0].startswith(mp.connection.CHALLENGE)
    assert c.sent[-1] == mp.connection.FAILURE
    c = Bogus([mp.connection.CHALLENGE + os.urandom(20), b"something bogus"])
    with pytest.raises(multiprocessing.AuthenticationError):
        mp.connection.answer_challenge(c, b"abc")
    for challenge in [b"not a challenge", mp.connection.CHALLENGE, b"#CHALLENGE#{sha1}" + bytes(40)]:
        with pytest.raises(multiprocessing.AuthenticationError):
            mp.connection.answer_challenge(Bogus([challenge]), b"abc")
    with pytest.raises(ValueError):
        mp.connection.answer_challenge(Bogus([]), "not bytes")
