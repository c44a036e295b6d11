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
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic with a config file (reloaded on SIGHUP and when the file changes).
    Run {
        #[arg(long, short)]
        config: PathBuf,
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
    match cli.command {
        Command::Validate { config } => match rampart::compile_file(&config) {
            Ok(plan) => {
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
        Command::Run { config } => {
            init_logging();
            let plan = match rampart::compile_file(&config) {
                Ok(p) => p,
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    return ExitCode::FAILURE;
                }
            };
            let gateway = match rampart::Gateway::start(plan) {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("cannot start: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let gateway = std::sync::Arc::new(gateway);
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
