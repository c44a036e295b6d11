//! The HTTP/1 guard over a byte stream of pipelined requests, upgrade heads included,
//! answered like the gateway answers them (a `101` or a refusal, chosen by the input).
//! It must never panic, must only ever release what the client sent, in order (less the empty lines allowed
//! before a request line) (or, at
//! the end, one synthetic rejection), must release nothing past an upgrade head until
//! its response is written, and nothing at all after a refused upgrade.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rampart_proxy::h1_guard::{ConnShared, H1Guard, HeadLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 4096,
    max_headers: 32,
    max_uri_bytes: 1024,
    header_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(60),
};

fuzz_target!(|data: &[u8]| {
    let Some((&answers, stream)) = data.split_first() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(stream).await.unwrap();
        client.shutdown().await.unwrap();
        let shared = ConnShared::new();
        let mut guard = H1Guard::new(server, LIMITS, shared.clone());
        let mut released = Vec::new();
        let mut buf = vec![0u8; 8192];
        let mut upgrades = 0u32;
        let mut refused = false;
        loop {
            match tokio::time::timeout(Duration::from_secs(120), guard.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    assert!(!refused, "bytes released after a refused upgrade");
                    released.extend_from_slice(&buf[..n]);
                }
                Err(_) => {
                    // Nothing more to read: either the guard holds an upgrade head for its
                    // answer, or it has stopped (a rejection).
                    if !shared.holding.load(std::sync::atomic::Ordering::Acquire) {
                        break;
                    }
                    let switch = answers >> (upgrades % 8) & 1 == 1;
                    upgrades += 1;
                    let status: &[u8] = if switch {
                        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n"
                    } else {
                        b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
                    };
                    guard.write_all(status).await.unwrap();
                    assert!(!shared.holding.load(std::sync::atomic::Ordering::Acquire));
                    refused = !switch;
                }
            }
        }
        // What was released is what the client sent, up to a synthetic rejection.
        let marker = b"GET /.rampart-rejected-";
        let cut = released
            .windows(marker.len())
            .position(|w| w == marker)
            .unwrap_or(released.len());
        // The guard may drop the empty lines allowed before a request line (RFC 9112
        // §2.2) and nothing else.
        let mut j = 0;
        for &b in &released[..cut] {
            while j < stream.len() && stream[j] != b && matches!(stream[j], b'\r' | b'\n') {
                j += 1;
            }
            assert!(j < stream.len() && stream[j] == b, "released bytes the client never sent");
            j += 1;
        }
    });
});
