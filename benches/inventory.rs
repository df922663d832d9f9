//! Reservation cost of the sharded inventory against the obvious baseline, a
//! `Mutex<HashMap<String, i64>>` (lock, look the item up, check, decrement).
//!
//! Both sides look the item up by name in a `HashMap` (the sharded side in a
//! read-only catalogue, as the item list is fixed during a sale) and take one
//! unit; the stock is so large it never runs out. Cases:
//! - `reserve/hot_1_thread/*`: one hot item, one thread;
//! - `reserve/hot_2_threads/*`: one hot item, two threads each doing the
//!   iteration count (wall time; one iteration = one unit per thread);
//! - `reserve/many_items_1_thread/*`: 1024 items taken in turn, one thread.
//!
//! And what a word that two cores both write costs (`flashgate::stripes`):
//! - `count_2_threads/*`: two threads, each adding 1 to a count between
//!   bits of work of its own (`WORK_BETWEEN` rounds of arithmetic, about
//!   what separates two such writes on the order path), to one shared
//!   `AtomicU64` against a `StripedCounter` (a cache line per thread);
//!   `no_count` is the work alone.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flashgate::inventory::ItemStock;
use flashgate::stripes::StripedCounter;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Never runs out, even summed over every shard and bench iteration.
const BOTTOMLESS: i64 = i64::MAX / 4;
const SHARDS: usize = 16;
const MANY_ITEMS: usize = 1024;

type Catalogue = HashMap<String, ItemStock>;
type LockedStock = Mutex<HashMap<String, i64>>;

fn item_names(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("sku-{index:04}")).collect()
}

fn sharded_catalogue(names: &[String]) -> Catalogue {
    names
        .iter()
        .map(|name| (name.clone(), ItemStock::new(SHARDS, BOTTOMLESS)))
        .collect()
}

fn locked_stock(names: &[String]) -> LockedStock {
    Mutex::new(
        names
            .iter()
            .map(|name| (name.clone(), BOTTOMLESS))
            .collect(),
    )
}

fn reserve_sharded(catalogue: &Catalogue, name: &str, hint: usize) -> bool {
    catalogue
        .get(name)
        .is_some_and(|item| item.reserve(1, hint).is_ok())
}

fn reserve_locked(stock: &LockedStock, name: &str) -> bool {
    let mut stock = stock.lock().unwrap();
    match stock.get_mut(name) {
        Some(left) if *left >= 1 => {
            *left -= 1;
            true
        }
        _ => false,
    }
}

/// Wall time for two threads to each run `reserve(thread_index)` `iters`
/// times, started together.
fn two_threads(iters: u64, reserve: impl Fn(usize) -> bool + Send + Sync + 'static) -> Duration {
    let reserve = Arc::new(reserve);
    let start = Arc::new(Barrier::new(3));
    let workers: Vec<_> = (0..2)
        .map(|index| {
            let (reserve, start) = (reserve.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for _ in 0..iters {
                    assert!(black_box(reserve(index)));
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for worker in workers {
        worker.join().unwrap();
    }
    began.elapsed()
}

fn reserve(c: &mut Criterion) {
    let mut group = c.benchmark_group("reserve");
    let hot = item_names(1);
    let hot_name = hot[0].clone();

    group.throughput(Throughput::Elements(1));
    let catalogue = sharded_catalogue(&hot);
    group.bench_function("hot_1_thread/sharded", |b| {
        b.iter(|| assert!(reserve_sharded(&catalogue, black_box(&hot_name), 0)))
    });
    let stock = locked_stock(&hot);
    group.bench_function("hot_1_thread/mutex_hashmap", |b| {
        b.iter(|| assert!(reserve_locked(&stock, black_box(&hot_name))))
    });

    group.throughput(Throughput::Elements(2));
    let catalogue = Arc::new(sharded_catalogue(&hot));
    group.bench_function("hot_2_threads/sharded", |b| {
        b.iter_custom(|iters| {
            let (catalogue, name) = (catalogue.clone(), hot_name.clone());
            two_threads(iters, move |index| {
                reserve_sharded(&catalogue, &name, index)
            })
        })
    });
    let stock = Arc::new(locked_stock(&hot));
    group.bench_function("hot_2_threads/mutex_hashmap", |b| {
        b.iter_custom(|iters| {
            let (stock, name) = (stock.clone(), hot_name.clone());
            two_threads(iters, move |_| reserve_locked(&stock, &name))
        })
    });

    group.throughput(Throughput::Elements(1));
    let many = item_names(MANY_ITEMS);
    let catalogue = sharded_catalogue(&many);
    group.bench_function("many_items_1_thread/sharded", |b| {
        let mut names = many.iter().cycle();
        b.iter(|| assert!(reserve_sharded(&catalogue, names.next().unwrap(), 0)))
    });
    let stock = locked_stock(&many);
    group.bench_function("many_items_1_thread/mutex_hashmap", |b| {
        let mut names = many.iter().cycle();
        b.iter(|| assert!(reserve_locked(&stock, names.next().unwrap())))
    });

    group.finish();
}

/// Rounds of arithmetic between two counts in `count_2_threads`.
const WORK_BETWEEN: u64 = 64;

fn work() -> bool {
    let mut sum = 0u64;
    for round in 0..WORK_BETWEEN {
        sum = black_box(sum.wrapping_mul(31).wrapping_add(round));
    }
    sum != 1
}

fn count(c: &mut Criterion) {
    let mut group = c.benchmark_group("count_2_threads");
    group.throughput(Throughput::Elements(2));
    group.bench_function("no_count", |b| {
        b.iter_custom(|iters| two_threads(iters, |_| work()))
    });
    let shared = Arc::new(AtomicU64::new(0));
    group.bench_function("shared_atomic", |b| {
        b.iter_custom(|iters| {
            let shared = shared.clone();
            two_threads(iters, move |_| {
                shared.fetch_add(1, Ordering::Relaxed);
                work()
            })
        })
    });
    let striped = Arc::new(StripedCounter::default());
    group.bench_function("striped", |b| {
        b.iter_custom(|iters| {
            let striped = striped.clone();
            two_threads(iters, move |_| {
                striped.add(1);
                work()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, reserve, count);
criterion_main!(benches);
