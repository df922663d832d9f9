//! Identifiers: validation of the ids hosts choose and generation of the
//! order ids the gateway makes (also the WeChat Pay `out_trade_no`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// A reference WeChat Pay hands us (`prepay_id`, `transaction_id`,
/// `refund_id`): 1–64 printable ASCII characters. WeChat's own are shorter;
/// the bound keeps a forged or damaged one out of the journal.
pub fn is_valid_wechat_reference(reference: &str) -> bool {
    (1..=64).contains(&reference.len())
        && reference.bytes().all(|byte| (0x21..=0x7e).contains(&byte))
}

/// `out_refund_no` as WeChat Pay accepts it: 1–64 characters of
/// `[0-9A-Za-z_-|*@]`.
pub fn is_valid_out_refund_no(out_refund_no: &str) -> bool {
    (1..=64).contains(&out_refund_no.len())
        && out_refund_no
            .bytes()
            .all(|byte| is_id_byte(byte) || matches!(byte, b'|' | b'*' | b'@'))
}

/// The refund number of an order's (one, full) refund: the order id with
/// `R1` appended, so a refund notification leads back to its order and a
/// retried refund reuses the number. Injective, so the order id is the
/// number without its `R1`.
pub fn out_refund_no_of(order_id: &str) -> String {
    format!("{order_id}{REFUND_SUFFIX}")
}

/// The order an `out_refund_no` of [`out_refund_no_of`] belongs to.
pub fn order_id_of_refund(out_refund_no: &str) -> Option<&str> {
    out_refund_no
        .strip_suffix(REFUND_SUFFIX)
        .filter(|order_id| !order_id.is_empty())
}

const REFUND_SUFFIX: &str = "R1";

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Room for the longest order id: the prefix at its longest (`FG`, an
/// `i64`'s 16 hex digits, a node's 3-character tag) and `u64::MAX`'s 20 digits.
const ORDER_ID_BYTES_ON_STACK: usize = 2 + 16 + 3 + 20;

/// Makes order ids unique within the process and across restarts: a prefix
/// from the start time in milliseconds, then a counter. 24 characters; 27
/// on a cluster node, whose prefix also holds its node tag (three base-36
/// characters Redis gives each node id once), so two nodes starting in the
/// same millisecond still make different ids.
///
/// The counter is a word every HTTP thread would write on every order (see
/// [`crate::stripes`]), so with [`OrderIds::in_blocks_of`] a thread takes a
/// block of numbers at once and numbers its orders from it: ids stay
/// unique, but no longer follow the order orders were made in across
/// threads, and a thread's unused numbers are skipped.
pub struct OrderIds {
    prefix: String,
    /// The first number no thread has taken.
    next: AtomicU64,
    /// Numbers a thread takes at once; 1: each order takes its own.
    block: u64,
    /// This generator among the process's, for the threads' blocks.
    generator: u64,
}

// The calling thread's block: its generator, the next number, the end.
thread_local! {
    static BLOCK: std::cell::Cell<(u64, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

impl OrderIds {
    pub fn new(started_at_ms: i64) -> Self {
        OrderIds {
            prefix: format!("FG{:011x}", started_at_ms.max(0)),
            next: AtomicU64::new(1),
            block: 1,
            generator: crate::stripes::unique_owner(),
        }
    }

    /// Ids continuing from `started_at_ms` with the node's tag in the prefix.
    pub fn tagged(started_at_ms: i64, node_tag: u64) -> Self {
        assert!(
            node_tag < 36 * 36 * 36,
            "a node tag is three base-36 digits"
        );
        OrderIds {
            prefix: format!("FG{:011x}{}", started_at_ms.max(0), base36_3(node_tag)),
            next: AtomicU64::new(1),
            block: 1,
            generator: crate::stripes::unique_owner(),
        }
    }

    /// The same ids, numbered from blocks of `block` numbers per thread.
    pub fn in_blocks_of(self, block: u64) -> Self {
        OrderIds {
            block: block.max(1),
            ..self
        }
    }

    /// How many numbers threads have taken: the ids issued, and with
    /// blocks the numbers threads hold for their next orders.
    pub fn issued(&self) -> u64 {
        self.next.load(Ordering::Relaxed) - 1
    }

    fn take(&self) -> u64 {
        if self.block == 1 {
            return self.next.fetch_add(1, Ordering::Relaxed);
        }
        BLOCK.with(|block| {
            let (generator, next, end) = block.get();
            if generator == self.generator && next < end {
                block.set((generator, next + 1, end));
                return next;
            }
            let first = self.next.fetch_add(self.block, Ordering::Relaxed);
            block.set((self.generator, first + 1, first + self.block));
            first
        })
    }

    /// The prefix and the counter in at least 11 decimal digits, as
    /// `format!("{prefix}{sequence:011}")` writes it, without the
    /// formatting machinery: this runs for every order. Made on the stack
    /// and copied once into the `Arc` the order's record, key and hold share.
    pub fn next_id(&self) -> Arc<str> {
        let sequence = self.take();
        let mut digits = [b'0'; 20];
        let start = decimal_digits(sequence, &mut digits).min(digits.len() - 11);
        let mut id = [0u8; ORDER_ID_BYTES_ON_STACK];
        let length = self.prefix.len() + digits.len() - start;
        id[..self.prefix.len()].copy_from_slice(self.prefix.as_bytes());
        id[self.prefix.len()..length].copy_from_slice(&digits[start..]);
        let id = std::str::from_utf8(&id[..length]).expect("ASCII prefix and digits");
        debug_assert!(is_valid_order_id(id), "{id}");
        Arc::from(id)
    }
}

/// Writes `value` in decimal at the end of `digits` (`u64::MAX` has 20)
/// and answers where it starts; the bytes before are left as they were.
pub fn decimal_digits(value: u64, digits: &mut [u8; 20]) -> usize {
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return start;
        }
    }
}

fn base36_3(value: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let digit = |place: u32| char::from(DIGITS[((value / 36u64.pow(place)) % 36) as usize]);
    [digit(2), digit(1), digit(0)].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_taken_in_blocks_are_unique_across_threads_and_generators() {
        let ids = std::sync::Arc::new(OrderIds::new(1_764_000_000_000).in_blocks_of(4));
        let other = OrderIds::new(1_764_000_000_000).in_blocks_of(4);
        // This thread alternates between two generators of the same prefix:
        // a block of one is never used for the other's ids.
        let mut here = Vec::new();
        let mut others = Vec::new();
        for _ in 0..10 {
            here.push(ids.next_id());
            others.push(other.next_id());
        }
        let there: Vec<Arc<str>> = (0..3)
            .map(|_| {
                let ids = std::sync::Arc::clone(&ids);
                std::thread::spawn(move || (0..10).map(|_| ids.next_id()).collect::<Vec<_>>())
            })
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        let all: std::collections::HashSet<&Arc<str>> = here.iter().chain(&there).collect();
        assert_eq!(all.len(), 40, "{here:?} {there:?}");
        let others: std::collections::HashSet<&Arc<str>> = others.iter().collect();
        assert_eq!(others.len(), 10);
        // Each switch of generator on this thread left a block (10 of 4
        // numbers); each other thread took 3 blocks for its 10 ids.
        assert!(
            (40..=10 * 4 + 3 * 3 * 4).contains(&ids.issued()),
            "{}",
            ids.issued()
        );
        // One by one, the count is exact.
        let single = OrderIds::new(1_764_000_000_000);
        single.next_id();
        single.next_id();
        assert_eq!(single.issued(), 2);
    }

    #[test]
    fn tagged_ids_differ_between_nodes_started_in_the_same_millisecond() {
        let (a, b) = (
            OrderIds::tagged(1_764_000_000_000, 1),
            OrderIds::tagged(1_764_000_000_000, 2),
        );
        let (first_a, first_b) = (a.next_id(), b.next_id());
        assert_ne!(first_a, first_b);
        assert!(
            is_valid_order_id(&first_a) && first_a.len() == 27,
            "{first_a}"
        );
        let last = OrderIds::tagged(1_764_000_000_000, 36 * 36 * 36 - 1).next_id();
        assert!(last.contains("zzz") && is_valid_order_id(&last), "{last}");
    }

    #[test]
    fn the_counter_is_written_as_at_least_eleven_decimal_digits() {
        let ids = OrderIds::new(1_764_000_000_000);
        let longest = 9_999_999_999_999_999_999; // 19 digits: 32 characters in all
        for sequence in [1, 9, 10, 12_345, 99_999_999_999, 100_000_000_000, longest] {
            ids.next.store(sequence, Ordering::Relaxed);
            assert_eq!(*ids.next_id(), format!("{}{sequence:011}", ids.prefix));
        }
        let longest_prefix = OrderIds::tagged(i64::MAX, 36 * 36 * 36 - 1).prefix;
        assert_eq!(
            longest_prefix.len() + u64::MAX.to_string().len(),
            ORDER_ID_BYTES_ON_STACK,
            "the stack buffer holds the longest id"
        );
    }

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

    #[test]
    fn refund_numbers_lead_back_to_their_order() {
        let order_id = OrderIds::new(1_764_000_000_000).next_id();
        let out_refund_no = out_refund_no_of(&order_id);
        assert!(is_valid_out_refund_no(&out_refund_no), "{out_refund_no}");
        assert_eq!(order_id_of_refund(&out_refund_no), Some(&*order_id));
        // An order id that itself ends in R1 still round-trips.
        assert_eq!(
            order_id_of_refund(&out_refund_no_of("abcR1")),
            Some("abcR1")
        );
        assert_eq!(order_id_of_refund("R1"), None);
        assert_eq!(order_id_of_refund("FG123"), None);
        assert!(is_valid_out_refund_no("a|b*c@d_e-f"));
        assert!(!is_valid_out_refund_no("a b") && !is_valid_out_refund_no(""));
        assert!(!is_valid_out_refund_no(&"x".repeat(65)));
        assert!(is_valid_wechat_reference(
            "wx201410272009395522657a690389285100"
        ));
        assert!(!is_valid_wechat_reference("has space") && !is_valid_wechat_reference(""));
    }
}
