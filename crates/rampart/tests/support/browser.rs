//! A real browser for the dashboard's tests: headless Chromium driven over the Chrome
//! DevTools Protocol (a WebSocket, one page). It navigates, runs expressions in the page
//! as a person's clicks and typing would, waits for what the page shows, saves
//! screenshots, and collects every Content Security Policy violation and console error.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Records CSP violations where the test can read them (run by the browser before any
/// of the page's own scripts, and not subject to the page's CSP).
const WATCH: &str = "window.__violations = [];\
    document.addEventListener('securitypolicyviolation', function (e) {\
      window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);\
    });";

pub struct Browser {
    child: Child,
    ws: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    session: String,
    next: u64,
    /// Console errors, exceptions and CSP reports seen so far.
    pub problems: Vec<String>,
    _profile: tempfile::TempDir,
}

/// The Chromium binary, or `None` when this machine has none (the README's test command
/// installs it; a developer without it is told, not failed).
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file())
        })
}

impl Browser {
    pub fn launch(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium printed its DevTools address");
        let (ws, _) = tungstenite::connect(url.as_str()).expect("connect to DevTools");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        }
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next: 0,
            problems: Vec::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({}));
        b.call("Runtime.enable", json!({}));
        b.call("Log.enable", json!({}));
        b.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": WATCH}),
        );
        b
    }

    /// Sends a command and waits for its answer, noting the events that come meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// A command's answer, or the error DevTools gave for it.
    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .expect("send to DevTools");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "DevTools did not answer {method}"
            );
            let Ok(Message::Text(text)) = self.ws.read() else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    return Err(e.clone());
                }
                return Ok(v["result"].clone());
            }
            self.note(&v);
        }
    }

    fn note(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => self
                .problems
                .push(format!("exception: {}", p["exceptionDetails"])),
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                self.problems.push(format!("console error: {}", p["args"]))
            }
            Some("Log.entryAdded")
                if p["entry"]["level"] == "error" || p["entry"]["source"] == "security" =>
            {
                self.problems.push(format!(
                    "log: {}",
                    p["entry"]["text"].as_str().unwrap_or("")
                ))
            }
            _ => {}
        }
    }

    /// Opens `url` and waits until the page has loaded.
    pub fn goto(&mut self, url: &str) {
        self.harvest();
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'");
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits (up to 20 s) until `condition` is true in the page.
    pub fn wait_for(&mut self, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // While a form's answer loads, the page being left cannot evaluate: not yet.
            let r = self.try_call(
                "Runtime.evaluate",
                json!({"expression": format!("!!({condition})"), "returnByValue": true}),
            );
            match r {
                Ok(r) if r["result"]["value"] == json!(true) => return,
                Ok(_) => {}
                Err(e) if e.to_string().contains("navigated or closed") => {}
                Err(e) => panic!("Runtime.evaluate: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for `{condition}` on {}: {}",
                self.text("location.href"),
                self.text("document.body ? document.body.innerText.slice(0, 400) : ''")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A string expression's value.
    pub fn text(&mut self, expression: &str) -> String {
        self.eval(expression)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG of the page as it looks now.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Moves the CSP violations the current page saw into `problems` (a new page starts
    /// its own list).
    fn harvest(&mut self) {
        let v = self.eval("(window.__violations || []).splice(0)");
        if let Some(v) = v.as_array() {
            self.problems.extend(v.iter().map(|x| format!("csp: {x}")));
        }
    }

    /// CSP violations, console errors and exceptions seen so far (and forgets them).
    pub fn all_problems(&mut self) -> Vec<String> {
        self.harvest();
        std::mem::take(&mut self.problems)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
