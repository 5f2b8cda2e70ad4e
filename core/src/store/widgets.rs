//! Widgets (embeddable "call me" buttons) and visitors' callback requests.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Page, Paged};

/// A state kept in a `text` column whose CHECK constraint lists its values: an enum in
/// Rust, written and read as its name, so that no code compares or re-parses strings. A
/// name the enum does not know fails the read (the constraint keeps such rows out).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$($name::$variant),+];

            /// The name, as stored and as the API shows it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value named `text`, if there is one.
            pub fn from_name(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Self::from_name(text)
                    .ok_or_else(|| format!("no {} is named `{text}`", stringify!($name)).into())
            }
        }
    };
}

text_enum!(
    /// Which available agent takes a widget's call.
    Routing {
        /// Agents in turn, by id (the widget remembers the last).
        RoundRobin = "round_robin",
        /// The agent whose last call is oldest.
        LongestIdle = "longest_idle",
    }
);

text_enum!(
    /// What a widget offers outside its hours or with nobody reachable.
    WhenUnavailable {
        /// A request to be called back later.
        Callback = "callback",
        /// Nothing: the widget hides.
        Hidden = "hidden",
    }
);

text_enum!(
    /// Where a visitor's callback request stands (what the visitor is told is derived from
    /// it and its call: `widgets::visitor_status`).
    CallbackStatus {
        /// A call was placed for it at once.
        Calling = "calling",
        /// It waits for an agent to call back.
        Scheduled = "scheduled",
        Completed = "completed",
        Canceled = "canceled",
    }
);

#[derive(Debug, Clone)]
pub struct WidgetRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub key_id: String,
    pub publishable_key: String,
    pub allowed_origins: Vec<String>,
    pub agent_ids: Vec<String>,
    pub routing: Routing,
    pub business_hours: Option<serde_json::Value>,
    pub when_unavailable: WhenUnavailable,
    pub theme: serde_json::Value,
    pub texts: serde_json::Value,
    /// Callbacks that ring an agent's phone now, at most this many an hour.
    pub max_callbacks_per_hour: i32,
    /// Callbacks kept for later (`scheduled`), at most this many an hour.
    pub max_scheduled_callbacks_per_hour: i32,
    pub last_agent_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The settings of a widget, as written.
#[derive(Debug, Clone)]
pub struct WidgetSettings {
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub agent_ids: Vec<String>,
    pub routing: Routing,
    pub business_hours: Option<serde_json::Value>,
    pub when_unavailable: WhenUnavailable,
    pub theme: serde_json::Value,
    pub texts: serde_json::Value,
    pub max_callbacks_per_hour: i32,
    pub max_scheduled_callbacks_per_hour: i32,
}

pub async fn insert(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    key_id: &str,
    publishable_key: &str,
    s: &WidgetSettings,
) -> sqlx::Result<WidgetRow> {
    sqlx::query_as!(
        WidgetRow,
        "insert into widgets (id, org_id, name, key_id, publishable_key, allowed_origins,
                              agent_ids, routing, business_hours, when_unavailable, theme, texts,
                              max_callbacks_per_hour, max_scheduled_callbacks_per_hour)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         returning id, org_id, name, key_id, publishable_key, allowed_origins, agent_ids,
                   routing as \"routing: Routing\", business_hours,
                   when_unavailable as \"when_unavailable: WhenUnavailable\", theme, texts,
                   max_callbacks_per_hour, max_scheduled_callbacks_per_hour, last_agent_id,
                   created_at",
        id,
        org_id,
        s.name,
        key_id,
        publishable_key,
        &s.allowed_origins,
        &s.agent_ids,
        s.routing as Routing,
        s.business_hours,
        s.when_unavailable as WhenUnavailable,
        s.theme,
        s.texts,
        s.max_callbacks_per_hour,
        s.max_scheduled_callbacks_per_hour
    )
    .fetch_one(conn)
    .await
}

pub async fn update(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    s: &WidgetSettings,
) -> sqlx::Result<Option<WidgetRow>> {
    sqlx::query_as!(
        WidgetRow,
        "update widgets set name = $3, allowed_origins = $4, agent_ids = $5, routing = $6,
                business_hours = $7, when_unavailable = $8, theme = $9, texts = $10,
                max_callbacks_per_hour = $11, max_scheduled_callbacks_per_hour = $12
         where org_id = $1 and id = $2 and deleted_at is null
         returning id, org_id, name, key_id, publishable_key, allowed_origins, agent_ids,
                   routing as \"routing: Routing\", business_hours,
                   when_unavailable as \"when_unavailable: WhenUnavailable\", theme, texts,
                   max_callbacks_per_hour, max_scheduled_callbacks_per_hour, last_agent_id,
                   created_at",
        org_id,
        id,
        s.name,
        &s.allowed_origins,
        &s.agent_ids,
        s.routing as Routing,
        s.business_hours,
        s.when_unavailable as WhenUnavailable,
        s.theme,
        s.texts,
        s.max_callbacks_per_hour,
        s.max_scheduled_callbacks_per_hour
    )
    .fetch_optional(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<WidgetRow>> {
    sqlx::query_as!(
        WidgetRow,
        "select id, org_id, name, key_id, publishable_key, allowed_origins, agent_ids,
                routing as \"routing: Routing\", business_hours,
                when_unavailable as \"when_unavailable: WhenUnavailable\", theme, texts,
                   max_callbacks_per_hour, max_scheduled_callbacks_per_hour, last_agent_id, created_at
         from widgets where org_id = $1 and id = $2 and deleted_at is null",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The live widget a publishable key belongs to (the key itself must be active).
pub async fn by_key_hash(
    conn: &mut PgConnection,
    key_hash: &[u8],
) -> sqlx::Result<Option<WidgetRow>> {
    sqlx::query_as!(
        WidgetRow,
        "select w.id, w.org_id, w.name, w.key_id, w.publishable_key, w.allowed_origins,
                w.agent_ids, w.routing as \"routing: Routing\", w.business_hours,
                w.when_unavailable as \"when_unavailable: WhenUnavailable\", w.theme, w.texts,
                w.max_callbacks_per_hour, w.max_scheduled_callbacks_per_hour, w.last_agent_id, w.created_at
         from api_keys k join widgets w on w.key_id = k.id
         where k.key_hash = $1 and k.kind = 'publishable' and k.revoked_at is null
           and (k.expires_at is null or k.expires_at > now()) and w.deleted_at is null",
        key_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn by_id(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<WidgetRow>> {
    sqlx::query_as!(
        WidgetRow,
        "select id, org_id, name, key_id, publishable_key, allowed_origins, agent_ids,
                routing as \"routing: Routing\", business_hours,
                when_unavailable as \"when_unavailable: WhenUnavailable\", theme, texts,
                   max_callbacks_per_hour, max_scheduled_callbacks_per_hour, last_agent_id, created_at
         from widgets where id = $1 and deleted_at is null",
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn list(
    conn: &mut PgConnection,
    org_id: &str,
    page: &Page,
) -> sqlx::Result<Paged<WidgetRow>> {
    let rows = sqlx::query_as!(
        WidgetRow,
        "select id, org_id, name, key_id, publishable_key, allowed_origins, agent_ids,
                routing as \"routing: Routing\", business_hours,
                when_unavailable as \"when_unavailable: WhenUnavailable\", theme, texts,
                   max_callbacks_per_hour, max_scheduled_callbacks_per_hour, last_agent_id, created_at
         from widgets
         where org_id = $1 and deleted_at is null
           and ($2::text is null or id < $2)
           and ($3::text is null or id > $3)
         order by case when $3::text is null then id end desc, id asc
         limit $4",
        org_id,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

/// Deletes a widget: it stops answering at once, and its publishable key is revoked.
pub async fn delete(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<WidgetRow>> {
    let row = sqlx::query_as!(
        WidgetRow,
        "update widgets set deleted_at = now()
         where org_id = $1 and id = $2 and deleted_at is null
         returning id, org_id, name, key_id, publishable_key, allowed_origins, agent_ids,
                   routing as \"routing: Routing\", business_hours,
                   when_unavailable as \"when_unavailable: WhenUnavailable\", theme, texts,
                   max_callbacks_per_hour, max_scheduled_callbacks_per_hour, last_agent_id,
                   created_at",
        org_id,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(w) = &row {
        super::keys::revoke(conn, org_id, &w.key_id).await?;
    }
    Ok(row)
}

/// The live widget whose tag carries the key `key_id`, if any.
pub async fn using_key(
    conn: &mut PgConnection,
    org_id: &str,
    key_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select id from widgets where org_id = $1 and key_id = $2 and deleted_at is null",
        org_id,
        key_id
    )
    .fetch_optional(conn)
    .await
}

/// Takes the widget's next round-robin turn for `next`, if its last agent is still `seen`
/// (compare and set): `false` when another request took a turn since.
pub async fn claim_turn(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    seen: Option<&str>,
    next: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update widgets set last_agent_id = $4
         where id = $1 and org_id = $2 and last_agent_id is not distinct from $3",
        id,
        org_id,
        seen,
        next
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The agent that took the widget's last round-robin turn.
pub async fn last_agent(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<String>> {
    Ok(sqlx::query_scalar!(
        "select last_agent_id from widgets where id = $1 and org_id = $2",
        id,
        org_id
    )
    .fetch_optional(conn)
    .await?
    .flatten())
}

/// The candidate agents of a widget (its list, or every agent of the organization) with
/// the time of their last call, oldest first (never-called first).
pub async fn candidates(
    conn: &mut PgConnection,
    org_id: &str,
    agent_ids: &[String],
) -> sqlx::Result<Vec<(String, Option<DateTime<Utc>>)>> {
    let rows = sqlx::query!(
        r#"select a.id as "id!", (select max(c.created_at) from calls c
                             where c.org_id = a.org_id and c.agent_id = a.id) as last_call
         from agents a
         where a.org_id = $1 and a.deleted_at is null
           and (cardinality($2::text[]) = 0 or a.id = any($2))
         order by last_call asc nulls first, a.id"#,
        org_id,
        agent_ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.last_call)).collect())
}

#[derive(Debug, Clone)]
pub struct CallbackRow {
    pub id: String,
    pub org_id: String,
    pub widget_id: String,
    pub phone: String,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub status: CallbackStatus,
    pub call_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The status of its call, if any.
    pub call_status: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_callback(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    widget_id: &str,
    phone: &str,
    name: Option<&str>,
    locale: Option<&str>,
    status: CallbackStatus,
    call_id: Option<&str>,
    token_hash: &[u8],
    ip: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into callbacks (id, org_id, widget_id, phone, name, locale, status, call_id,
                                token_hash, ip)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        id,
        org_id,
        widget_id,
        phone,
        name,
        locale,
        status as CallbackStatus,
        call_id,
        token_hash,
        ip
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A callback by its id and stream token (the visitor's view).
pub async fn callback_by_token(
    conn: &mut PgConnection,
    id: &str,
    token_hash: &[u8],
) -> sqlx::Result<Option<CallbackRow>> {
    sqlx::query_as!(
        CallbackRow,
        "select cb.id, cb.org_id, cb.widget_id, cb.phone, cb.name, cb.locale,
                cb.status as \"status: CallbackStatus\", cb.call_id, cb.created_at, c.status as \"call_status?\"
         from callbacks cb left join calls c on c.id = cb.call_id
         where cb.id = $1 and cb.token_hash = $2",
        id,
        token_hash
    )
    .fetch_optional(conn)
    .await
}

/// Callbacks, newest first; with `agent_id`, only those not handed to anyone yet or whose
/// call is that agent's.
pub async fn callbacks(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: Option<&str>,
    page: &Page,
) -> sqlx::Result<Paged<CallbackRow>> {
    let rows = sqlx::query_as!(
        CallbackRow,
        "select cb.id, cb.org_id, cb.widget_id, cb.phone, cb.name, cb.locale,
                cb.status as \"status: CallbackStatus\", cb.call_id, cb.created_at, c.status as \"call_status?\"
         from callbacks cb left join calls c on c.id = cb.call_id
         where cb.org_id = $1
           and ($2::text is null or cb.id < $2)
           and ($3::text is null or cb.id > $3)
           and ($5::text is null or cb.call_id is null or c.agent_id = $5)
         order by case when $3::text is null then cb.id end desc, cb.id asc
         limit $4",
        org_id,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1,
        agent_id
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The values a CHECK constraint of the widgets migration allows `column` to hold.
    fn allowed(column: &str) -> Vec<&'static str> {
        let sql = include_str!("../../../migrations/20261127000011_widgets.sql");
        let start = sql.find(&format!("check ({column} in (")).unwrap();
        let list = &sql[start..];
        let list = &list[list.find("in (").unwrap() + 4..list.find(')').unwrap()];
        list.split(',')
            .map(|v| v.trim().trim_matches('\''))
            .collect()
    }

    fn names<T: Copy + std::fmt::Display>(all: &[T]) -> Vec<String> {
        all.iter().map(ToString::to_string).collect()
    }

    /// Each state enum names exactly what its column may hold, so no row fails to read and
    /// no value fails to write; each name reads back as its value.
    #[test]
    fn states_are_the_values_their_columns_allow() {
        assert_eq!(names(Routing::ALL), allowed("routing"));
        assert_eq!(names(WhenUnavailable::ALL), allowed("when_unavailable"));
        assert_eq!(names(CallbackStatus::ALL), allowed("status"));
        for r in Routing::ALL {
            assert_eq!(Routing::from_name(r.as_str()), Some(*r));
        }
        for w in WhenUnavailable::ALL {
            assert_eq!(WhenUnavailable::from_name(w.as_str()), Some(*w));
        }
        for c in CallbackStatus::ALL {
            assert_eq!(CallbackStatus::from_name(c.as_str()), Some(*c));
        }
        assert_eq!(Routing::from_name("Round_Robin"), None);
    }
}
