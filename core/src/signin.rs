//! Sign-in through OAuth 2.0 / OpenID Connect providers: the authorization code flow with
//! PKCE (S256), a random `state` bound to the browser and used once, and — for OpenID
//! Connect — a `nonce` and a verified ID token (signature from the provider's JWKS, issuer,
//! audience, expiry, nonce). Providers come from the configuration:
//!
//! - `oidc`: any OpenID Connect issuer (`PUSHDIAL_OIDC_ISSUER`, discovered);
//! - `google`: OpenID Connect at `https://accounts.google.com`;
//! - `github`: OAuth 2.0 plus the REST API's `/user` (GitHub has no OpenID Connect for users).
//!
//! The flow's secrets (PKCE verifier, nonce) are sealed in the `sign_ins` row keyed by the
//! state's hash; the callback takes that row once, within ten minutes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

use crate::accounts::VerifiedIdentity;
use crate::store::accounts as store;
use crate::{secrets, Config, Error, Result};

/// How long a started sign-in may take.
pub const SIGN_IN_TTL: Duration = Duration::from_secs(600);
/// The cookie binding a started sign-in to the browser that started it: `__Host-pd_signin`
/// (which a sibling subdomain cannot set), or `pd_signin` on plain-http loopback.
pub fn state_cookie_name(config: &Config) -> &'static str {
    if config.insecure_cookies() {
        "pd_signin"
    } else {
        "__Host-pd_signin"
    }
}
/// How long discovered provider metadata (and its keys) is reused.
const METADATA_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
enum Protocol {
    Oidc { issuer: String },
    Github { web: String, api: String },
}

/// One configured provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// In URLs: `/auth/{id}/login`.
    pub id: &'static str,
    /// On the sign-in page.
    pub name: String,
    client_id: String,
    client_secret: Option<String>,
    protocol: Protocol,
}

/// The configured providers, with the HTTP client and discovery cache they share.
pub struct Providers {
    list: Vec<Provider>,
    http: reqwest::Client,
    discovered: Mutex<HashMap<&'static str, (Instant, CoreProviderMetadata)>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|p| p.id))
            .finish()
    }
}

/// The sealed secrets of a started sign-in.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    verifier: String,
    nonce: String,
}

/// A started sign-in: where to send the browser, and the state for its cookie.
pub struct Started {
    pub authorize_url: String,
    pub state: String,
}

/// A finished sign-in.
pub struct Finished {
    pub identity: VerifiedIdentity,
    pub return_to: Option<String>,
    /// For a link: the user, and the hash of the session that asked for it.
    pub link: Option<(String, Vec<u8>)>,
}

fn failed(message: impl Into<String>) -> Error {
    Error::Invalid {
        code: "sign_in_failed",
        message: message.into(),
        errors: vec![],
    }
}

fn provider_down(e: impl std::fmt::Display) -> Error {
    tracing::warn!(error = %e, "identity provider unreachable");
    Error::Unavailable {
        code: "identity_provider_unavailable",
        message: "the sign-in provider could not be reached; try again shortly".into(),
    }
}

impl Providers {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let mut list = Vec::new();
        let pair = |id: &Option<String>, secret: &Option<String>, name: &str| match (id, secret) {
            (Some(i), s) if !i.is_empty() => Ok(Some((i.clone(), s.clone()))),
            (None, Some(_)) => Err(format!(
                "{name}: a client secret is set without a client id"
            )),
            _ => Ok(None),
        };
        if let Some(issuer) = config.oidc_issuer.as_ref().filter(|i| !i.is_empty()) {
            let (client_id, client_secret) = pair(
                &config.oidc_client_id,
                &config.oidc_client_secret,
                "PUSHDIAL_OIDC",
            )?
            .ok_or("PUSHDIAL_OIDC_ISSUER is set but PUSHDIAL_OIDC_CLIENT_ID is not")?;
            IssuerUrl::new(issuer.clone()).map_err(|e| format!("PUSHDIAL_OIDC_ISSUER: {e}"))?;
            list.push(Provider {
                id: "oidc",
                name: config.oidc_name.clone(),
                client_id,
                client_secret,
                protocol: Protocol::Oidc {
                    issuer: issuer.clone(),
                },
            });
        }
        if let Some((client_id, client_secret)) = pair(
            &config.google_client_id,
            &config.google_client_secret,
            "PUSHDIAL_GOOGLE",
        )? {
            list.push(Provider {
                id: "google",
                name: "Google".into(),
                client_id,
                client_secret,
                protocol: Protocol::Oidc {
                    issuer: config.google_issuer.clone(),
                },
            });
        }
        if let Some((client_id, client_secret)) = pair(
            &config.github_client_id,
            &config.github_client_secret,
            "PUSHDIAL_GITHUB",
        )? {
            list.push(Provider {
                id: "github",
                name: "GitHub".into(),
                client_id,
                client_secret,
                protocol: Protocol::Github {
                    web: config.github_url.trim_end_matches('/').to_owned(),
                    api: config.github_api_url.trim_end_matches('/').to_owned(),
                },
            });
        }
        // Following redirects from a provider's endpoints would open the server to SSRF.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("pushdial/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            list,
            http,
            discovered: Mutex::new(HashMap::new()),
        })
    }

    /// The configured providers, in a stable order.
    pub fn list(&self) -> &[Provider] {
        &self.list
    }

    fn get(&self, id: &str) -> Result<&Provider> {
        self.list
            .iter()
            .find(|p| p.id == id)
            .ok_or(Error::NotFound("sign-in provider"))
    }

    fn redirect_url(config: &Config, provider: &str) -> Result<RedirectUrl> {
        RedirectUrl::new(format!("{}/auth/{provider}/callback", config.public_url()))
            .map_err(|e| Error::Internal(format!("redirect URL: {e}")))
    }

    /// The provider's discovery document (cached), or after `refresh` a fresh copy.
    async fn metadata(
        &self,
        provider: &Provider,
        issuer: &str,
        refresh: bool,
    ) -> Result<CoreProviderMetadata> {
        if !refresh {
            let cache = self.discovered.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, m)) = cache.get(provider.id) {
                if at.elapsed() < METADATA_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let issuer =
            IssuerUrl::new(issuer.to_owned()).map_err(|e| Error::Internal(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(provider_down)?;
        self.discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(provider.id, (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    /// Starts a sign-in: records it and returns the provider's authorization URL.
    pub async fn start(
        &self,
        config: &Config,
        db: &sqlx::PgPool,
        secrets: &crate::crypto::SecretBox,
        provider_id: &str,
        return_to: Option<&str>,
        link: Option<(&str, &[u8])>,
    ) -> Result<Started> {
        let provider = self.get(provider_id)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random();
        let nonce = Nonce::new_random();
        let redirect = Self::redirect_url(config, provider.id)?;
        let url = match &provider.protocol {
            Protocol::Oidc { issuer } => {
                let metadata = self.metadata(provider, issuer, false).await?;
                let client = CoreClient::from_provider_metadata(
                    metadata,
                    ClientId::new(provider.client_id.clone()),
                    provider.client_secret.clone().map(ClientSecret::new),
                )
                .set_redirect_uri(redirect);
                let (url, _, _) = client
                    .authorize_url(
                        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                        {
                            let state = state.clone();
                            move || state
                        },
                        {
                            let nonce = nonce.clone();
                            move || nonce
                        },
                    )
                    .add_scope(Scope::new("email".into()))
                    .add_scope(Scope::new("profile".into()))
                    .set_pkce_challenge(challenge)
                    .url();
                url
            }
            Protocol::Github { web, .. } => {
                let client = github_client(provider, web, redirect)?;
                let (url, _) = client
                    .authorize_url({
                        let state = state.clone();
                        move || state
                    })
                    .add_scope(openidconnect::Scope::new("read:user".into()))
                    .add_scope(openidconnect::Scope::new("user:email".into()))
                    .set_pkce_challenge(challenge)
                    .url();
                url
            }
        };
        let pending = Pending {
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
        };
        let state_hash = secrets::hash(state.secret());
        let bound = crate::crypto::Bound::SignIn {
            state_hash: &state_hash,
            provider: provider.id,
        };
        let sealed = secrets
            .seal(
                bound,
                &serde_json::to_vec(&pending).map_err(|e| Error::Internal(e.to_string()))?,
            )
            .map_err(Error::Internal)?;
        let mut conn = db.acquire().await?;
        store::insert_sign_in(
            &mut conn,
            &state_hash,
            provider.id,
            &sealed,
            return_to,
            link,
        )
        .await?;
        Ok(Started {
            authorize_url: url.to_string(),
            state: state.secret().clone(),
        })
    }

    /// Finishes a sign-in at the callback: `state` from the query must equal the one in the
    /// browser's cookie and name a pending sign-in of this provider; the code is exchanged
    /// with the PKCE verifier, and the identity verified.
    pub async fn finish(
        &self,
        config: &Config,
        db: &sqlx::PgPool,
        secrets: &crate::crypto::SecretBox,
        provider_id: &str,
        callback: &Callback,
        cookie_state: Option<&str>,
    ) -> Result<Finished> {
        let provider = self.get(provider_id)?;
        if let Some(error) = &callback.error {
            return Err(failed(format!(
                "the provider refused the sign-in: {error}{}",
                callback
                    .error_description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )));
        }
        let (Some(code), Some(state)) = (&callback.code, &callback.state) else {
            return Err(failed("the callback carries no code or state"));
        };
        let bound = cookie_state
            .map(|c| secrets::hash(c) == secrets::hash(state))
            .unwrap_or(false);
        if !bound {
            return Err(failed(
                "this sign-in was not started in this browser (state mismatch); start again",
            ));
        }
        let mut conn = db.acquire().await?;
        let state_hash = secrets::hash(state);
        let row = store::take_sign_in(&mut conn, &state_hash, SIGN_IN_TTL.as_secs_f64())
            .await?
            .ok_or_else(|| failed("this sign-in was already used or has expired; start again"))?;
        drop(conn);
        if row.provider != provider.id {
            return Err(failed("this sign-in was started with another provider"));
        }
        let bound = crate::crypto::Bound::SignIn {
            state_hash: &state_hash,
            provider: &row.provider,
        };
        let pending: Pending = secrets
            .open(bound, &row.secrets)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(|| Error::Internal("unreadable sign-in secrets".into()))?;
        let redirect = Self::redirect_url(config, provider.id)?;
        let code = AuthorizationCode::new(code.clone());
        let verifier = PkceCodeVerifier::new(pending.verifier);
        let identity = match &provider.protocol {
            Protocol::Oidc { issuer } => {
                // RFC 9207: a provider naming itself must name the one we asked.
                if let Some(iss) = &callback.iss {
                    if iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
                        return Err(failed("the callback names another issuer"));
                    }
                }
                let metadata = self.metadata(provider, issuer, false).await?;
                let client = CoreClient::from_provider_metadata(
                    metadata,
                    ClientId::new(provider.client_id.clone()),
                    provider.client_secret.clone().map(ClientSecret::new),
                )
                .set_redirect_uri(redirect);
                let token = client
                    .exchange_code(code)
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(token_error)?;
                let id_token = token
                    .id_token()
                    .ok_or_else(|| failed("the provider returned no ID token"))?;
                let nonce = Nonce::new(pending.nonce);
                let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
                    Ok(c) => c.clone(),
                    Err(e) => {
                        // Keys may have rotated since discovery: fetch them once more.
                        let metadata = self.metadata(provider, issuer, true).await?;
                        let client = CoreClient::from_provider_metadata(
                            metadata,
                            ClientId::new(provider.client_id.clone()),
                            provider.client_secret.clone().map(ClientSecret::new),
                        );
                        let verifier = client.id_token_verifier();
                        let claims = id_token
                            .claims(&verifier, &nonce)
                            .map_err(|_| failed(format!("the ID token is not valid: {e}")))?
                            .clone();
                        claims
                    }
                };
                let email = claims
                    .email()
                    .filter(|_| claims.email_verified().unwrap_or(false))
                    .map(|e| e.as_str().to_owned());
                let name = claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.as_str().to_owned());
                VerifiedIdentity {
                    provider: provider.id.to_owned(),
                    issuer: claims.issuer().as_str().to_owned(),
                    subject: claims.subject().as_str().to_owned(),
                    email,
                    name,
                }
            }
            Protocol::Github { web, api } => {
                let client = github_client(provider, web, redirect)?;
                let token = client
                    .exchange_code(code)
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(token_error)?;
                use oauth2::TokenResponse as _;
                self.github_user(web, api, token.access_token().secret())
                    .await?
            }
        };
        Ok(Finished {
            identity,
            return_to: row.return_to,
            link: row.link_user_id.zip(row.link_session_hash),
        })
    }

    /// The GitHub user behind an access token (`GET /user`; the e-mail only when public or
    /// verified through `/user/emails`).
    async fn github_user(&self, web: &str, api: &str, token: &str) -> Result<VerifiedIdentity> {
        #[derive(serde::Deserialize)]
        struct User {
            id: u64,
            login: String,
            name: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Email {
            email: String,
            primary: bool,
            verified: bool,
        }
        let get = |path: &str| {
            self.http
                .get(format!("{api}{path}"))
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .send()
        };
        let response = get("/user").await.map_err(provider_down)?;
        if !response.status().is_success() {
            return Err(failed(format!(
                "GitHub refused the access token ({})",
                response.status()
            )));
        }
        let user: User = response
            .json()
            .await
            .map_err(|e| failed(format!("GitHub's /user answer is not readable: {e}")))?;
        let email = match get("/user/emails").await {
            Ok(r) if r.status().is_success() => r
                .json::<Vec<Email>>()
                .await
                .ok()
                .and_then(|list| list.into_iter().find(|e| e.primary && e.verified))
                .map(|e| e.email),
            _ => None,
        };
        Ok(VerifiedIdentity {
            provider: "github".into(),
            issuer: web.to_owned(),
            subject: user.id.to_string(),
            email,
            name: user.name.or(Some(user.login)),
        })
    }
}

fn github_client(
    provider: &Provider,
    web: &str,
    redirect: RedirectUrl,
) -> Result<
    oauth2::basic::BasicClient<
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
> {
    let bad = |e: oauth2::url::ParseError| Error::Internal(format!("PUSHDIAL_GITHUB_URL: {e}"));
    let mut client =
        oauth2::basic::BasicClient::new(oauth2::ClientId::new(provider.client_id.clone()))
            .set_auth_uri(
                oauth2::AuthUrl::new(format!("{web}/login/oauth/authorize")).map_err(bad)?,
            )
            .set_token_uri(
                oauth2::TokenUrl::new(format!("{web}/login/oauth/access_token")).map_err(bad)?,
            )
            .set_redirect_uri(redirect);
    if let Some(secret) = &provider.client_secret {
        client = client.set_client_secret(oauth2::ClientSecret::new(secret.clone()));
    }
    Ok(client)
}

/// A failed code exchange: the provider said no (a used or wrong code: 400), or could not
/// be reached (503).
fn token_error<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    e: oauth2::RequestTokenError<RE, T>,
) -> Error {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => {
            failed(format!("the provider refused the code: {r}"))
        }
        oauth2::RequestTokenError::Request(e) => provider_down(e),
        other => failed(format!(
            "the provider's token answer is not usable: {other}"
        )),
    }
}

/// The query of a provider's redirect back to us.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A safe place to return to after sign-in: a path on this deployment (never another
/// host, never `//host` or `/\host`).
pub fn safe_return_to(path: Option<&str>) -> Option<String> {
    let p = path?.trim();
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && p.len() <= 512
        && !p.chars().any(|c| c.is_control());
    ok.then(|| p.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_deployment() {
        assert_eq!(
            safe_return_to(Some("/console/calls")),
            Some("/console/calls".into())
        );
        assert_eq!(safe_return_to(Some("//evil.example/")), None);
        assert_eq!(safe_return_to(Some("/\\evil.example")), None);
        assert_eq!(safe_return_to(Some("https://evil.example/")), None);
        assert_eq!(safe_return_to(Some("/a\nb")), None);
        assert_eq!(safe_return_to(None), None);
    }
}
