use super::*;
use crate::pay::crypto::{authorization_header, SignedHeaders, Verifier};

const NOW: i64 = 1_764_000_000;

struct Fixture {
    auth: Auth,
    merchant: RsaSigner,
    platform_public: RsaVerifier,
}

fn fixture() -> Fixture {
    let merchant = RsaSigner::generate().unwrap();
    let platform = RsaSigner::generate().unwrap();
    let platform_public = RsaVerifier::from_spki_pem(&platform.public_key_pem().unwrap()).unwrap();
    let merchant_key = RsaVerifier::from_spki_pem(&merchant.public_key_pem().unwrap()).unwrap();
    let auth = Auth::new(
        "1230000109".into(),
        "5F1C72E2A8931B72A2E13AF8DEE92471EB397115".into(),
        merchant_key,
        platform,
        "PUB_KEY_ID_0114232134912410000000000000000001".into(),
    );
    Fixture {
        auth,
        merchant,
        platform_public,
    }
}

fn signed(fixture: &Fixture, url: &str, body: &[u8], timestamp: i64, serial: &str) -> HeaderMap {
    let message = request_message("POST", url, timestamp, "NONCE", body);
    let signature = fixture.merchant.sign(&message).unwrap();
    let mut headers = HeaderMap::new();
    let value = authorization_header("1230000109", serial, "NONCE", timestamp, &signature);
    headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
    headers
}

#[test]
fn a_request_verifies_only_as_it_was_signed() {
    let fixture = fixture();
    let serial = "5F1C72E2A8931B72A2E13AF8DEE92471EB397115";
    let url = "/v3/pay/transactions/jsapi";
    let body = br#"{"mchid":"1230000109"}"#;
    let headers = signed(&fixture, url, body, NOW, serial);
    let params = fixture
        .auth
        .verify_request("POST", url, &headers, body, NOW + 299)
        .unwrap();
    assert_eq!(params.nonce_str, "NONCE");

    let code = |result: Result<AuthorizationParams, ApiError>| {
        let error = result.unwrap_err();
        (
            error.status,
            error.code,
            error.detail.unwrap()["field"].clone(),
        )
    };
    let (status, error_code, field) = code(
        fixture
            .auth
            .verify_request("POST", url, &headers, b"{}", NOW),
    );
    assert_eq!(
        (status, error_code.as_str(), field.as_str()),
        (401, "SIGN_ERROR", Some("signature"))
    );
    let stale = fixture
        .auth
        .verify_request("POST", url, &headers, body, NOW + 300);
    assert_eq!(code(stale).2, "timestamp");
    let other_url = fixture
        .auth
        .verify_request("POST", "/v3/other", &headers, body, NOW);
    assert_eq!(code(other_url).2, "signature");
    let wrong_serial = signed(&fixture, url, body, NOW, "0000");
    assert_eq!(
        code(
            fixture
                .auth
                .verify_request("POST", url, &wrong_serial, body, NOW)
        )
        .2,
        "serial_no"
    );
    assert_eq!(
        code(
            fixture
                .auth
                .verify_request("POST", url, &HeaderMap::new(), body, NOW)
        )
        .0,
        401
    );
    let millis = signed(&fixture, url, body, NOW * 1000, serial);
    assert_eq!(
        code(fixture.auth.verify_request("POST", url, &millis, body, NOW)).0,
        401
    );
}

#[test]
fn answers_are_signed_with_the_platform_key_under_its_public_key_id() {
    let fixture = fixture();
    for body in [&b"{\"prepay_id\":\"wx1\"}"[..], b""] {
        let signature = fixture.auth.sign(body, NOW).unwrap();
        let verifier =
            Verifier::with_key(signature.serial.clone(), fixture.platform_public.clone());
        let headers = SignedHeaders {
            timestamp: Some(&signature.timestamp),
            nonce: Some(&signature.nonce),
            signature: Some(&signature.signature),
            serial: Some(&signature.serial),
        };
        verifier.verify(&headers, body, NOW).unwrap();
        assert!(signature.serial.starts_with("PUB_KEY_ID_"));
    }
}
