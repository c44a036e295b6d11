//! The route filter: decides per response whether and how its body is rewritten (who the
//! caller is, the media type, the encoding), fixes the head to match, and hands the body
//! to a [`Rewriter`].

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_LENGTH, ETAG};
use http::HeaderValue;
use rampart_core::{
    BodyCounts, BodyRewriter, ExchangeCtx, ExchangeRecord, Filter, Identity, Outcome, Phase,
    Problem, Reason, ReplaceBody, ResponseCtx,
};

use crate::media;
use crate::rewrite::Rewriter;
use crate::{Exempt, FieldList, Lists, MaskPlan, Settings, Totals};

/// Masking and field lists on one route's responses.
pub struct DataProtection {
    mask: Option<Arc<MaskPlan>>,
    exempt: Option<Exempt>,
    lists: Option<Lists>,
    names: Arc<[Box<str>]>,
    settings: Settings,
    totals: Arc<Totals>,
    /// The body a caller gets depends on who the caller is (exemptions, per-role lists).
    varies: bool,
}

/// Decided by the response head, for the body.
enum Planned {
    Rewrite {
        mask: bool,
        list: Option<Arc<FieldList>>,
        counts: Option<Arc<BodyCounts>>,
    },
    /// Answer this (a 502 problem) instead of the upstream's body.
    Replace(Bytes),
}

impl DataProtection {
    pub(crate) fn new(
        mask: Option<(Arc<MaskPlan>, Option<Exempt>)>,
        lists: Option<Lists>,
        names: Arc<[Box<str>]>,
        settings: Settings,
        totals: Arc<Totals>,
    ) -> DataProtection {
        let (mask, exempt) = match mask {
            Some((m, e)) => (Some(m), e),
            None => (None, None),
        };
        let varies = exempt.is_some() || lists.as_ref().is_some_and(|l| !l.per_role.is_empty());
        DataProtection {
            mask,
            exempt,
            lists,
            names,
            settings,
            totals,
            varies,
        }
    }

    fn exempt(&self, id: Option<&Identity>) -> bool {
        let (Some(e), Some(id)) = (&self.exempt, id) else {
            return false;
        };
        id.roles.iter().any(|r| e.roles.iter().any(|x| **x == **r))
            || id
                .scopes
                .iter()
                .any(|s| e.scopes.iter().any(|x| **x == **s))
            || id
                .consumer
                .as_ref()
                .is_some_and(|c| e.consumers.iter().any(|x| **x == **c))
    }

    fn list(&self, id: Option<&Identity>) -> Option<Arc<FieldList>> {
        let lists = self.lists.as_ref()?;
        if let Some(id) = id {
            for r in &lists.per_role {
                if id.roles.iter().any(|x| r.roles.iter().any(|y| **y == **x)) {
                    return r.list.clone();
                }
            }
        }
        lists.default.clone()
    }

    fn media_ok(&self, essence: &str) -> bool {
        media::is_json(essence) || self.settings.media.iter().any(|m| **m == *essence)
    }

    /// The body cannot be rewritten: a 502 (`block`), or through as it is (`pass`).
    fn unmaskable(&self, cx: &mut ResponseCtx<'_>, reason: Reason, why: &'static str) {
        cx.details.push(("mask", why.into()));
        if self.settings.pass {
            cx.record(reason, Outcome::ShadowDeny);
            return;
        }
        cx.record(reason, Outcome::Deny);
        let body = cx.replace_with_problem(Problem::UPSTREAM_PROTOCOL);
        cx.extensions.insert(Planned::Replace(body));
    }
}

impl Filter for DataProtection {
    fn phase(&self) -> Phase {
        Phase::ResponseBody
    }

    fn name(&self) -> &'static str {
        "data_protection"
    }

    /// The upstream is asked for an uncompressed body, which is the only kind masked.
    fn on_upstream_request(&self, head: &mut http::request::Parts, _cx: &mut ExchangeCtx) {
        head.headers.remove(ACCEPT_ENCODING);
    }

    fn on_response(&self, cx: &mut ResponseCtx<'_>) {
        if cx.own {
            return;
        }
        let id = cx.identity.clone();
        let mask = self.mask.is_some() && !self.exempt(id.as_deref());
        if self.mask.is_some() && !mask {
            cx.record(Reason::MaskExempt, Outcome::Allow);
        }
        let list = self.list(id.as_deref());
        if self.varies {
            // Callers see different bodies at the same URL: no shared cache may keep one.
            let private = cx.head.headers.get(CACHE_CONTROL).is_some_and(|v| {
                v.to_str()
                    .map(|s| {
                        let s = s.to_ascii_lowercase();
                        s.contains("private") || s.contains("no-store")
                    })
                    .unwrap_or(false)
            });
            if !private {
                cx.head
                    .headers
                    .insert(CACHE_CONTROL, HeaderValue::from_static("private"));
            }
        }
        if !mask && list.is_none() {
            return;
        }
        if media::no_body(cx.head) {
            return;
        }
        if !self.media_ok(&media::essence(&cx.head.headers)) {
            return self.unmaskable(cx, Reason::MaskUnparseable, "media_type");
        }
        if media::is_encoded(&cx.head.headers) {
            return self.unmaskable(cx, Reason::MaskEncoded, "content_encoding");
        }
        // The rewritten body has another length, and another entity.
        cx.head.headers.remove(CONTENT_LENGTH);
        cx.head.headers.remove(ETAG);
        let counts = (mask && !self.names.is_empty()).then(|| {
            let c = Arc::new(BodyCounts::new("mask", self.names.clone()));
            cx.body_counts.push(c.clone());
            c
        });
        cx.extensions
            .insert(Planned::Rewrite { mask, list, counts });
    }

    fn response_body(&self, cx: &ResponseCtx<'_>) -> Option<Box<dyn BodyRewriter>> {
        match cx.extensions.get::<Planned>()? {
            Planned::Replace(body) => Some(Box::new(ReplaceBody::new(body.clone()))),
            Planned::Rewrite { mask, list, counts } => Some(Box::new(Rewriter::new(
                self.mask.clone().filter(|_| *mask),
                list.clone(),
                counts.clone(),
                self.settings.max_value,
                self.settings.pass,
            ))),
        }
    }

    fn on_log(&self, record: &ExchangeRecord<'_>) {
        let Some(x) = record.exchange else {
            return;
        };
        for c in &x.body_counts {
            if c.label == "mask" {
                for (i, _, n) in c.nonzero() {
                    self.totals.add(i, n);
                }
            }
        }
    }
}
