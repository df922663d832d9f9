//! What the engine's tests share: a small sale, a sink that keeps every
//! event it is handed (as the journal would), and an order helper.

use crate::clock::UnixMs;
use crate::inventory::OrderRequest;
use crate::journal::Commit;
use crate::sale::event::ItemSpec;
use crate::sale::{
    Engine, EngineLimits, Event, EventSink, PlaceOrder, Placed, SaleAction, SaleError, SaleSpec,
};
use std::sync::{Arc, Mutex};

pub const T0: UnixMs = 1_764_000_000_000;

pub fn limits() -> EngineLimits {
    EngineLimits {
        shard_count: 4,
        sales_max: 8,
        items_per_sale_max: 4,
        stock_per_item_max: 1_000,
        orders_max: 100_000,
        hold_seconds_min: crate::sale::engine::HOLD_SECONDS_MIN,
        stock_from_leases: false,
    }
}

pub fn spec(stock: i64, per_user_limit: u32) -> SaleSpec {
    SaleSpec {
        sale_id: "s1".into(),
        title: "Live sale".into(),
        starts_at: None,
        ends_at: None,
        hold_seconds: 60,
        items: vec![ItemSpec {
            sku_id: "k1".into(),
            title: "Lipstick".into(),
            price: "99.50".parse().unwrap(),
            stock,
            per_user_limit,
        }],
    }
}

/// Keeps every live event the engine submits, as the journal would.
#[derive(Default)]
pub struct Recording(pub Mutex<Vec<Event>>);

impl Recording {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl EventSink for Recording {
    fn submit(&self, event: &Event) -> Commit {
        self.0.lock().unwrap().push(event.clone());
        Commit::Ready(Ok(0))
    }

    fn barrier(&self) -> Commit {
        Commit::Ready(Ok(0))
    }
}

pub fn recorded_engine(stock: i64, per_user_limit: u32) -> (Engine, Arc<Recording>) {
    let mut engine = Engine::new(limits(), T0);
    let recording = Arc::new(Recording::default());
    engine.attach_sink(recording.clone());
    engine.create_sale(spec(stock, per_user_limit), T0).unwrap();
    engine.sale_action("s1", SaleAction::Start, T0).unwrap();
    (engine, recording)
}

pub fn live_engine(stock: i64, per_user_limit: u32) -> Engine {
    recorded_engine(stock, per_user_limit).0
}

pub fn order(
    engine: &Engine,
    buyer: &str,
    key: &str,
    quantity: u32,
    now: UnixMs,
) -> Result<Placed, SaleError> {
    let request = OrderRequest {
        sale_id: "s1".into(),
        sku_id: "k1".into(),
        quantity,
    };
    engine.place_order(
        PlaceOrder {
            buyer,
            idempotency_key: key,
            request,
            shard_hint: 0,
        },
        now,
    )
}

pub fn counts(engine: &Engine) -> crate::inventory::StockCounts {
    engine.stats("s1", T0).unwrap().items[0].counts
}

/// `Engine::write_snapshot` writes exactly the JSON of `Engine::snapshot`.
pub fn assert_streamed_snapshot_is_the_held_one(engine: &Engine, seq: u64) {
    let held = serde_json::to_string(&engine.snapshot(seq)).unwrap();
    let mut streamed = Vec::new();
    engine.write_snapshot(seq, &mut streamed).unwrap();
    assert_eq!(
        String::from_utf8(streamed).unwrap(),
        held,
        "the streamed snapshot is the snapshot's JSON"
    );
}
