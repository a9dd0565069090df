//! Fuzz the frame decoder and the serde message decoder.
//!
//! Run: `cargo +nightly fuzz run frame_decoder -- -rss_limit_mb=2048 -max_len=1048576`
//! The corpus in `fuzz/corpus/frame_decoder` replays on stable as the test
//! `fuzz_corpus` of the `multiproc` crate.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    multiproc::connection::frame::fuzz_one(data);
});
