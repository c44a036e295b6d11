//! The strict HTTP/1 head checker must never panic and must never accept a head that is
//! ambiguous about its body length.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rampart_proxy::h1_guard::check_request_head(data);
});
