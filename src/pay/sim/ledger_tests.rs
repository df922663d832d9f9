use super::*;
use crate::clock::parse_rfc3339;
use crate::pay::wire::{PrepayAmount, RefundRequestAmount};

const T0: UnixMs = 1_764_000_000_000;
const MINUTE_MS: i64 = 60_000;

fn ledger() -> Ledger {
    Ledger::new(Merchant {
        mchid: "1230000109".into(),
        appid: "wxd678efh567hg6787".into(),
    })
}

fn request(out_trade_no: &str, total: i64) -> JsapiPrepayRequest {
    JsapiPrepayRequest {
        appid: "wxd678efh567hg6787".into(),
        mchid: "1230000109".into(),
        description: "直播间-秒杀".into(),
        out_trade_no: out_trade_no.into(),
        time_expire: String::new(),
        attach: Some("sale=7".into()),
        notify_url: "http://127.0.0.1:9/notify".into(),
        amount: PrepayAmount {
            total,
            currency: "CNY".into(),
        },
        payer: Payer {
            openid: "oBuyer".into(),
        },
    }
}

fn prepay(
    ledger: &mut Ledger,
    request: &JsapiPrepayRequest,
    expire: Option<UnixMs>,
    now: UnixMs,
) -> Result<String, ApiError> {
    let raw = serde_json::to_value(request).unwrap();
    ledger.prepay(request, &raw, expire, now)
}

fn refund_request(
    out_trade_no: &str,
    out_refund_no: &str,
    refund: i64,
    total: i64,
) -> RefundRequest {
    RefundRequest {
        transaction_id: None,
        out_trade_no: Some(out_trade_no.into()),
        out_refund_no: out_refund_no.into(),
        reason: None,
        notify_url: Some("http://127.0.0.1:9/refund".into()),
        amount: RefundRequestAmount {
            refund,
            total,
            currency: "CNY".into(),
        },
    }
}

#[test]
fn a_repost_with_the_same_parameters_gets_the_same_prepay_id_for_two_hours() {
    let mut ledger = ledger();
    let first = request("FG0001", 9900);
    let prepay_id = prepay(&mut ledger, &first, None, T0).unwrap();
    assert_eq!(
        prepay(&mut ledger, &first, None, T0 + MINUTE_MS).unwrap(),
        prepay_id
    );
    let changed = request("FG0001", 9901);
    assert_eq!(
        prepay(&mut ledger, &changed, None, T0).unwrap_err().code,
        "INVALID_REQUEST"
    );

    let later = T0 + PREPAY_VALID_MS;
    assert!(matches!(
        ledger.pay(&prepay_id, later),
        Err(SimError::PrepayExpired(_))
    ));
    assert!(matches!(
        ledger.pay("FG0001", later),
        Err(SimError::PrepayExpired(_))
    ));
    let renewed = prepay(&mut ledger, &first, None, later).unwrap();
    assert_ne!(renewed, prepay_id);
    assert!(
        matches!(
            ledger.pay(&prepay_id, later),
            Err(SimError::PrepayExpired(_))
        ),
        "the old id stays dead"
    );
    let payment = ledger.pay(&renewed, later).unwrap();
    assert_eq!(payment.transaction.trade_state, TradeState::Success);
    assert_eq!(payment.notify_url, "http://127.0.0.1:9/notify");
    assert_eq!(
        prepay(&mut ledger, &first, None, later).unwrap_err().code,
        "ORDER_PAID"
    );
    assert!(matches!(
        ledger.pay("FG0001", later),
        Err(SimError::AlreadyPaid(_))
    ));
}

#[test]
fn the_payment_deadline_is_clamped_and_unpaid_orders_close_by_themselves() {
    let mut ledger = ledger();
    // time_expire in the past is raised to one minute after the order.
    prepay(&mut ledger, &request("FG0002", 1), Some(T0 - MINUTE_MS), T0).unwrap();
    assert!(ledger.pay("FG0002", T0 + MINUTE_MS - 1).is_ok());

    let expire = parse_rfc3339("2025-11-24T16:00:00+08:00").unwrap();
    let now = expire - 10 * MINUTE_MS;
    prepay(&mut ledger, &request("FG0003", 1), Some(expire), now).unwrap();
    assert!(matches!(
        ledger.pay("FG0003", expire),
        Err(SimError::PaymentDeadlinePassed(_))
    ));
    assert_eq!(
        prepay(&mut ledger, &request("FG0003", 1), Some(expire), expire)
            .unwrap_err()
            .code,
        "OUT_TRADE_NO_USED"
    );
    let unpaid = ledger.transaction("FG0003", expire + 1).unwrap();
    assert_eq!(
        unpaid.trade_state,
        TradeState::NotPay,
        "a passed deadline alone does not close"
    );
    let week_later = now + 7 * DAY_MS;
    assert_eq!(
        ledger
            .transaction("FG0003", week_later)
            .unwrap()
            .trade_state,
        TradeState::Closed
    );
    assert!(matches!(
        ledger.pay("FG0003", week_later),
        Err(SimError::OrderClosed(_))
    ));
}

#[test]
fn close_closes_unpaid_orders_refuses_paid_ones_and_accepts_unknown_numbers() {
    let mut ledger = ledger();
    prepay(&mut ledger, &request("FG0004", 100), None, T0).unwrap();
    ledger.close("FG0004", T0).unwrap();
    ledger.close("FG0004", T0).unwrap();
    assert_eq!(
        ledger.transaction("FG0004", T0).unwrap().trade_state,
        TradeState::Closed
    );
    assert!(matches!(
        ledger.pay("FG0004", T0),
        Err(SimError::OrderClosed(_))
    ));
    let error = prepay(&mut ledger, &request("FG0004", 100), None, T0).unwrap_err();
    assert_eq!(
        (error.status, error.code.as_str()),
        (403, "OUT_TRADE_NO_USED")
    );

    ledger.close("NO-SUCH-ORDER", T0).unwrap();
    assert!(ledger.transaction("NO-SUCH-ORDER", T0).is_none());

    prepay(&mut ledger, &request("FG0005", 100), None, T0).unwrap();
    let paid = ledger.pay("FG0005", T0).unwrap().transaction;
    assert_eq!(ledger.close("FG0005", T0).unwrap_err().code, "ORDER_PAID");
    let by_id = ledger
        .transaction_by_id(paid.transaction_id.as_deref().unwrap(), T0)
        .unwrap();
    assert_eq!(by_id, paid);
    assert_eq!(paid.amount.payer_total, Some(100));
    assert_eq!(paid.payer.unwrap().openid, "oBuyer");
}

#[test]
fn refunds_never_exceed_the_payment_and_a_number_refunds_once() {
    let mut ledger = ledger();
    prepay(&mut ledger, &request("FG0006", 100), None, T0).unwrap();
    assert_eq!(
        ledger
            .refund(&refund_request("FG0006", "R1", 100, 100), T0)
            .unwrap_err()
            .code,
        "RESOURCE_NOT_EXISTS",
        "unpaid"
    );
    ledger.pay("FG0006", T0).unwrap();
    let first = ledger
        .refund(&refund_request("FG0006", "R1", 60, 100), T0)
        .unwrap();
    assert!(first.created);
    assert_eq!(first.refund.status, RefundStatus::Processing);
    let again = ledger
        .refund(&refund_request("FG0006", "R1", 60, 100), T0)
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.refund.refund_id, first.refund.refund_id);
    assert_eq!(
        ledger
            .refund(&refund_request("FG0006", "R1", 61, 100), T0)
            .unwrap_err()
            .code,
        "INVALID_REQUEST"
    );
    let too_much = ledger
        .refund(&refund_request("FG0006", "R2", 41, 100), T0)
        .unwrap_err();
    assert_eq!(
        (too_much.status, too_much.code.as_str()),
        (400, "PARAM_ERROR")
    );
    assert_eq!(
        ledger
            .refund(&refund_request("FG0006", "R2", 40, 99), T0)
            .unwrap_err()
            .code,
        "PARAM_ERROR"
    );
    assert!(
        ledger
            .refund(&refund_request("FG0006", "R2", 40, 100), T0)
            .unwrap()
            .created
    );
    assert_eq!(
        ledger.transaction("FG0006", T0).unwrap().trade_state,
        TradeState::Refund
    );
    assert_eq!(
        ledger
            .refund(&refund_request("NOPE", "R3", 1, 1), T0)
            .unwrap_err()
            .code,
        "RESOURCE_NOT_EXISTS"
    );

    let completed = ledger.complete_refund("R1", T0 + 5).unwrap();
    assert_eq!(completed.resource.refund_status, RefundStatus::Success);
    assert_eq!(
        completed.notify_url.as_deref(),
        Some("http://127.0.0.1:9/refund")
    );
    assert!(
        ledger.complete_refund("R1", T0 + 6).is_none(),
        "completes once"
    );
    assert_eq!(
        ledger.refund_by_number("R1").unwrap().status,
        RefundStatus::Success
    );
}

#[test]
fn bill_rows_hold_the_days_payments_and_refunds() {
    let mut ledger = ledger();
    let day_start = parse_rfc3339("2025-11-24T00:00:00+08:00").unwrap();
    prepay(
        &mut ledger,
        &request("FG0007", 9900),
        None,
        day_start + 1000,
    )
    .unwrap();
    ledger.pay("FG0007", day_start + 2000).unwrap();
    ledger
        .refund(&refund_request("FG0007", "R7", 900, 9900), day_start + 3000)
        .unwrap();
    let planted = PlantedPayment::new("PLANTED1", 500);
    ledger.plant(&planted, day_start - 1).unwrap();

    let rows = ledger.bill_rows(day_start, day_start + DAY_MS);
    assert_eq!(rows.len(), 2, "the planted payment was made the day before");
    let (payment, refund) = (&rows[0], &rows[1]);
    assert_eq!(
        (payment.trade_state.as_str(), payment.out_refund_no.as_str()),
        ("REFUND", "0")
    );
    assert_eq!(payment.trade_time, "2025-11-24 00:00:02");
    assert_eq!(
        (payment.total_fen, payment.fee_yuan),
        (9900, Decimal::new(59400, 5))
    );
    assert_eq!(
        (
            refund.out_refund_no.as_str(),
            refund.refund_requested_fen,
            refund.total_fen
        ),
        ("R7", 900, 0)
    );
    assert_eq!(refund.refund_status, "PROCESSING");
    let yesterday = ledger.bill_rows(day_start - DAY_MS, day_start);
    assert_eq!(yesterday.len(), 1);
    assert_eq!(
        (yesterday[0].out_trade_no.as_str(), yesterday[0].total_fen),
        ("PLANTED1", 500)
    );
    assert!(matches!(
        ledger.plant(&planted, day_start),
        Err(SimError::OrderExists(_))
    ));
}
