//! Processes: pidfds, signals, reaping, `fork`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

/// How a process ended, in Python's `exitcode` convention: the exit status, or
/// the negated number of the signal that killed it.
pub type ExitCode = i32;

/// `getpid()`.
pub fn pid() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// `getppid()`; `0` when there is no parent in this PID namespace.
pub fn parent_pid() -> u32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get().unsigned_abs())
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid pid"))
}

/// `pidfd_open(pid, 0)`: a descriptor that names the process and becomes
/// readable when it exits. It cannot name another process after PID reuse.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let fd = rustix::process::pidfd_open(to_pid(pid)?, PidfdFlags::empty())?;
    Ok(fd)
}

/// `pidfd_send_signal(pidfd, sig)`. `ESRCH` (already exited) is reported as
/// `Ok(false)`.
#[doc(alias = "pidfd_send_signal")]
pub fn pidfd_signal(pidfd: impl AsFd, signal: i32) -> io::Result<bool> {
    let sig = Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unknown signal number"))?;
    match rustix::process::pidfd_send_signal(pidfd, sig) {
        Ok(()) => Ok(true),
        Err(Errno::SRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `kill(pid, sig)`. `ESRCH` is reported as `Ok(false)`.
pub fn kill(pid: u32, signal: i32) -> io::Result<bool> {
    let sig = Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unknown signal number"))?;
    match rustix::process::kill_process(to_pid(pid)?, sig) {
        Ok(()) => Ok(true),
        Err(Errno::SRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `waitid(P_PIDFD, pidfd, WEXITED [| WNOHANG])`: reap the child.
///
/// Returns `None` when `block` is false and the child is still running.
pub fn reap(pidfd: impl AsFd, block: bool) -> io::Result<Option<ExitCode>> {
    let mut opts = WaitIdOptions::EXITED;
    if !block {
        opts |= WaitIdOptions::NOHANG;
    }
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), opts) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(None) => return Ok(None),
            Ok(Some(status)) => {
                if let Some(code) = status.exit_status() {
                    return Ok(Some(code));
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(Some(-sig));
                }
                // With NOHANG and no state change, Linux fills si_pid = 0,
                // which rustix reports as a status with neither field.
                if !block {
                    return Ok(None);
                }
                return Err(io::Error::other("waitid returned no exit status"));
            }
        }
    }
}

/// The number of threads in this process, from `/proc/self/stat`.
pub fn thread_count() -> io::Result<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Field 20 (num_threads); the command name (field 2) may contain spaces
    // and parentheses, so count from the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed /proc/self/stat"))?;
    rest.split_whitespace()
        .nth(17)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("malformed /proc/self/stat"))
}

/// The result of [`fork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(u32),
    /// In the child.
    Child,
}

/// `fork()`.
///
/// # Safety
///
/// - If the calling process has more than one thread, the child may only call
///   async-signal-safe functions until it calls `exec` or `_exit`: locks held
///   by other threads at the time of the fork stay locked forever in the child.
/// - The child shares every open file description with the parent.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: `fork` has no memory-safety preconditions of its own; the
    // caller upholds the multi-threading contract stated above.
    let r = unsafe { libc::fork() };
    match r {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid.unsigned_abs())),
    }
}

/// Why [`fork_single_threaded`] did not fork.
#[derive(Debug)]
pub enum ForkError {
    /// The process has this many threads (more than one).
    Threads(usize),
    /// Counting the threads, or `fork` itself, failed.
    Io(io::Error),
}

/// [`fork`] if this process has one thread, [`ForkError::Threads`]
/// otherwise: with no other thread, no lock can be held at the fork by
/// anyone but the caller, so the child may do whatever the parent could.
pub fn fork_single_threaded() -> Result<Forked, ForkError> {
    let threads = thread_count().map_err(ForkError::Io)?;
    if threads > 1 {
        return Err(ForkError::Threads(threads));
    }
    // SAFETY: the process has one thread (counted just above; only this
    // thread could have started another since, and it did not), so the
    // multi-threading contract of `fork` holds.
    unsafe { fork() }.map_err(ForkError::Io)
}

/// `_exit(code)`: end the process now, without running `atexit` handlers or
/// destructors (what a forked child must do).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Ignore `SIGPIPE`, as the Rust runtime does before `main`: a write to a
/// closed pipe becomes an `EPIPE` error. Needed where multiproc code runs
/// before `main` (spawned children of test binaries).
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN has no preconditions; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Send `SIGKILL` to this process.
pub fn kill_self() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
    exit_now(137)
}

/// The CPUs this process may run on (`sched_getaffinity`), in order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect())
}

/// Restrict the calling thread to one CPU (`sched_setaffinity`).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    set_cpus(&[cpu])
}

/// Let the calling thread run on exactly `cpus` (`sched_setaffinity`).
pub fn set_cpus(cpus: &[usize]) -> io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set)?;
    Ok(())
}

/// Whether a process is alive, as far as this process can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running (or stopped), or owned by another user (`EPERM`): never
    /// reported dead on a guess.
    Alive,
    /// Gone, or a zombie waiting to be reaped.
    Dead,
}

/// `kill(pid, 0)` plus a look at `/proc/<pid>/stat`: a zombie is dead, and
/// when `start_time` (the low 32 bits of the start time in clock ticks, as
/// [`start_time`] returns) is given, a process with another start time is a
/// later process that reused the pid (so the one we asked about is dead).
///
/// A start time of 0 means "unknown" (the recorder could not read its own
/// `/proc` entry, for example at its file-descriptor limit): the check then
/// falls back to the pid alone, which never calls a live process dead.
pub fn liveness(pid: u32, start_time: Option<u32>) -> Liveness {
    let start_time = start_time.filter(|&t| t != 0);
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Liveness::Dead;
    };
    match rustix::process::test_kill_process(p) {
        Err(Errno::SRCH) => return Liveness::Dead,
        Err(Errno::PERM) | Ok(()) => {}
        Err(_) => return Liveness::Alive,
    }
    match proc_stat(pid) {
        Some((state, start)) => {
            let zombie = state == 'Z' || state == 'X';
            let reused = start_time.is_some_and(|t| u64::from(t) != start & 0xffff_ffff);
            if zombie || reused {
                Liveness::Dead
            } else {
                Liveness::Alive
            }
        }
        // Unreadable (hidepid): alive, since kill said so.
        None => Liveness::Alive,
    }
}

/// State letter and start time (clock ticks since boot) from
/// `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 overall is starttime; after "pid (comm)" it is the 20th.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// This process's start time (clock ticks since boot), to tell it apart from
/// a later process that reuses its pid.
pub fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

/// `gettid()`.
pub fn tid() -> u32 {
    rustix::thread::gettid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// Run `child` in every child forked from this process from now on, right
/// after the fork (`pthread_atfork`), to reset per-process caches.
pub fn at_fork_child(child: extern "C" fn()) -> io::Result<()> {
    // SAFETY: registering a handler has no preconditions; `child` is a plain
    // function that stays valid for the life of the program.
    let r = unsafe { libc::pthread_atfork(None, None, Some(child)) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}
