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

#[test]
fn a_decimal_s_text_is_display_s_at_every_scale_and_sign() {
    let mut values = vec![Decimal::MAX, Decimal::MIN, Decimal::new(1, 28)];
    for mantissa in [
        0,
        1,
        5,
        10,
        29_850,
        99_999,
        i64::MAX,
        -1,
        -1_234,
        i64::MIN + 1,
    ] {
        for scale in [0, 1, 2, 3, 5, 18, 19, 20, 28] {
            let value = Decimal::new(mantissa, scale);
            values.push(value);
            values.push(-value);
            let mut negative = value;
            negative.set_sign_negative(true); // a negative zero too
            values.push(negative);
        }
    }
    let u64_max = Decimal::from_i128_with_scale(i128::from(u64::MAX), 2);
    values.extend([u64_max, -u64_max, u64_max + Decimal::new(1, 2)]);
    let mut direct = 0;
    for value in &values {
        if let Some(fast) = DecimalDigits::of(*value) {
            assert_eq!(fast.as_str(), value.to_string(), "{value:?}");
            direct += 1;
        }
    }
    assert!(direct > values.len() / 2, "the direct path wrote {direct}");
    for value in values {
        let text = with_decimal_text(value, str::to_owned);
        assert_eq!(text, value.to_string(), "{value:?}");
        let serde = serde_json::to_string(&DecimalAsText(value)).unwrap();
        assert_eq!(format!("\"{text}\""), serde, "{value:?}");
    }
}

/// The amount as the journal's events serialize it.
#[derive(serde::Serialize)]
struct DecimalAsText(#[serde(with = "rust_decimal::serde::str")] Decimal);
