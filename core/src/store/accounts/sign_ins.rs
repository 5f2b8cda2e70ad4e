//! Pending sign-ins: the state of an OAuth/OIDC round trip, taken once on return.

use sqlx::PgConnection;

pub async fn insert_sign_in(
    conn: &mut PgConnection,
    state_hash: &[u8],
    provider: &str,
    sealed: &[u8],
    return_to: Option<&str>,
    link: Option<(&str, &[u8])>,
) -> sqlx::Result<()> {
    // Old attempts are cleared as new ones start: the table stays small without a job.
    sqlx::query!("delete from sign_ins where created_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "insert into sign_ins (state_hash, provider, secrets, return_to, link_user_id, link_session_hash)
         values ($1, $2, $3, $4, $5, $6)",
        state_hash,
        provider,
        sealed,
        return_to,
        link.map(|l| l.0),
        link.map(|l| l.1)
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct SignInRow {
    pub provider: String,
    pub secrets: Vec<u8>,
    pub return_to: Option<String>,
    pub link_user_id: Option<String>,
    pub link_session_hash: Option<Vec<u8>>,
}

/// Takes a pending sign-in: once, within `max_age_s` seconds of its start.
pub async fn take_sign_in(
    conn: &mut PgConnection,
    state_hash: &[u8],
    max_age_s: f64,
) -> sqlx::Result<Option<SignInRow>> {
    sqlx::query_as!(
        SignInRow,
        "update sign_ins set used_at = now()
         where state_hash = $1 and used_at is null
           and created_at > now() - make_interval(secs => $2)
         returning provider, secrets, return_to, link_user_id, link_session_hash",
        state_hash,
        max_age_s
    )
    .fetch_optional(conn)
    .await
}
