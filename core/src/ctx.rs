//! The handles every pushdial process shares: database pool, Redis, configuration and the
//! in-process job wake-up. Cheap to clone.

use std::sync::Arc;

use sqlx::PgPool;

use crate::presence::Presence;
use crate::queue::Notifier;
use crate::Config;

/// Shared handles of one process.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub db: PgPool,
    pub presence: Presence,
    pub config: Arc<Config>,
    pub notifier: Notifier,
    /// Identifies this process on the Redis instance channel and in job leases.
    pub instance_id: String,
    /// Seals and opens secrets stored in the database.
    pub secrets: crate::crypto::SecretBox,
    /// Where webhook deliveries may go.
    pub egress: crate::egress::EgressPolicy,
    /// The webhook retry schedule, parsed.
    pub webhook_schedule: Vec<std::time::Duration>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The configured sign-in providers.
    pub signin: Arc<crate::signin::Providers>,
    /// What secret keys resolve to (filled and followed by the api role).
    pub keys: Arc<crate::keycache::KeyCache>,
    /// Outbox jobs of offers handed over inline, deleted together (`calls::sweep_outbox`).
    pub handed_offers: Arc<crate::queue::Sweep>,
}

impl Ctx {
    /// Connects to Postgres and Redis as configured.
    pub async fn connect(config: Config) -> Result<Self, String> {
        let secrets = crate::crypto::SecretBox::from_config(&config)?;
        let egress = crate::egress::EgressPolicy::parse(&config.webhook_allow_subnets)
            .map_err(|e| format!("PUSHDIAL_WEBHOOK_ALLOW_SUBNETS: {e}"))?;
        let webhook_schedule = crate::webhooks::parse_schedule(&config.webhook_retry_schedule)
            .map_err(|e| format!("PUSHDIAL_WEBHOOK_RETRY_SCHEDULE: {e}"))?;
        let trusted_proxies = crate::config::parse_proxies(&config.trusted_proxies)
            .map_err(|e| format!("PUSHDIAL_TRUSTED_PROXIES: {e}"))?;
        let signin = Arc::new(crate::signin::Providers::from_config(&config)?);
        if config.webhook_timeout >= config.job_lease {
            // A delivery outliving its lease would be taken over and sent twice at once.
            return Err(format!(
                "PUSHDIAL_WEBHOOK_TIMEOUT ({:?}) must be shorter than PUSHDIAL_JOB_LEASE ({:?}): \
                 a delivery still waiting for its receiver when its lease ends would be taken \
                 over by another worker and sent twice; lower the timeout or lengthen the lease",
                config.webhook_timeout, config.job_lease
            ));
        }
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(config.db_max_connections)
            .min_connections(config.db_min_connections.min(config.db_max_connections))
            .acquire_timeout(std::time::Duration::from_secs(5))
            // No ping round trip before every acquire (sqlx still pings on release): a
            // connection that broke while idle fails its next query, which answers 503, and
            // is then closed rather than returned.
            .test_before_acquire(false)
            // …except for a while after a query found PostgreSQL gone (a restart, backends
            // terminated): then idle connections are likely dead too, and a ping costs less
            // than a request answered 503 for each of them.
            .before_acquire(|conn, _meta| {
                Box::pin(async move {
                    if !crate::error::database_suspect() {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(conn).await.is_ok())
                })
            })
            .connect(&config.database_url)
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to PostgreSQL at {}: {e}",
                    redact(&config.database_url)
                )
            })?;
        let presence = Presence::connect(
            &config.redis_url,
            &config.redis_prefix,
            config.presence_window,
        )
        .await
        .map_err(|e| {
            format!(
                "cannot connect to Redis at {}: {e}",
                redact(&config.redis_url)
            )
        })?;
        Ok(Self {
            db,
            presence,
            config: Arc::new(config),
            notifier: Notifier::default(),
            instance_id: crate::secrets::new_token("")[..16].to_owned(),
            secrets,
            egress,
            webhook_schedule,
            trusted_proxies,
            signin,
            keys: Default::default(),
            handed_offers: Default::default(),
        })
    }

    /// Wakes workers after jobs were committed: in this process at once, elsewhere through
    /// Redis. Both are hints (workers poll anyway), so a Redis failure is only logged.
    pub async fn wake_workers(&self) {
        use std::sync::atomic::Ordering;
        // `notify_one` keeps a permit when the worker is not waiting yet, so no wake-up is lost.
        self.notifier.local.notify_one();
        // Other processes hear a Redis publish, sent off the caller's path. At most one
        // publishing task runs per burst: a wake while one is owed rides on it, and every
        // wake is followed by a publish that starts after it.
        if self.notifier.remote_owed.swap(true, Ordering::AcqRel) {
            return;
        }
        let presence = self.presence.clone();
        let owed = self.notifier.remote_owed.clone();
        tokio::spawn(async move {
            loop {
                owed.store(false, Ordering::Release);
                if let Err(e) = presence.publish_jobs().await {
                    tracing::debug!(error = %e, "job wake-up not published");
                }
                if !owed.load(Ordering::Acquire) {
                    break;
                }
            }
        });
    }
}

/// Hides the password of a connection URL in messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
