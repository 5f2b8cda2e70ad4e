//! Public identifiers: a type prefix and 26 lowercase Crockford base-32 characters
//! (48 bits of milliseconds, then 80 random bits), so ids sort by creation time and a
//! malformed or mistyped id is rejected before any query runs.

use rand::RngCore;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const BODY_LEN: usize = 26;

/// The kinds of object that have public ids, with their prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Org,
    Key,
    Agent,
    Device,
    Call,
    Event,
    WebhookEndpoint,
    BlockedNumber,
    PushCredential,
    User,
    Invitation,
    AuditEvent,
    Identity,
    Widget,
    Callback,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Org => "org",
            Kind::Key => "key",
            Kind::Agent => "agt",
            Kind::Device => "dev",
            Kind::Call => "call",
            Kind::Event => "evt",
            Kind::WebhookEndpoint => "we",
            Kind::BlockedNumber => "blk",
            Kind::PushCredential => "pcr",
            Kind::User => "usr",
            Kind::Invitation => "inv",
            Kind::AuditEvent => "aud",
            Kind::Identity => "idn",
            Kind::Widget => "wgt",
            Kind::Callback => "cb",
        }
    }

    /// The name used in error messages ("no such call").
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Org => "organization",
            Kind::Key => "api key",
            Kind::Agent => "agent",
            Kind::Device => "device",
            Kind::Call => "call",
            Kind::Event => "event",
            Kind::WebhookEndpoint => "webhook endpoint",
            Kind::BlockedNumber => "blocked number",
            Kind::PushCredential => "push credential",
            Kind::User => "user",
            Kind::Invitation => "invitation",
            Kind::AuditEvent => "audit event",
            Kind::Identity => "identity",
            Kind::Widget => "widget",
            Kind::Callback => "callback",
        }
    }
}

/// The last value handed out in this process: ids made within one millisecond increment the
/// random part, so ids of one process are strictly increasing.
static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);

fn next_value() -> u128 {
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u128;
    let mut random = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut random[6..]);
    let fresh = (millis << 80) | u128::from_be_bytes(random);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let value = if fresh > *last { fresh } else { *last + 1 };
    *last = value;
    value
}

/// A new id of the given kind.
pub fn new_id(kind: Kind) -> String {
    let value = next_value();
    let mut body = [0u8; BODY_LEN];
    for (i, slot) in body.iter_mut().enumerate() {
        let shift = 5 * (BODY_LEN - 1 - i);
        *slot = ALPHABET[((value >> shift) & 31) as usize];
    }
    let mut id = String::with_capacity(kind.prefix().len() + 1 + BODY_LEN);
    id.push_str(kind.prefix());
    id.push('_');
    id.extend(body.iter().map(|&c| c as char));
    id
}

/// Whether `s` is a well-formed id of `kind`.
pub fn is_valid(kind: Kind, s: &str) -> bool {
    let Some(body) = s
        .strip_prefix(kind.prefix())
        .and_then(|rest| rest.strip_prefix('_'))
    else {
        return false;
    };
    body.len() == BODY_LEN && body.bytes().all(|c| ALPHABET.contains(&c))
}

/// Checks an id given by a client, naming the field in the error.
pub fn parse(kind: Kind, field: &str, s: &str) -> crate::Result<String> {
    if is_valid(kind, s) {
        Ok(s.to_owned())
    } else {
        Err(crate::Error::Invalid {
            code: "invalid_id",
            message: format!("{field}: `{s}` is not a valid {} id", kind.noun()),
            errors: vec![crate::FieldError::new(
                field,
                format!("expected an id like {}_…", kind.prefix()),
            )],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_and_sort_by_creation() {
        let a = new_id(Kind::Call);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(Kind::Call);
        assert!(is_valid(Kind::Call, &a), "{a}");
        assert!(a < b);
        assert!(!is_valid(Kind::Agent, &a));
        assert!(!is_valid(Kind::Call, "call_123"));
        assert!(!is_valid(Kind::Call, &a.to_uppercase()));
    }
}
