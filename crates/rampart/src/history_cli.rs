//! `rampart history` and `rampart rollback`: the kept config versions, from a running
//! gateway's admin API or straight from a state directory, and making one live again.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::json;

use rampart_observe::config_history::{History, Version};

/// Prints the kept versions, newest first: from `--admin` (the running one marked) or
/// from `--state-dir`. `json` prints the admin API's answer shape instead of a table.
pub fn history(admin: Option<&str>, state_dir: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let (versions, current): (Vec<Version>, Option<String>) = match (admin, state_dir) {
        (Some(admin), None) => {
            let (status, answer) = crate::admin_client::call_blocking(
                admin,
                http::Method::GET,
                "/admin/history",
                None,
            )?;
            if !status.is_success() {
                bail!(
                    "GET /admin/history: {status}: {}",
                    answer["detail"].as_str().unwrap_or("")
                );
            }
            let mut versions: Vec<Version> = serde_json::from_value(answer["versions"].clone())
                .context("the admin API sent an unexpected history")?;
            versions.reverse();
            (versions, answer["current"].as_str().map(str::to_string))
        }
        (None, Some(dir)) => {
            let history = History::new(dir, usize::MAX);
            if !history.dir().is_dir() {
                bail!("{} holds no config history", history.dir().display());
            }
            (history.list().map_err(anyhow::Error::msg)?, None)
        }
        _ => bail!("give one of --admin (a running gateway) or --state-dir"),
    };
    if json {
        let newest_first: Vec<&Version> = versions.iter().rev().collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"current": current, "versions": newest_first}))?
        );
    } else {
        print!("{}", crate::history::render(&versions, current.as_deref()));
    }
    Ok(())
}

/// Asks a running gateway to make a kept version live.
pub fn rollback(admin: &str, version: &str) -> anyhow::Result<()> {
    let (status, answer) = crate::admin_client::call_blocking(
        admin,
        http::Method::POST,
        "/admin/rollback",
        Some(&json!({ "version": version })),
    )?;
    if !status.is_success() {
        let mut msg = format!("{status}: {}", answer["detail"].as_str().unwrap_or(""));
        if let Some(errors) = answer["errors"].as_array() {
            for e in errors {
                msg.push_str(&format!("\n  {}", e.as_str().unwrap_or("")));
            }
        }
        bail!(msg);
    }
    println!(
        "rolled back: version {} is live (the config file is unchanged; its next change reloads it)",
        crate::history::short(answer["version"].as_str().unwrap_or(""))
    );
    Ok(())
}
