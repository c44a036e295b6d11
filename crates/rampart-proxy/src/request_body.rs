//! The client's request body on its way upstream, streamed: it enforces the size limit
//! and the total body deadline as it streams, runs the route's body inspectors (JSON
//! limits) on every frame, and records the first failure on the exchange so the handler
//! answers 413/408/400 rather than a gateway error.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use rampart_core::{BodyInspector, Problem};
use tokio::time::{Instant, Sleep};

use crate::exchange::Exchange;

/// Why the client's request body could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("request body larger than the limit")]
    TooLarge,
    #[error("request body did not arrive before the deadline")]
    Timeout,
    #[error("client body error: {0}")]
    Client(BoxError),
    /// A body inspector refused the body.
    #[error("request body refused: {}", .0.code)]
    Refused(Problem),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's request body as the server read it: HTTP/1 from our own server
/// ([`crate::h1_server`]), HTTP/2 from hyper's.
pub enum ClientBody {
    Empty,
    H1(crate::h1_server::RequestBody),
    H2(Incoming),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            ClientBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::H1(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::H1(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
        }
    }
}

impl RequestBodyError {
    pub fn problem(&self) -> Problem {
        match self {
            RequestBodyError::TooLarge => Problem::BODY_TOO_LARGE,
            RequestBodyError::Timeout => Problem::BODY_TIMEOUT,
            RequestBodyError::Client(_) => Problem::CLIENT_BODY_ERROR,
            RequestBodyError::Refused(p) => *p,
        }
    }
}

/// The client's body on its way upstream.
pub struct RequestBody {
    inner: Option<ClientBody>,
    /// A body read whole before forwarding (a filter needed it), sent as one frame.
    buffered: Option<Bytes>,
    limit: u64,
    received: u64,
    deadline: Option<Pin<Box<Sleep>>>,
    body_timeout: std::time::Duration,
    /// The length the client declared (`Content-Length`), if any: the frame that reaches
    /// it is the last, and the inspectors' end check runs before it is forwarded.
    declared: Option<u64>,
    /// The route's body inspectors; emptied once they have seen the end.
    inspectors: Vec<Box<dyn BodyInspector>>,
    /// Also where the first body error is recorded (`body_failure`).
    exchange: Arc<Exchange>,
}

impl RequestBody {
    pub fn new(
        inner: ClientBody,
        limit: u64,
        body_timeout: std::time::Duration,
        exchange: Arc<Exchange>,
    ) -> Self {
        let declared = inner.size_hint().exact();
        let inner = if inner.is_end_stream() {
            None
        } else {
            Some(inner)
        };
        Self {
            inner,
            buffered: None,
            limit,
            received: 0,
            deadline: None,
            body_timeout,
            declared,
            inspectors: Vec::new(),
            exchange,
        }
    }

    /// Runs `inspectors` on every frame of this body. A body-less request has nothing to
    /// inspect; the inspectors are then dropped unused.
    pub fn inspect(&mut self, inspectors: Vec<Box<dyn BodyInspector>>) {
        if self.inner.is_some() {
            self.inspectors = inspectors;
        }
    }

    /// A body-less request body, for replaying a request that had none.
    pub fn empty(exchange: Arc<Exchange>) -> Self {
        Self {
            inner: None,
            buffered: None,
            limit: 0,
            received: 0,
            deadline: None,
            body_timeout: std::time::Duration::ZERO,
            declared: None,
            inspectors: Vec::new(),
            exchange,
        }
    }

    /// A body that was read whole already.
    pub fn buffered(bytes: Bytes, exchange: Arc<Exchange>) -> Self {
        let mut b = Self::empty(exchange);
        if !bytes.is_empty() {
            b.buffered = Some(bytes);
        }
        b
    }

    /// True when there is no body at all (so the request can be replayed on retry).
    pub fn is_empty(&self) -> bool {
        self.inner.is_none() && self.buffered.is_none()
    }

    fn fail(
        &mut self,
        e: RequestBodyError,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let _ = self.exchange.body_failure.set(e.problem());
        self.inner = None;
        self.inspectors.clear();
        Poll::Ready(Some(Err(e)))
    }

    /// Shows a data frame to the inspectors; at the body's end (`last`), also the end,
    /// so a body refused for its ending is failed before its last byte goes upstream.
    fn inspect_frame(&mut self, data: &[u8], last: bool) -> Result<(), Problem> {
        for i in &mut self.inspectors {
            i.on_data(data)?;
            if last {
                i.on_end()?;
            }
        }
        if last {
            self.inspectors.clear();
        }
        Ok(())
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(b) = this.buffered.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // The deadline starts with the first poll: the whole body must arrive within
        // `body_timeout`, however it is trickled.
        let timeout = this.body_timeout;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.exchange
                        .bytes_in
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    if this.received > this.limit {
                        return this.fail(RequestBodyError::TooLarge);
                    }
                    if !this.inspectors.is_empty() {
                        let last = this.declared == Some(this.received)
                            || this.inner.as_ref().is_some_and(Body::is_end_stream);
                        if let Err(p) = this.inspect_frame(data, last) {
                            return this.fail(RequestBodyError::Refused(p));
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(RequestBodyError::Client(e)),
            Poll::Ready(None) => {
                // A body whose end was not known at its last frame (chunked): nothing
                // has told the upstream the body is complete yet.
                if let Err(p) = this.inspect_frame(&[], true) {
                    return this.fail(RequestBodyError::Refused(p));
                }
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if deadline.as_mut().poll(cx).is_ready() {
                    return this.fail(RequestBodyError::Timeout);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if let Some(b) = &self.buffered {
            return SizeHint::with_exact(b.len() as u64);
        }
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
