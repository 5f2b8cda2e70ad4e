//! `/v1/agents` and `/v1/pairing_codes`: the people who take calls, with their presence,
//! and the codes that pair a phone to one of them. An agent can be renamed and deleted
//! (`pushdial_core::agents::delete`): a deleted one is 404 everywhere, its calls stay.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use pushdial_core::access::Action;
use pushdial_core::calls::{reachability, Reach};
use pushdial_core::ids::{self, Kind};
use pushdial_core::store::{agents as agent_store, devices as device_store, pairing};
use pushdial_core::{secrets, text, Ctx, Error};

use crate::auth::OrgAuth;
use crate::idempotency::Idempotency;
use crate::models::{Agent, List, Pagination};
use crate::problems;
use crate::Tags;

pub struct AgentsApi;

/// Creates an agent.
#[derive(Debug, Object, serde::Serialize)]
#[oai(deny_unknown_fields)]
pub struct CreateAgent {
    /// Display name, 1 to 200 characters.
    pub name: String,
    pub email: Option<String>,
}

/// Changes an agent. Fields left out keep their value.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateAgent {
    /// Display name, 1 to 200 characters.
    pub name: Option<String>,
}

/// Creates a pairing code for an agent's new phone.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreatePairingCode {
    /// The agent the phone will belong to. Optional with a console session: the signed-in
    /// member's own agent.
    pub agent_id: Option<String>,
}

/// A short-lived, single-use code that pairs one device to an agent.
#[derive(Debug, Object)]
pub struct PairingCode {
    /// Always `pairing_code`.
    pub object: String,
    /// Typed on the phone, or scanned as `pair_uri`.
    pub code: String,
    pub agent_id: String,
    pub expires_at: DateTime<Utc>,
    /// `pushdial://pair?server=…&token=…`, for a QR code: it carries `pairing_token`,
    /// never the short code.
    pub pair_uri: String,
    /// `pd_pair_…`: a one-time token of 256 bits for the QR code or a link, redeemed with
    /// `POST /agent/v1/pair {token}`; it pairs the same way as the code, and either one
    /// used spends both.
    pub pairing_token: String,
}

#[derive(ApiResponse)]
pub enum AgentCreated {
    #[oai(status = 201)]
    Created(Json<Agent>),
}

#[derive(ApiResponse)]
pub enum PairingCodeCreated {
    #[oai(status = 201)]
    Created(Json<PairingCode>),
}

problems!(
    /// Errors of agent creation.
    CreateAgentError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 409 => Conflict, 413 => PayloadTooLarge, 422 => UnprocessableEntity }
);
problems!(
    /// Errors of reading agents.
    ReadAgentError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound }
);
problems!(
    /// Errors of changing an agent.
    UpdateAgentError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 413 => PayloadTooLarge, 422 => UnprocessableEntity }
);
problems!(
    /// Errors of deleting an agent: 409 `agent_is_member` for a current member's own agent.
    DeleteAgentError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 409 => Conflict }
);
problems!(
    /// Errors of pairing-code creation.
    PairingCodeError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 413 => PayloadTooLarge }
);

/// Agents with their presence, computed from their devices in one query and one Redis read.
pub(crate) async fn with_presence(
    ctx: &Ctx,
    org_id: &str,
    rows: Vec<agent_store::AgentRow>,
) -> Result<Vec<Agent>, Error> {
    let agent_ids: Vec<String> = rows.iter().map(|a| a.id.clone()).collect();
    let mut conn = ctx.db.acquire().await?;
    let devices: Vec<_> = device_store::list(&mut conn, org_id, Some(&agent_ids))
        .await?
        .into_iter()
        .filter(|d| d.revoked_at.is_none())
        .collect();
    drop(conn);
    let reach: Vec<Reach> = reachability(ctx, &devices).await;
    Ok(rows
        .into_iter()
        .map(|a| {
            let mine: Vec<_> = devices
                .iter()
                .zip(reach.iter())
                .filter(|(d, _)| d.agent_id == a.id)
                .collect();
            Agent::new(a, &mine)
        })
        .collect())
}

#[OpenApi(tag = "Tags::Agents")]
impl AgentsApi {
    /// Create an agent
    #[oai(path = "/v1/agents", method = "post", operation_id = "create_agent")]
    async fn create(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// Makes retries safe for 24 hours: the same key and body return the first answer.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: Json<CreateAgent>,
    ) -> Result<AgentCreated, CreateAgentError> {
        auth.require(Action::CreateAgent)?;
        let org_id = &auth.org_id;
        let idem = Idempotency::new(idempotency_key.0, "POST /v1/agents", &body.0)?;
        if let Some(agent) = idem.replay(&mut *ctx.db.acquire().await?, org_id).await? {
            return Ok(AgentCreated::Created(Json(agent)));
        }
        let name = text::required("name", &body.0.name, 200)?;
        let email = text::optional("email", body.0.email.as_deref(), 254)?;
        if let Some(email) = email {
            let plausible = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !email.contains(' ')
            });
            if !plausible {
                return Err(Error::invalid("email", "must be an e-mail address").into());
            }
        }
        let mut tx = ctx.db.begin().await?;
        if let Some(agent) = idem.lock(&mut tx, org_id).await? {
            return Ok(AgentCreated::Created(Json(agent)));
        }
        let row =
            agent_store::insert(&mut tx, &ids::new_id(Kind::Agent), org_id, name, email).await?;
        let mut entry = auth.audit("agent.created", "agent", &row.id);
        entry.data = serde_json::json!({ "name": name });
        pushdial_core::accounts::audit(&mut tx, &entry).await?;
        let agent = Agent::new(row, &[]);
        idem.save(&mut tx, org_id, 201, &agent).await?;
        tx.commit().await?;
        Ok(AgentCreated::Created(Json(agent)))
    }

    /// List agents with their presence
    #[oai(path = "/v1/agents", method = "get", operation_id = "list_agents")]
    async fn list(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        pagination: Pagination,
    ) -> Result<Json<List<Agent>>, ReadAgentError> {
        let page = pagination.page(Kind::Agent)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = match auth.own_agent() {
            // An agent sees only themself.
            Some(own) => pushdial_core::store::Paged {
                data: agent_store::get(&mut conn, &auth.org_id, own)
                    .await?
                    .into_iter()
                    .filter(|a| {
                        page.starting_after
                            .as_deref()
                            .is_none_or(|s| a.id.as_str() < s)
                            && page
                                .ending_before
                                .as_deref()
                                .is_none_or(|e| a.id.as_str() > e)
                    })
                    .collect(),
                has_more: false,
            },
            None => agent_store::list(&mut conn, &auth.org_id, &page).await?,
        };
        drop(conn);
        let agents = with_presence(&ctx, &auth.org_id, rows.data).await?;
        Ok(Json(List::new(agents, rows.has_more)))
    }

    /// Retrieve an agent
    #[oai(
        path = "/v1/agents/:agent_id",
        method = "get",
        operation_id = "get_agent"
    )]
    async fn get(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        agent_id: Path<String>,
    ) -> Result<Json<Agent>, ReadAgentError> {
        let id = ids::parse(Kind::Agent, "agent_id", &agent_id.0)?;
        if !auth.sees_agent(&id) {
            return Err(Error::NotFound("agent").into());
        }
        let mut conn = ctx.db.acquire().await?;
        let row = agent_store::get(&mut conn, &auth.org_id, &id)
            .await?
            .ok_or(Error::NotFound("agent"))?;
        drop(conn);
        let mut agents = with_presence(&ctx, &auth.org_id, vec![row]).await?;
        agents
            .pop()
            .map(Json)
            .ok_or_else(|| Error::NotFound("agent").into())
    }

    /// Rename an agent
    ///
    /// Owners and admins. A deleted agent is 404.
    #[oai(
        path = "/v1/agents/:agent_id",
        method = "patch",
        operation_id = "update_agent"
    )]
    async fn update(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        agent_id: Path<String>,
        body: Json<UpdateAgent>,
    ) -> Result<Json<Agent>, UpdateAgentError> {
        auth.require(Action::RenameAgent)?;
        let id = ids::parse(Kind::Agent, "agent_id", &agent_id.0)?;
        let name = body
            .0
            .name
            .as_ref()
            .map(|n| text::required("name", n, 200))
            .transpose()?;
        let mut tx = ctx.db.begin().await?;
        let before = agent_store::lock(&mut tx, &auth.org_id, &id)
            .await?
            .ok_or(Error::NotFound("agent"))?;
        let row = match name {
            Some(name) if name != before.name => {
                let row = agent_store::rename(&mut tx, &auth.org_id, &id, name)
                    .await?
                    .ok_or(Error::NotFound("agent"))?;
                let mut entry = auth.audit("agent.renamed", "agent", &id);
                entry.data = serde_json::json!({ "from": before.name, "to": name });
                pushdial_core::accounts::audit(&mut tx, &entry).await?;
                row
            }
            _ => before,
        };
        tx.commit().await?;
        let mut agents = with_presence(&ctx, &auth.org_id, vec![row]).await?;
        agents
            .pop()
            .map(Json)
            .ok_or_else(|| Error::NotFound("agent").into())
    }

    /// Delete an agent
    ///
    /// Owners and admins. Its devices are revoked at once (their tokens refused, their
    /// sockets told `device.revoked` and closed), its unused pairing codes deleted, and it
    /// can no longer be paired to or called; its calls are kept and stay readable. Answers
    /// the agent as it was; deleting it again is 404. A current member's own agent cannot be
    /// deleted (409 `agent_is_member`): remove the member first.
    #[oai(
        path = "/v1/agents/:agent_id",
        method = "delete",
        operation_id = "delete_agent"
    )]
    async fn delete(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        agent_id: Path<String>,
    ) -> Result<Json<Agent>, DeleteAgentError> {
        auth.require(Action::DeleteAgent)?;
        let id = ids::parse(Kind::Agent, "agent_id", &agent_id.0)?;
        // Read before the transaction: reachability asks Redis, never inside one.
        let reach = crate::devices::agent_devices(&ctx, &auth.org_id, &id).await?;
        let mut tx = ctx.db.begin().await?;
        let deleted = pushdial_core::agents::delete(&mut tx, &auth.org_id, &id).await?;
        let mut entry = auth.audit("agent.deleted", "agent", &id);
        entry.data = serde_json::json!({
            "name": deleted.agent.name,
            "revoked_devices": deleted.devices,
            "deleted_pairing_codes": deleted.pairing_codes,
        });
        pushdial_core::accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        let revoked: Vec<(String, bool)> = deleted
            .devices
            .iter()
            .map(|d| (d.clone(), reach.iter().any(|(r, was)| r == d && *was)))
            .collect();
        crate::devices::after_revoke(&ctx, &auth.org_id, &revoked).await;
        Ok(Json(Agent::new(deleted.agent, &[])))
    }

    /// Create a pairing code for a new phone
    #[oai(
        path = "/v1/pairing_codes",
        method = "post",
        operation_id = "create_pairing_code",
        tag = "Tags::Devices"
    )]
    async fn create_pairing_code(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        body: Json<CreatePairingCode>,
    ) -> Result<PairingCodeCreated, PairingCodeError> {
        // A signed-in member pairs their own phone unless they name another agent: the
        // phone and the console then share the same user (the patent's S11/S12).
        let agent_id = match (&body.0.agent_id, auth.member_agent()) {
            (Some(a), _) => ids::parse(Kind::Agent, "agent_id", a)?,
            (None, Some(own)) => own.to_owned(),
            (None, None) => {
                return Err(Error::invalid("agent_id", "required with an API key").into())
            }
        };
        if !auth.sees_agent(&agent_id) {
            return Err(Error::NotFound("agent").into());
        }
        let mut conn = ctx.db.begin().await?;
        crate::auth::may_use_agent(&mut conn, &auth, &agent_id).await?;
        agent_store::get(&mut conn, &auth.org_id, &agent_id)
            .await?
            .ok_or(Error::NotFound("agent"))?;
        let code = secrets::new_pairing_code();
        let pairing_token = secrets::new_pairing_token();
        let ttl = chrono::Duration::from_std(ctx.config.pairing_code_ttl)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let expires_at = Utc::now() + ttl;
        pairing::insert(
            &mut conn,
            pairing::NewPairing {
                code_hash: &secrets::hash(&code),
                token_hash: &secrets::hash(&pairing_token),
                org_id: &auth.org_id,
                agent_id: &agent_id,
                expires_at,
            },
        )
        .await?;
        let mut entry = auth.audit("device.pairing_code_created", "agent", &agent_id);
        entry.data = serde_json::json!({ "expires_at": expires_at });
        pushdial_core::accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        let pair_uri = format!(
            "pushdial://pair?server={}&token={}",
            percent(&ctx.config.public_url()),
            pairing_token
        );
        Ok(PairingCodeCreated::Created(Json(PairingCode {
            object: "pairing_code".into(),
            code,
            agent_id,
            expires_at,
            pair_uri,
            pairing_token,
        })))
    }
}

/// Percent-encodes a URL for use as a query value.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
