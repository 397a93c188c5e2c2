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

impl BearerToken {
    /// The same, or HTTP Basic credentials whose password is the token (any user name): what a
    /// browser can be asked for.
    pub fn admits_bearer_or_basic(&self, authorization: Option<&[u8]>) -> bool {
        if self.admits(authorization) {
            return true;
        }
        let Some(password) = authorization.and_then(basic_password) else { return false };
        let digest: [u8; 32] = Sha256::digest(&password).into();
        digest.ct_eq(&self.0).into()
    }
}

/// The password of a `Basic` header value (base64 of `user:password`).
fn basic_password(value: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let scheme_end = value.iter().position(u8::is_ascii_whitespace)?;
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim_ascii()).ok()?;
    let colon = decoded.iter().position(|byte| *byte == b':')?;
    Some(decoded[colon + 1..].to_vec())
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

    #[test]
    fn a_browser_may_give_the_token_as_a_basic_password() {
        let token = BearerToken::new("s3cret");
        // base64("anyone:s3cret") and base64("anyone:wrong")
        assert!(token.admits_bearer_or_basic(Some(b"Basic YW55b25lOnMzY3JldA==")));
        assert!(token.admits_bearer_or_basic(Some(b"Bearer s3cret")));
        assert!(!token.admits_bearer_or_basic(Some(b"Basic YW55b25lOndyb25n")));
        assert!(!token.admits_bearer_or_basic(Some(b"Basic !!")));
        assert!(!token.admits_bearer_or_basic(None));
    }
}
