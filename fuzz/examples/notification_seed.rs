//! Writes the seed corpus of the `notification` target and prints what the
//! target makes of each seed.
//!
//! Seeds are built with the same key set and input format as the target
//! (`fuzz_targets/notification_input.rs`): valid payment and refund
//! notifications as WeChat sends them, and broken ones (a signature probe,
//! a stale timestamp, an unknown serial, a missing header, a tampered body),
//! plus re-signed and sealed inputs for the deeper modes. Deterministic:
//! fixed nonces, fixed time, and RSA PKCS#1 v1.5 signatures are
//! deterministic too.
//!
//! Run from `fuzz/`: `cargo run --example notification_seed` (stable Rust,
//! no fuzz flags). Writes `corpus/notification/`. With paths
//! (`cargo run --example notification_seed -- DIR|FILE...`) it writes
//! nothing and instead runs those inputs as the target does, printing how
//! many end in each outcome (a notification kind or an error variant).

#[path = "../fuzz_targets/notification_input.rs"]
mod notification_input;

use flashgate::pay::crypto;
use notification_input::{encode, keys, run, sealed_envelope, MCHID, NOW, PUBLIC_KEY_ID};
use std::fs;
use std::path::Path;

fn payment(mchid: &str) -> Vec<u8> {
    format!(
        r#"{{"appid":"wxd678efh567hg6787","mchid":"{mchid}","out_trade_no":"FG20261124A0001","transaction_id":"4200000985202103031441826014","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"sale=7","success_time":"2026-11-24T20:15:03+08:00","payer":{{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}},"amount":{{"total":9900,"payer_total":9900,"currency":"CNY","payer_currency":"CNY"}}}}"#
    )
    .into_bytes()
}

fn refund(status: &str) -> Vec<u8> {
    format!(
        r#"{{"mchid":"{MCHID}","transaction_id":"4200000985202103031441826014","out_trade_no":"FG20261124A0001","refund_id":"50200207182018070300011301001","out_refund_no":"FG20261124A0001-R1","refund_status":"{status}","success_time":"2026-11-24T21:00:05+08:00","user_received_account":"支付用户零钱","amount":{{"total":9900,"refund":9900,"payer_total":9900,"payer_refund":9900}}}}"#
    )
    .into_bytes()
}

/// Signature headers as WeChat sends them, names in mixed case.
fn signed(body: &[u8], timestamp: i64, serial: &str) -> Vec<(String, String)> {
    let nonce = "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz";
    let signature = keys()
        .signer
        .sign(&crypto::response_message(timestamp, nonce, body))
        .unwrap();
    vec![
        ("Wechatpay-Timestamp".into(), timestamp.to_string()),
        ("wechatpay-nonce".into(), nonce.into()),
        ("Wechatpay-Signature".into(), signature),
        ("WECHATPAY-SERIAL".into(), serial.into()),
        (
            "Wechatpay-Signature-Type".into(),
            "WECHATPAY2-SHA256-RSA2048".into(),
        ),
        ("Content-Type".into(), "application/json".into()),
    ]
}

fn raw(headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    encode(0, &pairs, body)
}

fn replaced(
    headers: &[(String, String)],
    name: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| match (n.eq_ignore_ascii_case(name), value) {
            (true, Some(value)) => Some((n.clone(), value.to_owned())),
            (true, None) => None,
            (false, _) => Some((n.clone(), v.clone())),
        })
        .collect()
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if !paths.is_empty() {
        return summarise(&paths);
    }
    let payment_body = sealed_envelope(0, &payment(MCHID));
    let refund_body = sealed_envelope(1, &refund("SUCCESS"));
    let good = signed(&payment_body, NOW, PUBLIC_KEY_ID);
    let mut tampered = payment_body.clone();
    let at = tampered.iter().position(|&byte| byte == b'2').unwrap();
    tampered[at] = b'3';

    let mut bad_algorithm: serde_json::Value = serde_json::from_slice(&payment_body).unwrap();
    bad_algorithm["resource"]["algorithm"] = "AEAD_SM4_GCM".into();
    let bad_algorithm = serde_json::to_vec(&bad_algorithm).unwrap();

    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("raw-payment-valid", raw(&good, &payment_body)),
        ("raw-refund-valid", raw(&signed(&refund_body, NOW, PUBLIC_KEY_ID), &refund_body)),
        (
            "raw-payment-probe",
            raw(
                &replaced(&good, "Wechatpay-Signature", Some("WECHATPAY/SIGNTEST/tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9")),
                &payment_body,
            ),
        ),
        ("raw-payment-stale", raw(&signed(&payment_body, NOW - 600, PUBLIC_KEY_ID), &payment_body)),
        (
            "raw-payment-unknown-serial",
            raw(&signed(&payment_body, NOW, "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC"), &payment_body),
        ),
        ("raw-payment-missing-nonce", raw(&replaced(&good, "Wechatpay-Nonce", None), &payment_body)),
        ("raw-payment-tampered-body", raw(&good, &tampered)),
        ("resigned-payment", encode(1, &[], &payment_body)),
        ("resigned-refund", encode(1, &[], &refund_body)),
        ("resigned-bad-algorithm", encode(1, &[], &bad_algorithm)),
        ("resigned-not-json", encode(1, &[], b"{\"id\":")),
        ("sealed-payment", encode(2, &[], &payment(MCHID))),
        ("sealed-refund-closed", encode(2 + 3 * 3, &[], &refund("CLOSED"))),
        ("sealed-refund-abnormal", encode(2 + 3 * 2, &[], &refund("ABNORMAL"))),
        ("sealed-other-merchant", encode(2, &[], &payment("1900000000"))),
        ("sealed-unknown-event", encode(2 + 3 * 4, &[], &payment(MCHID))),
        ("sealed-not-json", encode(2, &[], b"not json")),
    ];

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/notification");
    fs::create_dir_all(&dir).unwrap();
    for (name, input) in &seeds {
        fs::write(dir.join(name), input).unwrap();
        let outcome = match run(input) {
            Some(Ok(notification)) => format!("Ok({})", short(&format!("{notification:?}"))),
            Some(Err(error)) => format!("Err({})", short(&error.to_string())),
            None => "empty".to_owned(),
        };
        println!("{name:28} {:5} bytes  {outcome}", input.len());
    }
}

fn short(text: &str) -> String {
    text.chars().take(90).collect()
}

/// Counts the outcome of every input under `paths` by kind.
fn summarise(paths: &[String]) {
    let mut files = Vec::new();
    for path in paths.iter().map(Path::new) {
        if path.is_dir() {
            files.extend(
                fs::read_dir(path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
        } else {
            files.push(path.to_path_buf());
        }
    }
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for file in &files {
        let outcome = match run(&fs::read(file).unwrap()) {
            Some(Ok(notification)) => format!("Ok({notification:?}"),
            Some(Err(error)) => format!("Err({error:?}"),
            None => "empty".to_owned(),
        };
        // The variant path: up to the first payload.
        let kind: String = outcome
            .split(['{', '"'])
            .next()
            .unwrap_or_default()
            .trim_end_matches(['(', ' '])
            .to_owned();
        *counts.entry(kind).or_default() += 1;
    }
    println!("{} inputs", files.len());
    for (kind, count) in counts {
        println!("{count:6}  {kind}");
    }
}
