//! XML ↔ JSON on any bytes: reading never panics and stays bounded (no DOCTYPE, depth
//! capped); whatever the gateway writes as XML, from a document it read or from any JSON
//! body, reads back as well-formed XML (no markup injected through names or text).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rampart_transform::fuzz_xml(data);
});
