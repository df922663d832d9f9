//! The identifiers WeChat Pay makes, in the shapes merchants see: a
//! `transaction_id` of 28 digits starting `42000`, a `refund_id` of 29
//! digits starting `50`, a `prepay_id` of `wx` + 34 characters, UUID-shaped
//! notification ids and `Request-ID` values of 44 upper-case hex digits.
//! All drawn from the CSPRNG, so two simulators never collide.

use aws_lc_rs::rand;

/// `4200000985202103031441826014`: `42000` and 23 more digits.
pub fn transaction_id() -> String {
    format!("42000{}", digits(23))
}

/// `50200207182018070300011301001`: `50` and 27 more digits.
pub fn refund_id() -> String {
    format!("50{}", digits(27))
}

/// `wx201410272009395522657a690389285100`: `wx` and 34 lower-case hex digits.
pub fn prepay_id() -> String {
    format!("wx{}", hex_lower(17))
}

/// `7f8fcdb2-573a-547a-901e-4c34f9761293`, the shape of real notification ids.
pub fn event_id() -> String {
    let hex = hex_lower(16);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The hex part of `Request-ID: <hex>-<code>`, 44 upper-case digits as in
/// the documentation's example.
pub fn request_hex() -> String {
    hex_lower(22).to_ascii_uppercase()
}

/// A uniformly random fraction in [0, 1): fault rates are compared with it.
pub fn fraction() -> f64 {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes).expect("the system CSPRNG is available");
    // 53 random bits: every value is an exact f64 below 1.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

fn digits(count: usize) -> String {
    // 250 = 25 × 10: bytes at or above it would favour the low digits.
    const ACCEPT_BELOW: u8 = 250;
    let mut out = String::with_capacity(count);
    let mut bytes = [0u8; 32];
    while out.len() < count {
        rand::fill(&mut bytes).expect("the system CSPRNG is available");
        for &byte in bytes.iter().filter(|&&byte| byte < ACCEPT_BELOW) {
            if out.len() == count {
                break;
            }
            out.push(char::from(b'0' + byte % 10));
        }
    }
    out
}

fn hex_lower(byte_count: usize) -> String {
    let mut bytes = vec![0u8; byte_count];
    rand::fill(&mut bytes).expect("the system CSPRNG is available");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_digits(text: &str) -> bool {
        text.bytes().all(|byte| byte.is_ascii_digit())
    }

    #[test]
    fn ids_have_the_shapes_merchants_see() {
        let transaction = transaction_id();
        assert!(transaction.len() == 28 && transaction.starts_with("42000"));
        assert!(all_digits(&transaction), "{transaction}");
        let refund = refund_id();
        assert!(refund.len() == 29 && refund.starts_with("50") && all_digits(&refund));
        let prepay = prepay_id();
        assert!(prepay.len() == 36 && prepay.starts_with("wx"), "{prepay}");
        let event = event_id();
        let groups: Vec<usize> = event.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{event}");
        let request = request_hex();
        assert!(request.len() == 44 && request.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(transaction_id(), transaction_id());
        for _ in 0..1000 {
            let value = fraction();
            assert!((0.0..1.0).contains(&value));
        }
    }
}
