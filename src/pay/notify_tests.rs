use super::*;
use crate::pay::crypto::{
    RsaSigner, RsaVerifier, HEADER_SERIAL, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use crate::pay::wire::{RefundStatus, TradeState};
use http::HeaderValue;

const KEY: &[u8] = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const SERIAL: &str = "PUB_KEY_ID_0000000000000024101100397200000006";
const MCHID: &str = "1230000109";
const APPID: &str = "wxd678efh567hg6787";
const NOW: i64 = 1_764_000_000;

fn platform_signer() -> RsaSigner {
    crate::pay::crypto::tests::go_test_signer()
}

fn notification_verifier() -> NotificationVerifier {
    let public = RsaVerifier::from_spki_pem(&platform_signer().public_key_pem().unwrap()).unwrap();
    NotificationVerifier::new(
        Verifier::with_key(SERIAL, public),
        ApiV3Key::new(KEY).unwrap(),
        MCHID,
        APPID,
    )
}

fn payment_plaintext(mchid: &str, appid: &str) -> Vec<u8> {
    format!(
            r#"{{"appid":"{appid}","mchid":"{mchid}","out_trade_no":"FG0001","transaction_id":"4200000985202103031441826014",
                "trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS",
                "success_time":"2026-11-24T20:15:03+08:00","payer":{{"openid":"oUser"}},
                "amount":{{"total":9900,"payer_total":9900,"currency":"CNY","payer_currency":"CNY"}}}}"#
        )
        .into_bytes()
}

fn signed(event_type: &str, original_type: &str, plaintext: &[u8]) -> (http::HeaderMap, Vec<u8>) {
    let key = ApiV3Key::new(KEY).unwrap();
    let envelope = build::envelope(
        &key,
        "EV-1",
        "2026-11-24T20:15:04+08:00",
        event_type,
        "支付成功",
        original_type,
        plaintext,
    )
    .unwrap();
    let body = serde_json::to_vec(&envelope).unwrap();
    let headers = build::signed_headers(&platform_signer(), SERIAL, NOW, &body).unwrap();
    (headers, body)
}

#[test]
fn payment_notification_is_verified_decrypted_and_typed() {
    let (headers, body) = signed(
        "TRANSACTION.SUCCESS",
        "transaction",
        &payment_plaintext(MCHID, APPID),
    );
    let Notification::Payment(transaction) =
        notification_verifier().parse(&headers, &body, NOW).unwrap()
    else {
        panic!("expected a payment");
    };
    assert_eq!(transaction.trade_state, TradeState::Success);
    assert_eq!(transaction.amount.total, 9900);
    assert_eq!(transaction.out_trade_no, "FG0001");
}

#[test]
fn refund_notifications_of_all_three_events_parse() {
    for (event, status) in [
        ("REFUND.SUCCESS", RefundStatus::Success),
        ("REFUND.ABNORMAL", RefundStatus::Abnormal),
        ("REFUND.CLOSED", RefundStatus::Closed),
    ] {
        let plaintext = format!(
            r#"{{"mchid":"{MCHID}","transaction_id":"4200000985202103031441826014","out_trade_no":"FG0001",
                    "refund_id":"50200207182018070300011301001","out_refund_no":"FG0001-R1","refund_status":"{status}",
                    "user_received_account":"支付用户零钱","amount":{{"total":9900,"refund":9900,"payer_total":9900,"payer_refund":9900}}}}"#
        );
        let (headers, body) = signed(event, "refund", plaintext.as_bytes());
        let Notification::Refund(refund) =
            notification_verifier().parse(&headers, &body, NOW).unwrap()
        else {
            panic!("expected a refund");
        };
        assert_eq!(refund.refund_status, status);
        assert_eq!(refund.amount.refund, 9900);
    }
}

#[test]
fn every_failure_is_its_own_error() {
    let verifier = notification_verifier();
    let (headers, body) = signed(
        "TRANSACTION.SUCCESS",
        "transaction",
        &payment_plaintext(MCHID, APPID),
    );

    // Re-serialised JSON (here: pretty-printed) no longer verifies.
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    assert_eq!(
        verifier.parse(&headers, &pretty, NOW),
        Err(NotifyError::Verify(VerifyError::BadSignature))
    );

    let mut probe = headers.clone();
    probe.insert(
        HEADER_SIGNATURE,
        HeaderValue::from_static("WECHATPAY/SIGNTEST/AAAA"),
    );
    assert_eq!(
        verifier.parse(&probe, &body, NOW),
        Err(NotifyError::Verify(VerifyError::BadSignature))
    );

    assert!(matches!(
        verifier.parse(&headers, &body, NOW + 300),
        Err(NotifyError::Verify(VerifyError::StaleTimestamp { .. }))
    ));
    let mut unknown = headers.clone();
    unknown.insert(
        HEADER_SERIAL,
        HeaderValue::from_static("5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC"),
    );
    assert!(matches!(
        verifier.parse(&unknown, &body, NOW),
        Err(NotifyError::Verify(VerifyError::UnknownSerial(_)))
    ));
    let mut missing = headers.clone();
    missing.remove(HEADER_TIMESTAMP);
    assert_eq!(
        verifier.parse(&missing, &body, NOW),
        Err(NotifyError::Verify(VerifyError::MissingHeader(
            "Wechatpay-Timestamp"
        )))
    );
    let mut sm2 = headers.clone();
    sm2.insert(
        "Wechatpay-Signature-Type",
        HeaderValue::from_static("WECHATPAY2-SM2-WITH-SM3"),
    );
    assert!(matches!(
        verifier.parse(&sm2, &body, NOW),
        Err(NotifyError::SignatureType(_))
    ));
    assert!(matches!(
        verifier.parse(&headers, &vec![b' '; NOTIFICATION_BYTES_MAX + 1], NOW),
        Err(NotifyError::TooLarge { .. })
    ));

    // Signed but otherwise wrong bodies.
    let resign =
        |body: &[u8]| build::signed_headers(&platform_signer(), SERIAL, NOW, body).unwrap();
    assert!(matches!(
        verifier.parse(&resign(b"not json"), b"not json", NOW),
        Err(NotifyError::Envelope(_))
    ));
    let mut envelope: NotificationEnvelope = serde_json::from_slice(&body).unwrap();
    let reparsed = |edit: &dyn Fn(&mut NotificationEnvelope)| {
        let mut copy = envelope.clone();
        edit(&mut copy);
        let body = serde_json::to_vec(&copy).unwrap();
        verifier.parse(&resign(&body), &body, NOW)
    };
    assert_eq!(
        reparsed(&|e| e.resource.algorithm = "AEAD_SM4_GCM".into()),
        Err(NotifyError::Algorithm("AEAD_SM4_GCM".into()))
    );
    assert_eq!(
        reparsed(&|e| e.event_type = "PAYSCORE.USER_OPEN_SERVICE".into()),
        Err(NotifyError::UnknownEvent(
            "PAYSCORE.USER_OPEN_SERVICE".into()
        ))
    );
    assert_eq!(
        reparsed(&|e| e.resource.associated_data = "refund".into()),
        Err(NotifyError::Decrypt(CryptoError::Decrypt))
    );
    assert!(matches!(
        reparsed(&|e| e.event_type = "REFUND.SUCCESS".into()),
        Err(NotifyError::Resource { .. })
    ));
    envelope.resource.nonce = "short".into();
    let body = serde_json::to_vec(&envelope).unwrap();
    assert_eq!(
        verifier.parse(&resign(&body), &body, NOW),
        Err(NotifyError::Decrypt(CryptoError::NonceLength { len: 5 }))
    );

    let (headers, body) = signed(
        "TRANSACTION.SUCCESS",
        "transaction",
        &payment_plaintext("1900000000", APPID),
    );
    assert!(matches!(
        verifier.parse(&headers, &body, NOW),
        Err(NotifyError::Merchant { field: "mchid", .. })
    ));
    let (headers, body) = signed(
        "TRANSACTION.SUCCESS",
        "transaction",
        &payment_plaintext(MCHID, "wxother"),
    );
    assert!(matches!(
        verifier.parse(&headers, &body, NOW),
        Err(NotifyError::Merchant { field: "appid", .. })
    ));
}
