use super::*;
use serde_json::json;

fn prepay_body() -> Value {
    json!({
        "appid": "wxd678efh567hg6787", "mchid": "1230000109", "description": "秒杀",
        "out_trade_no": "FG0001", "time_expire": "2026-11-24T20:00:00+08:00",
        "notify_url": "http://127.0.0.1:8080/v1/payments/wechat/notify",
        "amount": {"total": 100, "currency": "CNY"}, "payer": {"openid": "oBuyer"},
        "scene_info": {"payer_client_ip": "127.0.0.1"}
    })
}

fn refusal(body: Value) -> (String, String) {
    let error = prepay(body.to_string().as_bytes()).unwrap_err();
    let field = error.detail.as_ref().map_or(String::new(), |detail| {
        detail["field"].as_str().unwrap_or_default().to_owned()
    });
    (error.code, field)
}

#[test]
fn a_documented_prepay_body_passes_with_its_deadline() {
    let valid = prepay(prepay_body().to_string().as_bytes()).unwrap();
    assert_eq!(valid.request.amount.total, 100);
    assert_eq!(valid.time_expire_ms, parse_rfc3339("2026-11-24T12:00:00Z"));
    let mut minimal = prepay_body();
    let map = minimal.as_object_mut().unwrap();
    map.remove("time_expire");
    map.remove("scene_info");
    map["amount"].as_object_mut().unwrap().remove("currency");
    assert_eq!(
        prepay(minimal.to_string().as_bytes())
            .unwrap()
            .time_expire_ms,
        None
    );
}

#[test]
fn prepay_refusals_name_the_field() {
    let param = |field: &str| ("PARAM_ERROR".to_owned(), field.to_owned());
    let mut body = prepay_body();
    body["amount"]["total"] = json!(0);
    assert_eq!(refusal(body), param("/amount/total"));
    let mut body = prepay_body();
    body.as_object_mut().unwrap().remove("description");
    assert_eq!(refusal(body), param("/description"));
    let mut body = prepay_body();
    body["amount"]["discount"] = json!(1);
    assert_eq!(refusal(body), param("/amount/discount"));
    let mut body = prepay_body();
    body["unknown"] = json!("x");
    assert_eq!(refusal(body), param("/unknown"));
    let mut body = prepay_body();
    body["payer"] = json!({});
    assert_eq!(refusal(body), param("/payer/openid"));
    let mut body = prepay_body();
    body["amount"]["total"] = json!("100");
    assert_eq!(refusal(body), param("/amount/total"));
    let mut body = prepay_body();
    body["notify_url"] = json!("http://example.com/notify?x=1");
    assert_eq!(refusal(body), param("/notify_url"));
    let mut body = prepay_body();
    body["out_trade_no"] = json!("short");
    assert_eq!(refusal(body), param("/out_trade_no"));
    let mut body = prepay_body();
    body["attach"] = json!(null);
    assert_eq!(refusal(body), param("/attach"));
    let mut body = prepay_body();
    body["description"] = json!("表情😀");
    assert_eq!(refusal(body).0, "PARAM_ERROR");
    let mut body = prepay_body();
    body["time_expire"] = json!("tomorrow");
    assert_eq!(refusal(body), param("/time_expire"));
}

#[test]
fn refund_and_close_bodies() {
    let refund_body = json!({"out_trade_no": "FG0001", "out_refund_no": "FG0001-R1",
            "notify_url": "http://127.0.0.1:8080/refund", "amount": {"refund": 1, "total": 100, "currency": "CNY"}});
    assert_eq!(
        refund(refund_body.to_string().as_bytes())
            .unwrap()
            .amount
            .refund,
        1
    );
    let mut neither = refund_body.clone();
    neither.as_object_mut().unwrap().remove("out_trade_no");
    assert_eq!(
        refund(neither.to_string().as_bytes()).unwrap_err().code,
        "PARAM_ERROR"
    );
    let mut no_currency = refund_body.clone();
    no_currency["amount"]
        .as_object_mut()
        .unwrap()
        .remove("currency");
    assert_eq!(
        refund(no_currency.to_string().as_bytes()).unwrap_err().code,
        "PARAM_ERROR"
    );
    assert_eq!(close(br#"{"mchid":"1"}"#).unwrap().mchid, "1");
    assert_eq!(
        close(br#"{"mchid":"1","x":2}"#).unwrap_err().code,
        "PARAM_ERROR"
    );
    assert_eq!(body_mchid(br#"{"mchid":"9"}"#).as_deref(), Some("9"));
    assert_eq!(body_mchid(b""), None);
}
