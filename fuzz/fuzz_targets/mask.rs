//! The response masker on any bytes, cut into frames anywhere: it never panics; what it
//! sends for a valid JSON document is valid JSON with the same structure of kept members
//! (whatever the frames), and no card number or e-mail a detector finds survives in it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::pii::{self, PiiKind};

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (cut, body) = (usize::from(data[0]) % data.len(), &data[1..]);
    let cut = cut.min(body.len());
    let whole = rampart_transform::fuzz_rewrite(&[body], 1 << 16, false);
    let split = rampart_transform::fuzz_rewrite(&[&body[..cut], &body[cut..]], 1 << 16, false);
    let _ = rampart_transform::fuzz_rewrite(&[&body[..cut], &body[cut..]], 64, true);
    let Ok(valid) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    // Valid input: both framings succeed (the only refusal left is a value over 64 KiB,
    // which cannot be in a fuzz input this size) and agree.
    let (whole, split) = match (whole, split) {
        (Ok(w), Ok(s)) => (w, s),
        (w, s) => panic!("valid JSON refused: {:?} {:?} for {:?}", w.err(), s.err(), valid),
    };
    let w: serde_json::Value = serde_json::from_slice(&whole).expect("output is JSON");
    let s: serde_json::Value = serde_json::from_slice(&split).expect("output is JSON");
    assert_eq!(w, s, "framing changed the output");
    let mut all = Vec::new();
    strings(&w, &mut all);
    for t in all {
        let mut found = Vec::new();
        pii::find_all(&t, &[PiiKind::Card, PiiKind::Email], &mut found);
        assert!(found.is_empty(), "{t:?} still holds {found:?}");
    }
});
