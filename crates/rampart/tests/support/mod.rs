//! Shared test harness: real upstream servers, real clients over real sockets, and
//! certificates generated per test. Nothing here is mocked.
#![allow(dead_code)]

pub mod browser;
pub mod certs;
pub mod client;
pub mod jwt;
pub mod process;
pub mod redis;
pub mod store;
pub mod upstream;

use std::net::SocketAddr;
use std::path::Path;

#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use upstream::*;

/// A gateway started from YAML, plus the temp dir its relative paths resolve against.
pub struct TestGateway {
    pub gateway: rampart::Gateway,
    pub dir: tempfile::TempDir,
}

impl TestGateway {
    /// The `/metrics` text of the features' own series (the plan's metric sources).
    pub fn feature_metrics(&self) -> String {
        let plan = self.gateway.plan();
        let mut text = rampart_core::MetricsText::new();
        for m in &plan.metric_sources {
            m.render(&mut text);
        }
        text.finish()
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.gateway.addr(listener).expect("listener exists")
    }
    pub fn http(&self) -> SocketAddr {
        self.addr("public")
    }
}

/// Starts a gateway on `yaml` with files resolved against `dir`.
pub fn start_in(yaml: &str, dir: tempfile::TempDir) -> TestGateway {
    let gateway = rampart::start(yaml, dir.path())
        .unwrap_or_else(|e| panic!("gateway failed to start: {e:#}\n{yaml}"));
    TestGateway { gateway, dir }
}

/// Starts a gateway on `yaml` (relative paths resolve in a fresh temp dir).
pub fn start(yaml: &str) -> TestGateway {
    start_in(yaml, tempfile::tempdir().expect("tempdir"))
}

/// A config with one plain listener named `public` on a free port, one route `all`
/// (`path_prefix: /`) to an upstream `up` with the given targets, and `extra` appended
/// verbatim to the upstream block (indented 4 spaces).
pub fn simple_config(targets: &[SocketAddr], upstream_extra: &str) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|a| format!("{{ url: \"http://{a}\" }}"))
        .collect();
    format!(
        "version: 1\nworkers: 2\naccess_log: {{ enabled: false }}\nlisteners:\n  - {{ name: public, bind: \"127.0.0.1:0\" }}\n\
         upstreams:\n  up:\n    targets: [{}]\n{}\nroutes:\n  - name: all\n    match: {{ path_prefix: / }}\n    upstream: up\n",
        targets.join(", "),
        upstream_extra
    )
}

/// Reads a file that may still be being written (access logs): waits until `pred` holds
/// for its content, up to 5 s.
pub async fn wait_for_file(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&text) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Asserts that each config fragment (appended to a minimal valid config with one
/// upstream `up`) is refused with an error containing its expected text.
pub fn assert_config_errors(cases: &[(&str, &str)]) {
    for (extra, want) in cases {
        let yaml = format!(
            "version: 1\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [{{ url: \"http://127.0.0.1:9\" }}] }} }}\n{extra}\n"
        );
        let err = rampart::compile_str(&yaml, Path::new("."))
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"))
            .to_string();
        assert!(err.contains(want), "{extra}\nwanted {want:?} in:\n{err}");
    }
}

/// The first access log line in `path` containing `needle` (waits up to 5 s for it).
pub async fn access_log_line(path: &Path, needle: &str) -> String {
    let text = wait_for_file(path, |t| complete_lines(t).any(|l| l.contains(needle))).await;
    let line = complete_lines(&text)
        .find(|l| l.contains(needle))
        .map(str::to_string);
    line.unwrap_or_else(|| panic!("no access log line with {needle:?} in:\n{text}"))
}

/// The lines of a log read while it is written, without a last line that is still cut
/// off (the writer may be caught between two writes of one batch).
pub fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(str::trim_end)
}

/// Polls `f` until it holds, for up to 5 s (state a background task updates).
pub async fn eventually(mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}
