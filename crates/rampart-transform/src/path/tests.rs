use super::*;

fn at(p: &Paths, segs: &[Seg<'_>]) -> Vec<usize> {
    let mut s = p.root();
    for seg in segs {
        s = p.step(s, *seg);
    }
    let mut r: Vec<usize> = p.accepted(s).collect();
    r.sort_unstable();
    r
}

#[test]
fn names_indices_wildcards_and_descent() {
    let p = Paths::compile(&[
        "$.card.number",
        "$..ssn",
        "$.items[*].email",
        "$['odd key'][1]",
        "$.a.*",
        "$",
    ])
    .unwrap();
    use Seg::*;
    assert_eq!(at(&p, &[]), vec![5]);
    assert_eq!(at(&p, &[Key(b"card"), Key(b"number")]), vec![0]);
    assert_eq!(at(&p, &[Key(b"card")]), Vec::<usize>::new());
    assert_eq!(
        at(&p, &[Key(b"x"), Key(b"card"), Key(b"number")]),
        Vec::<usize>::new()
    );
    assert_eq!(at(&p, &[Key(b"ssn")]), vec![1]);
    assert_eq!(at(&p, &[Key(b"a"), Index(3), Key(b"ssn")]), vec![1]);
    assert_eq!(at(&p, &[Key(b"a"), Key(b"ssn")]), vec![1, 4]);
    assert_eq!(at(&p, &[Key(b"items"), Index(7), Key(b"email")]), vec![2]);
    assert_eq!(at(&p, &[Key(b"items"), Key(b"k"), Key(b"email")]), vec![2]);
    assert_eq!(at(&p, &[Key(b"odd key"), Index(1)]), vec![3]);
    assert_eq!(at(&p, &[Key(b"odd key"), Index(0)]), Vec::<usize>::new());
    assert_eq!(at(&p, &[Key(b"a"), Key(b"b")]), vec![4]);
    assert_eq!(
        at(&p, &[Key(b"a"), Key(b"b"), Key(b"c")]),
        Vec::<usize>::new()
    );
}

#[test]
fn a_descent_does_not_leak_into_sibling_rules() {
    // `$.a` must not match `x.a` because `$..b` keeps the root's `..` node alive.
    let p = Paths::compile(&["$.a", "$..b"]).unwrap();
    use Seg::*;
    assert_eq!(at(&p, &[Key(b"x"), Key(b"a")]), Vec::<usize>::new());
    assert_eq!(at(&p, &[Key(b"x"), Key(b"b")]), vec![1]);
    assert_eq!(at(&p, &[Key(b"a")]), vec![0]);
    let p = Paths::compile(&["$..a..b", "$..*"]).unwrap();
    assert_eq!(
        at(&p, &[Key(b"q"), Key(b"a"), Index(2), Key(b"b")]),
        vec![0, 1]
    );
    assert!(!p.step(p.root(), Key(b"q")).is_empty());
}

#[test]
fn unsupported_and_malformed_paths_are_refused_with_a_reason() {
    for (path, want) in [
        ("card.number", "starts with `$`"),
        ("$.items[?(@.x)]", "not supported"),
        ("$.items[0:2]", "not supported"),
        ("$.a[", "not closed"),
        ("$.", "missing"),
        ("$.a b", "quote odd names"),
        ("$[]", "empty"),
        ("$.a.[0]", "without the dot"),
    ] {
        let e = Paths::compile(&["$.ok", path]).unwrap_err();
        assert_eq!(e.0, 1, "{path}");
        assert!(e.1.contains(want), "{path}: {}", e.1);
    }
    let many: Vec<String> = (0..130).map(|i| format!("$.f{i}")).collect();
    let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
    assert!(Paths::compile(&many).unwrap_err().1.contains("128"));
}

/// Whether the parsed `steps` match the value at `segs`, read straight off the path:
/// the reference the automaton is checked against.
fn reference(steps: &[(bool, Step)], segs: &[Seg<'_>]) -> bool {
    let Some(((descend, step), rest)) = steps.split_first() else {
        return segs.is_empty();
    };
    let one = |seg: &Seg<'_>| match (step, seg) {
        (Step::Any, _) => true,
        (Step::Key(k), Seg::Key(s)) => **k == **s,
        (Step::Index(i), Seg::Index(n)) => i == n,
        _ => false,
    };
    // `..` skips any number of levels first.
    let skips = if *descend { segs.len() } else { 0 };
    (0..=skips).any(|skip| segs.get(skip).is_some_and(one) && reference(rest, &segs[skip + 1..]))
}

#[test]
fn the_deterministic_automaton_agrees_with_the_paths_read_directly() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    const NAMES: [&str; 5] = ["a", "b", "card", "number", "postcode"];
    for _ in 0..400 {
        let rules: Vec<String> = (0..1 + next(5))
            .map(|_| {
                let mut p = String::from("$");
                for _ in 0..next(4) {
                    let descend = next(3) == 0;
                    match next(4) {
                        0 => p.push_str(if descend { "..*" } else { ".*" }),
                        1 => {
                            p.push_str(&format!("{}[{}]", if descend { ".." } else { "" }, next(3)))
                        }
                        _ => {
                            p.push_str(if descend { ".." } else { "." });
                            p.push_str(NAMES[next(5) as usize]);
                        }
                    }
                }
                p
            })
            .collect();
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let paths = Paths::compile(&refs).expect("compiles");
        let parsed: Vec<_> = refs.iter().map(|r| parse(r).expect("parses")).collect();
        for _ in 0..50 {
            let segs: Vec<Seg<'_>> = (0..next(6))
                .map(|_| match next(3) {
                    0 => Seg::Index(next(4) as u32),
                    1 => Seg::Key(b"other"),
                    _ => Seg::Key(NAMES[next(5) as usize].as_bytes()),
                })
                .collect();
            let want: Vec<usize> = (0..refs.len())
                .filter(|&r| reference(&parsed[r], &segs))
                .collect();
            assert_eq!(at(&paths, &segs), want, "{refs:?} at {segs:?}");
            // A state from which no rule can match any more is the empty one.
            let mut s = paths.root();
            for seg in &segs {
                s = paths.step(s, *seg);
            }
            if s.is_empty() {
                assert!(want.is_empty());
            }
        }
    }
}

#[test]
fn a_rule_set_too_large_to_determinize_is_refused_with_a_reason() {
    // Each `..` rule for a distinct name makes its own states; together their subsets
    // exceed the limit.
    let names: Vec<String> = (0..13).map(|i| format!("$..n{i}..m{i}..k")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let e = Paths::compile(&names).unwrap_err();
    assert!(e.1.contains("automaton states"), "{}", e.1);
}

#[test]
fn large_realistic_rule_sets_compile() {
    // Forty names masked anywhere, forty nested names, and an allow-list of a hundred
    // members: well within the limit.
    let mut rules: Vec<String> = (0..40).map(|i| format!("$..f{i}")).collect();
    rules.extend((0..40).map(|i| format!("$..c{i}.n{i}")));
    let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    let p = Paths::compile(&refs).expect("compiles");
    assert!(p.sets.len() < 200, "{}", p.sets.len());
    let allow: Vec<String> = (0..100).map(|i| format!("$.data[*].m{i}")).collect();
    let refs: Vec<&str> = allow.iter().map(String::as_str).collect();
    let p = Paths::compile(&refs).expect("compiles");
    assert!(p.sets.len() < 200, "{}", p.sets.len());
}
