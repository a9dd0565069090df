//! Named pipes: seed 004 §2's `mkfifo`, for processes that share only a
//! path.
//!
//! A [`Fifo`] names a FIFO in the file system. [`Fifo::create`] makes a new
//! one (mode 0600, refused if anything is at the path), [`Fifo::open`] takes
//! an existing one, and [`Fifo::builder`] sets the mode, create-or-open, and
//! the registry the new FIFO is recorded in. Either side is then opened as a
//! [`FifoReader`] or [`FifoWriter`] (raw bytes through [`std::io::Read`] and
//! [`std::io::Write`]), or turned into a framed [`Connection`] for serde
//! messages.
//!
//! ```no_run
//! use std::io::Read as _;
//! use multiproc::Fifo;
//!
//! let fifo = Fifo::create("/tmp/fifo_pipe").unwrap();
//! let mut reader = fifo.open_read().unwrap(); // waits for a writer
//! let mut text = String::new();
//! reader.read_to_string(&mut text).unwrap(); // until the last writer closes
//! fifo.unlink().unwrap();
//! ```
//!
//! # Opening
//!
//! As with `open(2)`, opening one side waits for the other:
//!
//! | call | reader | writer |
//! |---|---|---|
//! | `open_*` | waits for a writer | waits for a reader |
//! | `try_open_*` | never waits | [`TryError::WouldBlock`] without a reader |
//! | `open_*_timeout` | waits until a writer has written or come and gone | waits for a reader |
//!
//! A reader opened by [`Fifo::try_open_read`] before any writer came sees
//! end of file at once. [`Fifo::open_read_timeout`] opens without blocking
//! and then waits (`poll`) until data arrives or a writer has closed, so a
//! writer that connects but stays silent is not noticed before the deadline.
//! [`Fifo::open_write_timeout`] retries a non-blocking open (which fails
//! while there is no reader) with a short back-off until the monotonic
//! deadline.
//!
//! Every open uses `O_NOFOLLOW` and checks with `fstat` that what it opened
//! is a FIFO: a path replaced by a symlink or a regular file is refused
//! ([`FifoError::Symlink`], [`FifoError::NotAFifo`]).
//!
//! # End of file
//!
//! The reader sees end of file when the last writer, in any process, has
//! closed its end (while no writer has connected, reads return end of file
//! too).
//!
//! # Registry
//!
//! Each FIFO the library creates is recorded (best effort) in the owner
//! registry under its canonical absolute path ([`crate::names::registry`]), so
//! `multiproc ls` lists it and `multiproc clean` removes it once its creator
//! is dead; [`Fifo::unlink`] removes the record with the FIFO.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use multiproc_sys::fifo::PathKind;
use multiproc_sys::rustix::io::Errno;

use crate::connection::Connection;
use crate::deadline::Backoff;
use crate::error::{TimeoutError, TryError, Waited, waited};
use crate::names::kind::Kind;
use crate::names::object::NamedKind;
use crate::names::registry::Registry;

/// Why a FIFO operation failed. The `try_` forms add "would block"
/// ([`TryError::WouldBlock`]: no reader for `try_open_write`, no data for
/// `try_read`), the `_timeout`/`_deadline` forms "the time ran out"
/// ([`TimeoutError::Timeout`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FifoError {
    /// [`Fifo::create`]: something already exists at the path.
    #[error("{0} already exists")]
    AlreadyExists(PathBuf),
    /// Nothing exists at the path.
    #[error("{0} does not exist")]
    NotFound(PathBuf),
    /// The path names something that is not a FIFO.
    #[error("{0} is not a FIFO")]
    NotAFifo(PathBuf),
    /// The path is a symbolic link (refused even when it points to a FIFO).
    #[error("{0} is a symbolic link")]
    Symlink(PathBuf),
    /// The OS reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A named pipe in the file system (a path checked to be a FIFO).
///
/// Dropping it leaves the FIFO in place; [`Fifo::unlink`] removes it.
#[derive(Debug, Clone)]
pub struct Fifo {
    path: PathBuf,
    registry: Option<Registry>,
}

/// Options for creating or opening a [`Fifo`]; from [`Fifo::builder`].
#[derive(Debug, Clone)]
pub struct FifoBuilder {
    mode: u32,
    registry: Option<Registry>,
}

impl Default for FifoBuilder {
    fn default() -> Self {
        FifoBuilder {
            mode: 0o600,
            registry: None,
        }
    }
}

impl FifoBuilder {
    /// The permission bits of a new FIFO (default `0o600`); set exactly,
    /// whatever the process's umask. Bits above `0o777` are ignored.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Record the new FIFO in `registry` instead of the default one.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Create a new FIFO at `path`; [`FifoError::AlreadyExists`] if anything
    /// is there.
    pub fn create(self, path: impl AsRef<Path>) -> Result<Fifo, FifoError> {
        let path = canonical(path.as_ref())?;
        match multiproc_sys::fifo::create(&path, self.mode) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(FifoError::AlreadyExists(path));
            }
            Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => {
                return Err(FifoError::Symlink(path));
            }
            Err(e) => return Err(e.into()),
        }
        let fifo = Fifo {
            path,
            registry: self.registry,
        };
        fifo.record();
        Ok(fifo)
    }

    /// Create a FIFO at `path`, or take the FIFO already there (checked to
    /// be a FIFO and not a symlink; its mode is left as it is).
    pub fn create_or_open(self, path: impl AsRef<Path>) -> Result<Fifo, FifoError> {
        let registry = self.registry.clone();
        match self.create(path.as_ref()) {
            Err(FifoError::AlreadyExists(p)) => Fifo::open_with(&p, registry),
            r => r,
        }
    }

    /// Take the existing FIFO at `path` (see [`Fifo::open`]).
    pub fn open(self, path: impl AsRef<Path>) -> Result<Fifo, FifoError> {
        Fifo::open_with(path.as_ref(), self.registry)
    }
}

fn canonical(path: &Path) -> Result<PathBuf, FifoError> {
    multiproc_sys::fifo::canonical(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            FifoError::NotFound(path.to_owned())
        } else {
            FifoError::Io(e)
        }
    })
}

/// Refuse anything at `path` but a FIFO, without following a symlink.
fn check_path(path: &Path) -> Result<(), FifoError> {
    match multiproc_sys::fifo::path_kind(path)? {
        PathKind::Fifo => Ok(()),
        PathKind::Missing => Err(FifoError::NotFound(path.to_owned())),
        PathKind::Symlink => Err(FifoError::Symlink(path.to_owned())),
        _ => Err(FifoError::NotAFifo(path.to_owned())),
    }
}

impl Fifo {
    /// Options: mode, registry, create or open.
    pub fn builder() -> FifoBuilder {
        FifoBuilder::default()
    }

    /// Create a new FIFO at `path` with mode 0600 (`mkfifo`);
    /// [`FifoError::AlreadyExists`] if anything is there.
    pub fn create(path: impl AsRef<Path>) -> Result<Fifo, FifoError> {
        Fifo::builder().create(path)
    }

    /// Take the existing FIFO at `path`: [`FifoError::NotFound`],
    /// [`FifoError::Symlink`] or [`FifoError::NotAFifo`] otherwise.
    pub fn open(path: impl AsRef<Path>) -> Result<Fifo, FifoError> {
        Fifo::open_with(path.as_ref(), None)
    }

    fn open_with(path: &Path, registry: Option<Registry>) -> Result<Fifo, FifoError> {
        check_path(path)?;
        let path = canonical(path)?;
        check_path(&path)?;
        Ok(Fifo { path, registry })
    }

    /// Its canonical absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn registry(&self) -> io::Result<Registry> {
        match &self.registry {
            Some(r) => Ok(r.clone()),
            None => Registry::open_default(),
        }
    }

    fn record(&self) {
        if let Some(name) = self.path.to_str() {
            let _ = self.registry().and_then(|r| r.record(Kind::Fifo, name));
        }
    }

    /// Remove the FIFO from the file system (and its registry record).
    /// Ends already open keep working; the name is gone.
    pub fn unlink(self) -> Result<(), FifoError> {
        check_path(&self.path)?;
        multiproc_sys::fifo::unlink(&self.path)?;
        if let Some(name) = self.path.to_str() {
            let _ = self.registry().and_then(|r| r.forget(Kind::Fifo, name));
        }
        Ok(())
    }

    /// Open the path and check that it is still a FIFO. (`ENXIO`, which
    /// only a non-blocking open for writing meets, is an `Io` error here:
    /// [`try_open_write`](Self::try_open_write) reads it as "no reader".)
    fn open_fd(&self, write: bool, nonblocking: bool) -> Result<OwnedFd, FifoError> {
        let fd = match multiproc_sys::fifo::open(&self.path, write, nonblocking) {
            Ok(fd) => fd,
            Err(e) => {
                return Err(match Errno::from_io_error(&e) {
                    Some(Errno::LOOP) => FifoError::Symlink(self.path.clone()),
                    Some(Errno::NOENT) => FifoError::NotFound(self.path.clone()),
                    _ => FifoError::Io(e),
                });
            }
        };
        if multiproc_sys::fd::kind(&fd)? != multiproc_sys::fd::FdKind::Fifo {
            return Err(FifoError::NotAFifo(self.path.clone()));
        }
        Ok(fd)
    }

    /// Open for reading, waiting until a writer opens it.
    pub fn open_read(&self) -> Result<FifoReader, FifoError> {
        let fd = self.open_fd(false, false)?;
        multiproc_sys::fd::set_nonblocking(&fd, true)?;
        Ok(FifoReader { fd })
    }

    /// Open for reading without waiting (it never has to). Until a writer
    /// connects, reads see end of file.
    pub fn try_open_read(&self) -> Result<FifoReader, FifoError> {
        let fd = self.open_fd(false, true)?;
        Ok(FifoReader { fd })
    }

    /// Open for reading and wait at most `timeout` until a writer has
    /// written something or has come and gone; [`TimeoutError::Timeout`]
    /// otherwise.
    pub fn open_read_timeout(
        &self,
        timeout: Duration,
    ) -> Result<FifoReader, TimeoutError<FifoError>> {
        waited(self.open_read_until(crate::deadline::after(timeout))).map_err(Waited::into_timeout)
    }

    /// [`open_read_timeout`](Self::open_read_timeout), until `deadline`.
    pub fn open_read_deadline(
        &self,
        deadline: Instant,
    ) -> Result<FifoReader, TimeoutError<FifoError>> {
        waited(self.open_read_until(Some(deadline))).map_err(Waited::into_timeout)
    }

    fn open_read_until(&self, deadline: Option<Instant>) -> Result<Option<FifoReader>, FifoError> {
        let fd = self.open_fd(false, true)?;
        // A reader that has never seen a writer gets no POLLHUP (Linux sets
        // it only once a writer has come and gone since this open), so the
        // wait ends on data, on a closed writer, or at the deadline.
        let ready = multiproc_sys::poll::wait_readable(fd.as_fd(), deadline)?;
        Ok(ready.readable.then_some(FifoReader { fd }))
    }

    /// Open for writing, waiting until a reader opens it.
    pub fn open_write(&self) -> Result<FifoWriter, FifoError> {
        let fd = self.open_fd(true, false)?;
        Ok(FifoWriter { fd })
    }

    /// Open for writing without waiting: [`TryError::WouldBlock`] when no
    /// process has it open for reading.
    pub fn try_open_write(&self) -> Result<FifoWriter, TryError<FifoError>> {
        waited(self.try_open_write_now()).map_err(Waited::into_try)
    }

    fn try_open_write_now(&self) -> Result<Option<FifoWriter>, FifoError> {
        let fd = match self.open_fd(true, true) {
            Ok(fd) => fd,
            Err(FifoError::Io(e)) if Errno::from_io_error(&e) == Some(Errno::NXIO) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        multiproc_sys::fd::set_nonblocking(&fd, false)?;
        Ok(Some(FifoWriter { fd }))
    }

    /// Open for writing, waiting at most `timeout` for a reader;
    /// [`TimeoutError::Timeout`] otherwise.
    pub fn open_write_timeout(
        &self,
        timeout: Duration,
    ) -> Result<FifoWriter, TimeoutError<FifoError>> {
        waited(self.open_write_until(crate::deadline::after(timeout))).map_err(Waited::into_timeout)
    }

    /// Open for writing, waiting until `deadline` for a reader;
    /// [`TimeoutError::Timeout`] otherwise.
    pub fn open_write_deadline(
        &self,
        deadline: Instant,
    ) -> Result<FifoWriter, TimeoutError<FifoError>> {
        waited(self.open_write_until(Some(deadline))).map_err(Waited::into_timeout)
    }

    fn open_write_until(&self, deadline: Option<Instant>) -> Result<Option<FifoWriter>, FifoError> {
        let mut backoff = Backoff::new(Duration::from_micros(100), Duration::from_millis(20));
        loop {
            if let Some(w) = self.try_open_write_now()? {
                return Ok(Some(w));
            }
            if !backoff.sleep(deadline) {
                return Ok(None);
            }
        }
    }
}

/// The read end of a FIFO: raw bytes through [`std::io::Read`], or a framed
/// [`Connection`] with [`FifoReader::into_connection`].
#[derive(Debug)]
pub struct FifoReader {
    // Non-blocking: blocking reads wait in `poll`, so a timeout read never
    // blocks in `read` after another reader took the data.
    fd: OwnedFd,
}

impl FifoReader {
    /// Read what is there, waiting until `deadline` (`None`: forever) for
    /// data or end of file.
    fn read_until(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, Waited<FifoError>> {
        loop {
            match multiproc_sys::io::read(self.fd.as_fd(), buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(FifoError::from(e).into()),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Waited::GaveUp);
            }
            let ready = multiproc_sys::poll::wait_readable(self.fd.as_fd(), deadline)
                .map_err(FifoError::from)?;
            if !ready.readable && deadline.is_some() {
                return Err(Waited::GaveUp);
            }
        }
    }

    /// Read into `buf`, waiting at most `timeout` for data: `Ok(0)` is end of
    /// file, [`TimeoutError::Timeout`] when nothing came.
    pub fn read_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, TimeoutError<FifoError>> {
        self.read_until(buf, crate::deadline::after(timeout))
            .map_err(Waited::into_timeout)
    }

    /// Read into `buf`, waiting until `deadline` for data: `Ok(0)` is end of
    /// file, [`TimeoutError::Timeout`] when nothing came.
    pub fn read_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, TimeoutError<FifoError>> {
        self.read_until(buf, Some(deadline))
            .map_err(Waited::into_timeout)
    }

    /// Read what is there now: `Ok(0)` is end of file,
    /// [`TryError::WouldBlock`] when a writer is connected but nothing is
    /// buffered.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, TryError<FifoError>> {
        self.read_until(buf, Some(Instant::now()))
            .map_err(Waited::into_try)
    }

    /// A framed connection receiving serde values (or byte messages) from a
    /// writer that uses [`FifoWriter::into_connection`].
    pub fn into_connection<T>(self) -> io::Result<Connection<T>> {
        multiproc_sys::fd::set_nonblocking(&self.fd, false)?;
        Connection::from_fd(self.fd, true, false)
    }

    /// The descriptor (non-blocking).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl io::Read for FifoReader {
    /// Blocks until data or end of file (`Ok(0)`: the last writer closed).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.read_until(buf, None).map_err(Waited::into_blocking) {
            Ok(n) => Ok(n),
            Err(FifoError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl AsFd for FifoReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The write end of a FIFO: raw bytes through [`std::io::Write`] (a write
/// when every reader has closed fails with `BrokenPipe`), or a framed
/// [`Connection`] with [`FifoWriter::into_connection`].
#[derive(Debug)]
pub struct FifoWriter {
    fd: OwnedFd,
}

impl FifoWriter {
    /// A framed connection sending serde values (or byte messages) to a
    /// reader that uses [`FifoReader::into_connection`].
    pub fn into_connection<T>(self) -> io::Result<Connection<T>> {
        Connection::from_fd(self.fd, false, true)
    }

    /// The descriptor (blocking).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl io::Write for FifoWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        multiproc_sys::io::write(self.fd.as_fd(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for FifoWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
/// Named pipes, for [`crate::names`].
pub(crate) struct Fifos;

/// The table entry of FIFOs.
pub(crate) static FIFOS: Fifos = Fifos;

impl NamedKind for Fifos {
    fn kind(&self) -> Kind {
        Kind::Fifo
    }
    fn exists(&self, name: &str) -> bool {
        std::fs::symlink_metadata(name).is_ok()
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(name)
    }
}
