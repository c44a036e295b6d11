//! The request before the chain: its id, host, normalised path, the route it takes, and
//! its headers cleaned of what a client may not send; then the forwarding headers the
//! upstream gets.

pub mod client_headers;
pub mod headers;
pub mod host;
pub mod path;
pub mod request_id;
pub mod rewrite;
pub mod router;
