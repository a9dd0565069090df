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
//! This is only the record store: what each kind of object is, whether one
//! exists and how it is removed belong to the kinds ([`crate::names`]).
//! `multiproc ls` lists these records with the owner's liveness, and
//! `multiproc clean` removes the objects (and their records) whose owner is
//! dead. Recording is best effort for the creator: a registry that cannot be
//! written never stops an object from being created.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use multiproc_sys::process::{Liveness, liveness, pid, start_time};

use super::kind::Kind;

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
