use super::*;

fn kinds_in(text: &str) -> Vec<(PiiKind, &str)> {
    let mut out = Vec::new();
    find_all(text, &PiiKind::ALL, &mut out);
    out.iter()
        .map(|f| (f.kind, &text[f.start..f.end]))
        .collect()
}

fn one(kind: PiiKind, text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    find_all(text, &[kind], &mut out);
    out.iter().map(|f| &text[f.start..f.end]).collect()
}

#[test]
fn card_numbers_are_found_only_when_luhn_holds() {
    for card in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "2223003122003222",
    ] {
        assert_eq!(
            one(PiiKind::Card, &format!("paid with {card}, thanks")),
            [card]
        );
        assert!(is(PiiKind::Card, card), "{card}");
    }
    for not in [
        "4111111111111112",        // Luhn fails
        "1111111111111117",        // no card starts with 1
        "41111111111111110000",    // 20 digits
        "order 41111111111111111", // 17 digits that fail Luhn
        "v1.4111111111111111",     // after a dot: part of a version or decimal
        "4111111111111111.5",      // a decimal
        "id4111111111111111",      // inside a word
        "4111  1111 1111 1111",    // two spaces
    ] {
        assert!(one(PiiKind::Card, not).is_empty(), "{not}");
    }
    // Part of a longer number is not a number of its own.
    assert!(one(PiiKind::Card, "12345 4111 1111 1111 1111").is_empty());
}

#[test]
fn luhn_generated_numbers_are_cards_and_one_digit_off_are_not() {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 13 + (x % 7) as usize;
        let mut digits: Vec<u8> = (0..len - 1)
            .map(|k| b'0' + ((x >> (k * 3 % 60)) % 10) as u8)
            .collect();
        digits[0] = b'4';
        let check = (0..10u8)
            .map(|d| {
                let mut n = digits.clone();
                n.push(b'0' + d);
                n
            })
            .find(|n| luhn(n))
            .unwrap();
        let text = String::from_utf8(check.clone()).unwrap();
        assert!(is(PiiKind::Card, &text), "{text}");
        let mut off = check;
        let last = off.len() - 1;
        off[last] = b'0' + (off[last] - b'0' + 1) % 10;
        let text = String::from_utf8(off).unwrap();
        assert!(!is(PiiKind::Card, &text), "{text}");
    }
}

#[test]
fn ibans_need_their_country_length_and_checksum() {
    for iban in [
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
    ] {
        assert_eq!(one(PiiKind::Iban, &format!("to {iban}.")), [iban]);
    }
    for not in [
        "DE89370400440532013001", // checksum
        "DE8937040044053201300",  // length for DE
        "XX89370400440532013000", // no such country
        "de89370400440532013000", // lower case
    ] {
        assert!(one(PiiKind::Iban, not).is_empty(), "{not}");
    }
}

#[test]
fn emails_phones_and_ssns() {
    assert_eq!(
        one(
            PiiKind::Email,
            "write to jane.doe+tag@mail.example.co.uk. or @home"
        ),
        ["jane.doe+tag@mail.example.co.uk"]
    );
    for not in [
        "a@b",
        "a@b.c",
        "a@-b.com",
        "a.@b.com",
        "@example.com",
        "a@b..com",
    ] {
        assert!(one(PiiKind::Email, not).is_empty(), "{not}");
    }
    assert_eq!(
        one(PiiKind::Phone, "call +44 20 7946 0958 or +1-202-555-0143"),
        ["+44 20 7946 0958", "+1-202-555-0143"]
    );
    for not in [
        "+0123456789",
        "+1234567",
        "1+2345678901",
        "+1234567890123456",
    ] {
        assert!(one(PiiKind::Phone, not).is_empty(), "{not}");
    }
    assert_eq!(
        one(PiiKind::Ssn, "SSN 078-05-1120 on file"),
        ["078-05-1120"]
    );
    for not in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "1123-45-6789",
        "123-45-67890",
    ] {
        assert!(one(PiiKind::Ssn, not).is_empty(), "{not}");
    }
}

#[test]
fn jwts_api_keys_and_addresses() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert_eq!(one(PiiKind::Jwt, &format!("Bearer {jwt}.")), [jwt]);
    // Looks like one, but its header is not a JOSE header.
    assert!(one(PiiKind::Jwt, "eyJmb28iOjF9.eyJ4IjoxfQ.c2ln").is_empty());
    assert!(one(PiiKind::Jwt, "eyJhbGciOiJIUzI1NiJ9").is_empty());

    for key in [
        "AKIAIOSFODNN7EXAMPLE",
        "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",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "xoxb-2045762113-1294710358294-4lSAAr0pmbmsv",
    ] {
        assert_eq!(one(PiiKind::ApiKey, &format!("key={key}&x=1")), [key]);
    }
    for not in [
        "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx", // no entropy: a placeholder
        "ghp_short",
        "AKIAIOSFODNN7EXAMPLEX", // too long for an AWS key id
    ] {
        assert!(one(PiiKind::ApiKey, not).is_empty(), "{not}");
    }

    assert_eq!(
        one(
            PiiKind::Ip,
            "from 192.168.0.10, 10.0.0.1:8080 and 2001:db8::1 via ::1."
        ),
        ["192.168.0.10", "10.0.0.1", "2001:db8::1", "::1"]
    );
    for not in [
        "256.1.1.1",
        "1.2.3",
        "01.2.3.4",
        "12:30:45",
        "00:1a:2b:3c:4d:5e",
        "v1.2.3.4.5",
    ] {
        assert!(one(PiiKind::Ip, not).is_empty(), "{not}");
    }
}

#[test]
fn every_kind_at_once_without_overlaps() {
    let text = "jane@example.com paid 4111 1111 1111 1111 from 203.0.113.9 (SSN 078-05-1120)";
    assert_eq!(
        kinds_in(text),
        [
            (PiiKind::Email, "jane@example.com"),
            (PiiKind::Card, "4111 1111 1111 1111"),
            (PiiKind::Ip, "203.0.113.9"),
            (PiiKind::Ssn, "078-05-1120"),
        ]
    );
    assert!(kinds_in("Nothing here: 42, 3.14, 2026-12-03, café.").is_empty());
    for k in PiiKind::ALL {
        assert_eq!(PiiKind::from_name(k.name()), Some(k));
    }
}

#[test]
fn masked_text_names_what_was_there_and_keeps_the_rest() {
    let mut o = String::new();
    let masked = write_masked(
        &mut o,
        "/users/jane@example.com/cards/4111111111111111/\"x\"",
        &PiiKind::ALL,
    );
    assert!(masked);
    assert_eq!(o, r#"/users/[email]/cards/[card]/\"x\""#);
    // Nothing that could hold a finding: written as it is, unscanned.
    for path in ["/api/items/123", "/v1.2/orders", "/search"] {
        assert!(!might_hold(path), "{path}");
        let mut o = String::new();
        assert!(!write_masked(&mut o, path, &PiiKind::ALL));
        assert_eq!(o, path);
    }
    // Anything a detector finds passes the filter.
    for text in [
        "a@b.co",
        "4111111111111111",
        "+4420794609",
        "078-05-1120",
        "::1",
        "1.2.3.4",
        "AKIAIOSFODNN7EXAMPLE",
    ] {
        assert!(might_hold(text), "{text}");
    }
}
