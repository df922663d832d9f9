//! What the `notification` target does with one input, shared with
//! `examples/notification_seed.rs`, which writes the seeds in this format.
//!
//! Input: a mode byte, then header lines `Name: value\n` up to the first
//! empty line, then the body. Header lines that are not valid HTTP headers
//! are skipped. The mode byte (`mode % 3`) decides how much of the input is
//! taken as sent:
//! - `0` raw: headers and body exactly as given (forgeries, probes, stale
//!   timestamps, garbage: almost everything stops at the signature);
//! - `1` re-signed: the body as given, the four signature headers replaced
//!   by a valid signature with the test key at [`NOW`] (reaches envelope
//!   parsing, the algorithm check and decryption; mutations of the envelope
//!   around a seed's valid ciphertext reach the resource parsers);
//! - `2` sealed: the body is a resource *plaintext*, encrypted with the test
//!   APIv3 key into an envelope whose event type is picked by `mode / 3 % 5`
//!   (payment, the three refund events, an unknown one), then signed (reaches
//!   the transaction and refund resource parsers with arbitrary JSON).
//!
//! The key set is fixed: the WeChat Pay public key is the Go SDK's test key
//! under [`PUBLIC_KEY_ID`], the APIv3 key is wechatpay-java's test key.

#![allow(dead_code)]

use flashgate::pay::crypto::{self, ApiV3Key, RsaSigner, RsaVerifier, Verifier};
use flashgate::pay::notify::{Notification, NotificationVerifier, NotifyError};
use flashgate::pay::wire::{EncryptedResource, NotificationEnvelope, ALGORITHM_AEAD_AES_256_GCM};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::OnceLock;

pub const NOW: i64 = 1_764_000_000;
pub const MCHID: &str = "1230000109";
pub const APPID: &str = "wxd678efh567hg6787";
pub const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";
pub const APIV3_KEY: &[u8] = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
/// Fixed so that inputs and seeds are deterministic.
pub const SIGNATURE_NONCE: &str = "FUZZ0NONCE0000000000000000000000";
pub const AEAD_NONCE: &str = "fuzznonce012";
pub const EVENTS: [(&str, &str); 5] = [
    ("TRANSACTION.SUCCESS", "transaction"),
    ("REFUND.SUCCESS", "refund"),
    ("REFUND.ABNORMAL", "refund"),
    ("REFUND.CLOSED", "refund"),
    ("MARKETING.FAVOR.USED", "coupon"),
];

pub struct Keys {
    pub signer: RsaSigner,
    pub notifications: NotificationVerifier,
    pub apiv3: ApiV3Key,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pem = include_str!("../../src/pay/testdata/wechatpay_go_test_key.pem")
            .replace("TESTING KEY", "PRIVATE KEY");
        let signer = RsaSigner::from_pkcs8_pem(&pem).expect("the Go SDK test key loads");
        let public = RsaVerifier::from_spki_pem(&signer.public_key_pem().unwrap()).unwrap();
        let notifications = NotificationVerifier::new(
            Verifier::with_key(PUBLIC_KEY_ID, public),
            ApiV3Key::new(APIV3_KEY).unwrap(),
            MCHID,
            APPID,
        );
        Keys {
            signer,
            notifications,
            apiv3: ApiV3Key::new(APIV3_KEY).unwrap(),
        }
    })
}

/// Splits `mode`, header lines and body.
pub fn split(data: &[u8]) -> Option<(u8, HeaderMap, &[u8])> {
    let (&mode, mut rest) = data.split_first()?;
    let mut headers = HeaderMap::new();
    loop {
        let Some(end) = rest.iter().position(|&byte| byte == b'\n') else {
            return Some((mode, headers, rest));
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() {
            return Some((mode, headers, rest));
        }
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
}

/// The four signature headers for `body`, signed with the test key at [`NOW`].
pub fn sign_into(headers: &mut HeaderMap, body: &[u8]) {
    let signature = keys()
        .signer
        .sign(&crypto::response_message(NOW, SIGNATURE_NONCE, body))
        .expect("signing with the test key");
    headers.insert("wechatpay-timestamp", HeaderValue::from(NOW));
    headers.insert("wechatpay-nonce", HeaderValue::from_static(SIGNATURE_NONCE));
    headers.insert(
        "wechatpay-signature",
        HeaderValue::from_str(&signature).unwrap(),
    );
    headers.insert("wechatpay-serial", HeaderValue::from_static(PUBLIC_KEY_ID));
}

/// An envelope around `plaintext` sealed with the test APIv3 key, as JSON.
pub fn sealed_envelope(event: usize, plaintext: &[u8]) -> Vec<u8> {
    let (event_type, original_type) = EVENTS[event % EVENTS.len()];
    let envelope = NotificationEnvelope {
        id: "EV-2026112420150400000000000001".to_owned(),
        create_time: "2026-11-24T20:15:04+08:00".to_owned(),
        resource_type: "encrypt-resource".to_owned(),
        event_type: event_type.to_owned(),
        summary: "支付成功".to_owned(),
        resource: EncryptedResource {
            original_type: original_type.to_owned(),
            algorithm: ALGORITHM_AEAD_AES_256_GCM.to_owned(),
            ciphertext: keys()
                .apiv3
                .encrypt(AEAD_NONCE, original_type, plaintext)
                .expect("sealing with the test key"),
            associated_data: original_type.to_owned(),
            nonce: AEAD_NONCE.to_owned(),
        },
    };
    serde_json::to_vec(&envelope).expect("an envelope serialises")
}

/// One input through `NotificationVerifier::parse`; `None` for an empty input.
pub fn run(data: &[u8]) -> Option<Result<Notification, NotifyError>> {
    let (mode, mut headers, body) = split(data)?;
    let outcome = match mode % 3 {
        0 => keys().notifications.parse(&headers, body, NOW),
        1 => {
            sign_into(&mut headers, body);
            keys().notifications.parse(&headers, body, NOW)
        }
        _ => {
            let envelope = sealed_envelope(usize::from(mode / 3), body);
            sign_into(&mut headers, &envelope);
            keys().notifications.parse(&headers, &envelope, NOW)
        }
    };
    Some(outcome)
}

/// Writes one input: mode, header lines, empty line, body.
pub fn encode(mode: u8, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut input = vec![mode];
    for (name, value) in headers {
        input.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    input.push(b'\n');
    input.extend_from_slice(body);
    input
}
