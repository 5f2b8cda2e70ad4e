//! Creating organizations with their first keys (the bootstrap until sign-up exists).

use sqlx::PgConnection;

use crate::ids::{self, Kind};
use crate::store::{keys, orgs};
use crate::{secrets, Result};

/// A new organization and its keys, shown once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewOrg {
    pub org_id: String,
    pub secret_key: String,
    pub publishable_key: String,
}

/// Creates an organization with one secret and one publishable key.
pub async fn create_org(conn: &mut PgConnection, name: &str) -> Result<NewOrg> {
    let name = crate::text::required("name", name, 200)?;
    let org_id = ids::new_id(Kind::Org);
    orgs::insert(conn, &org_id, name).await?;
    let secret_key = secrets::new_token("pd_sk_");
    let publishable_key = secrets::new_token("pd_pk_");
    for (kind, key) in [("secret", &secret_key), ("publishable", &publishable_key)] {
        let last4 = &key[key.len() - 4..];
        keys::insert(
            conn,
            &ids::new_id(Kind::Key),
            &org_id,
            kind,
            &secrets::hash(key),
            last4,
        )
        .await?;
    }
    Ok(NewOrg {
        org_id,
        secret_key,
        publishable_key,
    })
}
