//! A small HTTP/1.1 server on a free loopback port, on a thread of its own: the demo's
//! echo API and `rampart test`'s upstream.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;

/// Serves `handle` on `127.0.0.1:<free port>` until the process ends; returns the address.
pub fn serve_loopback<F, Fut>(thread: &str, handle: F) -> std::io::Result<SocketAddr>
where
    F: Fn(http::Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<http::Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((tcp, _)) = listener.accept().await {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(
                                hyper_util::rt::TokioIo::new(tcp),
                                hyper::service::service_fn(handle),
                            )
                            .await;
                    });
                }
            });
        })?;
    Ok(addr)
}
