//! Types shared by every Rampart crate: the phase trait every filter implements, the
//! exchange context that lives from accept to log, the decisions and problems the gateway
//! answers with, the one responder that renders them, and the state that outlives a
//! reload.
#![forbid(unsafe_code)]

pub mod addr;
pub mod context;
mod decision;
mod feature;
mod filter;
pub mod gcra;
pub mod metrics_text;
pub mod params;
mod peer;
pub mod pii;
mod problem;
mod reason;
pub mod record;
pub mod respond;
pub mod state;
pub mod trace;

pub use addr::{canonical_ip, client_bucket};
pub use context::{
    BodyCounts, ClientHello, ConnectInfo, ExchangeCtx, Extensions, ReplaceBody, RequestCtx,
    ResponseCtx,
};
pub use decision::{Decision, Identity, Mode, Outcome};
pub use feature::{FeaturePlan, LiveHook};
pub use filter::{
    BodyInspector, BodyRewriter, CallerRow, Denial, FieldError, Filter, Flow, MetricsSource, Phase,
    Reply, Wait,
};
pub use metrics_text::MetricsText;
pub use params::PathParams;
pub use peer::TlsPeer;
pub use problem::{json_escape_into, Problem, PROBLEM_JSON};
pub use reason::Reason;
pub use record::ExchangeRecord;
pub use state::StateStore;
