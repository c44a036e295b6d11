//! Rampart's configuration file: the typed spec, the units it speaks in, and the checks
//! that turn a YAML file into a value the compiler can trust.
//!
//! Loading is `parse` (YAML → [`Spec`], unknown keys rejected, YAML path on every error)
//! followed by [`validate`] (every semantic mistake at once, each with its YAML path).
//! Anything that needs the file system or other crates' types (certificates, the router's
//! precedence rules) is checked by the compiler, which reports in the same
//! [`ConfigError`] shape.
#![forbid(unsafe_code)]

mod admin;
mod anomaly;
mod audit;
mod bots;
mod consumer_store;
mod cors;
mod data_protection;
mod edge;
mod error;
mod identity;
mod inspect;
mod ip_lists;
mod json_limits;
mod listener;
mod load;
mod ratelimit;
mod response_headers;
mod secret;
mod spec;
mod syslog;
mod tracing;
mod transform;
mod units;
mod upstream_credentials;
mod validate;
mod validate_identity;
mod validate_limits;
mod validation;

pub use anomaly::{path_params, AnomalyAction, AnomalySpec, RouteAnomalySpec, Signal};
pub use audit::{AuditFsync, AuditSpec, ConfigHistorySpec, EventLevel, SecurityEventsSpec};
pub use bots::{BotAction, BotRuleSpec, BotsSpec};
pub use consumer_store::{
    check_consumer_id, ConsumerRecord, ConsumerStoreKind, ConsumerStoreSpec, StoredKeyRecord,
};
pub use cors::CorsSpec;
pub use data_protection::{
    ExemptSpec, MaskAction, MaskDetectSpec, MaskFieldSpec, MaskSpec, ResponseFieldsSpec,
    RoleFieldsSpec, Unparseable,
};
pub use edge::*;
pub use error::{ConfigError, ConfigErrors};
pub use inspect::{parse_exclusion, InspectSpec, INSPECT_DETECTORS, INSPECT_LOCATIONS};
pub use ip_lists::{GeoIpSpec, IpListSpec, IpRulesSpec};
pub use json_limits::JsonLimitsSpec;
pub use load::{
    load_file, parse, peek_state_dir, set_parse_limits, DEFAULT_MAX_CONFIG_BYTES,
    DEFAULT_MAX_CONFIG_NODES,
};
pub use response_headers::{FrameOptions, HstsSpec, ResponseHeadersSpec};
pub use secret::{Secret, SecretRef};
pub use spec::*;
pub use syslog::{SyslogFacility, SyslogSpec, SyslogTransport};
pub use tracing::{OtlpSpec, TracingSpec};
pub use transform::{BodyOpSpec, HeaderRulesSpec, QueryRulesSpec, TransformSpec, XmlSpec};
pub use units::{ByteSize, Duration};
pub use upstream_credentials::{OAuth2ClientAuth, OAuth2ClientSpec, UpstreamCredentialsSpec};
pub use validate::{validate, warnings};
pub use validate_identity::{fetchable_url, normalize_fingerprint, parse_key_hash};
pub use validation::{ResponseMode, UnknownOperations, ValidateSpec};
