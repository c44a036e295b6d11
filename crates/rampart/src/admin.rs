//! Starts the admin API (crate `rampart-admin`) with this binary's reload (re-reading
//! the config file through the same parse → validate → compile path as `validate`) and
//! rollback (making a kept config version live, `history.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;
pub use rampart_admin::{Admin, Hooks, Refusal, Reload, Rollback};
use rampart_observe::config_history::FindError;

use crate::history::RollbackError;
use crate::Gateway;

/// Starts the admin API when the running config has one. `config_path` is what
/// `POST /admin/reload` re-reads (`None`: answered with 409).
pub fn start(
    gateway: Arc<Gateway>,
    config_path: Option<PathBuf>,
) -> std::io::Result<Option<Admin>> {
    let reload = config_path
        .map(|path| Box::new(move |gw: &Gateway| crate::reload::reload_file(gw, &path)) as Reload);
    let rollback: Rollback = Box::new(|gw: &Gateway, version: &str| {
        crate::history::rollback(gw, version)
            .map(|v| v.id)
            .map_err(refusal)
    });
    rampart_admin::start(
        gateway,
        Hooks {
            reload,
            rollback: Some(rollback),
        },
    )
}

fn refusal(e: RollbackError) -> Refusal {
    let status = match &e {
        RollbackError::NoHistory => StatusCode::CONFLICT,
        RollbackError::Find(FindError::Unknown) => StatusCode::NOT_FOUND,
        RollbackError::Find(_) => StatusCode::BAD_REQUEST,
        RollbackError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let detail = e.to_string();
    let errors = match e {
        RollbackError::Refused(errors) => errors,
        _ => Vec::new(),
    };
    Refusal {
        status,
        detail,
        errors,
    }
}
