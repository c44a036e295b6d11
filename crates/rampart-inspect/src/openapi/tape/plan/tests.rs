//! The plan never calls valid what `jsonschema` calls invalid: checked on thousands of
//! documents made by breaking a valid one at random, and it settles the valid ones
//! itself (it is not a plan that always says "not sure").

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::openapi::schema::build;
use crate::openapi::tape::tests::numbers;

/// The bench's order contract, as the schema compiler leaves it (2020-12, `$defs`,
/// `nullable` as a type list, exclusive bounds as numbers, `int32` as bounds).
fn order_schema() -> Value {
    let addr = json!({"type": "object", "required": ["line1", "city", "country"], "properties": {
        "line1": {"type": "string", "maxLength": 200}, "city": {"type": "string", "maxLength": 100},
        "postcode": {"type": "string", "pattern": "^[0-9A-Z -]{3,10}$"},
        "country": {"type": "string", "minLength": 2, "maxLength": 2}}});
    json!({"$ref": "#/$defs/d0", "$defs": {
        "d0": {"type": "object", "additionalProperties": false,
            "required": ["id", "customer", "items", "currency", "total"], "properties": {
            "id": {"type": "string", "pattern": "^ord_[0-9a-f]{32}$"},
            "customer": {"type": "object", "required": ["id", "email"], "properties": {
                "id": {"type": "string"}, "name": {"type": "string", "maxLength": 200},
                "email": {"type": "string", "format": "email"}, "address": addr}},
            "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"$ref": "#/$defs/d1"}},
            "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
            "total": {"type": "number", "minimum": 0}, "paid": {"type": "boolean"},
            "coupon": {"type": ["string", "null"]}, "note": {"type": "string", "maxLength": 1000},
            "created": {"type": "string", "format": "date-time"},
            "ref": {"type": "string", "format": "uuid"}}},
        "d1": {"type": "object", "required": ["sku", "qty", "unit_price"], "properties": {
            "sku": {"type": "string", "pattern": "^SKU-[0-9]{4}$"}, "title": {"type": "string"},
            "qty": {"type": "integer", "format": "int32", "minimum": -2147483648, "maximum": 2147483647},
            "unit_price": {"type": "number", "exclusiveMinimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "parts": {"type": "array", "items": {"$ref": "#/$defs/d1"}}}}}})
}

fn order() -> Value {
    json!({"id": "ord_0123456789abcdef0123456789abcdef",
        "customer": {"id": "c1", "name": "Ada Lovelace", "email": "ada.lovelace+orders@example.co.uk",
            "address": {"line1": "12 Analytical Row", "city": "London", "postcode": "NW1 6XE", "country": "GB"}},
        "items": [{"sku": "SKU-0001", "title": "Engine", "qty": 1, "unit_price": 19.99, "tags": ["a", "b"]},
                  {"sku": "SKU-0002", "qty": 3, "unit_price": 5, "parts": [{"sku": "SKU-0003", "qty": 2, "unit_price": 0.5}]}],
        "currency": "EUR", "total": 34.99, "paid": true, "coupon": null, "note": "café ☕",
        "created": "2026-12-04T10:00:00Z", "ref": "123e4567-e89b-12d3-a456-426614174000"})
}

fn tape(v: &Value) -> Tape {
    Tape::parse(&Bytes::from(v.to_string())).expect("a document")
}

fn plan(schema: &Value) -> Option<Plan> {
    Plan::compile(schema, &mut |one| build(one).ok())
}

/// Values near every edge the order's schema has.
fn edge(next: &mut impl FnMut() -> u64) -> Value {
    let pool = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(0.0),
        json!(1.0),
        json!(1.5),
        json!(1e2),
        json!(-0.0000000001),
        json!(2147483647),
        json!(2147483648i64),
        json!(-2147483649i64),
        json!(9007199254740993u64),
        json!(""),
        json!("x"),
        json!("GB"),
        json!("G"),
        json!("EUR"),
        json!("eur"),
        json!("SKU-1234"),
        json!("SKU-12345"),
        json!("ord_0123456789abcdef0123456789abcdeF"),
        json!("a@b.co"),
        json!("a..b@example.com"),
        json!("a@-b.com"),
        json!("a@b.c0"),
        json!("\"q\"@example.com"),
        json!("é@example.com"),
        json!("2026-02-30T10:00:00Z"),
        json!("123e4567-e89b-12d3-a456-42661417400"),
        json!("NW1 6XE"),
        json!("ab\u{e9}"),
        json!("\u{e9}\u{e9}"),
        json!(["a", "a"]),
        json!(["a", "b"]),
        json!([]),
        json!({}),
        json!({"sku": "SKU-0009", "qty": 1, "unit_price": 1}),
        json!("x".repeat(201)),
    ];
    pool[(next() % pool.len() as u64) as usize].clone()
}

/// Breaks `v` at one random place: a value replaced, a member removed or added.
fn mutate(v: &mut Value, next: &mut impl FnMut() -> u64) {
    match v {
        Value::Object(m) if !m.is_empty() && next() % 3 != 0 => {
            let k = m.keys().nth((next() % m.len() as u64) as usize).cloned();
            let k = k.unwrap_or_default();
            match next() % 4 {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(format!("extra{}", next() % 3), edge(next));
                }
                2 => {
                    m.insert(k, edge(next));
                }
                _ => mutate(m.get_mut(&k).expect("a member"), next),
            }
        }
        Value::Array(a) if !a.is_empty() && next() % 3 != 0 => {
            let i = (next() % a.len() as u64) as usize;
            match next() % 3 {
                0 => a[i] = edge(next),
                1 => a.push(edge(next)),
                _ => mutate(&mut a[i], next),
            }
        }
        other => *other = edge(next),
    }
}

#[test]
fn never_calls_valid_what_jsonschema_refuses() {
    let schema = order_schema();
    let validator = build::<TapeJson>(&schema).expect("compiles");
    let plan = plan(&schema).expect("the order's schema has a plan");
    let base = order();
    assert!(validator.is_valid(tape(&base).root()));
    assert!(plan.accepts(&tape(&base)), "the plan settles a valid order");
    let mut next = numbers(0x5eed_1234_abcd_0001);
    let (mut valid, mut settled) = (0, 0);
    for round in 0..6000 {
        let mut doc = base.clone();
        for _ in 0..1 + next() % 3 {
            mutate(&mut doc, &mut next);
        }
        let t = tape(&doc);
        let truth = validator.is_valid(t.root());
        let said = plan.accepts(&t);
        assert!(!said || truth, "round {round}: the plan called valid {doc}");
        valid += usize::from(truth);
        settled += usize::from(said);
    }
    // Most valid documents are settled by the plan alone (the rest: numbers it cannot
    // compare exactly, `1.0` as an integer, addresses outside the quick check).
    assert!(valid > 200, "{valid} valid documents");
    assert!(settled * 10 >= valid * 8, "settled {settled} of {valid}");
}

#[test]
fn numbers_it_cannot_compare_exactly_go_to_the_validator() {
    let schema = json!({"type": "object", "properties": {
        "n": {"type": "integer"}, "x": {"type": "number", "minimum": 0.1, "exclusiveMaximum": 10}}});
    let plan = plan(&schema).expect("a plan");
    let validator = build::<TapeJson>(&schema).expect("compiles");
    for (doc, settled) in [
        (r#"{"n": 3, "x": 5}"#, true),
        (r#"{"n": 3.0}"#, false),
        (r#"{"n": 1e2}"#, false),
        (r#"{"x": 0.1}"#, false),
        (r#"{"x": 0.10000000001}"#, false),
        (r#"{"x": 9.5}"#, true),
        (r#"{"x": 10}"#, false),
        // No bound to compare with: any integer is one.
        (r#"{"n": 12345678901234567890}"#, true),
        (r#"{"x": 12345678901234567890}"#, false),
    ] {
        let t = Tape::parse(&Bytes::from(doc)).expect(doc);
        assert_eq!(plan.accepts(&t), settled, "{doc}");
        if settled {
            assert!(validator.is_valid(t.root()), "{doc}");
        }
    }
}

#[test]
fn schemas_with_keywords_it_does_not_settle_get_no_plan() {
    for schema in [
        json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
        json!({"type": "object", "patternProperties": {"^x": {"type": "string"}}}),
        json!({"properties": {"a": {"not": {"type": "null"}}}}),
        json!({"type": "number", "multipleOf": 3}),
        json!({"enum": [1, 2]}),
        json!({"$ref": "https://example.com/s.json"}),
        json!({"type": "array", "prefixItems": [{"type": "string"}]}),
    ] {
        assert!(plan(&schema).is_none(), "{schema}");
    }
    // Annotations and extensions assert nothing, so they do not stand in the way.
    let s = json!({"type": "string", "description": "d", "example": "e", "x-internal": true});
    assert!(plan(&s).is_some());
}

#[test]
fn recursive_and_chained_refs_are_followed() {
    let schema = json!({"$ref": "#/$defs/a", "$defs": {
        "a": {"$ref": "#/$defs/b"},
        "b": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/a"}},
            "name": {"type": "string", "maxLength": 3}}}}});
    let plan = plan(&schema).expect("a plan");
    let ok = json!({"name": "abc", "kids": [{"name": "d", "kids": [{"kids": []}]}]});
    let bad = json!({"name": "abc", "kids": [{"name": "d", "kids": [{"name": "toolong"}]}]});
    assert!(plan.accepts(&tape(&ok)));
    assert!(!plan.accepts(&tape(&bad)));
}

#[test]
fn the_quick_email_check_is_stricter_than_the_format() {
    let format = build::<TapeJson>(&json!({"format": "email"})).expect("compiles");
    let mut next = numbers(0xe3a1_0000_0000_0042);
    let alphabet: Vec<char> = "ab9.-_+@@..\"é[]xn--:!".chars().collect();
    let mut accepted = 0;
    let mut cases: Vec<String> = [
        "a@b.co",
        "first.last+tag@mail.example.org",
        "a@b",
        "a@b.12",
        "a@xn--ls8h.la",
        "a@ab--cd.com",
        ".a@b.co",
        "a.@b.co",
        "a@b..co",
        "a@[127.0.0.1]",
        "@b.co",
        "a@",
        "a@b.co.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pick = |next: &mut dyn FnMut() -> u64, from: &[char], n: u64| -> String {
        (0..n)
            .map(|_| from[(next() % from.len() as u64) as usize])
            .collect()
    };
    let plain: Vec<char> = "aZ9.-_+".chars().collect();
    for _ in 0..20000 {
        // Random text, and addresses shaped like real ones with odd bytes in them.
        let len = 3 + next() % 14;
        cases.push(pick(&mut next, &alphabet, len));
        let (a, b, c) = (1 + next() % 6, 1 + next() % 6, 1 + next() % 4);
        let local = pick(&mut next, &plain, a);
        let (host, tld) = (pick(&mut next, &plain, b), pick(&mut next, &plain, c));
        cases.push(format!("{local}@{host}.{tld}"));
    }
    for s in &cases {
        if quick_email(s.as_bytes()) {
            accepted += 1;
            let t = tape(&Value::String(s.clone()));
            assert!(format.is_valid(t.root()), "quick check accepted {s:?}");
        }
    }
    assert!(accepted > 100, "{accepted}");
}

/// GitHub's REST API (272 operations; see `scripts/github-openapi-subset.py`).
fn github() -> crate::openapi::Document {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rampart/tests/data/github-subset.json");
    crate::openapi::Document::load(&path).expect("loads")
}

/// Each request body's media types and schemas in `doc`.
fn request_bodies(doc: &crate::openapi::Document) -> Vec<(&str, &Value)> {
    let mut out = Vec::new();
    for item in doc.root["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("a path item").values() {
            let Some(body) = op.get("requestBody") else {
                continue;
            };
            let body = doc.resolve(body).expect("resolves");
            for (media, m) in body["content"].as_object().into_iter().flatten() {
                if let Some(schema) = m.get("schema") {
                    out.push((media.as_str(), schema));
                }
            }
        }
    }
    out
}

#[test]
fn most_of_a_real_apis_request_bodies_get_a_plan() {
    let doc = github();
    let mut schemas = crate::openapi::schema::SchemaCompiler::new(&doc);
    for (_, schema) in request_bodies(&doc) {
        schemas.compile_body(schema, "test").expect("compiles");
    }
    let (bodies, planned) = schemas.bodies;
    eprintln!("{planned} of {bodies} request body schemas have a plan");
    assert!(bodies > 50 && planned * 2 > bodies, "{planned} of {bodies}");
}

#[test]
fn short_numbers_are_read_as_the_full_parser_reads_them() {
    let mut next = numbers(0x0f64_f64f_0000_0007);
    for _ in 0..50_000 {
        let digits = 1 + next() % 15;
        let mut text: String = (0..digits)
            .map(|_| char::from(b'0' + (next() % 10) as u8))
            .collect();
        if next() % 2 == 0 {
            let at = (next() % digits) as usize;
            text.insert(at.max(1), '.');
        }
        if next() % 3 == 0 {
            text.insert(0, '-');
        }
        let want: f64 = text.parse().expect("a number");
        let read = fast_f64(text.as_bytes()).map(|(v, _)| v);
        assert_eq!(read, Some(want), "{text}");
    }
    for text in ["1e5", "1234567890123456", "--1", "1.2.3", ""] {
        assert_eq!(fast_f64(text.as_bytes()), None, "{text}");
    }
}

/// `cargo test --release -p rampart-inspect -- --ignored plan_speed --nocapture`: the
/// bench's order through the plan and through the full validator.
#[test]
#[ignore]
fn plan_speed() {
    let schema = order_schema();
    let validator = build::<TapeJson>(&schema).expect("compiles");
    let plan = plan(&schema).expect("a plan");
    // PLAN_DOC=FILE: another order (the bench's `small.json`).
    let doc = match std::env::var_os("PLAN_DOC") {
        Some(f) => serde_json::from_slice(&std::fs::read(f).expect("PLAN_DOC")).expect("JSON"),
        None => order(),
    };
    let t = tape(&doc);
    let rounds = 200_000;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        assert!(plan.accepts(std::hint::black_box(&t)));
    }
    let planned = started.elapsed();
    let started = std::time::Instant::now();
    let full_rounds = if std::env::var_os("PLAN_ONLY").is_some() {
        0
    } else {
        rounds
    };
    for _ in 0..full_rounds {
        assert!(validator.is_valid(std::hint::black_box(&t).root()));
    }
    let full = started.elapsed();
    eprintln!(
        "plan {:?} per order, jsonschema {:?}",
        planned / rounds,
        full / rounds.max(1)
    );
}

/// A document shaped by `schema` (members, items, enum values, types as it says), with a
/// value at an edge here and there: most are valid, many are not.
fn shaped(schema: &Value, defs: &Value, next: &mut impl FnMut() -> u64, depth: u32) -> Value {
    let Some(o) = schema.as_object() else {
        return edge(next);
    };
    if depth > 8 || next() % 25 == 0 {
        return edge(next);
    }
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let target = &defs[r.trim_start_matches("#/$defs/")];
        return shaped(target, defs, next, depth + 1);
    }
    if let Some(Value::Array(e)) = o.get("enum") {
        if !e.is_empty() {
            return e[(next() % e.len() as u64) as usize].clone();
        }
    }
    let ty = match o.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) if !ts.is_empty() => ts[(next() % ts.len() as u64) as usize]
            .as_str()
            .unwrap_or(""),
        _ if o.contains_key("properties") => "object",
        _ if o.contains_key("items") => "array",
        _ => "",
    };
    let pick = |next: &mut dyn FnMut() -> u64, from: &[Value]| -> Value {
        from[(next() % from.len() as u64) as usize].clone()
    };
    match ty {
        "object" => {
            let mut m = serde_json::Map::new();
            for (k, s) in o
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if next() % 4 != 0 {
                    m.insert(k.clone(), shaped(s, defs, next, depth + 1));
                }
            }
            if next() % 8 == 0 {
                m.insert("extra".into(), edge(next));
            }
            Value::Object(m)
        }
        "array" => {
            let items = o.get("items").cloned().unwrap_or(Value::Bool(true));
            Value::Array(
                (0..next() % 4)
                    .map(|_| shaped(&items, defs, next, depth + 1))
                    .collect(),
            )
        }
        "string" => match o.get("format").and_then(Value::as_str) {
            Some("email") => pick(
                next,
                &[
                    json!("a@b.co"),
                    json!("first.last@example.org"),
                    json!("no-at"),
                    json!("a@b"),
                ],
            ),
            Some("date-time") => pick(
                next,
                &[json!("2026-12-04T10:00:00Z"), json!("2026-13-04T10:00:00Z")],
            ),
            Some("uri") => pick(next, &[json!("https://example.com/x"), json!("not a uri")]),
            _ => pick(
                next,
                &[
                    json!(""),
                    json!("a"),
                    json!("main"),
                    json!("Hello, world"),
                    json!("x".repeat(300)),
                    json!("é"),
                ],
            ),
        },
        "integer" => pick(
            next,
            &[
                json!(0),
                json!(1),
                json!(-1),
                json!(42),
                json!(100),
                json!(1000000),
                json!(1.0),
            ],
        ),
        "number" => pick(
            next,
            &[json!(0), json!(0.5), json!(-3.25), json!(1e3), json!(100)],
        ),
        "boolean" => Value::Bool(next() % 2 == 0),
        "null" => Value::Null,
        _ => edge(next),
    }
}

#[test]
fn never_calls_valid_what_jsonschema_refuses_on_a_real_apis_bodies() {
    let doc = github();
    let mut schemas = crate::openapi::schema::SchemaCompiler::new(&doc);
    let mut next = numbers(0x0009_17b0_d1e5_0001);
    let (mut checked, mut valid, mut settled) = (0, 0, 0);
    for (media, schema) in request_bodies(&doc) {
        if media != "application/json" {
            continue;
        }
        let translated = schemas.document(schema).expect("translates");
        let Some(plan) = plan(&translated) else {
            continue;
        };
        let validator = build::<TapeJson>(&translated).expect("compiles");
        let defs = translated.get("$defs").cloned().unwrap_or(Value::Null);
        for _ in 0..300 {
            let d = shaped(&translated, &defs, &mut next, 0);
            let t = tape(&d);
            let truth = validator.is_valid(t.root());
            let said = plan.accepts(&t);
            assert!(
                !said || truth,
                "the plan called valid {d} against {translated}"
            );
            checked += 1;
            valid += usize::from(truth);
            settled += usize::from(said);
        }
    }
    eprintln!("{checked} documents, {valid} valid, {settled} settled by the plan");
    assert!(checked > 10_000 && valid > 1000 && settled * 10 > valid * 7);
}
