use super::*;

/// Scans `doc` whole, and again one byte at a time; both must agree (frames may split a
/// token anywhere).
fn scan_with(limits: JsonLimits, doc: &[u8]) -> Result<(), JsonViolation> {
    let mut whole = JsonScanner::new(limits);
    let whole = whole.feed(doc).and_then(|()| whole.finish());
    let mut bytes = JsonScanner::new(limits);
    let mut split = Ok(());
    for b in doc {
        split = bytes.feed(std::slice::from_ref(b));
        if split.is_err() {
            break;
        }
    }
    let split = split.and_then(|()| bytes.finish());
    assert_eq!(
        whole,
        split,
        "whole and byte-by-byte disagree on {:?}",
        String::from_utf8_lossy(doc)
    );
    whole
}

fn scan(doc: &str) -> Result<(), JsonViolation> {
    scan_with(JsonLimits::default(), doc.as_bytes())
}

#[test]
fn accepts_ordinary_documents() {
    for doc in [
        r#"{}"#,
        r#"[]"#,
        r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
        r#"  [ 1 , -0 , 0.5 , -12.5e+3 , 1E-2 , 2e5 ]  "#,
        r#""top-level string""#,
        "42",
        "-0.0e0",
        "true",
        "null",
        r#"{"esc":"\"\\\/\b\f\n\r\t","u":"\u00e9\u4e2d\uD83D\uDE00"}"#,
        "{\"utf8\":\"caf\u{e9} \u{4e2d} \u{1F600}\"}",
        r#"[[[[]]],[{}],[{"a":[]}]]"#,
        "\n\t{\r\n\"a\" : [ ] }\n",
    ] {
        assert_eq!(scan(doc), Ok(()), "{doc}");
    }
}

#[test]
fn refuses_malformed_documents() {
    for doc in [
        "", "   ", "{", "[", "{\"a\"", "{\"a\":", "[1,", "\"open", "tru", "-", "1.", "1e", "1e+",
    ] {
        let r = scan(doc);
        assert!(
            matches!(r, Err(JsonViolation::Truncated | JsonViolation::Syntax)),
            "{doc:?}: {r:?}"
        );
    }
    for doc in [
        "{,}",
        "[1,]",
        "{\"a\":1,}",
        "[1 2]",
        "{\"a\" 1}",
        "{1:2}",
        "['a']",
        "+1",
        ".5",
        "1.e5",
        "-a",
        "tRue",
        "nul l",
        "[}",
        "{]",
        "\"\\x\"",
        "\"\\u12G4\"",
        "\"tab\there\"",
        "]",
    ] {
        assert_eq!(scan(doc), Err(JsonViolation::Syntax), "{doc:?}");
    }
    // A leading zero or a stray closer ends the value early: what follows is extra.
    assert_eq!(scan("01"), Err(JsonViolation::TrailingData));
    assert_eq!(scan("{\"a\":1}}"), Err(JsonViolation::TrailingData));
}

#[test]
fn refuses_anything_after_the_top_level_value() {
    assert_eq!(scan("{} {}"), Err(JsonViolation::TrailingData));
    assert_eq!(scan("[1]x"), Err(JsonViolation::TrailingData));
    assert_eq!(scan("1 2"), Err(JsonViolation::TrailingData));
    assert_eq!(scan("{}\n  "), Ok(()));
}

#[test]
fn refuses_duplicate_member_names_after_decoding_escapes() {
    assert_eq!(scan(r#"{"a":1,"a":2}"#), Err(JsonViolation::DuplicateName));
    assert_eq!(
        scan(r#"{"a":1,"\u0061":2}"#),
        Err(JsonViolation::DuplicateName)
    );
    assert_eq!(
        scan(r#"{"role":"user","r\u006fle":"admin"}"#),
        Err(JsonViolation::DuplicateName)
    );
    // The same name in different objects, or as a value, is fine.
    assert_eq!(
        scan(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}],"c":"a"}"#),
        Ok(())
    );
    // Case matters in JSON names.
    assert_eq!(scan(r#"{"a":1,"A":2}"#), Ok(()));
    // An inner object's names are forgotten when it closes; the outer's are kept.
    assert_eq!(
        scan(r#"{"a":{"x":1,"y":{"z":1}},"x":2,"y":3,"a":4}"#),
        Err(JsonViolation::DuplicateName)
    );
}

#[test]
fn refuses_duplicate_names_in_large_objects() {
    // Past the linear scan the names move to a set: a duplicate of the first name, of
    // one from before the move and of one after it are all found.
    let members = |n: usize| (0..n).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>();
    let ok = format!("{{{}}}", members(40).join(","));
    assert_eq!(scan(&ok), Ok(()));
    for dup in ["k0", "k15", "k16", "k39"] {
        let doc = format!("{{{},\"{dup}\":0}}", members(40).join(","));
        assert_eq!(scan(&doc), Err(JsonViolation::DuplicateName), "{dup}");
    }
    // A large inner object, closed, leaves the outer object's names intact.
    let doc = format!(
        "{{\"a\":1,\"inner\":{{{}}},\"k3\":1,\"a\":2}}",
        members(40).join(",")
    );
    assert_eq!(scan(&doc), Err(JsonViolation::DuplicateName));
}

#[test]
fn refuses_invalid_utf8() {
    for bad in [
        &b"\"\xff\""[..],
        b"\"\xc0\xaf\"",         // overlong '/'
        b"\"\xe0\x80\xaf\"",     // overlong, three bytes
        b"\"\xed\xa0\x80\"",     // a surrogate encoded as UTF-8
        b"\"\xf4\x90\x80\x80\"", // above U+10FFFF
        b"\"\xe4\xb8\"",         // truncated sequence
        b"\"\x80\"",             // lone continuation byte
    ] {
        assert_eq!(
            scan_with(JsonLimits::default(), bad),
            Err(JsonViolation::InvalidUtf8),
            "{bad:?}"
        );
    }
}

#[test]
fn reads_utf8_runs_as_byte_by_byte_does() {
    // Strings and names of random bytes, most of them UTF-8 (valid, cut short, or not
    // UTF-8 at all), under tight and loose limits: the run taken whole and the same
    // bytes fed one at a time (`scan_with` compares them) agree, and a string within the
    // limits is accepted exactly when it is UTF-8.
    let pieces: [&[u8]; 14] = [
        b"a",
        b" ",
        "\u{e9}".as_bytes(),
        "\u{4e2d}".as_bytes(),
        "\u{1F600}".as_bytes(),
        b"\xc3",
        b"\xe4\xb8",
        b"\x80",
        b"\xff",
        b"\xed\xa0\x80",
        b"\xc0",
        b"\xe0\x80",
        b"\xf4\x90\x80",
        b"\xf0\x9f",
    ];
    let mut numbers = crate::openapi::tape::tests::numbers(0x2545_f491_4f6c_dd1d);
    let mut next = move |n: u64| numbers() % n;
    for _ in 0..6000 {
        let mut text = Vec::new();
        for _ in 0..next(12) {
            text.extend_from_slice(pieces[next(14) as usize]);
        }
        let limits = JsonLimits {
            max_string_bytes: 1 + next(40) as u32,
            max_name_bytes: 1 + next(40) as u32,
            ..JsonLimits::default()
        };
        for doc in [
            [&b"[\""[..], &text, b"\"]"].concat(),
            [&b"{\""[..], &text, b"\":1}"].concat(),
        ] {
            let got = scan_with(limits, &doc);
            if std::str::from_utf8(&text).is_err() {
                assert_ne!(got, Ok(()), "{text:?}");
            } else if text.len() <= 1 {
                assert_eq!(got, Ok(()), "{text:?}");
            }
            let loose = scan_with(JsonLimits::default(), &doc);
            let want = match std::str::from_utf8(&text) {
                Ok(_) => Ok(()),
                Err(_) => Err(JsonViolation::InvalidUtf8),
            };
            assert_eq!(loose, want, "{text:?}");
        }
    }
}

#[test]
fn refuses_lone_surrogates() {
    for doc in [
        r#""\uD800""#,
        r#""\uDC00""#,
        r#""\uD83Dx""#,
        r#""\uD83D\n""#,
        r#""\uD83D\u0041""#,
        r#"{"\uDFFF":1}"#,
    ] {
        assert_eq!(scan(doc), Err(JsonViolation::LoneSurrogate), "{doc}");
    }
}

#[test]
fn allows_depth_equal_to_limit_and_refuses_one_more() {
    let limits = JsonLimits {
        max_depth: 3,
        ..JsonLimits::default()
    };
    assert_eq!(scan_with(limits, b"[[{\"a\":1}]]"), Ok(()));
    assert_eq!(scan_with(limits, b"[[[[]]]]"), Err(JsonViolation::Depth));
    // The default stops a classic nesting bomb at once, with bounded work.
    let bomb = "[".repeat(1_000_000);
    let mut s = JsonScanner::new(JsonLimits::default());
    assert_eq!(s.feed(bomb.as_bytes()), Err(JsonViolation::Depth));
}

#[test]
fn counts_members_items_and_entries() {
    let limits = JsonLimits {
        max_object_members: 2,
        max_array_items: 3,
        max_entries: 6,
        ..JsonLimits::default()
    };
    assert_eq!(scan_with(limits, br#"{"a":1,"b":2}"#), Ok(()));
    assert_eq!(
        scan_with(limits, br#"{"a":1,"b":2,"c":3}"#),
        Err(JsonViolation::ObjectMembers)
    );
    assert_eq!(scan_with(limits, b"[1,2,3]"), Ok(()));
    assert_eq!(
        scan_with(limits, b"[1,2,3,4]"),
        Err(JsonViolation::ArrayItems)
    );
    // Empty containers hold no entries.
    assert_eq!(scan_with(limits, b"[[],[],[]]"), Ok(()));
    assert_eq!(scan_with(limits, br#"[{},{},{"a":[]}]"#), Ok(()));
    // 3 items + 2 members + 2 items = 7 entries in all.
    assert_eq!(
        scan_with(limits, br#"[1,{"a":1,"b":2},[1,2]]"#),
        Err(JsonViolation::Entries)
    );
}

#[test]
fn allows_string_name_and_number_lengths_equal_to_limits() {
    let limits = JsonLimits {
        max_string_bytes: 4,
        max_name_bytes: 3,
        max_number_bytes: 5,
        ..JsonLimits::default()
    };
    assert_eq!(scan_with(limits, br#"{"abc":"abcd"}"#), Ok(()));
    assert_eq!(
        scan_with(limits, br#"{"abcd":1}"#),
        Err(JsonViolation::NameLength)
    );
    assert_eq!(
        scan_with(limits, br#"["abcde"]"#),
        Err(JsonViolation::StringLength)
    );
    // Lengths are of decoded bytes: one escape is one byte, é is two.
    assert_eq!(scan_with(limits, br#"["\n\t\"\\"]"#), Ok(()));
    assert_eq!(scan_with(limits, "[\"\u{e9}\u{e9}\"]".as_bytes()), Ok(()));
    assert_eq!(
        scan_with(limits, "[\"\u{e9}\u{e9}x\"]".as_bytes()),
        Err(JsonViolation::StringLength)
    );
    assert_eq!(scan_with(limits, b"[-1.25]"), Ok(()));
    assert_eq!(
        scan_with(limits, b"[-1.255]"),
        Err(JsonViolation::NumberLength)
    );
    assert_eq!(
        scan_with(limits, b"123456"),
        Err(JsonViolation::NumberLength)
    );
}

#[test]
fn a_violation_is_final() {
    let mut s = JsonScanner::new(JsonLimits::default());
    assert_eq!(s.feed(b"[1,,"), Err(JsonViolation::Syntax));
    assert_eq!(s.feed(b"2]"), Err(JsonViolation::Syntax));
    assert_eq!(s.finish(), Err(JsonViolation::Syntax));
}

#[test]
fn tells_json_bodies_by_their_first_byte() {
    assert_eq!(JsonScanner::looks_like_json(b"  \n{\"a\":1}"), Some(true));
    assert_eq!(JsonScanner::looks_like_json(b"[1]"), Some(true));
    assert_eq!(JsonScanner::looks_like_json(b"a=1&b=2"), Some(false));
    assert_eq!(JsonScanner::looks_like_json(b"  "), None);
}

#[test]
fn codes_are_stable_and_sizes_are_413() {
    assert_eq!(JsonViolation::Depth.problem().code, "json.depth");
    assert_eq!(
        JsonViolation::DuplicateName.problem().code,
        "json.duplicate_name"
    );
    assert_eq!(JsonViolation::StringLength.problem().status, 413);
    assert_eq!(JsonViolation::Syntax.problem().status, 400);
}

#[test]
fn agrees_with_serde_json_on_what_is_json() {
    // Documents without duplicate names or lone surrogates: both must accept or refuse.
    for doc in [
        "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\"}",
        "[1.5e3,-0,0]",
        "[01]",
        "{\"a\":1,}",
        "\"\\ud83d\\ude00\"",
        "[1e]",
        " {} ",
    ] {
        let ours = scan(doc).is_ok();
        let theirs = serde_json::from_str::<serde_json::Value>(doc).is_ok();
        assert_eq!(ours, theirs, "{doc}");
    }
}

/// Not a test: the scanner's speed on the bench's 64 KB array of orders, for profiling
/// (`cargo test --release -p rampart-inspect -- --ignored scanner_speed --nocapture`,
/// after `bash bench/inspect.sh` wrote the body).
#[test]
#[ignore]
fn scanner_speed() {
    let Ok(body) = std::fs::read("../../bench/out-inspect/big.json") else {
        return;
    };
    let rounds = 500;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        let mut s = JsonScanner::new(JsonLimits::default());
        // In 16 KB frames, as a body arrives.
        for frame in body.chunks(16 * 1024) {
            s.feed(std::hint::black_box(frame)).expect("valid");
        }
        s.finish().expect("complete");
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(rounds);
    eprintln!(
        "{} bytes: {ns:.0} ns per body, {:.2} ns/byte",
        body.len(),
        ns / body.len() as f64
    );
}
