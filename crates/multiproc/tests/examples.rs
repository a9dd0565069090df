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
    {
        // `cargo test` builds examples, but a filtered run (`--test
        // examples`) does not, and would run a stale binary: (re)build this
        // one now (a no-op when it is up to date).
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
    assert!(out.contains("queue delivered 60"), "{out}");
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

#[test]
fn ticket_buying_sells_exactly_the_stock() {
    let dir = std::env::temp_dir().join(format!("mp-tickets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.json");
    let out = run("ticket_buying", &["3", file.to_str().unwrap()]);
    assert_eq!(out.matches("bought a ticket").count(), 3, "{out}");
    assert_eq!(out.matches("found no ticket").count(), 7, "{out}");
    assert!(out.contains("tickets left: 0"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn counter_reaches_zero_under_a_lock() {
    let out = run("counter", &[]);
    let seen: Vec<i64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("counter minus one, now: "))
        .map(|n| n.parse().unwrap())
        .collect();
    // Each process saw a distinct value: 20, 19, ..., 1 in order.
    assert_eq!(seen, (1..=20).rev().collect::<Vec<_>>(), "{out}");
    assert!(out.contains("final count: 0"), "{out}");
}

#[test]
fn toilet_semaphore_never_lets_more_than_five_in() {
    let out = run("toilet_semaphore", &[]);
    assert_eq!(out.matches("got a stall").count(), 13, "{out}");
    let most: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("most inside at once: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&most), "{out}");
    assert!(out.contains("inside at the end: 0"), "{out}");
}

#[test]
fn breakfast_event_hands_over_in_order() {
    let out = run("breakfast_event", &[]);
    let order = [
        "customer: ready to buy breakfast",
        "vendor: cooking...",
        "vendor: waiting for the customer to eat",
        "customer: got breakfast",
        "customer: paying, delicious...",
        "vendor: thank you, come again",
    ];
    let mut at = 0;
    for line in order {
        let pos = out[at..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order:\n{out}"));
        at += pos + line.len();
    }
}

#[test]
fn shared_file_is_written_and_read_through_mmap() {
    let dir = std::env::temp_dir().join(format!("mp-share-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("test.share");
    let out = run("shared_file", &[file.to_str().unwrap()]);
    assert_eq!(out.matches("write msg").count(), 10, "{out}");
    assert!(out.contains("read msg 1 msg 2"), "{out}");
    assert!(out.contains("file holds 10 lines"), "{out}");
    assert!(out.contains("reader saw 10 lines"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn queue_producer_consumer_stops_at_the_none_sentinel() {
    let out = run("queue_producer_consumer", &[]);
    let received: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("consumer received"))
        .collect();
    let expected: Vec<String> = (0..10)
        .map(|i| format!("consumer received: message {i}"))
        .collect();
    assert_eq!(received, expected, "{out}");
    assert_eq!(out.matches("producer sent message").count(), 10, "{out}");
    assert!(
        out.contains("consumer took 10 messages; queue empty: true"),
        "{out}"
    );
}

/// The numbers printed after `prefix`, in order.
fn numbers_after<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter_map(|l| l.strip_prefix(prefix)).collect()
}

#[test]
fn producer_consumer_model_1_passes_every_number() {
    let out = run("producer_consumer_models", &["model1", "6"]);
    let made = numbers_after(&out, "producer made: ");
    let got = numbers_after(&out, "consumer got: ");
    assert_eq!(made.len(), 6, "{out}");
    // One producer: the consumer sees its numbers in order.
    assert_eq!(made, got, "{out}");
    assert!(out.contains("model 1 done"), "{out}");
}

#[test]
fn producer_consumer_model_2_joins_after_every_task_done() {
    let out = run("producer_consumer_models", &["model2"]);
    let mut made = numbers_after(&out, "producer made: ");
    let mut got = numbers_after(&out, "consumer got: ");
    assert_eq!(made.len(), 20, "{out}");
    // `join` returned only after all 20 were taken and marked done.
    let joined = out.find("queue joined: 0 unfinished").expect("joined");
    let last_got = out.rfind("consumer got: ").unwrap();
    assert!(last_got < joined, "{out}");
    made.sort_unstable();
    got.sort_unstable();
    assert_eq!(made, got, "{out}");
    assert!(out.trim_end().ends_with("model 2 done"), "{out}");
}

#[test]
fn queue_basics_bounded_queue_of_two() {
    let out = run("queue_basics", &[]);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "queue full, got back 3",
            "qsize: 2",
            "get: 1",
            "get: 2",
            "qsize: 0",
            "queue empty now",
            "queue empty after 50 ms",
        ],
        "{out}"
    );
}

#[test]
fn fifo_reader_reads_a_shell_writer_until_eof() {
    let out = run("fifo_reader", &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("created ") && lines[0].ends_with("(mode 600)"),
        "{out}"
    );
    assert_eq!(
        lines[1..],
        [
            "open fifo pipe",
            "start read pipe data",
            "read: ts",
            "start read pipe data",
            "writer close",
            "writer exited: exit status: 0",
        ],
        "{out}"
    );
}

#[test]
fn signal_wait_child_reports_sigusr1_and_exits_cleanly() {
    let out = run("signal_wait", &[]);
    let usr1 = out.find("child received SIGUSR1").expect("SIGUSR1");
    let term = out.find("child received SIGTERM").expect("SIGTERM");
    assert!(usr1 < term, "{out}");
    assert!(out.contains("child cleaning up after SIGTERM"), "{out}");
    assert!(
        out.trim_end()
            .ends_with("child saw SIGUSR1 1 time(s), exitcode Some(0)"),
        "{out}"
    );
}

#[test]
fn sysv_message_types_selects_by_type() {
    let out = run("sysv_message_types", &[]);
    let got: Vec<&str> = out.lines().filter(|l| l.contains("(msgrcv type")).collect();
    assert_eq!(
        got,
        [
            "type > 0 (msgrcv type 4): got type 4: info: 12 users online",
            "type > 0 (msgrcv type 2): got type 2: high: backup late",
            "type < 0 (msgrcv type -3): got type 1: urgent: disk full",
            "type < 0 (msgrcv type -3): got type 1: urgent: fan stopped",
            "type < 0 (msgrcv type -3): got type 2: high: certificate expires",
            "type 0 (msgrcv type 0): got type 3: low: rotate logs",
            "type 0 (msgrcv type 0): got type 3: low: clean /tmp",
            "type 0 (msgrcv type 0): got type 4: info: load 0.3",
        ],
        "{out}"
    );
    assert!(out.contains("8 messages wait in queue"), "{out}");
    assert_eq!(out.matches("sender: type").count(), 8, "{out}");
    assert!(out.trim_end().ends_with("queue empty"), "{out}");
}

#[test]
fn sysv_semaphore_set_never_overdraws_the_pool() {
    let out = run("sysv_semaphore_set", &[]);
    assert_eq!(out.matches("took 2 units").count(), 6, "{out}");
    assert_eq!(out.matches("gave back 2 units").count(), 6, "{out}");
    let max: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("most units in use at once: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no maximum in {out}"));
    // Two units at a time from five: at most four in use, at least two.
    assert!((2..=4).contains(&max), "{out}");
    assert!(out.contains("units in use at the end: 0"), "{out}");
    assert!(out.contains("units free at the end: 5"), "{out}");
}

#[test]
fn posix_mq_consumer_gets_the_highest_priority_first() {
    let out = run("posix_mq", &[]);
    let got: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("consumer got: "))
        .collect();
    assert_eq!(
        got,
        [
            "put out the fire (priority 5)",
            "call the doctor (priority 5)",
            "answer the phone (priority 3)",
            "sign the letter (priority 3)",
            "sweep the floor (priority 1)",
            "water the plants (priority 1)",
        ],
        "{out}"
    );
    // Every message was sent before the consumer started: the queue kept
    // them after the producer exited.
    let exits = out
        .find("producer exits, 7 messages queued")
        .expect("producer");
    assert!(exits < out.find("consumer got: ").unwrap(), "{out}");
    assert!(out.contains("consumer done after 6 jobs"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("unlinked /multiproc-example-"), "{out}");
}

#[test]
fn python_interop_both_directions_and_both_digests() {
    check_python_interop("python3");
}

/// CPython's own `{sha256}` handshake (3.12 and later), where such a Python
/// is installed (on `PATH` or under pyenv).
#[test]
fn python_interop_with_python_3_12_stdlib_sha256() {
    match python_3_12_or_later() {
        Some(python) => check_python_interop(&python),
        None => eprintln!("no python >= 3.12 found: skipped"),
    }
}

fn python_3_12_or_later() -> Option<String> {
    let mut candidates: Vec<String> = vec!["python3.13".into(), "python3.12".into()];
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(Ok(dir)) = pyenv.map(|p| std::fs::read_dir(p.join("versions"))) {
        for v in dir.flatten() {
            let name = v.file_name().to_string_lossy().into_owned();
            let minor = name
                .strip_prefix("3.")
                .and_then(|r| r.split('.').next())
                .and_then(|m| m.parse::<u32>().ok());
            if minor.is_some_and(|m| m >= 12) {
                candidates.push(v.path().join("bin/python3").to_string_lossy().into_owned());
            }
        }
    }
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn check_python_interop(python: &str) {
    let out = run("python_interop", &[python]);
    if out.contains("not found: skipped") {
        eprintln!("{python} not found: skipped");
        return;
    }
    for expected in [
        "1. rust client got: python listener echoes hello from rust",
        "2. rust listener got: hello from a python client",
        "  python got rust listener echoes it",
        "4a. rust listener got: hello over the sha256 handshake",
        "  python got rust sha256 listener echoes it",
        "4b. rust client got: python sha256 server echoes hello from a rust sha256 client",
        "  python got hello from a rust sha256 client",
    ] {
        assert!(out.lines().any(|l| l == expected), "{expected:?}\n{out}");
    }
    let minor: u32 = out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("python 3."))
        .and_then(|m| m.parse().ok())
        .expect("python version line");
    if minor < 12 {
        // HMAC-MD5 only: refused without the opt-in.
        assert!(
            out.contains("3. sha256-only listener refused md5")
                && out.contains("python client refused: AuthenticationError"),
            "{out}"
        );
    } else {
        // Python's own {sha256} handshake passes the default policy.
        assert!(
            out.contains("3. python >= 3.12 speaks sha256: accepted"),
            "{out}"
        );
    }
    assert!(out.trim_end().ends_with("interop done"), "{out}");
}

#[test]
fn manager_counter_reaches_zero_with_a_lock_and_with_incr() {
    let out = run("manager_counter", &[]);
    let seen: Vec<i64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("counter minus one, now: "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(seen, (1..=20).rev().collect::<Vec<_>>(), "{out}");
    assert!(out.contains("final count: 0\n"), "{out}");
    let mut left: Vec<i64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("incr left: "))
        .map(|n| n.parse().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, (0..20).collect::<Vec<_>>(), "{out}");
    assert!(
        out.trim_end().ends_with("final count with incr: 0"),
        "{out}"
    );
}

#[test]
fn manager_dict_set_in_child_read_in_parent() {
    let out = run("manager_dict", &[]);
    assert_eq!(out, "{}\n{\"a\": \"a\"}\n");
}

fn check_manager_netns(out: &str) {
    for i in 0..3 {
        let msg = format!("hello {i} from the client host");
        assert!(out.contains(&format!("client host sent: {msg}\n")), "{out}");
        assert!(out.contains(&format!("server host got: {msg}\n")), "{out}");
    }
    assert!(out.contains("server host done"), "{out}");
    assert!(out.trim_end().ends_with("done"), "{out}");
}

#[test]
fn manager_netns_shares_a_queue_between_two_hosts() {
    let out = run("manager_netns", &[]);
    check_manager_netns(&out);
    if out.contains("network namespaces unavailable") {
        eprintln!("no network namespaces here: ran over 127.0.0.1");
        assert!(out.contains("listening on 127.0.0.1:"), "{out}");
    } else {
        assert!(out.contains("listening on 10.77.0.1:"), "{out}");
        // The namespaces are gone.
        let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let pid_tag = out
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap()
            .to_owned();
        assert!(
            !String::from_utf8_lossy(&ns.stdout).contains(&pid_tag),
            "{pid_tag} left behind"
        );
    }
}

#[test]
fn manager_netns_falls_back_to_localhost() {
    let out = run("manager_netns", &["--no-netns"]);
    assert!(out.contains("network namespaces unavailable"), "{out}");
    assert!(out.contains("listening on 127.0.0.1:"), "{out}");
    check_manager_netns(&out);
}

#[test]
fn pool_never_hangs_fails_each_bad_task_alone() {
    let out = run("pool_never_hangs", &[]);
    for line in [
        "risky(12) = 144",
        "risky(13): its worker died (signal 6)",
        "risky(14): panicked: fourteen is right out",
        "risky(15): timed out, worker killed",
        "risky(16) = 256",
        "the pool goes on: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
}
