//! Bearer tokens: what the OTLP receivers and `/metrics` ask of a request when a token file is
//! configured. The scheme is matched without regard to case (RFC 7235), and the credentials are
//! compared in constant time over SHA-256 digests of both, so neither the token's bytes nor its
//! length show in how long a refusal takes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configured token, kept only as its digest.
#[derive(Clone, Debug)]
pub struct BearerToken([u8; 32]);

impl BearerToken {
    pub fn new(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether an `Authorization` header value (`Bearer <token>`) presents this token.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let presented = authorization.and_then(credentials).unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.0).into()
    }
}

/// The credentials of a `Bearer` header value, the scheme matched in any case.
fn credentials(value: &[u8]) -> Option<&[u8]> {
    let scheme_end = value.iter().position(u8::is_ascii_whitespace)?;
    let (scheme, rest) = value.split_at(scheme_end);
    scheme.eq_ignore_ascii_case(b"bearer").then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_only_the_right_token_passes() {
        let token = BearerToken::new("s3cret");
        for right in [&b"Bearer s3cret"[..], b"bearer s3cret", b"BEARER  s3cret"] {
            assert!(token.admits(Some(right)), "{}", String::from_utf8_lossy(right));
        }
        for wrong in [
            None,
            Some(&b"Bearer s3cre"[..]),
            Some(b"Bearer s3cret!"),
            Some(b"s3cret"),
            Some(b"Basic s3cret"),
        ] {
            assert!(!token.admits(wrong), "{wrong:?}");
        }
    }
}
