//! Replays the fuzz corpora (`fuzz/corpus/frame_decoder`,
//! `fuzz/corpus/handshake`) on stable, so every input the fuzzer kept stays a
//! regression test.

#[test]
fn frame_decoder_corpus_replays_cleanly() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/frame_decoder");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("replaying {}", path.display());
        multiproc::connection::frame::fuzz_one(&data);
        n += 1;
    }
    assert!(n >= 10, "corpus has only {n} inputs");
}

#[test]
fn handshake_corpus_replays_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/handshake");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("replaying {}", path.display());
        multiproc::connection::fuzz_handshake(&data);
        n += 1;
    }
    assert!(n >= 10, "corpus has only {n} inputs");
}
