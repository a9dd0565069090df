//! Seed 004 §5: two processes share a file through `mmap`. The writer
//! appends "msg N" lines into the mapped file; the reader maps the same file
//! and prints what it sees until the last message is there.
//!
//! Run: `cargo run --example shared_file -- [path]`

use std::path::PathBuf;
use std::time::Duration;

use multiproc::{Process, SharedMemory};

const SIZE: usize = 1024;

/// Seed's `write()`: map the file, write ten messages, flush each.
fn write(path: PathBuf) {
    let m = SharedMemory::map_file(&path).expect("map file");
    let mut at = 0;
    for i in 1..=10 {
        let s = format!("msg {i}\n");
        println!("write {}", s.trim_end());
        m.write(at, s.as_bytes()).expect("write");
        m.flush().expect("flush");
        at += s.len();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Seed's `read()`: map the file and print its text whenever it changes,
/// until "msg 10" is there.
fn read(path: PathBuf) -> String {
    let m = SharedMemory::map_file(&path).expect("map file");
    let mut last = String::new();
    for _ in 0..2_000 {
        let bytes = m.read_vec(0, SIZE).expect("read");
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(SIZE);
        let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
        if text != last {
            println!("read {}", text.replace('\n', " ").trim_end());
            last = text;
        }
        if last.contains("msg 10\n") {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    last
}

fn main() {
    multiproc::init();
    let path = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("test-{}.share", std::process::id())),
        PathBuf::from,
    );
    std::fs::write(&path, vec![0u8; SIZE]).expect("create file");
    let mut w = Process::spawn(write, path.clone()).expect("spawn writer");
    let mut r = Process::spawn(read, path.clone()).expect("spawn reader");
    w.join().expect("writer failed");
    let seen = r.join().expect("reader failed");
    // The file itself holds the messages too (written back by msync).
    let on_disk = std::fs::read(&path).expect("read file");
    println!(
        "file holds {} lines",
        on_disk
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"msg"))
            .count()
    );
    println!("reader saw {} lines", seen.lines().count());
    let _ = std::fs::remove_file(&path);
}
