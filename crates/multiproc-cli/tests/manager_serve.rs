//! `multiproc manager serve`: a standalone server that clients reach with
//! the key from its file; a key file others can read is refused.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::process::{Command, Stdio};

use multiproc::connection::Address;
use multiproc::manager::{DictProxy, Manager};

multiproc::enable_test_support!();

struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key_file(dir: &Dir, name: &str, mode: u32, key: &[u8]) -> std::path::PathBuf {
    let p = dir.0.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&p)
        .unwrap();
    f.write_all(key).unwrap();
    p
}

#[test]
fn serve_on_tcp_with_a_key_file() {
    let dir = Dir(std::env::temp_dir().join(format!("mp-cli-mgr-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir.0)
        .unwrap();
    let key = b"cli manager key";
    let good = key_file(&dir, "key", 0o600, key);
    let open = key_file(&dir, "open", 0o644, key);

    // A world-readable key file is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(["manager", "serve", "--authkey-file"])
        .arg(&open)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0600"));

    let mut server = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(["manager", "serve", "--listen", "0", "--authkey-file"])
        .arg(&good)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().strip_prefix("manager serving on ").unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let addr = Address::parse(addr).unwrap();
    let m = Manager::connect(addr.clone(), key).unwrap();
    let d: DictProxy<String, i64> = m.named("shared").unwrap();
    assert_eq!(d.incr(&"n".into(), 2).unwrap(), 2);
    assert!(
        Manager::connect(addr, b"wrong")
            .unwrap_err()
            .is_authentication()
    );
    drop(d);
    m.shutdown().unwrap();
    assert!(server.wait().unwrap().success());
}

/// `bench --filter manager` measures our Manager dict and Python's in one
/// run (numbers are not judged here).
#[test]
fn bench_has_the_manager_rows() {
    let out = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args([
            "bench", "--quick", "--smoke", "--json", "--filter", "manager",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let find = |m: &str| rows.iter().find(|r| r["mechanism"] == m);
    let dict = find("manager-dict").expect("manager-dict row");
    assert_eq!(dict["pattern"], "pingpong");
    assert_eq!(dict["size"], 0);
    assert!(dict["p50_ns"].as_u64().unwrap() > 0);
    assert!(
        find("manager-dict-4clients").unwrap()["msgs_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let python = Command::new("python3")
        .args(["-c", "import multiprocessing.managers"])
        .status()
        .is_ok_and(|s| s.success());
    match find("python-manager-dict") {
        Some(r) => assert!(r["p50_ns"].as_u64().unwrap() > 0),
        None => {
            assert!(!python, "python3 is here but the row is missing");
            assert!(String::from_utf8_lossy(&out.stderr).contains("python-manager-dict skipped"));
        }
    }
}

/// Regression test (6e): a manager server on a Unix socket in a directory
/// it created, killed with SIGKILL. `multiproc ls` shows one object;
/// `multiproc clean` removes the socket, its `.lock` file and the
/// directory (it left the last two behind).
#[test]
fn clean_after_kill_9_removes_the_socket_its_lock_and_its_directory() {
    let dir = Dir(std::env::temp_dir().join(format!("mp-cli-clean-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir.0)
        .unwrap();
    let reg = dir.0.join("registry");
    let key = key_file(&dir, "key", 0o600, b"clean key");
    let sock_dir = dir.0.join("server");
    let sock = sock_dir.join("m.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(["manager", "serve", "--authkey-file"])
        .arg(&key)
        .arg("--listen")
        .arg(&sock)
        .env("MULTIPROC_REGISTRY_DIR", &reg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("manager serving on"), "{line}");
    let lock = dir.0.join("server/m.sock.lock");
    assert!(sock.exists() && lock.exists());
    server.kill().unwrap();
    server.wait().unwrap();

    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_multiproc"))
            .args(args)
            .env("MULTIPROC_REGISTRY_DIR", &reg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let v: serde_json::Value =
        serde_json::from_str(&cli(&["ls", "--json", "--kind", "socket"])).unwrap();
    let objs = v["objects"].as_array().unwrap();
    assert_eq!(objs.len(), 1, "{v}");
    assert_eq!(objs[0]["owner_alive"], false);
    let out = cli(&["clean", "--kind", "socket"]);
    assert!(out.contains("1 removed"), "{out}");
    assert!(!sock.exists(), "socket left");
    assert!(!lock.exists(), "lock file left");
    assert!(!sock_dir.exists(), "directory left");
}
