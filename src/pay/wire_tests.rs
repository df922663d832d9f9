use super::*;
use serde::de::DeserializeOwned;

/// Parses `json`, checks it re-serialises to the same JSON value (no
/// nulls added, no key lost) and returns the typed value.
fn round_trip<T: Serialize + DeserializeOwned>(json: &str) -> T {
    let value: T = serde_json::from_str(json).expect("parses");
    let again = serde_json::to_value(&value).unwrap();
    let original: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(again, original);
    value
}

#[test]
fn jsapi_prepay_request_and_response_round_trip() {
    let request: JsapiPrepayRequest = round_trip(
        r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔",
                "out_trade_no":"1217752501201407033233368018","time_expire":"2018-06-08T10:34:56+08:00",
                "attach":"自定义数据说明","notify_url":"https://www.weixin.qq.com/wxpay/pay.php",
                "amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#,
    );
    assert_eq!(request.amount.total, 100);
    let without_attach = JsapiPrepayRequest {
        attach: None,
        ..request
    };
    assert!(!serde_json::to_string(&without_attach)
        .unwrap()
        .contains("attach"));
    let minimal: JsapiPrepayRequest = round_trip(
        r#"{"appid":"wx1","mchid":"1230000109","description":"d","out_trade_no":"ORDER1",
                "notify_url":"https://example.com/notify","amount":{"total":1},"payer":{"openid":"o"}}"#,
    );
    assert_eq!(
        (
            minimal.time_expire.as_str(),
            minimal.amount.currency.as_str()
        ),
        ("", "")
    );
    let response: PrepayResponse =
        round_trip(r#"{"prepay_id":"wx201410272009395522657a690389285100"}"#);
    assert_eq!(response.prepay_id, "wx201410272009395522657a690389285100");
}

#[test]
fn transaction_parses_leniently_and_omits_absent_keys() {
    let paid: Transaction = serde_json::from_str(
            r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"1217752501201407033233368018",
                "transaction_id":"1217752501201407033233368018","trade_type":"JSAPI","trade_state":"SUCCESS",
                "trade_state_desc":"支付成功","bank_type":"CMC","attach":"自定义数据","success_time":"2018-06-08T10:34:56+08:00",
                "payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                "amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"},
                "scene_info":{"device_id":"013467007045764"},
                "promotion_detail":[{"coupon_id":"109519","amount":100}]}"#,
        )
        .unwrap();
    assert_eq!(paid.trade_state, TradeState::Success);
    assert_eq!(paid.amount.payer_total, Some(100));

    let unpaid: Transaction = round_trip(
        r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"ORDER1",
                "trade_state":"NOTPAY","trade_state_desc":"订单未支付","amount":{"total":100}}"#,
    );
    assert_eq!(unpaid.trade_state, TradeState::NotPay);
    let json = serde_json::to_string(&unpaid).unwrap();
    assert!(
        !json.contains("null") && !json.contains("transaction_id"),
        "{json}"
    );

    let future: Transaction = round_trip(
        r#"{"appid":"a","mchid":"m","out_trade_no":"o","trade_state":"ACCEPT","amount":{"total":1}}"#,
    );
    assert_eq!(future.trade_state, TradeState::Other("ACCEPT".into()));
    let with_null: Transaction =
            serde_json::from_str(r#"{"appid":"a","mchid":"m","out_trade_no":"o","trade_state":"CLOSED","attach":null,"amount":{"total":1}}"#)
                .unwrap();
    assert_eq!(with_null.attach, None);
}

#[test]
fn close_and_refund_documents_round_trip() {
    let close: CloseRequest = round_trip(r#"{"mchid":"1230000109"}"#);
    assert_eq!(close.mchid, "1230000109");

    let request: RefundRequest = round_trip(
        r#"{"out_trade_no":"1217752501201407033233368018","out_refund_no":"1217752501201407033233368018",
                "reason":"商品已售完","notify_url":"https://weixin.qq.com",
                "amount":{"refund":888,"total":888,"currency":"CNY"}}"#,
    );
    assert_eq!(request.transaction_id, None);
    let by_id: RefundRequest = round_trip(
        r#"{"transaction_id":"4200000985202103031441826014","out_refund_no":"R1","amount":{"refund":1,"total":2,"currency":"CNY"}}"#,
    );
    assert_eq!(by_id.out_trade_no, None);

    let refund: Refund = round_trip(
        r#"{"refund_id":"50000000382019052709732678859","out_refund_no":"1217752501201407033233368018",
                "transaction_id":"1217752501201407033233368018","out_trade_no":"1217752501201407033233368018",
                "channel":"ORIGINAL","user_received_account":"招商银行信用卡0403","success_time":"2020-12-01T16:18:12+08:00",
                "create_time":"2020-12-01T16:18:12+08:00","status":"SUCCESS",
                "amount":{"total":100,"refund":100,"payer_total":90,"payer_refund":90,"currency":"CNY"}}"#,
    );
    assert_eq!(refund.status, RefundStatus::Success);
    let processing: Refund = round_trip(
        r#"{"refund_id":"5","out_refund_no":"R","transaction_id":"T","out_trade_no":"O","status":"PROCESSING","amount":{"total":2,"refund":1}}"#,
    );
    assert_eq!(processing.status, RefundStatus::Processing);
}

#[test]
fn refund_notification_resource_round_trips() {
    let resource: RefundResource = round_trip(
        r#"{"mchid":"1900000100","transaction_id":"1008450740201411110005820873","out_trade_no":"20150806125346",
                "refund_id":"50200207182018070300011301001","out_refund_no":"7752501201407033233368018",
                "refund_status":"SUCCESS","success_time":"2018-06-08T10:34:56+08:00",
                "user_received_account":"招商银行信用卡0403","amount":{"total":999,"refund":999,"payer_total":999,"payer_refund":999}}"#,
    );
    assert_eq!(resource.refund_status, RefundStatus::Success);
    assert_eq!(resource.amount.payer_refund, Some(999));
}

#[test]
fn notification_envelope_round_trips() {
    let envelope: NotificationEnvelope = round_trip(
        r#"{"id":"EV-2018022511223320873","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource",
                "event_type":"TRANSACTION.SUCCESS","summary":"支付成功",
                "resource":{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM",
                "ciphertext":"xrorB1ylLg==","associated_data":"transaction","nonce":"fa3b0c9d8e7f"}}"#,
    );
    assert_eq!(envelope.event_type, EVENT_TRANSACTION_SUCCESS);
    assert_eq!(envelope.resource.algorithm, ALGORITHM_AEAD_AES_256_GCM);
    let without_aad: NotificationEnvelope = serde_json::from_str(
            r#"{"id":"1","create_time":"t","resource_type":"encrypt-resource","event_type":"REFUND.SUCCESS",
                "resource":{"original_type":"refund","algorithm":"AEAD_AES_256_GCM","ciphertext":"x","nonce":"n"}}"#,
        )
        .unwrap();
    assert_eq!(without_aad.resource.associated_data, "");
    assert_eq!(without_aad.summary, "");
}

#[test]
fn error_and_bill_documents_round_trip() {
    let error: ErrorBody = round_trip(
        r#"{"code":"PARAM_ERROR","message":"参数错误","detail":{"field":"/amount/currency","value":"XYZ","issue":"Currency code is invalid","location":"body"}}"#,
    );
    assert_eq!(error.code, "PARAM_ERROR");
    let bare: ErrorBody = round_trip(r#"{"code":"SYSTEM_ERROR","message":"系统繁忙，请稍后重试"}"#);
    assert_eq!(bare.detail, None);
    let bill: TradeBillResponse = round_trip(
        r#"{"hash_type":"SHA1","hash_value":"79bb0f45fc4c42234a918000b2668d689e2bde04",
                "download_url":"https://api.mch.weixin.qq.com/v3/billdownload/file?token=xxx"}"#,
    );
    assert_eq!(bill.hash_type, "SHA1");
}

#[test]
fn request_payment_uses_the_mini_program_names() {
    let payment = RequestPayment {
        app_id: "wx2421b1c4370ec43b".into(),
        time_stamp: "1554208460".into(),
        nonce_str: "593BEC0C930BF1AFEB40B4A08C8FB242".into(),
        package: "prepay_id=wx201410272009395522657a690389285100".into(),
        sign_type: "RSA".into(),
        pay_sign: "c2ln".into(),
    };
    assert_eq!(
        serde_json::to_string(&payment).unwrap(),
        r#"{"appId":"wx2421b1c4370ec43b","timeStamp":"1554208460","nonceStr":"593BEC0C930BF1AFEB40B4A08C8FB242","package":"prepay_id=wx201410272009395522657a690389285100","signType":"RSA","paySign":"c2ln"}"#
    );
    let back: RequestPayment = round_trip(&serde_json::to_string(&payment).unwrap());
    assert_eq!(back, payment);
}
