//! Rampart's data plane: listeners, TLS, strict HTTP/1 framing, routing, upstream pools
//! and the request handler that ties them together.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod body;
pub mod client_headers;
pub mod conn_limit;
mod connection;
mod forward;
pub mod h1_guard;
pub mod headers;
pub mod host;
pub mod metrics;
pub mod path;
pub mod plan;
pub mod proxy;
pub mod request_id;
pub mod router;
pub mod server;
pub mod tls;
pub mod upstream;

pub use plan::Plan;
pub use server::Gateway;
