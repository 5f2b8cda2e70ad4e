//! A member's agent: the agent row a membership takes calls as, and what a member who
//! leaves loses with it (unused pairing codes, devices).

use sqlx::PgConnection;

/// The agent row of a user in an organization, if they ever joined it. A member who left
/// may have had their agent deleted since: joining again brings it back (with its calls),
/// hence an update that clears `deleted_at` rather than a plain read.
pub async fn reclaim_agent_of_user(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "update agents set deleted_at = null where org_id = $1 and user_id = $2 returning id",
        org_id,
        user_id
    )
    .fetch_optional(conn)
    .await
}

pub async fn insert_member_agent(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    user_id: &str,
    name: &str,
    email: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into agents (id, org_id, name, email, user_id) values ($1, $2, $3, $4, $5)",
        id,
        org_id,
        name,
        email,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The role of the member an agent belongs to (none for agents created through the API).
pub async fn role_of_agent(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select role from memberships where org_id = $1 and agent_id = $2",
        org_id,
        agent_id
    )
    .fetch_optional(conn)
    .await
}

/// Deletes an agent's unused pairing codes (a member who left must not pair a phone).
pub async fn delete_pairing_codes(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: &str,
) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "delete from pairing_codes where org_id = $1 and agent_id = $2 and used_at is null",
        org_id,
        agent_id
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Revokes every device of an agent (a member who left must not keep taking calls);
/// returns the revoked devices' ids.
pub async fn revoke_agent_devices(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "update devices set revoked_at = now()
         where org_id = $1 and agent_id = $2 and revoked_at is null returning id",
        org_id,
        agent_id
    )
    .fetch_all(conn)
    .await
}
