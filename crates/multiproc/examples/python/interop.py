"""Python side of the `python_interop` example.

Modes (the authkey is read from the first line of stdin, never argv/env):
  stdlib-listener              multiprocessing.connection.Listener on 127.0.0.1:0
  stdlib-client PATH           multiprocessing.connection.Client to a Unix path
  sha256-client HOST PORT      the Python 3.12 {sha256} handshake, by hand
  sha256-server                the same, as a server on 127.0.0.1:0

Each prints `ready PORT` when listening, then one line per received message.
The hand-written handshake mirrors CPython 3.12's deliver_challenge,
answer_challenge, _create_response and _verify_challenge with hmac/hashlib
only, so it tests multiproc's SHA-256 path with any Python 3.
"""

import hmac
import os
import socket
import struct
import sys

CHALLENGE = b"#CHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"


def send_bytes(sock, payload):
    sock.sendall(struct.pack("!i", len(payload)) + payload)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def recv_bytes(sock, maxlength=None):
    (size,) = struct.unpack("!i", recv_exact(sock, 4))
    if size < 0 or (maxlength is not None and size > maxlength):
        raise OSError("bad message length")
    return recv_exact(sock, size)


def deliver_challenge(sock, authkey):
    message = b"{sha256}" + os.urandom(40)
    send_bytes(sock, CHALLENGE + message)
    response = recv_bytes(sock, 256)
    if not response.startswith(b"{sha256}"):
        send_bytes(sock, FAILURE)
        raise RuntimeError("no {sha256} prefix in the response")
    expected = hmac.new(authkey, message, "sha256").digest()
    if not hmac.compare_digest(expected, response[len(b"{sha256}"):]):
        send_bytes(sock, FAILURE)
        raise RuntimeError("digest received was wrong")
    send_bytes(sock, WELCOME)


def answer_challenge(sock, authkey):
    message = recv_bytes(sock, 256)
    if not message.startswith(CHALLENGE + b"{sha256}"):
        raise RuntimeError("expected a {sha256} challenge")
    message = message[len(CHALLENGE):]
    # The MAC covers the whole message, prefix included (3.12's _create_response).
    send_bytes(sock, b"{sha256}" + hmac.new(authkey, message, "sha256").digest())
    if recv_bytes(sock, 256) != WELCOME:
        raise RuntimeError("digest sent was rejected")


def main():
    mode = sys.argv[1]
    authkey = sys.stdin.readline().rstrip("\n").encode()
    print("python", "%d.%d" % sys.version_info[:2], flush=True)
    if mode == "stdlib-listener":
        from multiprocessing.connection import Listener

        with Listener(("127.0.0.1", 0), authkey=authkey) as listener:
            print("ready", listener.address[1], flush=True)
            with listener.accept() as conn:
                msg = conn.recv_bytes()
                print("python got", msg.decode(), flush=True)
                conn.send_bytes(b"python listener echoes " + msg)
    elif mode == "stdlib-client":
        from multiprocessing.connection import Client

        try:
            conn = Client(sys.argv[2], family="AF_UNIX", authkey=authkey)
        except Exception as e:  # AuthenticationError
            print("python client refused:", type(e).__name__, flush=True)
            return
        with conn:
            conn.send_bytes(b"hello from a python client")
            print("python got", conn.recv_bytes().decode(), flush=True)
    elif mode == "sha256-client":
        with socket.create_connection((sys.argv[2], int(sys.argv[3]))) as sock:
            answer_challenge(sock, authkey)
            deliver_challenge(sock, authkey)
            send_bytes(sock, b"hello over the sha256 handshake")
            print("python got", recv_bytes(sock).decode(), flush=True)
    elif mode == "sha256-server":
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            print("ready", srv.getsockname()[1], flush=True)
            sock, _ = srv.accept()
            with sock:
                deliver_challenge(sock, authkey)
                answer_challenge(sock, authkey)
                msg = recv_bytes(sock)
                print("python got", msg.decode(), flush=True)
                send_bytes(sock, b"python sha256 server echoes " + msg)
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
