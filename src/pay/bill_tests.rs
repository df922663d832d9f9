use super::*;

fn paid_row() -> BillRow {
    BillRow {
        trade_time: "2026-11-24 20:15:03".into(),
        appid: "wx2421b1c4370ec43b".into(),
        mchid: "1230000109".into(),
        sub_mchid: "0".into(),
        device_info: String::new(),
        transaction_id: "4200000985202103031441826014".into(),
        out_trade_no: "FG0001".into(),
        openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
        trade_type: "JSAPI".into(),
        trade_state: "SUCCESS".into(),
        bank_type: "OTHERS".into(),
        currency: "CNY".into(),
        settlement_total_fen: 9900,
        coupon_fen: 0,
        refund_id: "0".into(),
        out_refund_no: "0".into(),
        refund_fen: 0,
        recharge_coupon_refund_fen: 0,
        refund_type: String::new(),
        refund_status: String::new(),
        description: "直播间-秒杀, 限量".into(),
        attach: String::new(),
        fee_yuan: Decimal::new(59400, 5),
        rate: "0.60%".into(),
        total_fen: 9900,
        refund_requested_fen: 0,
        rate_note: String::new(),
    }
}

fn refund_row() -> BillRow {
    BillRow {
        trade_time: "2026-11-24 21:00:00".into(),
        trade_state: "REFUND".into(),
        refund_id: "50200207182018070300011301001".into(),
        out_refund_no: "FG0001-R1".into(),
        refund_fen: 1,
        refund_type: "ORIGINAL".into(),
        refund_status: "SUCCESS".into(),
        description: "直播间-秒杀".into(),
        attach: "sale=7".into(),
        fee_yuan: Decimal::new(0, 5),
        refund_requested_fen: 1,
        ..paid_row()
    }
}

#[test]
fn render_then_parse_gives_back_the_rows() {
    let rows = vec![paid_row(), refund_row()];
    let summary = BillSummary::from_rows(&rows);
    let text = render(&rows, &summary);
    let mut lines = text.split("\r\n");
    assert_eq!(lines.next().unwrap(), ALL_COLUMNS.join(","));
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("`2026-11-24 20:15:03,`wx2421b1c4370ec43b,`1230000109,`0,`,`4200"),
        "{first}"
    );
    assert!(first.contains(",`99.00,`0.00,`0,`0,`0.00,`0.00,`,`,`直播间-秒杀  限量,`,`0.59400,`0.60%,`99.00,`0.00,`"), "{first}");
    assert!(text.contains("\r\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n`2,`198.00,`0.01,`0.00,`0.59400,`198.00,`0.01\r\n"), "{text}");

    let bill = parse_bill(&text).unwrap();
    let mut expected = rows.clone();
    expected[0].description = "直播间-秒杀  限量".into();
    assert_eq!(bill.rows, expected);
    assert_eq!(bill.summary, summary);
    assert_eq!(parse(&text).unwrap(), expected);
}

#[test]
fn parses_a_hand_written_bill_with_empty_values_and_summary() {
    let text = "\u{feff}交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n\
`2026-11-23 10:00:01,`wxd678efh567hg6787,`1230000109,`0,`,`4200000985202103031441826014,`A1,`oUser1,`JSAPI,`SUCCESS,`CMB_DEBIT,`CNY,`0.01,`0.00,`0,`0,`0.00,`0.00,`,`,`test,`,`0.00000,`0.60%,`0.01,`0.00,`\n\
`2026-11-23 11:30:00,`wxd678efh567hg6787,`1230000109,`0,`,`4200000985202103031441826015,`A2,`oUser2,`JSAPI,`REFUND,`OTHERS,`CNY,`1234.56,`0.00,`50300000000000000000000000001,`A2-R1,`1234.56,`0.00,`ORIGINAL,`SUCCESS,`手机,`note,`7.40736,`0.60%,`1234.56,`1234.56,`\n\
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n\
`2,`1234.57,`1234.56,`0.00,`7.40736,`1234.57,`1234.56\n\n";
    let bill = parse_bill(text).unwrap();
    assert_eq!(bill.rows.len(), 2);
    let first = &bill.rows[0];
    assert_eq!(first.device_info, "", "a lone backtick is an empty value");
    assert_eq!(first.total_fen, 1);
    assert_eq!(first.refund_id, "0");
    assert_eq!(first.refund_status, "");
    assert_eq!(first.fee_yuan, Decimal::ZERO);
    let second = &bill.rows[1];
    assert_eq!(second.total_fen, 123456);
    assert_eq!(second.refund_fen, 123456);
    assert_eq!(second.out_refund_no, "A2-R1");
    assert_eq!(second.fee_yuan, Decimal::new(740736, 5));
    assert_eq!(second.attach, "note");
    assert_eq!(
        bill.summary,
        BillSummary {
            trade_count: 2,
            settlement_total_fen: 123457,
            refund_total_fen: 123456,
            recharge_coupon_refund_total_fen: 0,
            fee_total_yuan: Decimal::new(740736, 5),
            order_total_fen: 123457,
            refund_requested_total_fen: 123456,
        }
    );
    assert_eq!(bill.summary, BillSummary::from_rows(&bill.rows));
}

#[test]
fn malformed_bills_are_refused_with_the_line() {
    let good = render(&[paid_row()], &BillSummary::from_rows(&[paid_row()]));
    assert_eq!(
        parse(&good.replacen("交易时间", "交易日期", 1)),
        Err(BillError::Header)
    );
    assert_eq!(parse(""), Err(BillError::Header));
    let header_only = format!("{}\n", ALL_COLUMNS.join(","));
    assert_eq!(parse(&header_only), Err(BillError::MissingSummary));
    assert!(matches!(
        parse(&good.replacen(",`JSAPI", ",JSAPI", 1)),
        Err(BillError::MissingBacktick {
            line: 2,
            column: "交易类型"
        })
    ));
    assert!(matches!(
        parse(&good.replacen(",`JSAPI", ",`JS,API", 1)),
        Err(BillError::ColumnCount {
            line: 2,
            found: 28,
            expected: 27
        })
    ));
    for bad_amount in ["`99.001", "`-1.00", "`1e2", "`abc"] {
        assert!(
            matches!(
                parse(&good.replacen(",`99.00", &format!(",{bad_amount}"), 1)),
                Err(BillError::Amount { line: 2, .. })
            ),
            "{bad_amount}"
        );
    }
    assert!(matches!(
        parse(&good.replacen("`0.59400", "`0.594001", 1)),
        Err(BillError::Amount {
            line: 2,
            column: "手续费",
            ..
        })
    ));
    assert!(matches!(
        parse(&format!("{good}`extra\n")),
        Err(BillError::TrailingContent { line: 5 })
    ));
    assert!(matches!(
        parse(&good.replacen("\r\n`1,", "\r\n`x,", 1)),
        Err(BillError::TradeCount { line: 4, .. })
    ));
}
