//! `pushdial-agent`: the reference phone agent CLI. `pair` redeems a pairing
//! code and stores the device token; `run` stays online and dials offered
//! calls. All logic lives in `pushdial_sdk::agent`; this file is argument
//! parsing, logging setup and signal handling.

// Doc comments below are the `--help` text, written for a terminal, not rustdoc.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pushdial_sdk::agent::{self, AgentState, RunOptions};
use pushdial_sdk::{AgentClient, UpdateDevice};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// Reference pushdial phone agent: receives call offers from a pushdial
/// server and places the calls.
///
/// Pair once with a code from `POST /v1/pairing_codes`, then keep
/// `pushdial-agent run` running. Logs go to stderr (RUST_LOG sets the level,
/// default "info").
#[derive(Debug, Parser)]
#[command(name = "pushdial-agent", version)]
struct Cli {
    /// Where the pairing state (server, device id, device token) is stored.
    /// Default: $XDG_CONFIG_HOME/pushdial/agent.json or
    /// ~/.config/pushdial/agent.json. Written with mode 0600.
    #[arg(long, global = true, env = "PUSHDIAL_AGENT_STATE", value_name = "PATH")]
    state: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pair this machine as a device of an agent, store the device token, and
    /// print the new device id on stdout.
    Pair {
        /// Server base URL, e.g. https://pushdial.example.com.
        #[arg(long, value_name = "URL")]
        server: String,
        /// Pairing code, e.g. K7Q2-9XMD; or the QR code's token (pd_pair_…) or
        /// its pushdial://pair?… link.
        #[arg(long)]
        code: String,
        /// Device name shown to the owner. Default: the host name, or
        /// "pushdial-agent".
        #[arg(long)]
        name: Option<String>,
        /// Device platform reported to the server (android, ios, web or cli).
        #[arg(long, default_value = "cli")]
        platform: String,
    },
    /// Stay online and handle call offers until Ctrl-C / SIGTERM.
    ///
    /// For each offer: ack it, ask "Call <number>? [y/N]" on the terminal
    /// (unless --auto or the call says confirm=auto; always when it says
    /// confirm=required, a widget's call; without a terminal the answer is
    /// no), then dial and report the outcome.
    Run {
        /// Dial without asking, even for calls that request confirmation
        /// (except confirm=required: a widget's call is always asked).
        #[arg(long)]
        auto: bool,
        /// Shell command that places the call. It runs as
        /// `sh -c '<CMD>' pushdial-dial <number>`: the number is "$1" and also
        /// $PUSHDIAL_NUMBER (the call id is $PUSHDIAL_CALL_ID). Always quote
        /// it. Exit status 0 = call done (its run time is reported as the call
        /// duration); anything else = dial_failed. Examples:
        /// 'termux-telephony-call "$1"',
        /// 'adb shell am start -a android.intent.action.CALL -d "tel:$1"'.
        /// Default: print "Dialing <number>" and finish at once.
        #[arg(long, env = "PUSHDIAL_DIAL_COMMAND", value_name = "CMD")]
        dial_command: Option<String>,
        /// Run without a live socket, woken by Web Push as a phone asleep would be: listen
        /// on ADDR as the subscription's endpoint and register it as the device's push
        /// channel. The server needs a VAPID key, and must be allowed to reach ADDR
        /// (PUSHDIAL_WEBHOOK_ALLOW_SUBNETS for a private address).
        #[arg(long, value_name = "ADDR")]
        push_listen: Option<std::net::SocketAddr>,
        /// The endpoint's base URL as the server reaches it (default: http://ADDR).
        #[arg(long, value_name = "URL", requires = "push_listen")]
        push_url: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(real_main(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{}", chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let state_path = AgentState::resolve_path(cli.state.as_deref())?;
    match cli.command {
        Command::Pair {
            server,
            code,
            name,
            platform,
        } => {
            let name = name.unwrap_or_else(default_name);
            let (_client, paired) = AgentClient::pair(&server, &code, &name, &platform).await?;
            if state_path.exists() {
                warn!(path = %state_path.display(), "replacing the existing pairing state");
            }
            AgentState::from_pair(&server, &paired).save(&state_path)?;
            info!(device_id = %paired.id, agent_id = %paired.agent_id,
                path = %state_path.display(), "paired");
            println!("{}", paired.id);
            Ok(())
        }
        Command::Run {
            auto,
            dial_command,
            push_listen,
            push_url,
        } => {
            let state = AgentState::load(&state_path).map_err(|e| {
                anyhow::anyhow!("{e} (pair first: pushdial-agent pair --server URL --code CODE)")
            })?;
            let client = state.client()?;
            info!(device_id = %state.device_id, server = %state.server, "starting");
            announce(&client, auto).await;
            let opts = RunOptions {
                auto,
                dial_command,
                ..RunOptions::default()
            };
            match push_listen {
                Some(addr) => {
                    let receiver =
                        pushdial_sdk::webpush::WebPushReceiver::bind(addr, push_url.as_deref())
                            .await?;
                    agent::run_push_woken(client, opts, receiver, shutdown_signal()).await?;
                }
                None => agent::run(client, opts, shutdown_signal()).await?,
            }
            Ok(())
        }
    }
}

/// Best effort: tell the server which version runs and whether it auto-dials.
async fn announce(client: &AgentClient, auto: bool) {
    let update = UpdateDevice {
        app_version: Some(concat!("pushdial-agent/", env!("CARGO_PKG_VERSION")).to_owned()),
        auto_dial: Some(auto),
        ..UpdateDevice::default()
    };
    if let Err(e) = client.update_device(&update).await {
        warn!(error = %e.display_chain(), "could not update the device settings");
    }
}

/// `err` and its causes joined with ": ", skipping repeated messages.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        next = cause.source();
    }
    msg
}

/// The host name, or "pushdial-agent".
fn default_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "pushdial-agent".to_owned())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    info!("shutting down");
}
