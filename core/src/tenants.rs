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

/// Creates an organization (calls allowed to its own `country`) with one secret and one
/// publishable key.
pub async fn create_org(conn: &mut PgConnection, name: &str, country: &str) -> Result<NewOrg> {
    let name = crate::text::required("name", name, 200)?;
    let country = country.trim().to_ascii_uppercase();
    if !crate::phone::is_country(&country) {
        return Err(crate::Error::invalid(
            "country",
            "an ISO 3166 alpha-2 code, like US or GB",
        ));
    }
    let org_id = ids::new_id(Kind::Org);
    orgs::insert(conn, &org_id, name, &country).await?;
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
