//! Bot rules (`bot_rules`, used by `routes[].bots`): named lists of rules on the user
//! agent, missing headers and the TLS ClientHello's JA4 fingerprint, each with an action.

use serde::{Deserialize, Serialize};

use crate::{ConfigError, PolicyMode, Rate, Spec};

/// One rule. Its conditions all have to hold (at least one is required): the
/// `User-Agent` matches `user_agent`, each header of `missing` is absent or empty, the
/// connection's JA4 matches one of `ja4`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BotRuleSpec {
    /// Named in logs, metrics and the `X-Rampart-Bot` tag.
    pub name: String,
    /// A regular expression (Rust `regex` syntax, linear time) on the `User-Agent`; an
    /// absent header reads as empty.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Headers that must be absent or empty for the rule to match (`accept-language`).
    #[serde(default)]
    pub missing: Vec<String>,
    /// JA4 fingerprints, `*` matching any run of characters (`t13d1516h2_*`). Only TLS
    /// connections have one.
    #[serde(default)]
    pub ja4: Vec<String>,
    pub action: BotAction,
    /// For `score`: the points the match adds (default 5).
    #[serde(default)]
    pub points: Option<u32>,
    /// For `limit`: requests matching the rule are limited to this rate per client
    /// address (`10/min`), past it refused with 429.
    #[serde(default)]
    pub rate: Option<Rate>,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BotAction {
    /// Refuse with 403.
    Deny,
    /// Add `points` to the request's bot score; at the route's `threshold`, 403. The score
    /// also adds to the route's injection score when it has `inspect`.
    Score,
    /// Let the request through with `X-Rampart-Bot: <rule>` towards the upstream.
    Tag,
    /// Limit matching requests to `rate` per client address.
    Limit,
}

/// A route's bot rules.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BotsSpec {
    /// Names of `bot_rules` lists, checked in order.
    pub rules: Vec<String>,
    /// `shadow`: matches are logged and counted; nothing is refused or limited (tags are
    /// still set).
    #[serde(default)]
    pub mode: PolicyMode,
    /// The bot score at which a request is refused (default 5).
    #[serde(default = "five")]
    pub threshold: u32,
}

fn five() -> u32 {
    5
}

pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    for (list, rules) in &spec.bot_rules {
        let mut names = std::collections::HashSet::new();
        for (j, r) in rules.iter().enumerate() {
            let at = |k: &str| format!("bot_rules.{list}[{j}].{k}");
            if r.name.is_empty() || !names.insert(r.name.as_str()) {
                errs.push(ConfigError::new(
                    at("name"),
                    format!("must be unique in the list and not empty, got {:?}", r.name),
                ));
            }
            if r.user_agent.is_none() && r.missing.is_empty() && r.ja4.is_empty() {
                errs.push(ConfigError::new(
                    format!("bot_rules.{list}[{j}]"),
                    "needs at least one condition: user_agent, missing or ja4",
                ));
            }
            if let Some(re) = &r.user_agent {
                if let Err(e) = regex::Regex::new(re) {
                    let why = e.to_string();
                    let last = why.lines().last().unwrap_or("invalid");
                    errs.push(ConfigError::new(
                        at("user_agent"),
                        format!("not a valid regular expression: {last}"),
                    ));
                }
            }
            for (k, h) in r.missing.iter().enumerate() {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    errs.push(ConfigError::new(
                        at(&format!("missing[{k}]")),
                        format!("{h:?} is not a header name"),
                    ));
                }
            }
            match r.action {
                BotAction::Limit if r.rate.is_none() => {
                    errs.push(ConfigError::new(at("rate"), "required for action: limit"))
                }
                BotAction::Score if r.points == Some(0) => {
                    errs.push(ConfigError::new(at("points"), "must be at least 1"))
                }
                _ => {}
            }
            if r.rate.is_some() && r.action != BotAction::Limit {
                errs.push(ConfigError::new(at("rate"), "only for action: limit"));
            }
            if r.points.is_some() && r.action != BotAction::Score {
                errs.push(ConfigError::new(at("points"), "only for action: score"));
            }
        }
    }
    for (i, r) in spec.routes.iter().enumerate() {
        let Some(b) = &r.bots else { continue };
        for (j, name) in b.rules.iter().enumerate() {
            if !spec.bot_rules.contains_key(name) {
                errs.push(ConfigError::new(
                    format!("routes[{i}].bots.rules[{j}]"),
                    format!("no bot_rules list named {name:?}"),
                ));
            }
        }
        if b.threshold == 0 {
            errs.push(ConfigError::new(
                format!("routes[{i}].bots.threshold"),
                "must be at least 1",
            ));
        }
    }
}
