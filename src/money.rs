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

/// An amount that serializes as [`format_yuan`] writes it, the text made
/// on the stack instead of allocated.
#[derive(Clone, Copy, Debug)]
pub struct Yuan(pub Decimal);

impl serde::Serialize for Yuan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use std::fmt::Write as _;
        let mut rounded = self.0;
        rounded.rescale(2);
        let mut text = StackText::default();
        match write!(text, "{rounded}") {
            Ok(()) => serializer.serialize_str(text.as_str()),
            Err(_) => serializer.serialize_str(&rounded.to_string()),
        }
    }
}

/// A `fmt::Write` into a fixed buffer, wide enough for any `Decimal`
/// (29 digits, a sign and a point: 31 bytes); a longer text is an error.
#[derive(Default)]
struct StackText {
    bytes: [u8; 32],
    len: usize,
}

impl StackText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("written from a str")
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
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
