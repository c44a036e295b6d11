use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use rampart_config::{MaskSpec, ResponseFieldsSpec};
use rampart_core::pii::{self, PiiKind};
use rampart_core::{BodyCounts, BodyRewriter};
use serde_json::{json, Value};

use super::values::string_end;
use super::Rewriter;
use crate::{compile_lists, compile_mask, FieldList, MaskPlan};

pub(super) fn mask(spec: Value) -> Arc<MaskPlan> {
    std::env::set_var("RAMPART_TEST_MASK_KEY", "0123456789abcdef0123");
    let spec: MaskSpec = serde_json::from_value(spec).unwrap();
    let mut errors = Vec::new();
    let m = compile_mask(&spec, std::path::Path::new("."), "mask", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(m.unwrap().0)
}

pub(super) fn list(spec: Value) -> Arc<FieldList> {
    let spec: ResponseFieldsSpec = serde_json::from_value(spec).unwrap();
    let mut errors = Vec::new();
    let l = compile_lists(&spec, "response_fields", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    l.unwrap().default.unwrap()
}

/// Runs `body` through a rewriter in the given frames.
fn run(
    m: Option<&Arc<MaskPlan>>,
    l: Option<&Arc<FieldList>>,
    frames: &[&[u8]],
) -> Result<String, &'static str> {
    run_with(m, l, frames, 1 << 20, false, None)
}

pub(super) fn run_with(
    m: Option<&Arc<MaskPlan>>,
    l: Option<&Arc<FieldList>>,
    frames: &[&[u8]],
    max_value: usize,
    pass: bool,
    counts: Option<Arc<BodyCounts>>,
) -> Result<String, &'static str> {
    let mut rw = Rewriter::new(m.cloned(), l.cloned(), counts, max_value, pass);
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let end = i + 1 == frames.len();
        out.extend_from_slice(&rw.on_data(Bytes::copy_from_slice(f), end)?);
    }
    if frames.is_empty() {
        out.extend_from_slice(&rw.on_data(Bytes::new(), true)?);
    }
    Ok(String::from_utf8(out).unwrap())
}

fn one(m: Option<&Arc<MaskPlan>>, l: Option<&Arc<FieldList>>, body: &Value) -> Value {
    let text = serde_json::to_string_pretty(body).unwrap();
    let out = run(m, l, &[text.as_bytes()]).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn fields_are_masked_by_path_with_each_action() {
    let m = mask(json!({
        "fields": [
            { "path": "$.card.number", "action": "last4" },
            { "path": "$..ssn", "action": "redact" },
            { "path": "$.items[*].email", "action": "hash" },
            { "path": "$.internal", "action": "remove" },
            { "path": "$.profile", "action": "redact" },
        ],
        "hash_key": { "env": "RAMPART_TEST_MASK_KEY" },
    }));
    let body = json!({
        "card": { "number": "4111 1111 1111 1111", "brand": "visa" },
        "owner": { "ssn": "123-45-6789", "name": "Ann" },
        "items": [{ "email": "a@example.com", "n": 1 }, { "email": "a@example.com" }, { "n": 2 }],
        "internal": { "cost": 3 },
        "profile": { "deep": [1, "x\"]}", { "a": "}" }] },
        "ssn": 123456789,
        "none": { "ssn": null },
    });
    let out = one(Some(&m), None, &body);
    assert_eq!(out["card"]["number"], "**** **** **** 1111");
    assert_eq!(out["card"]["brand"], "visa");
    assert_eq!(out["owner"], json!({ "ssn": "[redacted]", "name": "Ann" }));
    let h = out["items"][0]["email"].as_str().unwrap();
    assert!(h.starts_with("hash:") && h.len() == 27, "{h}");
    assert_eq!(
        out["items"][1]["email"], h,
        "the same value hashes to the same token"
    );
    assert_eq!(out["items"][0]["n"], 1);
    assert_eq!(out["items"][2], json!({ "n": 2 }));
    assert!(out.get("internal").is_none());
    assert_eq!(out["profile"], "[redacted]");
    assert_eq!(
        out["ssn"], "[redacted]",
        "a number at a masked path becomes a string"
    );
    assert_eq!(
        out["none"]["ssn"],
        Value::Null,
        "a null has nothing to hide"
    );
}

#[test]
fn detectors_mask_values_inside_strings_and_numbers() {
    let m = mask(json!({
        "detect": [
            { "kind": "card", "action": "last4" },
            { "kind": "email", "action": "redact" },
            { "kind": "iban", "action": "hash" },
        ],
        "hash_key": { "env": "RAMPART_TEST_MASK_KEY" },
    }));
    let body = json!({
        "note": "pay with 4111111111111111 or write to ann@example.com\n",
        "n": 4111111111111111u64,
        "not_a_card": "4111111111111112",
        "iban": "DE89 3704 0044 0532 0130 00",
        "list": ["x", "bob@example.org", 7],
        "esc": "mail: ann\u{0040}example.com \u{00e9}",
    });
    let out = one(Some(&m), None, &body);
    assert_eq!(
        out["note"],
        "pay with ************1111 or write to [email]\n"
    );
    assert_eq!(out["n"], "************1111");
    assert_eq!(
        out["not_a_card"], "4111111111111112",
        "fails Luhn: left alone"
    );
    assert!(out["iban"].as_str().unwrap().starts_with("hash:"));
    assert_eq!(out["list"], json!(["x", "[email]", 7]));
    assert_eq!(out["esc"], "mail: [email] é");
    // An escape does not hide a value from the detectors.
    let raw = br#"{"e":"ann\u0040example.com","c":"\u0034111111111111111"}"#;
    assert_eq!(
        run(Some(&m), None, &[raw]).unwrap(),
        r#"{"e":"[email]","c":"************1111"}"#
    );
}

#[test]
fn an_allow_list_lets_only_the_named_paths_through() {
    let l = list(json!({ "allow": ["$.id", "$.name", "$.items[*].sku", "$.meta"] }));
    let body = json!({
        "id": 7, "name": "Ann", "password_hash": "x",
        "address": { "street": "Main St" },
        "items": [{ "sku": "A", "cost": 3, "secret": { "k": 1 } }, { "sku": "B" }, 5, []],
        "meta": { "deep": { "x": [1, 2] } },
    });
    let out = one(None, Some(&l), &body);
    assert_eq!(
        out,
        json!({
            "id": 7, "name": "Ann",
            "items": [{ "sku": "A" }, { "sku": "B" }, []],
            "meta": { "deep": { "x": [1, 2] } },
        })
    );
    // The same at every split of the body.
    let text = serde_json::to_string_pretty(&body).unwrap();
    let want = one(None, Some(&l), &body);
    for i in 0..=text.len() {
        let got = run(
            None,
            Some(&l),
            &[&text.as_bytes()[..i], &text.as_bytes()[i..]],
        )
        .unwrap();
        let got: Value = serde_json::from_str(&got).unwrap_or_else(|e| panic!("{i}: {e}: {got}"));
        assert_eq!(got, want, "split at {i}");
    }
    let deny = list(json!({ "deny": ["$..secret", "$.items[0]"] }));
    let out = one(None, Some(&deny), &body);
    assert!(out.get("password_hash").is_some());
    assert_eq!(out["items"], json!([{ "sku": "B" }, 5, []]));
    assert!(!out.to_string().contains("secret"));
}

#[test]
fn masking_and_a_field_list_apply_together() {
    let m = mask(json!({ "detect": [{ "kind": "email", "action": "redact" }] }));
    let l = list(json!({ "allow": ["$.users[*].contact"] }));
    let body = json!({ "users": [{ "contact": "c@example.com", "pw": "p" }], "x": 1 });
    assert_eq!(
        one(Some(&m), Some(&l), &body),
        json!({ "users": [{ "contact": "[email]" }] })
    );
}

#[test]
fn a_value_split_across_frames_is_masked_at_every_split() {
    let m = mask(json!({
        "fields": [{ "path": "$.a[*].k", "action": "redact" }, { "path": "$.q", "action": "redact" }],
        "detect": [{ "kind": "card", "action": "last4" }],
    }));
    let l = list(json!({ "deny": ["$.drop"] }));
    let body = br#" {"a": [ {"k": "v\"1", "card": "4111 1111 1111 1111"}, {"k": 2} ],
        "drop": {"x": "4111111111111111"}, "\u0071": "s", "t": true, "n": -1.5e3, "z": null, "e": {}, "f": [] } "#;
    let whole = run(Some(&m), Some(&l), &[body]).unwrap();
    assert_eq!(
        whole,
        // Copied as it came but for what was masked or dropped (the member after a
        // dropped one is written anew, without the whitespace around its name).
        r#" {"a": [ {"k": "[redacted]", "card": "**** **** **** 1111"}, {"k": "[redacted]"} ],"\u0071":"[redacted]", "t": true, "n": -1.5e3, "z": null, "e": {}, "f": [] } "#
    );
    // Split anywhere, the same document (a member name that ends a frame is written
    // anew, so whitespace around it may differ).
    let want: Value = serde_json::from_str(&whole).unwrap();
    for i in 0..=body.len() {
        for j in i..=body.len() {
            let got = run(Some(&m), Some(&l), &[&body[..i], &body[i..j], &body[j..]]).unwrap();
            let got: Value = serde_json::from_str(&got)
                .unwrap_or_else(|e| panic!("split at {i}, {j}: {e}: {got}"));
            assert_eq!(got, want, "split at {i}, {j}");
        }
    }
}

#[test]
fn counts_record_rules_never_values() {
    let m = mask(json!({
        "fields": [{ "path": "$..ssn", "action": "redact" }],
        "detect": [{ "kind": "email", "action": "redact" }],
    }));
    let names: Arc<[Box<str>]> = vec!["$..ssn".into(), "email".into()].into();
    let counts = Arc::new(BodyCounts::new("mask", names));
    let body = br#"{"ssn":"1","b":{"ssn":"2"},"m":"a@example.com b@example.com"}"#;
    run_with(
        Some(&m),
        None,
        &[body],
        1 << 20,
        false,
        Some(counts.clone()),
    )
    .unwrap();
    let got: Vec<(usize, String, u32)> = counts
        .nonzero()
        .map(|(i, n, c)| (i, n.to_owned(), c))
        .collect();
    assert_eq!(got, vec![(0, "$..ssn".into(), 2), (1, "email".into(), 2)]);
}

#[test]
fn a_body_cut_short_still_counts_what_was_masked() {
    let m = mask(json!({ "fields": [{ "path": "$..ssn", "action": "redact" }] }));
    let counts = Arc::new(BodyCounts::new("mask", vec!["$..ssn".into()].into()));
    let mut rw = Rewriter::new(Some(m), None, Some(counts.clone()), 1 << 20, false);
    let out = rw
        .on_data(
            Bytes::from_static(br#"[{"ssn":"1"},{"ssn":"2"},{"ss"#),
            false,
        )
        .unwrap();
    assert!(!String::from_utf8_lossy(&out).contains(r#""1""#));
    // The client's connection ends here: the rewriter is dropped mid-body.
    drop(rw);
    let got: Vec<u32> = counts.nonzero().map(|(_, _, c)| c).collect();
    assert_eq!(got, vec![2]);
}

#[test]
fn what_cannot_be_followed_is_refused_or_passed_as_configured() {
    let m = mask(json!({ "detect": [{ "kind": "email", "action": "redact" }] }));
    for bad in [
        &br#"{"a":1,}"#[..],
        br#"{"a" 1}"#,
        br#"{"a":1]"#,
        br#"[1 2]"#,
        br#"{"a":tru}"#,
        br#"{"a":01}"#,
        br#"{"a":"x"} x"#,
        br#"{"a":"x"#,
        b"<html>",
        br#"{"a":"\q"}"#,
        b"{\"a\":\"\xffann@example.com\"}",
    ] {
        assert_eq!(
            run(Some(&m), None, &[bad]),
            Err("mask.unparseable"),
            "{bad:?}"
        );
    }
    // Found by the fuzz target: a fault right after a comma, in the second frame.
    let body =
        b"[{\"secret\":{\"k\":\"v\"1},[{\"secret\":{\"k\":\"v\"}},0040x.\xfacot\"]0040x.com\"]";
    for cut in 0..=body.len() {
        let frames: [&[u8]; 2] = [&body[..cut], &body[cut..]];
        assert_eq!(
            crate::fuzz_rewrite(&frames, 1 << 16, false),
            Err("mask.unparseable")
        );
        crate::fuzz_rewrite(&frames, 64, true).unwrap();
    }
    // Nesting past 512 is not followed.
    let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
    assert_eq!(
        run(Some(&m), None, &[deep.as_bytes()]),
        Err("mask.too_deep")
    );
    let ok = format!("{}{}", "[".repeat(512), "]".repeat(512));
    assert_eq!(run(Some(&m), None, &[ok.as_bytes()]).unwrap(), ok);
    // Bytes that are not UTF-8 in a value no detector could match pass as they came.
    let mut rw = Rewriter::new(Some(m.clone()), None, None, 1 << 20, false);
    let out = rw
        .on_data(Bytes::from_static(b"{\"a\":\"\xff\"}"), true)
        .unwrap();
    assert_eq!(&out[..], b"{\"a\":\"\xff\"}");
    assert_eq!(run(Some(&m), None, &[]).unwrap(), "");
    assert_eq!(run(Some(&m), None, &[b" \n"]).unwrap(), " \n");
    // Too long to hold: refused, or (pass) the rest goes unmasked.
    let long = format!(r#"{{"a":"{}","b":"c@example.com"}}"#, "x".repeat(100));
    let r = run_with(Some(&m), None, &[long.as_bytes()], 64, false, None);
    assert_eq!(r, Err("mask.value_too_large"));
    let r = run_with(Some(&m), None, &[long.as_bytes()], 64, true, None).unwrap();
    assert_eq!(r, long);
    let r = run_with(
        Some(&m),
        None,
        &[br#"{"a":"b@example.com","c":,"d":"e@example.com"}"#],
        64,
        true,
        None,
    )
    .unwrap();
    assert_eq!(r, r#"{"a":"[email]","c":,"d":"e@example.com"}"#);
}

/// A JSON value with card numbers, e-mails and noise planted at random places.
pub(super) fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!("4111 1111 1111 1111")),
        Just(json!(5500005555555559u64)),
        Just(json!("card 4012-8888-8888-1881 on file")),
        Just(json!("ann@example.com")),
        "[a-z0-9 @.\"\\\\-]{0,12}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every string and number of `v`, as text.
fn texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            texts(x, out)
        }),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Masking never leaves a valid card number a detector would find, the output is
    /// valid JSON, and framing does not change it.
    #[test]
    fn no_card_number_survives_masking(v in value(), split in 0usize..4096) {
        let m = mask(json!({ "detect": [
            { "kind": "card", "action": "last4" },
            { "kind": "email", "action": "redact" },
        ] }));
        let text = serde_json::to_string(&v).unwrap();
        let at = split % (text.len() + 1);
        let whole = run(Some(&m), None, &[text.as_bytes()]).unwrap();
        let split = run(Some(&m), None, &[&text.as_bytes()[..at], &text.as_bytes()[at..]]).unwrap();
        prop_assert_eq!(&whole, &split);
        let out: Value = serde_json::from_str(&whole).unwrap();
        let mut all = Vec::new();
        texts(&out, &mut all);
        for t in all {
            let mut found = Vec::new();
            pii::find_all(&t, &[PiiKind::Card, PiiKind::Email], &mut found);
            prop_assert!(found.is_empty(), "{} still holds {:?}", t, found);
        }
    }
}

/// Not a test: the rewriter's speed on a 10 KB response, for profiling
/// (`cargo test --release -p rampart-transform -- --ignored speed --nocapture`;
/// `SPEED_ONLY=none`, `fields`, `masked` or `allow` runs one case, for callgrind).
#[test]
#[ignore]
fn speed() {
    let Ok(body) = std::fs::read("../../bench/out-mask/files/10k.json") else {
        return;
    };
    let fields = mask(json!({ "fields": [
        { "path": "$..card.number", "action": "last4" }, { "path": "$..ssn", "action": "redact" }] }));
    let full = mask(json!({
        "fields": [{ "path": "$..card.number", "action": "last4" }, { "path": "$..ssn", "action": "redact" }],
        "detect": [{ "kind": "card", "action": "last4" }, { "kind": "email", "action": "hash" }, { "kind": "phone", "action": "redact" }],
        "hash_key": { "env": "RAMPART_TEST_MASK_KEY" },
    }));
    // A rule that matches nothing: the cost of reading the body.
    let none = mask(json!({ "fields": [{ "path": "$..nothing", "action": "redact" }] }));
    let only = std::env::var("SPEED_ONLY").ok();
    for (name, m) in [("none", none), ("fields", fields), ("masked", full)] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let n = 2000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let mut rw = Rewriter::new(Some(m.clone()), None, None, 1 << 20, false);
            let out = rw.on_data(Bytes::copy_from_slice(&body), true).unwrap();
            std::hint::black_box(out);
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "{name}: {:.0} ns per body, {:.2} ns/byte",
            ns,
            ns / body.len() as f64
        );
    }
    // An allow-list that keeps two members of each record: most of the body is skipped.
    if only.is_some_and(|o| o != "allow") {
        return;
    }
    let allow = list(json!({ "allow": ["$.data[*].id", "$.data[*].name"] }));
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut rw = Rewriter::new(None, Some(allow.clone()), None, 1 << 20, false);
        let out = rw.on_data(Bytes::copy_from_slice(&body), true).unwrap();
        std::hint::black_box(out);
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "allow-list: {ns:.0} ns per body, {:.2} ns/byte",
        ns / body.len() as f64
    );
}

#[test]
fn string_end_finds_the_first_quote_or_backslash() {
    for len in 0..200 {
        for at in 0..=len {
            for stop in [b'"', b'\\'] {
                let mut b = vec![b'a'; len];
                // Bytes one off the stops, and high bytes, must not match.
                for (i, c) in b.iter_mut().enumerate() {
                    *c = [b'a', b'!', b'#', b'[', b']', 0xe9, b'\x7f'][i % 7];
                }
                if at < len {
                    b[at] = stop;
                }
                assert_eq!(string_end(&b), at, "len {len}, at {at}");
            }
        }
    }
}
