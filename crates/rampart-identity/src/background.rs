//! The identity background runtime: one small thread that fetches and refreshes key sets,
//! so no request's worker ever does network I/O for keys or blocks on it.

use std::sync::OnceLock;

/// The shared background runtime's handle, started on first use.
pub fn handle() -> &'static tokio::runtime::Handle {
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("rampart-identity".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => {
                        let _ = tx.send(Some(rt.handle().clone()));
                        rt.block_on(std::future::pending::<()>());
                    }
                    Err(_) => {
                        let _ = tx.send(None);
                    }
                }
            });
        match spawned.ok().and_then(|_| rx.recv().ok().flatten()) {
            Some(h) => h,
            // Without a thread of its own, key fetches share the caller's runtime: a
            // degraded mode that keeps working rather than failing closed for everyone.
            None => tokio::runtime::Handle::current(),
        }
    })
}
