//! Tracing end to end: W3C trace context from the client to the upstream, and spans
//! exported over OTLP/HTTP to a real HTTP receiver that decodes them with the
//! `opentelemetry-proto` crate's generated types (not with our encoder's idea of the
//! schema).

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use rampart_identity::api_key::generate;
use support::*;

const PEPPER: &str = "tracing-test-pepper-0123456789";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-{flags}")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every span the receiver got, decoded, with the resource's attributes of each export.
fn spans(receiver: &TestUpstream) -> Vec<(Vec<(String, String)>, Span)> {
    let mut out = Vec::new();
    for seen in receiver.all() {
        let req = ExportTraceServiceRequest::decode(seen.body.as_ref()).expect("decodes");
        for rs in req.resource_spans {
            let resource: Vec<(String, String)> = rs
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default()
                .into_iter()
                .map(|kv| (kv.key, value(kv.value.and_then(|v| v.value))))
                .collect();
            for ss in rs.scope_spans {
                assert_eq!(ss.scope.unwrap().name, "rampart");
                for s in ss.spans {
                    out.push((resource.clone(), s));
                }
            }
        }
    }
    out
}

fn value(v: Option<Any>) -> String {
    match v {
        Some(Any::StringValue(s)) => s,
        Some(Any::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| value(kv.value.clone().and_then(|v| v.value)))
}

async fn wait_for_spans(receiver: &TestUpstream, n: usize) -> Vec<(Vec<(String, String)>, Span)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = spans(receiver);
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(up: &TestUpstream, tracing: &str, extra: &str) -> String {
    format!(
        r#"version: 1
workers: 2
access_log: {{ enabled: false }}
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
identity: {{ api_keys: {{ pepper: {{ file: pepper.txt }} }} }}
tracing: {tracing}
{extra}
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: orders, match: {{ path: "/orders/{{id}}" }}, upstream: up, authenticate: [api_key] }}
  - {{ name: open, match: {{ path_prefix: /open }}, upstream: up }}
"#,
        up.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_exchanges_become_spans_that_an_otlp_receiver_decodes() {
    let up = TestUpstream::echo();
    let receiver =
        TestUpstream::with(|_| Answer::ok("").header("content-type", "application/x-protobuf"));
    let key = generate(PEPPER.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    std::fs::write(dir.path().join("otlp-key"), "collector-secret-7f3e").unwrap();
    let tracing = format!(
        "{{ sample: 1, service_name: edge-eu, otlp: {{ endpoint: \"http://{}/v1/traces\", headers: {{ x-otlp-key: {{ file: otlp-key }} }}, interval: 50ms }} }}",
        receiver.addr
    );
    let extra = format!(
        "consumers: [{{ id: shop, api_keys: [{{ id: shop-1, hash: \"{}\" }}] }}]",
        key.hash
    );
    let gw = start_in(&config(&up, &tracing, &extra), dir);

    // A client with its own trace: continued, with the gateway's span in between.
    let tp = traceparent("00");
    let ok = get_with(
        gw.http(),
        "/orders/7?card=4111",
        &[
            ("x-api-key", &key.key),
            ("traceparent", &tp),
            ("tracestate", "client=1"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200);
    let seen = up.last();
    let sent = seen.headers["traceparent"].to_str().unwrap().to_string();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", CLIENT_TRACE, "01"),
        "{sent}"
    );
    assert_ne!(
        parts[2], CLIENT_PARENT,
        "the gateway's span is the parent upstream"
    );
    assert!(
        seen.headers.get("tracestate").is_none(),
        "not from an untrusted client"
    );
    // Refused and unrouted exchanges are spans too.
    assert_eq!(get(gw.http(), "/orders/8").await.status, 401);
    assert_eq!(get(gw.http(), "/nowhere").await.status, 404);

    let got = wait_for_spans(&receiver, 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let export = receiver.last();
    assert_eq!(export.headers["content-type"], "application/x-protobuf");
    assert_eq!(export.headers["x-otlp-key"], "collector-secret-7f3e");
    assert_eq!(export.uri, "/v1/traces");

    let (resource, span) = got
        .iter()
        .find(|(_, s)| attr(s, "http.response.status_code").as_deref() == Some("200"))
        .unwrap();
    assert!(
        resource.contains(&("service.name".into(), "edge-eu".into())),
        "{resource:?}"
    );
    assert_eq!(span.name, "GET orders");
    assert_eq!(span.kind, 2, "SERVER");
    assert_eq!(hex(&span.trace_id), CLIENT_TRACE);
    assert_eq!(hex(&span.parent_span_id), CLIENT_PARENT);
    assert_eq!(
        hex(&span.span_id),
        parts[2],
        "the span the upstream saw as its parent"
    );
    assert!(span.end_time_unix_nano > span.start_time_unix_nano);
    assert_eq!(attr(span, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(span, "rampart.route").as_deref(), Some("orders"));
    assert_eq!(attr(span, "rampart.consumer").as_deref(), Some("shop"));
    assert_eq!(
        attr(span, "rampart.request_id").as_deref(),
        ok.header("x-request-id")
    );
    let events: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
    for e in [
        "routed",
        "upstream.request",
        "upstream.response",
        "auth.api_key.ok",
    ] {
        assert!(events.contains(&e), "{events:?}");
    }
    for e in &span.events {
        assert!(
            e.time_unix_nano >= span.start_time_unix_nano
                && e.time_unix_nano <= span.end_time_unix_nano,
            "{e:?}"
        );
    }
    // No path, query or key in any span.
    let all = format!("{got:?}");
    for secret in ["/orders/7", "4111", &key.key, "collector-secret"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }

    let (_, refused) = got
        .iter()
        .find(|(_, s)| attr(s, "http.response.status_code").as_deref() == Some("401"))
        .unwrap();
    let ev = refused
        .events
        .iter()
        .find(|e| e.name == "auth.missing")
        .expect("the decision");
    assert_eq!(
        value(ev.attributes[0].value.clone().and_then(|v| v.value)),
        "deny"
    );
    assert!(
        refused.status.is_none() || refused.status.as_ref().unwrap().code != 2,
        "a 4xx is not a server error"
    );
    let (_, unrouted) = got
        .iter()
        .find(|(_, s)| attr(s, "http.response.status_code").as_deref() == Some("404"))
        .unwrap();
    assert_eq!(unrouted.name, "GET");
    assert_eq!(
        attr(unrouted, "rampart.code").as_deref(),
        Some("route.not_found")
    );

    let m = gw.feature_metrics();
    assert!(
        m.contains("rampart_tracing_spans_total{result=\"exported\"} 3"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_trusted_proxy_decides_sampling() {
    let up = TestUpstream::echo();
    let receiver = TestUpstream::with(|_| Answer::ok(""));
    let tracing = format!(
        "{{ sample: 0, otlp: {{ endpoint: \"http://{}/v1/traces\", interval: 20ms }} }}",
        receiver.addr
    );
    let run = |trusted: &'static str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
        start_in(&config(&up, &tracing, trusted), dir)
    };
    // A client asking to be sampled is not; its trace id is still continued.
    let gw = run("trusted_proxies: []");
    let r = get_with(gw.http(), "/open", &[("traceparent", &traceparent("01"))]).await;
    assert_eq!(r.status, 200);
    let sent = up.last().headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        sent.starts_with(&format!("00-{CLIENT_TRACE}-")) && sent.ends_with("-00"),
        "{sent}"
    );
    // A trusted proxy's decision holds, and its tracestate goes on.
    let gw2 = run("trusted_proxies: [127.0.0.1]");
    let r = get_with(
        gw2.http(),
        "/open",
        &[("traceparent", &traceparent("01")), ("tracestate", "lb=7")],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert!(seen.headers["traceparent"]
        .to_str()
        .unwrap()
        .ends_with("-01"));
    assert_eq!(seen.headers["tracestate"], "lb=7");
    let got = wait_for_spans(&receiver, 1).await;
    assert_eq!(got.len(), 1, "only the trusted one was sampled");
    assert_eq!(hex(&got[0].1.trace_id), CLIENT_TRACE);
    assert!(gw
        .feature_metrics()
        .contains("rampart_tracing_spans_total{result=\"exported\"} 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_costs_requests_nothing_and_is_counted() {
    let up = TestUpstream::echo();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tracing = format!(
        "{{ sample: 1, otlp: {{ endpoint: \"http://{closed}/v1/traces\", interval: 20ms, max_queue: 8, timeout: 200ms }} }}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let gw = start_in(&config(&up, &tracing, ""), dir);
    for _ in 0..50 {
        assert_eq!(get(gw.http(), "/open").await.status, 200);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = gw.feature_metrics();
        let failed = m
            .lines()
            .find(|l| l.starts_with("rampart_tracing_spans_total{result=\"export_failed\"}"));
        let full = m
            .lines()
            .find(|l| l.starts_with("rampart_tracing_spans_total{result=\"queue_full\"}"));
        let n = |l: Option<&str>| {
            l.and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if n(failed) + n(full) == 50 {
            assert!(n(failed) >= 1, "{m}");
            assert!(m.contains("rampart_tracing_exports_total{result=\"error\"}"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn without_tracing_a_clients_trace_headers_pass_untouched() {
    let up = TestUpstream::echo();
    let gw = start(&simple_config(&[up.addr], ""));
    let tp = traceparent("01");
    let r = get_with(
        gw.http(),
        "/x",
        &[("traceparent", &tp), ("tracestate", "a=b")],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.headers["traceparent"], tp.as_str());
    assert_eq!(seen.headers["tracestate"], "a=b");
}

#[test]
fn bad_tracing_settings_are_refused_with_their_place() {
    assert_config_errors(&[
        ("tracing: { sample: 2 }", "tracing.sample: must be between 0 and 1"),
        (
            "tracing: { otlp: { endpoint: \"ftp://c/v1/traces\" } }",
            "tracing.otlp.endpoint: must be an http:// or https:// URL",
        ),
        (
            "tracing: { otlp: { endpoint: \"http://u:p@c/v1/traces\" } }",
            "tracing.otlp.endpoint: must not carry credentials",
        ),
        (
            "tracing: { otlp: { endpoint: \"http://c/v1/traces\", ca_file: ca.pem } }",
            "tracing.otlp.ca_file: only for an https:// endpoint",
        ),
        (
            "tracing: { otlp: { endpoint: \"http://c/v1/traces\", headers: { x-key: { env: RAMPART_TEST_UNSET_OTLP } } } }",
            "tracing.otlp.headers.x-key",
        ),
    ]);
}
