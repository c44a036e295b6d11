//! Where an issuer's keys come from and how they stay fresh.
//!
//! - Local keys (a JWKS or PEM file, or an HS* secret) are loaded with the config.
//! - Remote keys (`jwks_url` or OIDC discovery) are fetched on first need, then refreshed
//!   in the background on the server's `Cache-Control: max-age`, clamped to the configured
//!   bounds. When the IdP is down the last good keys stay in use.
//! - An unknown `kid` may trigger one fetch per cooldown, shared by every request that
//!   wants it (single flight): a flood of random `kid`s costs at most one fetch per
//!   cooldown, and only the requests that arrive while that fetch runs wait for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rampart_config::JwksRefreshSpec;
use rampart_core::Wait;

use super::keys::{parse_jwks, VerifyKey};

/// One version of an issuer's keys.
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
    /// Changes whenever the keys change, so cached verifications of a removed key end.
    pub generation: u64,
    digest: [u8; 32],
}

impl KeySet {
    pub fn new(keys: Vec<VerifyKey>) -> Self {
        Self {
            keys,
            generation: 0,
            digest: [0; 32],
        }
    }
}

/// An issuer's keys, with the machinery that fetches remote ones.
pub struct KeySource {
    pub name: Arc<str>,
    pub keys: ArcSwap<KeySet>,
    remote: Option<Remote>,
}

struct Remote {
    /// The configured JWKS URL, or `None` when it is found by discovery.
    jwks_url: Option<String>,
    issuer: String,
    /// The `jwks_uri` found by discovery (touched only by fetch tasks).
    discovered: Mutex<Option<String>>,
    tls: Arc<rustls::ClientConfig>,
    refresh: JwksRefreshSpec,
    in_flight: AtomicBool,
    /// Milliseconds since `epoch` of the last fetch start; 0 = never.
    last_attempt_ms: AtomicU64,
    epoch: Instant,
    /// Bumped after every fetch attempt; waiters watch it.
    done: tokio::sync::watch::Sender<u64>,
    refresher: AtomicBool,
}

impl KeySource {
    /// Keys known at load time.
    pub fn local(name: Arc<str>, keys: Vec<VerifyKey>) -> Self {
        Self {
            name,
            keys: ArcSwap::from_pointee(KeySet::new(keys)),
            remote: None,
        }
    }

    /// Keys from `jwks_url`, or from discovery at `issuer` when `jwks_url` is `None`.
    pub fn remote(
        name: Arc<str>,
        jwks_url: Option<String>,
        issuer: String,
        tls: Arc<rustls::ClientConfig>,
        refresh: JwksRefreshSpec,
    ) -> Self {
        Self {
            name,
            keys: ArcSwap::from_pointee(KeySet::new(Vec::new())),
            remote: Some(Remote {
                jwks_url,
                issuer,
                discovered: Mutex::new(None),
                tls,
                refresh,
                in_flight: AtomicBool::new(false),
                last_attempt_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                done: tokio::sync::watch::channel(0).0,
                refresher: AtomicBool::new(false),
            }),
        }
    }

    /// Asks for a fetch because the keys are missing or a `kid` is unknown. Returns what
    /// to wait for, or `None` when no fetch may happen now (local keys, or the cooldown
    /// since the last attempt has not passed).
    pub fn want_fetch(self: &Arc<Self>) -> Option<Wait> {
        let r = self.remote.as_ref()?;
        let mut rx = r.done.subscribe();
        let wait_for = r.refresh.timeout.get() + Duration::from_millis(100);
        let wait: Wait = Box::pin(async move {
            let _ = tokio::time::timeout(wait_for, rx.changed()).await;
        });
        if r.in_flight.load(Ordering::Acquire) {
            return Some(wait);
        }
        let now = r.epoch.elapsed().as_millis() as u64 + 1;
        let last = r.last_attempt_ms.load(Ordering::Acquire);
        // With no keys at all, retry sooner: nothing can be verified until a fetch works.
        let cooldown = if self.keys.load().keys.is_empty() {
            r.refresh
                .unknown_kid_cooldown
                .get()
                .min(Duration::from_secs(5))
        } else {
            r.refresh.unknown_kid_cooldown.get()
        };
        if last != 0 && now < last + cooldown.as_millis() as u64 {
            return None;
        }
        if r.in_flight
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Some(wait);
        }
        r.last_attempt_ms.store(now, Ordering::Release);
        let me = self.clone();
        crate::background::handle().spawn(async move {
            let _ = me.fetch_once().await;
        });
        Some(wait)
    }

    /// One fetch; updates the keys on success, keeps them on failure. Returns the
    /// server's `max-age` on success.
    async fn fetch_once(self: &Arc<Self>) -> Result<Option<Duration>, ()> {
        let Some(r) = self.remote.as_ref() else {
            return Err(());
        };
        let result = self.fetch_keys(r).await;
        let out = match result {
            Ok((keys, skipped, digest, max_age)) => {
                for s in &skipped {
                    tracing::warn!(issuer = %self.name, key = %s, "JWKS key skipped");
                }
                let old = self.keys.load();
                if old.digest != digest {
                    tracing::info!(issuer = %self.name, keys = keys.len(), "JWKS keys loaded");
                    self.keys.store(Arc::new(KeySet {
                        keys,
                        generation: old.generation + 1,
                        digest,
                    }));
                }
                if !r.refresher.swap(true, Ordering::AcqRel) {
                    let (lo, hi) = (r.refresh.min_interval.get(), r.refresh.max_interval.get());
                    spawn_refresher(Arc::downgrade(self), max_age.unwrap_or(hi).clamp(lo, hi));
                }
                Ok(max_age)
            }
            Err(e) => {
                // The previous keys stay: an IdP outage must not take the API down.
                tracing::warn!(issuer = %self.name, error = %e, "JWKS fetch failed; keeping the keys already loaded");
                Err(())
            }
        };
        r.in_flight.store(false, Ordering::Release);
        r.done.send_modify(|n| *n += 1);
        out
    }

    #[allow(clippy::type_complexity)]
    async fn fetch_keys(
        &self,
        r: &Remote,
    ) -> Result<(Vec<VerifyKey>, Vec<String>, [u8; 32], Option<Duration>), String> {
        let timeout = r.refresh.timeout.get();
        let url = match &r.jwks_url {
            Some(u) => u.clone(),
            None => {
                let known = r
                    .discovered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                match known {
                    Some(u) => u,
                    None => {
                        let u = discover(&r.issuer, &r.tls, timeout).await?;
                        *r.discovered.lock().unwrap_or_else(|p| p.into_inner()) = Some(u.clone());
                        u
                    }
                }
            }
        };
        let doc = crate::fetch::get(&url, &r.tls, timeout).await?;
        let (keys, skipped) = parse_jwks(&doc.body)?;
        if keys.is_empty() {
            return Err("the key set has no usable signature keys".into());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &doc.body);
        let mut d = [0u8; 32];
        d.copy_from_slice(digest.as_ref());
        Ok((keys, skipped, d, doc.max_age))
    }
}

/// OIDC Discovery 1.0 §4: fetch the provider document and take its `jwks_uri`. The
/// document's `issuer` must equal the configured one exactly (§4.3).
async fn discover(
    issuer: &str,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<String, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = crate::fetch::get(&url, tls, timeout)
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&doc.body)
        .map_err(|_| "discovery: the document is not JSON".to_string())?;
    if v.get("issuer").and_then(|i| i.as_str()) != Some(issuer) {
        return Err("discovery: the document's issuer does not match the configured issuer".into());
    }
    let jwks = v
        .get("jwks_uri")
        .and_then(|u| u.as_str())
        .ok_or("discovery: no jwks_uri")?;
    rampart_config::fetchable_url(jwks).map_err(|e| format!("discovery: jwks_uri {e}"))?;
    Ok(jwks.to_string())
}

/// Refreshes on the server's schedule (clamped) until the key source is dropped (its
/// config was replaced by a reload).
fn spawn_refresher(source: Weak<KeySource>, first: Duration) {
    crate::background::handle().spawn(async move {
        let mut next = Some(first);
        while let Some(wait) = next {
            tokio::time::sleep(wait).await;
            let Some(s) = source.upgrade() else { break };
            let Some(r) = s.remote.as_ref() else { break };
            let (lo, hi) = (r.refresh.min_interval.get(), r.refresh.max_interval.get());
            if r.in_flight
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                next = Some(lo);
                continue;
            }
            r.last_attempt_ms
                .store(r.epoch.elapsed().as_millis() as u64 + 1, Ordering::Release);
            next = Some(match s.fetch_once().await {
                Ok(max_age) => max_age.unwrap_or(hi).clamp(lo, hi),
                Err(()) => lo,
            });
        }
    });
}
