//! Listeners and clients over Unix socket paths and TCP: echo across
//! processes, the authentication handshake against wrong keys, replays,
//! garbage and silent clients, socket-file security, stale sockets, and
//! `wait`.

mod common;

use std::io::Write as _;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::watchdog;
use hmac::{Hmac, Mac};
use multiproc::TimeoutError;
use multiproc::connection::frame::FrameError;
use multiproc::connection::{
    AcceptError, Address, AuthFailure, AuthPolicy, BindError, Client, ConnectError, HandshakeError,
    Listener, MAX_UNIX_PATH, SocketPathError, server_handshake, wait,
};
use multiproc::{Connection, Fd, Process, SendError, pipe};
use serde::{Deserialize, Deserializer, Serialize};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(60);
const KEY: &[u8] = b"listener test key";

/// A fresh private (0700) directory for one test; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mp-lt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::DirBuilder::new().mode(0o700).create(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Text(String),
    Numbers(Vec<u64>),
    Stop,
}

/// Child: connect, send each message and expect it echoed.
fn echo_client(arg: (Address, Vec<Msg>)) -> usize {
    let (addr, msgs) = arg;
    let mut c = Client::connect::<Msg>(addr, KEY).unwrap();
    let mut n = 0;
    for m in msgs {
        c.send(&m).unwrap();
        assert_eq!(c.recv().unwrap(), m);
        n += 1;
    }
    c.send(&Msg::Stop).unwrap();
    n
}

fn serve_echo(listener: &Listener) {
    let mut conn = listener.accept::<Msg>().unwrap();
    loop {
        match conn.recv().unwrap() {
            Msg::Stop => break,
            m => conn.send(&m).unwrap(),
        }
    }
}

fn msgs() -> Vec<Msg> {
    vec![
        Msg::Text("hello".into()),
        Msg::Numbers((0..1000).collect()),
        Msg::Text("x".repeat(100_000)),
    ]
}

#[test]
fn unix_echo_across_processes() {
    let _w = watchdog("unix_echo_across_processes", LIMIT);
    let dir = TempDir::new("unix_echo");
    let listener = Listener::bind(dir.join("s.sock"), KEY).unwrap();
    assert_eq!(listener.address(), &Address::Unix(dir.join("s.sock")));
    let mut child = Process::spawn(echo_client, (listener.address().clone(), msgs())).unwrap();
    serve_echo(&listener);
    assert_eq!(child.join().unwrap(), 3);
}

#[test]
fn tcp_echo_across_processes() {
    let _w = watchdog("tcp_echo_across_processes", LIMIT);
    let listener = Listener::bind(Address::localhost(0), KEY).unwrap();
    let Address::Tcp(addr) = listener.address().clone() else {
        panic!("not TCP")
    };
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    let mut child = Process::spawn(echo_client, (Address::Tcp(addr), msgs())).unwrap();
    serve_echo(&listener);
    assert_eq!(child.join().unwrap(), 3);
}

#[test]
fn address_without_host_binds_loopback() {
    let a: Address = ":0".parse().unwrap();
    let listener = Listener::bind(a, KEY).unwrap();
    let Address::Tcp(addr) = listener.address() else {
        panic!("not TCP")
    };
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
}

// ----- wrong keys ---------------------------------------------------------------

/// Deserializations of [`Counted`] in this process.
static DECODED: AtomicUsize = AtomicUsize::new(0);

/// A message whose decoder counts its calls.
#[derive(Debug, Serialize)]
struct Counted(u32);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODED.fetch_add(1, Ordering::SeqCst);
        Ok(Counted(u32::deserialize(d)?))
    }
}

/// Child: connect with `key` and send a `Counted` right away; report the
/// connect result.
fn client_with_key(arg: (Address, Vec<u8>)) -> Result<(), String> {
    let (addr, key) = arg;
    match Client::connect::<Counted>(addr, &key) {
        Ok(mut c) => {
            c.send(&Counted(7)).unwrap();
            // Wait for the server to finish with us.
            let _ = c.recv_bytes();
            Ok(())
        }
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Child: a raw client that answers the challenge wrongly and pipelines an
/// application frame behind the answer.
fn raw_wrong_answer_then_frame(path: PathBuf) {
    let fd = OwnedFd::from(UnixStream::connect(path).unwrap());
    let mut c = Connection::<Counted>::from_fd(fd, true, true).unwrap();
    let challenge = c.recv_bytes().unwrap();
    assert!(challenge.starts_with(b"#CHALLENGE#{sha256}"));
    let mut wrong = b"{sha256}".to_vec();
    wrong.extend_from_slice(&[0u8; 32]);
    c.send_bytes(&wrong).unwrap();
    // The server may already have hung up: these may fail.
    let _ = c.send(&Counted(1));
    let _ = c.send(&Counted(2));
    let _ = c.recv_bytes();
}

#[test]
fn wrong_authkey_rejected_on_both_sides_and_nothing_decoded() {
    let _w = watchdog("wrong_authkey", LIMIT);
    let dir = TempDir::new("wrong_key");
    let listener = Listener::bind(dir.join("s.sock"), KEY).unwrap();
    let addr = listener.address().clone();

    // A multiproc client with another key: both sides fail.
    let mut child = Process::spawn(client_with_key, (addr.clone(), b"wrong".to_vec())).unwrap();
    let err = listener.accept::<Counted>().unwrap_err();
    assert!(
        matches!(
            err,
            AcceptError::Handshake(HandshakeError::Authentication(AuthFailure::WrongDigest))
        ),
        "{err:?}"
    );
    let client_err = child.join().unwrap().unwrap_err();
    assert!(client_err.contains("Rejected"), "{client_err}");

    // A raw client pipelining application frames behind a wrong answer.
    let mut child = Process::spawn(raw_wrong_answer_then_frame, dir.join("s.sock")).unwrap();
    let err = listener.accept::<Counted>().unwrap_err();
    assert!(err.is_authentication(), "{err:?}");
    child.join().unwrap();
    assert_eq!(DECODED.load(Ordering::SeqCst), 0, "decoded before auth");

    // The counter does count: a right key gets its frame decoded.
    let mut child = Process::spawn(client_with_key, (addr, KEY.to_vec())).unwrap();
    let mut conn = listener.accept::<Counted>().unwrap();
    assert_eq!(conn.recv().unwrap().0, 7);
    assert_eq!(DECODED.load(Ordering::SeqCst), 1);
    drop(conn);
    child.join().unwrap().unwrap();
}

#[test]
fn client_rejects_a_server_with_a_wrong_key() {
    let _w = watchdog("client_rejects_a_server_with_a_wrong_key", LIMIT);
    let (a, b) = UnixStream::pair().unwrap();
    // A fake server that welcomes any answer, then answers the client's
    // challenge without the key.
    let fake = std::thread::spawn(move || {
        let mut s = Connection::<()>::from_fd(OwnedFd::from(a), true, true).unwrap();
        let mut ch = b"#CHALLENGE#{sha256}".to_vec();
        ch.extend_from_slice(&[3u8; 40]);
        s.send_bytes(&ch).unwrap();
        let _answer = s.recv_bytes().unwrap();
        s.send_bytes(b"#WELCOME#").unwrap();
        let theirs = s.recv_bytes().unwrap();
        assert!(theirs.starts_with(b"#CHALLENGE#{sha256}"));
        let mut forged = b"{sha256}".to_vec();
        forged.extend_from_slice(&[0u8; 32]);
        s.send_bytes(&forged).unwrap();
        s.recv_bytes().unwrap()
    });
    let mut c = Connection::<()>::from_fd(OwnedFd::from(b), true, true).unwrap();
    let err = multiproc::connection::client_handshake(
        &mut c,
        KEY,
        AuthPolicy::Sha256Only,
        Instant::now() + Duration::from_secs(10),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            HandshakeError::Authentication(AuthFailure::WrongDigest)
        ),
        "{err:?}"
    );
    assert_eq!(fake.join().unwrap(), b"#FAILURE#");
}

fn sha256_answer(key: &[u8], challenge_frame: &[u8]) -> Vec<u8> {
    let message = challenge_frame.strip_prefix(b"#CHALLENGE#").unwrap();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(message);
    let mut out = b"{sha256}".to_vec();
    out.extend_from_slice(&mac.finalize().into_bytes());
    out
}

#[test]
fn replayed_answer_is_rejected() {
    let _w = watchdog("replayed_answer_is_rejected", LIMIT);
    let dir = TempDir::new("replay");
    let path = dir.join("s.sock");
    let listener = Listener::bind(path.clone(), KEY).unwrap();
    let client = std::thread::spawn(move || {
        // First connection: a valid answer, recorded.
        let fd = OwnedFd::from(UnixStream::connect(&path).unwrap());
        let mut c1 = Connection::<()>::from_fd(fd, true, true).unwrap();
        let ch1 = c1.recv_bytes().unwrap();
        let recorded = sha256_answer(KEY, &ch1);
        c1.send_bytes(&recorded).unwrap();
        assert_eq!(c1.recv_bytes().unwrap(), b"#WELCOME#");
        // Hang up instead of challenging the server.
        drop(c1);
        // Second connection: replay it.
        let fd = OwnedFd::from(UnixStream::connect(&path).unwrap());
        let mut c2 = Connection::<()>::from_fd(fd, true, true).unwrap();
        let ch2 = c2.recv_bytes().unwrap();
        assert_ne!(ch1, ch2, "challenges must be fresh");
        c2.send_bytes(&recorded).unwrap();
        c2.recv_bytes().unwrap()
    });
    // The first handshake passes our challenge, then waits for the client's:
    // the client never sends one, and closes.
    let first = listener.accept::<()>().unwrap_err();
    let second = listener.accept::<()>().unwrap_err();
    assert_eq!(client.join().unwrap(), b"#FAILURE#");
    assert!(
        matches!(first, AcceptError::Handshake(HandshakeError::Disconnected)),
        "{first:?}"
    );
    assert!(
        matches!(
            second,
            AcceptError::Handshake(HandshakeError::Authentication(AuthFailure::WrongDigest))
        ),
        "{second:?}"
    );
}

#[test]
fn md5_needs_the_legacy_opt_in() {
    let _w = watchdog("md5_needs_the_legacy_opt_in", LIMIT);
    let md5_client = |policy_ok: bool| {
        let dir = TempDir::new(if policy_ok { "md5_ok" } else { "md5_no" });
        let path = dir.join("s.sock");
        let mut b = Listener::builder().authkey(KEY);
        if policy_ok {
            b = b.policy(AuthPolicy::AllowLegacyMd5);
        }
        let listener = b.bind(path.clone()).unwrap();
        let client = std::thread::spawn(move || {
            // A Python 3.11 client: raw HMAC-MD5 over the whole message.
            let fd = OwnedFd::from(UnixStream::connect(&path).unwrap());
            let mut c = Connection::<()>::from_fd(fd, true, true).unwrap();
            let ch = c.recv_bytes().unwrap();
            let mut mac = <Hmac<md5::Md5> as Mac>::new_from_slice(KEY).unwrap();
            mac.update(ch.strip_prefix(b"#CHALLENGE#").unwrap());
            c.send_bytes(&mac.finalize().into_bytes()).unwrap();
            c.recv_bytes().unwrap()
        });
        let r = listener.accept_timeout::<()>(Duration::from_secs(30));
        (r, client)
    };
    let (r, client) = md5_client(false);
    assert!(
        matches!(
            r,
            Err(TimeoutError::Failed(AcceptError::Handshake(
                HandshakeError::Authentication(AuthFailure::LegacyMd5NotAllowed)
            )))
        ),
        "{r:?}"
    );
    assert_eq!(client.join().unwrap(), b"#FAILURE#");
    // Allowed: our challenge passes; the client then never challenges us and
    // closes.
    let (r, client) = md5_client(true);
    assert_eq!(client.join().unwrap(), b"#WELCOME#");
    assert!(
        matches!(
            r,
            Err(TimeoutError::Failed(AcceptError::Handshake(
                HandshakeError::Disconnected
            )))
        ),
        "{r:?}"
    );
}

// ----- hostile and silent clients -------------------------------------------------

fn good_client(path: PathBuf) -> String {
    let mut c = Client::connect::<String>(path, KEY).unwrap();
    c.recv().unwrap()
}

fn expect_next_client_served(listener: &Listener, path: &Path) {
    let path = path.to_owned();
    let t = std::thread::spawn(move || good_client(path));
    let mut conn = listener.accept::<String>().unwrap();
    conn.send(&"served".into()).unwrap();
    assert_eq!(t.join().unwrap(), "served");
}

#[test]
fn garbage_and_oversize_frames_then_next_client_is_served() {
    let _w = watchdog("garbage_and_oversize_frames", LIMIT);
    let dir = TempDir::new("garbage");
    let path = dir.join("s.sock");
    let listener = Listener::bind(path.clone(), KEY).unwrap();
    let inputs: Vec<Vec<u8>> = vec![
        // A negative length prefix.
        vec![0xff, 0xff, 0xff, 0xf0, 1, 2, 3],
        // A frame that claims 1 GiB.
        vec![0x40, 0, 0, 0, 1, 2, 3, 4],
        // The long form claiming u64::MAX.
        [vec![0xff; 4], vec![0xff; 8]].concat(),
        // A whole frame of 300 bytes: over the 256-byte handshake limit.
        [300u32.to_be_bytes().to_vec(), vec![b'a'; 300]].concat(),
        // A well-framed but meaningless answer.
        [5u32.to_be_bytes().to_vec(), b"hello".to_vec()].concat(),
        // A truncated frame, then end of file.
        [100u32.to_be_bytes().to_vec(), b"abc".to_vec()].concat(),
    ];
    for (i, input) in inputs.into_iter().enumerate() {
        let p = path.clone();
        let t = std::thread::spawn(move || {
            let mut s = UnixStream::connect(p).unwrap();
            let _ = s.write_all(&input);
            let _ = s.shutdown(Shutdown::Write);
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut s, &mut sink);
        });
        let err = listener.accept::<String>().unwrap_err();
        match i {
            0 => assert!(
                matches!(
                    err,
                    AcceptError::Handshake(HandshakeError::Frame(FrameError::NegativeLength(_)))
                ),
                "{err:?}"
            ),
            1..=3 => assert!(
                matches!(
                    err,
                    AcceptError::Handshake(HandshakeError::Frame(FrameError::TooLarge {
                        max: 256,
                        ..
                    }))
                ),
                "{i}: {err:?}"
            ),
            4 => assert!(err.is_authentication(), "{err:?}"),
            _ => assert!(
                matches!(
                    err,
                    AcceptError::Handshake(
                        HandshakeError::Frame(FrameError::Truncated { .. })
                            | HandshakeError::Disconnected
                    )
                ),
                "{err:?}"
            ),
        }
        t.join().unwrap();
        expect_next_client_served(&listener, &path);
    }
}

#[test]
fn silent_client_times_out_and_the_server_keeps_serving() {
    let _w = watchdog("silent_client_times_out", LIMIT);
    let dir = TempDir::new("silent");
    let path = dir.join("s.sock");
    let listener = Listener::builder()
        .authkey(KEY)
        .handshake_timeout(Duration::from_millis(300))
        .bind(path.clone())
        .unwrap();
    let silent = UnixStream::connect(&path).unwrap();
    let start = Instant::now();
    let err = listener.accept::<String>().unwrap_err();
    assert!(
        matches!(err, AcceptError::Handshake(HandshakeError::Timeout)),
        "{err:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    expect_next_client_served(&listener, &path);
    drop(silent);
}

#[test]
fn client_handshake_times_out_on_a_silent_server() {
    let _w = watchdog("client_handshake_times_out", LIMIT);
    let dir = TempDir::new("silent_server");
    let path = dir.join("s.sock");
    // A listener that never accepts: the kernel completes the connection, but
    // no challenge ever comes.
    let _listener = Listener::builder().bind(path.clone()).unwrap();
    let err = Client::builder()
        .authkey(KEY)
        .handshake_timeout(Duration::from_millis(200))
        .connect::<()>(path)
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::Handshake(HandshakeError::Timeout)),
        "{err:?}"
    );
}

// ----- TCP without a key ----------------------------------------------------------

#[test]
fn tcp_without_authkey_is_refused_unless_insecure() {
    let _w = watchdog("tcp_without_authkey", LIMIT);
    assert!(matches!(
        Listener::builder().bind(Address::localhost(0)),
        Err(BindError::TcpWithoutAuthkey)
    ));
    let listener = Listener::builder()
        .insecure_no_authkey()
        .bind(Address::localhost(0))
        .unwrap();
    let addr = listener.address().clone();
    assert!(matches!(
        Client::builder().connect::<u32>(addr.clone()),
        Err(ConnectError::TcpWithoutAuthkey)
    ));
    let mut c = Client::builder()
        .insecure_no_authkey()
        .connect::<u32>(addr)
        .unwrap();
    let mut s = listener.accept::<u32>().unwrap();
    c.send(&5).unwrap();
    assert_eq!(s.recv().unwrap(), 5);
}

#[test]
fn handles_are_refused_over_tcp_and_carried_over_unix() {
    let _w = watchdog("handles_over_tcp", LIMIT);
    let listener = Listener::bind(Address::localhost(0), KEY).unwrap();
    let addr = listener.address().clone();
    let t = std::thread::spawn(move || Client::connect::<Fd>(addr, KEY).unwrap());
    let mut server = listener.accept::<Fd>().unwrap();
    let mut client = t.join().unwrap();
    let (r, _w) = multiproc_sys::fd::pipe().unwrap();
    assert!(matches!(
        client.send(&Fd(r)),
        Err(SendError::HandlesNeedSocket)
    ));
    // Plain bytes still flow both ways over TCP.
    client.send_bytes(b"ping").unwrap();
    assert_eq!(server.recv_bytes().unwrap(), b"ping");
    server.send_bytes(b"pong").unwrap();
    assert_eq!(client.recv_bytes().unwrap(), b"pong");

    let dir = TempDir::new("handles_unix");
    let listener = Listener::bind(dir.join("s.sock"), KEY).unwrap();
    let addr = listener.address().clone();
    let t = std::thread::spawn(move || Client::connect::<Connection<u32>>(addr, KEY).unwrap());
    let mut server = listener.accept::<Connection<u32>>().unwrap();
    let mut client = t.join().unwrap();
    let (rx, mut tx) = pipe::<u32>().unwrap();
    client.send(&rx).unwrap();
    let mut rx2 = server.recv().unwrap();
    tx.send(&42).unwrap();
    assert_eq!(rx2.recv().unwrap(), 42);
}

// ----- socket files ---------------------------------------------------------------

#[test]
fn socket_file_is_0600_in_a_0700_directory_and_removed_on_drop() {
    let _w = watchdog("socket_file_modes", LIMIT);
    let dir = TempDir::new("modes");
    // A missing directory is created private.
    let sub = dir.join("new");
    let path = sub.join("s.sock");
    let listener = Listener::bind(path.clone(), KEY).unwrap();
    let dmeta = std::fs::symlink_metadata(&sub).unwrap();
    assert!(dmeta.is_dir());
    assert_eq!(dmeta.permissions().mode() & 0o777, 0o700);
    let smeta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(smeta.permissions().mode() & 0o777, 0o600);
    assert_eq!(smeta.uid(), euid());
    let lock = PathBuf::from(format!("{}.lock", path.display()));
    assert!(lock.exists());
    let recorded = multiproc::names::registry::list()
        .unwrap()
        .into_iter()
        .any(|r| r.name == path.to_string_lossy());
    assert!(recorded, "socket not in the registry");
    drop(listener);
    assert!(!path.exists());
    assert!(!lock.exists());
    assert!(!sub.exists(), "the directory it created is removed");

    // A directory others can enter is refused, unless explicitly allowed.
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(
        Listener::bind(open.join("s.sock"), KEY),
        Err(BindError::Path(SocketPathError::InsecureDirectory { .. }))
    ));
    assert!(matches!(
        Client::connect::<()>(open.join("s.sock"), KEY),
        Err(ConnectError::Path(
            SocketPathError::InsecureDirectory { .. }
        ))
    ));
    let l = Listener::builder()
        .authkey(KEY)
        .insecure_shared_directory()
        .bind(open.join("s.sock"))
        .unwrap();
    let m = std::fs::symlink_metadata(open.join("s.sock")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    drop(l);

    // A symlink to a private directory is refused too.
    let link = dir.join("link");
    std::os::unix::fs::symlink(dir.join("open"), &link).unwrap();
    std::fs::set_permissions(dir.join("open"), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        Listener::bind(link.join("s.sock"), KEY),
        Err(BindError::Path(SocketPathError::InsecureDirectory { .. }))
    ));
}

/// This process's effective uid (the owner of its `/proc/self`).
fn euid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn over_long_path_is_an_error_never_truncated() {
    let dir = TempDir::new("long");
    let base = dir.0.to_string_lossy().len() + 1;
    let exact = dir.join(&"a".repeat(MAX_UNIX_PATH - base));
    assert_eq!(exact.to_string_lossy().len(), MAX_UNIX_PATH);
    let l = Listener::bind(exact.clone(), KEY).unwrap();
    assert!(exact.exists());
    drop(l);
    let long = dir.join(&"a".repeat(MAX_UNIX_PATH - base + 1));
    assert!(matches!(
        Listener::bind(long.clone(), KEY),
        Err(BindError::Path(SocketPathError::PathTooLong {
            len: 108,
            max: 107
        }))
    ));
    assert!(matches!(
        Client::connect::<()>(long, KEY),
        Err(ConnectError::Path(SocketPathError::PathTooLong {
            len: 108,
            ..
        }))
    ));
    // Nothing truncated was created.
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert!(names.is_empty(), "{names:?}");
}

/// Child: listen on `path`, report over `ready`, then wait to be killed.
fn listen_then_hang(arg: (PathBuf, Connection<()>)) {
    let (path, mut ready) = arg;
    let _l = Listener::bind(path, KEY).unwrap();
    ready.send(&()).unwrap();
    common::sleep_forever();
}

#[test]
fn stale_socket_is_reclaimed_after_sigkill_and_a_live_one_is_in_use() {
    let _w = watchdog("stale_socket", LIMIT);
    let dir = TempDir::new("stale");
    let path = dir.join("s.sock");
    let (mut ready_rx, ready_tx) = pipe::<()>().unwrap();
    let mut child = Process::spawn(listen_then_hang, (path.clone(), ready_tx)).unwrap();
    ready_rx.recv().unwrap();
    // Live: in use, from another process and from this one.
    assert!(matches!(
        Listener::bind(path.clone(), KEY),
        Err(BindError::AddrInUse(_))
    ));
    child.kill().unwrap();
    assert!(child.join().is_err());
    assert!(path.exists(), "the killed listener left its socket file");
    // Stale: reclaimed.
    let listener = Listener::bind(path.clone(), KEY).unwrap();
    assert!(matches!(
        Listener::bind(path.clone(), KEY),
        Err(BindError::AddrInUse(_))
    ));
    expect_next_client_served(&listener, &path);
    drop(listener);
    // A file that is not a socket is never removed.
    std::fs::write(&path, b"data").unwrap();
    assert!(matches!(
        Listener::bind(path.clone(), KEY),
        Err(BindError::AddrInUse(_))
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
}

// ----- wait -----------------------------------------------------------------------

/// Child: exit when told.
fn exit_when_told(mut rx: Connection<()>) {
    let _ = rx.recv();
}

#[test]
fn wait_reports_ready_connections_listeners_and_sentinels() {
    let _w = watchdog("wait_reports_ready", LIMIT);
    let dir = TempDir::new("wait");
    let (mut a1, mut b1) = multiproc::duplex::<u32>().unwrap();
    let (a2, mut b2) = multiproc::duplex::<u32>().unwrap();
    let listener = Listener::builder().bind(dir.join("s.sock")).unwrap();
    let (stop_rx, mut stop_tx) = pipe::<()>().unwrap();
    let mut child = Process::spawn(exit_when_told, stop_rx).unwrap();

    let none = wait(
        &[&a1, &a2, &listener, &child],
        Some(Duration::from_millis(50)),
    )
    .unwrap();
    assert!(none.is_empty(), "{none:?}");

    b2.send(&2).unwrap();
    assert_eq!(wait(&[&a1, &a2, &listener, &child], None).unwrap(), [1]);

    // Two messages arrive in one read: after the first `recv` the second is
    // buffered and the descriptor has nothing left, yet it counts as ready.
    b1.send(&10).unwrap();
    b1.send(&11).unwrap();
    assert_eq!(a1.recv().unwrap(), 10);
    let ready = wait(&[&a1, &a2, &listener, &child], Some(Duration::ZERO)).unwrap();
    assert_eq!(ready, [0, 1]);

    let _client = UnixStream::connect(dir.join("s.sock")).unwrap();
    let ready = wait(&[&a1, &a2, &listener, &child], None).unwrap();
    assert_eq!(ready, [0, 1, 2]);

    stop_tx.send(&()).unwrap();
    // The sentinel becomes ready when the child exits; wait for just it.
    assert_eq!(wait(&[&child], None).unwrap(), [0]);
    let ready = wait(&[&a1, &a2, &listener, &child], None).unwrap();
    assert_eq!(ready, [0, 1, 2, 3]);
    child.join().unwrap();
    assert_eq!(a1.recv().unwrap(), 11);
}

// ----- fuzz-style -------------------------------------------------------------------

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Fewer than `max` random bytes.
    fn bytes_below(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn fuzzed_handshake_input_gives_errors_without_panics_or_hangs() {
    let _w = watchdog("fuzzed_handshake", LIMIT);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let mut input = Vec::new();
        for _ in 0..=rng.below(3) {
            match rng.below(6) {
                0 => input.extend(rng.bytes_below(64)),
                1 => input.extend(frame(&rng.bytes_below(300))),
                2 => {
                    let mut p = b"{sha256}".to_vec();
                    p.extend(rng.bytes_below(40));
                    input.extend(frame(&p));
                }
                3 => input.extend(frame(b"#WELCOME#")),
                4 => {
                    let mut p = b"#CHALLENGE#".to_vec();
                    if rng.below(2) == 0 {
                        p.extend_from_slice(b"{sha256}");
                    }
                    p.extend(rng.bytes_below(48));
                    input.extend(frame(&p));
                }
                _ => input.extend((rng.next() as u32).to_be_bytes()),
            }
        }
        let policy = if rng.below(2) == 0 {
            AuthPolicy::Sha256Only
        } else {
            AuthPolicy::AllowLegacyMd5
        };
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(&input).unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        let mut conn = Connection::<()>::from_fd(OwnedFd::from(a), true, true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let r = if rng.below(2) == 0 {
            server_handshake(&mut conn, KEY, policy, deadline)
        } else {
            multiproc::connection::client_handshake(&mut conn, KEY, policy, deadline)
        };
        assert!(r.is_err(), "random input authenticated: {input:?}");
        assert!(
            !matches!(r, Err(HandshakeError::Timeout)),
            "a closed input must not wait for the deadline"
        );
    }
}

// ----- abstract-namespace addresses ---------------------------------------------

fn abstract_addr(name: &str) -> Address {
    Address::abstract_name(format!("mp-lt-{}-{name}", std::process::id()).as_bytes()).unwrap()
}

#[test]
fn abstract_echo_across_processes() {
    let _w = watchdog("abstract_echo_across_processes", LIMIT);
    let addr = abstract_addr("echo");
    let listener = Listener::bind(addr.clone(), KEY).unwrap();
    assert_eq!(listener.address(), &addr);
    let mut child = Process::spawn(echo_client, (addr.clone(), msgs())).unwrap();
    serve_echo(&listener);
    assert_eq!(child.join().unwrap(), 3);
    // A second listener on the name in use is refused; once the first is
    // closed the name is free (nothing was left behind).
    assert!(matches!(
        Listener::bind(addr.clone(), KEY),
        Err(BindError::AddrInUse(a)) if a == addr
    ));
    drop(listener);
    // Free once every copy of the socket is closed. Another test of this
    // binary that spawns a process at the moment of the drop holds a copy
    // in its forked child until that child's exec closes it (close-on-exec),
    // so the name may stay taken for that long: a bounded wait, not a retry
    // of a failure (seen: AddrInUse in a workspace run).
    let mut bound = Listener::bind(addr.clone(), KEY);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while matches!(bound, Err(BindError::AddrInUse(_))) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
        bound = Listener::bind(addr.clone(), KEY);
    }
    bound.unwrap();
}

#[test]
fn abstract_address_parses_and_refuses_bad_names() {
    let a: Address = format!("\0mp-lt-{}-parse", std::process::id())
        .parse()
        .unwrap();
    let b: Address = format!("@mp-lt-{}-parse", std::process::id())
        .parse()
        .unwrap();
    assert_eq!(a, b);
    assert!(matches!(a, Address::Abstract(_)));
    assert!("@".parse::<Address>().is_err());
    assert!(Address::abstract_name(&[b'x'; MAX_UNIX_PATH + 1]).is_err());
    // Nobody listens: refused at once, no file involved.
    assert!(matches!(
        Client::builder().connect::<u32>(abstract_addr("nobody")),
        Err(ConnectError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    ));
}

/// Child: become `nobody` (65534), connect without a key and report whether
/// the listener closed the connection unread (end of file on `recv`).
fn foreign_client(addr: Address) -> bool {
    // SAFETY: plain system call, no pointers; in this single-purpose child.
    let rc = unsafe { libc::setresuid(65534, 65534, 65534) };
    assert_eq!(rc, 0, "setresuid: {}", std::io::Error::last_os_error());
    let mut c = Client::builder().connect::<u32>(addr).unwrap();
    let _ = c.send(&7);
    // Closed unread: end of file, or a reset since our message was unread.
    matches!(
        c.recv(),
        Err(multiproc::RecvError::Eof | multiproc::RecvError::Broken | multiproc::RecvError::Io(_))
    )
}

#[test]
fn abstract_listener_refuses_other_uids_and_keeps_serving() {
    let _w = watchdog("abstract_listener_refuses_other_uids", LIMIT);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: switching a child to another uid needs root");
        return;
    }
    let addr = abstract_addr("peercred");
    // Without an authkey: the uid check alone guards the socket.
    let listener = Listener::builder().bind(addr.clone()).unwrap();
    let mut child = Process::spawn(foreign_client, addr.clone()).unwrap();
    match listener.accept::<u32>() {
        Err(AcceptError::ForeignPeer { uid, expected }) => {
            assert_eq!((uid, expected), (65534, 0));
        }
        other => panic!("expected ForeignPeer, got {other:?}"),
    }
    assert!(child.join().unwrap(), "the foreign client was not cut off");
    // The same listener still serves our own uid.
    let t = std::thread::spawn(move || {
        let mut c = Client::builder().connect::<u32>(addr).unwrap();
        c.send(&42).unwrap();
    });
    let mut conn = listener.accept::<u32>().unwrap();
    assert_eq!(conn.recv().unwrap(), 42);
    t.join().unwrap();
}

fn tcp_client_says(arg: (Address, Vec<u8>)) -> bool {
    let mut c: Connection<String> = Client::connect(arg.0, &arg.1).unwrap();
    c.send(&"authenticated".to_string()).is_ok()
}

/// Regression test (6c): `accept` ran each handshake inline, so a client
/// that connected and said nothing held it for the whole handshake
/// timeout. Now an authenticated client that comes later is accepted
/// first, and the silent ones time out on their own.
#[test]
fn accept_never_waits_behind_a_silent_peer() {
    let _w = watchdog("accept_never_waits_behind_a_silent_peer", LIMIT);
    let listener = Listener::builder()
        .authkey(KEY)
        .handshake_timeout(Duration::from_secs(30))
        .bind(Address::localhost(0))
        .unwrap();
    let Address::Tcp(sa) = listener.address().clone() else {
        panic!("not tcp")
    };
    let silent: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(sa).unwrap())
        .collect();
    let mut c = Process::spawn(tcp_client_says, (Address::Tcp(sa), KEY.to_vec())).unwrap();
    // The silent peers' handshakes last 30 s; the client's outcome comes
    // long before, whatever order the connections were accepted in.
    let mut conn: Connection<String> = listener
        .accept_timeout(Duration::from_secs(20))
        .expect("the authenticated client, first");
    assert_eq!(conn.recv().unwrap(), "authenticated");
    assert!(c.join().unwrap());
    drop(silent);
}

/// One peer address may hold at most `MAX_PREAUTH_PER_PEER` handshakes
/// open; its further connections are closed at once, without a challenge.
#[test]
fn unauthenticated_connections_are_capped_per_peer_address() {
    use std::io::Read as _;
    let _w = watchdog(
        "unauthenticated_connections_are_capped_per_peer_address",
        LIMIT,
    );
    let listener = std::sync::Arc::new(
        Listener::builder()
            .authkey(KEY)
            .handshake_timeout(Duration::from_secs(30))
            .bind(Address::localhost(0))
            .unwrap(),
    );
    let Address::Tcp(sa) = listener.address().clone() else {
        panic!("not tcp")
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acceptor = {
        let (l, stop) = (listener.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = l.accept_timeout::<String>(Duration::from_millis(50));
            }
        })
    };
    let cap = multiproc::connection::MAX_PREAUTH_PER_PEER;
    let peers: Vec<std::net::TcpStream> = (0..cap + 10)
        .map(|_| std::net::TcpStream::connect(sa).unwrap())
        .collect();
    let (mut challenged, mut closed) = (0, 0);
    // Every peer stays connected until all were read: one that hung up
    // would free its handshake slot for a later one.
    let mut peers = peers;
    for p in &mut peers {
        p.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut b = [0u8; 1];
        match p.read(&mut b) {
            Ok(0) => closed += 1,
            Ok(_) => challenged += 1,
            Err(e) => panic!("neither challenged nor closed: {e}"),
        }
    }
    assert_eq!((challenged, closed), (cap, 10));
    stop.store(true, Ordering::Relaxed);
    acceptor.join().unwrap();
}

/// A directory `len` bytes long (nested under the temp dir), created.
fn deep_dir(t: &TempDir, len: usize) -> PathBuf {
    let mut p = t.0.clone();
    assert!(
        p.as_os_str().len() + 2 <= len,
        "the temp dir is too deep already"
    );
    // Whole segments while at least 2 bytes ("/x") stay for the last one.
    while p.as_os_str().len() + 11 + 2 <= len {
        p = p.join("d123456789");
    }
    p = p.join("x".repeat(len - p.as_os_str().len() - 1));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&p)
        .unwrap();
    assert_eq!(p.as_os_str().len(), len);
    p
}

/// A private listener's path is 16 bytes longer than its base: where
/// Python's standard library fits its own (32 more), so does ours; past
/// what a socket path may be it listens on an abstract socket, and clients
/// in other processes still reach it.
#[test]
fn private_listeners_fit_where_python_s_do_and_fall_back_to_abstract() {
    let _w = watchdog("private_listeners_fit", LIMIT);
    let t = TempDir::new("deep");
    // The deepest base where the standard library's path still fits.
    let base = deep_dir(&t, MAX_UNIX_PATH - 32);
    let l = Listener::builder()
        .authkey(KEY)
        .bind_private_in(&base)
        .unwrap();
    match l.address() {
        Address::Unix(p) => assert_eq!(p.as_os_str().len(), base.as_os_str().len() + 16),
        other => panic!("{other:?}"),
    }
    let mut child = Process::spawn(echo_client, (l.address().clone(), msgs())).unwrap();
    serve_echo(&l);
    assert_eq!(child.join().unwrap(), 3);
    // Too deep for any socket path: an abstract socket.
    let base = deep_dir(&t, MAX_UNIX_PATH - 10);
    let l = Listener::builder()
        .authkey(KEY)
        .bind_private_in(&base)
        .unwrap();
    assert!(
        matches!(l.address(), Address::Abstract(_)),
        "{:?}",
        l.address()
    );
    let mut child = Process::spawn(echo_client, (l.address().clone(), msgs())).unwrap();
    serve_echo(&l);
    assert_eq!(child.join().unwrap(), 3);
}
