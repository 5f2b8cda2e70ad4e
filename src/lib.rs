//! The `pushdial` binary's library: starts the api, the worker, or both in one process,
//! on an already-bound listener so that tests can bind `127.0.0.1:0`.

use std::sync::Arc;

use pushdial_core::push::{PushGateway, PushRouter};
use pushdial_core::shutdown::Stop;
use pushdial_core::{Config, Ctx};

/// Which roles this process plays.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub api: bool,
    pub worker: bool,
}

/// The push gateway of this deployment: FCM, APNs and Web Push with the configured (or
/// the organization's own) credentials, and the loopback channel of the local demo.
pub fn push_gateway(ctx: &Ctx) -> Result<Arc<dyn PushGateway>, String> {
    Ok(Arc::new(PushRouter::new(ctx)?))
}

/// Applies pending migrations.
pub async fn migrate(config: &Config) -> Result<(), String> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    pushdial_core::MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    pool.close().await;
    Ok(())
}

/// Runs the given roles until `stop` fires, on `listener`: the api, or for a worker-only
/// process its health checks and metrics.
///
/// Stopping is two-step. When `stop` fires (SIGTERM), `/readyz` fails at once while an api
/// keeps serving for `PUSHDIAL_SHUTDOWN_DRAIN`, so that load balancers take it out of
/// rotation first; then it stops accepting, lets in-flight requests finish within
/// `PUSHDIAL_SHUTDOWN_GRACE`, closes agent sockets with a reconnect hint, and the worker
/// finishes its jobs within the grace or hands their leases back.
pub async fn run(
    config: Config,
    listener: Option<std::net::TcpListener>,
    roles: Roles,
    stop: Stop,
) -> Result<(), String> {
    let ctx = Ctx::connect(config).await?;
    if roles.api {
        // libphonenumber's metadata loads, and its patterns compile, on first use (about
        // 70 ms): do it before the first call waits for it.
        tokio::task::spawn_blocking(pushdial_core::phone::warm_up)
            .await
            .map_err(|e| e.to_string())?;
    }
    let draining = pushdial_api::Draining(stop.clone());
    let (halt_trigger, halt) = pushdial_core::shutdown::channel();
    let drain = if roles.api {
        ctx.config.shutdown_drain
    } else {
        std::time::Duration::ZERO
    };
    let drainer = tokio::spawn(async move {
        stop.wait().await;
        if !drain.is_zero() {
            tracing::info!(
                ?drain,
                "draining: readiness fails, requests are still served"
            );
            tokio::time::sleep(drain).await;
        }
        halt_trigger.stop();
    });
    let push = push_gateway(&ctx)?;
    let worker = roles.worker.then(|| {
        let worker = pushdial_worker::Worker::new(ctx.clone(), push);
        tokio::spawn(worker.run(halt.clone()))
    });
    // An api's metrics (and health checks) on a listener of their own, kept off the
    // public one.
    let metrics = match ctx.config.metrics_listen {
        Some(addr) if roles.api => {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on PUSHDIAL_METRICS_LISTEN {addr}: {e}"))?;
            let (ctx, draining, halt) = (ctx.clone(), draining.clone(), halt.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = pushdial_api::run_ops(listener, ctx, draining, halt).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            }))
        }
        _ => None,
    };
    let served = match listener {
        Some(listener) if roles.api => {
            pushdial_api::run(listener, ctx.clone(), draining, halt.clone()).await
        }
        Some(listener) => {
            pushdial_api::run_ops(listener, ctx.clone(), draining, halt.clone()).await
        }
        None if roles.api => return Err("the api role needs a listener".into()),
        None => {
            halt.wait().await;
            Ok(())
        }
    };
    served.map_err(|e| format!("server failed: {e}"))?;
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    drainer.abort();
    ctx.db.close().await;
    Ok(())
}
