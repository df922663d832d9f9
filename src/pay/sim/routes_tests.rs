use super::*;

#[test]
fn routes_resolve_with_decoded_parameters() {
    let get = |path: &str| Route::resolve(&Method::GET, path);
    assert_eq!(
        get("/v3/pay/transactions/out-trade-no/FG%7C0001"),
        Some(Route::QueryByOutTradeNo("FG|0001".into()))
    );
    assert_eq!(get("/v3/pay/transactions/out-trade-no/"), None);
    assert_eq!(get("/v3/pay/transactions/jsapi"), None, "prepay is a POST");
    assert_eq!(
        Route::resolve(&Method::POST, "/v3/pay/transactions/out-trade-no/A1/close"),
        Some(Route::Close("A1".into()))
    );
    assert_eq!(
        get("/v3/refund/domestic/refunds/R1").unwrap().endpoint(),
        "refund_query"
    );
    assert_eq!(get("/v3/bill/tradebill"), Some(Route::TradeBill));
    assert_eq!(
        get("/v3/pay/transactions/id/4200").unwrap().endpoint(),
        "query"
    );
}

#[test]
fn query_parameters_are_found_by_name() {
    assert_eq!(
        query_param("mchid=1230000109", "mchid").as_deref(),
        Some("1230000109")
    );
    assert_eq!(
        query_param("a=1&bill_date=2026-11-24", "bill_date").as_deref(),
        Some("2026-11-24")
    );
    assert_eq!(query_param("token=a%2Bb", "token").as_deref(), Some("a+b"));
    assert_eq!(query_param("mchid", "mchid").as_deref(), Some(""));
    assert_eq!(query_param("", "mchid"), None);
    assert_eq!(percent_decode("%zz"), None);
    assert_eq!(percent_decode("%4"), None);
}
