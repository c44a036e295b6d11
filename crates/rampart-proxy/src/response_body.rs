//! The response body on its way to the client, streamed: it counts bytes, runs the
//! route's body rewriters, returns the upstream connection to its pool when the exchange
//! finished cleanly, and keeps the exchange (and so its log phase) alive until the last
//! byte is sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use rampart_core::BodyRewriter;
use tokio::time::Sleep;

use crate::exchange::Exchange;
use crate::request_body::RequestBody;

/// Decrements a target's in-flight count (circuit breaker, least-requests) when the
/// upstream exchange is done.
pub struct TargetLoad {
    upstream: Arc<crate::upstream::Upstream>,
    index: usize,
}

impl TargetLoad {
    pub fn new(upstream: Arc<crate::upstream::Upstream>, index: usize) -> Self {
        upstream.targets[index]
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        Self { upstream, index }
    }
}

impl Drop for TargetLoad {
    fn drop(&mut self) {
        self.upstream.targets[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hyper HTTP/1.1 upstream connection to return to its pool once the response body
/// ends. (Our own client's body returns its connection itself.)
pub struct PoolReturn {
    pub sender: http1::SendRequest<RequestBody>,
    pub pool_key: Arc<str>,
    pub max_idle: usize,
    pub idle_timeout: std::time::Duration,
}

/// The upstream's response body: from our HTTP/1.1 client, or from hyper's (requests
/// with a body, upgrades, HTTP/2).
pub enum UpstreamBody {
    Own(crate::upstream::h1::H1Body),
    Hyper(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Own(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            UpstreamBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Own(b) => b.is_end_stream(),
            UpstreamBody::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Own(b) => b.size_hint(),
            UpstreamBody::Hyper(b) => b.size_hint(),
        }
    }
}

/// What the gateway sends back to the client.
pub struct ResponseBody {
    kind: Kind,
    exchange: Option<Arc<Exchange>>,
}

// Not boxed: the upstream variant is the common one, and a box would cost an allocation
// per proxied response.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Full(Option<Bytes>),
    Upstream {
        inner: UpstreamBody,
        pool: Option<PoolReturn>,
        deadline: Pin<Box<Sleep>>,
        _load: TargetLoad,
        /// Response-body rewriters of the route's filters (usually none).
        rewriters: Vec<Box<dyn BodyRewriter>>,
        /// Set once the rewriters have been told the body ended.
        flushed: bool,
    },
}

impl ResponseBody {
    pub fn full(bytes: Bytes, exchange: Option<Arc<Exchange>>) -> Self {
        if let Some(x) = &exchange {
            x.bytes_out.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        Self {
            kind: Kind::Full(Some(bytes)),
            exchange,
        }
    }

    /// A body already counted in `bytes_out` (an answer read whole, then sent).
    pub(crate) fn counted(bytes: Bytes, exchange: Option<Arc<Exchange>>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes)),
            exchange,
        }
    }

    /// The exchange this body belongs to.
    pub(crate) fn exchange(&self) -> Option<&Arc<Exchange>> {
        self.exchange.as_ref()
    }

    pub fn upstream(
        inner: UpstreamBody,
        pool: Option<PoolReturn>,
        deadline: Pin<Box<Sleep>>,
        load: TargetLoad,
        exchange: Arc<Exchange>,
        rewriters: Vec<Box<dyn BodyRewriter>>,
    ) -> Self {
        let mut body = Self {
            kind: Kind::Upstream {
                inner,
                pool,
                deadline,
                _load: load,
                rewriters,
                flushed: false,
            },
            exchange: Some(exchange),
        };
        body.return_if_done();
        body
    }

    /// Drops the upstream side, records why the body was cut short (the log's code) and
    /// returns the error that makes hyper abort the response.
    fn abort(&mut self, code: &'static str) -> BoxError {
        self.kind = Kind::Full(None);
        if let Some(x) = &self.exchange {
            let _ = x.code.set(code);
        }
        format!("response aborted: {code}").into()
    }

    fn return_if_done(&mut self) {
        if let Kind::Upstream { inner, pool, .. } = &mut self.kind {
            if inner.is_end_stream() {
                if let Some(p) = pool.take() {
                    crate::upstream::pool::checkin(
                        &p.pool_key,
                        p.sender,
                        p.max_idle,
                        p.idle_timeout,
                    );
                }
            }
        }
    }
}

/// Errors that abort a response mid-body (the client sees the connection end).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Kind::Full(b) = &mut this.kind {
            return Poll::Ready(b.take().map(|b| Ok(Frame::data(b))));
        }
        loop {
            let Kind::Upstream {
                inner,
                deadline,
                rewriters,
                flushed,
                ..
            } = &mut this.kind
            else {
                return Poll::Ready(None);
            };
            let frame = match Pin::new(&mut *inner).poll_frame(cx) {
                Poll::Pending => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        // The whole-request timeout fired mid-body: abort, so the client
                        // sees an incomplete response (never a silently truncated one), and
                        // drop the upstream connection.
                        return Poll::Ready(Some(Err(this.abort("upstream.timeout"))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => Some(frame),
                Poll::Ready(None) => None,
            };
            let frame = if rewriters.is_empty() {
                frame
            } else {
                // Rewriters see each data frame, and the end of the body once.
                let (data, end) = match frame {
                    Some(f) => match f.into_data() {
                        Ok(d) => (d, inner.is_end_stream()),
                        Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                    },
                    None if *flushed => return Poll::Ready(None),
                    None => (Bytes::new(), true),
                };
                *flushed |= end;
                let mut out = Ok(data);
                for rw in rewriters.iter_mut() {
                    out = out.and_then(|d| rw.on_data(d, end));
                }
                match out {
                    Err(code) => return Poll::Ready(Some(Err(this.abort(code)))),
                    Ok(d) if d.is_empty() && !end => continue,
                    Ok(d) if d.is_empty() => None,
                    Ok(d) => Some(Frame::data(d)),
                }
            };
            if let (Some(d), Some(x)) = (frame.as_ref().and_then(|f| f.data_ref()), &this.exchange)
            {
                x.bytes_out.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
            this.return_if_done();
            return Poll::Ready(frame.map(Ok));
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream {
                inner,
                rewriters,
                flushed,
                ..
            } => inner.is_end_stream() && (rewriters.is_empty() || *flushed),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream {
                inner, rewriters, ..
            } if rewriters.is_empty() => inner.size_hint(),
            // A rewritten body's length is not known in advance.
            Kind::Upstream { .. } => SizeHint::default(),
        }
    }
}
