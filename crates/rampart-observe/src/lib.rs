//! Evidence (DESIGN.md §1, the log phase): the access log (hand-formatted lines, batched
//! to a writer thread), request metrics recorded with relaxed atomics and rendered through
//! the one Prometheus writer ([`rampart_core::MetricsText`]), and audit events.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod audit;
pub mod audit_trail;
pub mod config_history;
pub mod metrics;
pub mod tap;

pub use access_log::AccessLog;
pub use audit::AuditEvent;
