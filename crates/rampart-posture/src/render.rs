//! A report as text (a terminal), JSON (CI) or one self-contained HTML page (a person).

use std::fmt::Write as _;

use crate::{catalog, Finding, Report, Status};

fn date(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

fn mappings(f: &Finding) -> String {
    let mut parts = Vec::new();
    if !f.check.owasp.is_empty() {
        parts.push(format!("OWASP {}", f.check.owasp.join(", ")));
    }
    if !f.check.nist.is_empty() {
        parts.push(format!("NIST {}", f.check.nist.join(", ")));
    }
    if !f.check.pci.is_empty() {
        parts.push(format!("PCI DSS {}", f.check.pci.join(", ")));
    }
    parts.join(" · ")
}

/// The terminal's view: warnings and failures, worst first (with `all`, passes too).
pub fn text(r: &Report, all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Rampart security posture: {} ({})",
        r.source,
        date(r.generated_unix)
    );
    let _ = writeln!(
        out,
        "{} pass, {} warn, {} fail\n",
        r.summary.pass, r.summary.warn, r.summary.fail
    );
    let mut shown: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| all || f.status != Status::Pass)
        .collect();
    shown.sort_by_key(|f| std::cmp::Reverse(f.status));
    for f in &shown {
        let _ = writeln!(
            out,
            "{:<4}  {:<28} {}",
            f.status.as_str().to_uppercase(),
            f.check.id,
            f.scope
        );
        let _ = writeln!(out, "      {}", f.reason);
        let _ = writeln!(out, "      {}", mappings(f));
    }
    if !all && r.summary.pass > 0 {
        let _ = writeln!(
            out,
            "({} passing checks not shown: --all lists them)",
            r.summary.pass
        );
    }
    out
}

/// The machine's view: the report as the admin API answers it.
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

/// Each mapped control with the worst verdict of its findings and their count.
pub fn controls(r: &Report) -> Vec<(&'static str, &'static str, Status, usize)> {
    let mut out = Vec::new();
    for (id, title) in catalog::OWASP
        .iter()
        .chain(catalog::NIST)
        .chain(catalog::PCI)
    {
        let hits: Vec<&Finding> = r
            .findings
            .iter()
            .filter(|f| {
                f.check
                    .owasp
                    .iter()
                    .chain(f.check.nist)
                    .chain(f.check.pci)
                    .any(|c| c == id)
            })
            .collect();
        if let Some(worst) = hits.iter().map(|f| f.status).max() {
            out.push((*id, *title, worst, hits.len()));
        }
    }
    out
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2430;background:#f5f6f8}\
header{background:#1d2430;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:22px}header p{margin:0;color:#c5cbd6}\
main{padding:24px 32px;max-width:1200px}.cards{display:flex;gap:16px;margin-bottom:24px}\
.card{background:#fff;border-radius:8px;padding:14px 20px;min-width:120px;box-shadow:0 1px 2px #0002}.card b{display:block;font-size:28px}\
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:28px}\
th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #e3e6eb;vertical-align:top}th{background:#eef0f4;font-weight:600}\
.s{display:inline-block;border-radius:4px;padding:1px 8px;font-weight:700;font-size:12px;letter-spacing:.04em}\
.pass{background:#d8f3e0;color:#155d2b}.warn{background:#fff0c2;color:#6b4d00}.fail{background:#fbd5d5;color:#8a1111}\
code{font-size:13px}.m{color:#566074;font-size:13px}h2{font-size:18px;margin:8px 0 12px}";

fn badge(s: Status) -> String {
    format!(
        "<span class=\"s {0}\">{1}</span>",
        s.as_str(),
        s.as_str().to_uppercase()
    )
}

/// The person's view: one page, no script, no external resource.
pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Rampart security posture</title><style>{STYLE}</style></head><body>\
         <header><h1>Rampart security posture</h1><p>{} · {}</p></header><main>\
         <div class=\"cards\"><div class=\"card\"><b>{}</b>{}</div><div class=\"card\"><b>{}</b>{}</div><div class=\"card\"><b>{}</b>{}</div></div>",
        esc(&r.source),
        date(r.generated_unix),
        r.summary.fail,
        badge(Status::Fail),
        r.summary.warn,
        badge(Status::Warn),
        r.summary.pass,
        badge(Status::Pass),
    );
    o.push_str("<h2>Findings</h2><table><thead><tr><th>Status</th><th>Check</th><th>Scope</th><th>Reason</th><th>Maps to</th></tr></thead><tbody>");
    let mut sorted: Vec<&Finding> = r.findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.status));
    for f in sorted {
        let _ = write!(
            o,
            "<tr><td>{}</td><td><code>{}</code><div class=\"m\">{}</div></td><td>{}</td><td>{}</td><td class=\"m\">{}</td></tr>",
            badge(f.status),
            esc(f.check.id),
            esc(f.check.title),
            esc(&f.scope),
            esc(&f.reason),
            esc(&mappings(f)),
        );
    }
    o.push_str("</tbody></table><h2>Controls</h2><table><thead><tr><th>Control</th><th>Title</th><th>Status</th><th>Findings</th></tr></thead><tbody>");
    for (id, title, worst, n) in controls(r) {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{n}</td></tr>",
            esc(id),
            esc(title),
            badge(worst)
        );
    }
    o.push_str("</tbody></table><p class=\"m\">Each check and its mapping is explained in docs/evidence.md (Security posture).</p></main></body></html>\n");
    o
}
