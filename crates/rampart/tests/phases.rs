//! The phase seam, end to end: a filter defined here (the way a feature crate defines
//! one) is compiled into a real gateway next to the built-in features and sees every
//! phase of real exchanges over real sockets, in order, with what earlier phases decided.
mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use rampart_config::{ConfigError, Spec};
use rampart_core::{
    BodyRewriter, ConnectInfo, Denial, ExchangeCtx, ExchangeRecord, FeaturePlan, Filter, Flow,
    Phase, Reason, RequestCtx, ResponseCtx, StateStore,
};
use rampart_identity::api_key::generate;
use support::*;

/// What the probe saw, in order; kept in the gateway's state store so the test can read it.
#[derive(Default)]
struct Journal(Mutex<Vec<String>>);

impl Journal {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Asks for the body to be upper-cased (left in the extensions by the request phase).
struct Upper;

struct Probe {
    journal: Arc<Journal>,
}

impl Filter for Probe {
    fn phase(&self) -> Phase {
        Phase::Transform
    }
    fn name(&self) -> &'static str {
        "probe"
    }
    fn on_connect(&self, cx: &ConnectInfo<'_>) -> Result<(), Reason> {
        self.journal.push(format!("connect:{}", cx.listener));
        if cx.listener == "closed" {
            return Err(Reason::PolicyDenied);
        }
        Ok(())
    }
    fn on_client_hello(&self, cx: &ConnectInfo<'_>) -> Result<(), Reason> {
        let sni = cx
            .client_hello
            .and_then(|h| h.server_name.as_deref())
            .unwrap_or("-");
        // The JA4 fingerprint, read from the raw hello: its TLS version and SNI part.
        let fp = cx
            .client_hello
            .and_then(|h| h.fingerprint.as_deref())
            .and_then(|f| f.get(..4))
            .unwrap_or("-");
        self.journal
            .push(format!("hello:{}:{sni}:{fp}", cx.listener));
        if sni == "blocked.test" {
            return Err(Reason::PolicyDenied);
        }
        Ok(())
    }
    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let consumer = cx
            .identity
            .as_ref()
            .and_then(|i| i.consumer.as_deref())
            .unwrap_or("-")
            .to_string();
        self.journal
            .push(format!("request:{}:consumer={consumer}", cx.path));
        if cx.path.starts_with("/upper") {
            cx.extensions.insert(Upper);
        }
        if cx.head.headers.contains_key("x-probe-deny") {
            return Flow::Deny(Denial::new(Reason::PolicyDenied).with_header(
                HeaderName::from_static("x-probe-denied"),
                HeaderValue::from_static("yes"),
            ));
        }
        Flow::Continue
    }
    fn on_upstream_request(&self, head: &mut http::request::Parts, _cx: &mut ExchangeCtx) {
        // The final head: forwarding headers and the request id are already set.
        self.journal.push(format!(
            "upstream_request:request_id={}",
            head.headers.contains_key("x-request-id")
        ));
        head.headers
            .insert("x-probe", HeaderValue::from_static("upstream-request"));
    }
    fn on_response(&self, cx: &mut ResponseCtx<'_>) {
        let who = if cx.own { "own" } else { "upstream" };
        self.journal
            .push(format!("response:{}:{who}", cx.head.status.as_u16()));
        cx.head
            .headers
            .insert("x-probe-response", HeaderValue::from_static(who));
        if cx.extensions.get::<Upper>().is_some() {
            cx.head.headers.remove(http::header::CONTENT_LENGTH);
        }
    }
    fn response_body(&self, cx: &ResponseCtx<'_>) -> Option<Box<dyn BodyRewriter>> {
        cx.extensions
            .get::<Upper>()
            .map(|_| Box::new(Uppercase) as Box<dyn BodyRewriter>)
    }
    fn on_log(&self, r: &ExchangeRecord<'_>) {
        let decisions = r.exchange.map_or(0, |x| x.decisions.len());
        self.journal.push(format!(
            "log:{}:route={}:decisions={decisions}",
            r.status,
            r.route.unwrap_or("-")
        ));
    }
}

struct Uppercase;

impl BodyRewriter for Uppercase {
    fn on_data(&mut self, data: Bytes, _end: bool) -> Result<Bytes, &'static str> {
        Ok(Bytes::from(data.to_ascii_uppercase()))
    }
}

/// The probe's feature: one probe on every route, on unrouted answers and at connect.
fn probe_feature(
    spec: &Spec,
    _base: &Path,
    state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let journal = state.get_or_insert("journal", Journal::default);
    let probe: Arc<dyn Filter> = Arc::new(Probe { journal });
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    for r in &mut out.routes {
        r.push(probe.clone());
    }
    out.unrouted.push(probe.clone());
    out.connect.push(probe);
    Ok(out)
}

const PEPPER: &str = "phase-test-pepper-0123456789abcdef";

struct Fixture {
    gw: TestGateway,
    up: TestUpstream,
    key: String,
    journal: Arc<Journal>,
    ca: support::certs::TestCa,
}

fn fixture() -> Fixture {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pepper.txt"), PEPPER).unwrap();
    let ca = support::certs::TestCa::new("phases");
    ca.leaf("api.test", &["api.test", "blocked.test"])
        .write(dir.path(), "gw");
    let key = generate(PEPPER.as_bytes()).unwrap();
    let yaml = format!(
        r#"version: 1
workers: 1
access_log: {{ enabled: false }}
listeners:
  - {{ name: public, bind: "127.0.0.1:0" }}
  - {{ name: closed, bind: "127.0.0.1:0" }}
  - {{ name: secure, bind: "127.0.0.1:0", tls: {{ certificates: [{{ cert_file: gw.pem, key_file: gw.key }}] }} }}
identity: {{ api_keys: {{ pepper: {{ file: pepper.txt }} }} }}
consumers: [{{ id: acme, api_keys: [{{ id: k1, hash: "{}" }}] }}]
upstreams: {{ up: {{ targets: [{{ url: "http://{}" }}] }} }}
routes:
  - {{ name: keyed, match: {{ path_prefix: / }}, upstream: up, authenticate: [api_key] }}
"#,
        key.hash, up.addr
    );
    let spec = rampart_config::parse(&yaml).unwrap();
    let state = StateStore::new();
    // The built-in features plus this one: the bin's list and one more entry.
    let mut features = rampart::FEATURES.to_vec();
    features.push(probe_feature);
    let plan = rampart::compile_spec(spec.into(), dir.path(), &state, &features).unwrap();
    let gateway = rampart::Gateway::start(plan).unwrap();
    let journal = state.get_or_insert("journal", Journal::default);
    Fixture {
        gw: TestGateway { gateway, dir },
        up,
        key: key.key,
        journal,
        ca,
    }
}

/// The log phase runs after the last byte, so wait for its entry.
async fn journal_until(j: &Journal, last_prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..250 {
        seen.extend(j.take());
        if seen.iter().any(|e| e.starts_with(last_prefix)) {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no {last_prefix:?} entry in {seen:?}");
}

#[tokio::test]
async fn phases_run_in_order_and_each_sees_what_earlier_ones_decided() {
    let f = fixture();
    let r = get_with(f.gw.http(), "/orders", &[("x-api-key", &f.key)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-probe-response"), Some("upstream"));
    // The upstream got the head the upstream-request phase finished.
    assert_eq!(f.up.last().headers["x-probe"], "upstream-request");
    let seen = journal_until(&f.journal, "log:").await;
    assert_eq!(
        seen,
        vec![
            "connect:public".to_string(),
            // Authenticate (an earlier phase) already proved the consumer.
            "request:/orders:consumer=acme".into(),
            "upstream_request:request_id=true".into(),
            "response:200:upstream".into(),
            "log:200:route=keyed:decisions=1".into(),
        ]
    );
}

#[tokio::test]
async fn a_denial_renders_from_its_reason_with_the_filters_headers_and_is_logged() {
    let f = fixture();
    let r = get_with(
        f.gw.http(),
        "/orders",
        &[("x-api-key", &f.key), ("x-probe-deny", "1")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "authz.denied");
    assert_eq!(r.header("x-probe-denied"), Some("yes"));
    assert_eq!(r.header("x-probe-response"), Some("own"));
    assert_eq!(f.up.hits(), 0);
    let seen = journal_until(&f.journal, "log:").await;
    assert!(seen.contains(&"response:403:own".to_string()), "{seen:?}");
    assert!(
        !seen.iter().any(|e| e.starts_with("upstream_request")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"log:403:route=keyed:decisions=1".to_string()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_refusal_by_an_earlier_phase_still_runs_the_response_and_log_phases() {
    let f = fixture();
    let r = get(f.gw.http(), "/orders").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-probe-response"), Some("own"));
    let seen = journal_until(&f.journal, "log:").await;
    // Authenticate refused first: the probe's own request phase never ran.
    assert!(!seen.iter().any(|e| e.starts_with("request:")), "{seen:?}");
    assert!(
        seen.contains(&"log:401:route=keyed:decisions=1".to_string()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_body_rewriter_sees_the_upstream_body_and_replaces_it() {
    let f = fixture();
    let r = get_with(f.gw.http(), "/upper/path", &[("x-api-key", &f.key)]).await;
    assert_eq!(r.status, 200);
    let body = r.text();
    // The echo upstream answers with JSON describing the request; upper-cased here.
    assert!(body.contains("\"/UPPER/PATH\""), "{body}");
    assert!(!body.chars().any(|c| c.is_ascii_lowercase()), "{body}");
}

#[tokio::test]
async fn answers_to_unrouted_requests_run_the_gateway_wide_chain() {
    let up = TestUpstream::echo();
    let yaml = format!(
        "version: 1\nworkers: 1\naccess_log: {{ enabled: false }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\nroutes: [{{ name: api, match: {{ path_prefix: /api }}, upstream: up }}]\n",
        up.addr
    );
    let state = StateStore::new();
    let mut features = rampart::FEATURES.to_vec();
    features.push(probe_feature);
    let spec = rampart_config::parse(&yaml).unwrap();
    let plan = rampart::compile_spec(spec.into(), Path::new("."), &state, &features).unwrap();
    let gw = rampart::Gateway::start(plan).unwrap();
    let r = get(gw.addr("public").unwrap(), "/elsewhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-probe-response"), Some("own"));
    let journal = state.get_or_insert("journal", Journal::default);
    let seen = journal_until(&journal, "log:").await;
    assert!(
        seen.contains(&"log:404:route=-:decisions=0".to_string()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn on_tls_listeners_the_connect_phase_runs_at_accept_then_the_client_hello_phase() {
    // `on_connect` before any byte is read; `on_client_hello` with the SNI and the JA4
    // fingerprint, before the handshake is answered, where a refusal ends the connection
    // with no handshake.
    let f = fixture();
    let client = TlsClient::trusting(&f.ca.pem());
    assert!(tls_connect(f.gw.addr("secure"), "api.test", &client)
        .await
        .is_ok());
    let seen = journal_until(&f.journal, "hello:").await;
    assert_eq!(seen, ["connect:secure", "hello:secure:api.test:t13d"]);
    assert!(tls_connect(f.gw.addr("secure"), "blocked.test", &client)
        .await
        .is_err());
    assert_eq!(
        journal_until(&f.journal, "hello:").await,
        ["connect:secure", "hello:secure:blocked.test:t13d"]
    );
    let plan = f.gw.gateway.plan();
    let secure = plan
        .listeners
        .iter()
        .find(|l| &*l.name == "secure")
        .unwrap();
    assert_eq!(
        secure
            .metrics
            .connect_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_connect_phase_refusal_closes_the_connection_before_any_http() {
    let f = fixture();
    let mut tcp = tokio::net::TcpStream::connect(f.gw.addr("closed"))
        .await
        .unwrap();
    assert!(closed_within(&mut tcp, std::time::Duration::from_secs(5)).await);
    let plan = f.gw.gateway.plan();
    let closed = plan
        .listeners
        .iter()
        .find(|l| &*l.name == "closed")
        .unwrap();
    assert_eq!(
        closed
            .metrics
            .connect_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The other listener still serves.
    assert_eq!(
        get_with(f.gw.http(), "/x", &[("x-api-key", &f.key)])
            .await
            .status,
        200
    );
}
