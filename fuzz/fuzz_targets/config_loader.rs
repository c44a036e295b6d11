//! The config loader must never panic, whatever the file says, and must stay within its
//! parse budget.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(spec) = rampart_config::parse(text) {
            // A spec that validates must also compile or fail with errors, never panic.
            let state = rampart_core::StateStore::new();
            let _ = rampart_proxy::Plan::compile(&spec, std::path::Path::new("/nonexistent"), &state);
        }
    }
});
