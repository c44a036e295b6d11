//! Starts the admin API (crate `rampart-admin`) with this binary's reload: re-reading
//! the config file through the same parse → validate → compile path as `validate`.

use std::path::PathBuf;
use std::sync::Arc;

pub use rampart_admin::{Admin, Reload};

use crate::Gateway;

/// Starts the admin API when the running config has one. `config_path` is what
/// `POST /admin/reload` re-reads (`None`: answered with 409).
pub fn start(
    gateway: Arc<Gateway>,
    config_path: Option<PathBuf>,
) -> std::io::Result<Option<Admin>> {
    let reload = config_path
        .map(|path| Box::new(move |gw: &Gateway| crate::reload::reload_file(gw, &path)) as Reload);
    rampart_admin::start(gateway, reload)
}
