//! What a feature crate hands the gateway when it compiles: its filters, per route, tagged
//! with their phase (the gateway sorts each route's chain by phase), plus gateway-wide
//! filters and its `/metrics` series. Routes are keyed by their index in the config's
//! `routes` list, never by name.

use std::sync::Arc;

use crate::{Filter, MetricsSource};

/// One feature's compiled contribution to a plan.
#[derive(Default)]
pub struct FeaturePlan {
    /// `routes[i]` are the filters of the config's route `i` (empty: none).
    pub routes: Vec<Vec<Arc<dyn Filter>>>,
    /// Filters of exchanges that matched no route (their response and log phases run).
    pub unrouted: Vec<Arc<dyn Filter>>,
    /// Gateway-wide filters whose [`Filter::on_connect`] runs on every connection.
    pub connect: Vec<Arc<dyn Filter>>,
    /// Log-phase filters that watch the other filters' decisions (security events):
    /// added to every chain, routed or not, that holds another filter. A chain without
    /// filters decides nothing, so they cost a route without policies nothing.
    pub observers: Vec<Arc<dyn Filter>>,
    pub metrics: Vec<Arc<dyn MetricsSource>>,
    /// Run once the plan goes live (at start, or when a reload or rollback is swapped
    /// in), never for a plan that is refused: a feature switches shared state (where
    /// the audit trail's copies go) here, so a config that fails to load changes nothing.
    pub on_live: Vec<LiveHook>,
}

/// A step run when a plan goes live.
#[derive(Clone)]
pub struct LiveHook(pub Arc<dyn Fn() + Send + Sync>);

impl LiveHook {
    pub fn run(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for LiveHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveHook")
    }
}

impl FeaturePlan {
    /// An empty plan for a config with `routes` routes.
    pub fn for_routes(routes: usize) -> FeaturePlan {
        FeaturePlan {
            routes: (0..routes).map(|_| Vec::new()).collect(),
            ..FeaturePlan::default()
        }
    }
}
