use jsonschema::json::{Array, Node, Object};
use jsonschema::types::JsonType;
use serde_json::json;

use super::*;

fn round_trip(doc: &str) -> Value {
    let tape = Tape::parse(&Bytes::from(doc.to_owned())).expect(doc);
    tape.to_value(0)
}

#[test]
fn reads_what_serde_json_reads() {
    for doc in [
        r#"{"a":[1,-2.5e3,true,false,null,"x"],"b":{"c":{}},"d":[],"e":"caf\u00e9 \"q\" \n"}"#,
        r#"  [ {"k" : "\ud83d\ude00"} , 0 , "plain" ]  "#,
        "\"just a string\"",
        "12",
    ] {
        assert_eq!(
            round_trip(doc),
            serde_json::from_str::<Value>(doc).unwrap(),
            "{doc}"
        );
    }
}

/// A pseudo-random number source for generated documents.
pub(crate) fn numbers(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A pseudo-random document: every kind of value, strings with escapes and non-ASCII.
fn gen(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
    match next() % if depth > 4 { 5 } else { 7 } {
        0 => Value::Null,
        1 => Value::Bool(next() % 2 == 0),
        2 => Value::from(next() as i64 >> (next() % 60)),
        3 => Value::from((next() % 100_000) as f64 / 7.0),
        4 => {
            let s: String = (0..next() % 12)
                .map(|_| ['a', 'é', '"', '\\', '\n', '😀', '\u{1}', ' '][(next() % 8) as usize])
                .collect();
            Value::String(s)
        }
        5 => Value::Array((0..next() % 5).map(|_| gen(next, depth + 1)).collect()),
        _ => Value::Object(
            (0..next() % 5)
                .map(|i| (format!("k{i}\u{e9}"), gen(next, depth + 1)))
                .collect(),
        ),
    }
}

#[test]
fn agrees_with_serde_json_on_generated_documents() {
    // Pseudo-random documents, written compact and pretty: same value back.
    let mut next = numbers(0x2545_f491_4f6c_dd1d);
    for _ in 0..2000 {
        let v = gen(&mut next, 0);
        for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
            assert_eq!(round_trip(&text), v, "{text}");
        }
    }
}

#[test]
fn the_tape_the_json_limits_record_is_the_parsed_one() {
    // The same documents, behind some whitespace the scanner is not shown (as the JSON
    // limits skip it), fed to the scanner in pieces of every size: the recorded tape
    // reads back as the document.
    let mut next = numbers(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let v = gen(&mut next, 0);
        for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
            let skipped = (next() % 3) as usize;
            let body = format!("{}{text}\n", " ".repeat(skipped));
            let mut scanner =
                crate::JsonScanner::new(crate::JsonLimits::default()).record(skipped as u64, 0);
            let mut rest = &body.as_bytes()[skipped..];
            while !rest.is_empty() {
                let n = (1 + next() % 40).min(rest.len() as u64) as usize;
                scanner.feed(&rest[..n]).expect(&text);
                rest = &rest[n..];
            }
            scanner.finish().expect(&text);
            let entries = scanner.into_tape().expect("recorded");
            let tape = Tape::recorded(&Bytes::from(body.clone()), entries).expect(&text);
            assert_eq!(tape.to_value(0), v, "{text}");
        }
    }
}

#[test]
fn refuses_what_is_not_json() {
    for doc in [
        "",
        "{",
        "[1,]",
        "{\"a\"}",
        "{\"a\":1,}",
        "01",
        "1.",
        "-",
        "\"\\x\"",
        "\"\u{1}\"",
        "[1] 2",
        "{a:1}",
        "\"\\ud800\"",
        "tru",
        "1e",
    ] {
        assert!(
            Tape::parse(&Bytes::from(doc.to_owned())).is_err(),
            "{doc:?}"
        );
    }
}

#[test]
fn walks_objects_and_arrays() {
    let tape = Tape::parse(&Bytes::from_static(br#"{"a":{"x":[1,[2,3],{}]},"b":"y"}"#)).unwrap();
    let root = tape.root();
    let obj = root.as_object().unwrap();
    assert_eq!(obj.len(), 2);
    let names: Vec<&str> = obj.members().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "b"]);
    let b = obj.get(&"b".to_string()).unwrap();
    assert_eq!(b.as_string().as_deref(), Some("y"));
    let x = obj
        .get(&"a".to_string())
        .unwrap()
        .as_object()
        .unwrap()
        .get(&"x".to_string())
        .unwrap();
    let items: Vec<JsonType> = x
        .as_array()
        .unwrap()
        .elements()
        .map(|n| n.json_type())
        .collect();
    assert_eq!(items, [JsonType::Number, JsonType::Array, JsonType::Object]);
}

#[test]
fn finds_a_member_named_twice_at_any_depth() {
    for (doc, twice) in [
        (r#"{"a":1,"b":2}"#, false),
        (r#"{"a":1,"a":2}"#, true),
        (r#"{"a":1,"\u0061":2}"#, true),
        (r#"[{"x":{"a":[],"b":{"c":1,"c":2}}}]"#, true),
        (r#"[{"a":1},{"a":1}]"#, false),
        (r#"{"a":{"a":{"a":1}}}"#, false),
    ] {
        let tape = Tape::parse(&Bytes::from(doc.to_owned())).unwrap();
        assert_eq!(tape.has_duplicate_names(), twice, "{doc}");
    }
}

#[test]
fn unique_items_and_enum_values_compare_as_json_does() {
    // The in-place comparisons agree with JSON equality (the validator's default, over
    // `serde_json` values), numbers and containers included.
    let mut next = numbers(0x0123_4567_89ab_cdef);
    let pick = |n: u64| -> Value {
        let vals = [
            json!("a"),
            json!("b"),
            json!("\u{e9}"),
            json!(true),
            json!(false),
            json!(null),
            json!(1),
            json!(1.0),
            json!(2),
            json!([]),
            json!({}),
            json!(["a"]),
        ];
        vals[n as usize % vals.len()].clone()
    };
    for _ in 0..3000 {
        let items: Vec<Value> = (0..next() % 6).map(|_| pick(next())).collect();
        let mut text = serde_json::to_string(&Value::Array(items.clone())).unwrap();
        if next() % 2 == 0 {
            // The same strings written with escapes.
            text = text.replace("\"a\"", "\"\\u0061\"");
        }
        let tape = Tape::parse(&Bytes::from(text.clone())).unwrap();
        let array = tape.root().as_array().unwrap();
        assert_eq!(
            array.is_unique(),
            jsonschema::json::unique::is_unique(&items),
            "{text}"
        );
        for (node, item) in array.elements().zip(&items) {
            let expected = pick(next());
            assert_eq!(
                node.equals_value(&expected),
                jsonschema::json::cmp::equal(item, &expected),
                "{item} vs {expected}"
            );
        }
    }
}
