//! The objects of the public and agent APIs, and their conversions from store rows.
//! Names and fields follow DESIGN §5; they may grow, they do not change.

use chrono::{DateTime, Utc};
use poem_openapi::param::Query;
use poem_openapi::registry::{MetaParamIn, MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use poem_openapi::{Enum, Object};
use pushdial_core::calls::Reach;
use pushdial_core::store::agents::AgentRow;
use pushdial_core::store::calls::EventRow;
use pushdial_core::store::devices::DeviceRow;
use pushdial_core::store::{Page, Paged};
use pushdial_core::{ids, Error};

/// How an agent or device can be reached now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// A live socket.
    Online,
    /// No socket, but a fresh push channel.
    Push,
    /// Not reachable.
    Offline,
}

impl From<&Reach> for Presence {
    fn from(r: &Reach) -> Self {
        match r {
            Reach::Live(_) => Presence::Online,
            Reach::Push => Presence::Push,
            Reach::Offline => Presence::Offline,
        }
    }
}

/// A member of the organization who takes calls on their devices.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct Agent {
    pub id: String,
    /// Always `agent`.
    pub object: String,
    pub name: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Whether a call to this agent can be placed now (claim step S13).
    pub reachable: bool,
    /// The best presence among the agent's devices.
    pub presence: Presence,
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl Agent {
    pub fn new(row: AgentRow, devices: &[(&DeviceRow, &Reach)]) -> Self {
        let presence = devices
            .iter()
            .map(|(_, r)| Presence::from(*r))
            .min_by_key(|p| *p as u8)
            .unwrap_or(Presence::Offline);
        Agent {
            id: row.id,
            object: "agent".into(),
            name: row.name,
            email: row.email,
            created_at: row.created_at,
            reachable: presence != Presence::Offline,
            presence,
            last_seen_at: devices
                .iter()
                .filter_map(|(d, _)| d.stream_seen_at.max(d.last_seen_at))
                .max(),
        }
    }
}

/// A phone (or reference agent) paired to an agent.
#[derive(Debug, Clone, Object)]
pub struct Device {
    pub id: String,
    /// Always `device`.
    pub object: String,
    pub agent_id: String,
    pub name: String,
    pub platform: String,
    pub push_channel: Option<String>,
    pub app_version: Option<String>,
    pub capabilities: Vec<String>,
    /// The device dials without asking its user.
    pub auto_dial: bool,
    pub reachable: bool,
    pub presence: Presence,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Device {
    pub fn new(row: DeviceRow, reach: &Reach) -> Self {
        Device {
            id: row.id,
            object: "device".into(),
            agent_id: row.agent_id,
            name: row.name,
            platform: row.platform,
            push_channel: row.push_channel,
            app_version: row.app_version,
            capabilities: row.capabilities,
            auto_dial: row.auto_dial,
            reachable: reach.is_reachable(),
            presence: reach.into(),
            last_seen_at: row.stream_seen_at.max(row.last_seen_at),
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A call placed through an agent's phone: the protocol crate's, the same shape as the
/// `data` of `call.*` webhooks and as the SDK decodes.
pub use pushdial_protocol::Call;

/// One transition of a call.
#[derive(Debug, Clone, Object)]
pub struct CallEvent {
    pub id: String,
    /// Always `call_event`.
    pub object: String,
    pub call_id: String,
    /// `status`: the call entered `status`. `push`: a push provider answered a wake-up of
    /// `device_id`; `status` is the result (`accepted`, `rejected`, `failed`,
    /// `credential_failed`, `unsupported`, or `egress_refused` when the egress policy
    /// refused the device's endpoint and nothing was sent) and `reason` the provider's
    /// reason (for `egress_refused`, the policy's).
    pub kind: String,
    pub status: String,
    /// `false` when the state was not reported but inferred from a later one.
    pub observed: bool,
    pub reason: Option<String>,
    pub device_id: Option<String>,
    /// For `push` entries: `fcm`, `apns`, `webpush` or `loopback`.
    pub provider: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<EventRow> for CallEvent {
    fn from(e: EventRow) -> Self {
        CallEvent {
            id: e.id,
            object: "call_event".into(),
            call_id: e.call_id,
            kind: e.kind,
            status: e.status,
            observed: e.observed,
            reason: e.reason,
            device_id: e.device_id,
            provider: e.provider,
            created_at: e.created_at,
        }
    }
}

/// A page of a list, newest first.
#[derive(Debug, Clone, Object)]
pub struct List<T: poem_openapi::types::ParseFromJSON + poem_openapi::types::ToJSON> {
    /// Always `list`.
    pub object: String,
    pub data: Vec<T>,
    /// More items exist beyond this page in the direction read.
    pub has_more: bool,
}

impl<T: poem_openapi::types::ParseFromJSON + poem_openapi::types::ToJSON> List<T> {
    pub fn new(data: Vec<T>, has_more: bool) -> Self {
        List {
            object: "list".into(),
            data,
            has_more,
        }
    }
}

impl<R, T> From<Paged<R>> for List<T>
where
    T: From<R> + poem_openapi::types::ParseFromJSON + poem_openapi::types::ToJSON,
{
    fn from(rows: Paged<R>) -> Self {
        List::new(rows.data.into_iter().map(T::from).collect(), rows.has_more)
    }
}

/// The format of the one stand-in parameter a `Pagination` argument adds to poem-openapi's
/// rendering, which `contract::finish` replaces with the three parameters it takes.
pub const PAGINATION_MARKER: &str = "x-pushdial-pagination";

/// A list's page parameters (`limit`, `starting_after`, `ending_before`), taken by one
/// argument.
///
/// poem-openapi documents one parameter per argument, so this argument stands in the
/// rendered document as one marker parameter, and `contract::finish` writes the three in
/// its place. Each is read by poem-openapi's own `Query`, so a value of the wrong type is
/// refused exactly as any query parameter (`400 invalid_parameter`); `page` checks the rest
/// where the handler asks, after its authorization when the handler checks that first.
pub struct Pagination {
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

impl Pagination {
    /// The page asked for, checked: `limit` 1 to 100 (20 when left out), at most one cursor,
    /// each an id of `kind`.
    pub fn page(self, kind: ids::Kind) -> Result<Page, Error> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 100"));
        }
        if self.starting_after.is_some() && self.ending_before.is_some() {
            return Err(Error::invalid(
                "ending_before",
                "give at most one of starting_after and ending_before",
            ));
        }
        Ok(Page {
            limit,
            starting_after: self
                .starting_after
                .map(|s| ids::parse(kind, "starting_after", &s))
                .transpose()?,
            ending_before: self
                .ending_before
                .map(|s| ids::parse(kind, "ending_before", &s))
                .transpose()?,
        })
    }
}

/// One query parameter read as poem-openapi reads a `Query<Option<T>>` argument.
async fn query<T>(
    request: &poem::Request,
    body: &mut poem::RequestBody,
    name: &'static str,
) -> poem::Result<Option<T>>
where
    T: poem_openapi::types::ParseFromParameter + Send,
{
    let opts = ExtractParamOptions {
        name,
        ignore_case: false,
        default_value: None,
        example_value: None,
        explode: true,
        style: None,
    };
    Ok(Query::<Option<T>>::from_request(request, body, opts)
        .await?
        .0)
}

impl<'a> ApiExtractor<'a> for Pagination {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];

    type ParamType = ();
    type ParamRawType = ();

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Query)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(MetaSchemaRef::Inline(Box::new(
            MetaSchema::new_with_format("object", PAGINATION_MARKER),
        )))
    }

    async fn from_request(
        request: &'a poem::Request,
        body: &mut poem::RequestBody,
        _: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        Ok(Pagination {
            limit: query(request, body, "limit").await?,
            starting_after: query(request, body, "starting_after").await?,
            ending_before: query(request, body, "ending_before").await?,
        })
    }
}
