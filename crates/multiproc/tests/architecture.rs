//! The layout rules of the workspace, read from its source tree (the
//! renovation's "done when"): no circle of imports among the library's
//! source files, no oversized source file, the CLI only through the library,
//! and `unsafe` kept to a ratchet in the API crate.
//!
//! An import is any `crate::…` or `super::…` path in a file's code (tests
//! excluded), and a module file's private `use child::…`. A module's own
//! `pub use child::…` re-exports are its facade, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file under `src` (`lib.rs` is the root,
/// `a/mod.rs` is `a`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The code of a file without its unit tests and comments.
fn code(file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifier paths starting at `start` in `s`: `a::b::{c, d::e}` gives
/// `[a,b,c]` and `[a,b,d,e]` (one level of braces is enough here).
fn paths_at(s: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut prefix = Vec::new();
    let mut rest = s;
    loop {
        let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        prefix.push(rest[..end].to_string());
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix("::") {
            rest = r;
            if let Some(r) = rest.strip_prefix('{') {
                let close = r.find('}').unwrap_or(r.len());
                return r[..close]
                    .split(',')
                    .map(|item| {
                        let mut p = prefix.clone();
                        p.extend(
                            item.trim()
                                .split(" as ")
                                .next()
                                .unwrap()
                                .split("::")
                                .filter(|s| !s.is_empty() && *s != "self" && *s != "{")
                                .map(str::to_string),
                        );
                        p
                    })
                    .collect();
            }
        } else {
            break;
        }
    }
    vec![prefix]
}

fn import_graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains_key(p))
    };
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = code(file);
        // A module with children: `mod.rs`, a crate root, or `a.rs` next to `a/`.
        let is_dir_module = ["mod.rs", "lib.rs", "main.rs"]
            .iter()
            .any(|root| file.ends_with(root))
            || file.with_extension("").is_dir();
        let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
        let mut deps = BTreeSet::new();
        for (word, base) in [("crate::", Vec::new()), ("super::", parent)] {
            for (i, _) in text.match_indices(word) {
                let before = text[..i].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                for p in paths_at(&text[i + word.len()..]) {
                    let mut full = base.clone();
                    full.extend(p);
                    if let Some(target) = resolve(&full)
                        && &target != module
                    {
                        deps.insert(target);
                    }
                }
            }
        }
        if is_dir_module {
            for line in text.lines() {
                let Some(rest) = line.trim_start().strip_prefix("use ") else {
                    continue;
                };
                for p in paths_at(rest.trim_start_matches("self::")) {
                    let mut full = module.clone();
                    full.extend(p);
                    if let Some(target) = resolve(&full)
                        && target.len() > module.len()
                    {
                        deps.insert(target);
                    }
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// A cycle in `graph`, if any (depth-first search).
fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle: Vec<String> =
                        stack[from..].iter().map(|m| m.join("/")).collect();
                    cycle.push(next.join("/"));
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node)
            && let Some(c) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_two_source_files_import_each_other_in_a_circle() {
    let graph = import_graph(&workspace().join("crates/multiproc/src"));
    assert!(
        graph.len() > 40,
        "the scan found the library's source files"
    );
    // The scan sees real imports: the queue's files use the segment module.
    assert!(
        graph[&vec!["queue".to_string(), "inner".to_string()]]
            .contains(&vec!["shared".to_string(), "segment".to_string()])
    );
    for krate in fs::read_dir(workspace().join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        if let Some(cycle) = find_cycle(&import_graph(&src)) {
            panic!("import circle in {}: {}", src.display(), cycle.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_circle() {
    let m = |s: &str| vec![s.to_string()];
    let mut g = BTreeMap::new();
    g.insert(m("a"), BTreeSet::from([m("b")]));
    g.insert(m("b"), BTreeSet::from([m("c")]));
    g.insert(m("c"), BTreeSet::from([m("a")]));
    assert!(find_cycle(&g).is_some());
    g.insert(m("c"), BTreeSet::new());
    assert!(find_cycle(&g).is_none());
}

#[test]
fn no_source_file_is_over_900_lines() {
    let mut files = Vec::new();
    for krate in fs::read_dir(workspace().join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = fs::read_to_string(f).unwrap().lines().count();
            (n > 900).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

#[test]
fn the_cli_goes_through_the_library() {
    let cli = workspace().join("crates/multiproc-cli");
    let manifest = fs::read_to_string(cli.join("Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("multiproc-sys"),
        "the CLI depends on multiproc-sys"
    );
    let mut files = Vec::new();
    rust_files(&cli, &mut files);
    for f in files {
        assert!(
            !fs::read_to_string(&f).unwrap().contains("multiproc_sys"),
            "{} uses multiproc_sys",
            f.display()
        );
    }
}

#[test]
fn multiproc_shm_makes_no_system_call_of_its_own() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/multiproc-shm/src"), &mut files);
    let manifest = fs::read_to_string(workspace().join("crates/multiproc-shm/Cargo.toml")).unwrap();
    for dep in ["libc", "rustix", "multiproc-sys", "nix"] {
        assert!(!manifest.contains(dep), "multiproc-shm depends on {dep}");
    }
    // Time, sleep and yield come through `Env`; nothing else of the OS is
    // reachable from `std` without these paths.
    let forbidden = [
        "Instant::now",
        "SystemTime",
        "std::thread",
        "thread::sleep",
        "std::fs",
        "std::net",
        "std::process",
        "std::os",
        "std::env",
        "std::io",
    ];
    for f in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        let text = code(f);
        for word in forbidden {
            assert!(!text.contains(word), "{} uses {word}", f.display());
        }
    }
}

/// The API crate's `unsafe` blocks, a ratchet (the target was 10; the rest
/// moved below the API into multiproc-sys's bounds-checked copies and typed
/// atomic views, and its safe fork and exec wrappers): the count may go
/// down, never up.
const UNSAFE_BLOCKS_AT_MOST: usize = 7;

#[test]
fn unsafe_blocks_in_the_api_crate_do_not_grow() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/multiproc/src"), &mut files);
    let count: usize = files
        .iter()
        .map(|f| code(f).matches("unsafe {").count())
        .sum();
    assert!(
        count <= UNSAFE_BLOCKS_AT_MOST,
        "{count} unsafe blocks in crates/multiproc/src (at most {UNSAFE_BLOCKS_AT_MOST})"
    );
}
