//! The `rampart` binary as a child process: start it, read its JSON logs, signal it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A running `rampart run`.
pub struct RunningGateway {
    pub child: Child,
    /// The `public` listener's address, from the `listening` log line.
    pub addr: SocketAddr,
    /// Every later stderr line (JSON process logs).
    pub logs: Receiver<String>,
    /// The lines before the first `listening` one.
    pub early: Vec<String>,
}

/// Starts `rampart run --config path` and waits for its first `listening` line.
/// The caller stops and waits for the child.
pub fn run_gateway(path: &Path) -> RunningGateway {
    run_gateway_with(path, &[])
}

/// Like [`run_gateway`], with more arguments after `--config path`.
#[allow(clippy::zombie_processes)]
pub fn run_gateway_with(path: &Path, args: &[&str]) -> RunningGateway {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["run", "--config"])
        .arg(path)
        .args(args)
        .env("RAMPART_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, logs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut early = Vec::new();
    loop {
        let line = logs
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("listening line");
        if line.contains("\"listening\"") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let addr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            return RunningGateway {
                child,
                addr,
                logs,
                early,
            };
        }
        early.push(line);
    }
}

/// Sends a signal (`HUP`, `INT`, `TERM`) to `child`.
pub fn signal(child: &Child, name: &str) {
    Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
}

/// Waits for `child` to exit, failing the test after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `rampart audit keygen --out DIR/audit-key`; returns the public key (base64).
pub fn audit_keygen(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["audit", "keygen", "--out"])
        .arg(dir.join("audit-key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("public_key: "))
        .unwrap()
        .to_string()
}
