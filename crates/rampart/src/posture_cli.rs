//! `rampart posture`: the security posture report of a config file or a running gateway,
//! as text, JSON or HTML, with an exit code for CI (`--fail-on`).

use std::path::Path;

use anyhow::{bail, Context as _};

use rampart_posture::{render, Report, Status};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Html,
}

/// Builds the report of `config` (read as `rampart validate` would, opening nothing a
/// running gateway holds), or asks a running gateway (`admin`) for its own.
pub fn report(config: Option<&Path>, admin: Option<&str>) -> anyhow::Result<Report> {
    match (config, admin) {
        (Some(path), None) => {
            // The whole check first: a config that does not load has no posture.
            let plan = crate::validate_file(path)
                .map_err(|e| anyhow::anyhow!("{} does not load:\n{e}", path.display()))?;
            Ok(rampart_posture::evaluate(
                &plan.spec,
                &plan.base,
                &path.display().to_string(),
                std::time::SystemTime::now(),
            ))
        }
        (None, Some(admin)) => {
            let (status, answer) = crate::admin_client::call_blocking(
                admin,
                http::Method::GET,
                "/admin/posture",
                None,
            )?;
            if !status.is_success() {
                bail!("GET /admin/posture: {status}");
            }
            from_json(&answer).context("the admin API sent an unexpected report")
        }
        _ => bail!("give one of --config FILE or --admin URL"),
    }
}

/// A report as the admin API sends it, back into its type (checks by id).
fn from_json(v: &serde_json::Value) -> Option<Report> {
    let mut findings = Vec::new();
    for f in v["findings"].as_array()? {
        let id = f["check"].as_str()?;
        let check = rampart_posture::checks::CHECKS
            .iter()
            .find(|c| c.id == id)?;
        findings.push(rampart_posture::Finding {
            check,
            scope: f["scope"].as_str()?.to_string(),
            status: Status::parse(f["status"].as_str()?)?,
            reason: f["reason"].as_str()?.to_string(),
        });
    }
    let s = &v["summary"];
    Some(Report {
        source: v["source"].as_str()?.to_string(),
        generated_unix: v["generated_unix"].as_u64()?,
        summary: rampart_posture::Summary {
            pass: s["pass"].as_u64()? as usize,
            warn: s["warn"].as_u64()? as usize,
            fail: s["fail"].as_u64()? as usize,
        },
        findings,
    })
}

/// Renders `r`; `Ok(false)` when a finding is at or above `fail_on`.
pub fn print(
    r: &Report,
    format: Format,
    all: bool,
    out: Option<&Path>,
    fail_on: Option<Status>,
) -> anyhow::Result<bool> {
    let text = match format {
        Format::Text => render::text(r, all),
        Format::Json => render::json(r) + "\n",
        Format::Html => render::html(r),
    };
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{text}"),
    }
    Ok(fail_on.is_none_or(|level| r.worst() < level))
}
