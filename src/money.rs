//! Money: exact decimal yuan in the domain and the API, integer fen on the
//! WeChat Pay wire. The conversions live here and nowhere else.

use rust_decimal::Decimal;

/// The largest price or amount accepted: 10 million yuan.
pub const AMOUNT_YUAN_MAX: i64 = 10_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal string in yuan such as \"99.00\"")]
    NotDecimal,
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("must not exceed {AMOUNT_YUAN_MAX} yuan")]
    TooLarge,
}

/// Parses an API price such as `"99.00"`: positive, at most two places.
pub fn parse_yuan(text: &str) -> Result<Decimal, MoneyError> {
    let well_formed = !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.')
        && text.bytes().filter(|&byte| byte == b'.').count() <= 1
        && !text.starts_with('.')
        && !text.ends_with('.');
    if !well_formed {
        return Err(MoneyError::NotDecimal);
    }
    let value: Decimal = text.parse().map_err(|_| MoneyError::NotDecimal)?;
    if value.normalize().scale() > 2 {
        return Err(MoneyError::TooPrecise);
    }
    if value <= Decimal::ZERO {
        return Err(MoneyError::NotPositive);
    }
    if value > Decimal::from(AMOUNT_YUAN_MAX) {
        return Err(MoneyError::TooLarge);
    }
    Ok(value)
}

/// Formats yuan for the API with exactly two places: `"99.00"`.
pub fn format_yuan(value: Decimal) -> String {
    let mut rounded = value;
    rounded.rescale(2);
    rounded.to_string()
}

/// Yuan to integer fen for WeChat Pay. Exact: refuses a sub-fen remainder.
pub fn yuan_to_fen(value: Decimal) -> Result<i64, MoneyError> {
    let fen = value * Decimal::ONE_HUNDRED;
    if fen.normalize().scale() > 0 {
        return Err(MoneyError::TooPrecise);
    }
    i64::try_from(fen).map_err(|_| MoneyError::TooLarge)
}

#[cfg(test)]
#[path = "money_tests.rs"]
mod tests;
