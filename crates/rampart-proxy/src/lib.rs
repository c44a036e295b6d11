//! Rampart's data plane: listeners, TLS, strict HTTP/1 framing, routing, upstream pools
//! and the request handler that ties them together.
#![forbid(unsafe_code)]

pub mod body;
mod chain;
pub mod client_headers;
pub mod conn_limit;
mod connection;
pub mod exchange;
mod forward;
pub mod h1_guard;
pub mod headers;
pub mod host;
pub mod path;
pub mod plan;
pub mod proxy;
pub mod request_id;
mod respond;
pub mod router;
pub mod server;
pub mod tls;
pub mod upstream;

pub use plan::Plan;
/// Counters live in the observe crate; re-exported where the data plane names them.
pub use rampart_observe::metrics;
pub use server::Gateway;
