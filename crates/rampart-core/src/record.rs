//! What the log phase knows about a finished exchange. One value feeds every consumer of
//! the log phase: the access log, the metrics, and each filter's [`crate::Filter::on_log`]
//! (the audit trail and anomaly detection later), so all of them tell the same story.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Uri, Version};

use crate::ExchangeCtx;

/// A finished exchange, borrowed from the proxy's state for the length of the log phase.
#[derive(Debug)]
pub struct ExchangeRecord<'a> {
    /// When the request head was read.
    pub time: SystemTime,
    pub duration: Duration,
    pub request_id: &'a HeaderValue,
    pub client_ip: IpAddr,
    pub listener: &'a str,
    pub method: &'a Method,
    pub version: Version,
    /// `None` for synthetic rejections, whose target is not the client's.
    pub uri: Option<&'a Uri>,
    pub host: Option<&'a HeaderValue>,
    /// The request headers the access log was configured to keep (`access_log.headers`).
    pub headers: &'a [(http::HeaderName, HeaderValue)],
    pub route: Option<&'a str>,
    pub upstream: Option<&'a str>,
    /// The target that served the response.
    pub target: Option<&'a str>,
    /// The status sent (0: none was).
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The reason code when the gateway answered itself.
    pub code: Option<&'static str>,
    /// Identity and decisions; `None` when the exchange ended before it had a context
    /// with any (a malformed request).
    pub exchange: Option<&'a ExchangeCtx>,
}
