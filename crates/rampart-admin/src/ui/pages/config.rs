//! The config page: the effective config (secrets are references and fingerprints, never
//! values), the kept versions with a diff between any two, reload, and rollback behind a
//! confirmation page (operators only; the buttons are not shown to viewers, and the
//! server refuses them anyway).

use maud::{html, Markup};
use rampart_observe::config_history::History;

use super::layout;
use crate::ui::session::{Role, Session};
use crate::State;

/// Most lines compared by a diff (beyond it, the page says so rather than work long).
const DIFF_CELLS: usize = 4_000_000;

fn history(state: &State) -> Option<(History, String)> {
    let plan = state.gateway.plan();
    let origin = plan.origin.as_ref()?;
    Some((
        History::of(&plan.spec, origin.base())?,
        origin.version.clone(),
    ))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn date(unix: u64) -> String {
    let mut s = String::new();
    rampart_observe::access_log::write_rfc3339(
        &mut s,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix),
    );
    // `2026-12-04T12:06:34.000Z`
    format!("{} {} UTC", &s[..10], &s[11..19])
}

pub(crate) fn config(
    state: &State,
    session: &Session,
    outcome: Option<Result<String, String>>,
) -> Markup {
    let (effective, fingerprint) = state.gateway.effective_config();
    let pretty = serde_json::to_string_pretty(&effective).unwrap_or_default();
    let kept = history(state);
    let versions = kept
        .as_ref()
        .and_then(|(h, _)| h.list().ok())
        .map(|mut v| {
            v.reverse();
            v
        })
        .unwrap_or_default();
    let current = kept.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
    let operator = session.role == Role::Operator;
    let body = html! {
        @match &outcome {
            Some(Ok(m)) => { p.done role="status" { (m) } }
            Some(Err(m)) => { p.alert role="alert" { (m) } }
            None => {}
        }
        section aria-labelledby="history-h" {
            h2 id="history-h" { "Versions" }
            @if kept.is_none() {
                p.quiet { "This gateway keeps no config history: set " code { "state_dir" } "." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Version" } th scope="col" { "Made live" }
                        th scope="col" { "How" } th scope="col" { "Bytes" } th scope="col" { span.sr { "Actions" } }
                    } }
                    tbody {
                        @for v in &versions {
                            tr {
                                td { code { (short(&v.id)) } @if v.id == current { " " span.badge.operator { "running" } } }
                                td { (date(v.time_unix)) }
                                td { (v.action) }
                                td.num { (v.bytes) }
                                td.actions {
                                    @if v.id != current {
                                        a href={"/ui/config/diff?from=" (v.id) "&to=" (current)} { "Diff with running" }
                                        @if operator {
                                            " · " a href={"/ui/config/rollback?version=" (v.id)} { "Roll back to this…" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if operator {
                form.inline method="post" action="/ui/reload" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button type="submit" { "Reload the config file" }
                }
            }
        }
        section aria-labelledby="effective-h" {
            h2 id="effective-h" { "Running config" }
            p { "Fingerprint " code { (fingerprint) } ". Defaults are filled in; secrets show where they come from and a fingerprint of their value, never the value." }
            pre.config { (pretty) }
        }
    };
    layout(session, "config", "Config", body)
}

pub(crate) fn confirm_rollback(state: &State, session: &Session, version: &str) -> Markup {
    let found = history(state).and_then(|(h, current)| Some((h.find(version).ok()?, current)));
    let body = match found {
        _ if session.role != Role::Operator => html! {
            p.alert role="alert" { "Only an operator may roll back. You signed in with the read-only token." }
        },
        None => {
            html! { p.alert role="alert" { "There is no kept version " code { (version) } "." } }
        }
        Some((v, current)) => html! {
            p { "Make version " code { (short(&v.id)) } " (made live " (date(v.time_unix)) ", " (v.action) ") the running config again?" }
            p { "It is checked as a reload is: if it no longer loads, nothing changes. "
                a href={"/ui/config/diff?from=" (current) "&to=" (v.id)} { "See what would change" } "." }
            form.inline method="post" action="/ui/config/rollback" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="version" value=(v.id);
                button.danger type="submit" { "Roll back" }
                " " a href="/ui/config" { "Cancel" }
            }
        },
    };
    layout(session, "config", "Roll back", body)
}

/// One line of a diff.
#[derive(Debug, PartialEq)]
pub(crate) enum Line<'a> {
    Same(&'a str),
    Gone(&'a str),
    Added(&'a str),
}

/// The lines of `a` and `b` matched by a longest common subsequence (after their common
/// start and end); `None` when the differing middle is too large to compare here.
pub(crate) fn line_diff<'a>(a: &'a str, b: &'a str) -> Option<Vec<Line<'a>>> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    if am.len().saturating_mul(bm.len()) > DIFF_CELLS {
        return None;
    }
    // lcs[i][j]: the longest common subsequence of am[i..] and bm[j..].
    let w = bm.len() + 1;
    let mut lcs = vec![0u32; (am.len() + 1) * w];
    for i in (0..am.len()).rev() {
        for j in (0..bm.len()).rev() {
            lcs[i * w + j] = if am[i] == bm[j] {
                lcs[(i + 1) * w + j + 1] + 1
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    let mut out: Vec<Line> = a[..head].iter().map(|l| Line::Same(l)).collect();
    let (mut i, mut j) = (0, 0);
    while i < am.len() || j < bm.len() {
        if i < am.len() && j < bm.len() && am[i] == bm[j] {
            out.push(Line::Same(am[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < bm.len() && (i == am.len() || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j]) {
            out.push(Line::Added(bm[j]));
            j += 1;
        } else {
            out.push(Line::Gone(am[i]));
            i += 1;
        }
    }
    out.extend(a[a.len() - tail..].iter().map(|l| Line::Same(l)));
    Some(out)
}

pub(crate) fn diff(state: &State, session: &Session, from: &str, to: &str) -> Markup {
    let texts = history(state).map(|(h, _)| {
        let read = |id: &str| {
            h.find(id)
                .ok()
                .and_then(|v| Some((h.text(&v.id).ok()?, v.id)))
        };
        (read(from), read(to))
    });
    let body = match texts {
        None => {
            html! { p.quiet { "This gateway keeps no config history: set " code { "state_dir" } "." } }
        }
        Some((Some((a, aid)), Some((b, bid)))) => match line_diff(&a, &b) {
            None => {
                html! { p.alert { "These versions differ in too many lines to compare here." } }
            }
            Some(lines) => {
                let changed = lines.iter().filter(|l| !matches!(l, Line::Same(_))).count();
                html! {
                    p { "From " code { (short(&aid)) } " to " code { (short(&bid)) } ": " (changed) " lines differ. "
                        a href="/ui/config" { "Back to the versions" } }
                    pre.diff {
                        @for l in &lines {
                            @match l {
                                Line::Same(t) => { span.same { "  " (t) "\n" } }
                                Line::Gone(t) => { del { "- " (t) "\n" } }
                                Line::Added(t) => { ins { "+ " (t) "\n" } }
                            }
                        }
                    }
                }
            }
        },
        Some(_) => html! { p.alert role="alert" { "One of these versions is not kept." } },
    };
    layout(session, "config", "Config diff", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_keeps_order_and_marks_changes() {
        let a = "a\nb\nc\nd\n";
        let b = "a\nc\nd\ne\n";
        let d = line_diff(a, b).unwrap();
        assert_eq!(
            d,
            vec![
                Line::Same("a"),
                Line::Gone("b"),
                Line::Same("c"),
                Line::Same("d"),
                Line::Added("e"),
            ]
        );
        assert_eq!(line_diff("x\n", "x\n").unwrap(), vec![Line::Same("x")]);
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(1_764_806_400 + 3_661), "2025-12-04 01:01:01 UTC");
    }
}
