//! multiproc's `Listener`/`Client` talking to Python's
//! `multiprocessing.connection`, with an authkey, over `send_bytes` and
//! `recv_bytes`.
//!
//! 1. A Rust `Client` to Python's stdlib `Listener` (TCP).
//! 2. Python's stdlib `Client` to a Rust `Listener` (Unix socket).
//! 3. Python's stdlib `Client` refused by a SHA-256-only Rust `Listener`
//!    when that Python speaks only MD5 (3.11 and earlier).
//! 4. The Python 3.12 `{sha256}` handshake, written by hand with
//!    `hmac`/`hashlib` in `python/interop.py`, as a client of a Rust
//!    `Listener` and as a server for a Rust `Client` (default policy).
//!
//! Python 3.11's handshake is HMAC-MD5, so 1 and 2 use
//! `AuthPolicy::AllowLegacyMd5`. The authkey goes to Python on its stdin,
//! never in its argv or environment.
//!
//! Run: `cargo run --example python_interop [PYTHON]` (default `python3`;
//! e.g. `python3.12` to check Python's own SHA-256 handshake).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use multiproc::connection::{Address, AuthPolicy, Client, Listener};

const KEY: &[u8] = b"interop secret";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/interop.py")
}

/// Start `python3 interop.py args…`, give it the key on stdin, and return
/// it with its stdout and the Python version it reports.
fn python(interpreter: &str, args: &[&str]) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = Command::new(interpreter)
        .arg(script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(KEY).expect("key");
    stdin.write_all(b"\n").expect("key");
    drop(stdin);
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let version = next_line(&mut out);
    (child, out, version)
}

fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("read python's output");
    line.trim_end().to_owned()
}

/// Wait for `ready PORT` and return the port.
fn ready_port(out: &mut BufReader<ChildStdout>) -> u16 {
    let line = next_line(out);
    line.strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("expected `ready PORT`, got {line:?}"))
}

fn finish(mut child: Child, mut out: BufReader<ChildStdout>) {
    let rest = next_line(&mut out);
    if !rest.is_empty() {
        println!("  {rest}");
    }
    assert!(child.wait().expect("wait").success(), "python failed");
}

fn main() {
    multiproc::init();
    let interpreter = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let found = Command::new(&interpreter)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("{interpreter} not found: skipped");
        return;
    }
    let python = |args: &[&str]| python(&interpreter, args);

    // 1. Rust client -> Python stdlib Listener.
    let (child, mut out, version) = python(&["stdlib-listener"]);
    println!("{version}");
    let legacy_md5 = version
        .strip_prefix("python 3.")
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|minor| minor < 12);
    let port = ready_port(&mut out);
    let mut conn = Client::builder()
        .authkey(KEY)
        .policy(AuthPolicy::AllowLegacyMd5)
        .connect::<()>(Address::localhost(port))
        .expect("connect to the python listener");
    conn.send_bytes(b"hello from rust").expect("send");
    let reply = conn.recv_bytes().expect("recv");
    println!("1. rust client got: {}", String::from_utf8_lossy(&reply));
    finish(child, out);

    // 2. Python stdlib Client -> Rust Listener on a Unix socket.
    let listener = Listener::builder()
        .authkey(KEY)
        .policy(AuthPolicy::AllowLegacyMd5)
        .bind_private()
        .expect("listen");
    let Address::Unix(path) = listener.address().clone() else {
        unreachable!("bind_private is a Unix socket")
    };
    let (child, out, _) = python(&["stdlib-client", path.to_str().expect("utf-8 path")]);
    let mut conn = listener.accept::<()>().expect("accept the python client");
    let msg = conn.recv_bytes().expect("recv");
    println!("2. rust listener got: {}", String::from_utf8_lossy(&msg));
    conn.send_bytes(b"rust listener echoes it").expect("send");
    finish(child, out);
    drop(listener);

    // 3. The same client against the default policy (SHA-256 only).
    let listener = Listener::builder()
        .authkey(KEY)
        .bind_private()
        .expect("listen");
    let Address::Unix(path) = listener.address().clone() else {
        unreachable!("bind_private is a Unix socket")
    };
    let (child, out, _) = python(&["stdlib-client", path.to_str().expect("utf-8 path")]);
    match listener.accept::<()>() {
        Err(e) if legacy_md5 => println!("3. sha256-only listener refused md5: {e}"),
        Err(e) => panic!("a python >= 3.12 client was refused: {e}"),
        Ok(mut conn) if !legacy_md5 => {
            let _ = conn.recv_bytes();
            conn.send_bytes(b"ok").expect("send");
            println!("3. python >= 3.12 speaks sha256: accepted");
        }
        Ok(_) => panic!("an md5 client was accepted without the opt-in"),
    }
    finish(child, out);
    drop(listener);

    // 4a. Hand-written {sha256} client -> Rust Listener (default policy).
    let listener = Listener::bind(Address::localhost(0), KEY).expect("listen");
    let Address::Tcp(addr) = listener.address().clone() else {
        unreachable!("TCP")
    };
    let port = addr.port().to_string();
    let (child, out, _) = python(&["sha256-client", "127.0.0.1", &port]);
    let mut conn = listener.accept::<()>().expect("accept the sha256 client");
    let msg = conn.recv_bytes().expect("recv");
    println!("4a. rust listener got: {}", String::from_utf8_lossy(&msg));
    conn.send_bytes(b"rust sha256 listener echoes it")
        .expect("send");
    finish(child, out);

    // 4b. Rust Client (default policy) -> hand-written {sha256} server.
    let (child, mut out, _) = python(&["sha256-server"]);
    let port = ready_port(&mut out);
    let mut conn =
        Client::connect::<()>(Address::localhost(port), KEY).expect("connect to the sha256 server");
    conn.send_bytes(b"hello from a rust sha256 client")
        .expect("send");
    let reply = conn.recv_bytes().expect("recv");
    println!("4b. rust client got: {}", String::from_utf8_lossy(&reply));
    finish(child, out);
    println!("interop done");
}
