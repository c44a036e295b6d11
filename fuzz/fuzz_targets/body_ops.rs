//! JSON body operations on any bytes: every operation, on wildcard and indexed paths,
//! never panics on a body that parses, and what is written is JSON again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rampart_transform::fuzz_body_ops(data);
});
