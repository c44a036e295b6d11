//! Response header policy (DESIGN.md §1, the last step of the response side): the
//! security headers an API edge should send and the operator's add/set/remove rules,
//! compiled per route into one [`HeaderPolicy`] so a response costs a few map operations
//! and no config interpretation.
//!
//! This crate is also the worked example of adding a filter: `ARCHITECTURE.md` walks
//! through it.
#![forbid(unsafe_code)]

mod policy;

use std::path::Path;
use std::sync::Arc;

use rampart_config::{ConfigError, Spec};
use rampart_core::{FeaturePlan, Filter, Phase, ResponseCtx, StateStore};

pub use policy::HeaderPolicy;

/// The feature's entry point: one [`ResponseHeaders`] filter per route (the gateway-wide
/// rules merged with the route's), and one for answers to requests that matched no route.
pub fn compile(
    spec: &Spec,
    _base: &Path,
    _state: &StateStore,
) -> Result<FeaturePlan, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let global = HeaderPolicy::compile(
        &spec.response_headers,
        None,
        "response_headers",
        &mut errors,
    );
    let mut out = FeaturePlan::for_routes(spec.routes.len());
    // Routes without rules of their own share one filter.
    let shared: Option<Arc<dyn Filter>> = (!global.is_empty()).then(|| {
        Arc::new(ResponseHeaders {
            policy: global.clone(),
        }) as Arc<dyn Filter>
    });
    for (i, r) in spec.routes.iter().enumerate() {
        match &r.response_headers {
            Some(route) => {
                let policy = HeaderPolicy::compile(
                    &spec.response_headers,
                    Some(route),
                    &format!("routes[{i}].response_headers"),
                    &mut errors,
                );
                if !policy.is_empty() {
                    out.routes[i].push(Arc::new(ResponseHeaders { policy }));
                }
            }
            None => out.routes[i].extend(shared.clone()),
        }
    }
    out.unrouted.extend(shared);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Applies a route's [`HeaderPolicy`] to every response head, upstream or the gateway's
/// own.
#[derive(Debug)]
pub struct ResponseHeaders {
    policy: Arc<HeaderPolicy>,
}

impl Filter for ResponseHeaders {
    fn phase(&self) -> Phase {
        Phase::ResponseHeaders
    }

    fn name(&self) -> &'static str {
        "response_headers"
    }

    fn on_response(&self, cx: &mut ResponseCtx<'_>) {
        let (own, tls) = (cx.own, cx.tls);
        self.policy.apply(&mut cx.head.headers, own, tls);
    }
}
