//! Secrets are never written in the config file: a secret field holds a reference to
//! where the value lives (`{env: NAME}` or `{file: /run/secrets/x}`), resolved at every
//! load, so rotating a secret is a reload, not a restart. Resolved values are kept in a
//! type whose `Debug` never shows them.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Where a secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable of the gateway process.
    Env(String),
    /// A file (trailing newlines are trimmed), e.g. a mounted Kubernetes secret.
    File(std::path::PathBuf),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "{{env: {name}}}"),
            SecretRef::File(path) => write!(f, "{{file: {}}}", path.display()),
        }
    }
}

/// A resolved secret value. `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that must compare or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl SecretRef {
    /// Reads the secret. Errors name the reference, never a value.
    pub fn resolve(&self, base: &std::path::Path) -> Result<Secret, String> {
        let value = match self {
            SecretRef::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            SecretRef::File(path) => {
                let full = if path.is_absolute() {
                    path.clone()
                } else {
                    base.join(path)
                };
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    format!("cannot read secret file {}: {}", full.display(), e.kind())
                })?;
                text.trim_end_matches(['\n', '\r']).to_string()
            }
        };
        if value.is_empty() {
            return Err(format!("the secret referenced by {self:?} is empty"));
        }
        Ok(Secret(value))
    }
}

/// A secret field is shown as its reference, never its value: `{env: NAME}` tells an
/// operator where the secret comes from without revealing it.
impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        match self {
            SecretRef::Env(name) => m.serialize_entry("env", name)?,
            SecretRef::File(path) => m.serialize_entry("file", path)?,
        }
        m.serialize_entry("value", "<redacted>")?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference: {env: NAME} or {file: PATH}")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                // The value is deliberately not echoed: it may be the secret itself.
                Err(E::custom(
                    "inline secrets are not allowed; write {env: NAME} or {file: PATH}",
                ))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
                self.visit_str("")
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
                self.visit_str("")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "a secret reference needs `env` or `file`",
                    ));
                };
                let value: String = map.next_value()?;
                let r = match key.as_str() {
                    "env" => SecretRef::Env(value),
                    "file" => SecretRef::File(value.into()),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown secret source `{other}`; use env or file"
                        )))
                    }
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "a secret reference has exactly one of `env` or `file`",
                    ));
                }
                Ok(r)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_shows_in_debug_or_display() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[test]
    fn resolves_files_relative_to_base_and_trims_newline() {
        // Removed when the test ends.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("token"), "s3cret\n").unwrap();
        let s = SecretRef::File("token".into()).resolve(dir).unwrap();
        assert_eq!(s.expose(), "s3cret");
        let err = SecretRef::File("missing".into()).resolve(dir).unwrap_err();
        assert!(err.contains("cannot read secret file"));
        let err = SecretRef::Env("RAMPART_TEST_SURELY_UNSET_VAR".into())
            .resolve(dir)
            .unwrap_err();
        assert_eq!(
            err,
            "environment variable RAMPART_TEST_SURELY_UNSET_VAR is not set"
        );
    }
}
