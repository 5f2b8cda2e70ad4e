//! Organizations: the tenants.

use sqlx::PgConnection;

pub async fn insert(conn: &mut PgConnection, id: &str, name: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into organizations (id, name) values ($1, $2)",
        id,
        name
    )
    .execute(conn)
    .await?;
    Ok(())
}
