//! Fuzz the authentication handshake of `Listener`/`Client`: whatever a peer
//! sends before authentication, the server and client sides end with an
//! error or success, never a panic, a hang or an allocation beyond the
//! 256-byte challenge frames.
//!
//! Run: `cargo +nightly fuzz run handshake -- -rss_limit_mb=2048 -max_len=4096`
//! The corpus in `fuzz/corpus/handshake` replays on stable as the test
//! `fuzz_corpus` of the `multiproc` crate.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    multiproc::connection::fuzz_handshake(data);
});
