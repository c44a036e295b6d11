//! The dashboard's pages, rendered on the server with `maud` (every value is escaped
//! unless marked otherwise, and nothing here marks a value otherwise). No inline script
//! or style: the pages work with the CSP `script-src 'self'; style-src 'self'`, and the
//! script (`assets/app.js`) only fills in live numbers and rows with `textContent`.

mod config;
mod inventory;

pub(crate) use config::{config, confirm_rollback, diff};
pub(crate) use inventory::{consumers, routes, security, upstreams};

use maud::{html, Markup, DOCTYPE};

use super::live::{self, Overview, Point};
use super::session::{Role, Session};
use crate::State;

const NAV: [(&str, &str, &str); 7] = [
    ("overview", "/ui", "Overview"),
    ("decisions", "/ui/decisions", "Live decisions"),
    ("routes", "/ui/routes", "Routes"),
    ("consumers", "/ui/consumers", "Consumers"),
    ("upstreams", "/ui/upstreams", "Upstreams"),
    ("security", "/ui/security", "Security"),
    ("config", "/ui/config", "Config"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " · Rampart" }
            link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/ui/assets/app.css";
            script src="/ui/assets/app.js" defer {}
        }
    }
}

/// A signed-in page: the navigation, who is signed in, and `body`.
pub(crate) fn layout(session: &Session, page: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-page=(page) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "Rampart" }
                    nav aria-label="Dashboard" {
                        ul {
                            @for (id, href, label) in NAV {
                                li {
                                    @if id == page {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        @match session.role {
                            Role::Operator => { span.badge.operator title=(session.who) { "Operator" } }
                            Role::Viewer => { span.badge title=(session.who) { "Viewer (read-only)" } }
                        }
                        form method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The sign-in page; `cert` is the connection's listed client certificate, offered as a
/// second way in.
pub(crate) fn login(message: Option<&str>, cert: Option<&(String, Role)>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body data-page="login" {
                main.login id="main" {
                    h1 { "Rampart" }
                    p { "Sign in with an admin token: " code { "admin.token" } " to operate, "
                        code { "admin.read_token" } " to look." }
                    @if let Some(m) = message {
                        p.alert role="alert" { (m) }
                    }
                    form method="post" action="/ui/login" {
                        label for="token" { "Admin token" }
                        input id="token" type="password" name="token" autocomplete="current-password" required autofocus;
                        button type="submit" { "Sign in" }
                    }
                    @if let Some((subject, role)) = cert {
                        form.cert method="post" action="/ui/login" {
                            input type="hidden" name="certificate" value="1";
                            p { "Or with this connection's client certificate, " code { (subject) } ", as "
                                (match role { Role::Operator => "an operator", Role::Viewer => "a viewer" }) ":" }
                            button type="submit" { "Sign in with the certificate" }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn off() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Dashboard off"))
            body data-page="off" {
                main.login id="main" {
                    h1 { "The dashboard is off" }
                    p { "It is served when the admin listener has a token (" code { "admin.token" }
                        ") and " code { "admin.ui.enabled" } " is not false." }
                }
            }
        }
    }
}

pub(crate) fn refused(session: &Session, why: &str) -> Markup {
    layout(
        session,
        "",
        "Not done",
        html! { p.alert role="alert" { (why) } },
    )
}

pub(crate) fn not_found(session: &Session) -> Markup {
    layout(
        session,
        "",
        "Not found",
        html! { p { "There is no such page." } },
    )
}

/// A small line chart of `values` (the last two minutes), drawn as inline SVG; the
/// script redraws the same `points` as frames arrive.
pub(crate) fn spark(id: &str, values: &[Option<f64>], label: &str) -> Markup {
    html! {
        svg.spark viewBox="0 0 240 48" preserveAspectRatio="none" role="img" aria-label=(label) {
            line.axis x1="0" y1="47" x2="240" y2="47" {}
            polyline id=(id) points=(points(values)) {}
        }
    }
}

/// The polyline of `values` scaled to 240×48 (missing values are skipped).
pub(crate) fn points(values: &[Option<f64>]) -> String {
    let max = values.iter().flatten().fold(0.0f64, |m, v| m.max(*v));
    let n = live::HISTORY.max(2) - 1;
    let offset = live::HISTORY.saturating_sub(values.len());
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else { continue };
        let x = (offset + i) as f64 * 240.0 / n as f64;
        let y = if max > 0.0 {
            46.0 - v / max * 44.0
        } else {
            46.0
        };
        out.push_str(&format!("{x:.1},{y:.1} "));
    }
    out.trim_end().to_string()
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 10_000.0 => "> 10 s".into(),
        Some(v) => format!("≤ {v} ms"),
        None => "–".into(),
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn series(o: &Overview, f: impl Fn(&Point) -> Option<f64>) -> Vec<Option<f64>> {
    o.history.iter().map(f).collect()
}

pub(crate) fn overview(state: &State, session: &Session) -> Markup {
    let frame = state.ui.live.overview();
    let o = &frame.0;
    let p = o.latest();
    let max = o.denials.first().map_or(1, |d| d.1).max(1);
    let body = html! {
        p.lead { "Live: the last two minutes, one point a second. "
            span id="v-total" { (o.total) } " requests answered since the gateway started." }
        section.cards aria-label="Traffic now" {
            div.card {
                h2 { "Requests / s" }
                p.value id="v-rps" { (format!("{:.0}", p.rps)) }
                (spark("s-rps", &series(o, |p| Some(p.rps)), "Requests per second, last two minutes"))
            }
            div.card {
                h2 { "Errors (5xx)" }
                p.value id="v-errors" { (pct(p.errors)) }
                (spark("s-errors", &series(o, |p| Some(p.errors)), "Share of 5xx answers, last two minutes"))
            }
            div.card {
                h2 { "Refused (4xx)" }
                p.value id="v-refused" { (pct(p.refused)) }
                (spark("s-refused", &series(o, |p| Some(p.refused)), "Share of 4xx answers, last two minutes"))
            }
            div.card {
                h2 { "Latency p50 / p99" }
                p.value { span id="v-p50" { (ms(p.p50)) } " / " span id="v-p99" { (ms(p.p99)) } }
                (spark("s-p99", &series(o, |p| p.p99), "p99 latency, last two minutes"))
            }
        }
        section aria-labelledby="denials-h" {
            h2 id="denials-h" { "Gateway answers by reason, last minute" }
            table.bars {
                thead { tr { th scope="col" { "Reason code" } th scope="col" { "Answers" } th scope="col" { span.sr { "Share" } } } }
                tbody id="denials" {
                    @for (code, n) in &o.denials {
                        tr {
                            td { code { (code) } }
                            td.num { (n) }
                            td { svg.bar viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" {
                                rect width=(n * 100 / max) height="8" {}
                            } }
                        }
                    }
                }
            }
            @if o.denials.is_empty() {
                p.quiet id="denials-none" { "None in the last minute." }
            }
            p { a href="/ui/decisions" { "See each one in Live decisions →" } }
        }
    };
    layout(session, "overview", "Overview", body)
}

pub(crate) fn decision_row(e: &rampart_observe::tap::Entry) -> Markup {
    let at = e
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    html! {
        tr data-kind=(e.kind.as_str()) {
            td { time datetime=(at) { (clock(at)) } }
            td { span class={"kind " (e.kind.as_str())} { (e.kind.as_str()) } }
            td { (e.route.as_deref().unwrap_or("–")) }
            td { (e.consumer.as_deref().unwrap_or("–")) }
            td { (e.client_ip) }
            td { (e.method.as_str()) }
            td.num { (e.status) }
            td { code { (e.code) } }
            td { code { (e.request_id.to_str().unwrap_or("-")) } }
        }
    }
}

/// `HH:MM:SS` UTC.
pub(crate) fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

pub(crate) fn decisions(state: &State, session: &Session) -> Markup {
    let tap = state.gateway.decision_tap();
    let mut entries = tap.as_ref().map(|t| t.since(0)).unwrap_or_default();
    let after = entries.last().map_or(0, |e| e.seq);
    entries.reverse();
    let body = html! {
        p.lead { "Requests the gateway refused, limited, let through in shadow mode or masked, newest first (times in UTC). No credentials, paths or personal data are kept here: find the full exchange in the access log by its request id." }
        div.filters role="search" {
            label for="filter" { "Filter" }
            input id="filter" type="search" placeholder="route, consumer, address, reason…";
            label for="kind" { "Kind" }
            select id="kind" {
                option value="" { "all" }
                option value="denied" { "denied" }
                option value="limited" { "limited" }
                option value="shadow" { "shadow" }
                option value="masked" { "masked" }
            }
            span.quiet id="live-state" aria-live="polite" { "" }
        }
        table id="decision-table" data-after=(after) {
            thead { tr {
                th scope="col" { "Time" } th scope="col" { "Kind" } th scope="col" { "Route" }
                th scope="col" { "Consumer" } th scope="col" { "Client" } th scope="col" { "Method" }
                th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Request id" }
            } }
            tbody id="decisions" {
                @for e in &entries { (decision_row(e)) }
            }
        }
        @if entries.is_empty() {
            p.quiet id="decisions-none" { "Nothing refused since the dashboard started watching." }
        }
    };
    layout(session, "decisions", "Live decisions", body)
}
