use super::*;
use crate::pay::crypto::request_message;

#[test]
fn sign_error_shows_the_rebuilt_message_with_the_body_cut_short() {
    let body = br#"{"amount":{"total":1},"appid":"wx1"}"#;
    let message = request_message("POST", "/v3/pay/transactions/jsapi", 1756951532, "N", body);
    let error = ApiError::sign_not_match("POST", "/v3/pay/transactions/jsapi", &message);
    assert_eq!(error.status, 401);
    let detail = error.detail.unwrap();
    let information = &detail["sign_information"];
    assert_eq!(
        information["truncated_sign_message"],
        "POST\n/v3/pay/transactions/jsapi\n1756951532\nN\n{\"amount\n"
    );
    assert_eq!(information["sign_message_length"], message.len());
    assert_eq!(detail["detail"]["issue"], "sign not match");
    assert_eq!(detail["location"], "authorization");

    let get = request_message("GET", "/v3/x?mchid=1", 1, "N", b"");
    let error = ApiError::sign_not_match("GET", "/v3/x?mchid=1", &get);
    let shown = error.detail.unwrap()["sign_information"]["truncated_sign_message"].clone();
    assert_eq!(shown, "GET\n/v3/x?mchid=1\n1\nN\n\n");
}

#[test]
fn bodies_are_code_and_message() {
    let body: Value = serde_json::from_slice(&ApiError::order_not_exist().body()).unwrap();
    assert_eq!(
        body,
        json!({"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
    );
    let injected = ApiError::injected(429, "FREQUENCY_LIMITED", None);
    assert_eq!(injected.message, "频率超限");
    assert_eq!(injected.internal_code, FREQUENCY_LIMITED_INTERNAL_CODE);
}
