//! Signals as event notification (seed 004, "信号"): a child process waits
//! for `SIGUSR1` through `multiproc::os::signal`, the parent sends it, the child
//! reports it; then the parent asks the child to stop with `terminate()`
//! (`SIGTERM`), which the child turns into a clean exit.
//!
//! No signal handler is written here: `Signals` queues the signals it
//! watches, and the child waits on it like on a pipe.
//!
//! Run: `cargo run --example signal_wait`

use multiproc::os::signal::{self, SIGTERM, SIGUSR1, Signals};
use multiproc::{Connection, Process, duplex};

/// The child: watch the signals, tell the parent, report what arrives.
fn waiter(parent: Connection<()>) -> u32 {
    let mut parent = parent;
    let mut signals = Signals::new(&[SIGUSR1, SIGTERM]).expect("watch signals");
    parent.send(&()).expect("ready");
    let mut usr1 = 0;
    for sig in signals.forever() {
        println!("child received {}", signal::name(sig).unwrap_or("?"));
        match sig {
            SIGUSR1 => {
                usr1 += 1;
                parent.send(&()).expect("acknowledge");
            }
            _ => break, // SIGTERM: clean up and return
        }
    }
    println!("child cleaning up after SIGTERM");
    usr1
}

fn main() {
    multiproc::init();
    let (mut conn, theirs) = duplex::<()>().expect("duplex");
    let mut child = Process::spawn(waiter, theirs).expect("spawn");
    conn.recv().expect("child ready");
    let pid = child.pid().expect("pid");
    println!("parent sends SIGUSR1 to {pid}");
    signal::send(pid, SIGUSR1).expect("send SIGUSR1");
    conn.recv().expect("child saw SIGUSR1");
    println!("parent terminates the child");
    child.terminate().expect("terminate");
    let usr1 = child.join().expect("join");
    println!(
        "child saw SIGUSR1 {usr1} time(s), exitcode {:?}",
        child.exitcode()
    );
}
