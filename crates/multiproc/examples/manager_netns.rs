//! Seed 001 §57.2.1, point 2: "a single manager can be shared by processes
//! on different computers over the network".
//!
//! Two hosts on one machine: two network namespaces joined by a veth pair
//! (10.77.0.1/24 and 10.77.0.2/24). The manager server runs in the first,
//! listening on TCP with an authkey (read from a 0600 file, never argv);
//! a producer process in the second connects to it and puts messages in a
//! shared queue that a consumer on the server's host gets. Without the
//! right to make namespaces (not root, no `CAP_NET_ADMIN`) the same runs
//! over 127.0.0.1, and says so.
//!
//! Run (as root for the namespaces): `cargo run --example manager_netns`

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use multiproc::connection::{Address, Listener};
use multiproc::manager::{Manager, QueueProxy, Server, TypeRegistry, read_authkey_file};

const SERVER_IP: &str = "10.77.0.1";
const CLIENT_IP: &str = "10.77.0.2";
const PORT: u16 = 50077;
const MESSAGES: usize = 3;

/// Two namespaces and a veth pair; removed on drop (deleting a namespace
/// removes its end of the pair, and the pair with it).
struct Netns {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn create() -> Result<Netns, String> {
        let pid = std::process::id();
        let ns = Netns {
            a: format!("mpm-{pid}-a"),
            b: format!("mpm-{pid}-b"),
        };
        ip(&["netns", "add", &ns.a])?;
        // From here on, drop cleans up whatever was made.
        ip(&["netns", "add", &ns.b])?;
        let (va, vb) = (format!("mpv{pid}a"), format!("mpv{pid}b"));
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        if let Err(e) = ip(&["link", "set", &va, "netns", &ns.a])
            .and_then(|()| ip(&["link", "set", &vb, "netns", &ns.b]))
        {
            let _ = ip(&["link", "del", &va]);
            return Err(e);
        }
        for (n, dev, addr) in [(&ns.a, &va, SERVER_IP), (&ns.b, &vb, CLIENT_IP)] {
            ip(&["-n", n, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", n, "link", "set", dev, "up"])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// A child process killed if still running when dropped (a failing run
/// leaves nothing behind in the namespaces).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A private directory with the key file; removed on drop.
struct KeyDir(PathBuf);

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_key() -> KeyDir {
    let dir = std::env::temp_dir().join(format!("mp-netns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("key dir");
    let mut key = [0u8; 32];
    getrandom_key(&mut key);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join("authkey"))
        .expect("key file");
    f.write_all(&key).expect("write key");
    KeyDir(dir)
}

fn getrandom_key(buf: &mut [u8]) {
    let mut f = std::fs::File::open("/dev/urandom").expect("urandom");
    std::io::Read::read_exact(&mut f, buf).expect("random key");
}

/// Server host: serve on `listen`, and consume the shared queue.
fn server(listen: &str, keyfile: &Path) {
    let key = read_authkey_file(keyfile).expect("authkey");
    let address = Address::parse(listen).expect("address");
    let listener = Listener::bind(address, &key).expect("bind");
    let address = listener.address().clone();
    println!("listening on {address}");
    std::io::stdout().flush().expect("flush");
    let server = Server::new(listener, TypeRegistry::new());
    let t = std::thread::spawn(move || server.serve());
    let m = Manager::connect(address, &key).expect("connect to own server");
    let q: QueueProxy<Option<String>> = m.named("jobs").expect("queue");
    while let Some(msg) = q.get().expect("get") {
        println!("server host got: {msg}");
    }
    m.shutdown().expect("shutdown");
    t.join().expect("server thread").expect("serve");
    println!("server host done");
}

/// Client host: connect to the server on the other host and produce.
fn client(address: &str, keyfile: &Path) {
    let key = read_authkey_file(keyfile).expect("authkey");
    let address = Address::parse(address).expect("address");
    // The server printed its address after binding: it is listening.
    let m = Manager::connect(address, &key).expect("connect");
    let q: QueueProxy<Option<String>> = m.named("jobs").expect("queue");
    for i in 0..MESSAGES {
        let msg = format!("hello {i} from the client host");
        q.put(&Some(msg.clone())).expect("put");
        println!("client host sent: {msg}");
    }
    q.put(&None).expect("sentinel");
}

fn main() {
    multiproc::init();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("server") => return server(&args[2], Path::new(&args[3])),
        Some("client") => return client(&args[2], Path::new(&args[3])),
        _ => {}
    }
    let exe = std::env::current_exe().expect("exe");
    let keys = write_key();
    let keyfile = keys.0.join("authkey");
    // `--no-netns` takes the fallback path on purpose (the tests run both).
    let netns = if args.get(1).map(String::as_str) == Some("--no-netns") {
        Err("--no-netns given".to_owned())
    } else {
        Netns::create()
    };
    let (listen, wrap_server, wrap_client): (String, Vec<String>, Vec<String>) = match &netns {
        Ok(ns) => {
            println!(
                "two hosts: namespace {} ({SERVER_IP}) and namespace {} ({CLIENT_IP})",
                ns.a, ns.b
            );
            (
                format!("{SERVER_IP}:{PORT}"),
                vec!["ip".into(), "netns".into(), "exec".into(), ns.a.clone()],
                vec!["ip".into(), "netns".into(), "exec".into(), ns.b.clone()],
            )
        }
        Err(e) => {
            println!("network namespaces unavailable ({e}): running over 127.0.0.1");
            ("127.0.0.1:0".into(), vec![], vec![])
        }
    };
    let command = |wrap: &[String], role: &str, addr: &str| {
        let mut argv: Vec<String> = wrap.to_vec();
        argv.push(exe.to_string_lossy().into_owned());
        argv.extend([
            role.to_owned(),
            addr.to_owned(),
            keyfile.to_string_lossy().into_owned(),
        ]);
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]).stdout(Stdio::piped());
        c
    };
    let mut srv = KillOnDrop(
        command(&wrap_server, "server", &listen)
            .spawn()
            .expect("server process"),
    );
    let mut out = BufReader::new(srv.0.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("server address");
    let address = first
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    println!("server host: listening on {address}");
    let cli = command(&wrap_client, "client", &address)
        .output()
        .expect("client process");
    print!("{}", String::from_utf8_lossy(&cli.stdout));
    assert!(cli.status.success(), "client failed: {}", cli.status);
    for line in out.lines() {
        println!("{}", line.expect("server output"));
    }
    let status = srv.0.wait().expect("server wait");
    assert!(status.success(), "server failed: {status}");
    drop(netns);
    println!("done");
}
