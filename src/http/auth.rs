//! Authentication: storefront session tokens and admin tokens.
//!
//! Storefront: an HS256 JWT from the brand's login service; `sub` is the
//! buyer's openid, `exp` is checked. The HMAC is ring's and its verification
//! is constant-time. Admin: bearer tokens with a role, kept only as SHA-256
//! digests and compared in constant time (`subtle`) against every configured digest.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::{DecodeSliceError, Engine as _};
use ring::{digest, hmac};
use serde::Deserialize;
use std::borrow::Cow;
use subtle::ConstantTimeEq;

/// What an admin token may do. `admin` ⊇ `host` ⊇ `ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Ops,
    Host,
    Admin,
}

impl Role {
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "ops" => Some(Role::Ops),
            "host" => Some(Role::Host),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn allows(self, required: Role) -> bool {
        self >= required
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ops => "ops",
            Role::Host => "host",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token in the Authorization header")]
    Missing,
    #[error("malformed session token")]
    Malformed,
    #[error("session token signature is invalid")]
    BadSignature,
    #[error("session token has expired")]
    Expired,
    #[error("unknown admin token")]
    UnknownAdminToken,
}

/// Verifies (and, for tools and tests, issues) storefront session tokens.
pub struct SessionKeys {
    key: hmac::Key,
    /// [`JWT_HEADER`] in base64url: a token whose header is exactly this
    /// (every token this gateway issues, and what HS256 libraries write)
    /// skips decoding and parsing it.
    header_b64: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims<'a> {
    /// Borrowed from the decoded payload unless it holds escapes.
    #[serde(borrow)]
    sub: Cow<'a, str>,
    exp: i64,
}

/// Room on the stack for a decoded payload; a longer one is decoded into
/// the heap.
const PAYLOAD_BYTES_ON_STACK: usize = 256;

const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
pub const OPENID_BYTES_MAX: usize = 128;

impl SessionKeys {
    pub fn new(secret: &[u8]) -> SessionKeys {
        SessionKeys {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            header_b64: URL_SAFE_NO_PAD.encode(JWT_HEADER),
        }
    }

    /// Returns the buyer's openid when the token is valid at `now_seconds`.
    pub fn verify(&self, token: &str, now_seconds: i64) -> Result<String, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        // An HS256 tag is 32 bytes; room for twice that tells a tag of
        // the wrong length (a bad signature) from text that is not base64.
        let mut tag = [0u8; 64];
        let tag = match URL_SAFE_NO_PAD.decode_slice(signature, &mut tag) {
            Ok(length) => &tag[..length],
            Err(DecodeSliceError::OutputSliceTooSmall) => return Err(AuthError::BadSignature),
            Err(DecodeSliceError::DecodeError(_)) => return Err(AuthError::Malformed),
        };
        let signed = &token[..header.len() + 1 + payload.len()];
        hmac::verify(&self.key, signed.as_bytes(), tag).map_err(|_| AuthError::BadSignature)?;
        if header != self.header_b64 {
            let header: Header = decode_part(header)?;
            if header.alg != "HS256" {
                return Err(AuthError::Malformed);
            }
        }
        let mut on_stack = [0u8; PAYLOAD_BYTES_ON_STACK];
        let on_heap;
        let decoded = match URL_SAFE_NO_PAD.decode_slice(payload, &mut on_stack) {
            Ok(length) => &on_stack[..length],
            Err(DecodeSliceError::OutputSliceTooSmall) => {
                on_heap = URL_SAFE_NO_PAD
                    .decode(payload)
                    .map_err(|_| AuthError::Malformed)?;
                &on_heap[..]
            }
            Err(DecodeSliceError::DecodeError(_)) => return Err(AuthError::Malformed),
        };
        let claims: Claims = serde_json::from_slice(decoded).map_err(|_| AuthError::Malformed)?;
        let sub_ok = !claims.sub.is_empty()
            && claims.sub.len() <= OPENID_BYTES_MAX
            && claims.sub.bytes().all(|byte| (0x21..=0x7e).contains(&byte));
        if !sub_ok {
            return Err(AuthError::Malformed);
        }
        if claims.exp <= now_seconds {
            return Err(AuthError::Expired);
        }
        Ok(claims.sub.into_owned())
    }

    /// Issues a token for `openid` expiring at `exp_seconds` (Unix time).
    pub fn issue(&self, openid: &str, exp_seconds: i64) -> String {
        let claims = serde_json::json!({ "sub": openid, "exp": exp_seconds });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(JWT_HEADER),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Admin tokens as `(role, SHA-256 digest)`.
pub struct AdminTokens {
    digests: Vec<(Role, [u8; 32])>,
}

impl AdminTokens {
    /// Parses `role:token` or `role:sha256:<64 hex digits>` entries.
    pub fn parse(entries: &[String]) -> Result<AdminTokens, String> {
        let mut digests = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let (role, secret) = entry
                .split_once(':')
                .ok_or_else(|| format!("entry {index} must be `role:token`"))?;
            let role = Role::parse(role).ok_or_else(|| {
                format!("entry {index} has unknown role `{role}` (use admin, host or ops)")
            })?;
            let digest = match secret.strip_prefix("sha256:") {
                Some(hex) => parse_hex_digest(hex)
                    .ok_or_else(|| format!("entry {index}: sha256 needs 64 hex digits"))?,
                None if secret.contains('.') => {
                    return Err(format!("entry {index}: a token may not contain '.'"));
                }
                None if secret.len() >= 12 => sha256(secret.as_bytes()),
                None => {
                    return Err(format!(
                        "entry {index}: a token needs at least 12 characters"
                    ))
                }
            };
            digests.push((role, digest));
        }
        Ok(AdminTokens { digests })
    }

    /// The role of `token`. Every digest is compared, in constant time, so
    /// the time taken says nothing about which token came close.
    pub fn authenticate(&self, token: &str) -> Result<Role, AuthError> {
        let presented = sha256(token.as_bytes());
        let mut found = None;
        for (role, digest) in &self.digests {
            if constant_time_eq(&presented, digest) {
                found = found.max(Some(*role));
            }
        }
        found.ok_or(AuthError::UnknownAdminToken)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// Constant-time equality (the `subtle` crate): no early exit on a mismatch.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: Option<&http::HeaderValue>) -> Result<&str, AuthError> {
    let value = header
        .and_then(|value| value.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
