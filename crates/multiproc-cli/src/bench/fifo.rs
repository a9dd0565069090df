//! `fifo` rows: two named pipes, one each way, opened through
//! [`multiproc::Fifo`] and then used as raw descriptors (one `write` per
//! message, as `os-pipe`), so the ratio to `os-pipe` shows what a FIFO
//! costs over an anonymous pipe once open (the kernel path is the same).

use multiproc::Fd;
use multiproc::names::registry::Registry;
use multiproc::os::fifo::Fifo;

use super::harness::{BenchResult, Case, RawEnd, pingpong, stream};

/// Sizes measured (1 MiB is left to the anonymous pipes).
const SIZES: [usize; 2] = [64, 4096];

/// Removes the directory that held the FIFOs (already unlinked).
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One FIFO in `dir`, opened both ways: (read end, write end), blocking.
fn fifo_pair(dir: &std::path::Path, name: &str, reg: &Registry) -> BenchResult<(Fd, Fd)> {
    let fifo = Fifo::builder()
        .registry(reg.clone())
        .create(dir.join(name))?;
    // The reader first, without waiting, so the writer's open finds it.
    let rx = fifo.try_open_read()?.into_fd();
    multiproc::baseline::set_nonblocking(&rx, false)?;
    let tx = fifo.try_open_write()?.into_fd();
    fifo.unlink()?;
    Ok((Fd(rx), Fd(tx)))
}

fn fifos() -> BenchResult<(RawEnd, RawEnd)> {
    let dir = std::env::temp_dir().join(format!(
        "multiproc-bench-fifo-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir(&dir)?;
    let scratch = Scratch(dir);
    let reg = Registry::open(scratch.0.join("registry"))?;
    let (r1, w1) = fifo_pair(&scratch.0, "a", &reg)?;
    let (r2, w2) = fifo_pair(&scratch.0, "b", &reg)?;
    Ok((
        RawEnd {
            rx: Some(r1),
            tx: Some(w2),
        },
        RawEnd {
            rx: Some(r2),
            tx: Some(w1),
        },
    ))
}

/// The `fifo` cases: `pingpong` and `stream` at 64 B and 4 KiB.
pub(super) fn cases(cases: &mut Vec<Case>) {
    for size in SIZES {
        cases.push(Case {
            mechanism: "fifo",
            pattern: "pingpong",
            size,
            run: Box::new(move |n| pingpong(fifos()?, size, n)),
        });
    }
    for size in SIZES {
        cases.push(Case {
            mechanism: "fifo",
            pattern: "stream",
            size,
            run: Box::new(move |n| stream(fifos()?, size, n)),
        });
    }
}
