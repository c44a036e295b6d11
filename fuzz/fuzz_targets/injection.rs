//! The injection detectors take every value of every inspected request. Two things are
//! checked: libinjection itself (the `libinjectionrs` port, called directly, so a panic
//! in it stops the fuzzer instead of being contained) and our detector around it at every
//! paranoia level (decoders, windows, rules), which must never panic either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rampart_inspect::InjectionDetector;

fuzz_target!(|data: &[u8]| {
    let _ = libinjectionrs::detect_sqli(data).is_injection();
    let _ = libinjectionrs::detect_xss(data).is_injection();
    let text = String::from_utf8_lossy(data);
    for level in 1..=4 {
        let f = InjectionDetector::new(level).scan(&text);
        assert!(f.score() <= 5 * 6);
    }
});
