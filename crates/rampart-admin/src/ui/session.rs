//! Dashboard sessions: signing in with an admin token gives a random session id in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` on TLS) and a CSRF token for forms.
//! Only SHA-256 digests of ids are kept, so the map's lookups leak nothing useful about
//! an id by their timing, and a memory dump holds no usable cookie. A session ends when
//! unused for `session_idle`, `session_max` after sign-in, at sign-out, or when the most
//! sessions are open and it is the least recently used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SecureRandom;
use sha2::Digest;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "rampart_ui";
/// Most sessions at once.
const MAX_SESSIONS: usize = 64;
/// Failed sign-ins allowed per minute (all callers together) before sign-in answers 429
/// for the rest of that minute: the tokens are 32+ bytes, so this only keeps guessing
/// loud and slow.
pub const MAX_FAILURES_PER_MINUTE: u32 = 10;

/// What a signed-in person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Signed in with `admin.read_token`: looks only.
    Viewer,
    /// Signed in with `admin.token`: may also reload and roll back.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// A signed-in session, as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    /// The token's fingerprint, as the admin API's audit lines name it.
    pub who: String,
    pub csrf: String,
}

struct Kept {
    session: Session,
    created: Instant,
    used: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Kept>>,
    failures: Mutex<Option<(Instant, u32)>>,
}

fn digest(id: &str) -> [u8; 32] {
    sha2::Sha256::digest(id.as_bytes()).into()
}

/// 32 random bytes as hex.
pub fn random_token() -> Option<String> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// True when `a` and `b` are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (
        sha2::Sha256::digest(a.as_bytes()),
        sha2::Sha256::digest(b.as_bytes()),
    );
    bool::from(a.ct_eq(&b))
}

impl Sessions {
    /// Starts a session; its id for the cookie. `None` when the system has no randomness.
    pub fn open(&self, role: Role, who: String) -> Option<(String, Session)> {
        let id = random_token()?;
        let session = Session {
            role,
            who,
            csrf: random_token()?,
        };
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, k)| k.used).map(|(d, _)| *d) {
                map.remove(&oldest);
            }
        }
        map.insert(
            digest(&id),
            Kept {
                session: session.clone(),
                created: now,
                used: now,
            },
        );
        Some((id, session))
    }

    /// The live session with this id, marked used now.
    pub fn find(&self, id: &str, idle: Duration, max: Duration) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, k| now - k.used < idle && now - k.created < max);
        let kept = map.get_mut(&digest(id))?;
        kept.used = now;
        Some(kept.session.clone())
    }

    /// Signs a session out.
    pub fn close(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest(id));
    }

    /// Counts a failed sign-in; false when this minute's allowance is spent.
    pub fn failed(&self) -> bool {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (start, n) = match *f {
            Some((start, n)) if now - start < Duration::from_secs(60) => (start, n + 1),
            _ => (now, 1),
        };
        *f = Some((start, n));
        n <= MAX_FAILURES_PER_MINUTE
    }

    /// True while this minute's failed sign-ins are over the allowance.
    pub fn locked(&self) -> bool {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        matches!(*f, Some((start, n)) if start.elapsed() < Duration::from_secs(60) && n > MAX_FAILURES_PER_MINUTE)
    }
}

/// The session cookie's value in a request's `Cookie` headers.
pub fn cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_closed_or_too_old() {
        let s = Sessions::default();
        let (id, opened) = s.open(Role::Viewer, "token:ab".into()).unwrap();
        assert_eq!(id.len(), 64);
        let long = Duration::from_secs(60);
        let found = s.find(&id, long, long).unwrap();
        assert_eq!(found.csrf, opened.csrf);
        assert_eq!(found.role, Role::Viewer);
        assert!(s.find("not-an-id", long, long).is_none());
        assert!(s.find(&id, Duration::ZERO, long).is_none(), "idle");
        let (id, _) = s.open(Role::Operator, "x".into()).unwrap();
        s.close(&id);
        assert!(s.find(&id, long, long).is_none(), "signed out");
    }

    #[test]
    fn failed_sign_ins_lock_for_the_minute() {
        let s = Sessions::default();
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            assert!(s.failed());
        }
        assert!(!s.locked());
        assert!(!s.failed());
        assert!(s.locked());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; rampart_ui=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h), Some("abc"));
        h.insert(http::header::COOKIE, "rampart_uix=1".parse().unwrap());
        assert_eq!(cookie(&h), None);
    }
}
