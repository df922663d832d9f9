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

impl Yuan {
    /// Hands the text to `use_text`, made on the stack.
    pub fn with_text<R>(self, use_text: impl FnOnce(&str) -> R) -> R {
        let mut rounded = self.0;
        rounded.rescale(2);
        with_decimal_text(rounded, use_text)
    }
}

/// Hands `value`'s text at its own scale (as `Display` and
/// `rust_decimal::serde::str` write it) to `use_text`, made on the stack.
pub fn with_decimal_text<R>(value: Decimal, use_text: impl FnOnce(&str) -> R) -> R {
    use std::fmt::Write as _;
    if let Some(text) = DecimalDigits::of(value) {
        return use_text(text.as_str());
    }
    let mut text = StackText::default();
    match write!(text, "{value}") {
        Ok(()) => use_text(text.as_str()),
        Err(_) => use_text(&value.to_string()),
    }
}

impl serde::Serialize for Yuan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_text(|text| serializer.serialize_str(text))
    }
}

/// A decimal's text written straight from its mantissa when that fits a
/// `u64` and its scale is at most 19 (every price and amount here), with
/// the rules of `Display`: digits padded to the scale, `0` before a bare
/// point, a zero of scale 0 as `0`, the sign of a negative zero kept.
struct DecimalDigits {
    bytes: [u8; 24],
    len: usize,
}

impl DecimalDigits {
    fn of(value: Decimal) -> Option<DecimalDigits> {
        let mantissa = u64::try_from(value.mantissa().unsigned_abs()).ok()?;
        let scale = value.scale() as usize;
        if scale > 19 {
            return None;
        }
        let mut digits = [b'0'; 20];
        let start = match mantissa {
            0 => digits.len(),
            _ => crate::ids::decimal_digits(mantissa, &mut digits),
        };
        // Padded with the buffer's zeros to at least `scale` digits.
        let start = start.min(digits.len() - scale);
        let point = digits.len() - scale;
        let mut text = DecimalDigits {
            bytes: [0; 24],
            len: 0,
        };
        if value.is_sign_negative() {
            text.push(b"-");
        }
        match point - start {
            0 => text.push(b"0"),
            _ => text.push(&digits[start..point]),
        }
        if scale > 0 {
            text.push(b".");
            text.push(&digits[point..]);
        }
        Some(text)
    }

    fn push(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("digits, a sign and a point")
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
