//! Role, scope and consumer rules of a route's `authorize`.

use std::sync::Arc;

use rampart_config::{AuthorizeSpec, PolicyMode};
use rampart_core::{Denial, Filter, Flow, Identity, Mode, Outcome, Phase, Reason, RequestCtx};

/// A route's authorization step. With no identity (a shadow-mode authentication that
/// failed) every rule fails: deny by default.
pub struct Authorize {
    roles_any: Vec<Arc<str>>,
    roles_all: Vec<Arc<str>>,
    scopes_any: Vec<Arc<str>>,
    scopes_all: Vec<Arc<str>>,
    consumers: Vec<Arc<str>>,
    mode: Mode,
}

fn set(v: &[String]) -> Vec<Arc<str>> {
    v.iter().map(|s| Arc::from(s.as_str())).collect()
}

fn has(list: &[Arc<str>], want: &str) -> bool {
    list.iter().any(|x| &**x == want)
}

impl Authorize {
    pub fn new(spec: &AuthorizeSpec, mode: PolicyMode) -> Self {
        Self {
            roles_any: set(&spec.roles_any),
            roles_all: set(&spec.roles_all),
            scopes_any: set(&spec.scopes_any),
            scopes_all: set(&spec.scopes_all),
            consumers: set(&spec.consumers),
            mode: match mode {
                PolicyMode::Enforce => Mode::Enforce,
                PolicyMode::Shadow => Mode::Shadow,
            },
        }
    }

    /// The first rule `id` breaks, if any.
    pub fn check(&self, id: Option<&Identity>) -> Result<(), Reason> {
        let Some(id) = id else {
            return Err(Reason::Unidentified);
        };
        if !self.consumers.is_empty()
            && !id
                .consumer
                .as_deref()
                .is_some_and(|c| has(&self.consumers, c))
        {
            return Err(Reason::ConsumerNotAllowed);
        }
        if (!self.roles_any.is_empty() && !self.roles_any.iter().any(|r| has(&id.roles, r)))
            || !self.roles_all.iter().all(|r| has(&id.roles, r))
        {
            return Err(Reason::RoleMissing);
        }
        if (!self.scopes_any.is_empty() && !self.scopes_any.iter().any(|s| has(&id.scopes, s)))
            || !self.scopes_all.iter().all(|s| has(&id.scopes, s))
        {
            return Err(Reason::ScopeMissing);
        }
        Ok(())
    }
}

/// Records and applies a decision of `mode`.
pub(crate) fn decide(cx: &mut RequestCtx<'_>, mode: Mode, result: Result<Reason, Reason>) -> Flow {
    match result {
        Ok(r) => {
            cx.record(r, Outcome::Allow);
            Flow::Continue
        }
        Err(r) if mode == Mode::Shadow => {
            cx.record(r, Outcome::ShadowDeny);
            Flow::Continue
        }
        Err(r) => {
            cx.record(r, Outcome::Deny);
            let mut denial = Denial::new(r);
            if r == Reason::ScopeMissing {
                // RFC 6750 §3.1: a token without the needed scope is `insufficient_scope`.
                denial = denial.with_header(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static(
                        "Bearer realm=\"rampart\", error=\"insufficient_scope\"",
                    ),
                );
            }
            Flow::Deny(denial)
        }
    }
}

impl Filter for Authorize {
    fn phase(&self) -> Phase {
        Phase::Authorize
    }

    fn name(&self) -> &'static str {
        "authorize"
    }

    fn on_request(&self, cx: &mut RequestCtx<'_>) -> Flow {
        let result = self.check(cx.identity.as_deref()).map(|()| Reason::AuthzOk);
        decide(cx, self.mode, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(roles: &[&str], scopes: &[&str], consumer: Option<&str>) -> Identity {
        Identity {
            consumer: consumer.map(Into::into),
            roles: roles.iter().map(|r| Arc::from(*r)).collect(),
            scopes: scopes.iter().map(|r| Arc::from(*r)).collect(),
            ..Identity::default()
        }
    }

    fn rule(f: impl FnOnce(&mut AuthorizeSpec)) -> Authorize {
        let mut s = AuthorizeSpec::default();
        f(&mut s);
        Authorize::new(&s, PolicyMode::Enforce)
    }

    #[test]
    fn roles_any_and_all() {
        let any = rule(|s| s.roles_any = vec!["a".into(), "b".into()]);
        assert!(any.check(Some(&id(&["b"], &[], None))).is_ok());
        assert_eq!(
            any.check(Some(&id(&["c"], &[], None))),
            Err(Reason::RoleMissing)
        );
        let all = rule(|s| s.roles_all = vec!["a".into(), "b".into()]);
        assert!(all.check(Some(&id(&["a", "b", "c"], &[], None))).is_ok());
        assert_eq!(
            all.check(Some(&id(&["a"], &[], None))),
            Err(Reason::RoleMissing)
        );
    }

    #[test]
    fn scopes_and_consumers() {
        let r = rule(|s| {
            s.scopes_all = vec!["orders:read".into()];
            s.consumers = vec!["acme".into()];
        });
        assert!(r
            .check(Some(&id(&[], &["orders:read"], Some("acme"))))
            .is_ok());
        assert_eq!(
            r.check(Some(&id(&[], &["orders:read"], Some("evil")))),
            Err(Reason::ConsumerNotAllowed)
        );
        assert_eq!(
            r.check(Some(&id(&[], &[], Some("acme")))),
            Err(Reason::ScopeMissing)
        );
        assert_eq!(r.check(None), Err(Reason::Unidentified));
    }
}
