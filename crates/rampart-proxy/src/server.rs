//! The running gateway: listeners bound once, one worker thread per core, each with its
//! own current-thread runtime, its own `SO_REUSEPORT` accept socket per listener and its
//! own upstream pools (DESIGN.md §8), plus one background thread for health checks.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::accept::connection::accept_loop;
use crate::conn_limit::ConnLimiter;
use crate::plan::Plan;
use crate::proxy::Shared;
use crate::upstream::health;
use rampart_observe::AccessLog;

/// A running gateway. Dropping it (or calling [`Gateway::shutdown`]) stops it.
pub struct Gateway {
    shared: Arc<Shared>,
    /// (name, bound address, configured address) of each listener.
    addrs: std::sync::Mutex<Vec<(Arc<str>, SocketAddr, SocketAddr)>>,
    /// One command channel per worker, to add and remove listeners on reload.
    worker_cmds: Vec<tokio::sync::mpsc::UnboundedSender<WorkerCmd>>,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    limiter: Arc<ConnLimiter>,
    /// The background runtime (health checks of each plan run there).
    background: tokio::runtime::Handle,
    /// Outcome of the most recent reload, for operators.
    last_reload: std::sync::Mutex<Option<ReloadStatus>>,
    /// Serialises reloads: two at once would race to swap plans.
    reloading: std::sync::Mutex<()>,
    reloads_ok: std::sync::atomic::AtomicU64,
    reloads_failed: std::sync::atomic::AtomicU64,
}

/// The outcome of a reload attempt.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    pub ok: bool,
    pub at: std::time::SystemTime,
    /// Every problem found, as `yaml.path: reason`; empty when `ok`.
    pub errors: Vec<String>,
}

/// A change to a worker's set of accept loops.
enum WorkerCmd {
    Add(Arc<str>, std::net::TcpListener),
    Remove(Arc<str>),
}

/// Binds one `SO_REUSEPORT` socket per worker for `bind` (the first resolves port 0).
fn bind_listener(
    name: &str,
    bind: SocketAddr,
    workers: usize,
) -> io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let first = bind_reuseport(bind).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind listener {name:?} to {bind}: {e}"),
        )
    })?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind_reuseport(addr)?);
    }
    Ok((addr, sockets))
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

impl Gateway {
    /// Binds every listener and starts serving `plan`.
    pub fn start(plan: Plan) -> io::Result<Gateway> {
        let access_log = if plan.access_log.enabled {
            Some(AccessLog::start(
                &plan.access_log.output,
                &plan.access_log.query_values,
                &plan.access_log.headers,
            )?)
        } else {
            None
        };
        let workers = plan.workers.max(1);
        // Bind the first socket of each listener to learn its port (port 0 in tests), then
        // one more per extra worker on the same address.
        let mut per_worker: Vec<Vec<(Arc<str>, std::net::TcpListener)>> =
            (0..workers).map(|_| Vec::new()).collect();
        let mut addrs = Vec::new();
        for l in &plan.listeners {
            let (addr, sockets) = bind_listener(&l.name, l.bind, workers)?;
            addrs.push((l.name.clone(), addr, l.bind));
            for (worker, socket) in per_worker.iter_mut().zip(sockets) {
                worker.push((l.name.clone(), socket));
            }
        }
        let mut worker_cmds = Vec::new();
        let limiter = ConnLimiter::new(
            plan.limits.max_connections,
            plan.limits.max_connections_per_ip,
        );
        limiter
            .rate
            .store(plan.limits.new_connections_per_ip.map(Arc::new));
        limiter.v6_prefix.store(
            plan.limits.ipv6_prefix,
            std::sync::atomic::Ordering::Relaxed,
        );
        for hook in &plan.on_live {
            hook.run();
        }
        let shared = Arc::new(Shared {
            plan: ArcSwap::from_pointee(plan),
            access_log,
            drain: watch::channel(false).0,
        });
        let (stop, stop_rx) = watch::channel(false);

        let mut threads = Vec::new();
        // Background runtime: health checks (and, later, reload and Redis work).
        let background;
        {
            let shared = shared.clone();
            let mut stop_rx = stop_rx.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            threads.push(
                std::thread::Builder::new()
                    .name("rampart-bg".into())
                    .spawn(move || {
                        let rt = match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(rt) => rt,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        };
                        for u in &shared.plan.load().upstreams {
                            health::spawn_checks(rt.handle(), u);
                        }
                        let _ = ready_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async move {
                            let _ = stop_rx.wait_for(|s| *s).await;
                        });
                    })?,
            );
            background = ready_rx
                .recv()
                .map_err(|_| io::Error::other("background thread died"))??;
        }
        for (i, sockets) in per_worker.into_iter().enumerate() {
            let shared = shared.clone();
            let stop_rx = stop_rx.clone();
            let limiter = limiter.clone();
            let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
            worker_cmds.push(cmd_tx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rampart-worker-{i}"))
                    .spawn(move || {
                        rampart_observe::access_log::set_worker(i);
                        let rt = match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(rt) => rt,
                            Err(e) => {
                                tracing::error!(error = %e, "cannot start worker runtime");
                                return;
                            }
                        };
                        rt.block_on(worker(shared, sockets, limiter, stop_rx, cmd_rx));
                    })?,
            );
        }
        Ok(Gateway {
            shared,
            addrs: std::sync::Mutex::new(addrs),
            worker_cmds,
            stop,
            threads,
            limiter,
            background,
            last_reload: std::sync::Mutex::new(None),
            reloading: std::sync::Mutex::new(()),
            reloads_ok: std::sync::atomic::AtomicU64::new(0),
            reloads_failed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The bound address of a listener (with the real port when the config said 0).
    pub fn addr(&self, listener: &str) -> Option<SocketAddr> {
        let addrs = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
        addrs
            .iter()
            .find(|(n, _, _)| &**n == listener)
            .map(|(_, a, _)| *a)
    }

    /// The gateway's reload-surviving state: compile a new plan against it (see
    /// `rampart::compile_file_with`) so a reload keeps limits, counters and caches.
    pub fn state(&self) -> Arc<rampart_core::StateStore> {
        self.shared.plan.load().state.clone()
    }

    /// The plan currently serving requests.
    pub fn plan(&self) -> Arc<Plan> {
        self.shared.plan.load_full()
    }

    /// Replaces the running plan with `plan` (already compiled, so already valid).
    ///
    /// Requests in flight finish on the plan they started with; open connections (HTTP/1
    /// keep-alive, HTTP/2, WebSocket) stay open and their next requests use the new plan;
    /// new TLS handshakes use the new certificates. Listeners are bound at start: a plan
    /// whose listeners differ (added, removed, renamed or re-bound) is refused with an
    /// error and the running plan stays.
    pub fn reload(&self, plan: Plan) -> Result<(), Vec<String>> {
        let _serial = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let mut result = self.check_compatible(&plan);
        // Listener changes: bind every new address before anything changes, so a port in
        // use fails the reload and leaves the running configuration alone.
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        if result.is_ok() {
            let current = self.addrs.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for (i, l) in plan.listeners.iter().enumerate() {
                if current
                    .iter()
                    .any(|(n, _, bind)| *n == l.name && *bind == l.bind)
                {
                    continue;
                }
                match bind_listener(&l.name, l.bind, self.worker_cmds.len()) {
                    Ok((addr, sockets)) => added.push((l.name.clone(), addr, l.bind, sockets)),
                    Err(e) => {
                        let problem = format!("listeners[{i}].bind: {e}");
                        tracing::error!(%problem, "reload refused; the running configuration stays");
                        result = Err(vec![problem]);
                        break;
                    }
                }
            }
            for (name, _, bind) in &current {
                if !plan
                    .listeners
                    .iter()
                    .any(|l| l.name == *name && l.bind == *bind)
                {
                    removed.push(name.clone());
                }
            }
        }
        if result.is_ok() {
            self.reloads_ok
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.limiter.max_total.store(
                plan.limits.max_connections,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.limiter.max_per_ip.store(
                plan.limits.max_connections_per_ip,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.limiter
                .rate
                .store(plan.limits.new_connections_per_ip.map(Arc::new));
            self.limiter.v6_prefix.store(
                plan.limits.ipv6_prefix,
                std::sync::atomic::Ordering::Relaxed,
            );
            let plan = Arc::new(plan);
            let plan_state = plan.state.clone();
            for u in &plan.upstreams {
                health::spawn_checks(&self.background, u);
            }
            let hooks = plan.on_live.clone();
            self.shared.plan.store(plan);
            for hook in &hooks {
                hook.run();
            }
            // What no live plan uses any more (a removed policy's table) is freed.
            plan_state.release_unused();
            let mut addrs = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
            for name in removed {
                for tx in &self.worker_cmds {
                    let _ = tx.send(WorkerCmd::Remove(name.clone()));
                }
                addrs.retain(|(n, _, _)| *n != name);
                tracing::info!(listener = %name, "listener closed");
            }
            for (name, addr, bind, sockets) in added {
                for (tx, socket) in self.worker_cmds.iter().zip(sockets) {
                    let _ = tx.send(WorkerCmd::Add(name.clone(), socket));
                }
                tracing::info!(listener = %name, %addr, "listening");
                addrs.push((name, addr, bind));
            }
            drop(addrs);
            tracing::info!("configuration reloaded");
        }
        self.record_reload(result.clone().err().unwrap_or_default());
        result
    }

    /// Records a reload that failed before a plan could be built (parse or compile
    /// errors), so the failure is visible alongside successful reloads.
    pub fn record_failed_reload(&self, errors: Vec<String>) {
        for e in &errors {
            tracing::error!(problem = %e, "reload refused; the running configuration stays");
        }
        self.record_reload(errors);
    }

    fn record_reload(&self, errors: Vec<String>) {
        if !errors.is_empty() {
            self.reloads_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let status = ReloadStatus {
            ok: errors.is_empty(),
            at: std::time::SystemTime::now(),
            errors,
        };
        *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    /// The outcome of the most recent reload, if there was one.
    pub fn last_reload(&self) -> Option<ReloadStatus> {
        self.last_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn check_compatible(&self, plan: &Plan) -> Result<(), Vec<String>> {
        let current = self.shared.plan.load();
        let mut errors = Vec::new();
        // State (limits, counters, key caches) carries over only through the gateway's
        // own store; a plan compiled against another would silently reset it.
        if !Arc::ptr_eq(&current.state, &plan.state) {
            errors
                .push("the new configuration was compiled for another gateway's state".to_string());
        }
        if current.access_log != plan.access_log {
            errors.push("access_log: changes need a restart in this version".to_string());
        }
        if current.workers != plan.workers {
            errors.push("workers: changes need a restart".to_string());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            for e in &errors {
                tracing::error!(problem = %e, "reload refused; the running configuration stays");
            }
            Err(errors)
        }
    }

    /// Starts a graceful drain: listeners stop accepting (new connections are refused),
    /// idle connections close, and connections with a request in flight close once it has
    /// been answered. Returns at once; watch [`Gateway::open_connections`] to see it end.
    pub fn begin_drain(&self) {
        if !self.shared.drain.send_replace(true) {
            tracing::info!(
                open = self.open_connections(),
                "draining: listeners closed, finishing in-flight requests"
            );
        }
    }

    /// True once [`Gateway::begin_drain`] was called (readiness probes report it).
    pub fn is_draining(&self) -> bool {
        *self.shared.drain.borrow()
    }

    /// Successful and failed reloads since start.
    pub fn reload_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.reloads_ok.load(Relaxed),
            self.reloads_failed.load(Relaxed),
        )
    }

    /// Reopens the access log file (after log rotation moved it away).
    pub fn reopen_access_log(&self) {
        if let Some(log) = &self.shared.access_log {
            log.reopen();
            tracing::info!("access log reopen requested");
        }
    }

    /// Access log lines dropped because the writer could not keep up.
    pub fn access_log_dropped(&self) -> u64 {
        self.shared.access_log.as_ref().map_or(0, |l| l.dropped())
    }

    /// Client connections open right now.
    pub fn open_connections(&self) -> usize {
        self.limiter.open()
    }

    /// Stops accepting, closes connections and waits for the worker threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if self.threads.is_empty() {
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Every exchange has ended with its worker: write out the lines still buffered.
        if let Some(log) = &self.shared.access_log {
            log.flush();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

async fn worker(
    shared: Arc<Shared>,
    sockets: Vec<(Arc<str>, std::net::TcpListener)>,
    limiter: Arc<ConnLimiter>,
    mut stop: watch::Receiver<bool>,
    mut cmds: tokio::sync::mpsc::UnboundedReceiver<WorkerCmd>,
) {
    let mut accepts: std::collections::HashMap<Arc<str>, tokio::task::JoinHandle<()>> =
        Default::default();
    let start = |name: Arc<str>,
                 std_listener: std::net::TcpListener|
     -> Option<tokio::task::JoinHandle<()>> {
        match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => Some(tokio::spawn(accept_loop(
                shared.clone(),
                name,
                l,
                limiter.clone(),
            ))),
            Err(e) => {
                tracing::error!(error = %e, "cannot register listener");
                None
            }
        }
    };
    for (name, std_listener) in sockets {
        if let Some(task) = start(name.clone(), std_listener) {
            accepts.insert(name, task);
        }
    }
    // This worker's upstream pools shrink even when no request comes to trigger it.
    let reaper = tokio::spawn(async {
        let mut tick = tokio::time::interval(crate::upstream::pool::REAP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            crate::upstream::pool::reap();
        }
    });
    let mut drain = shared.drain.subscribe();
    loop {
        tokio::select! {
            _ = wait_true(&mut stop) => break,
            _ = wait_true(&mut drain) => {
                // Closing the listening sockets refuses new connections; open ones drain.
                for (_, task) in accepts.drain() {
                    task.abort();
                }
                wait_true(&mut stop).await;
                break;
            }
            cmd = cmds.recv() => match cmd {
                Some(WorkerCmd::Add(name, socket)) => {
                    if let Some(task) = start(name.clone(), socket) {
                        if let Some(old) = accepts.insert(name, task) {
                            old.abort();
                        }
                    }
                }
                // Only the accept loop stops: connections already accepted run on.
                Some(WorkerCmd::Remove(name)) => {
                    if let Some(task) = accepts.remove(&name) {
                        task.abort();
                    }
                }
                None => wait_true(&mut stop).await,
            },
        }
    }
    for (_, task) in accepts {
        task.abort();
    }
    reaper.abort();
}

/// Resolves once the flag is (or becomes) true; never holds the channel's lock across an
/// await point.
pub(crate) async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await.map(|_| ());
}
