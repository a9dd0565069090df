//! The child's side of a spawn: the bootstrap message, running the target,
//! reporting its result or panic, and [`init`].

use std::fmt;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connection::codec::{self};
use crate::connection::{Connection, SendError};
use crate::error::Waited;

/// The argument that marks a spawned child's command line.
pub(super) const SPAWN_FLAG: &str = "--multiproc-spawn";
/// Version of the bootstrap message.
pub(super) const BOOTSTRAP_VERSION: u32 = 1;

pub(super) static INIT_CALLED: AtomicBool = AtomicBool::new(false);
pub(super) static PROCESS_COUNTER: AtomicU32 = AtomicU32::new(0);
pub(super) static CURRENT_NAME: OnceLock<String> = OnceLock::new();

/// A panic in a child's target, as the parent learns it from
/// [`ProcessError::Failed`](crate::ProcessError::Failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildPanic {
    /// The panic message (`"Box<dyn Any>"` when the payload was not text).
    pub message: String,
    /// `file:line:column` of the panic, when the child's panic hook saw it.
    pub location: Option<String>,
}

impl fmt::Display for ChildPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "panicked at {at}: {}", self.message),
            None => write!(f, "panicked: {}", self.message),
        }
    }
}

/// The first byte of a message on the result channel.
pub(super) const RESULT_TAG: u8 = 0;
/// The first byte of a panic report on the result channel.
pub(super) const PANIC_TAG: u8 = 1;

/// The location and message of the last panic in this process, recorded by
/// the hook [`record_panics`] installs (a child's target runs under it).
pub(super) static LAST_PANIC: std::sync::Mutex<Option<ChildPanic>> = std::sync::Mutex::new(None);

pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// In a child: record where each panic happened (and still print it as the
/// previous hook does).
pub(super) fn record_panics() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let report = ChildPanic {
            message: panic_message(info.payload()),
            location: info.location().map(|l| l.to_string()),
        };
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
        previous(info);
    }));
}

/// The report of the panic with `payload` that just unwound in this
/// process: its message, and where it happened when the hook saw it.
pub(crate) fn panic_report(payload: &(dyn std::any::Any + Send)) -> ChildPanic {
    let message = panic_message(payload);
    let recorded = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
    let location = recorded
        .filter(|r| r.message == message)
        .and_then(|r| r.location);
    ChildPanic { message, location }
}

/// In a child whose target panicked with `payload`: tell the parent.
pub(super) fn send_panic(chan: &mut Connection<()>, payload: &(dyn std::any::Any + Send)) {
    let mut body = vec![PANIC_TAG];
    if postcard::to_io(&panic_report(payload), &mut body).is_ok() {
        let _ = chan.send_raw(&body, &[]);
    }
}

/// What the parent sends a spawned child.
#[derive(Serialize, Deserialize)]
pub(super) struct SpawnRequest {
    pub(super) version: u32,
    /// Offset of `check_anchor` from `anchor`: equal in parent and child
    /// exactly when they are the same binary.
    pub(super) check: u64,
    pub(super) trampoline: u64,
    pub(super) target: u64,
    pub(super) name: String,
    pub(super) daemon: bool,
    pub(super) parent: u32,
    #[serde(with = "serde_bytes")]
    pub(super) arg: Vec<u8>,
}

/// A monomorphized [`call`]: decode the argument, run the target, encode
/// its result into the buffer (handles come back as descriptors).
pub(super) type Trampoline =
    fn(usize, &[u8], Vec<OwnedFd>, &mut Vec<u8>) -> Result<Vec<OwnedFd>, String>;

/// A `fn(A) -> R` named by its offset in this binary, with the
/// monomorphized [`call`] that runs it: what a spawned child runs, and what
/// a pool worker runs for each task. Only a process started from the same
/// binary (checked by the spawn's bootstrap) may [`run`](Self::run) one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(super) trampoline: u64,
    pub(super) target: u64,
}

impl Target {
    /// The target `f`.
    pub(crate) fn of<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> Target {
        Target {
            trampoline: offset_of(call::<A, R> as Trampoline as usize),
            target: offset_of(f as usize),
        }
    }

    /// Decode `arg` (with its handles `fds`), run the target on it, and
    /// encode its result into `out`, returning the result's handles.
    pub(crate) fn run(
        self,
        arg: &[u8],
        fds: Vec<OwnedFd>,
        out: &mut Vec<u8>,
    ) -> Result<Vec<OwnedFd>, String> {
        // SAFETY: `trampoline` is the offset of a `call::<A, R>` instance in
        // this binary (`Target::of` took it, and the spawn bootstrap checked
        // that parent and child are the same build); `Trampoline` is its
        // type.
        let tramp =
            unsafe { std::mem::transmute::<usize, Trampoline>(address_of(self.trampoline)) };
        tramp(address_of(self.target), arg, fds, out)
    }
}

#[inline(never)]
pub(super) fn anchor() {}

#[inline(never)]
pub(super) fn check_anchor() {}

pub(super) fn offset_of(addr: usize) -> u64 {
    addr.wrapping_sub(anchor as fn() as usize) as u64
}

pub(super) fn address_of(offset: u64) -> usize {
    (anchor as fn() as usize).wrapping_add(offset as usize)
}

/// Decode the argument, call the target, encode the result into `out`.
fn call<A: DeserializeOwned, R: Serialize>(
    target: usize,
    arg: &[u8],
    fds: Vec<OwnedFd>,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, String> {
    // SAFETY: `target` is the address of a `fn(A) -> R` in this binary: the
    // parent computed its offset from the same `fn(A) -> R` value that chose
    // this monomorphized trampoline, and `check` proved parent and child are
    // the same binary. Function pointers and `usize` have the same size.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(target) };
    let arg: A = codec::decode(arg, fds).map_err(|e| format!("cannot decode argument: {e}"))?;
    let result = f(arg);
    codec::encode(&result, out).map_err(|e| format!("cannot send result: {e}"))
}

pub(super) fn send_result<R: Serialize>(
    chan: &mut Connection<()>,
    result: &R,
) -> Result<(), String> {
    let mut body = vec![RESULT_TAG];
    let fds = codec::encode(result, &mut body).map_err(|e| format!("cannot send result: {e}"))?;
    send_encoded(chan, &body, &fds)
}

/// Send an encoded result message (tag included) to the parent.
fn send_encoded(chan: &mut Connection<()>, body: &[u8], fds: &[OwnedFd]) -> Result<(), String> {
    match chan.send_raw(body, fds) {
        Ok(()) | Err(SendError::Disconnected) => Ok(()),
        Err(e) => Err(format!("cannot send result: {e}")),
    }
}

/// Run `target` on the spawn argument and send its result to the parent.
fn run_target(
    target: Target,
    arg: &[u8],
    fds: Vec<OwnedFd>,
    chan: &mut Connection<()>,
) -> Result<(), String> {
    let mut body = vec![RESULT_TAG];
    let fds = target.run(arg, fds, &mut body)?;
    send_encoded(chan, &body, &fds)
}

/// Make a spawned child run its target and exit. Call it first in `main`:
///
/// ```no_run
/// fn main() {
///     multiproc::init();
///     // ... the parent's program ...
/// }
/// ```
///
/// In the parent it returns at once. In a child started by
/// [`StartMethod::Spawn`](crate::StartMethod::Spawn) it never returns: it runs the target, sends its
/// result, and exits.
pub fn init() {
    INIT_CALLED.store(true, Ordering::Relaxed);
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(SPAWN_FLAG)) {
        return;
    }
    let fd: Option<RawFd> = args.next().and_then(|s| s.to_str()?.parse().ok());
    let Some(fd) = fd else {
        eprintln!("multiproc: malformed spawn command line");
        multiproc_sys::process::exit_now(70);
    };
    run_spawned_child(fd)
}

/// Install [`init`] as a constructor that runs before `main`, for test
/// binaries (whose `main` belongs to the test harness). Put it once at the top
/// level of each integration test file that spawns processes.
#[macro_export]
macro_rules! enable_test_support {
    () => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        static __MULTIPROC_INIT: extern "C" fn() = {
            extern "C" fn __multiproc_init() {
                // A panic must not unwind out of a constructor.
                if ::std::panic::catch_unwind($crate::init).is_err() {
                    ::std::process::abort();
                }
            }
            __multiproc_init
        };
    };
}

/// The name of the current process: `"MainProcess"`, or the name given to
/// this child by its parent (Python's `current_process().name`).
pub fn current_process_name() -> &'static str {
    CURRENT_NAME.get().map_or("MainProcess", String::as_str)
}

pub(super) fn flush_std() {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
}

/// Kill this process when `parent` exits (daemon children).
pub(super) fn watch_parent(parent: u32) {
    let Ok(pidfd) = multiproc_sys::process::pidfd_open(parent) else {
        multiproc_sys::process::kill_self();
    };
    // The parent may have died before pidfd_open: then we were reparented
    // and the pidfd names an unrelated process (or none).
    if multiproc_sys::process::parent_pid() != parent {
        multiproc_sys::process::kill_self();
    }
    watch_pidfd(pidfd);
}

/// Kill this process when the process `pid` that started at `start_time`
/// (clock ticks since boot, as `multiproc_sys::process::start_time` gives)
/// exits; at once if it is gone already.
pub(super) fn watch_process(pid: u32, start_time: u64) {
    let Ok(pidfd) = multiproc_sys::process::pidfd_open(pid) else {
        multiproc_sys::process::kill_self();
    };
    // The pidfd pins whatever process holds `pid` now; it is the one meant
    // only if it started when that one did (else the pid was reused after
    // it died).
    if multiproc_sys::process::start_time(pid) != Some(start_time) {
        multiproc_sys::process::kill_self();
    }
    watch_pidfd(pidfd);
}

/// Kill this process once `pidfd` polls readable (its process exited).
fn watch_pidfd(pidfd: OwnedFd) {
    let spawned = std::thread::Builder::new()
        .name("multiproc-daemon-watch".into())
        .spawn(move || {
            let _ = multiproc_sys::poll::wait_readable(pidfd.as_fd(), None);
            multiproc_sys::process::kill_self();
        });
    if spawned.is_err() {
        multiproc_sys::process::kill_self();
    }
}

pub(super) fn run_spawned_child(fd: RawFd) -> ! {
    multiproc_sys::process::ignore_sigpipe();
    // SAFETY: the parent put a descriptor at this number for us (the spawn
    // flag's argument) and nothing else in this freshly exec'd process knows
    // or owns it; `claim_inherited` checks that it is open before owning it.
    let owned = match unsafe { multiproc_sys::fd::claim_inherited(fd) } {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("multiproc: bad bootstrap descriptor {fd}: {e}");
            multiproc_sys::process::exit_now(70);
        }
    };
    let mut chan = match Connection::<()>::from_fd(owned, true, true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("multiproc: bad bootstrap descriptor: {e}");
            multiproc_sys::process::exit_now(70);
        }
    };
    let _ = multiproc_sys::fd::set_cloexec(&chan, true);
    let (bytes, fds) = match chan.recv_raw(None).map_err(Waited::into_blocking) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("multiproc: cannot read bootstrap message: {e}");
            multiproc_sys::process::exit_now(70);
        }
    };
    let req: SpawnRequest = match postcard::from_bytes(&bytes) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("multiproc: malformed bootstrap message: {e}");
            multiproc_sys::process::exit_now(70);
        }
    };
    if req.version != BOOTSTRAP_VERSION || req.check != offset_of(check_anchor as fn() as usize) {
        eprintln!("multiproc: parent and child are different builds; refusing to run");
        multiproc_sys::process::exit_now(70);
    }
    let _ = CURRENT_NAME.set(req.name);
    if req.daemon {
        watch_parent(req.parent);
    }
    let target = Target {
        trampoline: req.trampoline,
        target: req.target,
    };
    record_panics();
    let code = match panic::catch_unwind(AssertUnwindSafe(|| {
        run_target(target, &req.arg, fds, &mut chan)
    })) {
        Ok(Ok(())) => 0,
        Ok(Err(msg)) => {
            eprintln!("multiproc: {msg}");
            1
        }
        // The panic hook already printed the message; the parent gets
        // it too.
        Err(payload) => {
            send_panic(&mut chan, &*payload);
            1
        }
    };
    drop(chan);
    flush_std();
    std::process::exit(code)
}
