//! Bearer secrets (API keys, device tokens, pairing codes): generated from the OS RNG and
//! stored only as SHA-256 hashes, so a database leak does not leak credentials.

use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

/// A fresh secret: `prefix` followed by 32 random bytes in hex.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The hash under which a secret is stored and looked up.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Unambiguous characters for codes that people type (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A pairing code like `K7Q2-9XMD`: 8 characters from a 30-letter alphabet (~39 bits),
/// short-lived and single-use.
pub fn new_pairing_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let mut code = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            code.push('-');
        }
        code.push(CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char);
    }
    code
}

/// The prefix of a pairing token.
pub const PAIRING_TOKEN_PREFIX: &str = "pd_pair_";

/// The one-time token of a pairing code's QR code and link: 256 random bits (a QR code is
/// scanned, never typed, so its secret can be long enough that guessing is hopeless).
pub fn new_pairing_token() -> String {
    new_token(PAIRING_TOKEN_PREFIX)
}

/// Whether `input` has the shape of a pairing token (`pd_pair_` and 64 hex digits).
pub fn is_pairing_token(input: &str) -> bool {
    input
        .strip_prefix(PAIRING_TOKEN_PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Normalises a typed pairing code (case, spaces, dash) before hashing.
pub fn normalize_pairing_code(input: &str) -> Option<String> {
    let chars: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if chars.len() != 8 || !chars.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return None;
    }
    Some(format!("{}-{}", &chars[..4], &chars[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_codes_normalize() {
        let code = new_pairing_code();
        assert_eq!(
            normalize_pairing_code(&code.to_lowercase().replace('-', " ")),
            Some(code)
        );
        assert_eq!(normalize_pairing_code("ABC"), None);
        assert_eq!(normalize_pairing_code("0000-0000"), None);
    }

    #[test]
    fn pairing_tokens_carry_256_bits() {
        let token = new_pairing_token();
        assert!(is_pairing_token(&token), "{token}");
        assert_eq!(token.len(), PAIRING_TOKEN_PREFIX.len() + 64);
        assert_ne!(token, new_pairing_token());
        assert!(!is_pairing_token("pd_pair_abc"));
        assert!(!is_pairing_token("K7Q2-9XMD"));
    }
}
