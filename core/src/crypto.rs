//! Encryption at rest of secrets we must be able to read back (webhook signing secrets):
//! AES-256-GCM with a random 96-bit nonce per value, under a key from the environment
//! (`PUSHDIAL_ENCRYPTION_KEY`, 32 bytes in base64). Stored form: nonce ‖ ciphertext+tag.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;

/// The key that seals stored secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

/// Used when no key is configured, so a local run works out of the box. It is public
/// knowledge: production must set `PUSHDIAL_ENCRYPTION_KEY` (a warning says so).
const DEVELOPMENT_KEY: [u8; 32] = *b"pushdial-development-key-32bytes";

impl SecretBox {
    /// From `PUSHDIAL_ENCRYPTION_KEY` (base64 of 32 bytes), or the development key.
    pub fn from_config(key: Option<&str>) -> Result<Self, String> {
        let bytes = match key {
            Some(k) => base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .map_err(|_| {
                    "PUSHDIAL_ENCRYPTION_KEY must be base64 (e.g. `openssl rand -base64 32`)"
                        .to_owned()
                })?,
            None => {
                tracing::warn!("PUSHDIAL_ENCRYPTION_KEY is not set: secrets are sealed with the public development key");
                DEVELOPMENT_KEY.to_vec()
            }
        };
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| "PUSHDIAL_ENCRYPTION_KEY must decode to exactly 32 bytes".to_owned())?;
        Ok(Self { cipher })
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .map_err(|_| "encryption failed".to_owned())?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    pub fn open(&self, stored: &[u8]) -> Result<Vec<u8>, String> {
        if stored.len() < 12 + 16 {
            return Err("sealed value too short".into());
        }
        let (nonce, sealed) = stored.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| {
                "sealed value does not open with this key (wrong PUSHDIAL_ENCRYPTION_KEY?)".into()
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seals_and_opens_and_detects_tampering() {
        let b = SecretBox::from_config(None).unwrap();
        let sealed = b.seal(b"whsec_abc").unwrap();
        assert_ne!(&sealed[12..], b"whsec_abc");
        assert_eq!(b.open(&sealed).unwrap(), b"whsec_abc");
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(b.open(&tampered).is_err());
        let other =
            SecretBox::from_config(Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(SecretBox::from_config(Some("c2hvcnQ=")).is_err());
    }
}
