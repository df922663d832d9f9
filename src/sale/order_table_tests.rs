use super::*;
use crate::inventory::BuyerKey;
use crate::sale::test_support::{spec, T0};
use crate::sale::views::NewOrder;
use crate::sale::{OrderStatus, Sale};
use std::sync::Arc;

fn order(sale: &Arc<Sale>, order_id: &str, quantity: u32) -> Box<OrderRecord> {
    Box::new(OrderRecord::reserved(NewOrder {
        order_id: order_id.into(),
        sale: Arc::clone(sale),
        item_index: 0,
        names: BuyerKey::new("alice", order_id),
        quantity,
        amount: "1.00".parse().unwrap(),
        created_at: T0,
        expires_at: T0 + 60_000,
    }))
}

#[test]
fn orders_are_found_changed_replaced_and_listed_by_id_across_every_shard() {
    let sale = Arc::new(Sale::new(spec(10, 1), T0, 1, false));
    let table = OrderTable::default();
    assert!(table.is_empty());
    let ids: Vec<String> = (0..2_000).map(|n| format!("o-{n:06}")).collect();
    for id in &ids {
        table.insert(order(&sale, id, 1));
    }
    assert_eq!(table.len(), 2_000);
    for id in &ids {
        assert_eq!(&*table.get(id).expect("inserted").order_id, id);
    }
    assert!(table.get("o-x").is_none() && table.get_mut("o-x").is_none());
    table.get_mut("o-000007").unwrap().status = OrderStatus::Cancelled;
    assert_eq!(
        table.get("o-000007").unwrap().status,
        OrderStatus::Cancelled
    );
    // An insert with a taken id replaces the order, as a map's would.
    table.insert(order(&sale, "o-000007", 3));
    assert_eq!(table.len(), 2_000);
    let replaced = table.get("o-000007").unwrap();
    assert_eq!(
        (replaced.quantity, replaced.status),
        (3, OrderStatus::Reserved)
    );
    drop(replaced);
    let mut listed = table.map_all(|order| order.order_id.to_string());
    listed.sort();
    assert_eq!(listed, ids);
}

#[test]
fn an_open_holds_record_stays_small() {
    // A million of them: docs/PERFORMANCE.md, "Memory per open hold".
    // 96 bytes is a 112-byte malloc chunk; one field more is 128.
    assert!(std::mem::size_of::<OrderRecord>() <= 96);
}

#[test]
fn a_vacant_place_refuses_a_taken_id_and_holds_its_shard_until_it_is_filled() {
    let sale = Arc::new(Sale::new(spec(10, 1), T0, 1, false));
    let table = Arc::new(OrderTable::default());
    table.insert(order(&sale, "o-1", 1));
    assert!(table.vacant("o-1").is_none(), "the id is taken");
    let vacant = table.vacant("o-2").expect("a free id");
    // A reader of the same id waits for the insert, then finds it.
    let reader = {
        let table = Arc::clone(&table);
        std::thread::spawn(move || table.get("o-2").map(|order| order.quantity))
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    vacant.insert(order(&sale, "o-2", 2));
    assert_eq!(reader.join().unwrap(), Some(2));
    // Dropped unfilled, a place leaves nothing behind.
    drop(table.vacant("o-3").expect("a free id"));
    assert!(table.get("o-3").is_none());
    assert_eq!(table.len(), 2);
}
