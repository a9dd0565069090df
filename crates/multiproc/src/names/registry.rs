//! Owner records of the named kernel objects multiproc creates outside
//! `/dev/shm`: FIFOs, POSIX message queues, System V objects and Unix socket
//! files.
//!
//! Named shared-memory segments carry their owner record inside the segment
//! (see [`crate::shared::segment`]); the objects here cannot, so each one gets a small
//! file in a private per-user directory instead:
//!
//! - `$MULTIPROC_REGISTRY_DIR` when set (tests use it to stay apart);
//! - else `$XDG_RUNTIME_DIR/multiproc` when `XDG_RUNTIME_DIR` is set;
//! - else `/tmp/multiproc-<euid>`.
//!
//! The directory is created with mode 0700 and refused (`PermissionDenied`)
//! when it is a symlink, belongs to another user or is open to group or
//! others. A record file is named `<kind>-<hex of the object's name>` and
//! holds `"<owner pid> <owner start time>\n"`; it is written to a temporary
//! name and renamed into place, so a reader never sees half a record.
//!
//! `multiproc ls` lists these records with the owner's liveness, and
//! `multiproc clean` removes the objects (and their records) whose owner is
//! dead. Recording is best effort for the creator: a registry that cannot be
//! written never stops an object from being created.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use multiproc_sys::process::{Liveness, liveness, pid, start_time};

/// The kinds of named objects recorded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// A named pipe; the name is its path.
    Fifo,
    /// A POSIX message queue; the name is its `/name`.
    PosixMq,
    /// A System V message queue; the name is its id (decimal).
    SysvMsg,
    /// A System V semaphore set; the name is its id (decimal).
    SysvSem,
    /// A System V shared-memory segment; the name is its id (decimal).
    SysvShm,
    /// A listening Unix socket file; the name is its path.
    Socket,
}

impl Kind {
    /// Every kind, in listing order.
    pub const ALL: [Kind; 6] = [
        Kind::Fifo,
        Kind::PosixMq,
        Kind::SysvMsg,
        Kind::SysvSem,
        Kind::SysvShm,
        Kind::Socket,
    ];

    /// The short name used in record file names and by `multiproc ls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fifo => "fifo",
            Kind::PosixMq => "posix-mq",
            Kind::SysvMsg => "sysv-msg",
            Kind::SysvSem => "sysv-sem",
            Kind::SysvShm => "sysv-shm",
            Kind::Socket => "socket",
        }
    }

    /// The kind named by [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What it is.
    pub kind: Kind,
    /// Its name: a path, a `/name` or a System V id, by kind.
    pub name: String,
    /// The pid of the process that created it.
    pub owner_pid: u32,
    /// Whether that process is still alive (a later process that reused the
    /// pid does not count).
    pub owner_alive: bool,
}

/// A registry directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    dir: PathBuf,
}

/// The default registry directory (see the module docs), created and
/// checked.
pub fn dir() -> io::Result<PathBuf> {
    Registry::open_default().map(|r| r.dir)
}

impl Registry {
    /// The default registry: `$MULTIPROC_REGISTRY_DIR`, else
    /// `$XDG_RUNTIME_DIR/multiproc`, else `/tmp/multiproc-<euid>`.
    pub fn open_default() -> io::Result<Registry> {
        let path = if let Some(d) = std::env::var_os("MULTIPROC_REGISTRY_DIR") {
            PathBuf::from(d)
        } else if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
            Path::new(&d).join("multiproc")
        } else {
            PathBuf::from(format!("/tmp/multiproc-{}", multiproc_sys::shm::euid()))
        };
        Registry::open(path)
    }

    /// The registry in `path`, created (mode 0700) if missing and checked: a
    /// directory, not a symlink, owned by this user, no group or other
    /// access (else `PermissionDenied`).
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Registry> {
        let path = path.into();
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let meta = fs::symlink_metadata(&path)?;
        let euid = multiproc_sys::shm::euid();
        if !meta.file_type().is_dir() || meta.uid() != euid || meta.mode() & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "registry directory {} must be a directory owned by uid {euid} with mode 0700 \
                     (found uid {}, mode {:o}{})",
                    path.display(),
                    meta.uid(),
                    meta.mode() & 0o7777,
                    if meta.file_type().is_symlink() {
                        ", a symlink"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(Registry { dir: path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

fn file_name(kind: Kind, name: &str) -> String {
    let mut s = String::with_capacity(kind.as_str().len() + 1 + 2 * name.len());
    s.push_str(kind.as_str());
    s.push('-');
    for b in name.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn parse_file_name(file: &str) -> Option<(Kind, String)> {
    // Kind names contain '-', so try each kind's prefix.
    Kind::ALL.into_iter().find_map(|k| {
        let hex = file.strip_prefix(k.as_str())?.strip_prefix('-')?;
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        Some((k, String::from_utf8(bytes?).ok()?))
    })
}

/// Record in the default registry that this process created the object
/// `name` of `kind`.
pub fn record(kind: Kind, name: &str) -> io::Result<()> {
    Registry::open_default()?.record(kind, name)
}

/// Forget the record of `name` in the default registry (the object was
/// removed). A missing record is not an error.
pub fn forget(kind: Kind, name: &str) -> io::Result<()> {
    Registry::open_default()?.forget(kind, name)
}

/// Every record of the default registry, sorted by kind and name, with the
/// owner's liveness.
pub fn list() -> io::Result<Vec<Record>> {
    Registry::open_default()?.list()
}

impl Registry {
    /// Record that this process created the object `name` of `kind`.
    pub fn record(&self, kind: Kind, name: &str) -> io::Result<()> {
        let dir = &self.dir;
        let me = pid();
        let start = start_time(me).unwrap_or(0) & 0xffff_ffff;
        let final_path = dir.join(file_name(kind, name));
        let tmp = dir.join(format!(".tmp-{me}-{}", file_name(kind, name)));
        {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            io::Write::write_all(&mut f, format!("{me} {start}\n").as_bytes())?;
        }
        fs::rename(&tmp, &final_path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Forget the record of `name` (the object was removed). A missing record is
    /// not an error.
    pub fn forget(&self, kind: Kind, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(file_name(kind, name))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every record, sorted by kind and name, with the owner's liveness.
    /// Unreadable or malformed record files are skipped.
    pub fn list(&self) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let file = entry.file_name();
            let Some((kind, name)) = file.to_str().and_then(parse_file_name) else {
                continue;
            };
            let Ok(text) = fs::read_to_string(entry.path()) else {
                continue;
            };
            let mut words = text.split_whitespace().map(str::parse::<u64>);
            let (Some(Ok(owner)), Some(Ok(start))) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(owner_pid) = u32::try_from(owner) else {
                continue;
            };
            let start = u32::try_from(start & 0xffff_ffff).unwrap_or(0);
            let owner_alive = owner_pid != 0
                && liveness(owner_pid, Some(start).filter(|&s| s != 0)) == Liveness::Alive;
            out.push(Record {
                kind,
                name,
                owner_pid,
                owner_alive,
            });
        }
        out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        Ok(out)
    }
}

/// Whether the recorded object still exists.
pub fn exists(kind: Kind, name: &str) -> bool {
    match kind {
        Kind::Fifo | Kind::Socket => fs::symlink_metadata(name).is_ok(),
        Kind::SysvMsg | Kind::SysvSem | Kind::SysvShm => crate::os::sysv::exists(kind, name),
        Kind::PosixMq => crate::os::posix::exists(name),
    }
}

/// What a listener writes into its socket's `<path>.lock` file when it
/// created the socket's private directory itself.
pub const CREATED_DIR_NOTE: &[u8] = b"created-dir\n";

/// A listening socket's leftovers beside the socket file: its `.lock` file,
/// and the private directory when the listener created it (removed only if
/// empty, never through a symlink).
fn remove_socket_leftovers(path: &str) {
    let lock = format!("{path}.lock");
    let Ok(meta) = fs::symlink_metadata(&lock) else {
        return;
    };
    if !meta.file_type().is_file() || meta.len() > 64 {
        return;
    }
    let created_dir = fs::read(&lock).is_ok_and(|note| note == CREATED_DIR_NOTE);
    let _ = fs::remove_file(&lock);
    if created_dir && let Some(dir) = std::path::Path::new(path).parent() {
        let _ = fs::remove_dir(dir);
    }
}

/// Remove the recorded object and its record. An object that is already
/// gone only loses its record. A socket takes its `.lock` file and the
/// private directory its listener created with it.
pub fn remove_object(kind: Kind, name: &str) -> io::Result<()> {
    let removed = match kind {
        Kind::Socket => {
            let r = fs::remove_file(name);
            if r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
            {
                remove_socket_leftovers(name);
            }
            r
        }
        Kind::Fifo => fs::remove_file(name),
        Kind::SysvMsg | Kind::SysvSem | Kind::SysvShm => crate::os::sysv::remove_by_id(kind, name),
        Kind::PosixMq => crate::os::posix::unlink_raw(name),
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => forget(kind, name),
    }
}

/// One named object multiproc created, whatever its kind: a named
/// shared-memory segment (kind `"shm"`, owner record in its header) or a
/// recorded object of this registry. What `multiproc ls` lists and
/// `multiproc clean` removes (the CLI and the Python package's command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedObject {
    /// `"shm"`, or a [`Kind`]'s name.
    pub kind: &'static str,
    /// The object's name (a segment's name without its prefix, a path, an
    /// id).
    pub name: String,
    /// Size in bytes, where the kind has one.
    pub size: Option<u64>,
    /// Pid of the creating process (0 when unknown).
    pub owner_pid: u32,
    /// Whether the owner is still alive.
    pub owner_alive: bool,
    /// The object exists and is what the record says.
    pub valid: bool,
    registry_kind: Option<Kind>,
}

impl NamedObject {
    /// Remove the object (and its record).
    pub fn remove(&self) -> io::Result<()> {
        match self.registry_kind {
            None => crate::shared::segment::unlink_named(&self.name).map_err(|e| match e {
                crate::shared::segment::SegmentError::Io(e) => e,
                other => io::Error::other(other.to_string()),
            }),
            Some(kind) => remove_object(kind, &self.name),
        }
    }
}

/// Every named object multiproc created, or those of one `kind` (`"shm"` or
/// a [`Kind`]'s name; an unknown kind is `InvalidInput`).
pub fn named_objects(kind: Option<&str>) -> io::Result<Vec<NamedObject>> {
    if let Some(k) = kind
        && k != "shm"
        && Kind::parse(k).is_none()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unknown kind {k:?}: one of shm, {}",
                Kind::ALL.map(Kind::as_str).join(", ")
            ),
        ));
    }
    let mut out: Vec<NamedObject> = crate::shared::segment::list_named()?
        .into_iter()
        .map(|o| NamedObject {
            kind: "shm",
            name: o.name,
            size: Some(o.size),
            owner_pid: o.owner_pid,
            owner_alive: o.owner_alive,
            valid: o.valid,
            registry_kind: None,
        })
        .collect();
    out.extend(list()?.into_iter().map(|r| NamedObject {
        kind: r.kind.as_str(),
        valid: exists(r.kind, &r.name),
        name: r.name,
        size: None,
        owner_pid: r.owner_pid,
        owner_alive: r.owner_alive,
        registry_kind: Some(r.kind),
    }));
    out.retain(|r| kind.is_none_or(|k| k == r.kind));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_every_kind_and_odd_names() {
        for kind in Kind::ALL {
            for name in ["/tmp/a b/fifo", "/q", "12345", "ü-\n"] {
                let f = file_name(kind, name);
                assert!(!f.contains('/'), "{f}");
                assert_eq!(parse_file_name(&f), Some((kind, name.to_owned())));
            }
        }
        assert_eq!(parse_file_name("fifo-0"), None);
        assert_eq!(parse_file_name("nope-00"), None);
        assert_eq!(parse_file_name(".tmp-1-fifo-00"), None);
    }
}
