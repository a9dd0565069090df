//! The Python package's tests, run by `cargo test --workspace`: a virtual
//! environment under `target/`, the package installed into it with one
//! `pip install` (maturin as the PEP 517 backend, building into the
//! workspace's `target/`, so cargo's cache is reused), then pytest over
//! `crates/multiproc-py/tests/` (our tests, the seeds' programs, and
//! CPython's own multiprocessing tests bound to multiproc).
//!
//! Set `MULTIPROC_PYTHON` to choose the interpreter (default `python3`).
//! Every other supported interpreter found on `PATH` (`python3.12`,
//! `python3.13`) runs the whole suite too, in a virtual environment of its
//! own; the test prints which ran and which are not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_path_buf()
}

/// `python --version`, if that interpreter runs here.
fn version(python: &str) -> Option<String> {
    let out = Command::new(python).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A line shown even when the test passes (the test harness captures
/// `println!`, not writes to the stderr handle).
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "python tests: {line}");
}

#[test]
fn python_package_tests() {
    let primary = std::env::var("MULTIPROC_PYTHON").unwrap_or_else(|_| "python3".into());
    let primary_version = version(&primary).unwrap_or_else(|| panic!("{primary} does not run"));
    say(&format!("{primary}: {primary_version}"));
    suite(&primary, "py-venv");
    for other in ["python3.12", "python3.13"] {
        match version(other) {
            Some(v) if v == primary_version => say(&format!("{other}: {v}, tested above")),
            Some(v) => {
                say(&format!("{other}: {v}"));
                suite(other, &format!("py-venv-{}", &other["python".len()..]));
            }
            None => say(&format!("{other}: not installed here, not tested")),
        }
    }
}

/// Install the package into `target/<venv_name>` (made with `python`) and
/// run the pytest suite there.
fn suite(python: &str, venv_name: &str) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = workspace_target().join(venv_name);
    let bin = venv.join("bin");
    let py = bin.join("python");
    // The build backend runs the venv's `maturin`.
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    if !py.exists() {
        run(Command::new(python).arg("-m").arg("venv").arg(&venv));
    }
    run(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "maturin>=1.5,<2.0",
        "pytest",
        // NumPy scalars as Manager keys, arrays out of band through queues.
        "numpy",
    ]));
    // The one install command (without build isolation, so maturin builds
    // in this workspace's target directory and reuses cargo's cache).
    run(Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-build-isolation",
            "--force-reinstall",
            "--no-deps",
        ])
        .arg(crate_dir)
        .env("PATH", &path)
        .env_remove("CARGO_TARGET_DIR"));
    // From a directory outside the source tree, so `import multiproc` finds
    // the installed package, not `python/multiproc` (which lacks the
    // native module).
    let out = Command::new(&py)
        // -rs: the reason of every skip in the summary, forwarded below.
        .args([
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "--rootdir",
        ])
        .arg(crate_dir.join("tests"))
        .arg(crate_dir.join("tests"))
        .current_dir(workspace_target())
        .env("PATH", &path)
        .output()
        .expect("cannot run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{python}: {stdout}");
    // Skips are seen even when this test passes (libtest keeps a passing
    // test's `println!` to itself; a direct write to stderr goes out).
    {
        use std::io::Write as _;
        let mut err = std::io::stderr();
        for line in stdout.lines().filter(|l| l.starts_with("SKIPPED")) {
            let _ = writeln!(err, "{python}: {line}");
        }
    }
    assert!(
        out.status.success(),
        "pytest on {python} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
