//! Manager requests and responses from arbitrary bytes: decoding never
//! panics, never recurses past the depth limit, never over-allocates.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    multiproc::manager::fuzz::fuzz_one(data);
});
