//! `multiproc ls` and `multiproc clean`: the named objects multiproc
//! created, who owns them, and removal of those whose owner is dead.
//!
//! Two sources: named shared-memory segments in `/dev/shm` (their owner
//! record is inside the segment) and the registry of the other named kernel
//! objects (FIFOs, message queues, System V objects, socket files;
//! [`multiproc::registry`]).

use std::error::Error;

use multiproc::registry::{self, Kind};

/// One named object, whatever its kind.
struct Row {
    /// `shm` or a registry kind.
    kind: &'static str,
    name: String,
    /// Size in bytes, where the kind has one.
    size: Option<u64>,
    owner_pid: u32,
    owner_alive: bool,
    /// The object exists and is what the record says.
    valid: bool,
    /// For registry rows, the kind to remove it by.
    registry_kind: Option<Kind>,
}

fn rows(kind: Option<&str>) -> Result<Vec<Row>, Box<dyn Error>> {
    if let Some(k) = kind
        && k != "shm"
        && Kind::parse(k).is_none()
    {
        return Err(format!(
            "unknown kind {k:?}: one of shm, {}",
            Kind::ALL.map(Kind::as_str).join(", ")
        )
        .into());
    }
    let mut out: Vec<Row> = multiproc::segment::list_named()?
        .into_iter()
        .map(|o| Row {
            kind: "shm",
            name: o.name,
            size: Some(o.size),
            owner_pid: o.owner_pid,
            owner_alive: o.owner_alive,
            valid: o.valid,
            registry_kind: None,
        })
        .collect();
    out.extend(registry::list()?.into_iter().map(|r| Row {
        kind: r.kind.as_str(),
        valid: registry::exists(r.kind, &r.name),
        name: r.name,
        size: None,
        owner_pid: r.owner_pid,
        owner_alive: r.owner_alive,
        registry_kind: Some(r.kind),
    }));
    out.retain(|r| kind.is_none_or(|k| k == r.kind));
    Ok(out)
}

/// List named objects.
pub(crate) fn ls(json: bool, kind: Option<&str>) -> Result<(), Box<dyn Error>> {
    let objs = rows(kind)?;
    if json {
        let rows: Vec<serde_json::Value> = objs
            .iter()
            .map(|o| {
                serde_json::json!({
                    "kind": o.kind,
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
        let result = match o.registry_kind {
            None => multiproc::segment::unlink_named(&o.name).map_err(Box::<dyn Error>::from),
            Some(kind) => registry::remove_object(kind, &o.name).map_err(Box::<dyn Error>::from),
        };
        match result {
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
