//! `pushdial`: one binary for every role. `serve` runs api and worker in one process (the
//! local default); `api` and `worker` run one role each (production); `migrate` applies
//! migrations; `admin create-org` bootstraps an organization; `admin rotate-encryption-key`
//! re-seals stored secrets with a new key.

use clap::{Parser, Subcommand};

use pushdial::Roles;
use pushdial_core::Config;

// mimalloc rather than glibc's allocator, for speed: under load glibc's malloc and free
// were about a tenth of the api's CPU (perf, 2-core development machine).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Click-to-call through the caller's own phone.
///
/// Every option can be given as an environment variable (shown in brackets).
#[derive(Parser)]
#[command(name = "pushdial", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run the api and the worker in one process, migrating first (local default).
    Serve,
    /// Run the HTTP api only.
    Api,
    /// Run the job worker only.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an organization and print `{"org_id", "secret_key", "publishable_key"}` as JSON.
    CreateOrg {
        /// The organization's name.
        #[arg(long)]
        name: String,
        /// Its country (ISO 3166 alpha-2): the only one its calls may reach until it opens more.
        #[arg(long, default_value = "US")]
        country: String,
    },
    /// Generate a VAPID key pair for Web Push and print `{"private_key", "public_key"}`;
    /// set the private key as PUSHDIAL_VAPID_PRIVATE_KEY.
    VapidKeys,
    /// Re-seal every stored secret (webhook signing secrets, push credentials, pending
    /// sign-ins) with PUSHDIAL_ENCRYPTION_KEY, opening them with it or with a key of
    /// PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS; prints the counts per kind as JSON. Safe to run
    /// again (values already sealed with the current key are left alone) and while the
    /// deployment runs with both keys configured.
    RotateEncryptionKey {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
    /// Set an organization's plan limits (0 returns a limit to the deployment default).
    SetLimits {
        /// The organization's id (org_…).
        #[arg(long)]
        org: String,
        /// Public-API requests per second, per organization and per key.
        #[arg(long)]
        api_per_second: Option<u32>,
        /// Calls created per minute.
        #[arg(long)]
        calls_per_minute: Option<u32>,
        /// Webhook endpoints the organization may have.
        #[arg(long)]
        webhook_endpoints: Option<u32>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve | Command::Api | Command::Worker) {
        // Before anything else runs (logging, migrations): one line, and no server that
        // would seal secrets with the public development key.
        if let Err(e) = pushdial_core::crypto::check_config(&cli.config) {
            eprintln!("pushdial: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let telemetry = match pushdial_core::telemetry::init(&cli.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pushdial: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = run(cli).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("pushdial: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = cli.config;
    let roles = match cli.command {
        Command::Migrate => return pushdial::migrate(&config).await,
        Command::Admin {
            command: AdminCommand::CreateOrg { name, country },
        } => return create_org(&config, &name, &country).await,
        Command::Admin {
            command: AdminCommand::VapidKeys,
        } => {
            let (private_key, public_key) = pushdial_core::push::webpush::VapidKey::generate();
            println!(
                "{}",
                serde_json::json!({ "private_key": private_key, "public_key": public_key })
            );
            return Ok(());
        }
        Command::Admin {
            command: AdminCommand::RotateEncryptionKey { batch },
        } => return rotate_encryption_key(&config, batch).await,
        Command::Admin {
            command:
                AdminCommand::SetLimits {
                    org,
                    api_per_second,
                    calls_per_minute,
                    webhook_endpoints,
                },
        } => {
            let limits = Limits {
                api_per_second,
                calls_per_minute,
                webhook_endpoints,
            };
            return set_limits(&config, &org, limits).await;
        }
        Command::Serve => {
            pushdial::migrate(&config).await?;
            Roles {
                api: true,
                worker: true,
            }
        }
        Command::Api => Roles {
            api: true,
            worker: false,
        },
        Command::Worker => Roles {
            api: false,
            worker: true,
        },
    };
    // The api serves everything here; a worker-only process its health checks and metrics.
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(listen = %config.listen, public_url = %config.public_url(), api = roles.api, worker = roles.worker, "listening");
    let (trigger, stop) = pushdial_core::shutdown::channel();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        trigger.stop();
        // A second signal stops at once.
        wait_for_signal().await;
        std::process::exit(130);
    });
    pushdial::run(config, Some(listener), roles, stop).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn create_org(config: &Config, name: &str, country: &str) -> Result<(), String> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    let org = pushdial_core::tenants::create_org(&mut conn, name, country)
        .await
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&org).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

async fn rotate_encryption_key(config: &Config, batch: i64) -> Result<(), String> {
    if config
        .encryption_key
        .as_deref()
        .is_none_or(|k| k.trim().is_empty())
    {
        return Err(
            "set PUSHDIAL_ENCRYPTION_KEY to the new key (and the old ones in PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS)"
                .into(),
        );
    }
    let secrets = pushdial_core::crypto::SecretBox::from_config(config)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let report = pushdial_core::crypto::rotation::rotate(&pool, &secrets, batch).await?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    match report.unreadable() {
        0 => Ok(()),
        n => Err(format!(
            "{n} sealed value(s) opened with no configured key and were left as they were: \
             add the key they were sealed with to PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS and run again"
        )),
    }
}

/// The plan limits `admin set-limits` was given (0 returns one to the default).
struct Limits {
    api_per_second: Option<u32>,
    calls_per_minute: Option<u32>,
    webhook_endpoints: Option<u32>,
}

async fn set_limits(config: &Config, org: &str, limits: Limits) -> Result<(), String> {
    if limits.api_per_second.is_none()
        && limits.calls_per_minute.is_none()
        && limits.webhook_endpoints.is_none()
    {
        return Err("give --api-per-second, --calls-per-minute and/or --webhook-endpoints".into());
    }
    let to_limit = |v: Option<u32>| -> Result<Option<Option<i32>>, String> {
        v.map(|n| match n {
            0 => Ok(None),
            n => i32::try_from(n)
                .map(Some)
                .map_err(|_| format!("{n} is too large")),
        })
        .transpose()
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    let plan = pushdial_core::store::orgs::PlanLimits {
        api_per_second: to_limit(limits.api_per_second)?,
        calls_per_minute: to_limit(limits.calls_per_minute)?,
        webhook_endpoints: to_limit(limits.webhook_endpoints)?,
    };
    let found = pushdial_core::store::orgs::set_limits(&mut conn, org, plan)
        .await
        .map_err(|e| e.to_string())?;
    if !found {
        return Err(format!("no organization {org}"));
    }
    println!(
        "{}",
        serde_json::json!({
            "org_id": org,
            "api_per_second": limits.api_per_second,
            "calls_per_minute": limits.calls_per_minute,
            "webhook_endpoints": limits.webhook_endpoints,
        })
    );
    Ok(())
}
