//! Daily reconciliation: WeChat Pay's trade bill for one Beijing day against
//! what the store recorded for that day. `flashgate reconcile --date` prints
//! every discrepancy and exits non-zero when there is one.
//!
//! The bill lists the payments made that day and the refunds initiated that
//! day (a refund line carries its `out_refund_no`; a payment line has `0`
//! there). The store side is the same two lists, read by the payment time
//! WeChat Pay reported and the time the refund was asked. Both are keyed by
//! the merchant's numbers (`out_trade_no` = our order id, `out_refund_no`),
//! and every amount is compared in integer fen.

use crate::clock::beijing_day_start;
use crate::config::Config;
use crate::pay::bill::{self, BillRow};
use crate::pay::{PayClient, PayError};
use crate::store::Store;
use std::collections::BTreeMap;
use std::fmt;

/// A payment as the store recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPayment {
    pub order_id: String,
    pub transaction_id: String,
    pub amount_fen: i64,
}

/// A refund as the store recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRefund {
    pub order_id: String,
    pub out_refund_no: String,
    pub amount_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discrepancy {
    /// WeChat Pay took money the store does not know about.
    PaymentNotInStore {
        out_trade_no: String,
        transaction_id: String,
        amount_fen: i64,
    },
    /// The store holds a payment WeChat Pay's bill does not.
    PaymentNotInBill {
        order_id: String,
        transaction_id: String,
        amount_fen: i64,
    },
    PaymentDiffers {
        order_id: String,
        bill: (String, i64),
        store: (String, i64),
    },
    RefundNotInStore {
        out_trade_no: String,
        out_refund_no: String,
        amount_fen: i64,
    },
    RefundNotInBill {
        order_id: String,
        out_refund_no: String,
        amount_fen: i64,
    },
    RefundDiffers {
        out_refund_no: String,
        bill_fen: i64,
        store_fen: i64,
    },
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::PaymentNotInStore {
                out_trade_no,
                transaction_id,
                amount_fen,
            } => write!(
                f,
                "payment in the bill, not in the store: order {out_trade_no} \
                 transaction {transaction_id} {amount_fen} fen"
            ),
            Discrepancy::PaymentNotInBill {
                order_id,
                transaction_id,
                amount_fen,
            } => write!(
                f,
                "payment in the store, not in the bill: order {order_id} \
                 transaction {transaction_id} {amount_fen} fen"
            ),
            Discrepancy::PaymentDiffers {
                order_id,
                bill,
                store,
            } => write!(
                f,
                "payment differs: order {order_id} bill transaction {} {} fen, \
                 store transaction {} {} fen",
                bill.0, bill.1, store.0, store.1
            ),
            Discrepancy::RefundNotInStore {
                out_trade_no,
                out_refund_no,
                amount_fen,
            } => write!(
                f,
                "refund in the bill, not in the store: order {out_trade_no} \
                 refund {out_refund_no} {amount_fen} fen"
            ),
            Discrepancy::RefundNotInBill {
                order_id,
                out_refund_no,
                amount_fen,
            } => write!(
                f,
                "refund in the store, not in the bill: order {order_id} \
                 refund {out_refund_no} {amount_fen} fen"
            ),
            Discrepancy::RefundDiffers {
                out_refund_no,
                bill_fen,
                store_fen,
            } => write!(
                f,
                "refund differs: {out_refund_no} bill {bill_fen} fen, store {store_fen} fen"
            ),
        }
    }
}

/// Whether a bill line is a refund (it names a merchant refund number).
fn is_refund_line(row: &BillRow) -> bool {
    !(row.out_refund_no.is_empty() || row.out_refund_no == "0")
}

/// Every difference between one day's bill and the store's view of the
/// same day, payments first, each list in key order.
pub fn compare(
    bill: &[BillRow],
    payments: &[LedgerPayment],
    refunds: &[LedgerRefund],
) -> Vec<Discrepancy> {
    let mut found = Vec::new();
    let mut stored: BTreeMap<&str, &LedgerPayment> = payments
        .iter()
        .map(|payment| (payment.order_id.as_str(), payment))
        .collect();
    let mut stored_refunds: BTreeMap<&str, &LedgerRefund> = refunds
        .iter()
        .map(|refund| (refund.out_refund_no.as_str(), refund))
        .collect();
    for row in bill {
        if is_refund_line(row) {
            match stored_refunds.remove(row.out_refund_no.as_str()) {
                None => found.push(Discrepancy::RefundNotInStore {
                    out_trade_no: row.out_trade_no.clone(),
                    out_refund_no: row.out_refund_no.clone(),
                    amount_fen: row.refund_requested_fen,
                }),
                Some(refund) if refund.amount_fen != row.refund_requested_fen => {
                    found.push(Discrepancy::RefundDiffers {
                        out_refund_no: row.out_refund_no.clone(),
                        bill_fen: row.refund_requested_fen,
                        store_fen: refund.amount_fen,
                    })
                }
                Some(_) => {}
            }
            continue;
        }
        match stored.remove(row.out_trade_no.as_str()) {
            None => found.push(Discrepancy::PaymentNotInStore {
                out_trade_no: row.out_trade_no.clone(),
                transaction_id: row.transaction_id.clone(),
                amount_fen: row.total_fen,
            }),
            Some(payment)
                if payment.amount_fen != row.total_fen
                    || payment.transaction_id != row.transaction_id =>
            {
                found.push(Discrepancy::PaymentDiffers {
                    order_id: payment.order_id.clone(),
                    bill: (row.transaction_id.clone(), row.total_fen),
                    store: (payment.transaction_id.clone(), payment.amount_fen),
                })
            }
            Some(_) => {}
        }
    }
    found.extend(
        stored
            .into_values()
            .map(|payment| Discrepancy::PaymentNotInBill {
                order_id: payment.order_id.clone(),
                transaction_id: payment.transaction_id.clone(),
                amount_fen: payment.amount_fen,
            }),
    );
    found.extend(
        stored_refunds
            .into_values()
            .map(|refund| Discrepancy::RefundNotInBill {
                order_id: refund.order_id.clone(),
                out_refund_no: refund.out_refund_no.clone(),
                amount_fen: refund.amount_fen,
            }),
    );
    found
}

/// `flashgate reconcile --date YYYY-MM-DD`: reads the day from the store,
/// fetches the day's trade bill from WeChat Pay, and compares. An absent
/// bill (`NO_STATEMENT_EXIST`: WeChat Pay saw no trade that day) is an
/// empty one, so payments the store holds for the day still show up.
pub fn reconcile_day(config: &Config, date: &str) -> Result<Vec<Discrepancy>, String> {
    let from = beijing_day_start(date)
        .ok_or_else(|| format!("--date {date}: expected a day as YYYY-MM-DD"))?;
    let to = from + DAY_MS;
    if !config.pay.has_merchant() {
        return Err(
            "reconcile needs merchant credentials (pay.mchid and the rest of [pay]); \
                    the embedded simulator keeps no bills"
                .into(),
        );
    }
    // The store's PostgreSQL client is blocking: read before any runtime.
    let mut store = Store::open(&crate::app::store_config(config))
        .map_err(|error| format!("store: {error}"))?;
    let payments: Vec<LedgerPayment> = store
        .paid_orders_between(from, to)
        .map_err(|error| format!("store: {error}"))?
        .into_iter()
        .map(|paid| LedgerPayment {
            order_id: paid.order_id,
            transaction_id: paid.transaction_id,
            amount_fen: paid.amount_fen,
        })
        .collect();
    let refunds: Vec<LedgerRefund> = store
        .refunds_requested_between(from, to)
        .map_err(|error| format!("store: {error}"))?
        .into_iter()
        .map(|refund| LedgerRefund {
            order_id: refund.order_id,
            out_refund_no: refund.out_refund_no,
            amount_fen: refund.amount_fen,
        })
        .collect();
    let client = PayClient::new(&super::merchant_config(&config.pay)?)
        .map_err(|error| format!("WeChat Pay client: {error}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let text = match runtime.block_on(client.trade_bill(date)) {
        Ok(text) => Some(text),
        Err(PayError::Api { code, .. }) if code == "NO_STATEMENT_EXIST" => None,
        Err(error) => return Err(format!("trade bill for {date}: {error}")),
    };
    let rows = match text {
        Some(text) => bill::parse(&text).map_err(|error| format!("trade bill: {error}"))?,
        None => Vec::new(),
    };
    Ok(compare(&rows, &payments, &refunds))
}

const DAY_MS: i64 = 86_400_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn payment_line(order_id: &str, transaction_id: &str, total_fen: i64) -> BillRow {
        BillRow {
            out_trade_no: order_id.into(),
            transaction_id: transaction_id.into(),
            trade_state: "SUCCESS".into(),
            total_fen,
            refund_id: "0".into(),
            out_refund_no: "0".into(),
            ..BillRow::default()
        }
    }

    fn refund_line(order_id: &str, out_refund_no: &str, fen: i64) -> BillRow {
        BillRow {
            out_trade_no: order_id.into(),
            trade_state: "REFUND".into(),
            refund_id: "50300000000000000000000000001".into(),
            out_refund_no: out_refund_no.into(),
            refund_fen: fen,
            refund_requested_fen: fen,
            ..BillRow::default()
        }
    }

    fn paid(order_id: &str, transaction_id: &str, amount_fen: i64) -> LedgerPayment {
        LedgerPayment {
            order_id: order_id.into(),
            transaction_id: transaction_id.into(),
            amount_fen,
        }
    }

    fn refunded(order_id: &str, out_refund_no: &str, amount_fen: i64) -> LedgerRefund {
        LedgerRefund {
            order_id: order_id.into(),
            out_refund_no: out_refund_no.into(),
            amount_fen,
        }
    }

    #[test]
    fn agreeing_sides_have_no_discrepancy() {
        let bill = [
            payment_line("FG1", "4200001", 9900),
            payment_line("FG2", "4200002", 100),
            refund_line("FG2", "FG2R1", 100),
        ];
        let payments = [paid("FG2", "4200002", 100), paid("FG1", "4200001", 9900)];
        let refunds = [refunded("FG2", "FG2R1", 100)];
        assert_eq!(compare(&bill, &payments, &refunds), vec![]);
    }

    #[test]
    fn every_kind_of_difference_is_reported() {
        let bill = [
            payment_line("FG1", "4200001", 9900),
            payment_line("FG2", "4200002", 100),
            payment_line("FG3", "4200003", 500),
            refund_line("FG1", "FG1R1", 9900),
            refund_line("FG3", "FG3R1", 400),
        ];
        let payments = [
            paid("FG1", "4200001", 9900),
            paid("FG3", "4200003", 501),
            paid("FG4", "4200004", 10),
        ];
        let refunds = [refunded("FG3", "FG3R1", 500), refunded("FG4", "FG4R1", 10)];
        let found = compare(&bill, &payments, &refunds);
        assert_eq!(
            found,
            vec![
                Discrepancy::PaymentNotInStore {
                    out_trade_no: "FG2".into(),
                    transaction_id: "4200002".into(),
                    amount_fen: 100
                },
                Discrepancy::PaymentDiffers {
                    order_id: "FG3".into(),
                    bill: ("4200003".into(), 500),
                    store: ("4200003".into(), 501)
                },
                Discrepancy::RefundNotInStore {
                    out_trade_no: "FG1".into(),
                    out_refund_no: "FG1R1".into(),
                    amount_fen: 9900
                },
                Discrepancy::RefundDiffers {
                    out_refund_no: "FG3R1".into(),
                    bill_fen: 400,
                    store_fen: 500
                },
                Discrepancy::PaymentNotInBill {
                    order_id: "FG4".into(),
                    transaction_id: "4200004".into(),
                    amount_fen: 10
                },
                Discrepancy::RefundNotInBill {
                    order_id: "FG4".into(),
                    out_refund_no: "FG4R1".into(),
                    amount_fen: 10
                },
            ]
        );
        for discrepancy in &found {
            assert!(!discrepancy.to_string().is_empty());
        }
    }
}
