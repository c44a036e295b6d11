//! The dashboard in a real browser (headless Chromium over the DevTools protocol): sign
//! in, see the overview follow traffic sent through the gateway, see a refused request
//! appear in the live decisions with its reason, be refused a rollback as a viewer and
//! roll back as an operator; no CSP violation or script error on any page. Screenshots
//! of every page are saved under `target/tmp/dashboard/`.
//!
//! And over plain HTTP: the security headers and cookie attributes, the read-only
//! token's limits on the admin API, and that nothing of the dashboard is on a public
//! listener.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use http::{Method, Request};
use http_body_util::Full;
use support::browser::{chromium, Browser};
use support::*;

const TOKEN: &str = "op-7d3f1a9c5e2b4680-9b1d3f5a7c0e2468";
const READ: &str = "ro-2a4c6e8f0b1d3e5f-8a6c4e2f0d1b3a59";

fn config(up: &TestUpstream, extra_route: &str) -> String {
    format!(
        "version: 1\naccess_log: {{ enabled: false }}\nstate_dir: state\n\
         listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         admin: {{ bind: \"127.0.0.1:0\", token: {{ file: admin-token }}, read_token: {{ file: read-token }} }}\n\
         audit: {{ signing_key: {{ file: audit-key }} }}\n\
         ip_lists: {{ blocked: {{ files: [blocked.txt] }} }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\n\
         routes:\n  - {{ name: open, match: {{ path_prefix: /open }}, upstream: up }}\n\
         \x20 - {{ name: walled, match: {{ path_prefix: /walled }}, upstream: up, ip_rules: {{ deny: [blocked] }} }}\n{extra_route}",
        up.addr
    )
}

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")
}

async fn form(addr: std::net::SocketAddr, path: &str, body: &str, cookie: Option<&str>) -> Reply {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    send(addr, b.body(Full::new(body.to_string().into())).unwrap()).await
}

/// Types `text` into the decisions filter.
fn filter(b: &mut Browser, text: &str) {
    b.eval(&format!(
        "(() => {{ const f = document.getElementById('filter'); f.value = '{text}'; f.dispatchEvent(new Event('input')); return true; }})()"
    ));
}

/// A gateway started from a file (so reload and rollback work), its first version kept
/// in the history, with an admin listener holding both tokens.
struct Gated {
    up: TestUpstream,
    path: PathBuf,
    gateway: Arc<rampart::Gateway>,
    admin: rampart::admin::Admin,
    _dir: tempfile::TempDir,
}

impl Gated {
    fn start() -> Gated {
        let up = TestUpstream::echo();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
        std::fs::write(dir.path().join("read-token"), READ).unwrap();
        std::fs::write(dir.path().join("blocked.txt"), "127.0.0.1\n").unwrap();
        support::process::audit_keygen(dir.path());
        let path = dir.path().join("rampart.yaml");
        std::fs::write(&path, config(&up, "")).unwrap();
        let start = rampart::history::start(&path, false, None).unwrap();
        let gateway = Arc::new(rampart::Gateway::start(start.plan).unwrap());
        rampart::history::went_live(&gateway, &start.text, start.action);
        let admin = rampart::admin::start(gateway.clone(), Some(path.clone()))
            .unwrap()
            .unwrap();
        Gated {
            up,
            path,
            gateway,
            admin,
            _dir: dir,
        }
    }
}

#[tokio::test]
async fn headers_cookies_and_the_read_only_token_over_http() {
    let g = Gated::start();
    let (a, gateway) = (g.admin.addr(), &g.gateway);

    // Not on a public listener.
    let public = gateway.addr("public").unwrap();
    let r = get(public, "/ui/login").await;
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("Admin token"));

    // Pages need a session; the sign-in page has the strict headers.
    let r = get(a, "/ui").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
    let r = get(a, "/ui/login").await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    // A wrong token is refused; a right one gets a hardened session cookie.
    let r = form(a, "/ui/login", "token=nope", None).await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    let r = form(a, "/ui/login", &format!("token={READ}"), None).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let r = get_with(a, "/ui", &[("cookie", &session)]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Viewer (read-only)"));

    // A form without the CSRF token is refused, even with the session.
    let r = form(a, "/ui/reload", "", Some(&session)).await;
    assert_eq!(r.status, 403);

    // The read-only token reads the admin API and changes nothing.
    assert_eq!(
        admin_json(a, READ, "GET", "/config", None).await.status,
        200
    );
    let r = admin_json(a, READ, "POST", "/admin/reload", None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        admin_json(a, TOKEN, "POST", "/admin/reload", None)
            .await
            .status,
        200
    );

    // Config errors name their field.
    assert_config_errors(&[
        (
            "admin: { bind: \"127.0.0.1:0\", read_token: { env: X } }",
            "admin.read_token",
        ),
        (
            "admin: { bind: \"127.0.0.1:0\", token: { env: X }, ui: { max_live: 0 } }",
            "admin.ui.max_live",
        ),
    ]);
}

#[tokio::test]
async fn the_consumers_page_shows_how_close_each_consumer_is_to_its_limits() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
    std::fs::write(
        dir.path().join("pepper.txt"),
        "dashboard-test-pepper-0123456789",
    )
    .unwrap();
    let key = rampart_identity::api_key::generate(b"dashboard-test-pepper-0123456789").unwrap();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\n\
         listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         limits: {{ idle_timeout: 1s }}\n\
         admin: {{ bind: \"127.0.0.1:0\", token: {{ file: admin-token }} }}\n\
         identity: {{ api_keys: {{ pepper: {{ file: pepper.txt }} }} }}\n\
         consumers:\n  - {{ id: partner, limits: [{{ quota: 10/min }}], api_keys: [{{ id: p1, hash: \"{}\" }}] }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\n\
         routes:\n  - {{ name: orders, match: {{ path_prefix: /orders }}, upstream: up, authenticate: [api_key], rate_limit: {{ by: consumer }} }}\n",
        key.hash, up.addr
    );
    let gateway = Arc::new(rampart::start(&yaml, dir.path()).unwrap());
    let admin = rampart::admin::start(gateway.clone(), None)
        .unwrap()
        .unwrap();
    let (a, g) = (admin.addr(), gateway.addr("public").unwrap());
    for _ in 0..7 {
        let r = get_with(g, "/orders/1", &[("x-api-key", &key.key)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = form(a, "/ui/login", &format!("token={TOKEN}"), None).await;
    let session = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = get_with(a, "/ui/consumers", &[("cookie", &session)])
        .await
        .text();
    assert!(page.contains("consumer:partner"), "{page}");
    assert!(page.contains("7 of 10 per 60 s used"), "{page}");

    // A live view outlasts the idle timeout (1 s here): the connection is busy while its
    // answer streams, one frame a second.
    let mut tcp = tokio::net::TcpStream::connect(a).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        format!("GET /ui/live/overview HTTP/1.1\r\nHost: {a}\r\nCookie: {session}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let streamed = read_to_close(&mut tcp, std::time::Duration::from_millis(3500)).await;
    assert!(streamed.starts_with("HTTP/1.1 200"), "{streamed}");
    assert!(streamed.contains("text/event-stream"), "{streamed}");
    assert!(
        streamed.matches("event: overview").count() >= 3,
        "{streamed}"
    );
    drop(admin);
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser() {
    let Some(binary) = chromium() else {
        panic!("Chromium is needed for the dashboard test: scripts/test.sh installs it (apt-get install chromium)");
    };
    let Gated {
        up,
        path,
        gateway,
        admin,
        _dir,
    } = Gated::start();
    let (a, g) = (admin.addr(), gateway.addr("public").unwrap());
    let v1 = admin_json(a, TOKEN, "GET", "/admin/history", None)
        .await
        .json()["current"]
        .as_str()
        .unwrap()
        .to_string();
    // A second version goes live, so there is one to roll back to.
    std::fs::write(
        &path,
        config(
            &up,
            "  - { name: extra, match: { path_prefix: /extra }, upstream: up }\n",
        ),
    )
    .unwrap();
    assert_eq!(
        admin_json(a, TOKEN, "POST", "/admin/reload", None)
            .await
            .status,
        200
    );

    let base = format!("http://{a}");
    let mut seen = Vec::new();
    let b = tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch(&binary);
        b.goto(&format!("{base}/ui"));
        assert!(b.text("location.pathname").ends_with("/ui/login"));
        b.screenshot(&shots().join("login.png"));
        // Sign in as a viewer, as a person would: type the token, press the button.
        b.eval(&format!(
            "document.getElementById('token').value = '{READ}'; document.querySelector('main form button').click(); true"
        ));
        b.wait_for("location.pathname === '/ui' && document.readyState === 'complete'");
        assert!(b.text("document.querySelector('.who').textContent").contains("Viewer"));
        b
    })
    .await
    .unwrap();

    // Traffic through the gateway shows on the open overview without a reload.
    for _ in 0..25 {
        assert_eq!(get(g, "/open/x").await.status, 200);
    }
    let mut b = tokio::task::spawn_blocking(move || {
        let mut b = b;
        b.wait_for("Number(document.getElementById('v-total').textContent) >= 25");
        b.wait_for("document.getElementById('s-rps').getAttribute('points').length > 0");
        b.screenshot(&shots().join("overview.png"));
        b.goto(&format!("http://{a}/ui/decisions"));
        b.wait_for("document.getElementById('live-state').textContent === 'live'");
        b
    })
    .await
    .unwrap();
    seen.extend(b.all_problems());

    // A refused request appears in the live decisions with its reason.
    assert_eq!(get(g, "/walled/secret").await.status, 403);
    let mut b = tokio::task::spawn_blocking(move || {
        b.wait_for("Array.from(document.querySelectorAll('#decisions tr')).some(r => r.textContent.includes('ip.denied') && r.textContent.includes('walled'))");
        // The filter hides what does not match.
        filter(&mut b, "no-such-thing");
        assert_eq!(b.eval("document.querySelectorAll('#decisions tr:not(.hidden)').length"), 0);
        filter(&mut b, "ip.denied");
        b.wait_for("document.querySelectorAll('#decisions tr:not(.hidden)').length >= 1");
        b.screenshot(&shots().join("decisions.png"));
        b
    })
    .await
    .unwrap();
    seen.extend(b.all_problems());

    // A viewer cannot roll back: no button, and the server refuses a forged form.
    let v = v1.clone();
    let mut b = tokio::task::spawn_blocking(move || {
        b.goto(&format!("http://{a}/ui/config"));
        assert_eq!(b.eval("document.querySelectorAll('a[href*=\"rollback\"]').length"), 0);
        let status = b.eval(&format!(
            "fetch('/ui/config/rollback', {{method: 'POST', body: new URLSearchParams({{csrf: document.querySelector('input[name=csrf]').value, version: '{v}'}})}}).then(r => r.status)"
        ));
        assert_eq!(status, 403);
        // The browser logs the refusal it was just given; nothing else.
        let logged = b.all_problems();
        assert!(
            logged.len() == 1 && logged[0].contains("403"),
            "{logged:#?}"
        );
        // Sign out, then in as the operator.
        b.eval("document.querySelector('.who button').click(); true");
        b.wait_for("location.pathname === '/ui/login'");
        b.eval(&format!(
            "document.getElementById('token').value = '{TOKEN}'; document.querySelector('main form button').click(); true"
        ));
        b.wait_for("location.pathname === '/ui' && document.readyState === 'complete'");
        b.goto(&format!("http://{a}/ui/config"));
        b.screenshot(&shots().join("config.png"));
        b.eval("document.querySelector('a[href*=\"rollback\"]').click(); true");
        b.wait_for("location.pathname === '/ui/config/rollback' && document.readyState === 'complete'");
        b.screenshot(&shots().join("rollback.png"));
        b.eval("document.querySelector('button.danger').click(); true");
        b.wait_for("document.querySelector('.done') !== null");
        assert!(b.text("document.querySelector('.done').textContent").contains("Rolled back"));
        b.goto(&format!("http://{a}/ui/security"));
        assert!(b.text("document.querySelector('main').textContent").contains("verified now"));
        for page in ["routes", "consumers", "upstreams", "security"] {
            b.goto(&format!("http://{a}/ui/{page}"));
            assert!(b.text("document.querySelector('main h1').textContent").len() > 3);
            b.screenshot(&shots().join(format!("{page}.png")));
        }
        b
    })
    .await
    .unwrap();
    seen.extend(b.all_problems());
    assert!(seen.is_empty(), "the pages reported problems: {seen:#?}");

    // The rollback made v1 live, and was audited under the operator's session.
    let h = admin_json(a, TOKEN, "GET", "/admin/history", None)
        .await
        .json();
    assert_eq!(h["current"], v1);
    drop(b);
}

/// One request over a new mTLS connection to the admin listener: status, `Set-Cookie`
/// and body.
async fn over_mtls(
    addr: std::net::SocketAddr,
    client: &support::client::TlsClient,
    req: Request<Full<bytes::Bytes>>,
) -> (u16, Option<String>, String) {
    use http_body_util::BodyExt;
    let conn = tls_connect(addr, "admin.internal", client).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(conn.stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let r = sender.send_request(req).await.unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_listed_client_certificate_signs_in_with_its_role() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = support::certs::admin_mtls(dir.path());
    std::fs::write(dir.path().join("admin-token"), TOKEN).unwrap();
    let yaml = format!(
        "version: 1\naccess_log: {{ enabled: false }}\n\
         listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         admin:\n  bind: \"127.0.0.1:0\"\n  token: {{ file: admin-token }}\n\
         \x20 tls: {{ certificates: [{{ cert_file: admin.pem, key_file: admin.key }}], client_auth: {{ ca_file: operators.pem }} }}\n\
         \x20 ui: {{ certificates: {{ \"CN=alice\": operator, \"CN=bob\": viewer }} }}\n\
         upstreams:\n  up: {{ targets: [{{ url: \"http://{}\" }}] }}\n\
         routes:\n  - {{ name: open, match: {{ path_prefix: /open }}, upstream: up }}\n",
        up.addr
    );
    let gateway = Arc::new(rampart::start(&yaml, dir.path()).unwrap());
    let admin = rampart::admin::start(gateway.clone(), None)
        .unwrap()
        .unwrap();
    let a = admin.addr();
    let client = |leaf: &support::certs::Leaf| {
        let mut c = support::client::TlsClient::trusting(&server_ca.pem());
        c.client_cert = Some((leaf.cert_pem.clone(), leaf.key_pem.clone()));
        c
    };
    let sign_in = || {
        Request::post("/ui/login")
            .header("host", "admin.internal")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new("certificate=1".into()))
            .unwrap()
    };
    let page = |cookie: &str| {
        Request::get("/ui")
            .header("host", "admin.internal")
            .header("cookie", cookie)
            .body(Full::default())
            .unwrap()
    };
    for (cn, badge) in [("alice", "Operator"), ("bob", "Viewer (read-only)")] {
        let c = client(&client_ca.leaf(cn, &[]));
        // The sign-in page offers the certificate.
        let login = Request::get("/ui/login")
            .header("host", "admin.internal")
            .body(Full::default())
            .unwrap();
        let (_, _, body) = over_mtls(a, &c, login).await;
        assert!(body.contains(&format!("CN={cn}")), "{body}");
        let (status, cookie, body) = over_mtls(a, &c, sign_in()).await;
        assert_eq!(status, 303, "{body}");
        let cookie = cookie.unwrap();
        assert!(cookie.contains("; Secure"), "TLS: {cookie}");
        let session = cookie.split(';').next().unwrap().to_string();
        let (status, _, body) = over_mtls(a, &c, page(&session)).await;
        assert_eq!(status, 200);
        assert!(body.contains(badge), "{body}");
        // The session is bound to its certificate: another one cannot use it.
        let other = client(&client_ca.leaf("mallory", &[]));
        let (status, _, _) = over_mtls(a, &other, page(&session)).await;
        assert_eq!(status, 303, "redirected to sign in");
    }
    // A certificate the CA signed but the list does not name cannot sign in.
    let (status, cookie, body) =
        over_mtls(a, &client(&client_ca.leaf("carol", &[])), sign_in()).await;
    assert_eq!(status, 401, "{body}");
    assert!(cookie.is_none());
    // Listing certificates needs an admin listener that verifies them.
    assert_config_errors(&[(
        "admin: { bind: \"127.0.0.1:0\", token: { env: X }, ui: { certificates: { \"CN=a\": operator } } }",
        "admin.ui.certificates",
    )]);
}
