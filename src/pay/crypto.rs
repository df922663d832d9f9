//! The protocol's signature and AEAD primitives (wechatpay-v3.md §1, §2, §4, §5).
//!
//! Everything cryptographic goes through aws-lc-rs: RSASSA-PKCS1-v1_5 with
//! SHA-256 (the merchant's request signatures and paySign, WeChat's response
//! and callback signatures), RSA-2048 key generation (the simulator and the
//! embedded dev mode need fresh keys, which ring cannot make), AES-256-GCM
//! (callback resources) and the CSPRNG. This file only lays out the signed
//! messages byte for byte and strips PEM armor; it implements no algorithm.
//!
//! Verification never fails loudly: a signature that is not Base64 (the
//! `WECHATPAY/SIGNTEST/` probes WeChat sends on purpose) is simply a signature
//! that does not verify.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::collections::HashMap;
use std::fmt;

/// The `Authorization` scheme: `WECHATPAY2-` + the signer's algorithm.
pub const AUTHORIZATION_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// The only `Wechatpay-Signature-Type` this crate speaks.
pub const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";
/// WeChat refuses signed messages older or newer than this (Go: `>= 300 s`).
pub const TIMESTAMP_SKEW_SECONDS_MAX: i64 = 300;
/// Length of the nonces this crate generates (the official SDKs use 32).
pub const NONCE_STR_LEN: usize = 32;
/// The APIv3 key is 32 ASCII bytes: an AES-256 key.
pub const APIV3_KEY_LEN: usize = 32;

const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";
const NONCE_ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("no PEM block labelled {label:?}")]
    PemMissing { label: &'static str },
    #[error("PEM block {label:?} is not valid Base64")]
    PemBase64 { label: &'static str },
    #[error("key rejected: {0}")]
    KeyRejected(String),
    #[error("RSA key generation failed")]
    KeyGeneration,
    #[error("RSA signing failed")]
    Signing,
    #[error("the APIv3 key must be exactly {APIV3_KEY_LEN} bytes, got {len}")]
    ApiV3KeyLength { len: usize },
    #[error("the AEAD nonce must be {NONCE_LEN} bytes, got {len}")]
    NonceLength { len: usize },
    #[error("ciphertext is not valid Base64")]
    CiphertextBase64,
    #[error("decryption failed: wrong key, nonce, associated data or ciphertext")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

// ---------------------------------------------------------------------------
// Signed messages
// ---------------------------------------------------------------------------

/// The five-line message a merchant signs: method, canonical URL (path plus
/// `?` and the raw query), timestamp, nonce, body; each line ends in `\n`,
/// the body's too, even when the body already ends in one.
pub fn request_message(
    method: &str,
    canonical_url: &str,
    timestamp_secs: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(method.len() + canonical_url.len() + nonce.len() + body.len() + 24);
    for line in [method.as_bytes(), canonical_url.as_bytes()] {
        message.extend_from_slice(line);
        message.push(b'\n');
    }
    message.extend_from_slice(response_message(timestamp_secs, nonce, body).as_slice());
    message
}

/// The three-line message WeChat signs on responses and callbacks:
/// timestamp, nonce, raw body (an empty body gives `ts\nnonce\n\n`).
pub fn response_message(timestamp_secs: i64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp_secs.to_string();
    let mut message = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    for line in [timestamp.as_bytes(), nonce.as_bytes(), body] {
        message.extend_from_slice(line);
        message.push(b'\n');
    }
    message
}

/// The four-line paySign message of `wx.requestPayment`: AppID, timeStamp,
/// nonceStr and the whole `package` value (`prepay_id=...`).
pub fn pay_sign_message(appid: &str, timestamp_secs: i64, nonce: &str, package: &str) -> Vec<u8> {
    format!("{appid}\n{timestamp_secs}\n{nonce}\n{package}\n").into_bytes()
}

// ---------------------------------------------------------------------------
// RSA
// ---------------------------------------------------------------------------

/// A merchant (or, in the simulator, WeChat) RSA private key that signs with
/// SHA256withRSA.
pub struct RsaSigner {
    key_pair: KeyPair,
}

impl RsaSigner {
    /// Loads a PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`, what the
    /// merchant platform hands out as `apiclient_key.pem`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CryptoError> {
        let der = pem_decode(pem, PRIVATE_KEY_LABEL)?;
        let key_pair = KeyPair::from_pkcs8(&der)
            .map_err(|error| CryptoError::KeyRejected(error.to_string()))?;
        Ok(Self { key_pair })
    }

    /// A fresh RSA-2048 key.
    pub fn generate() -> Result<Self, CryptoError> {
        let key_pair =
            KeyPair::generate(KeySize::Rsa2048).map_err(|_| CryptoError::KeyGeneration)?;
        Ok(Self { key_pair })
    }

    /// The key as PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn private_key_pem(&self) -> Result<String, CryptoError> {
        let der = self
            .key_pair
            .as_der()
            .map_err(|error| CryptoError::KeyRejected(error.to_string()))?;
        Ok(pem_encode(PRIVATE_KEY_LABEL, der.as_ref()))
    }

    /// The public half as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`), the
    /// form of WeChat Pay's `wxp_pub.pem`.
    pub fn public_key_pem(&self) -> Result<String, CryptoError> {
        Ok(pem_encode(PUBLIC_KEY_LABEL, &self.public_key_der()?))
    }

    /// The public half as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        let der = self
            .key_pair
            .public_key()
            .as_der()
            .map_err(|error| CryptoError::KeyRejected(error.to_string()))?;
        Ok(der.as_ref().to_vec())
    }

    /// SHA256withRSA (PKCS#1 v1.5) over `message`, standard Base64 with padding.
    pub fn sign(&self, message: &[u8]) -> Result<String, CryptoError> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
            .map_err(|_| CryptoError::Signing)?;
        Ok(BASE64.encode(signature))
    }
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("RsaSigner(..)")
    }
}

/// An RSA public key that checks SHA256withRSA signatures.
#[derive(Clone)]
pub struct RsaVerifier {
    key: ParsedPublicKey,
}

impl RsaVerifier {
    /// Loads a SubjectPublicKeyInfo PEM key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_pem(pem: &str) -> Result<Self, CryptoError> {
        Self::from_spki_der(&pem_decode(pem, PUBLIC_KEY_LABEL)?)
    }

    /// Loads a SubjectPublicKeyInfo DER key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der)
            .map_err(|error| CryptoError::KeyRejected(error.to_string()))?;
        Ok(Self { key })
    }

    /// Whether `signature_base64` is a valid signature of `message`. Anything
    /// that is not Base64 (a `WECHATPAY/SIGNTEST/` probe) is `false`.
    pub fn verify(&self, message: &[u8], signature_base64: &str) -> bool {
        match BASE64.decode(signature_base64) {
            Ok(signature) => self.key.verify_sig(message, &signature).is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for RsaVerifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("RsaVerifier(..)")
    }
}

// ---------------------------------------------------------------------------
// Authorization header
// ---------------------------------------------------------------------------

/// `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`,
/// in the order the Go and Java SDKs emit.
pub fn authorization_header(
    mchid: &str,
    serial_no: &str,
    nonce: &str,
    timestamp_secs: i64,
    signature: &str,
) -> String {
    format!(
        "{AUTHORIZATION_SCHEME} mchid=\"{mchid}\",nonce_str=\"{nonce}\",timestamp=\"{timestamp_secs}\",serial_no=\"{serial_no}\",signature=\"{signature}\""
    )
}

/// The five pairs of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationParams {
    pub mchid: String,
    pub nonce_str: String,
    pub timestamp: String,
    pub serial_no: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("the scheme is not {AUTHORIZATION_SCHEME}")]
    Scheme,
    #[error("malformed pair {0:?}: expected key=\"value\"")]
    Malformed(String),
    #[error("pair {0:?} appears twice")]
    Duplicate(String),
    #[error("pair {0:?} is missing")]
    Missing(&'static str),
}

/// Parses an `Authorization` value. The docs give the five pairs no order and
/// the SDKs each use another, so pairs are matched by name; spaces around
/// the commas are tolerated, unknown names are ignored, a repeated one is an
/// error.
pub fn parse_authorization(value: &str) -> Result<AuthorizationParams, AuthorizationError> {
    let pairs = value
        .trim()
        .strip_prefix(AUTHORIZATION_SCHEME)
        .filter(|rest| rest.starts_with(' '))
        .ok_or(AuthorizationError::Scheme)?;
    let mut found: HashMap<&str, &str> = HashMap::with_capacity(5);
    for pair in pairs.split(',') {
        let pair = pair.trim();
        let (name, quoted) = pair
            .split_once('=')
            .ok_or_else(|| AuthorizationError::Malformed(pair.to_owned()))?;
        let unquoted = quoted
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .filter(|inner| !inner.contains('"'))
            .ok_or_else(|| AuthorizationError::Malformed(pair.to_owned()))?;
        if found.insert(name.trim(), unquoted).is_some() {
            return Err(AuthorizationError::Duplicate(name.trim().to_owned()));
        }
    }
    let mut take = |name: &'static str| {
        found
            .remove(name)
            .map(str::to_owned)
            .ok_or(AuthorizationError::Missing(name))
    };
    Ok(AuthorizationParams {
        mchid: take("mchid")?,
        nonce_str: take("nonce_str")?,
        timestamp: take("timestamp")?,
        serial_no: take("serial_no")?,
        signature: take("signature")?,
    })
}

// ---------------------------------------------------------------------------
// AEAD_AES_256_GCM with the APIv3 key
// ---------------------------------------------------------------------------

/// The merchant's APIv3 key: 32 ASCII bytes used as an AES-256-GCM key for
/// callback resources (and platform-certificate downloads).
pub struct ApiV3Key {
    key: LessSafeKey,
}

impl ApiV3Key {
    /// Refuses any length but 32 bytes: a 16-byte key would silently make
    /// AES-128, which WeChat never uses.
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != APIV3_KEY_LEN {
            return Err(CryptoError::ApiV3KeyLength { len: key.len() });
        }
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| CryptoError::ApiV3KeyLength { len: key.len() })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Decrypts a resource: `nonce` is the 12-byte IV as sent, `ciphertext_base64`
    /// ends in the 16-byte tag.
    pub fn decrypt(
        &self,
        nonce: &str,
        associated_data: &str,
        ciphertext_base64: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let nonce = aead_nonce(nonce)?;
        let mut in_out = BASE64
            .decode(ciphertext_base64)
            .map_err(|_| CryptoError::CiphertextBase64)?;
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(associated_data.as_bytes()), &mut in_out)
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }

    /// Encrypts as WeChat does: Base64(ciphertext ‖ tag). Deterministic for a
    /// given nonce, so a nonce must never be reused with real data.
    pub fn encrypt(
        &self,
        nonce: &str,
        associated_data: &str,
        plaintext: &[u8],
    ) -> Result<String, CryptoError> {
        let nonce = aead_nonce(nonce)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(associated_data.as_bytes()), &mut in_out)
            .map_err(|_| CryptoError::Encrypt)?;
        Ok(BASE64.encode(in_out))
    }
}

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("ApiV3Key(..)")
    }
}

fn aead_nonce(nonce: &str) -> Result<Nonce, CryptoError> {
    Nonce::try_assume_unique_for_key(nonce.as_bytes())
        .map_err(|_| CryptoError::NonceLength { len: nonce.len() })
}

// ---------------------------------------------------------------------------
// Nonces
// ---------------------------------------------------------------------------

/// 32 characters from `[0-9A-Za-z]`, drawn from the CSPRNG (as the SDKs do).
pub fn nonce_str() -> String {
    random_alphanumeric(NONCE_STR_LEN)
}

/// `len` characters from `[0-9A-Za-z]` by rejection sampling, so every
/// character is equally likely. Also makes the 12-character AEAD nonces.
pub fn random_alphanumeric(len: usize) -> String {
    // 248 = 4 × 62: bytes at or above it would favour the first characters.
    const ACCEPT_BELOW: u8 = 248;
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut bytes).expect("the system CSPRNG is available");
        for &byte in bytes.iter().filter(|&&byte| byte < ACCEPT_BELOW) {
            if out.len() == len {
                break;
            }
            out.push(char::from(NONCE_ALPHABET[usize::from(byte % 62)]));
        }
    }
    out
}

/// Lower-case hex SHA-1 of `bytes`: the trade bill's `hash_value` (SHA-1 is
/// the protocol's choice there, not an integrity guarantee we rely on alone).
pub fn sha1_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------
// Verifier keyed by serial
// ---------------------------------------------------------------------------

/// The four signature headers of a response or callback, as received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub serial: Option<&'a str>,
}

/// Header names (http::HeaderMap matches them case-insensitively).
pub const HEADER_TIMESTAMP: &str = "wechatpay-timestamp";
pub const HEADER_NONCE: &str = "wechatpay-nonce";
pub const HEADER_SIGNATURE: &str = "wechatpay-signature";
pub const HEADER_SERIAL: &str = "wechatpay-serial";
pub const HEADER_SIGNATURE_TYPE: &str = "wechatpay-signature-type";

impl<'a> SignedHeaders<'a> {
    /// Reads the four headers; a value that is not visible ASCII counts as
    /// absent (no genuine value ever is).
    pub fn from_header_map(headers: &'a http::HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        Self {
            timestamp: text(HEADER_TIMESTAMP),
            nonce: text(HEADER_NONCE),
            signature: text(HEADER_SIGNATURE),
            serial: text(HEADER_SERIAL),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("Wechatpay-Timestamp {0:?} is not a Unix time in seconds")]
    MalformedTimestamp(String),
    #[error("Wechatpay-Timestamp {timestamp} is {TIMESTAMP_SKEW_SECONDS_MAX} s or more away from now ({now})")]
    StaleTimestamp { timestamp: i64, now: i64 },
    #[error("no key for Wechatpay-Serial {0:?}")]
    UnknownSerial(String),
    #[error("signature does not verify")]
    BadSignature,
}

/// WeChat Pay's verification keys by the serial that names them: the
/// `PUB_KEY_ID_...` of a WeChat Pay public key and/or the serials of
/// platform certificates (whose public keys the caller extracts). During a
/// certificate → public-key migration callbacks come signed with either, so
/// both can be held at once.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    keys: HashMap<String, RsaVerifier>,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier holding one key under `serial` (typically `PUB_KEY_ID_...`).
    pub fn with_key(serial: impl Into<String>, key: RsaVerifier) -> Self {
        let mut verifier = Self::new();
        verifier.insert(serial, key);
        verifier
    }

    /// Adds or replaces the key named `serial`.
    pub fn insert(&mut self, serial: impl Into<String>, key: RsaVerifier) {
        self.keys.insert(serial.into(), key);
    }

    /// Whether a key named `serial` is held.
    pub fn contains(&self, serial: &str) -> bool {
        self.keys.contains_key(serial)
    }

    /// Checks a response or callback: all headers present, the timestamp
    /// within ±300 s of `now_secs` (exclusive), a key for the serial, and the
    /// signature over `ts\nnonce\nbody\n` with the raw body as received.
    pub fn verify(
        &self,
        headers: &SignedHeaders<'_>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), VerifyError> {
        let timestamp_text = headers
            .timestamp
            .ok_or(VerifyError::MissingHeader("Wechatpay-Timestamp"))?;
        let nonce = headers
            .nonce
            .ok_or(VerifyError::MissingHeader("Wechatpay-Nonce"))?;
        let signature = headers
            .signature
            .ok_or(VerifyError::MissingHeader("Wechatpay-Signature"))?;
        let serial = headers
            .serial
            .ok_or(VerifyError::MissingHeader("Wechatpay-Serial"))?;
        let timestamp = parse_timestamp(timestamp_text)?;
        if timestamp.abs_diff(now_secs) >= TIMESTAMP_SKEW_SECONDS_MAX.unsigned_abs() {
            return Err(VerifyError::StaleTimestamp {
                timestamp,
                now: now_secs,
            });
        }
        let key = self
            .keys
            .get(serial)
            .ok_or_else(|| VerifyError::UnknownSerial(serial.to_owned()))?;
        if key.verify(&response_message(timestamp, nonce, body), signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

/// Digits only: `i64::from_str` would also take a sign, which would make the
/// signed message differ from the header's text.
fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    let malformed = || VerifyError::MalformedTimestamp(text.to_owned());
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(malformed());
    }
    let timestamp: i64 = text.parse().map_err(|_| malformed())?;
    // A leading zero would also change the message: `to_string` drops it.
    if timestamp.to_string() != text {
        return Err(malformed());
    }
    Ok(timestamp)
}

// ---------------------------------------------------------------------------
// PEM armor
// ---------------------------------------------------------------------------

/// The DER inside the first `-----BEGIN {label}-----` block; text outside the
/// block (comments, other blocks) is ignored.
pub fn pem_decode(pem: &str, label: &'static str) -> Result<Vec<u8>, CryptoError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem
        .split_once(begin.as_str())
        .and_then(|(_, rest)| rest.split_once(end.as_str()))
        .map(|(body, _)| body)
        .ok_or(CryptoError::PemMissing { label })?;
    let base64_text: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64
        .decode(base64_text)
        .map_err(|_| CryptoError::PemBase64 { label })
}

/// PEM with 64-character lines and a final newline.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let encoded = BASE64.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("Base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
pub(crate) mod tests;
