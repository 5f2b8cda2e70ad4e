//! Creating organizations (with their first keys, for `pushdial admin create-org`) and API keys.

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
    let (name, country) = check_org(name, country)?;
    let org_id = insert_org(conn, &name, &country).await?;
    let (secret_key, _) = new_key(conn, &org_id, "secret", "Default secret key", None).await?;
    let (publishable_key, _) = new_key(
        conn,
        &org_id,
        "publishable",
        "Default publishable key",
        None,
    )
    .await?;
    Ok(NewOrg {
        org_id,
        secret_key,
        publishable_key,
    })
}

/// Checks and normalises an organization's name and country.
pub fn check_org(name: &str, country: &str) -> Result<(String, String)> {
    let name = crate::text::required("name", name, 200)?;
    let country = country.trim().to_ascii_uppercase();
    if !crate::phone::is_country(&country) {
        return Err(crate::Error::invalid(
            "country",
            "an ISO 3166 alpha-2 code, like US or GB",
        ));
    }
    Ok((name.to_owned(), country))
}

/// Inserts a checked organization and returns its id.
pub async fn insert_org(conn: &mut PgConnection, name: &str, country: &str) -> Result<String> {
    let org_id = ids::new_id(Kind::Org);
    orgs::insert(conn, &org_id, name, country).await?;
    Ok(org_id)
}

/// Makes an API key of `kind` (`secret` or `publishable`): the key itself, shown once,
/// and its stored row.
pub async fn new_key(
    conn: &mut PgConnection,
    org_id: &str,
    kind: &str,
    name: &str,
    created_by: Option<&str>,
) -> Result<(String, keys::KeyRow)> {
    let key = secrets::new_token(if kind == "secret" { "pd_sk_" } else { "pd_pk_" });
    let row = keys::insert(
        conn,
        &keys::NewKey {
            id: &ids::new_id(Kind::Key),
            org_id,
            kind,
            name,
            key_hash: &secrets::hash(&key),
            last4: &key[key.len() - 4..],
            created_by,
        },
    )
    .await?;
    Ok((key, row))
}
