//! What an open hold costs in memory, inside the engine alone: the bytes
//! the heap holds per order after `ORDER_MEMORY_ORDERS` (default 1,000,000)
//! distinct buyers each reserve one unit of one item, and the process's
//! resident growth over the same orders.
//!
//! The HTTP figure (`flashgate-loadtest holds`, docs/PERFORMANCE.md "Memory
//! per open hold") adds the allocator's arenas of several threads; this one
//! runs in a second on one thread and isolates the engine's own structures,
//! so a change to them can be weighed before a load run. Buyers and keys
//! have the load tool's shapes and lengths.
//!
//! `cargo bench --bench order_memory`

use flashgate::clock::UnixMs;
use flashgate::inventory::OrderRequest;
use flashgate::sale::{Engine, EngineLimits, ItemSpec, PlaceOrder, SaleAction, SaleSpec};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

// ---- live-bytes allocator --------------------------------------------------------

struct Live;

/// Bytes the heap holds for the program, as malloc rounds them.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

fn usable(ptr: *mut u8) -> i64 {
    // SAFETY: `ptr` came from the system allocator (glibc malloc) and is live.
    unsafe { libc::malloc_usable_size(ptr.cast()) as i64 }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a plain atomic.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(usable(ptr), Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(usable(ptr), Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = usable(ptr);
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            LIVE_BYTES.fetch_add(usable(moved) - before, Ordering::Relaxed);
        }
        moved
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(usable(ptr), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

fn resident_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

const T0: UnixMs = 1_764_000_000_000;

fn main() {
    let orders: i64 = std::env::var("ORDER_MEMORY_ORDERS")
        .ok()
        .map(|value| value.parse().expect("ORDER_MEMORY_ORDERS is a number"))
        .unwrap_or(1_000_000);
    let limits = EngineLimits {
        shard_count: 2,
        sales_max: 4,
        items_per_sale_max: 4,
        stock_per_item_max: orders,
        orders_max: orders as u64,
        hold_seconds_min: 60,
        stock_from_leases: false,
    };
    let engine = Engine::new(limits, T0);
    let spec = SaleSpec {
        sale_id: "lt-5f3a9c1e-s0".into(),
        title: "Memory".into(),
        starts_at: None,
        ends_at: None,
        hold_seconds: 3600,
        items: vec![ItemSpec {
            sku_id: "sku-000".into(),
            title: "One hot SKU".into(),
            price: "99.50".parse().expect("a price"),
            stock: orders,
            per_user_limit: 1,
        }],
    };
    engine.create_sale(spec, T0).expect("the sale");
    engine
        .sale_action("lt-5f3a9c1e-s0", SaleAction::Start, T0)
        .expect("started");
    // The strings arrive with each request; made beforehand so that only
    // what the engine keeps is counted.
    let buyers: Vec<String> = (0..orders)
        .map(|index| format!("o_lt_5f3a9c1e_t_{index:09}"))
        .collect();
    let keys: Vec<String> = (0..orders)
        .map(|index| format!("5f3a9c1e-t0-{index:09}"))
        .collect();
    let (live_before, rss_before) = (LIVE_BYTES.load(Ordering::Relaxed), resident_kib());
    let started = std::time::Instant::now();
    for (index, (buyer, key)) in buyers.iter().zip(&keys).enumerate() {
        let request = OrderRequest {
            sale_id: "lt-5f3a9c1e-s0".into(),
            sku_id: "sku-000".into(),
            quantity: 1,
        };
        let command = PlaceOrder {
            buyer,
            idempotency_key: key,
            request,
            shard_hint: index,
        };
        engine
            .place_order(command, T0 + index as i64 / 1_000)
            .expect("every buyer gets a unit");
    }
    let elapsed = started.elapsed();
    let live = LIVE_BYTES.load(Ordering::Relaxed) - live_before;
    let rss = (resident_kib() - rss_before) * 1024;
    println!(
        "{orders} open holds in {:.2} s: heap {} bytes per hold, resident {} bytes per hold",
        elapsed.as_secs_f64(),
        live / orders,
        rss / orders,
    );
    drop(engine);
}
