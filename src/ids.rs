//! Identifiers: validation of the ids hosts choose and generation of the
//! order ids the gateway makes (also the WeChat Pay `out_trade_no`).

use std::sync::atomic::{AtomicU64, Ordering};

/// `sale_id` and `sku_id`: 1–32 chars of `[A-Za-z0-9_-]`.
pub fn is_valid_host_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(is_id_byte)
}

/// `order_id`: 6–32 chars of `[A-Za-z0-9_-]`.
pub fn is_valid_order_id(id: &str) -> bool {
    (6..=32).contains(&id.len()) && id.bytes().all(is_id_byte)
}

/// `Idempotency-Key`: 1–64 printable ASCII characters.
pub fn is_valid_idempotency_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|byte| (0x21..=0x7e).contains(&byte))
}

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Makes order ids unique within the process and across restarts: a prefix
/// from the start time in milliseconds, then a counter. 24 characters.
pub struct OrderIds {
    prefix: String,
    next: AtomicU64,
}

impl OrderIds {
    pub fn new(started_at_ms: i64) -> Self {
        OrderIds {
            prefix: format!("FG{:011x}", started_at_ms.max(0)),
            next: AtomicU64::new(1),
        }
    }

    /// How many ids this process has issued.
    pub fn issued(&self) -> u64 {
        self.next.load(Ordering::Relaxed) - 1
    }

    pub fn next_id(&self) -> String {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{:011}", self.prefix, sequence);
        debug_assert!(is_valid_order_id(&id), "{id}");
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract() {
        assert!(is_valid_host_id("sale_2026-11"));
        assert!(!is_valid_host_id(""));
        assert!(!is_valid_host_id("has space"));
        assert!(!is_valid_host_id(&"x".repeat(33)));
        assert!(!is_valid_order_id("short"));
        assert!(is_valid_idempotency_key("a:b/c"));
        assert!(!is_valid_idempotency_key("no spaces"));
        let ids = OrderIds::new(1_764_000_000_000);
        let (first, second) = (ids.next_id(), ids.next_id());
        assert_ne!(first, second);
        assert!(is_valid_order_id(&first) && first.len() == 24, "{first}");
    }
}
