//! Every example runs as a test, and its output is checked.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    p.pop();
    p.push("examples");
    p.push(name);
    if !p.exists() {
        // `cargo test` builds examples; a filtered run (`--test examples`)
        // may not have: build this one now.
        let release = p.components().any(|c| c.as_os_str() == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "multiproc", "--example", name]);
        if release {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "cannot build example {name}"
        );
    }
    assert!(p.exists(), "{} was not built", p.display());
    p
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name)).args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn pipe_producer_consumer_ends_on_eof() {
    let out = run("pipe_producer_consumer", &[]);
    let received: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("consumer received"))
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("consumer received: {i}")).collect();
    assert_eq!(received, expected);
    assert!(out.contains("consumer saw end of file"));
    assert!(out.trim_end().ends_with("master proc end"));
}

#[test]
fn eval_in_child_sends_the_result_back() {
    let out = run("eval_in_child", &[]);
    assert!(out.contains("child computed 60"), "{out}");
    assert!(out.contains("parent received 60"), "{out}");
    assert!(out.contains("join returned 60"), "{out}");
    let out = run("eval_in_child", &["(1+2)*-3 - 8/4"]);
    assert!(out.contains("parent received -11"), "{out}");
    let out = run("eval_in_child", &["__import__('os')"]);
    assert!(out.contains("parent received an error"), "{out}");
}

#[test]
fn data_isolation_parent_keeps_its_global() {
    let out = run("data_isolation", &[]);
    assert_eq!(out.matches("saw num=99").count(), 10, "{out}");
    assert!(out.contains("forked child saw num=49"), "{out}");
    assert!(out.trim_end().ends_with("num=100"), "{out}");
}
