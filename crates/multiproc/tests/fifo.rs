//! Cross-process tests of named pipes: creation and refusal rules, opening
//! rules, end of file with writers in several processes, framed messages,
//! and the owner registry.

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::watchdog;
use multiproc::names::Kind;
use multiproc::names::registry::Registry;
use multiproc::os::fifo::FifoError;
use multiproc::{Connection, Fifo, Process, duplex};
use multiproc::{TimeoutError, TryError};
use serde::{Deserialize, Serialize};

multiproc::enable_test_support!();

const LIMIT: Duration = Duration::from_secs(60);

/// A fresh directory for one test; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("multiproc-fifo-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir.canonicalize().unwrap())
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private registry (the default one is chosen by an environment
/// variable, which a multi-threaded test process must not set).
fn registry(dir: &TempDir) -> Registry {
    Registry::open(dir.join("registry")).unwrap()
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

#[test]
fn create_open_unlink() {
    let _w = watchdog("create_open_unlink", LIMIT);
    let dir = TempDir::new("create_open_unlink");
    let path = dir.join("f");
    let reg = registry(&dir);
    let fifo = Fifo::builder().registry(reg.clone()).create(&path).unwrap();
    assert!(is_fifo(&path));
    assert_eq!(fifo.path(), path);
    assert!(matches!(
        Fifo::builder().registry(reg.clone()).create(&path),
        Err(FifoError::AlreadyExists(p)) if p == path
    ));
    let again = Fifo::open(&path).unwrap();
    assert_eq!(again.path(), path);
    let both = Fifo::builder()
        .registry(reg.clone())
        .create_or_open(&path)
        .unwrap();
    assert_eq!(both.path(), path);
    fifo.unlink().unwrap();
    assert!(std::fs::symlink_metadata(&path).is_err());
    assert!(matches!(Fifo::open(&path), Err(FifoError::NotFound(_))));
    assert!(matches!(again.unlink(), Err(FifoError::NotFound(_))));
    // A relative path with `..` is made absolute and canonical.
    let odd = dir.0.join("sub");
    std::fs::create_dir(&odd).unwrap();
    let f = Fifo::builder()
        .registry(reg)
        .create(odd.join("../g"))
        .unwrap();
    assert_eq!(f.path(), dir.join("g"));
    f.unlink().unwrap();
}

#[test]
fn mode_is_exact_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("mode");
    let reg = registry(&dir);
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let a = Fifo::builder()
        .registry(reg.clone())
        .create(dir.join("a"))
        .unwrap();
    assert_eq!(mode(a.path()), 0o600);
    // Bits a usual umask (022 or 077) clears are kept.
    let b = Fifo::builder()
        .registry(reg.clone())
        .mode(0o666)
        .create(dir.join("b"))
        .unwrap();
    assert_eq!(mode(b.path()), 0o666);
    let c = Fifo::builder()
        .registry(reg)
        .mode(0o620)
        .create(dir.join("c"))
        .unwrap();
    assert_eq!(mode(c.path()), 0o620);
}

#[test]
fn an_existing_non_fifo_is_refused() {
    let dir = TempDir::new("non_fifo");
    let reg = registry(&dir);
    let file = dir.join("file");
    std::fs::write(&file, b"data").unwrap();
    assert!(matches!(Fifo::open(&file), Err(FifoError::NotAFifo(_))));
    assert!(matches!(
        Fifo::builder().registry(reg.clone()).create(&file),
        Err(FifoError::AlreadyExists(_))
    ));
    assert!(matches!(
        Fifo::builder().registry(reg).create_or_open(&file),
        Err(FifoError::NotAFifo(_))
    ));
    assert!(matches!(Fifo::open(&dir.0), Err(FifoError::NotAFifo(_))));
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
}

#[test]
fn a_symlink_is_refused_even_to_a_fifo() {
    let _w = watchdog("a_symlink_is_refused_even_to_a_fifo", LIMIT);
    let dir = TempDir::new("symlink");
    let reg = registry(&dir);
    let real = Fifo::builder()
        .registry(reg.clone())
        .create(dir.join("real"))
        .unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(real.path(), &link).unwrap();
    assert!(matches!(Fifo::open(&link), Err(FifoError::Symlink(_))));
    assert!(matches!(
        Fifo::builder().registry(reg.clone()).create_or_open(&link),
        Err(FifoError::Symlink(_))
    ));
    assert!(matches!(
        Fifo::builder().registry(reg.clone()).create(&link),
        Err(FifoError::AlreadyExists(_))
    ));
    // A FIFO opened by name, whose path is then replaced by a symlink to
    // another FIFO, is refused at open time (O_NOFOLLOW).
    let victim = Fifo::builder()
        .registry(reg)
        .create(dir.join("victim"))
        .unwrap();
    std::fs::remove_file(victim.path()).unwrap();
    std::os::unix::fs::symlink(real.path(), victim.path()).unwrap();
    assert!(matches!(victim.try_open_read(), Err(FifoError::Symlink(_))));
    assert!(matches!(
        victim.try_open_write(),
        Err(TryError::Failed(FifoError::Symlink(_)))
    ));
    assert!(matches!(
        victim.open_write_timeout(Duration::from_millis(10)),
        Err(TimeoutError::Failed(FifoError::Symlink(_)))
    ));
    // ... and by a regular file: refused after the open, by fstat.
    std::fs::remove_file(victim.path()).unwrap();
    std::fs::write(victim.path(), b"").unwrap();
    assert!(matches!(
        victim.try_open_read(),
        Err(FifoError::NotAFifo(_))
    ));
    assert!(matches!(victim.open_read(), Err(FifoError::NotAFifo(_))));
}

/// Child: open for reading (waiting for a writer), read to end of file.
fn read_all(path: PathBuf) -> String {
    let fifo = Fifo::open(&path).expect("open");
    let mut r = fifo.open_read().expect("open_read");
    let mut s = String::new();
    r.read_to_string(&mut s).expect("read");
    s
}

#[test]
fn child_reads_what_the_parent_writes_until_eof() {
    let _w = watchdog("child_reads_what_the_parent_writes_until_eof", LIMIT);
    let dir = TempDir::new("child_reads");
    let fifo = Fifo::builder()
        .registry(registry(&dir))
        .create(dir.join("f"))
        .unwrap();
    let mut child = Process::spawn(read_all, fifo.path().to_owned()).unwrap();
    let mut w = fifo.open_write().unwrap(); // waits for the child
    w.write_all(b"hello ").unwrap();
    w.write_all(b"fifo\n").unwrap();
    drop(w);
    assert_eq!(child.join().unwrap(), "hello fifo\n");
}

/// Child writer: open, report, write its tag, close when told.
fn tagged_writer(arg: (PathBuf, u8, Connection<u8>)) {
    let (path, tag, mut ctl) = arg;
    let mut w = Fifo::open(&path).unwrap().open_write().unwrap();
    ctl.send(&0).unwrap(); // opened
    w.write_all(&[tag]).unwrap();
    assert_eq!(ctl.recv().unwrap(), 1); // close now
    drop(w);
}

#[test]
fn eof_only_after_both_writer_processes_close() {
    let _w = watchdog("eof_only_after_both_writer_processes_close", LIMIT);
    let dir = TempDir::new("two_writers");
    let fifo = Fifo::builder()
        .registry(registry(&dir))
        .create(dir.join("f"))
        .unwrap();
    // Opened first, without waiting: the writers' opens then never wait.
    let mut r = fifo.try_open_read().unwrap();
    let (mut c1, p1) = duplex::<u8>().unwrap();
    let (mut c2, p2) = duplex::<u8>().unwrap();
    let mut w1 = Process::spawn(tagged_writer, (fifo.path().to_owned(), b'1', p1)).unwrap();
    let mut w2 = Process::spawn(tagged_writer, (fifo.path().to_owned(), b'2', p2)).unwrap();
    assert_eq!(c1.recv().unwrap(), 0);
    assert_eq!(c2.recv().unwrap(), 0);
    let mut got = Vec::new();
    let mut buf = [0u8; 8];
    while got.len() < 2 {
        let n = r.read_timeout(&mut buf, Duration::from_secs(30)).unwrap();
        assert!(n > 0, "end of file while both writers are open");
        got.extend_from_slice(&buf[..n]);
    }
    got.sort_unstable();
    assert_eq!(got, b"12");
    // The first writer closes and exits: the second still holds its end.
    c1.send(&1).unwrap();
    w1.join().unwrap();
    assert!(matches!(
        r.read_timeout(&mut buf, Duration::from_millis(100)),
        Err(TimeoutError::Timeout)
    ));
    assert!(matches!(r.try_read(&mut buf), Err(TryError::WouldBlock)));
    c2.send(&1).unwrap();
    assert_eq!(r.read(&mut buf).unwrap(), 0);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
    w2.join().unwrap();
}

#[test]
fn opens_without_the_other_side() {
    let _w = watchdog("opens_without_the_other_side", LIMIT);
    let dir = TempDir::new("no_peer");
    let fifo = Fifo::builder()
        .registry(registry(&dir))
        .create(dir.join("f"))
        .unwrap();
    assert!(matches!(fifo.try_open_write(), Err(TryError::WouldBlock)));
    let t = Instant::now();
    assert!(matches!(
        fifo.open_write_timeout(Duration::from_millis(200)),
        Err(TimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(200));
    let t = Instant::now();
    assert!(matches!(
        fifo.open_read_timeout(Duration::from_millis(200)),
        Err(TimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(200));
    // With a reader, the non-blocking write open succeeds.
    let mut r = fifo.try_open_read().unwrap();
    let mut w = fifo.try_open_write().unwrap();
    w.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    assert_eq!(r.read(&mut b).unwrap(), 1);
    drop(r);
    // Every reader gone: writing fails with BrokenPipe (no SIGPIPE death).
    assert_eq!(
        w.write_all(b"y").unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
}

/// Child: open for writing within a deadline, write, close.
fn late_writer(path: PathBuf) {
    let fifo = Fifo::open(&path).unwrap();
    let mut w = fifo.open_write_timeout(Duration::from_secs(30)).unwrap();
    w.write_all(b"late").unwrap();
}

#[test]
fn timeout_opens_succeed_when_the_peer_comes() {
    let _w = watchdog("timeout_opens_succeed_when_the_peer_comes", LIMIT);
    let dir = TempDir::new("timeout_ok");
    let fifo = Fifo::builder()
        .registry(registry(&dir))
        .create(dir.join("f"))
        .unwrap();
    let mut child = Process::spawn(late_writer, fifo.path().to_owned()).unwrap();
    let mut r = fifo.open_read_timeout(Duration::from_secs(30)).unwrap();
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!(s, "late");
    child.join().unwrap();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Hello { from: u32 },
    Data(Vec<u16>),
    Bye,
}

/// Child: receive typed messages over the FIFO until end of file.
fn receive_messages(path: PathBuf) -> Vec<Msg> {
    let fifo = Fifo::open(&path).unwrap();
    let mut rx = fifo.open_read().unwrap().into_connection::<Msg>().unwrap();
    let mut out = Vec::new();
    loop {
        match rx.recv() {
            Ok(m) => out.push(m),
            Err(e) if e.is_eof() => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn typed_messages_over_a_fifo_connection() {
    let _w = watchdog("typed_messages_over_a_fifo_connection", LIMIT);
    let dir = TempDir::new("typed");
    let fifo = Fifo::builder()
        .registry(registry(&dir))
        .create(dir.join("f"))
        .unwrap();
    let mut child = Process::spawn(receive_messages, fifo.path().to_owned()).unwrap();
    let mut tx = fifo
        .open_write_timeout(Duration::from_secs(30))
        .unwrap()
        .into_connection::<Msg>()
        .unwrap();
    let sent = vec![
        Msg::Hello {
            from: std::process::id(),
        },
        Msg::Data((0..5000).collect()),
        Msg::Bye,
    ];
    for m in &sent {
        tx.send(m).unwrap();
    }
    drop(tx);
    assert_eq!(child.join().unwrap(), sent);
}

/// Child: create a FIFO in the given registry and leave it behind.
fn create_and_leave(arg: (PathBuf, PathBuf)) -> String {
    let reg = Registry::open(arg.1).unwrap();
    let f = Fifo::builder().registry(reg).create(&arg.0).unwrap();
    f.path().to_str().unwrap().to_owned()
}

#[test]
fn the_registry_records_and_forgets() {
    let _w = watchdog("the_registry_records_and_forgets", LIMIT);
    let dir = TempDir::new("registry");
    let reg = registry(&dir);
    let fifo = Fifo::builder()
        .registry(reg.clone())
        .create(dir.join("f"))
        .unwrap();
    let recs = reg.list().unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].kind, Kind::Fifo);
    assert_eq!(Path::new(&recs[0].name), fifo.path());
    assert!(Path::new(&recs[0].name).is_absolute());
    assert_eq!(recs[0].owner_pid, std::process::id());
    assert!(recs[0].owner_alive);
    fifo.unlink().unwrap();
    assert!(reg.list().unwrap().is_empty());
    // Created by a process that has exited: the record stays, owner dead.
    let mut child = Process::spawn(
        create_and_leave,
        (dir.join("orphan"), reg.path().to_owned()),
    )
    .unwrap();
    let name = child.join().unwrap();
    let recs = reg.list().unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].name, name);
    assert!(!recs[0].owner_alive);
    assert!(multiproc::names::exists(Kind::Fifo, &name));
    Fifo::builder()
        .registry(reg.clone())
        .open(&name)
        .unwrap()
        .unlink()
        .unwrap();
    assert!(reg.list().unwrap().is_empty());
}

#[test]
fn relative_paths_are_recorded_absolute() {
    let dir = TempDir::new("relative");
    let reg = registry(&dir);
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(&dir.join("rel"), &cwd);
    let f = Fifo::builder().registry(reg.clone()).create(&rel).unwrap();
    assert_eq!(f.path(), dir.join("rel"));
    assert_eq!(
        reg.list().unwrap()[0].name,
        dir.join("rel").to_str().unwrap()
    );
    f.unlink().unwrap();
}

/// `target` relative to `base` (both absolute), with `..` steps.
fn pathdiff(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}
