//! Dialing safety (toll fraud, abuse): which numbers an organization's calls may reach.
//! Premium-rate, shared-cost, UAN and personal numbers are refused by default; calls go
//! only to the organization's allowed countries (its own by default); its blocklist of
//! numbers and prefixes is never dialed. Service codes (`*`, `#`) never parse at all.

use sqlx::PgConnection;

use crate::phone::PhoneNumber;
use crate::store::orgs;
use crate::{Error, Result};

fn refused(code: &'static str, message: String) -> Error {
    crate::metrics::METRICS
        .dialing_refusals
        .with_label_values(&[code])
        .inc();
    Error::Unprocessable { code, message }
}

/// Checks a destination against the organization's policy, and returns the plan's calls
/// per minute (read in the same round trip). Reads only.
pub async fn check(
    conn: &mut PgConnection,
    org_id: &str,
    number: &PhoneNumber,
) -> Result<Option<i32>> {
    let org = orgs::dialing_view(conn, org_id, number.as_str())
        .await?
        .ok_or(Error::NotFound("organization"))?;
    decide(&org, number)
}

/// Checks a destination against a policy already read (see `check`).
pub fn decide(org: &orgs::DialingView, number: &PhoneNumber) -> Result<Option<i32>> {
    let kind = number.number_type().as_str();
    if org.blocked_number_types.iter().any(|t| t == kind) {
        return Err(refused(
            "number_type_blocked",
            format!(
                "calls to {} numbers are blocked for this organization",
                kind.replace('_', "-")
            ),
        ));
    }
    let allowed = number
        .country()
        .is_some_and(|c| org.allowed_countries.iter().any(|a| a == c));
    if !allowed {
        return Err(refused(
            "country_not_allowed",
            format!(
                "calls to {} are not allowed for this organization (allowed: {})",
                number.country().unwrap_or("non-geographic numbers"),
                org.allowed_countries.join(", ")
            ),
        ));
    }
    if org.blocked {
        return Err(refused(
            "number_blocked",
            "this number is on the organization's blocklist".into(),
        ));
    }
    Ok(org.limit_calls_per_minute)
}
