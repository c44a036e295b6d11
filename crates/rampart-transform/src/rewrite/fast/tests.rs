//! The fast path against the state machine alone: byte for byte the same output, the
//! same refusal and the same counts, on valid and broken bodies, whole or in frames.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use rampart_core::{BodyCounts, BodyRewriter};
use serde_json::{json, Value};

use super::super::tests::{list, mask, value};
use super::super::Rewriter;
use crate::{FieldList, MaskPlan};

type Rules = (Option<Arc<MaskPlan>>, Option<Arc<FieldList>>);

/// Rule sets that pass, mask (by path and by detector), drop and keep members whose
/// names the generated documents use.
fn rules(which: usize) -> Rules {
    let fields = || {
        mask(json!({ "fields": [
            { "path": "$..a", "action": "redact" },
            { "path": "$..b.c", "action": "last4" },
            { "path": "$.d[*]", "action": "remove" },
            { "path": "$[1].e", "action": "redact" },
        ] }))
    };
    let detect = || {
        mask(json!({
            "fields": [{ "path": "$..a", "action": "last4" }],
            "detect": [{ "kind": "card", "action": "last4" }, { "kind": "email", "action": "redact" }],
        }))
    };
    match which % 6 {
        0 => (Some(fields()), None),
        1 => (Some(detect()), None),
        2 => (
            None,
            Some(list(
                json!({ "allow": ["$.a", "$..b", "$[*].c", "$.d[0]"] }),
            )),
        ),
        3 => (
            None,
            Some(list(json!({ "deny": ["$..a", "$.b.c", "$[0]"] }))),
        ),
        4 => (
            Some(fields()),
            Some(list(json!({ "allow": ["$..a", "$.b", "$[*]"] }))),
        ),
        _ => (
            Some(mask(
                json!({ "fields": [{ "path": "$..nothing", "action": "redact" }] }),
            )),
            None,
        ),
    }
}

/// The output (or refusal) and the counts of one run.
fn run(
    rules: &Rules,
    frames: &[&[u8]],
    max: usize,
    pass: bool,
    slow_only: bool,
) -> (Result<Vec<u8>, &'static str>, Vec<u32>) {
    let names: Arc<[Box<str>]> = (0..8).map(|i| i.to_string().into_boxed_str()).collect();
    let counts = Arc::new(BodyCounts::new("mask", names));
    let mut rw = Rewriter::new(
        rules.0.clone(),
        rules.1.clone(),
        Some(counts.clone()),
        max,
        pass,
    );
    rw.slow_only = slow_only;
    let mut out = Vec::new();
    let mut result = Ok(());
    for (i, f) in frames.iter().enumerate() {
        match rw.on_data(Bytes::copy_from_slice(f), i + 1 == frames.len()) {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let mut seen = vec![0; 8];
    for (i, _, n) in counts.nonzero() {
        seen[i] = n;
    }
    (result.map(|()| out), seen)
}

/// A document: generated values under names the rules use, written compact or pretty,
/// then perhaps broken at one byte.
fn document() -> impl Strategy<Value = Vec<u8>> {
    let named = || {
        let member = prop_oneof![
            4 => value(),
            1 => any::<f64>().prop_map(|f| json!(f)),
            1 => any::<u64>().prop_map(|n| json!(n)),
        ];
        prop::collection::vec(("[a-e]|[a-z]{2,5}", member), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    };
    let doc = prop_oneof![
        named(),
        prop::collection::vec(named(), 0..4).prop_map(Value::from),
        value()
    ];
    let breaks = prop::sample::select(
        &[
            None,
            None,
            Some(b'"'),
            Some(b'\\'),
            Some(b'{'),
            Some(b'}'),
            Some(b'['),
            Some(b']'),
            Some(b':'),
            Some(b','),
            Some(b' '),
            Some(b'x'),
            Some(b'1'),
            Some(b'0'),
            Some(b'.'),
            Some(b'e'),
            Some(b'-'),
            Some(0xff),
        ][..],
    );
    (doc, any::<bool>(), breaks, any::<prop::sample::Index>()).prop_map(|(v, pretty, b, at)| {
        let mut text = match pretty {
            true => serde_json::to_vec_pretty(&v),
            false => serde_json::to_vec(&v),
        }
        .unwrap_or_default();
        if let (Some(b), false) = (b, text.is_empty()) {
            let i = at.index(text.len());
            text[i] = b;
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_fast_path_answers_as_the_state_machine_does(
        text in document(),
        which in 0usize..6,
        split in any::<prop::sample::Index>(),
        pass in any::<bool>(),
        // Small enough that some values are too large to hold.
        max in prop::sample::select(&[12usize, 1 << 20][..]),
    ) {
        let rules = rules(which);
        let at = split.index(text.len() + 1);
        for frames in [vec![&text[..]], vec![&text[..at], &text[at..]]] {
            let fast = run(&rules, &frames, max, pass, false);
            let slow = run(&rules, &frames, max, pass, true);
            prop_assert_eq!(
                &fast, &slow,
                "rules {}, frames {:?}", which,
                frames.iter().map(|f| String::from_utf8_lossy(f)).collect::<Vec<_>>()
            );
        }
    }
}

/// Strings masked in place by the fast path: over the bound, escaped, not UTF-8, at
/// the frame's end; each answered as the state machine answers it.
#[test]
fn masked_strings_are_held_to_the_state_machines_answers() {
    let docs: [&[u8]; 7] = [
        br#"{"a":"4111 1111 1111 1111"}"#,
        br#"{"x":1,"a":"4111 1111 1111"}"#,
        br#"{"a":"41\"11 11"}"#,
        b"{\"a\":\"41\xff11\"}",
        br#"{"b":{"c":"4111-1111"},"a":"12345678901"}"#,
        br#"[{"a":"123456789012"},{"a":"1234567890123"}]"#,
        br#"{"a":"4111 1111"#,
    ];
    for which in 0..6 {
        let rules = rules(which);
        for doc in docs {
            for at in [0, doc.len() / 2, doc.len()] {
                let frames = [&doc[..at], &doc[at..]];
                for max in [12, 1 << 20] {
                    let fast = run(&rules, &frames, max, false, false);
                    let slow = run(&rules, &frames, max, false, true);
                    assert_eq!(
                        fast,
                        slow,
                        "rules {which}, {:?}",
                        String::from_utf8_lossy(doc)
                    );
                }
            }
        }
    }
}

/// Numbers and literals, valid or not, in every place a value can stand.
#[test]
fn scalars_are_read_as_the_state_machine_reads_them() {
    let tokens = [
        "0",
        "-0",
        "01",
        "-01",
        "00",
        "1.",
        "1.5",
        ".5",
        "-.5",
        "1e",
        "1e+",
        "1e+5",
        "1E-5",
        "1.5e3",
        "-",
        "--1",
        "1.5.5",
        "1e5e5",
        "+1",
        "0x1",
        "1-2",
        "1+2",
        "true",
        "false",
        "null",
        "tru",
        "truex",
        "nul",
        "null1",
        "nullx",
        "True",
        "NaN",
        "Infinity",
        "-Infinity",
        "123456789012345678901234567890",
        "1e999",
        "2.",
        "0.0e0",
    ];
    for which in 0..6 {
        let rules = rules(which);
        for t in tokens {
            for doc in [
                t.to_string(),
                format!(" {t} "),
                format!("{{\"a\":{t}}}"),
                format!("{{\"x\": {t}, \"b\": {{\"c\": {t}}}}}"),
                format!("[{t},{t} ,\n{t}]"),
                format!("{{\"d\":[{t}],\"e\":{t}}}"),
            ] {
                for max in [12, 1 << 20] {
                    for pass in [false, true] {
                        let fast = run(&rules, &[doc.as_bytes()], max, pass, false);
                        let slow = run(&rules, &[doc.as_bytes()], max, pass, true);
                        assert_eq!(fast, slow, "rules {which}, {doc:?}");
                    }
                }
            }
        }
    }
}

/// Bodies like an API's (records with nested objects and arrays, numbers, literals,
/// escapes, non-ASCII text and strings longer than a 64-byte block), compact and
/// pretty, whole and split at many places, and broken in a few: answered as the state
/// machine answers them.
#[test]
fn longer_bodies_split_anywhere() {
    let record = |i: u64| {
        json!({
            "id": format!("cus_{i:06}"),
            "a": "4111 1111 1111 1111",
            "name": "Zoë \"Q\" Müller\\",
            "b": { "c": "078-05-1120", "x": [1, 2.5, -300.0, true, null, i], "c2": {} },
            "d": ["x", { "a": i }, []],
            "e": "plain",
            "note": "Prefers e-mail contact; call before delivery. Then again, perhaps not.",
            "balance": 1520.75 + i as f64,
        })
    };
    let doc = json!({ "data": (0..5).map(record).collect::<Vec<_>>(), "page": 1 });
    let compact = serde_json::to_vec(&doc).unwrap_or_default();
    let pretty = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    // A masked name escaped, a control character outside a string, a number cut short.
    let escaped = String::from_utf8_lossy(&compact).replacen("\"a\"", "\"\\u0061\"", 3);
    let control = String::from_utf8_lossy(&compact).replacen(",\"e\"", ",\u{1}\"e\"", 1);
    let cut = String::from_utf8_lossy(&compact).replacen("1520.75", "1520.", 1);
    let bodies = [
        compact.clone(),
        pretty,
        escaped.into_bytes(),
        control.into_bytes(),
        cut.into_bytes(),
    ];
    for (n, body) in bodies.iter().enumerate() {
        for which in 0..6 {
            let rules = rules(which);
            for at in (0..=body.len()).step_by(7) {
                let frames = [&body[..at], &body[at..]];
                for max in [12, 1 << 20] {
                    let fast = run(&rules, &frames, max, false, false);
                    let slow = run(&rules, &frames, max, false, true);
                    assert_eq!(
                        fast, slow,
                        "body {n}, rules {which}, split at {at}, max {max}"
                    );
                }
            }
        }
    }
}
