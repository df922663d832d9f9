//! Property tests of the inventory run sequentially against a plain model.
//!
//! Random sequences of reserve / release / restock (and pay, for `ItemStock`)
//! prove that, after every step:
//! - no stock is ever observed below zero;
//! - units are conserved: `remaining + held == initial + restocked`;
//! - a reservation succeeds exactly when the stock left covers it, and a
//!   failure says `SoldOut` exactly when nothing is left;
//! - the sold-out flag is never set while stock remains, and is set once a
//!   reservation finds the stock empty;
//! - `ItemStock::counts()` adds up: `remaining + reserved + paid == stock`,
//!   each figure matching the model.
//!
//! One plain test pins down that any `usize` is accepted as a hint.

use flashgate::inventory::{ItemStock, Shards, Shortage, StockCounts};
use proptest::prelude::*;

/// One step applied to the stock under test and to the model.
#[derive(Debug, Clone)]
enum Step {
    Reserve {
        quantity: i64,
        hint: usize,
    },
    /// Gives back the hold at `pick % holds.len()`, if any.
    Release {
        pick: usize,
        hint: usize,
    },
    Restock {
        quantity: i64,
    },
    /// The hold at `pick % holds.len()` is paid (`ItemStock` only).
    Pay {
        pick: usize,
    },
}

fn shards_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..=5i64, 0..64usize).prop_map(|(quantity, hint)| Step::Reserve { quantity, hint }),
        2 => (any::<usize>(), 0..64usize).prop_map(|(pick, hint)| Step::Release { pick, hint }),
        1 => (1..=20i64).prop_map(|quantity| Step::Restock { quantity }),
    ]
}

fn item_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..=5i64, 0..64usize).prop_map(|(quantity, hint)| Step::Reserve { quantity, hint }),
        2 => (any::<usize>(), 0..64usize).prop_map(|(pick, hint)| Step::Release { pick, hint }),
        2 => any::<usize>().prop_map(|pick| Step::Pay { pick }),
        1 => (1..=20i64).prop_map(|quantity| Step::Restock { quantity }),
    ]
}

/// What the stock should look like, kept with plain integers.
#[derive(Debug, Default)]
struct Model {
    remaining: i64,
    stock: i64,
    /// Quantities of the reservations currently held.
    holds: Vec<i64>,
    paid: i64,
    released: i64,
}

impl Model {
    fn new(stock: i64) -> Self {
        Model {
            remaining: stock,
            stock,
            ..Model::default()
        }
    }

    fn held(&self) -> i64 {
        self.holds.iter().sum()
    }

    fn take_hold(&mut self, pick: usize) -> Option<i64> {
        if self.holds.is_empty() {
            return None;
        }
        let index = pick % self.holds.len();
        Some(self.holds.swap_remove(index))
    }

    /// The outcome a sequential reservation must have.
    fn expected_reserve(&self, quantity: i64) -> Result<(), Shortage> {
        if self.remaining >= quantity {
            Ok(())
        } else if self.remaining == 0 {
            Err(Shortage::SoldOut)
        } else {
            Err(Shortage::Insufficient)
        }
    }

    fn apply_reserve(&mut self, quantity: i64, outcome: Result<(), Shortage>) {
        if outcome.is_ok() {
            self.remaining -= quantity;
            self.holds.push(quantity);
        }
    }
}

/// Checks every invariant of a `Shards` against the model.
fn check_shards(
    shards: &Shards,
    model: &Model,
    initial: i64,
    restocked: i64,
) -> Result<(), TestCaseError> {
    let remaining = shards.remaining();
    prop_assert!(remaining >= 0, "remaining went negative: {remaining}");
    prop_assert_eq!(remaining, model.remaining);
    prop_assert_eq!(
        remaining + model.held(),
        initial + restocked,
        "units are not conserved"
    );
    if remaining > 0 {
        prop_assert!(
            !shards.is_sold_out_flagged(),
            "sold-out flag set while {} units remain",
            remaining
        );
    }
    Ok(())
}

fn check_item(item: &ItemStock, model: &Model) -> Result<(), TestCaseError> {
    let counts = item.counts();
    prop_assert!(counts.remaining >= 0 && counts.reserved >= 0 && counts.paid >= 0);
    prop_assert_eq!(
        counts.remaining + counts.reserved + counts.paid,
        counts.stock,
        "counts do not add up: {:?}",
        counts
    );
    prop_assert_eq!(
        counts,
        StockCounts {
            stock: model.stock,
            reserved: model.held(),
            paid: model.paid,
            released: model.released,
            remaining: model.remaining,
        }
    );
    if counts.remaining > 0 {
        prop_assert!(
            !item.is_sold_out(),
            "sold out with {} units left",
            counts.remaining
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn shards_conserve_units_and_never_go_negative(
        shard_count in 1..8usize,
        initial in 0..50i64,
        steps in prop::collection::vec(shards_step(), 1..64),
    ) {
        let shards: Shards = Shards::new(shard_count, initial);
        let mut model = Model::new(initial);
        let mut restocked = 0;
        check_shards(&shards, &model, initial, restocked)?;
        for step in steps {
            match step {
                Step::Reserve { quantity, hint } => {
                    let expected = model.expected_reserve(quantity);
                    let outcome = shards.reserve(quantity, hint);
                    prop_assert_eq!(outcome, expected, "reserve({}, {})", quantity, hint);
                    model.apply_reserve(quantity, outcome);
                    if outcome == Err(Shortage::SoldOut) {
                        prop_assert!(
                            shards.is_sold_out_flagged(),
                            "a reservation found the stock empty but left the flag clear"
                        );
                    }
                }
                Step::Release { pick, hint } => {
                    if let Some(quantity) = model.take_hold(pick) {
                        shards.release(quantity, hint);
                        model.remaining += quantity;
                    }
                }
                Step::Restock { quantity } => {
                    shards.restock(quantity);
                    model.remaining += quantity;
                    restocked += quantity;
                }
                Step::Pay { .. } => unreachable!("shards_step makes no payments"),
            }
            check_shards(&shards, &model, initial, restocked)?;
        }
    }

    #[test]
    fn item_counts_always_add_up_to_the_stock(
        shard_count in 1..8usize,
        initial in 0..50i64,
        steps in prop::collection::vec(item_step(), 1..64),
    ) {
        let item = ItemStock::new(shard_count, initial);
        let mut model = Model::new(initial);
        check_item(&item, &model)?;
        for step in steps {
            match step {
                Step::Reserve { quantity, hint } => {
                    let expected = model.expected_reserve(quantity);
                    let outcome = item.reserve(quantity, hint);
                    prop_assert_eq!(outcome, expected, "reserve({}, {})", quantity, hint);
                    model.apply_reserve(quantity, outcome);
                }
                Step::Release { pick, hint } => {
                    if let Some(quantity) = model.take_hold(pick) {
                        item.release(quantity, hint);
                        model.remaining += quantity;
                        model.released += quantity;
                    }
                }
                Step::Pay { pick } => {
                    if let Some(quantity) = model.take_hold(pick) {
                        item.mark_paid(quantity);
                        model.paid += quantity;
                    }
                }
                Step::Restock { quantity } => {
                    item.restock(quantity);
                    model.remaining += quantity;
                    model.stock += quantity;
                }
            }
            check_item(&item, &model)?;
        }
    }
}

/// The hint is any `usize` (a worker id, a hash); the last shard must still be
/// found when the hint is near `usize::MAX`.
///
/// Fails against the current `Shards::reserve`: `(hint + step) % count`
/// overflows for `hint > usize::MAX - (count - 1)`, which panics in a debug
/// build and, in a release build, wraps so that one shard is probed twice and
/// another never, answering `Insufficient` while that shard holds the stock.
#[test]
fn reserve_accepts_any_hint_even_the_largest() {
    let shards: Shards = Shards::new(3, 3); // one unit per shard
    assert_eq!(shards.reserve(1, 0), Ok(()));
    assert_eq!(shards.reserve(1, 1), Ok(()));
    // Only the shard at index 2 holds a unit now.
    assert_eq!(shards.remaining(), 1);
    assert_eq!(shards.reserve(1, usize::MAX), Ok(()));
    assert_eq!(shards.remaining(), 0);
}
