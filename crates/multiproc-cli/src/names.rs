//! `multiproc ls` and `multiproc clean`: the named objects multiproc
//! created, who owns them, and removal of those whose owner is dead.

use std::error::Error;

/// List named objects.
pub(crate) fn ls(json: bool) -> Result<(), Box<dyn Error>> {
    let objs = multiproc::segment::list_named()?;
    if json {
        let rows: Vec<serde_json::Value> = objs
            .iter()
            .map(|o| {
                serde_json::json!({
                    "kind": "shm",
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
        "{:<6} {:<40} {:>12} {:>10} {:>8}",
        "kind", "name", "size", "owner", "alive"
    );
    for o in &objs {
        println!(
            "{:<6} {:<40} {:>12} {:>10} {:>8}",
            "shm",
            o.name,
            o.size,
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
pub(crate) fn clean(all: bool, dry_run: bool) -> Result<(), Box<dyn Error>> {
    let mut removed = 0;
    for o in multiproc::segment::list_named()? {
        if o.owner_alive && !all {
            continue;
        }
        if dry_run {
            println!("would remove {} (owner {} dead)", o.name, o.owner_pid);
        } else {
            match multiproc::segment::unlink_named(&o.name) {
                Ok(()) => {
                    println!("removed {} (owner {} dead)", o.name, o.owner_pid);
                    removed += 1;
                }
                Err(e) => eprintln!("could not remove {}: {e}", o.name),
            }
        }
    }
    if !dry_run {
        println!("{removed} removed");
    }
    Ok(())
}
