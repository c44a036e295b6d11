//! Types shared by every Rampart crate: the problems the gateway answers with, and the
//! facts about a client connection that later phases (identity, policy, logs) rely on.
#![forbid(unsafe_code)]

pub mod addr;
mod filter;
pub mod gcra;
mod peer;
mod problem;
mod reason;

pub use addr::{canonical_ip, client_bucket};
pub use filter::{
    Decision, Denial, Filter, Flow, Identity, MetricsSource, Mode, Outcome, RequestCtx, Wait,
};
pub use peer::TlsPeer;
pub use problem::{json_escape_into, Problem, PROBLEM_JSON};
pub use reason::Reason;
