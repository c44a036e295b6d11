//! Rampart's data plane, laid out as a request's journey:
//!
//! - [`accept`]: connection caps, the connect phase, TLS, strict HTTP/1 framing, HTTP/2;
//! - [`request`]: request id, host, path normalisation, routing, header cleaning;
//! - `proxy` (the handler) and `chain` (runs the route's phases);
//! - `forward` and [`upstream`]: target choice, pools, retries, health;
//! - `respond`: every response, own or upstream, through the response phase;
//! - [`exchange`]: the exchange in flight and its log phase.
#![forbid(unsafe_code)]

pub mod accept;
mod chain;
pub mod exchange;
mod forward;
mod h1_framing;
pub mod plan;
pub mod proxy;
pub mod request;
pub mod request_body;
mod respond;
pub mod response_body;
pub mod server;
pub mod status;
pub mod trace;
pub mod upstream;

// The journey's modules by their own names, as the rest of the workspace knows them.
pub use accept::{conn_limit, h1_guard, h1_server, tls};
pub use plan::{ConfigOrigin, Plan};
/// Counters live in the observe crate; re-exported where the data plane names them.
pub use rampart_observe::metrics;
pub use request::{client_headers, headers, host, path, request_id, router};
pub use server::Gateway;
