use super::*;

#[test]
fn parses_and_formats_prices_exactly() {
    assert_eq!(format_yuan(parse_yuan("99").unwrap()), "99.00");
    assert_eq!(format_yuan(parse_yuan("0.1").unwrap()), "0.10");
    assert_eq!(
        format_yuan(parse_yuan("19.99").unwrap() * Decimal::from(3)),
        "59.97"
    );
    assert_eq!(parse_yuan("1.005"), Err(MoneyError::TooPrecise));
    assert_eq!(parse_yuan("1.500").map(format_yuan), Ok("1.50".into()));
    for bad in ["", "-1", "1e3", "abc", ".5", "5.", "1.2.3", " 1"] {
        assert_eq!(parse_yuan(bad), Err(MoneyError::NotDecimal), "{bad:?}");
    }
    assert_eq!(parse_yuan("0.00"), Err(MoneyError::NotPositive));
    assert_eq!(parse_yuan("10000000.01"), Err(MoneyError::TooLarge));
}

#[test]
fn converts_yuan_to_fen_without_rounding() {
    assert_eq!(yuan_to_fen(parse_yuan("99.00").unwrap()), Ok(9900));
    assert_eq!(yuan_to_fen(parse_yuan("0.01").unwrap()), Ok(1));
    assert_eq!(
        yuan_to_fen(parse_yuan("0.1").unwrap() * Decimal::from(3)),
        Ok(30)
    );
    assert_eq!(
        yuan_to_fen(Decimal::new(1234, 3)),
        Err(MoneyError::TooPrecise)
    );
}

#[test]
fn an_amount_serializes_as_format_yuan_writes_it() {
    for value in [
        Decimal::new(29850, 2),
        Decimal::new(99, 0),
        Decimal::new(1, 1),
        Decimal::new(5, 3),
        Decimal::MAX,
        Decimal::MIN,
        Decimal::new(1, 28),
        Decimal::ZERO,
    ] {
        let json = serde_json::to_string(&Yuan(value)).unwrap();
        assert_eq!(json, format!("\"{}\"", format_yuan(value)), "{value}");
    }
}
