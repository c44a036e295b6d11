//! The first leg of the journey: a client connection from accept to a parsed request
//! head. Connection caps at accept, the connect phase, TLS (SNI, mTLS), then HTTP/1 behind
//! the strict framing guard or HTTP/2.

pub mod conn_limit;
pub(crate) mod connection;
pub mod h1_guard;
pub mod h1_server;
mod ja4;
pub mod tls;
