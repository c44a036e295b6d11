//! The `rampart` command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Rampart: a secure API gateway.
#[derive(Parser)]
#[command(name = "rampart", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The largest config file parsed (default 32MiB); reloads use it too.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    max_config_bytes: Option<usize>,
    /// The most YAML nodes a config file may hold (default 2000000); reloads use it too.
    #[arg(long, global = true, value_name = "N")]
    max_config_nodes: Option<usize>,
}

/// `--max-config-bytes`: a number of bytes with an optional unit (`64MiB`).
fn parse_size(s: &str) -> Result<usize, String> {
    let size: rampart_config::ByteSize = s.parse()?;
    usize::try_from(size.0).map_err(|_| format!("{s} is too large"))
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic with a config file (reloaded on SIGHUP and when the file changes).
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// When the config file does not load, start the version that last went live
        /// from it (kept in `state_dir`), loudly logged; without this flag a broken
        /// file refuses to start.
        #[arg(long)]
        fallback_to_last_good: bool,
        /// Where the last good version is kept when the file is too broken to say
        /// (its `state_dir`).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// The config versions that went live, newest first (kept in `state_dir`).
    History {
        /// A running gateway's admin API URL (token: RAMPART_ADMIN_TOKEN); the running
        /// version is marked.
        #[arg(long, conflicts_with = "state_dir")]
        admin: Option<String>,
        /// Read the history from a state directory instead.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Archive the state directory (config history, audit trail and chain head, the
    /// embedded consumer store when no gateway holds it) into one file. No secret value
    /// is in it.
    Backup {
        /// The archive to write (readable by its owner only).
        #[arg(long)]
        out: PathBuf,
        /// The config whose `state_dir` to archive.
        #[arg(long, short, conflicts_with = "state_dir")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Restore a state directory from `rampart backup`'s archive: every file, kept config
    /// version and the audit chain are checked first; only then is the directory there
    /// moved aside and replaced. Stop the gateway first.
    Restore {
        /// The archive.
        archive: PathBuf,
        /// The config whose `state_dir` to restore into.
        #[arg(long, short, conflicts_with = "state_dir")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Make a kept config version live in a running gateway (audited). The config file
    /// is not changed: its next change reloads it.
    Rollback {
        /// The version's id, or its first 6 or more characters (`rampart history`).
        version: String,
        /// The admin API's URL (token: RAMPART_ADMIN_TOKEN).
        #[arg(long)]
        admin: String,
    },
    /// Check a config file without serving: exit 0 when good, 1 with every problem listed.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Compare a config file with a running gateway's: exit 0 when identical, 1 when they
    /// differ (each difference printed), 2 on error. The admin token is read from the
    /// RAMPART_ADMIN_TOKEN environment variable.
    Diff {
        #[arg(long, short)]
        config: PathBuf,
        /// The admin API's URL, e.g. http://127.0.0.1:9901
        #[arg(long)]
        admin: String,
    },
    /// The security posture report: which controls a config (a file, or a running
    /// gateway's) has in place, globally and per route, as pass / warn / fail mapped to
    /// OWASP API Top 10 2023, NIST SP 800-53 and PCI DSS (docs/evidence.md).
    Posture {
        /// The config file to check.
        #[arg(long, short, conflicts_with = "admin")]
        config: Option<PathBuf>,
        /// A running gateway's admin API URL (token: RAMPART_ADMIN_TOKEN).
        #[arg(long)]
        admin: Option<String>,
        #[arg(long, value_enum, default_value_t = rampart::posture_cli::Format::Text)]
        format: rampart::posture_cli::Format,
        /// Write the report here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// List the passing checks too (text).
        #[arg(long)]
        all: bool,
        /// Exit 1 when a finding is at this level or worse (`warn` or `fail`).
        #[arg(long, value_name = "LEVEL", value_parser = ["warn", "fail"])]
        fail_on: Option<String>,
    },
    /// Policy tests as code: run the cases of CASES (YAML) through the config's compiled
    /// plan against an in-process upstream; each case reported, exit 1 on any failure
    /// (docs/evidence.md).
    Test {
        #[arg(long, short)]
        config: PathBuf,
        /// The cases file.
        cases: PathBuf,
    },
    /// OpenAPI documents.
    Openapi {
        #[command(subcommand)]
        command: OpenapiCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Consumers and API keys in the consumer store (docs/consumers.md).
    Consumers {
        /// The admin API's URL, e.g. http://127.0.0.1:9901 (token: RAMPART_ADMIN_TOKEN).
        #[arg(long, global = true)]
        admin: Option<String>,
        #[command(subcommand)]
        command: rampart::consumers_cli::ConsumersCommand,
    },
    /// The tamper-evident audit trail (docs/evidence.md).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Start the gateway in front of a built-in echo API and print example requests.
    Demo {
        /// Plain HTTP port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        /// HTTPS port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
    },
}

#[derive(Subcommand)]
enum OpenapiCommand {
    /// Print routes for an OpenAPI 3.0/3.1 document: one per path template with its
    /// methods, each validating its requests against the document. The document is read
    /// (and every schema compiled) as a route's `validate` would.
    Import {
        /// The document (YAML or JSON), as the config will name it.
        file: PathBuf,
        /// The upstream the routes send to.
        #[arg(long, default_value = "api")]
        upstream: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a trail: exit 0 with a summary when every entry chains and every
    /// checkpoint's signature holds; exit 1 naming the first bad line and why.
    Verify {
        /// The trail (`audit.path`); after rotations, its files oldest first
        /// (`audit.jsonl.2 audit.jsonl.1 audit.jsonl`): each must go on where the one
        /// before it ended.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The first file goes on from one rotated away and not given: its first entry
        /// is taken as given (otherwise a trail must start at entry 0, so a cut head
        /// shows).
        #[arg(long)]
        continues: bool,
        /// The public key (base64, as `keygen` prints it) that checkpoints are checked
        /// against; without it, only the chain is checked.
        #[arg(long)]
        public_key: Option<String>,
        /// The copy of the checkpoints (`audit.checkpoint_copy`), to catch a cut tail.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Make an Ed25519 signing key: the private key (base64 PKCS#8) into `--out`,
    /// readable by its owner only; the public key and its id on stdout.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a development CA and certificates signed by it (dev-ca.pem/.key,
    /// server.pem/.key, client.pem/.key) into a directory, e.g. where
    /// examples/tls.yaml expects them. Not for production.
    Dev {
        /// Directory to write into (created when missing).
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// DNS names or IP addresses of the server certificate (repeatable).
        #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key for a consumer: prints the key (once; it is stored nowhere) and the
    /// config entry with its peppered hash. The pepper is read through the config's
    /// `identity.api_keys.pepper` reference.
    New {
        /// The consumer the key is for.
        #[arg(long)]
        consumer: String,
        /// The config file whose pepper reference to use.
        #[arg(long, short)]
        config: PathBuf,
        /// Public id of the key (default: <consumer>-<key's public id>).
        #[arg(long)]
        id: Option<String>,
        /// Expiry, RFC 3339 (e.g. 2027-01-31T00:00:00Z), for rotation windows.
        #[arg(long)]
        expires: Option<String>,
    },
}

fn keys_new(
    consumer: &str,
    config: &std::path::Path,
    id: Option<String>,
    expires: Option<String>,
) -> anyhow::Result<()> {
    let spec = rampart_config::load_file(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pepper_ref = spec.identity.api_keys.pepper.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "identity.api_keys.pepper is not set in {}",
            config.display()
        )
    })?;
    let base = rampart::config_dir(config);
    let pepper = pepper_ref
        .resolve(base)
        .map_err(|e| anyhow::anyhow!("identity.api_keys.pepper: {e}"))?;
    if !spec.consumers.iter().any(|c| c.id == consumer) {
        eprintln!(
            "note: consumer {consumer:?} is not in {} yet; add it with the entry below",
            config.display()
        );
    }
    if let Some(e) = &expires {
        humantime::parse_rfc3339_weak(e)
            .map_err(|_| anyhow::anyhow!("--expires: write RFC 3339, e.g. 2027-01-31T00:00:00Z"))?;
    }
    let key = rampart_identity::api_key::generate(pepper.expose().as_bytes())
        .map_err(|e| anyhow::anyhow!(e))?;
    let id = id.unwrap_or_else(|| format!("{consumer}-{}", key.public_id));
    println!("key: {}", key.key);
    let mut entry = format!("{{ id: {id}, hash: \"{}\"", key.hash);
    if let Some(e) = expires {
        entry.push_str(&format!(", expires: {e}"));
    }
    entry.push_str(" }");
    println!("config: - {entry}");
    eprintln!("The key is shown once and stored nowhere. Add the config line under consumers[id={consumer}].api_keys and reload.");
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A closed or full stderr must never take the gateway down: by default the subscriber
    // reports its own write errors with `eprintln!`, which panics on a broken pipe.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    rampart_config::set_parse_limits(cli.max_config_bytes, cli.max_config_nodes);
    match cli.command {
        Command::Keys {
            command:
                KeysCommand::New {
                    consumer,
                    config,
                    id,
                    expires,
                },
        } => match keys_new(&consumer, &config, id, expires) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rampart keys new: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Certs {
            command: CertsCommand::Dev { out, hosts },
        } => match rampart::certs::write_dev_certs(&out, &hosts) {
            Ok(written) => {
                for f in &written.files {
                    println!("wrote {}", f.display());
                }
                eprintln!("Development certificates only: the CA key is beside the certificates it signs.");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rampart certs dev: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Openapi {
            command: OpenapiCommand::Import { file, upstream },
        } => match rampart::openapi_import::import(&file, &upstream) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::FAILURE
            }
        },
        Command::Validate { config } => match rampart::validate_file(&config) {
            Ok(plan) => {
                if let Ok(spec) = rampart_config::load_file(&config) {
                    for w in rampart_config::warnings(&spec) {
                        eprintln!("warning: {w}");
                    }
                }
                println!(
                    "{}: OK ({} listeners, {} routes, {} upstreams)",
                    config.display(),
                    plan.listeners.len(),
                    plan.routes.len(),
                    plan.upstreams.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{}: {} problem(s)", config.display(), errors.0.len());
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Run {
            config,
            fallback_to_last_good,
            state_dir,
        } => {
            init_logging();
            let start =
                match rampart::history::start(&config, fallback_to_last_good, state_dir.as_deref())
                {
                    Ok(s) => s,
                    Err(errors) => {
                        for e in &errors.0 {
                            eprintln!("{e}");
                        }
                        return ExitCode::FAILURE;
                    }
                };
            let gateway = match rampart::Gateway::start(start.plan) {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("cannot start: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let gateway = std::sync::Arc::new(gateway);
            rampart::history::went_live(&gateway, &start.text, start.action);
            let admin = match rampart::admin::start(gateway.clone(), Some(config.clone())) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("cannot start: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rampart::reload::run_until_stopped(&gateway, &config, || {
                for l in &gateway.plan().listeners {
                    if let Some(addr) = gateway.addr(&l.name) {
                        tracing::info!(listener = %l.name, %addr, tls = l.tls.is_some(), "listening");
                    }
                }
            });
            tracing::info!("shutting down");
            drop(admin);
            drop(gateway);
            ExitCode::SUCCESS
        }
        Command::Consumers { admin, command } => {
            match rampart::consumers_cli::run(command, admin.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rampart consumers: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Audit { command } => match rampart::audit_cli::run(command_of(command)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("rampart audit: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Posture {
            config,
            admin,
            format,
            out,
            all,
            fail_on,
        } => {
            let fail_on = fail_on.as_deref().and_then(rampart_posture::Status::parse);
            let result = rampart::posture_cli::report(config.as_deref(), admin.as_deref())
                .and_then(|r| {
                    rampart::posture_cli::print(&r, format, all, out.as_deref(), fail_on)
                });
            match result {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("rampart posture: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Test { config, cases } => match rampart::policy_test::run(&config, &cases) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("rampart test: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Backup {
            out,
            config,
            state_dir,
        } => {
            let r = rampart::backup::state_dir(config.as_deref(), state_dir.as_deref())
                .and_then(|dir| rampart::backup::backup(&dir, &out).map(|r| (dir, r)));
            match r {
                Ok((dir, (n, skipped))) => {
                    println!("wrote {}: {n} files of {}", out.display(), dir.display());
                    for s in skipped {
                        println!("not included: {s}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rampart backup: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Restore {
            archive,
            config,
            state_dir,
        } => {
            let r = rampart::backup::state_dir(config.as_deref(), state_dir.as_deref())
                .and_then(|dir| rampart::backup::restore(&archive, &dir).map(|r| (dir, r)));
            match r {
                Ok((dir, (n, aside))) => {
                    println!("restored {n} files into {}", dir.display());
                    if let Some(a) = aside {
                        println!("the previous directory is at {}", a.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rampart restore: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::History {
            admin,
            state_dir,
            json,
        } => match rampart::history_cli::history(admin.as_deref(), state_dir.as_deref(), json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rampart history: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Rollback { version, admin } => {
            match rampart::history_cli::rollback(&admin, &version) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rampart rollback: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Diff { config, admin } => {
            let token = std::env::var("RAMPART_ADMIN_TOKEN").ok();
            match rampart::diff::run(&config, &admin, token.as_deref()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("rampart diff: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo {
            http_port,
            https_port,
        } => {
            init_logging();
            match rampart::demo::run(http_port, https_port, wait_for_signal) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    });
}

fn command_of(c: AuditCommand) -> rampart::audit_cli::AuditCommand {
    match c {
        AuditCommand::Verify {
            files,
            continues,
            public_key,
            checkpoints,
        } => rampart::audit_cli::AuditCommand::Verify {
            files,
            public_key,
            checkpoints,
            continues,
        },
        AuditCommand::Keygen { out } => rampart::audit_cli::AuditCommand::Keygen { out },
    }
}
