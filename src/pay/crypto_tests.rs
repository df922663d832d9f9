//! Tests of the primitives against the fixed vectors of
//! shared/wechatpay-v3-vectors.md (V1–V3, V6 from the official SDKs; V7
//! derived by us with V1's key and labelled so).

use super::*;

/// V1's key: wechatpay-go's `testPrivateKeyStr` (armor `TESTING KEY`, swapped
/// before loading, as the Go test does).
pub(crate) fn go_test_signer() -> RsaSigner {
    let pem =
        include_str!("testdata/wechatpay_go_test_key.pem").replace("TESTING KEY", "PRIVATE KEY");
    RsaSigner::from_pkcs8_pem(&pem).expect("the Go SDK test key loads")
}

fn go_test_verifier() -> RsaVerifier {
    let signer = go_test_signer();
    RsaVerifier::from_spki_pem(&signer.public_key_pem().unwrap()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

const V1_SIGNATURE: &str = "BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOhuH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwfLpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg==";

const V2_TIMESTAMP: i64 = 1624523846;
const V2_NONCE: &str = "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz";
const V2_SERIAL: &str = "D7CE59D1F522D701";
const V2_BODY: &str = r#"{"id":"3119dfba-e649-5eec-ab1e-3412bc4d2e17","create_time":"2021-06-24T16:37:26+08:00","resource_type":"encrypt-resource","event_type":"PAYSCORE.USER_OPEN_SERVICE","summary":"签约成功","resource":{"original_type":"payscore","algorithm":"AEAD_AES_256_GCM","ciphertext":"YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZttevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==","associated_data":"payscore","nonce":"Kj7QIyUiYx1q"}}"#;
const V2_SIGNATURE: &str = "tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXFlbYZTOQrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1VEA1IBLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdkNO6B2Cke5e8VTxY406ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q==";

const V3_KEY: &[u8] = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

fn v2_headers() -> SignedHeaders<'static> {
    SignedHeaders {
        timestamp: Some("1624523846"),
        nonce: Some(V2_NONCE),
        signature: Some(V2_SIGNATURE),
        serial: Some(V2_SERIAL),
    }
}

fn v2_verifier() -> Verifier {
    Verifier::with_key(V2_SERIAL, go_test_verifier())
}

#[test]
fn v1_go_sdk_key_signs_source_as_expected() {
    let signer = go_test_signer();
    let spki_sha256 = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &signer.public_key_der().unwrap(),
    );
    assert_eq!(
        hex(spki_sha256.as_ref()),
        "8a5b82f18120806bb2c6b46e1a2f8687ceaa20a45bc2b649e37e6d9878336dc5",
        "the key was extracted from the Go SDK test intact"
    );
    let signature = signer.sign(b"source").unwrap();
    assert_eq!(signature.len(), 344);
    assert_eq!(signature, V1_SIGNATURE);
    assert!(go_test_verifier().verify(b"source", V1_SIGNATURE));
    assert!(!go_test_verifier().verify(b"sourcE", V1_SIGNATURE));
}

#[test]
fn v2_callback_signature_verifies_over_the_raw_body() {
    let message = response_message(V2_TIMESTAMP, V2_NONCE, V2_BODY.as_bytes());
    assert!(message.starts_with(b"1624523846\nEcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz\n{"));
    assert!(message.ends_with(b"}}\n"));
    assert!(go_test_verifier().verify(&message, V2_SIGNATURE));
    assert_eq!(
        v2_verifier().verify(&v2_headers(), V2_BODY.as_bytes(), V2_TIMESTAMP),
        Ok(())
    );
}

#[test]
fn v2_aes_128_key_is_rejected_because_apiv3_keys_are_32_bytes() {
    // V2's resource is encrypted with `testMchAPIv3Key0`, a 16-byte key (AES-128
    // in the Go SDK test). Real APIv3 keys are 32 bytes (AES-256); a strict
    // ApiV3Key must refuse it rather than quietly switch to AES-128.
    assert_eq!(
        ApiV3Key::new(b"testMchAPIv3Key0").unwrap_err(),
        CryptoError::ApiV3KeyLength { len: 16 }
    );
    assert!(ApiV3Key::new(b"").is_err());
    assert!(ApiV3Key::new(&[b'k'; 33]).is_err());
}

#[test]
fn tampered_callbacks_are_rejected_with_distinct_errors() {
    let verifier = v2_verifier();
    let body = V2_BODY.as_bytes();

    let mut changed = body.to_vec();
    changed[10] ^= 1;
    assert_eq!(
        verifier.verify(&v2_headers(), &changed, V2_TIMESTAMP),
        Err(VerifyError::BadSignature)
    );

    // The window is ±300 s, exclusive: 299 s passes, 300 s fails, both ways.
    assert_eq!(
        verifier.verify(&v2_headers(), body, V2_TIMESTAMP + 299),
        Ok(())
    );
    assert_eq!(
        verifier.verify(&v2_headers(), body, V2_TIMESTAMP - 299),
        Ok(())
    );
    for now in [
        V2_TIMESTAMP + 300,
        V2_TIMESTAMP - 300,
        0,
        i64::MAX,
        i64::MIN,
    ] {
        assert!(matches!(
            verifier.verify(&v2_headers(), body, now),
            Err(VerifyError::StaleTimestamp { .. })
        ));
    }

    let unknown = SignedHeaders {
        serial: Some("PUB_KEY_ID_0000000000000024101100397200000006"),
        ..v2_headers()
    };
    assert_eq!(
        verifier.verify(&unknown, body, V2_TIMESTAMP),
        Err(VerifyError::UnknownSerial(
            "PUB_KEY_ID_0000000000000024101100397200000006".into()
        ))
    );

    for probe in [
        "WECHATPAY/SIGNTEST/tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkq",
        "WECHATPAY/SIGNTEST/",
        "",
        "not base64 at all!",
    ] {
        let probed = SignedHeaders { signature: Some(probe), ..v2_headers() };
        assert_eq!(verifier.verify(&probed, body, V2_TIMESTAMP), Err(VerifyError::BadSignature), "{probe:?}");
    }

    let missing_nonce = SignedHeaders {
        nonce: None,
        ..v2_headers()
    };
    assert_eq!(
        verifier.verify(&missing_nonce, body, V2_TIMESTAMP),
        Err(VerifyError::MissingHeader("Wechatpay-Nonce"))
    );
    for (header, name) in [
        (
            SignedHeaders {
                timestamp: None,
                ..v2_headers()
            },
            "Wechatpay-Timestamp",
        ),
        (
            SignedHeaders {
                signature: None,
                ..v2_headers()
            },
            "Wechatpay-Signature",
        ),
        (
            SignedHeaders {
                serial: None,
                ..v2_headers()
            },
            "Wechatpay-Serial",
        ),
    ] {
        assert_eq!(
            verifier.verify(&header, body, V2_TIMESTAMP),
            Err(VerifyError::MissingHeader(name))
        );
    }
    for bad_timestamp in [
        "",
        "+1624523846",
        "01624523846",
        "1624523846.0",
        "abc",
        "99999999999999999999",
    ] {
        let headers = SignedHeaders {
            timestamp: Some(bad_timestamp),
            ..v2_headers()
        };
        assert!(
            matches!(
                verifier.verify(&headers, body, V2_TIMESTAMP),
                Err(VerifyError::MalformedTimestamp(_))
            ),
            "{bad_timestamp:?}"
        );
    }
}

#[test]
fn signed_headers_are_read_case_insensitively() {
    let mut map = http::HeaderMap::new();
    map.insert("Wechatpay-Timestamp", "1624523846".parse().unwrap());
    map.insert("WECHATPAY-NONCE", V2_NONCE.parse().unwrap());
    map.insert("wechatpay-signature", V2_SIGNATURE.parse().unwrap());
    map.insert("WeChatPay-Serial", V2_SERIAL.parse().unwrap());
    assert_eq!(SignedHeaders::from_header_map(&map), v2_headers());
}

#[test]
fn v3_aes_256_gcm_decrypts_and_encrypts_deterministically() {
    let key = ApiV3Key::new(V3_KEY).unwrap();
    let plaintext = key
        .decrypt(
            "uluk4a9R25RW",
            "associatedData",
            "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=",
        )
        .unwrap();
    assert_eq!(plaintext, b"message");
    assert_eq!(
        key.encrypt("uluk4a9R25RW", "associatedData", b"message")
            .unwrap(),
        "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
    );
    assert_eq!(
        key.decrypt(
            "uluk4a9R25RW",
            "bad-associatedData",
            "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
        ),
        Err(CryptoError::Decrypt)
    );
    assert_eq!(
        key.decrypt(
            "bad-4a9R25RW",
            "associatedData",
            "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
        ),
        Err(CryptoError::Decrypt)
    );
    assert_eq!(
        key.decrypt(
            "short",
            "associatedData",
            "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
        ),
        Err(CryptoError::NonceLength { len: 5 })
    );
    assert_eq!(
        key.decrypt("uluk4a9R25RW", "associatedData", "%%%"),
        Err(CryptoError::CiphertextBase64)
    );
    assert_eq!(
        key.decrypt("uluk4a9R25RW", "associatedData", "AAAA"),
        Err(CryptoError::Decrypt)
    );
    let wrong_key = ApiV3Key::new(b"b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
    assert_eq!(
        wrong_key.decrypt(
            "uluk4a9R25RW",
            "associatedData",
            "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
        ),
        Err(CryptoError::Decrypt)
    );
}

#[test]
fn v6_message_layouts_match_the_go_sdk() {
    assert_eq!(
        request_message("GET", "/v3/certificates", 1624523846, "A1B2C3D4E5F6G7", b""),
        b"GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n"
    );
    assert_eq!(
        request_message(
            "POST",
            "/v3/certificates",
            1624523846,
            "A1B2C3D4E5F6G7",
            b"Hello World!\n"
        ),
        b"POST\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\nHello World!\n\n"
    );
    assert_eq!(
        response_message(1624523846, "NONCE1234567890", b"BODY"),
        b"1624523846\nNONCE1234567890\nBODY\n"
    );
    assert_eq!(
        response_message(1624523846, "NONCE1234567890", b""),
        b"1624523846\nNONCE1234567890\n\n"
    );
    assert_eq!(
        pay_sign_message("wx2421b1c4370ec43b", 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", "prepay_id=wx201410272009395522657a690389285100"),
        b"wx2421b1c4370ec43b\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\nprepay_id=wx201410272009395522657a690389285100\n"
    );
}

#[test]
fn v6_authorization_header_layout_and_parsing_in_any_order() {
    let header = authorization_header(
        "1234567890",
        "0123456789ABC",
        "A1B2C3D4E5F6G7",
        1624523846,
        "c2ln",
    );
    assert_eq!(
        header,
        r#"WECHATPAY2-SHA256-RSA2048 mchid="1234567890",nonce_str="A1B2C3D4E5F6G7",timestamp="1624523846",serial_no="0123456789ABC",signature="c2ln""#
    );
    let expected = AuthorizationParams {
        mchid: "1234567890".into(),
        nonce_str: "A1B2C3D4E5F6G7".into(),
        timestamp: "1624523846".into(),
        serial_no: "0123456789ABC".into(),
        signature: "c2ln".into(),
    };
    let orders = [
        header.clone(),
        // skills Java sample
        r#"WECHATPAY2-SHA256-RSA2048 mchid="1234567890",nonce_str="A1B2C3D4E5F6G7",signature="c2ln",timestamp="1624523846",serial_no="0123456789ABC""#.to_owned(),
        // PHP
        r#"WECHATPAY2-SHA256-RSA2048 mchid="1234567890",serial_no="0123456789ABC",timestamp="1624523846",nonce_str="A1B2C3D4E5F6G7",signature="c2ln""#.to_owned(),
        // Postman, with spaces after the commas
        r#"WECHATPAY2-SHA256-RSA2048 mchid="1234567890", serial_no="0123456789ABC", nonce_str="A1B2C3D4E5F6G7", timestamp="1624523846", signature="c2ln""#.to_owned(),
    ];
    for value in &orders {
        assert_eq!(
            parse_authorization(value).as_ref(),
            Ok(&expected),
            "{value}"
        );
    }
    assert_eq!(
        parse_authorization(r#"Bearer mchid="1""#),
        Err(AuthorizationError::Scheme)
    );
    assert_eq!(
        parse_authorization(r#"WECHATPAY2-SHA256-RSA2048mchid="1""#),
        Err(AuthorizationError::Scheme)
    );
    assert_eq!(
        parse_authorization(
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="1",serial_no="s""#
        ),
        Err(AuthorizationError::Missing("signature"))
    );
    assert_eq!(
        parse_authorization(r#"WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2""#),
        Err(AuthorizationError::Duplicate("mchid".into()))
    );
    assert!(matches!(
        parse_authorization(r#"WECHATPAY2-SHA256-RSA2048 mchid=1"#),
        Err(AuthorizationError::Malformed(_))
    ));
}

#[test]
fn v7_derived_request_signature() {
    // Derived: computed with V1's key, not published by any SDK.
    let message = request_message("GET", "/v3/certificates", 1624523846, "A1B2C3D4E5F6G7", b"");
    assert_eq!(
        go_test_signer().sign(&message).unwrap(),
        "mG2drrUCDR7EVrJmQVI6eW5VlDB0zzpcYLC83UiNxe1aNAomazwWci4q/HPA7MmlbGAswwSE7iPiLy3vflXohf42WXNA031htDbpBCVt1ti2teKFPh531KK07unc+CrCiepz6veTgsylXYO4iBI+DYQ4UDj+r8A/lhqj7yHmtLjvcJ45Og6Wdecd/T7jGgMwcEe1mR7HLzC7R6snnLOaRwnPCe6WyiWGDHHuQzvNFeaztpM3noedCPEwGculoy2MPVvNER6TpM8CUijpKChWM7Q5vIwg8QYv9bH7IuZitLMAgx0+cgaNzFbzZuXxwGB6wIAmv70dWcQx8F2erR/Nzw=="
    );
}

#[test]
fn v7_derived_pay_sign() {
    // Derived: the SK/sig paySign inputs signed with V1's key.
    let message = pay_sign_message(
        "wx2421b1c4370ec43b",
        1554208460,
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        "prepay_id=wx201410272009395522657a690389285100",
    );
    assert_eq!(
        go_test_signer().sign(&message).unwrap(),
        "JYKXt4mOdSKy03hD6XypE2RhzqxiJ3GDyxWbaIh1v95JFKzKfliSigI5ABR/pRU1EY/+BcWISR9vI1ZfWrnAGGoAhcuRhmwgRznyeT06kBy5k1heLQnFTWFYsoxVWyEEP6HRCbhaWREXRGs6lbdCkuK4R9ZcCgY/R+m7fGbiYYKXpjI92ByQ1il9MYxkCtLnxB3qeVjwjBsowN1KO9DQ9x6DYepQbuFUkqLj8A+cGMfXsTqqn8/PHPfPeocOXIR3jknFzFzRYyZB0az+KBqULEQr0BUwt9tZ0esXvVFbLoE8RvaBIEMB0OvMx2XRtYc0LQCL4wKzE2kYFX4dZmDBVg=="
    );
}

#[test]
fn v7_derived_empty_body_response_signature_verifies() {
    // Derived: a 204's signature, message `ts\nnonce\n\n`.
    const SIGNATURE_204: &str = "0ZZIC5OE8VbOP58TJQraFizl7qVdsRWqw+LdzqkGIis7a/FyMfphx5AiAWn1SRATsheE2xW76E8y4c9/9hJA466MNVsON/rglHygXqDwGbw3DjcQLrfmx6PmSycC0A8nfAPqpl7Gorw69boD2ND8dH2OOk10qf5rFvxUfpLKY30bOwa10MKwhln3gY2Ij93Ly2EHjMT2DVk9G8RjCS3ZZXnF7PKc6rXRD4yySzoD42buTErTCn9YmV6xx97HMR48Kxo9aqyc2kRjM3Mmj71nb7NJPFDWXfHkTQ79uh7lYh5OnA9AN/QTWgWPkbprXcZk/nhO8KrjAvDubTwT+AKJbg==";
    let message = response_message(V2_TIMESTAMP, V2_NONCE, b"");
    assert_eq!(go_test_signer().sign(&message).unwrap(), SIGNATURE_204);
    let headers = SignedHeaders {
        signature: Some(SIGNATURE_204),
        ..v2_headers()
    };
    assert_eq!(v2_verifier().verify(&headers, b"", V2_TIMESTAMP), Ok(()));
}

#[test]
fn v7_derived_aes_256_gcm_with_transaction_and_empty_aad() {
    // Derived: V3's key, nonce `fa3b0c9d8e7f`.
    const PLAINTEXT: &[u8] = br#"{"mchid":"1234567891","out_trade_no":"ORDER123456","trade_state":"SUCCESS","amount":{"total":1}}"#;
    const WITH_TRANSACTION: &str = "xrorB1ylLg/+/nTCgaMfcT+KaqA0MbyhzfyUnfChhkzpC0aPP5KIU1uxfwHL4+d7WGh41g8znAIFSRpvocFl9pvaoN/J+UNiBtnDsRiOCKbZlfCM7w+K9T5LPZ2sX/i+eylm/9jG5M2WSFEol6hAew==";
    let key = ApiV3Key::new(V3_KEY).unwrap();
    assert_eq!(
        key.encrypt("fa3b0c9d8e7f", "transaction", PLAINTEXT)
            .unwrap(),
        WITH_TRANSACTION
    );
    assert_eq!(
        key.decrypt("fa3b0c9d8e7f", "transaction", WITH_TRANSACTION)
            .unwrap(),
        PLAINTEXT
    );
    let with_empty_aad = key.encrypt("fa3b0c9d8e7f", "", PLAINTEXT).unwrap();
    assert!(
        with_empty_aad.ends_with("X/i+sU64kAhLXrrMkn5f0Mvw9Q=="),
        "{with_empty_aad}"
    );
    // Only the tag differs.
    assert_eq!(
        with_empty_aad[..with_empty_aad.len() - 24],
        WITH_TRANSACTION[..WITH_TRANSACTION.len() - 24]
    );
    assert_eq!(
        key.decrypt("fa3b0c9d8e7f", "", &with_empty_aad).unwrap(),
        PLAINTEXT
    );
    assert_eq!(
        key.decrypt("fa3b0c9d8e7f", "", WITH_TRANSACTION),
        Err(CryptoError::Decrypt)
    );
    assert_eq!(
        key.decrypt("fa3b0c9d8e7f", "refund", WITH_TRANSACTION),
        Err(CryptoError::Decrypt)
    );
}

#[test]
fn generated_keys_round_trip_through_pem_and_verify() {
    let signer = RsaSigner::generate().unwrap();
    let private_pem = signer.private_key_pem().unwrap();
    let public_pem = signer.public_key_pem().unwrap();
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let reloaded = RsaSigner::from_pkcs8_pem(&private_pem).unwrap();
    let signature = reloaded.sign(b"message").unwrap();
    assert_eq!(signature.len(), 344);
    let verifier = RsaVerifier::from_spki_pem(&public_pem).unwrap();
    assert!(verifier.verify(b"message", &signature));
    assert!(!go_test_verifier().verify(b"message", &signature));
}

#[test]
fn bad_pem_is_an_error_not_a_panic() {
    assert_eq!(
        RsaSigner::from_pkcs8_pem(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
        )
        .unwrap_err(),
        CryptoError::PemMissing {
            label: "PRIVATE KEY"
        }
    );
    assert_eq!(
        RsaVerifier::from_spki_pem("-----BEGIN PUBLIC KEY-----\n@@@\n-----END PUBLIC KEY-----")
            .unwrap_err(),
        CryptoError::PemBase64 {
            label: "PUBLIC KEY"
        }
    );
    assert!(matches!(
        RsaVerifier::from_spki_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
        Err(CryptoError::KeyRejected(_))
    ));
}

#[test]
fn nonces_are_32_alphanumerics_and_differ() {
    let first = nonce_str();
    let second = nonce_str();
    assert_eq!(first.len(), NONCE_STR_LEN);
    assert!(first.bytes().all(|byte| byte.is_ascii_alphanumeric()));
    assert_ne!(first, second);
    assert_eq!(random_alphanumeric(12).len(), 12);
    assert_eq!(random_alphanumeric(0), "");
}

#[test]
fn sha1_hex_matches_the_known_digest() {
    assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
}
