//! Encryption at rest of the secrets we must be able to read back (webhook signing secrets,
//! organizations' push credentials, pending sign-ins' PKCE verifier and nonce): AES-256-GCM
//! with a random 96-bit nonce per value, under keys from the environment.
//!
//! Keys: `PUSHDIAL_ENCRYPTION_KEY` (32 bytes in base64) seals; the keys of
//! `PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS` only open, so that a key can be replaced while values
//! sealed with the old one are re-sealed (`pushdial admin rotate-encryption-key`). Without
//! a key a public development key is used, and only where the public URL is loopback: a
//! server reachable from elsewhere refuses to start ([`check_config`]).
//!
//! Stored form, version 1: `0x01 ‖ key id (4) ‖ nonce (12) ‖ ciphertext+tag`, the key id
//! being the first bytes of SHA-256 of the key (which key to open with), and the
//! associated data naming the value's table, column and row ([`Bound`]): a value copied to
//! another row does not open there. Version 0, written before: `nonce ‖ ciphertext+tag`,
//! without key id or associated data; it still opens, so that an upgrade loses no secret,
//! and rotation rewrites it as version 1.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub mod rotation;

/// Which row and column a sealed value belongs to; its associated data.
#[derive(Debug, Clone, Copy)]
pub enum Bound<'a> {
    /// `webhook_endpoints.secret_sealed` and `previous_secret_sealed` (one binding for both:
    /// rotating moves the current secret to the previous column).
    WebhookSecret {
        org_id: &'a str,
        endpoint_id: &'a str,
    },
    /// `push_credentials.secret`.
    PushCredential {
        org_id: &'a str,
        provider: &'a str,
        id: &'a str,
    },
    /// `sign_ins.secrets`, keyed by the hash of the sign-in's state.
    SignIn {
        state_hash: &'a [u8],
        provider: &'a str,
    },
}

impl Bound<'_> {
    fn associated_data(&self) -> String {
        match self {
            Bound::WebhookSecret {
                org_id,
                endpoint_id,
            } => format!("webhook_endpoints.secret:{org_id}:{endpoint_id}"),
            Bound::PushCredential {
                org_id,
                provider,
                id,
            } => format!("push_credentials.secret:{org_id}:{provider}:{id}"),
            Bound::SignIn {
                state_hash,
                provider,
            } => format!("sign_ins.secrets:{provider}:{}", hex::encode(state_hash)),
        }
    }
}

/// Why a sealed value did not open. Each message says what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed value is malformed (too short)")]
    Malformed,
    #[error(
        "sealed with encryption key {0}, which is not configured (add the key it was sealed \
         with to PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS)"
    )]
    UnknownKey(String),
    #[error(
        "sealed value does not open: it belongs to another row or was altered (or was sealed \
         with a key that is not configured)"
    )]
    Refused,
}

const VERSION_1: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const V1_HEADER: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Used when no key is configured and the public URL is loopback, so a local run works out
/// of the box. It is public knowledge: nothing reachable from elsewhere may use it.
const DEVELOPMENT_KEY: [u8; 32] = *b"pushdial-development-key-32bytes";

/// Names the development key in `PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS` (for a deployment that
/// ran without a key and re-seals its secrets with its first real one).
pub const DEVELOPMENT_KEY_NAME: &str = "development";

#[derive(Clone)]
struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: Aes256Gcm,
}

impl Key {
    fn new(bytes: &[u8], what: &str) -> Result<Self, String> {
        let cipher = Aes256Gcm::new_from_slice(bytes)
            .map_err(|_| format!("{what} must decode to exactly 32 bytes"))?;
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Ok(Self { id, cipher })
    }

    fn parse(text: &str, what: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == DEVELOPMENT_KEY_NAME {
            return Self::new(&DEVELOPMENT_KEY, what);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| format!("{what} must be base64 (e.g. `openssl rand -base64 32`)"))?;
        Self::new(&bytes, what)
    }
}

/// The keys that seal and open stored secrets.
#[derive(Clone)]
pub struct SecretBox {
    current: Key,
    previous: Vec<Key>,
    development: bool,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBox(current {})", self.current_key_id())
    }
}

/// Whether the deployment may run with the configured keys: without
/// `PUSHDIAL_ENCRYPTION_KEY`, only when its public URL is loopback (the development key is
/// public, so secrets sealed with it are not secret). `Err` is one line for the operator.
pub fn check_config(config: &crate::Config) -> Result<(), String> {
    let key_set = config
        .encryption_key
        .as_deref()
        .is_some_and(|k| !k.trim().is_empty());
    if key_set || config.public_url_is_loopback() {
        return Ok(());
    }
    Err(format!(
        "PUSHDIAL_ENCRYPTION_KEY is not set and the public URL {} is not loopback: refusing to \
         seal secrets with the public development key (generate one with `openssl rand -base64 32`)",
        config.public_url()
    ))
}

impl SecretBox {
    /// From `PUSHDIAL_ENCRYPTION_KEY` and `PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS`, refusing the
    /// development key where the public URL is not loopback ([`check_config`]).
    pub fn from_config(config: &crate::Config) -> Result<Self, String> {
        check_config(config)?;
        let key = config
            .encryption_key
            .as_deref()
            .filter(|k| !k.trim().is_empty());
        let b = Self::from_keys(key, config.encryption_keys_previous.as_deref())?;
        if b.development {
            tracing::warn!("PUSHDIAL_ENCRYPTION_KEY is not set: secrets are sealed with the public development key (allowed only on a loopback public URL)");
        }
        Ok(b)
    }

    /// The current key (or the development key when `None`) and the comma-separated
    /// previous keys, without the deployment check.
    pub fn from_keys(current: Option<&str>, previous: Option<&str>) -> Result<Self, String> {
        let (current, development) = match current {
            Some(k) => (Key::parse(k, "PUSHDIAL_ENCRYPTION_KEY")?, false),
            None => (Key::new(&DEVELOPMENT_KEY, "the development key")?, true),
        };
        let previous = previous
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| Key::parse(k, "each key of PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            current,
            previous,
            development,
        })
    }

    /// Whether the current key is the public development key.
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// The current key's id, as shown in errors (hex).
    pub fn current_key_id(&self) -> String {
        hex::encode(self.current.id)
    }

    /// Seals `plaintext` for the row and column `bound` names, with the current key.
    pub fn seal(&self, bound: Bound<'_>, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = bound.associated_data();
        let sealed = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| "encryption failed".to_owned())?;
        let mut out = Vec::with_capacity(V1_HEADER + sealed.len());
        out.push(VERSION_1);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `bound`: version 1 with the key its header names, version 0
    /// (no associated data) with any configured key.
    pub fn open(&self, bound: Bound<'_>, stored: &[u8]) -> Result<Vec<u8>, OpenError> {
        if stored.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let mut unknown = None;
        if stored[0] == VERSION_1 && stored.len() >= V1_HEADER + TAG_LEN {
            let id = &stored[1..1 + KEY_ID_LEN];
            match self.key(id) {
                Some(key) => {
                    let aad = bound.associated_data();
                    if let Ok(plain) = key.cipher.decrypt(
                        Nonce::from_slice(&stored[1 + KEY_ID_LEN..V1_HEADER]),
                        Payload {
                            msg: &stored[V1_HEADER..],
                            aad: aad.as_bytes(),
                        },
                    ) {
                        return Ok(plain);
                    }
                }
                None => unknown = Some(hex::encode(id)),
            }
        }
        // Version 0 (its first byte is a random nonce byte, so a version-0 value may also
        // start with 1: the tag decides).
        if let Some(plain) = self.open_version_0(stored) {
            return Ok(plain);
        }
        Err(match unknown {
            Some(id) => OpenError::UnknownKey(id),
            None => OpenError::Refused,
        })
    }

    fn open_version_0(&self, stored: &[u8]) -> Option<Vec<u8>> {
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|k| k.cipher.decrypt(Nonce::from_slice(nonce), sealed).ok())
    }

    fn key(&self, id: &[u8]) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }

    /// Whether `stored` is already in the current format under the current key (rotation
    /// leaves it alone).
    pub fn is_current(&self, stored: &[u8]) -> bool {
        stored.len() >= V1_HEADER + TAG_LEN
            && stored[0] == VERSION_1
            && stored[1..1 + KEY_ID_LEN] == self.current.id
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

    fn row(id: &str) -> Bound<'_> {
        Bound::WebhookSecret {
            org_id: "org_1",
            endpoint_id: id,
        }
    }

    #[test]
    fn seals_and_opens_and_detects_tampering() {
        let b = SecretBox::from_keys(None, None).unwrap();
        let sealed = b.seal(row("ep_1"), b"whsec_abc").unwrap();
        assert_eq!(sealed[0], VERSION_1);
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(b.open(row("ep_1"), &sealed).unwrap(), b"whsec_abc");
        let mut tampered = sealed.clone();
        tampered[25] ^= 1;
        assert_eq!(b.open(row("ep_1"), &tampered), Err(OpenError::Refused));
        let other = SecretBox::from_keys(Some(A), None).unwrap();
        assert!(matches!(
            other.open(row("ep_1"), &sealed),
            Err(OpenError::UnknownKey(_))
        ));
        assert!(SecretBox::from_keys(Some("c2hvcnQ="), None).is_err());
        assert!(SecretBox::from_keys(None, Some("nope")).is_err());
    }

    #[test]
    fn a_value_is_bound_to_its_row() {
        let b = SecretBox::from_keys(Some(A), None).unwrap();
        let sealed = b.seal(row("ep_1"), b"whsec_abc").unwrap();
        assert_eq!(b.open(row("ep_2"), &sealed), Err(OpenError::Refused));
        let other_org = Bound::WebhookSecret {
            org_id: "org_2",
            endpoint_id: "ep_1",
        };
        assert_eq!(b.open(other_org, &sealed), Err(OpenError::Refused));
    }

    #[test]
    fn previous_keys_open_and_the_current_key_seals() {
        let old = SecretBox::from_keys(Some(A), None).unwrap();
        let sealed = old.seal(row("ep_1"), b"s").unwrap();
        let both = SecretBox::from_keys(Some(B), Some(&format!("{A}, development"))).unwrap();
        assert_eq!(both.open(row("ep_1"), &sealed).unwrap(), b"s");
        assert!(!both.is_current(&sealed));
        let resealed = both.seal(row("ep_1"), b"s").unwrap();
        assert!(both.is_current(&resealed));
        let only_b = SecretBox::from_keys(Some(B), None).unwrap();
        assert_eq!(only_b.open(row("ep_1"), &resealed).unwrap(), b"s");
        assert!(matches!(
            only_b.open(row("ep_1"), &sealed),
            Err(OpenError::UnknownKey(_))
        ));
    }

    #[test]
    fn version_0_values_still_open() {
        // As the previous code sealed them: nonce ‖ ciphertext+tag, no associated data.
        let cipher = Aes256Gcm::new_from_slice(&DEVELOPMENT_KEY).unwrap();
        for first in 0..=255u8 {
            let nonce = [first; NONCE_LEN];
            let legacy = [
                nonce.as_slice(),
                &cipher
                    .encrypt(Nonce::from_slice(&nonce), b"whsec_old".as_slice())
                    .unwrap(),
            ]
            .concat();
            let b = SecretBox::from_keys(Some(A), Some("development")).unwrap();
            assert_eq!(b.open(row("any"), &legacy).unwrap(), b"whsec_old");
            assert!(!b.is_current(&legacy));
        }
    }
}
