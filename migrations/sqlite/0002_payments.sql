-- flashgate store, SQLite, version 2: what WeChat Pay did to each order.
--
-- Every column is NULL until its event: the prepay (payment_started), the
-- payment (payment_confirmed: transaction, amount in integer fen as on the
-- WeChat Pay wire, and `paid_at`, which is WeChat Pay's success time), the
-- refund (refund_requested, or a late payment whose units were gone) and
-- its completion (refund_completed). Refunds are full: a refund's amount is
-- `paid_amount_fen`.

ALTER TABLE orders ADD COLUMN prepay_id TEXT;
ALTER TABLE orders ADD COLUMN payment_started_at INTEGER;
ALTER TABLE orders ADD COLUMN transaction_id TEXT;
ALTER TABLE orders ADD COLUMN paid_amount_fen INTEGER CHECK (paid_amount_fen > 0);
ALTER TABLE orders ADD COLUMN out_refund_no TEXT;
ALTER TABLE orders ADD COLUMN refund_reason TEXT CHECK (refund_reason IN ('admin', 'late_payment'));
ALTER TABLE orders ADD COLUMN refund_requested_at INTEGER;
ALTER TABLE orders ADD COLUMN refund_id TEXT;

-- Daily reconciliation reads payments and refunds by time. Partial, so the
-- many orders never paid cost these indexes nothing.
CREATE INDEX orders_by_paid_at ON orders (paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX orders_by_refund_requested_at ON orders (refund_requested_at)
    WHERE refund_requested_at IS NOT NULL;
