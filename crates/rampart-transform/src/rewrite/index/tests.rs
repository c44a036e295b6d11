//! The cursor against a byte-at-a-time reading of the same rules.

use proptest::prelude::*;

use super::Cursor;

/// The unescaped quotes of `data` from `from`, a byte at a time (a backslash escapes the
/// byte after it, and escapes nothing when escaped itself).
fn reference(data: &[u8], from: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut escape = false;
    for (i, &b) in data.iter().enumerate().skip(from) {
        let escaped = std::mem::take(&mut escape);
        if !escaped && b == b'\\' {
            escape = true;
        }
        if b == b'"' && !escaped {
            out.push(i);
        }
    }
    out
}

fn tokens(data: &[u8], from: usize) -> Vec<usize> {
    let mut c = Cursor::new(data, from);
    std::iter::from_fn(|| c.next()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn the_cursor_finds_the_quotes_a_byte_at_a_time_reading_finds(
        data in prop::collection::vec(
            prop::sample::select(&b"\"\"\"\\\\\\{}[]:, \t\n\r\x01ab1-.\xff"[..]), 0..300),
        from in any::<prop::sample::Index>(),
    ) {
        let from = from.index(data.len() + 1);
        prop_assert_eq!(tokens(&data, from), reference(&data, from));
    }
}

#[test]
fn strings_and_escapes_across_blocks() {
    // Runs of backslashes ending on each side of a block's edge, and strings spanning
    // blocks.
    for pad in 0..70 {
        for run in 0..5 {
            let mut d = vec![b' '; pad];
            d.extend_from_slice(b"{\"k\":\"");
            d.extend(std::iter::repeat_n(b'x', pad));
            d.extend(std::iter::repeat_n(b'\\', run));
            d.extend_from_slice(b"\"\x01\",\"n\":12,\x02 [true]}");
            for from in [0, pad] {
                assert_eq!(
                    tokens(&d, from),
                    reference(&d, from),
                    "pad {pad}, run {run}"
                );
            }
        }
    }
}

#[test]
fn skipping_to_an_offset_leaves_the_tokens_from_it() {
    let d = br#"{"a": "x y", "b": [1, 2, {"c": "\"}"}], "d": null}"#.repeat(5);
    let all = reference(&d, 0);
    for to in 0..=d.len() {
        let mut c = Cursor::new(&d, 0);
        c.skip_to(to);
        let rest: Vec<usize> = std::iter::from_fn(|| c.next()).collect();
        let want: Vec<usize> = all.iter().copied().filter(|&p| p >= to).collect();
        assert_eq!(rest, want, "to {to}");
    }
}

#[test]
fn a_string_holds_an_escape_only_when_a_backslash_is_in_it() {
    let d = br#"{"a":"plain","b":"es\"caped","c":"after"}"#;
    let c = {
        let mut c = Cursor::new(d, 0);
        while c.next().is_some() {}
        c
    };
    let quotes = reference(d, 0);
    let strings: Vec<bool> = quotes.chunks(2).map(|q| c.escaped(q[0], q[1])).collect();
    assert_eq!(strings, [false, false, false, true, false, false]);
}
