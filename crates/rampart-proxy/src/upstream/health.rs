//! Active health checks: one task per target, running on the background runtime. A task
//! holds only a `Weak` reference to its upstream, so it ends by itself when a reload
//! replaces the plan that owned it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{header, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use super::pool::connect_io;
use super::Upstream;

/// Starts a checker task for every target of `upstream` that has a health check.
pub fn spawn_checks(rt: &tokio::runtime::Handle, upstream: &Arc<Upstream>) {
    let Some(hc) = &upstream.health_check else {
        return;
    };
    for index in 0..upstream.targets.len() {
        let weak = Arc::downgrade(upstream);
        let interval = hc.interval.get();
        rt.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut ok_streak, mut fail_streak) = (0u32, 0u32);
            loop {
                ticker.tick().await;
                let Some(up) = Weak::upgrade(&weak) else { return };
                let healthy = probe(&up, index).await;
                let Some(hc) = &up.health_check else { return };
                let target = &up.targets[index];
                if healthy {
                    ok_streak += 1;
                    fail_streak = 0;
                } else {
                    fail_streak += 1;
                    ok_streak = 0;
                }
                let was = target.active_healthy.load(Ordering::Relaxed);
                if was && fail_streak >= hc.unhealthy_threshold {
                    target.active_healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(upstream = %up.name, target_url = %target.url, "target marked unhealthy by health check");
                } else if !was && ok_streak >= hc.healthy_threshold {
                    target.active_healthy.store(true, Ordering::Relaxed);
                    tracing::info!(upstream = %up.name, target_url = %target.url, "target healthy again");
                }
            }
        });
    }
}

/// One check: a fresh connection, `GET path`, healthy on 2xx/3xx within the timeout.
async fn probe(up: &Upstream, index: usize) -> bool {
    let Some(hc) = &up.health_check else {
        return true;
    };
    let target = &up.targets[index];
    let check = async {
        let io = connect_io(up, target).await.ok()?;
        let io = TokioIo::new(io);
        let resp = if up.protocol == rampart_config::UpstreamProtocol::Http2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .ok()?;
            tokio::spawn(conn);
            let uri = format!(
                "{}://{}{}",
                if target.https { "https" } else { "http" },
                target.authority.to_str().ok()?,
                hc.path
            );
            let req = Request::get(uri).body(Empty::<Bytes>::new()).ok()?;
            sender.send_request(req).await.ok()?
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
            tokio::spawn(conn);
            let req = Request::get(hc.path.as_str())
                .header(header::HOST, target.authority.clone())
                .header(header::USER_AGENT, "rampart-health-check")
                .body(Empty::<Bytes>::new())
                .ok()?;
            sender.send_request(req).await.ok()?
        };
        Some(resp.status().is_success() || resp.status().is_redirection())
    };
    matches!(
        tokio::time::timeout(hc.timeout.get(), check).await,
        Ok(Some(true))
    )
}
