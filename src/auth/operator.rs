//! The operator token: a secret from configuration (`--operator-token`,
//! `BIBLIO_OPERATOR_TOKEN`) that opens the operators' endpoints (the
//! dashboard's data) to a monitoring host or a person without an account.
//!
//! Only its SHA-256 digest is kept, so the secret itself cannot reach a
//! log, a `Debug` print or a panic message; a candidate is hashed the same
//! way and the digests are compared in constant time, so neither the
//! token's bytes nor its length can be learnt from response times.
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest token accepted: a guessable one would open every replica.
pub const MIN_LENGTH: usize = 16;

/// A configured operator token (its digest; see the module docs).
#[derive(Clone)]
pub struct OperatorToken {
    digest: [u8; 32],
}

impl OperatorToken {
    /// Whether `candidate` is the configured token.
    pub fn matches(&self, candidate: &str) -> bool {
        bool::from(digest(candidate).ct_eq(&self.digest))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl std::str::FromStr for OperatorToken {
    type Err = String;

    /// Refuses tokens shorter than [`MIN_LENGTH`] or holding whitespace or
    /// control characters (they would not survive an `Authorization`
    /// header); the message never repeats the token.
    fn from_str(token: &str) -> Result<Self, Self::Err> {
        if token.chars().count() < MIN_LENGTH {
            return Err(format!(
                "the operator token must be at least {MIN_LENGTH} characters long \
                 (e.g. `openssl rand -hex 32`)"
            ));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the operator token must not contain spaces or control characters".into());
        }
        Ok(Self {
            digest: digest(token),
        })
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-operator";

    #[test]
    fn only_the_configured_token_matches() {
        let token: OperatorToken = TOKEN.parse().unwrap();
        assert!(token.matches(TOKEN));
        assert!(!token.matches("0123456789abcdef-operatoR"));
        assert!(!token.matches("0123456789abcdef-operator "));
        assert!(!token.matches(""));
    }

    #[test]
    fn short_or_spaced_tokens_are_refused_without_being_repeated() {
        for bad in ["short", "0123456789abcdef ghi", "0123456789abcdef\tghi"] {
            let err = bad.parse::<OperatorToken>().unwrap_err();
            assert!(!err.contains(bad), "{err}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token: OperatorToken = TOKEN.parse().unwrap();
        let printed = format!("{token:?}");
        assert!(
            !printed.contains(TOKEN) && !printed.contains("0123"),
            "{printed}"
        );
    }
}
