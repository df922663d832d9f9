//! Loom model checks of the shard algorithm, run on loom's atomics through
//! the `Cell` trait so the exact production code is explored.
//!
//! Every interleaving of small two-thread races (the three-thread one with a
//! preemption bound of 3) proves:
//! - the last unit goes to exactly one of two racing buyers;
//! - a multi-shard gather racing a reservation or a release neither oversells
//!   nor loses units, and no cell ever holds a negative value (the cell itself
//!   asserts this on every write);
//! - the sold-out flag is never left set while stock remains, even when the
//!   units that refill the stock (a release, a restock) arrive mid-scan or
//!   are moved between shards by a failed gather.

use flashgate::inventory::{Cell, Shards, Shortage};
use loom::sync::atomic::{fence, AtomicI64, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// A loom atomic behind the production `Cell` trait, with the same `SeqCst`
/// semantics as the production `AtomicI64` cell.
///
/// Loom models a `SeqCst` access as only `AcqRel` (loom's README,
/// "Unsupported features"), which lets a load miss a store that precedes it
/// in the single total order real `SeqCst` guarantees; the sold-out re-scan
/// relies on that order and loom then reports false alarms. `fence(SeqCst)`
/// is modelled exactly, so every access is wrapped in `SeqCst` fences: with
/// every access `SeqCst` (as in production) both give sequentially
/// consistent interleavings, so no real behaviour is hidden.
///
/// Every write asserts the value it leaves behind is not negative, so a shard
/// dipping below zero in any interleaving fails the model.
struct LoomCell(AtomicI64);

impl LoomCell {
    fn sequentially_consistent<T>(access: impl FnOnce() -> T) -> T {
        fence(SeqCst);
        let result = access();
        fence(SeqCst);
        result
    }
}

impl Cell for LoomCell {
    fn with_value(value: i64) -> Self {
        assert!(value >= 0, "a cell starts at {value}");
        LoomCell(AtomicI64::new(value))
    }

    fn load(&self) -> i64 {
        Self::sequentially_consistent(|| self.0.load(SeqCst))
    }

    fn store(&self, value: i64) {
        assert!(value >= 0, "a cell is set to {value}");
        Self::sequentially_consistent(|| self.0.store(value, SeqCst))
    }

    fn fetch_add(&self, value: i64) -> i64 {
        let previous = Self::sequentially_consistent(|| self.0.fetch_add(value, SeqCst));
        assert!(previous + value >= 0, "a cell went to {}", previous + value);
        previous
    }

    fn compare_exchange(&self, current: i64, new: i64) -> Result<i64, i64> {
        let outcome =
            Self::sequentially_consistent(|| self.0.compare_exchange(current, new, SeqCst, SeqCst));
        if outcome.is_ok() {
            assert!(new >= 0, "a cell went to {new}");
        }
        outcome
    }
}

type LoomShards = Shards<LoomCell>;

/// Explores every interleaving of a two-thread model.
fn check_every_interleaving(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = None;
    builder.check(model);
}

/// Explores every interleaving with at most `preemptions` forced switches,
/// for models whose full state space takes too long in a debug build.
fn check_with_preemption_bound(preemptions: usize, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(model);
}

/// Units taken by a successful reservation of `quantity`, else nothing.
fn units(outcome: Result<(), Shortage>, quantity: i64) -> i64 {
    if outcome.is_ok() {
        quantity
    } else {
        0
    }
}

/// Quiescent check: a flag left set must mean there is nothing to sell.
fn assert_flag_not_stuck(shards: &LoomShards) {
    let remaining = shards.remaining();
    assert!(
        remaining == 0 || !shards.is_sold_out_flagged(),
        "sold-out flag left set with {remaining} units in the shards"
    );
}

#[test]
fn the_last_unit_goes_to_exactly_one_of_two_racing_buyers() {
    check_every_interleaving(|| {
        let shards = Arc::new(LoomShards::new(2, 1));
        let other = shards.clone();
        let second = thread::spawn(move || other.reserve(1, 1));
        let first = shards.reserve(1, 0);
        let second = second.join().unwrap();

        let winners = [first, second]
            .iter()
            .filter(|outcome| outcome.is_ok())
            .count();
        assert_eq!(winners, 1, "outcomes {first:?} and {second:?}");
        let loser = if first.is_ok() { second } else { first };
        assert_eq!(loser, Err(Shortage::SoldOut));
        assert_eq!(shards.remaining(), 0);
        assert!(shards.is_sold_out_flagged(), "the loser saw it empty");
    });
}

#[test]
fn a_gather_racing_a_single_reservation_conserves_units() {
    check_every_interleaving(|| {
        // One unit in each shard: only a gather can make 2.
        let shards = Arc::new(LoomShards::new(2, 2));
        let other = shards.clone();
        let single = thread::spawn(move || other.reserve(1, 1));
        let gather = shards.reserve(2, 0);
        let single = single.join().unwrap();

        let sold = units(gather, 2) + units(single, 1);
        assert!(sold <= 2, "oversold: {gather:?}, {single:?}");
        assert_eq!(shards.remaining() + sold, 2, "{gather:?}, {single:?}");
        assert!(
            gather.is_ok() || single.is_ok(),
            "stock covered either order but both failed: {gather:?}, {single:?}"
        );
        assert_flag_not_stuck(&shards);
    });
}

#[test]
fn a_gather_racing_a_release_conserves_units() {
    check_every_interleaving(|| {
        // Shards [2, 1]; a hold of 1 from shard 0 leaves [1, 1].
        let shards = Arc::new(LoomShards::new(2, 3));
        shards.reserve(1, 0).unwrap();
        let other = shards.clone();
        let releaser = thread::spawn(move || other.release(1, 1));
        let gather = shards.reserve(2, 0);
        releaser.join().unwrap();

        assert_eq!(gather, Ok(()), "two units were there all along");
        assert_eq!(shards.remaining() + units(gather, 2), 3);
        assert_flag_not_stuck(&shards);
    });
}

#[test]
fn a_buyer_finding_it_empty_never_leaves_the_flag_set_over_a_release() {
    check_every_interleaving(|| {
        // The only unit is held: the shards are empty but not flagged.
        let shards = Arc::new(LoomShards::new(2, 1));
        shards.reserve(1, 0).unwrap();
        let other = shards.clone();
        let releaser = thread::spawn(move || other.release(1, 0));
        let buyer = shards.reserve(1, 1);
        releaser.join().unwrap();

        // A failure may say `Insufficient` when the release lands between the
        // buyer's failed pass and its emptiness check; either way the unit
        // must be back and sellable.
        match buyer {
            Ok(()) => assert_eq!(shards.remaining(), 0),
            Err(_) => assert_eq!(shards.remaining(), 1, "the released unit is back"),
        }
        assert_flag_not_stuck(&shards);
    });
}

#[test]
fn a_buyer_finding_it_empty_never_leaves_the_flag_set_over_a_restock() {
    check_every_interleaving(|| {
        // Empty but not flagged; the restock lands while the buyer scans.
        let shards = Arc::new(LoomShards::new(2, 1));
        shards.reserve(1, 0).unwrap();
        let other = shards.clone();
        let restocker = thread::spawn(move || other.restock(1));
        let buyer = shards.reserve(1, 1);
        restocker.join().unwrap();

        assert_eq!(shards.remaining() + units(buyer, 1), 1);
        assert_flag_not_stuck(&shards);
    });
}

#[test]
fn a_gather_in_flight_never_leaves_the_flag_set_over_the_unit_it_gives_back() {
    check_every_interleaving(|| {
        // Shards [0, 1]: the gather takes shard 1's unit, fails, and gives it
        // back to shard 0, possibly after the other buyer's scan passed it.
        let shards = Arc::new(LoomShards::new(2, 2));
        shards.reserve(1, 0).unwrap();
        let other = shards.clone();
        let buyer = thread::spawn(move || other.reserve(1, 0));
        let gather = shards.reserve(2, 0);
        let buyer = buyer.join().unwrap();

        assert!(gather.is_err(), "only one unit existed: {gather:?}");
        assert_eq!(shards.remaining() + units(buyer, 1), 1);
        assert_flag_not_stuck(&shards);
    });
}

#[test]
fn a_release_racing_two_buyers_never_leaves_the_flag_set() {
    check_with_preemption_bound(3, || {
        let shards = Arc::new(LoomShards::new(2, 1));
        shards.reserve(1, 0).unwrap();
        let (releasing, buying) = (shards.clone(), shards.clone());
        let releaser = thread::spawn(move || releasing.release(1, 1));
        let buyer = thread::spawn(move || buying.reserve(1, 1));
        let first = shards.reserve(1, 0);
        releaser.join().unwrap();
        let second = buyer.join().unwrap();

        let sold = units(first, 1) + units(second, 1);
        assert!(sold <= 1, "one unit sold twice");
        assert_eq!(shards.remaining() + sold, 1);
        assert_flag_not_stuck(&shards);
    });
}
