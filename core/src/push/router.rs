//! The push gateway of a deployment: picks the provider from the device's channel and the
//! credential from the device's organization (its own when it uploaded one, else the
//! deployment's from configuration), enforces the per-credential send rate, and records
//! the credential failing when the provider refuses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::apns::{ApnsKey, ApnsSender};
use super::fcm::FcmSender;
use super::webpush::{self, VapidKey};
use super::{LoopbackGateway, OfferPayload, PushGateway, PushOutcome, PushTarget};
use crate::store::push_credentials as store;
use crate::Ctx;

/// A ready sender for one credential.
pub enum Sender {
    Fcm(FcmSender),
    Apns(Box<ApnsSender>),
    WebPush(VapidKey),
}

/// The providers a device's push channel may name.
pub const PROVIDERS: [&str; 3] = ["fcm", "apns", "webpush"];

pub struct PushRouter {
    ctx: Ctx,
    loopback: LoopbackGateway,
    platform: HashMap<&'static str, Arc<Sender>>,
    /// Organizations' senders by credential id (a replaced credential has a new id).
    orgs: Mutex<HashMap<String, Arc<Sender>>>,
    /// For FCM and its token endpoint (fixed, configured hosts).
    http: reqwest::Client,
    /// For Web Push endpoints, which devices name: the egress policy applies.
    egress: reqwest::Client,
}

impl PushRouter {
    /// The deployment's gateway; fails on a configured credential that cannot be used, so
    /// a typo shows at start-up rather than at the first call.
    pub fn new(ctx: &Ctx) -> Result<Self, String> {
        let config = &ctx.config;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let mut platform: HashMap<&'static str, Arc<Sender>> = HashMap::new();
        if let Some(path) = &config.fcm_credentials {
            let json = std::fs::read_to_string(path)
                .map_err(|e| format!("PUSHDIAL_FCM_CREDENTIALS ({}): {e}", path.display()))?;
            let sender = FcmSender::new(&json, &config.fcm_base_url, http.clone(), None)
                .map_err(|e| format!("PUSHDIAL_FCM_CREDENTIALS: {e}"))?;
            platform.insert("fcm", Arc::new(Sender::Fcm(sender)));
        }
        if let Some(path) = &config.apns_key {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("PUSHDIAL_APNS_KEY ({}): {e}", path.display()))?;
            let need = |v: &Option<String>, name: &str| {
                v.clone()
                    .ok_or_else(|| format!("PUSHDIAL_APNS_KEY is set: {name} is required too"))
            };
            let key = ApnsKey {
                pem,
                key_id: need(&config.apns_key_id, "PUSHDIAL_APNS_KEY_ID")?,
                team_id: need(&config.apns_team_id, "PUSHDIAL_APNS_TEAM_ID")?,
                topic: need(&config.apns_topic, "PUSHDIAL_APNS_TOPIC")?,
                sandbox: config.apns_sandbox,
            };
            let sender = ApnsSender::new(&key).map_err(|e| format!("PUSHDIAL_APNS_KEY: {e}"))?;
            platform.insert("apns", Arc::new(Sender::Apns(Box::new(sender))));
        }
        if let Some(private) = &config.vapid_private_key {
            let key = VapidKey::new(private, &config.vapid_subject())
                .map_err(|e| format!("PUSHDIAL_VAPID_PRIVATE_KEY: {e}"))?;
            platform.insert("webpush", Arc::new(Sender::WebPush(key)));
        }
        Ok(Self {
            ctx: ctx.clone(),
            loopback: LoopbackGateway::new(config.loopback_push_url.clone()),
            platform,
            orgs: Mutex::new(HashMap::new()),
            http,
            egress: ctx.egress.client(std::time::Duration::from_secs(10)),
        })
    }

    /// The deployment's Web Push public key, if it has a VAPID key.
    pub fn platform_vapid_public_key(&self) -> Option<String> {
        match self.platform.get("webpush").map(|s| &**s) {
            Some(Sender::WebPush(key)) => Some(key.public_key().to_owned()),
            _ => None,
        }
    }

    /// The sender for `provider` in `org_id`, and the organization's credential id when it
    /// is the organization's own.
    async fn sender(
        &self,
        org_id: &str,
        provider: &str,
    ) -> Result<Option<(Arc<Sender>, Option<String>)>, String> {
        let mut conn = self.ctx.db.acquire().await.map_err(|e| e.to_string())?;
        let Some(id) = store::current_id(&mut conn, org_id, provider)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(self.platform.get(provider).map(|s| (s.clone(), None)));
        };
        if let Some(sender) = self.cached(&id) {
            return Ok(Some((sender, Some(id))));
        }
        let Some(row) = store::get(&mut conn, org_id, provider)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(self.platform.get(provider).map(|s| (s.clone(), None)));
        };
        drop(conn);
        let bound = crate::crypto::Bound::PushCredential {
            org_id: &row.org_id,
            provider: &row.provider,
            id: &row.id,
        };
        let secret = self
            .ctx
            .secrets
            .open(bound, &row.secret)
            .map_err(|e| e.to_string())?;
        let secret = String::from_utf8(secret).map_err(|e| e.to_string())?;
        let sender = Arc::new(build(
            &row.provider,
            &row.metadata,
            &secret,
            &self.ctx.config,
            &self.http,
        )?);
        let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        if orgs.len() > 10_000 {
            orgs.clear(); // replaced credentials linger otherwise; rebuilding is cheap
        }
        orgs.insert(row.id.clone(), sender.clone());
        Ok(Some((sender, Some(row.id))))
    }

    fn cached(&self, id: &str) -> Option<Arc<Sender>> {
        let orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        orgs.get(id).cloned()
    }
}

/// A sender from an organization's stored credential: its metadata and its opened secret.
pub fn build(
    provider: &str,
    metadata: &serde_json::Value,
    secret: &str,
    config: &crate::Config,
    http: &reqwest::Client,
) -> Result<Sender, String> {
    match provider {
        "fcm" => Ok(Sender::Fcm(FcmSender::new(
            secret,
            &config.fcm_base_url,
            http.clone(),
            Some(&config.fcm_token_uri),
        )?)),
        "apns" => {
            let text = |k: &str| metadata[k].as_str().unwrap_or_default().to_owned();
            Ok(Sender::Apns(Box::new(ApnsSender::new(&ApnsKey {
                pem: secret.to_owned(),
                key_id: text("key_id"),
                team_id: text("team_id"),
                topic: text("topic"),
                sandbox: metadata["sandbox"].as_bool().unwrap_or(false),
            })?)))
        }
        "webpush" => Ok(Sender::WebPush(VapidKey::new(
            secret,
            metadata["subject"].as_str().unwrap_or_default(),
        )?)),
        other => Err(format!("unknown push provider {other}")),
    }
}

/// Whether a stored credential would give a working sender (keys parse, fields fit).
pub fn check(
    provider: &str,
    metadata: &serde_json::Value,
    secret: &str,
    config: &crate::Config,
) -> Result<(), String> {
    build(provider, metadata, secret, config, &reqwest::Client::new()).map(|_| ())
}

#[async_trait::async_trait]
impl PushGateway for PushRouter {
    async fn send(&self, target: &PushTarget, payload: &OfferPayload) -> PushOutcome {
        if target.channel == "loopback" {
            return self.loopback.send(target, payload).await;
        }
        if !PROVIDERS.contains(&target.channel.as_str()) {
            return PushOutcome::Unsupported;
        }
        let (sender, credential) = match self.sender(&target.org_id, &target.channel).await {
            Ok(Some(found)) => found,
            Ok(None) => return PushOutcome::Unsupported,
            Err(e) => {
                tracing::warn!(error = %e, provider = %target.channel, "push credential not loaded");
                return PushOutcome::transient("credential_unavailable", None);
            }
        };
        // One credential's sends are limited across every worker (fails open without Redis).
        let key = credential
            .clone()
            .unwrap_or_else(|| format!("platform:{}", target.channel));
        let rate = self.ctx.config.limit_push_per_credential_per_second.max(1);
        let limit = crate::ratelimit::Limit {
            rate,
            period: std::time::Duration::from_secs(1),
            burst: rate,
        };
        if let Err(crate::Error::RateLimited { retry_after, .. }) =
            crate::limits::take(&self.ctx, "push_credential", &key, limit).await
        {
            return PushOutcome::transient("credential_rate_limited", Some(retry_after));
        }
        let outcome = match &*sender {
            Sender::Fcm(fcm) => fcm.send(&target.token, payload).await,
            Sender::Apns(apns) => apns.send(&target.token, payload).await,
            Sender::WebPush(key) => {
                webpush::send(&self.ctx.egress, &self.egress, key, &target.token, payload).await
            }
        };
        self.settle(outcome, credential).await
    }
}

impl PushRouter {
    /// Keeps the organization's credential status current: failing with the provider's
    /// reason, or working again after a success.
    async fn settle(&self, outcome: PushOutcome, credential: Option<String>) -> PushOutcome {
        let Some(id) = credential else {
            if let PushOutcome::CredentialFailed { reason, .. } = &outcome {
                tracing::error!(reason = %reason, "the deployment's push credential was refused");
            }
            return outcome;
        };
        let mut conn = match self.ctx.db.acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "push credential status not recorded");
                return outcome;
            }
        };
        let recorded = match &outcome {
            PushOutcome::CredentialFailed { reason, .. } => {
                tracing::warn!(credential = %id, reason = %reason, "push credential refused");
                store::mark_failing(&mut conn, &id, reason).await
            }
            PushOutcome::Accepted => store::mark_working(&mut conn, &id).await,
            _ => Ok(()),
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "push credential status not recorded");
        }
        match outcome {
            PushOutcome::CredentialFailed { reason, .. } => PushOutcome::CredentialFailed {
                credential: Some(id),
                reason,
            },
            other => other,
        }
    }
}
