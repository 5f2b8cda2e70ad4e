//! `/v1/push_credentials/{provider}`: an organization's own push credentials, so that
//! wake-ups come from its white-labelled app — an FCM service account, an APNs token key,
//! a VAPID key pair. The secret part is sealed at rest and never returned; the answers
//! show what identifies the credential and whether the provider currently refuses it.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use pushdial_core::access::Action;
use pushdial_core::crypto::Bound;
use pushdial_core::ids::{self, Kind};
use pushdial_core::push::apns::ApnsKey;
use pushdial_core::push::router::{self, PROVIDERS};
use pushdial_core::push::{fcm, webpush};
use pushdial_core::store::push_credentials::{self as store, CredentialRow};
use pushdial_core::{Ctx, Error};

use crate::auth::OrgAuth;
use crate::models::List;
use crate::problems;
use crate::Tags;

pub struct PushCredentialsApi;

/// A push credential, without its secret.
#[derive(Debug, Clone, Object)]
pub struct PushCredential {
    pub id: String,
    /// Always `push_credential`.
    pub object: String,
    /// `fcm`, `apns` or `webpush`.
    pub provider: String,
    /// What identifies it: `project_id` and `client_email` (FCM); `key_id`, `team_id`,
    /// `topic`, `sandbox` (APNs); `public_key` and `subject` (Web Push).
    pub metadata: serde_json::Value,
    /// Set while the provider refuses the credential (cleared by the next accepted push).
    pub failing_since: Option<DateTime<Utc>>,
    /// The provider's last refusal, e.g. `third_party_auth_error`.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<CredentialRow> for PushCredential {
    fn from(c: CredentialRow) -> Self {
        PushCredential {
            id: c.id,
            object: "push_credential".into(),
            provider: c.provider,
            metadata: c.metadata,
            failing_since: c.failing_since,
            last_error: c.last_error,
            last_error_at: c.last_error_at,
            created_at: c.created_at,
        }
    }
}

/// The credential of one provider; which fields apply depends on the provider.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SetPushCredential {
    /// FCM: the service account's JSON key file, as an object. Its `token_uri` is not used:
    /// tokens come from the deployment's token endpoint (Google's).
    pub service_account: Option<serde_json::Value>,
    /// APNs: the .p8 token key's PEM text.
    pub key: Option<String>,
    /// APNs: the key's id.
    pub key_id: Option<String>,
    /// APNs: the developer team id.
    pub team_id: Option<String>,
    /// APNs: the app's bundle id.
    pub topic: Option<String>,
    /// APNs: send through the sandbox (development builds).
    pub sandbox: Option<bool>,
    /// Web Push: the VAPID private key (raw P-256 key, base64url).
    pub private_key: Option<String>,
    /// Web Push: the contact in VAPID signatures (`mailto:` or `https:`).
    pub subject: Option<String>,
}

problems!(
    /// Errors of the push credential endpoints.
    PushCredentialError {
        400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound,
        413 => PayloadTooLarge, 422 => Unprocessable
    }
);

fn provider(name: &str) -> Result<&'static str, Error> {
    PROVIDERS
        .iter()
        .find(|p| **p == name)
        .copied()
        .ok_or(Error::NotFound("push credential"))
}

/// Checks the fields `provider` needs (and that no other provider's are given), and
/// returns (metadata, secret).
fn parse(provider: &str, b: SetPushCredential) -> Result<(serde_json::Value, String), Error> {
    let given: Vec<&str> = [
        ("service_account", b.service_account.is_some()),
        ("key", b.key.is_some()),
        ("key_id", b.key_id.is_some()),
        ("team_id", b.team_id.is_some()),
        ("topic", b.topic.is_some()),
        ("sandbox", b.sandbox.is_some()),
        ("private_key", b.private_key.is_some()),
        ("subject", b.subject.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    let allowed: &[&str] = match provider {
        "fcm" => &["service_account"],
        "apns" => &["key", "key_id", "team_id", "topic", "sandbox"],
        _ => &["private_key", "subject"],
    };
    if let Some(other) = given.iter().find(|g| !allowed.contains(g)) {
        return Err(Error::invalid(
            other,
            format!("not a field of {provider} credentials"),
        ));
    }
    let required = |v: Option<String>, name: &str| {
        v.filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::invalid(name, "required"))
    };
    match provider {
        "fcm" => {
            let account = b
                .service_account
                .filter(|v| v.is_object())
                .ok_or_else(|| Error::invalid("service_account", "required: the JSON key file"))?;
            let json = account.to_string();
            let metadata =
                fcm::describe(&json).map_err(|e| Error::invalid("service_account", e))?;
            Ok((metadata, json))
        }
        "apns" => {
            let key = ApnsKey {
                pem: required(b.key, "key")?,
                key_id: required(b.key_id, "key_id")?,
                team_id: required(b.team_id, "team_id")?,
                topic: required(b.topic, "topic")?,
                sandbox: b.sandbox.unwrap_or(false),
            };
            key.validate().map_err(|e| Error::invalid("key", e))?;
            Ok((key.describe(), key.pem))
        }
        _ => {
            let private = required(b.private_key, "private_key")?;
            let subject = required(b.subject, "subject")?;
            let key = webpush::VapidKey::new(&private, &subject)
                .map_err(|e| Error::invalid("private_key", e))?;
            Ok((key.describe(), private))
        }
    }
}

#[OpenApi(tag = "Tags::Organization")]
impl PushCredentialsApi {
    /// Set a push credential
    ///
    /// Stores the organization's own credential for `fcm`, `apns` or `webpush` (replacing
    /// the one it had); its devices' wake-ups are sent with it from then on. The secret
    /// part is encrypted at rest and never returned.
    #[oai(
        path = "/v1/push_credentials/:provider",
        method = "put",
        operation_id = "set_push_credential"
    )]
    async fn set(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// `fcm`, `apns` or `webpush`.
        provider: Path<String>,
        body: Json<SetPushCredential>,
    ) -> Result<Json<PushCredential>, PushCredentialError> {
        auth.require(Action::ManagePushCredentials)?;
        let provider = self::provider(&provider.0)?;
        let (metadata, secret) = parse(provider, body.0)?;
        // Built exactly as the router will from what is stored, so that an unusable key
        // (a private key that does not parse) is refused now, not at the first call.
        router::check(provider, &metadata, &secret, &ctx.config)
            .map_err(|e| Error::invalid("credential", e))?;
        let id = ids::new_id(Kind::PushCredential);
        let bound = Bound::PushCredential {
            org_id: &auth.org_id,
            provider,
            id: &id,
        };
        let sealed = ctx
            .secrets
            .seal(bound, secret.as_bytes())
            .map_err(Error::Internal)?;
        let mut conn = ctx.db.begin().await?;
        let row = store::upsert(&mut conn, &id, &auth.org_id, provider, &metadata, &sealed).await?;
        let mut entry = auth.audit("push_credential.uploaded", "push_credential", &row.id);
        entry.data = serde_json::json!({ "provider": provider, "metadata": metadata });
        pushdial_core::accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        tracing::info!(credential = %row.id, provider, "push credential set");
        Ok(Json(row.into()))
    }

    /// List push credentials
    #[oai(
        path = "/v1/push_credentials",
        method = "get",
        operation_id = "list_push_credentials"
    )]
    async fn list(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
    ) -> Result<Json<List<PushCredential>>, PushCredentialError> {
        auth.require(Action::ManagePushCredentials)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = store::list(&mut conn, &auth.org_id).await?;
        Ok(Json(List::new(
            rows.into_iter().map(PushCredential::from).collect(),
            false,
        )))
    }

    /// Retrieve a push credential
    #[oai(
        path = "/v1/push_credentials/:provider",
        method = "get",
        operation_id = "get_push_credential"
    )]
    async fn get(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        provider: Path<String>,
    ) -> Result<Json<PushCredential>, PushCredentialError> {
        auth.require(Action::ManagePushCredentials)?;
        let provider = self::provider(&provider.0)?;
        let mut conn = ctx.db.acquire().await?;
        let row = store::get(&mut conn, &auth.org_id, provider)
            .await?
            .ok_or(Error::NotFound("push credential"))?;
        Ok(Json(row.into()))
    }

    /// Delete a push credential
    ///
    /// The organization's devices fall back to the deployment's credential, if any.
    #[oai(
        path = "/v1/push_credentials/:provider",
        method = "delete",
        operation_id = "delete_push_credential"
    )]
    async fn delete(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        provider: Path<String>,
    ) -> Result<Json<PushCredential>, PushCredentialError> {
        auth.require(Action::ManagePushCredentials)?;
        let provider = self::provider(&provider.0)?;
        let mut conn = ctx.db.begin().await?;
        let row = store::get(&mut conn, &auth.org_id, provider)
            .await?
            .ok_or(Error::NotFound("push credential"))?;
        store::delete(&mut conn, &auth.org_id, provider).await?;
        let mut entry = auth.audit("push_credential.deleted", "push_credential", &row.id);
        entry.data = serde_json::json!({ "provider": provider });
        pushdial_core::accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        Ok(Json(row.into()))
    }
}
