//! `rampart demo`: the gateway on an embedded config, in front of a built-in echo API,
//! with a self-signed certificate generated at start. Prints requests that work.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

/// The demo's config; `{ECHO}`, `{HTTP}` and `{HTTPS}` are filled in at start.
pub const DEMO_CONFIG: &str = r#"
version: 1
listeners:
  - name: http
    bind: "127.0.0.1:{HTTP}"
  - name: https
    bind: "127.0.0.1:{HTTPS}"
    tls:
      certificates: [{ cert_file: demo-cert.pem, key_file: demo-key.pem }]
admin: { bind: "127.0.0.1:0", token: { file: demo-admin-token } }
state_dir: .
consumer_store: { kind: embedded }
audit: { signing_key: { file: demo-audit-key } }
identity:
  api_keys: { pepper: { file: demo-pepper.txt } }
consumers:
  - id: demo-partner
    roles: [orders-reader]
    api_keys: [{ id: demo-key, hash: "{KEY_HASH}" }]
response_headers: { frame_options: deny, referrer_policy: no-referrer }
anomaly: { action: shadow }
tracing: { sample: 1 }
upstreams:
  echo:
    targets: [{ url: "http://127.0.0.1:{ECHO}" }]
    health_check: { path: /healthz, interval: 5s }
routes:
  - name: echo
    match: { path_prefix: /echo }
    upstream: echo
    rewrite: { strip_prefix: /echo }
  - name: orders
    match: { path: "/v1/orders/{id}", methods: [GET] }
    upstream: echo
    authenticate: [api_key]
    authorize: { roles_any: [orders-reader] }
  - name: widgets
    match: { path_prefix: /widgets }
    upstream: echo
    validate: { openapi: demo-openapi.yaml }
  - name: search
    match: { path_prefix: /search }
    upstream: echo
    inspect: { paranoia: 1 }
  - name: profile
    match: { path_prefix: /profile }
    upstream: echo
    mask:
      fields: [{ path: "$.headers.user-agent", action: redact }]
      detect: [{ kind: card, action: last4 }, { kind: email, action: redact }]
    cors: { origins: ["https://app.example.com"], methods: [GET, POST] }
  - name: legacy
    match: { path: "/v2/users/{id}", methods: [POST] }
    upstream: echo
    rewrite: { template: "/legacy/getUser?uid={id}" }
    transform:
      query: { remove: [debug] }
      xml: { request: true }
      request_body:
        - set: { path: "$.id", value: "{{ params.id }}" }
        - move: { from: "$", to: "$.GetUser" }
      response_body:
        - remove: "$.headers"
"#;

/// The contract of the demo's `/widgets` API, validated by the gateway.
pub const DEMO_OPENAPI: &str = r#"
openapi: 3.0.3
info: { title: Widgets, version: "1" }
paths:
  /widgets:
    post:
      parameters:
        - { name: dry_run, in: query, schema: { type: boolean } }
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name, qty]
              additionalProperties: false
              properties:
                id: { type: string, readOnly: true }
                name: { type: string, minLength: 1, maxLength: 40 }
                qty: { type: integer, minimum: 1, maximum: 1000 }
      responses: { "200": { description: ok } }
"#;

/// Answers every request with a JSON description of what it received.
async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
            )
        })
        .collect();
    let doc = serde_json::json!({
        "service": "rampart-demo-echo",
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::new(Full::new(Bytes::from(doc.to_string() + "\n")));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    // The gateway strips this: the demo shows it never reaches the client.
    resp.headers_mut().insert(
        http::header::SERVER,
        http::HeaderValue::from_static("demo-echo/1.0"),
    );
    Ok(resp)
}

/// Starts the echo API on a free loopback port, on its own thread.
pub fn start_echo() -> anyhow::Result<SocketAddr> {
    Ok(crate::local_server::serve_loopback("demo-echo", echo)?)
}

/// Writes a fresh self-signed certificate for `localhost`/127.0.0.1 into `dir`.
pub fn write_self_signed(dir: &Path) -> anyhow::Result<()> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    std::fs::write(dir.join("demo-cert.pem"), cert.cert.pem())?;
    let key_path = dir.join("demo-key.pem");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&key_path)?;
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(cert.signing_key.serialize_pem().as_bytes())?;
    Ok(())
}

/// Runs the demo until `wait` returns.
pub fn run(http_port: u16, https_port: u16, wait: impl FnOnce()) -> anyhow::Result<()> {
    let echo = start_echo()?;
    let dir = std::env::temp_dir().join(format!("rampart-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    write_self_signed(&dir)?;
    // A pepper and a key made for this run only: the config holds just the key's hash.
    let pepper = rampart_identity::api_key::generate(b"demo")
        .map_err(|e| anyhow::anyhow!(e))?
        .key;
    std::fs::write(dir.join("demo-pepper.txt"), &pepper)?;
    std::fs::write(dir.join("demo-openapi.yaml"), DEMO_OPENAPI)?;
    // The audit trail's signing key, made for this run.
    let (audit_key, _) =
        rampart_observe::audit_trail::generate_key().map_err(|e| anyhow::anyhow!(e))?;
    {
        use base64::Engine as _;
        std::fs::write(
            dir.join("demo-audit-key"),
            base64::engine::general_purpose::STANDARD.encode(audit_key),
        )?;
    }
    // The admin token, made for this run: the admin API and the dashboard sign-in.
    let admin_token = rampart_identity::api_key::generate(b"admin")
        .map_err(|e| anyhow::anyhow!(e))?
        .key;
    std::fs::write(dir.join("demo-admin-token"), &admin_token)?;
    let key =
        rampart_identity::api_key::generate(pepper.as_bytes()).map_err(|e| anyhow::anyhow!(e))?;
    let yaml = DEMO_CONFIG
        .replace("{KEY_HASH}", &key.hash)
        .replace("{ECHO}", &echo.port().to_string())
        .replace("{HTTP}", &http_port.to_string())
        .replace("{HTTPS}", &https_port.to_string());
    let gateway = std::sync::Arc::new(crate::start(&yaml, &dir).context("starting the gateway")?);
    let http = gateway.addr("http").context("http listener")?;
    let https = gateway.addr("https").context("https listener")?;
    let admin = crate::admin::start(gateway.clone(), None)?.context("admin listener")?;
    let cert = dir.join("demo-cert.pem");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Rampart demo: gateway on http://{http} and https://localhost:{} in front of an echo API.\n\
         The live dashboard is at http://{}/ui (sign in with the admin token {admin_token}).\n\
         Try these (each prints what the upstream received, or the gateway's problem+json):\n",
        https.port(),
        admin.addr()
    );
    let admin = (admin, admin_token);
    for (what, cmd) in example_requests(http, https, (admin.0.addr(), &admin.1), &cert, &key.key) {
        let _ = writeln!(out, "# {what}\n{cmd}\n");
    }
    let _ = writeln!(
        out,
        "Access log lines (JSON) follow on stdout. Press Ctrl-C to stop."
    );
    drop(out);
    wait();
    drop(admin);
    if let Ok(gateway) = std::sync::Arc::try_unwrap(gateway) {
        gateway.shutdown();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The example requests the demo prints, as (description, curl command).
pub fn example_requests(
    http: SocketAddr,
    https: SocketAddr,
    (admin, token): (SocketAddr, &str),
    cert: &Path,
    api_key: &str,
) -> Vec<(&'static str, String)> {
    let auth = format!("-H 'Authorization: Bearer {token}'");
    vec![
        ("a proxied GET (the route strips /echo)", format!("curl -s http://{http}/echo/hello?name=world")),
        (
            "a proxied POST with a JSON body",
            format!("curl -s -X POST http://{http}/echo/items -H 'content-type: application/json' -d '{{\"name\":\"widget\"}}'"),
        ),
        (
            "an API-key route (GET only; the key was made for this run, the upstream sees X-Consumer-Id)",
            format!("curl -s http://{http}/v1/orders/42 -H 'X-API-Key: {api_key}'"),
        ),
        (
            "HTTPS with HTTP/2, verifying the demo's self-signed certificate",
            format!("curl -s --http2 --cacert {} https://localhost:{}/echo/secure", cert.display(), https.port()),
        ),
        ("no route matches: 404 problem+json", format!("curl -s http://{http}/nowhere")),
        ("path traversal is refused: 400 problem+json", format!("curl -s --path-as-is http://{http}/echo/../../etc/passwd")),
        ("the API-key route without a key: 401 problem+json", format!("curl -s http://{http}/v1/orders/42")),
        (
            "forged identity is stripped: Connection cannot remove the gateway's X-Consumer-Id, and the X_Consumer_Id twin and X-Original-URL never arrive",
            format!("curl -s http://{http}/v1/orders/42 -H 'X-API-Key: {api_key}' -H 'Connection: x-consumer-id' -H 'X_Consumer_Id: admin' -H 'X-Original-URL: /admin'"),
        ),
        ("a servlet path parameter (/..;/) is refused: 400 problem+json", format!("curl -s --path-as-is 'http://{http}/echo/..;/admin'")),
        (
            "security response headers: HSTS (TLS only), nosniff, frame and referrer policy",
            format!("curl -s -o /dev/null -D - --cacert {} https://localhost:{}/echo/secure", cert.display(), https.port()),
        ),
        (
            "a JSON body naming a member twice is refused, whatever its Content-Type: 400 json.duplicate_name",
            format!("curl -s -X POST http://{http}/echo/items -H 'content-type: text/plain' -d '{{\"role\":\"user\",\"role\":\"admin\"}}'"),
        ),
        (
            "a request that keeps the /widgets OpenAPI contract reaches the upstream",
            format!("curl -s -X POST 'http://{http}/widgets?dry_run=true' -H 'content-type: application/json' -d '{{\"name\":\"bolt\",\"qty\":3}}'"),
        ),
        (
            "one that breaks it: 400 listing every violation (where, which field, why; never the value)",
            format!("curl -s -X POST 'http://{http}/widgets?dry_run=true' -H 'content-type: application/json' -d '{{\"id\":\"w1\",\"qty\":0}}'"),
        ),
        (
            "injection detection on /search: an everyday query with quotes and an ampersand passes",
            format!("curl -s 'http://{http}/search?q=O%27Brien%20%26%20Sons%27%20catalogue'"),
        ),
        (
            "a SQL injection in it is refused: 403 (the access log says waf.sqli, the field and the rule)",
            format!("curl -s 'http://{http}/search?q=1%27%20OR%20%271%27%3D%271'"),
        ),
        (
            "response masking on /profile: the card number and e-mail the echo sends back arrive masked (the access log counts \"mask\" per rule)",
            format!("curl -s -X POST http://{http}/profile -H 'content-type: application/json' -d '{{\"card\":\"4111 1111 1111 1111\",\"email\":\"jane@example.com\"}}'"),
        ),
        (
            "CORS on /profile: the gateway answers the browser's preflight itself",
            format!("curl -s -o /dev/null -D - -X OPTIONS http://{http}/profile -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: POST'"),
        ),
        (
            "wrapping a legacy XML API: the path parameter moves into the legacy query, ?debug is dropped, the JSON body goes upstream as XML (the echo shows what it got)",
            format!("curl -s -X POST 'http://{http}/v2/users/42?debug=1' -H 'content-type: application/json' -d '{{\"name\":\"Ann\"}}'"),
        ),
        (
            "the consumer store: a partner signs up through the admin API and gets a key (shown once, stored as a peppered hash), which works at once, no reload",
            format!("curl -s -o /dev/null -X POST {auth} http://{admin}/admin/consumers -d '{{\"id\":\"demo-signup\",\"roles\":[\"orders-reader\"]}}'; KEY=$(curl -s -X POST {auth} http://{admin}/admin/consumers/demo-signup/keys -d '{{\"expires_in\":\"30d\"}}' | sed -n 's/.*\"key\":\"\\([^\"]*\\)\".*/\\1/p'); curl -s http://{http}/v1/orders/7 -H \"X-API-Key: $KEY\""),
        ),
        (
            "its keys as the admin API lists them: ids and dates, never a key",
            format!("curl -s {auth} http://{admin}/admin/consumers/demo-signup/keys"),
        ),
        (
            "deleting the consumer revokes every key it has, on the next request",
            format!("curl -s -X DELETE {auth} http://{admin}/admin/consumers/demo-signup"),
        ),
        (
            "the security posture of the running config, mapped to OWASP API Top 10, NIST 800-53 and PCI DSS (`rampart posture --admin` prints it as text or HTML)",
            format!("curl -s {auth} http://{admin}/admin/posture"),
        ),
        (
            "the audit trail: every admin call above and the denials worth recording, hash-chained and signed (its metrics; `rampart audit verify` checks the file)",
            format!("curl -s {auth} http://{admin}/metrics | grep rampart_audit_"),
        ),
        (
            "tracing: the upstream gets the caller's trace with the gateway's span as parent (the echo shows its traceparent)",
            format!("curl -s http://{http}/echo/traced -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'"),
        ),
        (
            "anomaly detection learning each caller's traffic per route (shadow: a flag is logged and audited, nothing refused)",
            format!("curl -s {auth} http://{admin}/metrics | grep -E 'rampart_anomaly_(tracked|flags_total)'"),
        ),
        (
            "the dashboard: sign in with the admin token (a session cookie, HttpOnly and SameSite=Strict), then its pages; open the URL above in a browser to watch it live",
            format!(
                "curl -s -c {jar} -o /dev/null --data-urlencode token={token} http://{admin}/ui/login && curl -s -b {jar} http://{admin}/ui | grep -o '<title>[^<]*'",
                jar = cert.with_file_name("ui-cookies").display()
            ),
        ),
    ]
}
