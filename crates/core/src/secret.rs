//! Secrets at rest. Private keys and access-key secrets are sealed with AES-256-GCM under
//! the master key before they reach the store, so the database file never holds a
//! plaintext key byte. The master key lives beside the data (mode 0600) or comes from
//! `CERTBIND_MASTER_KEY`.

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Sealed values start with this tag so a future key rotation can tell versions apart.
const SEALED_TAG: &[u8] = b"cb1";

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("master key must be 32 bytes, base64 or hex encoded")]
    BadMasterKey,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open under this master key (wrong CERTBIND_MASTER_KEY?)")]
    WrongKey,
    #[error("system random source failed")]
    Random,
}

pub struct MasterKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SecretError::BadMasterKey)?;
        Ok(MasterKey { key: LessSafeKey::new(unbound), rng: SystemRandom::new() })
    }

    /// Accepts 32 bytes written as base64 (the generated file's form) or as 64 hex digits.
    pub fn from_text(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            hex::decode(text)
                .ok()
                .filter(|b| b.len() == 32)
                .or_else(|| B64.decode(text).ok())
                .ok_or(SecretError::BadMasterKey)?,
        );
        Self::from_bytes(&bytes)
    }

    /// A fresh random master key and its text form (to write to the key file).
    pub fn generate() -> Result<(Self, Zeroizing<String>), SecretError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new().fill(bytes.as_mut()).map_err(|_| SecretError::Random)?;
        let text = Zeroizing::new(B64.encode(bytes.as_ref()));
        Ok((Self::from_bytes(bytes.as_ref())?, text))
    }

    /// Seals `plaintext`; `context` binds the value to where it is stored (say the
    /// certificate id) so a sealed value copied to another row will not open.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut buf)
            .map_err(|_| SecretError::Malformed)?;
        let mut out = Vec::with_capacity(SEALED_TAG.len() + NONCE_LEN + buf.len());
        out.extend_from_slice(SEALED_TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let rest = sealed.strip_prefix(SEALED_TAG).ok_or(SecretError::Malformed)?;
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Malformed)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self.key.open_in_place(nonce, Aad::from(context), &mut buf).map_err(|_| SecretError::WrongKey)?.len();
        buf.truncate(len);
        Ok(buf)
    }

    pub fn open_string(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<String>, SecretError> {
        let bytes = self.open(sealed, context)?;
        String::from_utf8(bytes.to_vec()).map(Zeroizing::new).map_err(|_| SecretError::Malformed)
    }
}

/// Random text from an alphabet, for access key ids and secrets.
pub fn random_token(len: usize, alphabet: &[u8]) -> String {
    let rng = SystemRandom::new();
    let mut bytes = vec![0u8; len];
    // A failing system RNG leaves nothing sane to do; ring only fails on broken platforms.
    rng.fill(&mut bytes).expect("system random source");
    bytes.iter().map(|b| alphabet[*b as usize % alphabet.len()] as char).collect()
}

pub const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new access key pair: an id safe in every dialect's credential syntax (letters and
/// digits only) and a 40-character secret.
pub fn new_access_key() -> (String, Zeroizing<String>) {
    (format!("CB{}", random_token(18, KEY_ID_ALPHABET)), Zeroizing::new(random_token(40, SECRET_ALPHABET)))
}

/// Compares two secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_with_same_key_and_context() {
        let (key, text) = MasterKey::generate().unwrap();
        let sealed = key.seal(b"-----BEGIN PRIVATE KEY-----", b"cert-1").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"BEGIN"));
        assert_eq!(&key.open(&sealed, b"cert-1").unwrap()[..], b"-----BEGIN PRIVATE KEY-----");
        assert!(matches!(key.open(&sealed, b"cert-2"), Err(SecretError::WrongKey)));
        let same = MasterKey::from_text(&text).unwrap();
        assert!(same.open(&sealed, b"cert-1").is_ok());
        let (other, _) = MasterKey::generate().unwrap();
        assert!(matches!(other.open(&sealed, b"cert-1"), Err(SecretError::WrongKey)));
        assert!(matches!(key.open(b"cb1short", b"cert-1"), Err(SecretError::Malformed)));
    }

    #[test]
    fn master_key_text_forms() {
        assert!(MasterKey::from_text(&"ab".repeat(32)).is_ok());
        assert!(matches!(MasterKey::from_text("short"), Err(SecretError::BadMasterKey)));
    }

    #[test]
    fn access_keys_are_distinct_and_alphanumeric() {
        let (a, sa) = new_access_key();
        let (b, _) = new_access_key();
        assert_ne!(a, b);
        assert_eq!(sa.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
