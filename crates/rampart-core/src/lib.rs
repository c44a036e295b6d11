//! Types shared by every Rampart crate: the problems the gateway answers with, and the
//! facts about a client connection that later phases (identity, policy, logs) rely on.
#![forbid(unsafe_code)]

mod peer;
mod problem;

pub use peer::TlsPeer;
pub use problem::{json_escape_into, Problem, PROBLEM_JSON};
