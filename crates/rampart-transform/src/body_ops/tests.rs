use super::*;

fn ops(yaml: &str) -> BodyOps {
    let specs: Vec<BodyOpSpec> = serde_saphyr::from_str(yaml).unwrap();
    let mut errors = Vec::new();
    let params = PathParams::from_pattern("/users/{id}");
    let ops = BodyOps::compile(&specs, &params, "ops", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    ops
}

fn run(ops: &BodyOps, body: &str) -> String {
    let mut root: Node = serde_json::from_str(body).unwrap();
    let cx = rampart_core::ExchangeCtx::new(
        http::HeaderValue::from_static("r-1"),
        std::net::Ipv4Addr::LOCALHOST.into(),
        "public".into(),
        false,
        None,
        std::time::SystemTime::now(),
    );
    ops.apply(&mut root, &ops.render(&cx, "/users/42"));
    serde_json::to_string(&root).unwrap()
}

#[test]
fn removes_renames_moves_sets_and_adds_in_order_keeping_member_order() {
    let o = ops(r#"
- remove: "$.internal"
- remove: "$.items[*].cost"
- rename: { path: "$.user_name", to: username }
- move: { from: "$.addr", to: "$.profile.address" }
- set: { path: "$.source", value: gateway }
- add: { path: "$.version", value: 2 }
- add: { path: "$.zeta", value: { kept: true } }
- set: { path: "$.user", value: "{{ params.id }}" }
"#);
    let out = run(
        &o,
        r#"{"zeta":1,"user_name":"ann","internal":{"x":1},"addr":"Main St","items":[{"sku":"a","cost":3},{"sku":"b","cost":4}]}"#,
    );
    assert_eq!(
        out,
        r#"{"zeta":1,"username":"ann","items":[{"sku":"a"},{"sku":"b"}],"profile":{"address":"Main St"},"source":"gateway","version":2,"user":"42"}"#
    );
}

#[test]
fn wraps_and_unwraps_the_whole_body() {
    let wrap = ops(r#"[{ move: { from: "$", to: "$.data" } }]"#);
    assert_eq!(run(&wrap, r#"[1,2]"#), r#"{"data":[1,2]}"#);
    let unwrap = ops(r#"[{ move: { from: "$.result.rows", to: "$" } }]"#);
    assert_eq!(
        run(&unwrap, r#"{"result":{"rows":[{"a":1}]},"x":1}"#),
        r#"[{"a":1}]"#
    );
}

#[test]
fn a_set_template_without_a_value_removes_the_member() {
    let o = ops(
        r#"[{ set: { path: "$.tenant", value: "{{ consumer.attributes.tenant }}" } }, { add: { path: "$.who", value: "{{ consumer.id }}" } }]"#,
    );
    // An anonymous caller: the body's own `tenant` is not passed on as if the gateway set it.
    assert_eq!(run(&o, r#"{"tenant":"spoofed","a":1}"#), r#"{"a":1}"#);
}

#[test]
fn operations_on_missing_places_change_nothing() {
    let o = ops(r#"
- remove: "$.nope.deeper"
- rename: { path: "$.absent", to: there }
- move: { from: "$.absent", to: "$.b" }
- set: { path: "$.list[5]", value: 1 }
"#);
    assert_eq!(
        run(&o, r#"{"list":[0],"s":"x"}"#),
        r#"{"list":[0],"s":"x"}"#
    );
    // Through a scalar nothing is created.
    let o = ops(r#"[{ set: { path: "$.s.t", value: 1 } }]"#);
    assert_eq!(run(&o, r#"{"s":"x"}"#), r#"{"s":"x"}"#);
}

#[test]
fn numbers_keep_their_kind() {
    let o = ops(r#"[{ remove: "$.x" }]"#);
    assert_eq!(
        run(
            &o,
            r#"{"big":18446744073709551615,"neg":-5,"f":1.5,"e":1e3,"x":0}"#
        ),
        r#"{"big":18446744073709551615,"neg":-5,"f":1.5,"e":1000.0}"#
    );
}

#[test]
fn refuses_paths_that_cannot_name_a_place() {
    let specs: Vec<BodyOpSpec> = serde_saphyr::from_str(
        r#"
- remove: "$"
- remove: "$..ssn"
- move: { from: "$.items[*].a", to: "$.b" }
- move: { from: "$.a", to: "$.a.b" }
- rename: { path: "$.items[0]", to: x }
- set: { path: "a.b", value: 1 }
- set: { path: "$.a", value: "{{ params.nope }}" }
"#,
    )
    .unwrap();
    let mut errors = Vec::new();
    BodyOps::compile(
        &specs,
        &PathParams::from_pattern("/u/{id}"),
        "ops",
        &mut errors,
    );
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let want = [
        "ops[0].remove: `$` is the whole body",
        "ops[1].remove: \"$..ssn\": `..` is for masking",
        "ops[2].move.from: \"$.items[*].a\": `*` cannot name one place",
        "ops[3].move.to: is inside `from`",
        "ops[4].rename.path: must end in a member name",
        "ops[5].set.path: \"a.b\": a JSON path starts with `$`",
        "ops[6].value: `params.nope` is not a path parameter",
    ];
    assert_eq!(text.len(), want.len(), "{text:#?}");
    for (t, w) in text.iter().zip(want) {
        assert!(t.contains(w), "{t} does not contain {w}");
    }
}

#[test]
fn the_fuzz_operations_run_on_every_shape_of_body() {
    for body in [
        r#"{"a":[{"b":1},{"b":2,"c":3}],"x":{"c":1},"s":[{"t":0}],"p":{}}"#,
        r#"[1,[2],{"a":3}]"#,
        r#""text""#,
        "null",
        r#"{"y":{"wrap":1}}"#,
        "not json",
    ] {
        fuzz_body_ops(body.as_bytes());
    }
}
