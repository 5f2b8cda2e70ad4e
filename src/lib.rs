//! The `pushdial` binary's library: starts the api, the worker, or both in one process,
//! on an already-bound listener so that tests can bind `127.0.0.1:0`.

use std::sync::Arc;

use pushdial_core::push::{LoopbackGateway, PushGateway};
use pushdial_core::shutdown::Stop;
use pushdial_core::{Config, Ctx};

/// Which roles this process plays.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub api: bool,
    pub worker: bool,
}

/// The push gateway of this deployment (the loopback one until real providers exist).
pub fn push_gateway(config: &Config) -> Arc<dyn PushGateway> {
    Arc::new(LoopbackGateway::new(config.loopback_push_url.clone()))
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

/// Runs the given roles until `stop` fires. With the api role, `listener` must be bound.
pub async fn run(
    config: Config,
    listener: Option<std::net::TcpListener>,
    roles: Roles,
    stop: Stop,
) -> Result<(), String> {
    let ctx = Ctx::connect(config).await?;
    let worker = roles.worker.then(|| {
        let worker = pushdial_worker::Worker::new(ctx.clone(), push_gateway(&ctx.config));
        tokio::spawn(worker.run(stop.clone()))
    });
    if roles.api {
        let listener = listener.ok_or("the api role needs a listener")?;
        pushdial_api::run(listener, ctx.clone(), stop.clone())
            .await
            .map_err(|e| format!("server failed: {e}"))?;
    } else {
        stop.wait().await;
    }
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    ctx.db.close().await;
    Ok(())
}
