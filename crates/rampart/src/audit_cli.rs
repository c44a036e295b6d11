//! `rampart audit verify` and `rampart audit keygen`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;

pub enum AuditCommand {
    Verify {
        /// The trail's files, oldest first (after rotations: `audit.jsonl.1 audit.jsonl`).
        files: Vec<PathBuf>,
        public_key: Option<String>,
        checkpoints: Option<PathBuf>,
        /// The first file goes on from one not given.
        continues: bool,
    },
    Keygen {
        out: PathBuf,
    },
}

/// Runs a subcommand: `Ok(true)` when all is well, `Ok(false)` when a trail does not
/// verify (the reason printed).
pub fn run(command: AuditCommand) -> anyhow::Result<bool> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match command {
        AuditCommand::Verify {
            files,
            public_key,
            checkpoints,
            continues,
        } => {
            let mut texts = Vec::new();
            for file in &files {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                texts.push((file.display().to_string(), text));
            }
            let named: Vec<(&str, &str)> = texts
                .iter()
                .map(|(n, t)| (n.as_str(), t.as_str()))
                .collect();
            let public = public_key
                .map(|k| b64.decode(k.trim()).context("--public-key is not base64"))
                .transpose()?;
            let copy = checkpoints
                .map(|p| {
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))
                })
                .transpose()?;
            match rampart_observe::audit_trail::verify_files(
                &named,
                public.as_deref(),
                copy.as_deref(),
                continues,
            ) {
                Ok(v) => {
                    println!(
                        "OK: {} entries{}, {} checkpoints{}{}",
                        v.entries,
                        if v.starts_at > 0 {
                            format!(" from entry {} on", v.starts_at)
                        } else {
                            String::new()
                        },
                        v.checkpoints,
                        if public.is_some() {
                            ", signatures checked"
                        } else {
                            ", signatures NOT checked (no --public-key)"
                        },
                        if v.unsigned_tail > 0 {
                            format!(
                                "; the last {} entries follow the last checkpoint (unsigned)",
                                v.unsigned_tail
                            )
                        } else {
                            String::new()
                        }
                    );
                    Ok(true)
                }
                Err(reason) => {
                    // One file: its name, then the line; several: the reason names it.
                    match &files[..] {
                        [one] => println!("BAD: {}: {reason}", one.display()),
                        _ => println!("BAD: {reason}"),
                    }
                    Ok(false)
                }
            }
        }
        AuditCommand::Keygen { out } => {
            let (private, public) =
                rampart_observe::audit_trail::generate_key().map_err(|e| anyhow::anyhow!(e))?;
            let mut f = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&out)
                    .with_context(|| {
                        format!("cannot create {} (it must not exist)", out.display())
                    })?
            };
            writeln!(f, "{}", b64.encode(private))?;
            println!("public_key: {}", b64.encode(&public));
            println!("key_id: {}", rampart_observe::audit_trail::key_id(&public));
            Ok(true)
        }
    }
}
