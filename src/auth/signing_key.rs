//! The key that signs access tokens: at least [`MIN_BYTES`] (32) bytes,
//! given as hex. Anyone holding it can mint a token for any user, so a
//! short one (an empty one was accepted before) would let tokens be forged
//! by guessing it. It comes from `--token-signing-key` /
//! `BIBLIO_TOKEN_SIGNING_KEY` when given (the same on every replica), or
//! else from the database's `settings` table, where the first replica to
//! start stores one it generates. Either is refused at start when short or
//! not hex, with what to do; the refusal never repeats the key.
use rand_core::{OsRng, RngCore};

/// The shortest key accepted, in bytes: HMAC-SHA256's own output size.
pub const MIN_BYTES: usize = 32;

/// The flag and variable that give the key, as messages name them.
pub const FLAG: &str = "--token-signing-key / BIBLIO_TOKEN_SIGNING_KEY";

/// How an operator makes a key, as messages say it.
const MAKE_ONE: &str = "make one with `openssl rand -hex 32`";

/// A token signing key of at least [`MIN_BYTES`] bytes. Its `Debug` shows
/// no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// A new random key of [`MIN_BYTES`] bytes.
    pub fn generate() -> Self {
        let mut key = vec![0u8; MIN_BYTES];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// `bytes` as a key, if there are enough of them.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_BYTES {
            return Err(format!(
                "it is {} bytes; at least {MIN_BYTES} bytes are needed",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// A key written as hex (either case); why not, in words that never
    /// repeat it.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(format!(
                "it is empty; at least {MIN_BYTES} bytes are needed"
            ));
        }
        let bytes = hex::decode(text).map_err(|_| {
            format!(
                "it is not hex (at least {MIN_BYTES} bytes are needed, as {} hex digits)",
                2 * MIN_BYTES
            )
        })?;
        Self::from_bytes(bytes)
    }

    /// The key as the `settings` table stores it.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The key's bytes, for HMAC.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The refusal of a key stored in the database, with the way out.
    pub fn stored_problem(why: &str, setting: &str) -> String {
        format!(
            "the token signing key stored in the database (table settings, key {setting}) \
             cannot be used: {why}. Delete that row and restart to have a new one generated \
             (every token issued so far is then refused), or give every replica the same key \
             with {FLAG} ({MAKE_ONE})"
        )
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

impl std::str::FromStr for SigningKey {
    type Err = String;

    /// The flag's value: hex, at least [`MIN_BYTES`] bytes; the error says
    /// why and how to make one (clap's parser names the flag).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_hex(text).map_err(|why| format!("{why}; {MAKE_ONE}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_at_least_32_bytes_of_hex_and_its_refusal_never_repeats_it() {
        let good = "0123456789abcdefFEDCBA9876543210".repeat(2);
        assert_eq!(SigningKey::from_hex(&good).unwrap().bytes().len(), 32);
        for bad in [
            "",
            "0123456789abcdef",
            "0123",
            "xyz",
            "abc",
            &"g".repeat(64),
        ] {
            let err = bad.parse::<SigningKey>().unwrap_err();
            assert!(err.contains("32 bytes"), "{err}");
            assert!(err.contains("openssl rand -hex 32"), "{err}");
            if !bad.is_empty() {
                assert!(!err.contains(bad), "{err}");
            }
        }
    }

    #[test]
    fn a_generated_key_reads_back_from_its_hex_and_debug_shows_none_of_it() {
        let key = SigningKey::generate();
        assert_eq!(SigningKey::from_hex(&key.to_hex()).unwrap(), key);
        assert_eq!(format!("{key:?}"), "SigningKey(redacted)");
    }
}
