//! Users: the people who sign in, one row each whatever the ways they sign in by.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_user(
    conn: &mut PgConnection,
    id: &str,
    name: &str,
    email: Option<&str>,
) -> sqlx::Result<UserRow> {
    sqlx::query_as!(
        UserRow,
        "insert into users (id, name, email) values ($1, $2, $3)
         returning id, name, email, created_at",
        id,
        name,
        email
    )
    .fetch_one(conn)
    .await
}

pub async fn get_user(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        "select id, name, email, created_at from users where id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}
