//! Seed 004 §2: a named pipe (FIFO) read by this program and written by an
//! unrelated process, a shell running `echo ts > FIFO`.
//!
//! The seed creates `/tmp/fifo_pipe` with `os.mkfifo`, opens it for reading
//! (which waits for a writer), reads until `read()` returns nothing ("writer
//! close"). Here the FIFO is created with mode 0600 in a fresh directory
//! (or at the path given as the first argument), the writer is a `sh`
//! started with `std::process::Command` (any program that can open a path
//! can be the writer), and the FIFO is removed at the end.
//!
//! Run: `cargo run --example fifo_reader [PATH]`

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;

use multiproc::Fifo;

fn main() {
    multiproc::init();
    let (path, dir) = match std::env::args_os().nth(1) {
        Some(p) => (PathBuf::from(p), None),
        None => {
            let dir = std::env::temp_dir().join(format!("fifo_reader-{}", std::process::id()));
            std::fs::create_dir(&dir).expect("temporary directory");
            (dir.join("fifo_pipe"), Some(dir))
        }
    };
    let fifo = Fifo::builder().create_or_open(&path).expect("mkfifo");
    let mode = std::fs::symlink_metadata(fifo.path())
        .expect("stat")
        .permissions()
        .mode();
    println!(
        "created {} (mode {:o})",
        fifo.path().display(),
        mode & 0o777
    );

    // The writer: an unrelated program that knows only the path.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg("echo ts > \"$0\"")
        .arg(fifo.path())
        .spawn()
        .expect("start sh");

    println!("open fifo pipe");
    let mut reader = fifo.open_read().expect("open for reading"); // waits for the writer
    let mut buf = [0u8; 512];
    loop {
        println!("start read pipe data");
        let n = reader.read(&mut buf).expect("read");
        if n == 0 {
            println!("writer close");
            break;
        }
        print!("read: {}", String::from_utf8_lossy(&buf[..n]));
    }
    let status = writer.wait().expect("wait for sh");
    println!("writer exited: {status}");
    fifo.unlink().expect("unlink");
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir(dir);
    }
}
