//! System V IPC: message queues (`msgget/msgsnd/msgrcv/msgctl`), semaphore
//! sets (`semget/semop/semtimedop/semctl`) and shared-memory segments
//! (`shmget/shmat/shmdt/shmctl`), plus `ftok`.
//!
//! rustix has no System V API, so these are thin `libc` wrappers. Each is
//! one system call: `EINTR` comes back as an error (`ErrorKind::Interrupted`)
//! and the caller decides whether and how long to retry. Ids and keys are
//! the kernel's `int`s (`i32`).

use std::ffi::CString;
use std::io;
use std::ops::Deref;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::time::Duration;

use libc::{c_int, c_long, c_ushort, c_void};

use crate::mapped::MappedBytes;

/// `IPC_PRIVATE`: a key that always makes a new object.
pub const IPC_PRIVATE: i32 = libc::IPC_PRIVATE;
/// `IPC_CREAT`.
pub const IPC_CREAT: i32 = libc::IPC_CREAT;
/// `IPC_EXCL`.
pub const IPC_EXCL: i32 = libc::IPC_EXCL;
/// `IPC_NOWAIT`.
pub const IPC_NOWAIT: i32 = libc::IPC_NOWAIT;
/// `MSG_NOERROR`: `msgrcv` truncates a message longer than the buffer.
pub const MSG_NOERROR: i32 = libc::MSG_NOERROR;
/// `MSG_EXCEPT`: `msgrcv` with type > 0 takes the first message of any
/// other type.
pub const MSG_EXCEPT: i32 = libc::MSG_EXCEPT;
/// `SEM_UNDO`: the kernel undoes the operation when the process exits.
pub const SEM_UNDO: i16 = libc::SEM_UNDO as i16;
/// `SHM_RDONLY`.
pub const SHM_RDONLY: i32 = libc::SHM_RDONLY;

fn check(r: c_int) -> io::Result<c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `ftok(path, proj)`: a key derived from a file's inode and device and the
/// low 8 bits of `proj`.
pub fn ftok(path: &Path, proj: u8) -> io::Result<i32> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    check(unsafe { libc::ftok(c.as_ptr(), c_int::from(proj)) })
}

/// Ownership and permissions of an object (`struct ipc_perm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// The key it was made with (0 for `IPC_PRIVATE`).
    pub key: i32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Permission bits (`mode & 0o777`).
    pub mode: u32,
}

fn perm(p: &libc::ipc_perm) -> Perm {
    Perm {
        key: p.__key,
        uid: p.uid,
        gid: p.gid,
        cuid: p.cuid,
        cgid: p.cgid,
        mode: u32::from(p.mode) & 0o777,
    }
}

// ----- message queues --------------------------------------------------------

/// `msgget(key, flags)`: `flags` is `IPC_CREAT`/`IPC_EXCL` or'ed with the
/// mode bits.
pub fn msgget(key: i32, flags: i32) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::msgget(key, flags) })
}

/// The size of the `mtype` field that leads every message buffer.
const MTYPE: usize = std::mem::size_of::<c_long>();

/// A buffer of `c_long`s (aligned for `struct msgbuf`) holding `bytes`
/// bytes of text after the leading `mtype`.
fn msgbuf(bytes: usize) -> Vec<c_long> {
    vec![0; 1 + bytes.div_ceil(MTYPE)]
}

/// `msgsnd(id, {mtype, data}, len, flags)`.
pub fn msgsnd(id: i32, mtype: i64, data: &[u8], flags: i32) -> io::Result<()> {
    let mtype = c_long::try_from(mtype)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mtype out of range"))?;
    let mut buf = msgbuf(data.len());
    buf[0] = mtype;
    // SAFETY: `buf` has `1 + ceil(len / size_of::<c_long>())` elements, so
    // `data.len()` bytes fit after the first element; the regions are
    // distinct allocations.
    unsafe {
        std::ptr::copy_nonoverlapping(
            data.as_ptr(),
            buf.as_mut_ptr().add(1).cast::<u8>(),
            data.len(),
        );
    }
    // SAFETY: `buf` is a valid `struct msgbuf` (a `long` then `data.len()`
    // bytes) that lives across the call; the kernel only reads it.
    check(unsafe { libc::msgsnd(id, buf.as_ptr().cast::<c_void>(), data.len(), flags) })?;
    Ok(())
}

/// `msgrcv(id, buf, out.len(), msgtyp, flags)`: the message's type and
/// length; its text is copied into `out[..len]`.
pub fn msgrcv(id: i32, out: &mut [u8], msgtyp: i64, flags: i32) -> io::Result<(i64, usize)> {
    let msgtyp = c_long::try_from(msgtyp)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "msgtyp out of range"))?;
    let mut buf = msgbuf(out.len());
    // SAFETY: `buf` has room for a `long` and `out.len()` bytes, the most
    // the kernel writes with this size; it lives across the call.
    let n = unsafe {
        libc::msgrcv(
            id,
            buf.as_mut_ptr().cast::<c_void>(),
            out.len(),
            msgtyp,
            flags,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = usize::try_from(n).unwrap_or(0).min(out.len());
    // SAFETY: the kernel wrote `n <= out.len()` bytes after the first
    // element of `buf`; `out` is a distinct buffer of at least `n` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(buf.as_ptr().add(1).cast::<u8>(), out.as_mut_ptr(), n);
    }
    #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
    let mtype = i64::from(buf[0]);
    Ok((mtype, n))
}

/// What `msgctl(IPC_STAT)` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgStat {
    /// Owner and permissions.
    pub perm: Perm,
    /// Messages in the queue.
    pub messages: u64,
    /// Bytes of text in the queue.
    pub bytes: u64,
    /// The most bytes the queue holds (`msg_qbytes`).
    pub max_bytes: u64,
    /// Pid of the last `msgsnd` (0: none yet).
    pub last_send_pid: u32,
    /// Pid of the last `msgrcv` (0: none yet).
    pub last_receive_pid: u32,
    /// Time of the last `msgsnd` (seconds since the epoch; 0: none).
    pub last_send_time: i64,
    /// Time of the last `msgrcv` (seconds since the epoch; 0: none).
    pub last_receive_time: i64,
}

/// `msgctl(id, IPC_STAT)`.
pub fn msg_stat(id: i32) -> io::Result<MsgStat> {
    // SAFETY: `msqid_ds` is plain old data; all zeroes is a valid value.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable `msqid_ds` for the kernel to fill.
    check(unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) })?;
    Ok(MsgStat {
        perm: perm(&ds.msg_perm),
        messages: ds.msg_qnum,
        bytes: ds.__msg_cbytes,
        max_bytes: ds.msg_qbytes,
        last_send_pid: ds.msg_lspid.unsigned_abs(),
        last_receive_pid: ds.msg_lrpid.unsigned_abs(),
        last_send_time: ds.msg_stime,
        last_receive_time: ds.msg_rtime,
    })
}

/// `msgctl(id, IPC_RMID)`: waiters get `EIDRM`.
pub fn msg_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID does not read the buffer argument; null is allowed.
    check(unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
    Ok(())
}

// ----- semaphore sets --------------------------------------------------------

/// `union semun`, the fourth argument of `semctl` for the commands that
/// take one.
#[repr(C)]
#[derive(Clone, Copy)]
union Semun {
    val: c_int,
    buf: *mut libc::semid_ds,
    array: *mut c_ushort,
}

/// One operation of `semop` (`struct sembuf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemBuf {
    /// Index of the semaphore in the set.
    pub num: u16,
    /// Amount to add (> 0), take (< 0), or 0 to wait for zero.
    pub op: i16,
    /// `IPC_NOWAIT` and/or `SEM_UNDO`.
    pub flags: i16,
}

/// `semget(key, nsems, flags)`.
pub fn semget(key: i32, nsems: i32, flags: i32) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::semget(key, nsems, flags) })
}

unsafe extern "C" {
    /// glibc's `semtimedop` (the libc crate has no binding).
    #[link_name = "semtimedop"]
    fn c_semtimedop(
        semid: c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> c_int;
}

/// `semtimedop(id, ops, timeout)`; `None` waits without limit (`semop`).
/// The timeout is relative (the kernel measures it on the monotonic
/// clock); `EAGAIN` when it passes.
pub fn semtimedop(id: i32, ops: &[SemBuf], timeout: Option<Duration>) -> io::Result<()> {
    let mut raw: Vec<libc::sembuf> = ops
        .iter()
        .map(|o| libc::sembuf {
            sem_num: o.num,
            sem_op: o.op,
            sem_flg: o.flags,
        })
        .collect();
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: t.subsec_nanos() as c_long, // < 10^9: fits any c_long
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `raw` holds `raw.len()` valid `sembuf`s and `tsp` is null or
    // points to a valid timespec; both live across the call.
    check(unsafe { c_semtimedop(id, raw.as_mut_ptr(), raw.len(), tsp) })?;
    Ok(())
}

/// `semctl(id, num, GETVAL)`.
pub fn sem_getval(id: i32, num: u16) -> io::Result<i32> {
    // SAFETY: GETVAL takes no fourth argument.
    check(unsafe { libc::semctl(id, c_int::from(num), libc::GETVAL) })
}

/// `semctl(id, num, SETVAL, val)`.
pub fn sem_setval(id: i32, num: u16, val: i32) -> io::Result<()> {
    let arg = Semun { val };
    // SAFETY: SETVAL reads `arg.val` from a `union semun` passed by value.
    check(unsafe { libc::semctl(id, c_int::from(num), libc::SETVAL, arg) })?;
    Ok(())
}

/// `semctl(id, num, GETNCNT)`: processes waiting for the value to grow.
pub fn sem_getncnt(id: i32, num: u16) -> io::Result<i32> {
    // SAFETY: GETNCNT takes no fourth argument.
    check(unsafe { libc::semctl(id, c_int::from(num), libc::GETNCNT) })
}

/// `semctl(id, num, GETZCNT)`: processes waiting for the value to be zero.
pub fn sem_getzcnt(id: i32, num: u16) -> io::Result<i32> {
    // SAFETY: GETZCNT takes no fourth argument.
    check(unsafe { libc::semctl(id, c_int::from(num), libc::GETZCNT) })
}

/// `semctl(id, num, GETPID)`: the pid of the last process that operated on
/// the semaphore.
pub fn sem_getpid(id: i32, num: u16) -> io::Result<i32> {
    // SAFETY: GETPID takes no fourth argument.
    check(unsafe { libc::semctl(id, c_int::from(num), libc::GETPID) })
}

/// What `semctl(IPC_STAT)` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemStat {
    /// Owner and permissions.
    pub perm: Perm,
    /// Semaphores in the set.
    pub nsems: u64,
}

/// `semctl(id, 0, IPC_STAT, buf)`.
pub fn sem_stat(id: i32) -> io::Result<SemStat> {
    // SAFETY: `semid_ds` is plain old data; all zeroes is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    let arg = Semun { buf: &mut ds };
    // SAFETY: IPC_STAT reads `arg.buf`, which points to a writable
    // `semid_ds` that lives across the call.
    check(unsafe { libc::semctl(id, 0, libc::IPC_STAT, arg) })?;
    Ok(SemStat {
        perm: perm(&ds.sem_perm),
        nsems: ds.sem_nsems,
    })
}

/// `semctl(id, 0, GETALL, array)`: every value; `n` must be the set's size.
pub fn sem_getall(id: i32, n: usize) -> io::Result<Vec<u16>> {
    let mut vals: Vec<c_ushort> = vec![0; n];
    let actual = sem_stat(id)?.nsems;
    if actual != n as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the set has {actual} semaphores, not {n}"),
        ));
    }
    let arg = Semun {
        array: vals.as_mut_ptr(),
    };
    // SAFETY: GETALL writes `nsems` shorts through `arg.array`, and `vals`
    // has exactly `nsems` elements (checked above; a set's size never
    // changes) and lives across the call.
    check(unsafe { libc::semctl(id, 0, libc::GETALL, arg) })?;
    Ok(vals)
}

/// `semctl(id, 0, SETALL, array)`: `vals.len()` must be the set's size.
pub fn sem_setall(id: i32, vals: &[u16]) -> io::Result<()> {
    let actual = sem_stat(id)?.nsems;
    if actual != vals.len() as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the set has {actual} semaphores, not {}", vals.len()),
        ));
    }
    let mut copy = vals.to_vec();
    let arg = Semun {
        array: copy.as_mut_ptr(),
    };
    // SAFETY: SETALL reads `nsems` shorts through `arg.array`; `copy` has
    // exactly that many (checked above) and lives across the call.
    check(unsafe { libc::semctl(id, 0, libc::SETALL, arg) })?;
    Ok(())
}

/// `semctl(id, 0, IPC_RMID)`: waiters get `EIDRM`.
pub fn sem_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no fourth argument.
    check(unsafe { libc::semctl(id, 0, libc::IPC_RMID) })?;
    Ok(())
}

// ----- shared memory ---------------------------------------------------------

/// `shmget(key, size, flags)`.
pub fn shmget(key: i32, size: usize, flags: i32) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::shmget(key, size, flags) })
}

/// `shmat(id, NULL, read_only ? SHM_RDONLY : 0)`: the attach address.
/// Detach it with [`shmdt`].
pub fn shmat(id: i32, read_only: bool) -> io::Result<*mut u8> {
    let flags = if read_only { SHM_RDONLY } else { 0 };
    // SAFETY: a null address lets the kernel choose a free range, which
    // cannot overlap any existing Rust object.
    let p = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    if p as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast::<u8>())
}

/// `shmdt(addr)`.
///
/// # Safety
///
/// `addr` must be an address returned by [`shmat`] that is still attached,
/// and nothing may use the memory after this call.
pub unsafe fn shmdt(addr: *mut u8) -> io::Result<()> {
    // SAFETY: the caller guarantees `addr` is a live attachment no one uses
    // any more.
    check(unsafe { libc::shmdt(addr.cast::<c_void>()) })?;
    Ok(())
}

/// A segment attached to this process (`shmat`), detached (`shmdt`) on
/// drop. Its bytes are reached through [`MappedBytes`] (`Deref`):
/// bounds-checked copies and [`SharedState`](multiproc_shm::SharedState)
/// views.
#[derive(Debug)]
pub struct Attachment {
    bytes: MappedBytes,
}

impl Attachment {
    /// Attach segment `id` (`shmat`), read-only (`SHM_RDONLY`) or readable
    /// and writable, at its whole size.
    pub fn new(id: i32, read_only: bool) -> io::Result<Attachment> {
        let ptr = NonNull::new(shmat(id, read_only)?)
            .ok_or_else(|| io::Error::other("shmat returned a null address"))?;
        // The size is read after attaching: the attachment keeps the segment,
        // and so its id, alive (a removed segment keeps its id until its
        // last detach), so this is the size of the memory just attached.
        let len = shm_stat(id).and_then(|st| {
            usize::try_from(st.size)
                .map_err(|_| io::Error::other("segment larger than the address space"))
        });
        let len = match len {
            Ok(len) => len,
            Err(e) => {
                // SAFETY: `ptr` was just attached and nothing has used it.
                let _ = unsafe { shmdt(ptr.as_ptr()) };
                return Err(e);
            }
        };
        // SAFETY: the range stays attached, readable and (unless
        // `read_only`) writable, until `drop` below, which cannot run while
        // the bytes are borrowed; nothing else has its address.
        let bytes = unsafe { MappedBytes::new(ptr, len, !read_only) };
        Ok(Attachment { bytes })
    }
}

impl Deref for Attachment {
    type Target = MappedBytes;
    #[inline]
    fn deref(&self) -> &MappedBytes {
        &self.bytes
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: the address came from `shmat` in `new` and is detached
        // only here; every borrow of its bytes ended before `drop`.
        let _ = unsafe { shmdt(self.bytes.as_ptr()) };
    }
}

/// What `shmctl(IPC_STAT)` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmStat {
    /// Owner and permissions.
    pub perm: Perm,
    /// Size in bytes.
    pub size: u64,
    /// Attachments, in every process.
    pub attached: u64,
    /// Pid of the creator.
    pub creator_pid: u32,
    /// Pid of the last `shmat`/`shmdt`.
    pub last_pid: u32,
    /// Whether `IPC_RMID` was done (the segment goes with its last detach).
    pub removed: bool,
}

/// `shmctl(id, IPC_STAT)`.
pub fn shm_stat(id: i32) -> io::Result<ShmStat> {
    // SAFETY: `shmid_ds` is plain old data; all zeroes is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable `shmid_ds` for the kernel to fill.
    check(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) })?;
    Ok(ShmStat {
        perm: perm(&ds.shm_perm),
        size: ds.shm_segsz as u64,
        attached: ds.shm_nattch,
        creator_pid: ds.shm_cpid.unsigned_abs(),
        last_pid: ds.shm_lpid.unsigned_abs(),
        // SHM_DEST (0o1000) is kept in the mode word.
        removed: u32::from(ds.shm_perm.mode) & 0o1000 != 0,
    })
}

/// `shmctl(id, IPC_RMID)`: the segment goes when the last process detaches.
pub fn shm_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID does not read the buffer argument; null is allowed.
    check(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
    Ok(())
}

// ----- limits and error numbers ----------------------------------------------

/// The largest message `msgsnd` accepts (`/proc/sys/kernel/msgmax`; 8192,
/// the kernel's default, when it cannot be read).
pub fn msgmax() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192)
}

/// The error numbers the System V calls report, for callers that classify
/// them (compare with [`io::Error::raw_os_error`]).
pub mod errno {
    /// The object was removed while the caller waited.
    pub const EIDRM: i32 = libc::EIDRM;
    /// Invalid id (for example removed), or an invalid argument.
    pub const EINVAL: i32 = libc::EINVAL;
    /// `IPC_NOWAIT` and the call would block; or a semaphore timeout.
    pub const EAGAIN: i32 = libc::EAGAIN;
    /// `msgrcv` with `IPC_NOWAIT`: no message of the requested type.
    pub const ENOMSG: i32 = libc::ENOMSG;
    /// `msgrcv`: the message is longer than the buffer (no `MSG_NOERROR`).
    pub const E2BIG: i32 = libc::E2BIG;
    /// Interrupted by a signal.
    pub const EINTR: i32 = libc::EINTR;
    /// No object has that key (without `IPC_CREAT`).
    pub const ENOENT: i32 = libc::ENOENT;
    /// An object has that key (with `IPC_CREAT | IPC_EXCL`).
    pub const EEXIST: i32 = libc::EEXIST;
    /// A semaphore index out of range.
    pub const EFBIG: i32 = libc::EFBIG;
    /// A semaphore value out of range.
    pub const ERANGE: i32 = libc::ERANGE;
}
