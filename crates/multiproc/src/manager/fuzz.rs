//! The manager protocol's fuzz entry point (for `cargo fuzz` and the corpus
//! replay in the tests).

use super::protocol::{Request, Response};

/// Decode `data` as a request and as a response, as the server and a client
/// do, and re-encode what decodes; a call that decodes is parsed, and run
/// without waiting, on a fresh object of every built-in kind, as the server
/// would. For the fuzzer and its corpus replay. Never panics (that is what
/// is tested).
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    if let Ok(req) = postcard::from_bytes::<Request>(data) {
        let _ = postcard::to_stdvec(&req);
        if let Request::Call { method, args, .. } = req {
            super::objects::fuzz_call(&method, &args);
        }
    }
    if let Ok(Response::Value(v)) = postcard::from_bytes::<Response>(data) {
        let _ = super::value::from_value::<serde_json::Value>(v);
    }
}
