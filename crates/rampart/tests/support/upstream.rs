//! Real upstream servers on loopback for the gateway to proxy to.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

/// What the upstream answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Wait this long before sending the response head.
    pub delay: Duration,
    /// Send the body this many times, as chunks this far apart.
    pub chunks: Option<(usize, Duration)>,
    /// With `chunks`: send the body once, cut into that many pieces.
    pub split: bool,
}

impl Answer {
    pub fn ok(body: impl Into<Bytes>) -> Answer {
        Answer {
            status: 200,
            headers: vec![],
            body: body.into(),
            delay: Duration::ZERO,
            chunks: None,
            split: false,
        }
    }
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            ..Answer::ok("")
        }
    }
    pub fn delayed(mut self, d: Duration) -> Answer {
        self.delay = d;
        self
    }
    pub fn chunked(mut self, n: usize, every: Duration) -> Answer {
        self.chunks = Some((n, every));
        self
    }
    /// The body once, cut into `n` pieces sent `every` apart.
    pub fn split(mut self, n: usize, every: Duration) -> Answer {
        self.chunks = Some((n, every));
        self.split = true;
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Answer {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    H2c,
}

/// A running upstream. Stops when dropped.
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<AtomicUsize>,
    conns: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestUpstream {
    /// Answers every request with JSON describing it (and identifying headers the gateway
    /// must strip).
    pub fn echo() -> TestUpstream {
        Self::start(Proto::Http1, None, echo_handler())
    }

    pub fn h2c_echo() -> TestUpstream {
        Self::start(Proto::H2c, None, echo_handler())
    }

    pub fn with(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> TestUpstream {
        Self::start(Proto::Http1, None, Arc::new(handler))
    }

    /// An https upstream with the given server config.
    pub fn tls_echo(config: Arc<rustls::ServerConfig>) -> TestUpstream {
        Self::start(Proto::Http1, Some(config), echo_handler())
    }

    pub fn start(
        proto: Proto,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Handler,
    ) -> TestUpstream {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let conns2 = conns.clone();
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (seen2, hits2) = (seen.clone(), hits.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stop_rx => return,
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    };
                    conns2.fetch_add(1, Ordering::SeqCst);
                    let (handler, seen, hits, tls) =
                        (handler.clone(), seen2.clone(), hits2.clone(), tls.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            serve(req, handler.clone(), seen.clone(), hits.clone(), addr)
                        });
                        match tls {
                            Some(cfg) => {
                                let Ok(stream) =
                                    tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                                else {
                                    return;
                                };
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .with_upgrades()
                                    .await;
                            }
                            None if proto == Proto::H2c => {
                                let _ =
                                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                        .serve_connection(TokioIo::new(tcp), svc)
                                        .await;
                            }
                            None => {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(tcp), svc)
                                    .with_upgrades()
                                    .await;
                            }
                        }
                    });
                }
            });
        });
        TestUpstream {
            addr,
            seen,
            hits,
            conns,
            stop: Some(stop),
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    /// Every request seen so far, in order.
    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream saw a request")
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn echo_handler() -> Handler {
    Arc::new(|seen: &Seen| {
        let headers: serde_json::Map<String, serde_json::Value> = seen
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    serde_json::Value::String(v.to_str().unwrap_or("?").to_string()),
                )
            })
            .collect();
        let doc = serde_json::json!({
            "method": seen.method, "uri": seen.uri, "headers": headers, "version": format!("{:?}", seen.version),
            "body": String::from_utf8_lossy(&seen.body),
        });
        Answer::ok(doc.to_string())
            .header("content-type", "application/json")
            .header("server", "upstream-secret/1.2.3")
            .header("x-powered-by", "PHP/5.1")
    })
}

async fn serve(
    mut req: Request<Incoming>,
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<AtomicUsize>,
    me: SocketAddr,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    if req.headers().get("upgrade").is_some() {
        // WebSocket-style upgrade: answer 101, then echo bytes back upper-cased.
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let upper: Vec<u8> = buf[..n].to_ascii_uppercase();
                    if io.write_all(&upper).await.is_err() {
                        break;
                    }
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        return Ok(resp);
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let s = Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
        version: parts.version,
    };
    seen.lock().unwrap().push(s.clone());
    let answer = handler(&s);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut b = Response::builder()
        .status(answer.status)
        .header("x-served-by", me.to_string());
    for (k, v) in &answer.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = match answer.chunks {
        None => Full::new(answer.body.clone()).boxed(),
        Some((n, every)) => {
            let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            let data = answer.body.clone();
            let split = answer.split;
            tokio::spawn(async move {
                let size = data.len().div_ceil(n.max(1)).max(1);
                for i in 0..n {
                    tokio::time::sleep(every).await;
                    let piece = match split {
                        true => {
                            data.slice((i * size).min(data.len())..((i + 1) * size).min(data.len()))
                        }
                        false => data.clone(),
                    };
                    if tx.send_data(piece).await.is_err() {
                        return;
                    }
                }
            });
            rx.boxed()
        }
    };
    Ok(b.body(body).unwrap())
}
