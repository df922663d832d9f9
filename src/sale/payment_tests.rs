//! Payment tests: every transition and branch of the payment half of the
//! order state machine, what each journals, and that replay and snapshots
//! rebuild it exactly.

use super::*;
use crate::sale::test_support::*;
use crate::sale::{ExpiryBatch, SaleAction};
use std::sync::Arc;

const HOLD_MS: UnixMs = 60_000;
/// One unit at 99.50 yuan.
const UNIT_FEN: i64 = 9_950;

fn prepay(prepay_id: &str) -> Prepay {
    Prepay {
        prepay_id: prepay_id.into(),
        valid_until: T0 + 7_200_000,
    }
}

fn payment(transaction_id: &str, amount_fen: i64) -> PaymentReceived {
    PaymentReceived {
        transaction_id: transaction_id.into(),
        amount_fen,
        paid_at: T0 + 5_000,
    }
}

fn order_id(engine: &Engine, buyer: &str, key: &str, quantity: u32, now: UnixMs) -> String {
    order(engine, buyer, key, quantity, now)
        .unwrap()
        .order
        .order_id
        .to_string()
}

fn status(engine: &Engine, order_id: &str) -> &'static str {
    engine.order_for_admin(order_id).unwrap().order.status
}

fn expire(engine: &Engine, now: UnixMs) -> ExpiryBatch {
    engine.expire_due(now)
}

/// Everything a reader can see of the sale and these orders.
fn state(engine: &Engine, order_ids: &[String]) -> serde_json::Value {
    let orders: Vec<_> = order_ids
        .iter()
        .map(|id| serde_json::to_value(engine.order_for_admin(id).unwrap()).unwrap())
        .collect();
    serde_json::json!({
        "stats": serde_json::to_value(engine.stats("s1", T0).unwrap()).unwrap(),
        "orders": orders,
        "payments_pending": engine.payments_pending(UnixMs::MAX, 100),
        "refunds_pending": serde_json::to_value(engine.refunds_pending(100)).unwrap(),
    })
}

/// A fresh engine fed the events through JSON, as the journal stores them.
fn replayed(events: &[Event]) -> Engine {
    let engine = Engine::new(limits(), T0);
    for (index, event) in events.iter().enumerate() {
        let line = serde_json::to_string(event).unwrap();
        engine
            .apply(&serde_json::from_str(&line).unwrap())
            .unwrap_or_else(|error| panic!("record {index} {line}: {error}"));
    }
    engine
}

// ---- prepay ------------------------------------------------------------

#[test]
fn payable_order_says_what_the_prepay_needs() {
    let engine = live_engine(5, 3);
    let id = order_id(&engine, "alice", "k", 2, T0);
    let payable = engine.payable_order("alice", &id, T0 + 1).unwrap();
    assert_eq!(
        payable,
        Payable {
            order_id: id.clone(),
            buyer: "alice".into(),
            description: "Lipstick".into(),
            amount_fen: 2 * UNIT_FEN,
            expires_at: T0 + HOLD_MS,
            prepay: None,
        }
    );
    assert!(matches!(
        engine.payable_order("bob", &id, T0),
        Err(SaleError::NotFound(_))
    ));
    let late = engine
        .payable_order("alice", &id, T0 + HOLD_MS)
        .unwrap_err();
    assert!(matches!(late, SaleError::InvalidState(_)), "{late:?}");
    engine.cancel_order("alice", &id, T0 + 2).unwrap();
    assert_eq!(
        engine.payable_order("alice", &id, T0 + 3).unwrap_err(),
        SaleError::InvalidState("cannot pay an order that is cancelled".into())
    );
}

#[test]
fn descriptions_are_cut_on_a_char_boundary() {
    assert_eq!(description_of("Lipstick"), "Lipstick");
    let long = "口红".repeat(30); // 3 bytes a character, 180 bytes
    let cut = description_of(&long);
    assert_eq!(cut.len(), 126, "42 whole characters");
    assert!(long.starts_with(&cut));
    assert_eq!(
        description_of(&"a".repeat(200)).len(),
        DESCRIPTION_BYTES_MAX
    );
    // WeChat Pay refuses 4-byte UTF-8: emoji are dropped, not sent.
    assert_eq!(description_of("口红 💄 No.7"), "口红  No.7");
    assert_eq!(description_of("💄💄"), "flash sale item");
}

#[test]
fn start_payment_makes_the_order_paying_and_the_same_prepay_changes_nothing() {
    let (engine, log) = recorded_engine(5, 3);
    let id = order_id(&engine, "alice", "k", 1, T0);
    let before = log.len();
    let (view, _) = engine
        .start_payment("alice", &id, prepay("wx-1"), T0 + 1)
        .unwrap();
    assert_eq!(view.status, "paying");
    assert_eq!(log.len(), before + 1);
    assert_eq!(
        engine.payable_order("alice", &id, T0 + 2).unwrap().prepay,
        Some(prepay("wx-1")),
        "the current prepay is reused"
    );

    let (view, commit) = engine
        .start_payment("alice", &id, prepay("wx-1"), T0 + 3)
        .unwrap();
    assert_eq!(view.status, "paying");
    assert!(matches!(commit, Commit::Ready(Ok(0))));
    assert_eq!(log.len(), before + 1, "the same prepay journals nothing");

    engine
        .start_payment("alice", &id, prepay("wx-2"), T0 + 4)
        .unwrap();
    assert_eq!(log.len(), before + 2, "a new prepay is journaled");
    let admin = engine.order_for_admin(&id).unwrap();
    let statuses: Vec<_> = admin.history.iter().map(|entry| entry.status).collect();
    assert_eq!(statuses, ["reserved", "paying"], "one entry per status");
    assert_eq!(engine.payments_pending(T0 + 5, 10), [id.as_str()]);
    assert!(
        engine.payments_pending(T0 + 4, 10).is_empty(),
        "the new prepay restarted the wait"
    );
}

#[test]
fn start_payment_checks_the_buyer_the_hold_and_the_prepay() {
    let (engine, log) = recorded_engine(5, 3);
    let id = order_id(&engine, "alice", "k", 1, T0);
    let before = log.len();
    let refused = [
        engine.start_payment("bob", &id, prepay("wx-1"), T0),
        engine.start_payment("alice", &id, prepay("wx-1"), T0 + HOLD_MS),
        engine.start_payment("alice", &id, prepay("has space"), T0),
        engine.start_payment("alice", "FGnope", prepay("wx-1"), T0),
    ];
    assert!(matches!(refused[0], Err(SaleError::NotFound(_))));
    assert!(matches!(refused[1], Err(SaleError::InvalidState(_))));
    assert!(matches!(refused[2], Err(SaleError::Invalid { .. })));
    assert!(matches!(refused[3], Err(SaleError::NotFound(_))));
    let stale = Prepay {
        prepay_id: "wx-1".into(),
        valid_until: T0,
    };
    assert!(matches!(
        engine.start_payment("alice", &id, stale, T0),
        Err(SaleError::Invalid { .. })
    ));
    assert_eq!(log.len(), before, "nothing refused was journaled");
    assert_eq!(status(&engine, &id), "reserved");
}

// ---- confirmation -------------------------------------------------------

#[test]
fn a_payment_makes_the_order_paid_and_a_duplicate_journals_nothing() {
    let (engine, log) = recorded_engine(5, 3);
    let id = order_id(&engine, "alice", "k", 1, T0);
    engine
        .start_payment("alice", &id, prepay("wx-1"), T0 + 1)
        .unwrap();
    let (outcome, _) = engine
        .confirm_payment(&id, payment("tx-1", UNIT_FEN), T0 + 6_000)
        .unwrap();
    assert_eq!(outcome, PaymentOutcome::Paid);
    let journaled = log.len();
    let (outcome, _) = engine
        .confirm_payment(&id, payment("tx-1", UNIT_FEN), T0 + 7_000)
        .unwrap();
    assert_eq!(outcome, PaymentOutcome::AlreadyApplied);
    assert_eq!(log.len(), journaled, "a duplicate journals nothing");

    let admin = engine.order_for_admin(&id).unwrap();
    assert_eq!(admin.order.status, "paid");
    assert_eq!(admin.transaction_id.as_deref(), Some("tx-1"));
    assert!(admin.order.paid_at.is_some(), "WeChat Pay's time");
    let counts = counts(&engine);
    assert_eq!((counts.paid, counts.reserved, counts.remaining), (1, 0, 4));
    assert_eq!(engine.stats("s1", T0).unwrap().orders.paid, 1);
    assert!(engine.payments_pending(UnixMs::MAX, 10).is_empty());
    // The hold's timer finds the order paid and leaves it alone.
    let due = expire(&engine, T0 + HOLD_MS);
    assert!(due.commits.is_empty() && due.paying_due.is_empty());
}

#[test]
fn a_second_transaction_or_another_amount_changes_nothing() {
    let (engine, log) = recorded_engine(5, 3);
    let id = order_id(&engine, "alice", "k", 1, T0);
    let before = (log.len(), counts(&engine));
    let wrong_amount = engine.confirm_payment(&id, payment("tx-1", UNIT_FEN + 1), T0 + 1);
    assert!(
        matches!(wrong_amount, Err(SaleError::PaymentMismatch(_))),
        "{wrong_amount:?}"
    );
    assert_eq!((log.len(), counts(&engine)), before);
    assert_eq!(status(&engine, &id), "reserved");

    engine
        .confirm_payment(&id, payment("tx-1", UNIT_FEN), T0 + 2)
        .unwrap();
    let after_paid = (log.len(), counts(&engine));
    let second = engine.confirm_payment(&id, payment("tx-2", UNIT_FEN), T0 + 3);
    assert!(matches!(second, Err(SaleError::PaymentMismatch(_))));
    assert_eq!((log.len(), counts(&engine)), after_paid);
    assert!(matches!(
        engine.confirm_payment("FGnope", payment("tx-1", UNIT_FEN), T0),
        Err(SaleError::NotFound(_))
    ));
}

#[test]
fn racing_duplicate_notifications_pay_the_order_once() {
    let (engine, log) = recorded_engine(5, 3);
    let id = order_id(&engine, "alice", "k", 1, T0);
    let engine = Arc::new(engine);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (engine, id) = (Arc::clone(&engine), id.clone());
            std::thread::spawn(move || {
                engine
                    .confirm_payment(&id, payment("tx-1", UNIT_FEN), T0 + 1)
                    .unwrap()
                    .0
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let paid = outcomes
        .iter()
        .filter(|outcome| **outcome == PaymentOutcome::Paid)
        .count();
    assert_eq!(paid, 1, "{outcomes:?}");
    let confirmations = log
        .events()
        .iter()
        .filter(|event| matches!(event, Event::PaymentConfirmed { .. }))
        .count();
    assert_eq!(confirmations, 1);
    assert_eq!(counts(&engine).paid, 1);
}

// ---- late payments ------------------------------------------------------

#[test]
fn a_late_payment_is_reinstated_when_the_stock_allows() {
    let (engine, log) = recorded_engine(5, 1);
    let first = order_id(&engine, "alice", "k1", 1, T0);
    engine
        .start_payment("alice", &first, prepay("wx-1"), T0 + 1)
        .unwrap();
    engine.cancel_order("alice", &first, T0 + 2).unwrap();
    // The limit of 1 is free again: alice orders once more.
    let second = order_id(&engine, "alice", "k2", 1, T0 + 3);
    let before = counts(&engine);
    assert_eq!((before.remaining, before.reserved), (4, 1));

    let journaled = log.len();
    let (outcome, _) = engine
        .confirm_payment(&first, payment("tx-1", UNIT_FEN), T0 + 4)
        .unwrap();
    assert_eq!(outcome, PaymentOutcome::Reinstated);
    assert_eq!(log.len(), journaled + 1, "one event");
    assert!(matches!(
        log.events().last(),
        Some(Event::PaymentConfirmed {
            late: Some(LatePayment::Reinstated),
            ..
        })
    ));
    assert_eq!(status(&engine, &first), "paid");
    let after = counts(&engine);
    assert_eq!((after.remaining, after.reserved, after.paid), (3, 1, 1));
    assert_eq!(after.remaining + after.reserved + after.paid, after.stock);
    let orders = engine.stats("s1", T0).unwrap().orders;
    assert_eq!(
        (orders.paid, orders.reinstated, orders.cancelled),
        (1, 1, 1)
    );
    // The buyer holds 2 units now, past the limit of 1: a paid order counts.
    assert_eq!(
        order(&engine, "alice", "k3", 1, T0 + 5).unwrap_err(),
        SaleError::LimitExceeded { limit: 1, held: 2 }
    );
    let history: Vec<_> = engine
        .order_for_admin(&first)
        .unwrap()
        .history
        .iter()
        .map(|entry| entry.status)
        .collect();
    assert_eq!(history, ["reserved", "paying", "cancelled", "paid"]);
    assert_eq!(status(&engine, &second), "reserved");
}

#[test]
fn a_late_payment_is_refunded_when_the_units_are_gone() {
    let (engine, log) = recorded_engine(1, 1);
    let late = order_id(&engine, "alice", "k", 1, T0);
    engine
        .start_payment("alice", &late, prepay("wx-1"), T0 + 1)
        .unwrap();
    engine.cancel_order("alice", &late, T0 + 2).unwrap();
    order_id(&engine, "bob", "k", 1, T0 + 3); // takes the only unit
    let before = counts(&engine);

    let (outcome, _) = engine
        .confirm_payment(&late, payment("tx-1", UNIT_FEN), T0 + 4)
        .unwrap();
    let refund = RefundOrder {
        order_id: late.clone(),
        out_refund_no: format!("{late}R1"),
        transaction_id: "tx-1".into(),
        amount_fen: UNIT_FEN,
        reason: RefundReason::LatePayment,
    };
    assert_eq!(outcome, PaymentOutcome::RefundDue(refund.clone()));
    assert_eq!(counts(&engine), before, "no stock moves");
    assert_eq!(status(&engine, &late), "refunding");
    assert!(matches!(
        log.events().last(),
        Some(Event::PaymentConfirmed {
            late: Some(LatePayment::RefundDue { .. }),
            ..
        })
    ));
    assert_eq!(engine.refunds_pending(10), std::slice::from_ref(&refund));
    let admin = engine.order_for_admin(&late).unwrap();
    assert_eq!(admin.refund_reason, Some("late_payment"));

    // The notification again: nothing new, and no second refund.
    let journaled = log.len();
    let (outcome, _) = engine
        .confirm_payment(&late, payment("tx-1", UNIT_FEN), T0 + 5)
        .unwrap();
    assert_eq!(outcome, PaymentOutcome::AlreadyApplied);
    let (again, _) = engine
        .request_refund(&late, RefundReason::Admin, T0 + 6)
        .unwrap();
    assert_eq!(again, refund, "the refund asked before, as it was");
    assert_eq!(log.len(), journaled);

    let (done, _) = engine.complete_refund(&late, "refund-1", T0 + 7).unwrap();
    assert!(done);
    assert_eq!(status(&engine, &late), "refunded");
    assert!(engine.refunds_pending(10).is_empty());
    assert_eq!(counts(&engine), before, "a late refund never held stock");
    let orders = engine.stats("s1", T0).unwrap().orders;
    assert_eq!(
        (orders.paid, orders.late_refunds, orders.refunded),
        (0, 1, 1)
    );
}

// ---- refunds ------------------------------------------------------------

#[test]
fn an_admin_refund_returns_the_unit_to_stock() {
    let (engine, log) = recorded_engine(2, 1);
    let id = order_id(&engine, "alice", "k", 1, T0);
    assert!(matches!(
        engine.request_refund(&id, RefundReason::Admin, T0 + 1),
        Err(SaleError::InvalidState(_))
    ));
    engine
        .confirm_payment(&id, payment("tx-1", UNIT_FEN), T0 + 2)
        .unwrap();
    let (refund, _) = engine
        .request_refund(&id, RefundReason::Admin, T0 + 3)
        .unwrap();
    assert_eq!(refund.out_refund_no, format!("{id}R1"));
    assert_eq!(
        (refund.amount_fen, refund.reason),
        (UNIT_FEN, RefundReason::Admin)
    );
    let counts_now = counts(&engine);
    assert_eq!(
        (counts_now.paid, counts_now.remaining, counts_now.released),
        (0, 2, 1),
        "the paid unit is on sale again"
    );
    assert!(
        order(&engine, "alice", "k2", 1, T0 + 4).is_ok(),
        "the buyer's limit is freed"
    );

    let journaled = log.len();
    let (again, _) = engine
        .request_refund(&id, RefundReason::Admin, T0 + 5)
        .unwrap();
    assert_eq!(again, refund);
    assert!(matches!(
        engine.complete_refund(&id, "bad id", T0 + 6),
        Err(SaleError::Invalid { .. })
    ));
    assert_eq!(log.len(), journaled, "repeats and refusals journal nothing");
    let (completed, _) = engine.complete_refund(&id, "refund-1", T0 + 6).unwrap();
    assert!(completed);
    let (completed_again, _) = engine.complete_refund(&id, "refund-1", T0 + 7).unwrap();
    assert!(!completed_again, "already refunded");
    assert_eq!(log.len(), journaled + 1);
    let admin = engine.order_for_admin(&id).unwrap();
    assert_eq!(admin.order.status, "refunded");
    assert_eq!(admin.refund_id.as_deref(), Some("refund-1"));
    assert_eq!(admin.out_refund_no, Some(refund.out_refund_no));
    assert!(matches!(
        engine.request_refund(&id, RefundReason::Admin, T0 + 8),
        Err(SaleError::InvalidState(_))
    ));
    assert_eq!(engine.stats("s1", T0).unwrap().orders.refunded, 1);
}

// ---- holds of paying orders ---------------------------------------------

#[test]
fn expire_due_hands_paying_orders_back_instead_of_expiring_them() {
    let engine = live_engine(3, 3);
    let reserved = order_id(&engine, "alice", "k", 1, T0);
    let paying = order_id(&engine, "bob", "k", 1, T0);
    let paid_on_close = order_id(&engine, "carol", "k", 1, T0);
    for (buyer, id) in [("bob", &paying), ("carol", &paid_on_close)] {
        engine
            .start_payment(buyer, id, prepay(&format!("wx-{buyer}")), T0 + 1)
            .unwrap();
    }
    let due = expire(&engine, T0 + HOLD_MS);
    assert_eq!(due.commits.len(), 1);
    assert_eq!(due.paying_due, [paying.clone(), paid_on_close.clone()]);
    assert_eq!(status(&engine, &reserved), "expired");
    assert_eq!(status(&engine, &paying), "paying", "its units stay held");
    assert_eq!(counts(&engine).reserved, 2);

    // The worker closes both WeChat Pay orders: one was paid meanwhile.
    let (outcome, _) = engine
        .confirm_payment(&paid_on_close, payment("tx-c", UNIT_FEN), T0 + HOLD_MS + 1)
        .unwrap();
    assert_eq!(outcome, PaymentOutcome::Paid);
    engine
        .expire_closed_payment(&paying, T0 + HOLD_MS + 2)
        .unwrap();
    assert_eq!(status(&engine, &paying), "expired");
    let counts_now = counts(&engine);
    assert_eq!(
        (counts_now.remaining, counts_now.reserved, counts_now.paid),
        (2, 0, 1)
    );
    for id in [&paying, &paid_on_close, &reserved] {
        assert!(matches!(
            engine.expire_closed_payment(id, T0 + HOLD_MS + 3),
            Err(SaleError::InvalidState(_))
        ));
    }
    let stats = engine.stats("s1", T0).unwrap();
    assert_eq!((stats.orders.expired, stats.orders.paid), (2, 1));
    assert!(engine.payments_pending(UnixMs::MAX, 10).is_empty());
}

#[test]
fn a_buyer_may_cancel_a_paying_order_and_its_payment_is_then_late() {
    let engine = live_engine(3, 3);
    let id = order_id(&engine, "alice", "k", 1, T0);
    engine
        .start_payment("alice", &id, prepay("wx-1"), T0 + 1)
        .unwrap();
    let (view, _) = engine.cancel_order("alice", &id, T0 + 2).unwrap();
    assert_eq!(view.status, "cancelled");
    assert_eq!(counts(&engine).remaining, 3);
    assert!(engine.payments_pending(UnixMs::MAX, 10).is_empty());
    let (outcome, _) = engine
        .confirm_payment(&id, payment("tx-1", UNIT_FEN), T0 + 3)
        .unwrap();
    assert_eq!(outcome, PaymentOutcome::Reinstated);
}

#[test]
fn payments_pending_lists_the_oldest_paying_orders_within_the_limit() {
    let engine = live_engine(10, 1);
    let ids: Vec<String> = (0..4)
        .map(|n| {
            let buyer = format!("buyer-{n}");
            let id = order_id(&engine, &buyer, "k", 1, T0);
            // Started in reverse order: the last order's prepay is oldest.
            let started = T0 + 100 - n;
            engine
                .start_payment(&buyer, &id, prepay("wx"), started)
                .unwrap();
            id
        })
        .collect();
    assert_eq!(
        engine.payments_pending(T0 + 99, 10),
        [ids[3].clone(), ids[2].clone()]
    );
    assert_eq!(engine.payments_pending(UnixMs::MAX, 1), [ids[3].clone()]);
    assert!(engine.payments_pending(UnixMs::MAX, 0).is_empty());
}

#[test]
fn pending_keeps_the_oldest_within_the_limit() {
    let pending = PendingPayments::default();
    for (order_id, at) in [("a", 40), ("b", 10), ("c", 30), ("d", 20)] {
        pending.track(order_id, None, OrderStatus::Paying, at);
    }
    let ids = |ids: Vec<Box<str>>| ids.into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(ids(pending.oldest_paying(35, 2)), ["b", "d"]);
    assert_eq!(ids(pending.oldest_paying(35, 10)), ["b", "d", "c"]);
    assert_eq!(
        pending.oldest_paying(35, usize::MAX).len(),
        3,
        "no overflow"
    );
    pending.track("b", Some(OrderStatus::Paying), OrderStatus::Paid, 50);
    pending.track("d", Some(OrderStatus::Paying), OrderStatus::Paying, 60);
    assert_eq!(ids(pending.oldest_paying(100, 10)), ["c", "a", "d"]);
    pending.track("b", Some(OrderStatus::Paid), OrderStatus::Refunding, 70);
    assert_eq!(ids(pending.oldest_refunding(10)), ["b"]);
    pending.track("b", Some(OrderStatus::Refunding), OrderStatus::Refunded, 80);
    assert!(pending.oldest_refunding(10).is_empty());
}

// ---- replay and snapshots -----------------------------------------------

/// Every branch once: on-time payment, admin refund completed, a late
/// payment reinstated, a late payment refunded, a paying order handed back
/// and expired after its close, one still paying. Returns the order ids.
fn payment_session(engine: &Engine) -> Vec<String> {
    let paid = order_id(engine, "a", "k", 2, T0);
    let refunded = order_id(engine, "b", "k", 1, T0 + 1);
    let reinstated = order_id(engine, "c", "k", 1, T0 + 2);
    let closed = order_id(engine, "d", "k", 1, T0 + 3);
    for (buyer, id) in [("a", &paid), ("b", &refunded), ("d", &closed)] {
        engine
            .start_payment(buyer, id, prepay(&format!("wx-{buyer}")), T0 + 10)
            .unwrap();
    }
    let pay = |id: &str, fen: i64, tx: &str, at: UnixMs| {
        engine.confirm_payment(id, payment(tx, fen), at).unwrap().0
    };
    assert_eq!(
        pay(&paid, 2 * UNIT_FEN, "tx-a", T0 + 20),
        PaymentOutcome::Paid
    );
    assert_eq!(
        pay(&refunded, UNIT_FEN, "tx-b", T0 + 21),
        PaymentOutcome::Paid
    );
    engine
        .request_refund(&refunded, RefundReason::Admin, T0 + 30)
        .unwrap();
    engine.complete_refund(&refunded, "rf-b", T0 + 31).unwrap();
    engine.cancel_order("c", &reinstated, T0 + 40).unwrap();
    let due = engine.expire_due(T0 + HOLD_MS + 3);
    assert_eq!(due.paying_due, [closed.as_str()]);
    engine
        .expire_closed_payment(&closed, T0 + HOLD_MS + 4)
        .unwrap();
    assert_eq!(
        pay(&reinstated, UNIT_FEN, "tx-c", T0 + HOLD_MS + 5),
        PaymentOutcome::Reinstated
    );
    // The last units go; d's late payment finds none.
    let rest = counts(engine).remaining;
    let last = order_id(
        engine,
        "e",
        "k",
        u32::try_from(rest).unwrap(),
        T0 + HOLD_MS + 6,
    );
    let refund_due = pay(&closed, UNIT_FEN, "tx-d", T0 + HOLD_MS + 7);
    assert!(matches!(refund_due, PaymentOutcome::RefundDue(_)));
    engine
        .start_payment("e", &last, prepay("wx-e"), T0 + HOLD_MS + 8)
        .unwrap();
    vec![paid, refunded, reinstated, closed, last]
}

#[test]
fn replaying_the_journaled_payment_events_rebuilds_identical_state() {
    let (engine, log) = recorded_engine(5, 2);
    let ids = payment_session(&engine);
    let events = log.events();
    let replayed = replayed(&events);
    assert_eq!(state(&replayed, &ids), state(&engine, &ids));
    let stats = engine.stats("s1", T0).unwrap();
    assert_eq!(
        (
            stats.orders.paid,
            stats.orders.reinstated,
            stats.orders.late_refunds
        ),
        (3, 1, 1)
    );
    let counts = stats.items[0].counts;
    assert_eq!(
        counts.remaining + counts.reserved + counts.paid,
        counts.stock
    );
    // Replay took the late branches the log recorded, whatever the stock.
    assert_eq!(status(&replayed, &ids[2]), "paid");
    assert_eq!(status(&replayed, &ids[3]), "refunding");
    assert_eq!(replayed.payments_pending(UnixMs::MAX, 10), [ids[4].clone()]);
}

#[test]
fn a_snapshot_restores_payments_refunds_and_their_counts_exactly() {
    let (engine, log) = recorded_engine(5, 2);
    let ids = payment_session(&engine);
    let snapshot = engine.snapshot(7);
    let json = serde_json::to_string(&snapshot).unwrap();
    assert_streamed_snapshot_is_the_held_one(&engine, 7);
    let restored = Engine::restore(limits(), T0, &serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(restored.snapshot(7), snapshot);
    assert_eq!(state(&restored, &ids), state(&engine, &ids));
    // And the restored engine goes on as the original would.
    let replayed = replayed(&log.events());
    for engine in [&restored, &replayed] {
        engine
            .confirm_payment(&ids[4], payment("tx-e", 2 * UNIT_FEN), T0 + HOLD_MS + 9)
            .unwrap();
        engine
            .request_refund(&ids[0], RefundReason::Admin, T0 + HOLD_MS + 10)
            .unwrap();
    }
    assert_eq!(state(&restored, &ids), state(&replayed, &ids));
    assert_eq!(
        order(&restored, "c", "k2", 2, T0 + HOLD_MS + 11).unwrap_err(),
        SaleError::LimitExceeded { limit: 2, held: 1 },
        "the reinstated order counts for its buyer"
    );
}

#[test]
fn replay_refuses_damaged_payment_events_and_changes_nothing() {
    let (engine, log) = recorded_engine(1, 1);
    let late = order_id(&engine, "alice", "k", 1, T0);
    engine.cancel_order("alice", &late, T0 + 1).unwrap();
    order_id(&engine, "bob", "k", 1, T0 + 2); // the only unit
    let replayed = replayed(&log.events());
    let before = state(&replayed, std::slice::from_ref(&late));
    let confirmed =
        |order_id: &str, amount_fen: i64, late: Option<LatePayment>| Event::PaymentConfirmed {
            at: T0 + 3,
            order_id: order_id.into(),
            transaction_id: "tx-1".into(),
            amount_fen,
            paid_at: T0 + 3,
            late,
        };
    let damaged = [
        // A reinstatement that finds no units.
        confirmed(&late, UNIT_FEN, Some(LatePayment::Reinstated)),
        // An order nobody made.
        confirmed("FGnobody", UNIT_FEN, None),
        // The wrong amount, a branch the order's state does not allow, a
        // refund number WeChat Pay would refuse.
        confirmed(&late, UNIT_FEN + 1, Some(LatePayment::Reinstated)),
        confirmed(&late, UNIT_FEN, None),
        confirmed(
            &late,
            UNIT_FEN,
            Some(LatePayment::RefundDue {
                out_refund_no: "no spaces allowed".into(),
            }),
        ),
        // Payment actions travel in their own events.
        Event::OrderTransitioned {
            at: T0 + 3,
            order_id: late.clone(),
            action: OrderAction::ReinstatePayment,
        },
        Event::RefundCompleted {
            at: T0 + 3,
            order_id: late.clone(),
            refund_id: "rf".into(),
        },
        Event::PaymentStarted {
            at: T0 + 3,
            order_id: late.clone(),
            prepay_id: "wx".into(),
            prepay_valid_until: T0 + 3,
        },
    ];
    for event in &damaged {
        let refused = replayed.apply(event);
        assert!(
            matches!(refused, Err(SaleError::Replay(_))),
            "{event:?}: {refused:?}"
        );
    }
    assert_eq!(state(&replayed, std::slice::from_ref(&late)), before);
    // The refund branch the live engine would take replays.
    let refund_due = LatePayment::RefundDue {
        out_refund_no: format!("{late}R1"),
    };
    replayed
        .apply(&confirmed(&late, UNIT_FEN, Some(refund_due)))
        .unwrap();
    assert_eq!(status(&replayed, &late), "refunding");
}

#[test]
fn a_paused_sale_still_takes_the_payments_of_its_orders() {
    let engine = live_engine(2, 2);
    let id = order_id(&engine, "alice", "k", 1, T0);
    engine.sale_action("s1", SaleAction::Pause, T0 + 1).unwrap();
    engine
        .start_payment("alice", &id, prepay("wx-1"), T0 + 2)
        .unwrap();
    let (outcome, _) = engine
        .confirm_payment(&id, payment("tx-1", UNIT_FEN), T0 + 3)
        .unwrap();
    assert_eq!(outcome, PaymentOutcome::Paid);
}
