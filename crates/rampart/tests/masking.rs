//! Response masking and field lists end to end: a real gateway in front of a real upstream
//! that answers with personal data, real API keys proving roles. A support agent sees
//! card numbers cut to their last four, e-mails as keyed hashes, SSNs redacted; billing
//! sees them whole; an allow-listed route never lets an unlisted nested field out; a card
//! number split across two body frames is masked; a compressed or non-JSON answer on a
//! masked route is refused; no planted value reaches the access log.

mod support;

use std::time::Duration;

use rampart_identity::api_key::{generate, NewKey};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PEPPER: &str = "test-pepper-0123456789abcdef";
const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "jane.doe@example.com";
const SSN: &str = "078-05-1120";
const IBAN: &str = "DE89370400440532013000";

/// `{"card":"4111111111111111"}`, gzipped.
const GZIPPED: &str = "1f8b0800000000000203ab564a4e2c4a51b252323144054ab500193798871b000000";

fn account() -> String {
    serde_json::json!({
        "id": 1,
        "holder": { "name": "Jane", "email": EMAIL, "ssn": SSN },
        "card": { "number": CARD, "brand": "visa" },
        "iban": IBAN,
        "memo": format!("refund to {CARD} requested by {EMAIL}"),
    })
    .to_string()
}

fn user() -> String {
    serde_json::json!({
        "id": 7,
        "name": "Jane",
        "password_hash": "$argon2id$v=19$secret",
        "address": { "street": "1 Main St", "geo": { "lat": 1.5 } },
        "items": [{ "sku": "A-1", "cost": 3, "supplier": { "contract": "c-9" } }, { "sku": "B-2" }],
    })
    .to_string()
}

fn answer(s: &Seen) -> Answer {
    let json = |b: String| Answer::ok(b).header("content-type", "application/json");
    match s.uri.as_str() {
        "/v1/accounts/1" => json(account()),
        "/v1/users/7" => json(user()),
        "/gz" => Answer::ok(hex(GZIPPED))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip"),
        "/html" => Answer::ok(format!("<p>{CARD}</p>")).header("content-type", "text/html"),
        "/bad" => json(format!(r#"{{"a":"{EMAIL}","b":}}"#)),
        "/empty" => Answer::status(204),
        _ => Answer::status(404),
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An upstream that sends its JSON body in two chunks 50 ms apart, split in the middle
/// of a card number.
async fn split_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!(r#"{{"note":"card {CARD} on file","n":[1,2]}}"#);
                let cut = body.find("1111 1111").unwrap() + 3;
                let chunk = |b: &str| format!("{:x}\r\n{b}\r\n", b.len());
                let first = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{}",
                    chunk(&body[..cut])
                );
                let _ = tcp.write_all(first.as_bytes()).await;
                let _ = tcp.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let rest = format!("{}0\r\n\r\n", chunk(&body[cut..]));
                let _ = tcp.write_all(rest.as_bytes()).await;
            });
        }
    });
    addr
}

struct Fixture {
    gw: TestGateway,
    up: TestUpstream,
    log: std::path::PathBuf,
    support: NewKey,
    billing: NewKey,
    admin: NewKey,
}

async fn fixture() -> Fixture {
    std::env::set_var("RAMPART_TEST_MASK_KEY", "mask-key-0123456789abcdef");
    let up = TestUpstream::with(answer);
    let split = split_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let p = PEPPER.as_bytes();
    let (support, billing, admin) = (
        generate(p).unwrap(),
        generate(p).unwrap(),
        generate(p).unwrap(),
    );
    let yaml = format!(
        r#"version: 1
workers: 2
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity:
  api_keys: {{ pepper: {{ file: pepper.txt }} }}
consumers:
  - {{ id: sam, roles: [support], api_keys: [{{ id: sam-1, hash: "{support}" }}] }}
  - {{ id: bill, roles: [billing], api_keys: [{{ id: bill-1, hash: "{billing}" }}] }}
  - {{ id: ada, roles: [admin], api_keys: [{{ id: ada-1, hash: "{admin}" }}] }}
upstreams:
  up: {{ targets: [{{ url: "http://{up}" }}] }}
  split: {{ targets: [{{ url: "http://{split}" }}] }}
routes:
  - name: accounts
    match: {{ path_prefix: /v1/accounts }}
    upstream: up
    authenticate: [api_key]
    mask:
      fields:
        - {{ path: "$..iban", action: last4 }}
        - {{ path: "$..ssn", action: redact }}
        - {{ path: "$.card.number", action: last4 }}
      detect: [{{ kind: card, action: last4 }}, {{ kind: email, action: hash }}]
      exempt: {{ roles_any: [billing] }}
      hash_key: {{ env: RAMPART_TEST_MASK_KEY }}
  - name: users
    match: {{ path_prefix: /v1/users }}
    upstream: up
    authenticate: [api_key]
    response_fields:
      allow: ["$.id", "$.name", "$.items[*].sku"]
      per_role: [{{ roles_any: [admin], deny: ["$.password_hash"] }}]
  - name: split
    match: {{ path_prefix: /split }}
    upstream: split
    mask: {{ detect: [{{ kind: card, action: redact }}] }}
  - name: pass
    match: {{ path_prefix: /pass }}
    upstream: up
    rewrite: {{ strip_prefix: /pass }}
    mask: {{ detect: [{{ kind: email, action: redact }}], on_unparseable: pass }}
  - name: open
    match: {{ path_prefix: / }}
    upstream: up
    mask: {{ detect: [{{ kind: card, action: redact }}, {{ kind: email, action: redact }}] }}
"#,
        log = log.display(),
        support = support.hash,
        billing = billing.hash,
        admin = admin.hash,
        up = up.addr,
    );
    let gw = start_in(&yaml, dir);
    Fixture {
        gw,
        up,
        log,
        support,
        billing,
        admin,
    }
}

#[tokio::test]
async fn masking_depends_on_who_asks_and_nothing_planted_reaches_the_log() {
    let f = fixture().await;
    let ask = |key: &str| {
        let key = key.to_owned();
        let addr = f.gw.http();
        async move {
            get_with(
                addr,
                "/v1/accounts/1",
                &[("x-api-key", &key), ("accept-encoding", "gzip, br")],
            )
            .await
        }
    };
    let r = ask(&f.support.key).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["card"]["number"], "**** **** **** 1111");
    assert_eq!(body["holder"]["ssn"], "[redacted]");
    assert_eq!(body["iban"], "******************3000");
    let hashed = body["holder"]["email"].as_str().unwrap();
    assert!(hashed.starts_with("hash:"), "{hashed}");
    assert_eq!(
        body["memo"],
        format!("refund to **** **** **** 1111 requested by {hashed}")
    );
    for planted in [CARD, EMAIL, SSN, IBAN] {
        assert!(!r.text().contains(planted), "{planted} in {}", r.text());
    }
    assert_eq!(r.header("cache-control"), Some("private"));
    assert!(r.header("content-length").is_none());
    // The upstream was asked for an uncompressed body.
    assert!(f.up.last().headers.get("accept-encoding").is_none());

    // Billing is exempt: the same answer, whole.
    let r = ask(&f.billing.key).await;
    assert_eq!(
        r.json(),
        serde_json::from_str::<serde_json::Value>(&account()).unwrap()
    );

    let line = access_log_line(&f.log, "\"consumer\":\"sam\"").await;
    assert!(
        line.contains(r#""mask":{"$..iban":1,"$..ssn":1,"$.card.number":1,"card":1,"email":2}"#),
        "{line}"
    );
    let line = access_log_line(&f.log, "\"consumer\":\"bill\"").await;
    assert!(line.contains("mask.exempt"), "{line}");
    let metrics = f.gw.feature_metrics();
    assert!(
        metrics.contains(r#"rampart_masked_values_total{route="accounts",rule="email"} 2"#),
        "{metrics}"
    );
    let text = std::fs::read_to_string(&f.log).unwrap();
    for planted in [CARD, EMAIL, SSN, IBAN, "4111111111111111"] {
        assert!(!text.contains(planted), "{planted} in the log:\n{text}");
    }
}

#[tokio::test]
async fn an_allow_list_keeps_unlisted_fields_from_the_client_per_role() {
    let f = fixture().await;
    let r = get_with(f.gw.http(), "/v1/users/7", &[("x-api-key", &f.support.key)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({ "id": 7, "name": "Jane", "items": [{ "sku": "A-1" }, { "sku": "B-2" }] })
    );
    for unlisted in [
        "password_hash",
        "argon2",
        "Main St",
        "supplier",
        "c-9",
        "cost",
    ] {
        assert!(!r.text().contains(unlisted), "{unlisted} in {}", r.text());
    }
    // An admin sees everything but the password hash.
    let r = get_with(f.gw.http(), "/v1/users/7", &[("x-api-key", &f.admin.key)]).await;
    let mut want: serde_json::Value = serde_json::from_str(&user()).unwrap();
    want.as_object_mut().unwrap().remove("password_hash");
    assert_eq!(r.json(), want);
}

#[tokio::test]
async fn a_card_number_split_across_two_frames_is_masked() {
    let f = fixture().await;
    let r = get(f.gw.http(), "/split").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"note":"card [card] on file","n":[1,2]}"#);
}

#[tokio::test]
async fn what_cannot_be_masked_is_refused_unless_the_route_lets_it_pass() {
    let f = fixture().await;
    // A compressed answer (the upstream ignored the missing Accept-Encoding).
    let r = get(f.gw.http(), "/gz").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(r.header("content-encoding").is_none());
    let line = access_log_line(&f.log, "\"path\":\"/gz\"").await;
    assert!(line.contains("mask.encoded_response"), "{line}");
    // Not JSON.
    let r = get(f.gw.http(), "/html").await;
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("4111"));
    // Not valid JSON: the body has begun, so the response is cut off.
    let r = send_raw_get(f.gw.http(), "/bad").await;
    assert!(!r.contains(EMAIL), "{r}");
    assert!(!r.ends_with("0\r\n\r\n"), "a complete response: {r}");
    let line = access_log_line(&f.log, "\"path\":\"/bad\"").await;
    assert!(line.contains("\"code\":\"mask.unparseable\""), "{line}");
    // `on_unparseable: pass`: masked up to the fault, then as it came.
    let r = get(f.gw.http(), "/pass/bad").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"a":"[email]","b":}"#);
    let r = get(f.gw.http(), "/pass/html").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("<p>{CARD}</p>"));
    // No body, nothing to do.
    assert_eq!(get(f.gw.http(), "/empty").await.status, 204);
}

/// A GET over a raw connection, read until the gateway closes it.
async fn send_raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    read_to_close(&mut tcp, Duration::from_secs(5)).await
}

#[test]
fn bad_masking_config_is_refused_with_the_field_and_the_reason() {
    std::env::set_var("RAMPART_TEST_SHORT_KEY", "short");
    let route = |extra: &str| {
        format!("routes: [{{ name: r, match: {{ path_prefix: / }}, upstream: up, {extra} }}]")
    };
    assert_config_errors(&[
        (
            &route("mask: { fields: [{ path: \"card.number\", action: redact }] }"),
            "routes[0].mask.fields[0].path: a JSON path starts with `$`",
        ),
        (
            &route("mask: { fields: [{ path: \"$.items[?(@.x)]\", action: redact }] }"),
            "filter expressions, slices and unions are not",
        ),
        (
            &route("mask: { detect: [{ kind: passport, action: redact }] }"),
            "routes[0].mask.detect[0].kind: unknown kind `passport`",
        ),
        (
            &route("mask: { detect: [{ kind: card, action: remove }] }"),
            "routes[0].mask.detect[0].action: `remove` drops a member",
        ),
        (
            &route("mask: { detect: [{ kind: email, action: hash }] }"),
            "routes[0].mask.hash_key: a rule hashes, so a key is required",
        ),
        (
            &route("mask: { detect: [{ kind: email, action: hash }], hash_key: { env: RAMPART_TEST_SHORT_KEY } }"),
            "routes[0].mask.hash_key: the key must be at least 16 bytes",
        ),
        (
            &route("mask: { detect: [{ kind: email, action: hash }], hash_key: { env: RAMPART_TEST_UNSET_KEY } }"),
            "environment variable RAMPART_TEST_UNSET_KEY is not set",
        ),
        (&route("mask: {}"), "routes[0].mask: masks nothing"),
        (
            &route("mask: { detect: [{ kind: card, action: redact }], exempt: {} }"),
            "routes[0].mask.exempt: exempts no one",
        ),
        (
            &route("response_fields: { allow: [\"$.a\"], deny: [\"$.b\"] }"),
            "routes[0].response_fields: give `allow` or `deny`, not both",
        ),
        (
            &route("response_fields: { allow: [\"$.a\", \"$.b[\"] }"),
            "routes[0].response_fields.allow[1]: the `[` at byte 3 is not closed",
        ),
        (&route("response_fields: {}"), "routes[0].response_fields: lists nothing"),
        (
            &route("response_fields: { per_role: [{ roles_any: [], allow: [\"$.a\"] }] }"),
            "routes[0].response_fields.per_role[0].roles_any: names no role",
        ),
        (
            &route("mask: { detect: [{ kind: card, action: redact }], on_unparseable: maybe }"),
            "on_unparseable",
        ),
    ]);
}
