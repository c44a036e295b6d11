//! The gateway's own OAuth2 client-credentials token for an upstream (RFC 6749 §4.4):
//! fetched from the token endpoint on first need, cached, renewed in the background
//! shortly before it expires, and fetched once however many requests want it at the same
//! moment (single flight). The client secret and the token never reach a log line, an
//! error message or a `Debug` output.
//!
//! - A request finds a valid token in the cache without waiting: an `ArcSwap` load.
//! - A token due for renewal is still sent; the first request to notice starts one
//!   background fetch, so renewal adds no latency.
//! - Without a valid token (the first request, or after an expiry the endpoint could not
//!   renew), requests wait for the one fetch in flight, up to its timeout.
//! - After a failed fetch, requests are refused at once for [`RETRY_AFTER_FAILURE`]
//!   instead of each one calling a token endpoint that is down.
//! - An upstream that answers 401 to a token has revoked it: it is dropped, and the next
//!   request fetches a new one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;
use rampart_core::Wait;

/// How long requests are refused after a failed fetch before the next one may start.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A token without `expires_in` is kept this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// A token is kept at most this long, whatever `expires_in` says (an endpoint's
/// `expires_in: 18446744073709551615` must not overflow the clock arithmetic).
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Tokens longer than this are refused (a header the upstream would likely refuse).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A cached token.
struct Token {
    /// `Bearer …`, marked sensitive.
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// How to ask for a token.
pub struct TokenRequest {
    pub token_url: String,
    /// The form body: `grant_type=client_credentials&scope=…` (and the client's
    /// credentials when they go in the body).
    pub form: String,
    /// `Basic …` for client_secret_basic, marked sensitive.
    pub authorization: Option<HeaderValue>,
    pub tls: Arc<rustls::ClientConfig>,
    pub timeout: Duration,
    pub refresh_before: Duration,
}

impl TokenRequest {
    /// Builds the request for `client_id` / `secret`; `basic` chooses HTTP basic client
    /// authentication (RFC 6749 §2.3.1: both parts form-encoded, then base64) over form
    /// parameters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        token_url: String,
        client_id: &str,
        secret: &str,
        basic: bool,
        scopes: &[String],
        audience: Option<&str>,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
        refresh_before: Duration,
    ) -> TokenRequest {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !scopes.is_empty() {
            form.append_pair("scope", &scopes.join(" "));
        }
        if let Some(a) = audience {
            form.append_pair("audience", a);
        }
        let authorization = if basic {
            // RFC 6749 §2.3.1: both parts form-encoded, then joined and base64-encoded.
            let pair: String = form_urlencoded::byte_serialize(client_id.as_bytes())
                .chain([":"])
                .chain(form_urlencoded::byte_serialize(secret.as_bytes()))
                .collect();
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(pair)))
                .ok()
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
        } else {
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", secret);
            None
        };
        let form = form.finish();
        TokenRequest {
            token_url,
            form,
            authorization,
            tls,
            timeout,
            refresh_before,
        }
    }
}

/// One upstream's token, shared by the routes to it and kept across reloads while the
/// request (endpoint, client, secret, scopes) stays the same.
pub struct TokenSource {
    /// The upstream's name, for log lines.
    upstream: Arc<str>,
    request: TokenRequest,
    current: ArcSwapOption<Token>,
    in_flight: AtomicBool,
    /// Bumped after every fetch; waiters watch it.
    done: tokio::sync::watch::Sender<u64>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last failed fetch's end; 0 = none.
    failed_at_ms: AtomicU64,
    fetched: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSource({} <redacted>)", self.upstream)
    }
}

/// What a request gets from [`TokenSource::token`].
pub enum TokenNow {
    /// Send this `Authorization` value.
    Ready(HeaderValue),
    /// A fetch is running: await this, then ask again.
    Wait(Wait),
    /// No token, and the last fetch failed moments ago.
    Unavailable,
}

impl TokenSource {
    pub fn new(upstream: Arc<str>, request: TokenRequest) -> TokenSource {
        TokenSource {
            upstream,
            request,
            current: ArcSwapOption::empty(),
            in_flight: AtomicBool::new(false),
            done: tokio::sync::watch::channel(0).0,
            epoch: Instant::now(),
            failed_at_ms: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Token requests that succeeded and failed since this source was created.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.fetched.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// The token for a request, never blocking.
    pub fn token(self: &Arc<Self>) -> TokenNow {
        let now = Instant::now();
        if let Some(t) = self.current.load().as_deref() {
            if now < t.expires_at {
                if now >= t.refresh_at {
                    self.start_fetch();
                }
                return TokenNow::Ready(t.header.clone());
            }
        }
        let failed = self.failed_at_ms.load(Ordering::Acquire);
        if failed != 0
            && self.millis(now) < failed + RETRY_AFTER_FAILURE.as_millis() as u64
            && !self.in_flight.load(Ordering::Acquire)
        {
            return TokenNow::Unavailable;
        }
        let mut rx = self.done.subscribe();
        self.start_fetch();
        let wait_for = self.request.timeout + Duration::from_millis(100);
        TokenNow::Wait(Box::pin(async move {
            let _ = tokio::time::timeout(wait_for, rx.changed()).await;
        }))
    }

    /// Drops `header` if it is the cached token: the upstream refused it (revoked before
    /// its expiry), so the next request fetches a new one.
    pub fn revoke(&self, header: &HeaderValue) {
        let cur = self.current.load();
        if cur.as_deref().is_some_and(|t| t.header == header) {
            self.current.compare_and_swap(&cur, None);
            tracing::warn!(
                upstream = %self.upstream,
                "upstream refused the gateway's OAuth2 token (401); fetching a new one"
            );
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_millis() as u64 + 1
    }

    /// Starts one background fetch unless one is running.
    fn start_fetch(self: &Arc<Self>) {
        if self
            .in_flight
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let me = self.clone();
        crate::background::handle().spawn(async move {
            me.fetch_once().await;
        });
    }

    async fn fetch_once(&self) {
        // Whatever happens below (even a panic), the next fetch may start and waiters
        // wake: a stuck `in_flight` would refuse every request from then on.
        struct Done<'a>(&'a TokenSource);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.in_flight.store(false, Ordering::Release);
                self.0.done.send_modify(|n| *n += 1);
            }
        }
        let _done = Done(self);
        let started = Instant::now();
        let r = &self.request;
        let result = crate::fetch::post_form(
            &r.token_url,
            &r.tls,
            r.timeout,
            r.authorization.as_ref(),
            &r.form,
        )
        .await
        .and_then(|a| parse_answer(a.status, &a.body));
        match result {
            Ok((header, lifetime)) => {
                let early = r.refresh_before.min(lifetime / 2);
                self.current.store(Some(Arc::new(Token {
                    header,
                    refresh_at: started + lifetime - early,
                    expires_at: started + lifetime,
                })));
                self.failed_at_ms.store(0, Ordering::Release);
                self.fetched.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    upstream = %self.upstream,
                    expires_in_s = lifetime.as_secs(),
                    "fetched the upstream's OAuth2 token"
                );
            }
            Err(e) => {
                self.failed_at_ms
                    .store(self.millis(Instant::now()), Ordering::Release);
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    upstream = %self.upstream,
                    error = %e,
                    "could not fetch the upstream's OAuth2 token; the current one (if any) stays in use until it expires"
                );
            }
        }
    }
}

/// Reads a token endpoint's answer: the `Authorization` value and the token's lifetime,
/// or why there is none. Error texts name the endpoint's RFC 6749 §5.2 error code at most,
/// never a body.
fn parse_answer(status: http::StatusCode, body: &[u8]) -> Result<(HeaderValue, Duration), String> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if !status.is_success() {
        let code = json
            .get("error")
            .and_then(|e| e.as_str())
            .filter(|c| c.len() <= 40 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .unwrap_or("none given");
        return Err(format!(
            "token endpoint answered {} (error: {code})",
            status.as_u16()
        ));
    }
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or("the answer has no access_token")?;
    match json.get("token_type").and_then(|t| t.as_str()) {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        // RFC 6749 §5.1 requires it; some servers leave it out and mean Bearer.
        None => {}
        Some(_) => return Err("the token is not a Bearer token".into()),
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(format!("the token is over {MAX_TOKEN_BYTES} bytes"));
    }
    let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token holds characters a header cannot carry".to_string())?;
    header.set_sensitive(true);
    // A number, or a number in a string (some servers send "3600").
    let lifetime = match json.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .map_or(DEFAULT_LIFETIME, Duration::from_secs)
    .min(MAX_LIFETIME);
    if lifetime.is_zero() {
        return Err("the token expires at once (expires_in 0)".into());
    }
    Ok((header, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn reads_a_bearer_token_and_its_lifetime() {
        let (h, life) = parse_answer(
            StatusCode::OK,
            br#"{"access_token":"abc","token_type":"bearer","expires_in":"120"}"#,
        )
        .unwrap();
        assert_eq!(h, "Bearer abc");
        assert!(h.is_sensitive());
        assert_eq!(life, Duration::from_secs(120));
        let (_, life) = parse_answer(StatusCode::OK, br#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(life, DEFAULT_LIFETIME);
        let huge = br#"{"access_token":"abc","expires_in":18446744073709551615}"#;
        assert_eq!(parse_answer(StatusCode::OK, huge).unwrap().1, MAX_LIFETIME);
    }

    #[test]
    fn refuses_answers_without_a_usable_token_and_never_quotes_them() {
        let err = |status: u16, body: &str| {
            parse_answer(StatusCode::from_u16(status).unwrap(), body.as_bytes()).unwrap_err()
        };
        assert_eq!(
            err(
                401,
                r#"{"error":"invalid_client","error_description":"secret s3cr3t wrong"}"#
            ),
            "token endpoint answered 401 (error: invalid_client)"
        );
        assert_eq!(
            err(400, r#"{"error":"Secret: s3cr3t"}"#),
            "token endpoint answered 400 (error: none given)"
        );
        assert!(err(200, r#"{"token_type":"bearer"}"#).contains("no access_token"));
        assert!(err(200, r#"{"access_token":"a","token_type":"mac"}"#).contains("not a Bearer"));
        assert!(err(200, "{\"access_token\":\"a\\nb\"}").contains("cannot carry"));
        assert!(err(200, r#"{"access_token":"a","expires_in":0}"#).contains("at once"));
    }

    #[test]
    fn builds_the_form_and_basic_credentials_of_rfc_6749() {
        let tls = crate::fetch::client_tls(None).unwrap();
        let d = Duration::from_secs(1);
        let r = TokenRequest::new(
            "https://idp/token".into(),
            "gw client",
            "p@ss:word",
            true,
            &["read:quotes".into(), "write".into()],
            Some("https://api.partner"),
            tls.clone(),
            d,
            d,
        );
        assert_eq!(
            r.form,
            "grant_type=client_credentials&scope=read%3Aquotes+write&audience=https%3A%2F%2Fapi.partner"
        );
        let auth = r.authorization.unwrap();
        let decoded = STANDARD.decode(&auth.as_bytes()[6..]).unwrap();
        assert_eq!(decoded, b"gw+client:p%40ss%3Aword");
        let r = TokenRequest::new(
            "https://idp/token".into(),
            "gw",
            "s",
            false,
            &[],
            None,
            tls,
            d,
            d,
        );
        assert_eq!(
            r.form,
            "grant_type=client_credentials&client_id=gw&client_secret=s"
        );
        assert!(r.authorization.is_none());
    }
}
