//! `multiproc ls` and `multiproc clean`: the named objects multiproc
//! created, who owns them, and removal of those whose owner is dead.
//!
//! Two sources: named shared-memory segments in `/dev/shm` (their owner
//! record is inside the segment) and the registry of the other named kernel
//! objects (FIFOs, message queues, System V objects, socket files), both
//! read by [`multiproc::names::list`].

use std::error::Error;

use multiproc::names::{self, Kind, NamedObject};

fn rows(kind: Option<&str>) -> Result<Vec<NamedObject>, Box<dyn Error>> {
    let kind = kind.map(Kind::parse).transpose()?;
    Ok(names::list(kind)?)
}

/// List named objects.
pub(crate) fn ls(json: bool, kind: Option<&str>) -> Result<(), Box<dyn Error>> {
    let objs = rows(kind)?;
    if json {
        let rows: Vec<serde_json::Value> = objs
            .iter()
            .map(|o| {
                serde_json::json!({
                    "kind": o.kind.as_str(),
                    "name": o.name,
                    "size": o.size,
                    "owner_pid": o.owner_pid,
                    "owner_alive": o.owner_alive,
                    "valid": o.valid,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "objects": rows }));
        return Ok(());
    }
    println!(
        "{:<9} {:<40} {:>12} {:>10} {:>8}",
        "kind", "name", "size", "owner", "alive"
    );
    for o in &objs {
        println!(
            "{:<9} {:<40} {:>12} {:>10} {:>8}",
            o.kind,
            o.name,
            o.size.map_or_else(|| "-".to_string(), |s| s.to_string()),
            if o.owner_pid == 0 {
                "?".to_string()
            } else {
                o.owner_pid.to_string()
            },
            if !o.valid {
                "invalid"
            } else if o.owner_alive {
                "yes"
            } else {
                "no"
            }
        );
    }
    if objs.is_empty() {
        println!("(no named multiproc objects)");
    }
    Ok(())
}

/// Remove named objects whose owner is dead (or, with `all`, every one).
pub(crate) fn clean(all: bool, dry_run: bool, kind: Option<&str>) -> Result<(), Box<dyn Error>> {
    let mut removed = 0;
    for o in rows(kind)? {
        if o.owner_alive && !all {
            continue;
        }
        if dry_run {
            println!(
                "would remove {} {} (owner {} dead)",
                o.kind, o.name, o.owner_pid
            );
            continue;
        }
        match names::remove(o.kind, &o.name) {
            Ok(()) => {
                println!("removed {} (owner {} dead)", o.name, o.owner_pid);
                removed += 1;
            }
            Err(e) => eprintln!("could not remove {} {}: {e}", o.kind, o.name),
        }
    }
    if !dry_run {
        println!("{removed} removed");
    }
    Ok(())
}
