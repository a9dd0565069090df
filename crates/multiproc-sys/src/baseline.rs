//! The OS primitives multiproc is measured against (`multiproc bench`): a
//! POSIX named semaphore (what Python's `multiprocessing.Lock` is built on)
//! and a robust process-shared pthread mutex. libc, since rustix wraps
//! neither.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;

/// A POSIX named semaphore (`sem_open`), unlinked on drop by its creator.
#[derive(Debug)]
pub struct PosixSemaphore {
    sem: *mut libc::sem_t,
    name: CString,
}

// SAFETY: a sem_t from sem_open is process-shared by definition and its
// functions are thread-safe.
unsafe impl Send for PosixSemaphore {}
// SAFETY: as above.
unsafe impl Sync for PosixSemaphore {}

impl PosixSemaphore {
    /// `sem_open(name, O_CREAT | O_EXCL, 0600, value)`.
    pub fn create(name: &str, value: u32) -> io::Result<Self> {
        let name =
            CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `name` is a valid C string; the variadic arguments are the
        // mode and the initial value that O_CREAT requires.
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                value as libc::c_uint,
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(PosixSemaphore { sem, name })
    }

    /// `sem_wait`.
    pub fn wait(&self) -> io::Result<()> {
        loop {
            // SAFETY: `self.sem` is an open semaphore until drop.
            if unsafe { libc::sem_wait(self.sem) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// `sem_post`.
    pub fn post(&self) -> io::Result<()> {
        // SAFETY: `self.sem` is an open semaphore until drop.
        if unsafe { libc::sem_post(self.sem) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for PosixSemaphore {
    fn drop(&mut self) {
        // SAFETY: the semaphore and name are the ones opened in `create`.
        unsafe {
            libc::sem_close(self.sem);
            libc::sem_unlink(self.name.as_ptr());
        }
    }
}

/// A robust, process-shared pthread mutex living at a caller-supplied
/// address (inside a shared mapping).
#[derive(Debug)]
pub struct RobustMutex {
    m: *mut libc::pthread_mutex_t,
}

// SAFETY: the mutex is process-shared and its functions are thread-safe.
unsafe impl Send for RobustMutex {}
// SAFETY: as above.
unsafe impl Sync for RobustMutex {}

impl RobustMutex {
    /// The bytes a mutex needs.
    pub const SIZE: usize = std::mem::size_of::<libc::pthread_mutex_t>();

    /// Initialize a robust process-shared mutex at `at`.
    ///
    /// # Safety
    ///
    /// - `at` is valid for writes of [`Self::SIZE`] bytes, suitably aligned,
    ///   and stays mapped while any `RobustMutex` uses it.
    /// - No other process uses the memory until this returns.
    pub unsafe fn init(at: *mut u8) -> io::Result<Self> {
        let m = at.cast::<libc::pthread_mutex_t>();
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is initialized by pthread_mutexattr_init before use;
        // `m` is valid per the caller's contract.
        unsafe {
            libc::pthread_mutexattr_init(attr.as_mut_ptr());
            libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST);
            let r = libc::pthread_mutex_init(m, attr.as_ptr());
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
        }
        Ok(RobustMutex { m })
    }

    /// Use a mutex another process initialized at `at`.
    ///
    /// # Safety
    ///
    /// `at` holds a mutex initialized by [`RobustMutex::init`] that stays
    /// mapped while this value is used.
    pub unsafe fn attach(at: *mut u8) -> Self {
        RobustMutex { m: at.cast() }
    }

    /// `pthread_mutex_lock`, making the state consistent after `EOWNERDEAD`.
    pub fn lock(&self) -> io::Result<()> {
        // SAFETY: `self.m` is an initialized mutex (constructor contracts).
        let r = unsafe { libc::pthread_mutex_lock(self.m) };
        match r {
            0 => Ok(()),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex after EOWNERDEAD.
                unsafe { libc::pthread_mutex_consistent(self.m) };
                Ok(())
            }
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// `pthread_mutex_unlock`.
    pub fn unlock(&self) -> io::Result<()> {
        // SAFETY: `self.m` is an initialized mutex held by this thread.
        let r = unsafe { libc::pthread_mutex_unlock(self.m) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(r))
        }
    }
}
