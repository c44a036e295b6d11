//! XML ↔ JSON for a legacy SOAP service, end to end: a JSON request leaves the gateway as
//! the SOAP envelope the service expects (text/xml, with its new length), the service's
//! XML answer reaches the client as JSON, and an answer carrying a DOCTYPE (XXE, entity
//! expansion) or an undeclared entity is never converted (a 502); a conversion that
//! converts nothing is refused at load.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const ANSWER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <m:GetUserResponse xmlns:m="urn:legacy">
      <m:User id="42"><m:Name>Ann &amp; Bo</m:Name><m:Card>4111111111111111</m:Card></m:User>
    </m:GetUserResponse>
  </soap:Body>
</soap:Envelope>"#;

fn config(up: &TestUpstream, log: &std::path::Path) -> String {
    format!(
        r#"version: 1
workers: 1
access_log: {{ output: "{log}" }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ legacy: {{ targets: [{{ url: "http://{up}" }}] }} }}
routes:
  - name: users
    match: {{ path: "/v2/users/{{id}}" }}
    upstream: legacy
    transform:
      xml:
        request: true
        response: true
        content_type: "text/xml; charset=utf-8"
        strip_namespaces: true
        arrays: [User]
      request_body:
        - set: {{ path: "$.Id", value: "{{{{ params.id }}}}" }}
        - move: {{ from: "$", to: "$['soap:Envelope']['soap:Body'].GetUser" }}
        - set: {{ path: "$['soap:Envelope']['@xmlns:soap']", value: "http://schemas.xmlsoap.org/soap/envelope/" }}
      response_body:
        - move: {{ from: "$.Envelope.Body.GetUserResponse.User", to: "$" }}
    mask:
      detect: [{{ kind: card, action: last4 }}]
"#,
        log = log.display(),
        up = up.addr
    )
}

#[tokio::test]
async fn a_json_call_becomes_a_soap_call_and_its_answer_json() {
    let up = TestUpstream::with(|_| {
        Answer::ok(ANSWER).header("content-type", "text/xml; charset=utf-8")
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = start_in(&config(&up, &log), dir);
    let req = http::Request::post("/v2/users/42")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"Fields":["Name","Card"]}"#,
        )))
        .unwrap();
    let r = send(gw.http(), req).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.headers["content-type"], "text/xml; charset=utf-8");
    assert_eq!(
        std::str::from_utf8(&seen.body).unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetUser><Fields>Name</Fields><Fields>Card</Fields><Id>42</Id></GetUser></soap:Body></soap:Envelope>"#
    );
    assert_eq!(
        seen.headers["content-length"],
        seen.body.len().to_string().as_str()
    );
    // The answer, as JSON, and masked after the conversion.
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        r#"[{"@id":"42","Name":"Ann & Bo","Card":"************1111"}]"#
    );
}

async fn refused_answer(xml: &'static str, code: &str) {
    let up = TestUpstream::with(move |_| Answer::ok(xml).header("content-type", "application/xml"));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = start_in(&config(&up, &log), dir);
    let req = http::Request::post("/v2/users/1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    // The answer is read whole before its head goes: the client gets a 502 problem,
    // never the document, and the log names why.
    let r = send(gw.http(), req).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "upstream.bad_response");
    assert!(!r.text().contains("root:") && !r.text().contains("lol"));
    let line = access_log_line(&log, code).await;
    assert!(line.contains("\"status\":502"), "{line}");
}

#[tokio::test]
async fn an_xxe_answer_is_never_converted() {
    refused_answer(
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#,
        "xml.doctype",
    )
    .await;
}

#[tokio::test]
async fn an_entity_expansion_answer_is_never_converted() {
    refused_answer(
        r#"<!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>"#,
        "xml.doctype",
    )
    .await;
    refused_answer("<r>&undeclared;</r>", "xml.bad_reference").await;
}

#[test]
fn a_conversion_that_converts_nothing_is_refused() {
    assert_config_errors(&[(
        "routes: [{ name: r, match: { path_prefix: / }, upstream: up, transform: { xml: { strip_namespaces: true } } }]",
        "routes[0].transform.xml: converts nothing",
    )]);
}
