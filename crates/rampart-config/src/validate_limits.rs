//! Semantic checks of rate limits, plans, concurrency limits and the Redis settings.

use crate::{ConfigError, LimitKey, LimitSpec, LimitStore, RateLimitSpec, Spec};

fn check_limits(p: &str, limits: &[LimitSpec], errs: &mut Vec<ConfigError>) {
    for (i, l) in limits.iter().enumerate() {
        let lp = format!("{p}[{i}]");
        match (l.rate, l.quota) {
            (Some(_), Some(_)) | (None, None) => errs.push(ConfigError::new(
                lp.clone(),
                "set exactly one of rate (e.g. 10/s) or quota (e.g. 1000/day)",
            )),
            (None, Some(_)) if l.burst.is_some() => errs.push(ConfigError::new(
                format!("{lp}.burst"),
                "burst applies to rate, not to quota",
            )),
            _ => {}
        }
        if l.burst == Some(0) {
            errs.push(ConfigError::new(
                format!("{lp}.burst"),
                "must be at least 1",
            ));
        }
        if l.limits_period_too_short() {
            errs.push(ConfigError::new(lp, "the period must be at least 1ms"));
        }
    }
}

impl LimitSpec {
    fn limits_period_too_short(&self) -> bool {
        [self.rate, self.quota]
            .iter()
            .flatten()
            .any(|r| r.period < std::time::Duration::from_millis(1))
    }
}

fn check_policy(p: &str, r: &RateLimitSpec, spec: &Spec, errs: &mut Vec<ConfigError>) {
    if r.by.is_empty() {
        errs.push(ConfigError::new(format!("{p}.by"), "name at least one key"));
    }
    for (i, k) in r.by.iter().enumerate() {
        if let LimitKey::Header(h) = k {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                errs.push(ConfigError::new(
                    format!("{p}.by[{i}]"),
                    format!("{h:?} is not a valid header name"),
                ));
            }
        }
    }
    if r.limits.is_empty() && !r.by.contains(&LimitKey::Consumer) {
        errs.push(ConfigError::new(
            format!("{p}.limits"),
            "list the limits, or count by consumer to use each consumer's plan",
        ));
    }
    check_limits(&format!("{p}.limits"), &r.limits, errs);
    if r.store == LimitStore::Redis && spec.redis.is_none() {
        errs.push(ConfigError::new(
            format!("{p}.store"),
            "store: redis needs the top-level redis settings",
        ));
    }
    for (k, v) in [
        ("lease", r.lease),
        ("cost", r.cost),
        ("expected_nodes", r.expected_nodes),
    ] {
        if v == 0 {
            errs.push(ConfigError::new(format!("{p}.{k}"), "must be at least 1"));
        }
    }
    if let Some(n) = &r.name {
        if n.is_empty() || n.contains('\n') {
            errs.push(ConfigError::new(
                format!("{p}.name"),
                "must be one non-empty line",
            ));
        }
    }
}

/// Pushes every limits problem in `spec` onto `errs`.
pub(crate) fn validate(spec: &Spec, errs: &mut Vec<ConfigError>) {
    for (name, plan) in &spec.plans {
        check_limits(&format!("plans.{name}.limits"), &plan.limits, errs);
        if plan.concurrency == Some(0) {
            errs.push(ConfigError::new(
                format!("plans.{name}.concurrency"),
                "must be at least 1",
            ));
        }
    }
    for (i, c) in spec.consumers.iter().enumerate() {
        if let Some(p) = &c.plan {
            if !spec.plans.contains_key(p) {
                errs.push(ConfigError::new(
                    format!("consumers[{i}].plan"),
                    format!("unknown plan {p:?}"),
                ));
            }
        }
        check_limits(&format!("consumers[{i}].limits"), &c.limits, errs);
    }
    for (i, r) in spec.rate_limits.iter().enumerate() {
        check_policy(&format!("rate_limits[{i}]"), r, spec, errs);
    }
    let mut names = std::collections::HashMap::new();
    for (i, r) in spec.routes.iter().enumerate() {
        if let Some(rl) = &r.rate_limit {
            let p = format!("routes[{i}].rate_limit");
            check_policy(&p, rl, spec, errs);
            let name = rl.name.clone().unwrap_or_else(|| r.name.clone());
            if let Some(prev) = names.insert(name.clone(), p.clone()) {
                errs.push(ConfigError::new(
                    format!("{p}.name"),
                    format!("policy name {name:?} is also used by {prev}"),
                ));
            }
        }
        if let Some(c) = &r.concurrency {
            if c.max == 0 {
                errs.push(ConfigError::new(
                    format!("routes[{i}].concurrency.max"),
                    "must be at least 1",
                ));
            }
            if c.by != LimitKey::Route && c.by != LimitKey::Consumer {
                errs.push(ConfigError::new(
                    format!("routes[{i}].concurrency.by"),
                    "must be route or consumer",
                ));
            }
        }
    }
    if let Some(r) = &spec.redis {
        for (k, u) in std::iter::once(("url".to_string(), &r.url)).chain(
            r.nodes
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("nodes[{i}]"), u)),
        ) {
            // The URL is shown by `GET /config` and in error messages, so it must not
            // carry a secret; neither does this message echo it.
            let rest = u
                .strip_prefix("redis://")
                .or_else(|| u.strip_prefix("rediss://"));
            match rest {
                None => errs.push(ConfigError::new(
                    format!("redis.{k}"),
                    "must start with redis:// or rediss://",
                )),
                Some(rest)
                    if rest
                        .split(['/', '?', '#'])
                        .next()
                        .is_some_and(|a| a.contains('@')) =>
                {
                    errs.push(ConfigError::new(
                        format!("redis.{k}"),
                        "must not carry credentials (user:password@): set redis.username and \
                         redis.password (a secret reference) instead",
                    ))
                }
                Some(_) => {}
            }
        }
        if r.timeout.get().is_zero() {
            errs.push(ConfigError::new("redis.timeout", "must be more than 0"));
        }
    }
    if !(32..=128).contains(&spec.limits.ipv6_prefix) {
        errs.push(ConfigError::new(
            "limits.ipv6_prefix",
            "must be between 32 and 128 (bits)",
        ));
    }
    let af = &spec.identity.auth_failures;
    if af.enabled && af.burst == 0 {
        errs.push(ConfigError::new(
            "identity.auth_failures.burst",
            "must be at least 1",
        ));
    }
    if af.enabled && af.max_clients == 0 {
        errs.push(ConfigError::new(
            "identity.auth_failures.max_clients",
            "must be at least 1",
        ));
    }
    if let Some(c) = &spec.limits.new_connections_per_ip {
        if c.burst == Some(0) {
            errs.push(ConfigError::new(
                "limits.new_connections_per_ip.burst",
                "must be at least 1",
            ));
        }
    }
}
