//! Test support for `multiproc::redis`: the server's URL, fresh names, and
//! servers of a test's own (started from `redis-server` on `PATH`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server's URL, or `None` after saying the test is skipped.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("MULTIPROC_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            // Straight to the descriptor: libtest captures `eprintln!` of a
            // passing test, and a skip must be seen.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: MULTIPROC_REDIS_URL is not set (.ci/run starts a redis-server and sets it)"
            );
            None
        }
    }
}

/// A queue name no other test or run uses.
pub fn fresh(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{test}-{}-{nanos}", std::process::id())
}

/// Delete every key of object `name`.
pub fn cleanup(url: &str, name: &str) {
    multiproc::redis::remove(url, name).unwrap();
}

/// A `redis-server` of a test's own, on a free loopback port in a temporary
/// directory (for what the shared server must not suffer: restarts,
/// passwords); killed on drop.
pub struct OwnServer {
    pub port: u16,
    pub dir: std::path::PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl OwnServer {
    /// Start one with extra `args`, or `None` after saying why the test is
    /// skipped (no `redis-server` on `PATH`; `.ci/run` installs it).
    pub fn start(test: &str, args: &[&str]) -> Option<OwnServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no redis-server on PATH (.ci/run installs it)"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(fresh(test));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = OwnServer {
            port,
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        s.restart();
        Some(s)
    }

    /// `redis://127.0.0.1:port/0`, with `password` if given.
    pub fn url(&self, password: Option<&str>) -> String {
        match password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kill the server with SIGKILL (what it persisted stays on disk).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it (again), on the same port and directory, and wait until it
    /// answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
