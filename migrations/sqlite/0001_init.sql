-- flashgate store, SQLite: the queryable durable copy of the journal.
--
-- Times are Unix milliseconds (INTEGER). Money is TEXT with exactly two
-- decimal places ("99.00"): a column declared NUMERIC or REAL would give the
-- value numeric affinity and SQLite would keep it as a binary float, so
-- money stays text here and is parsed as an exact decimal on the way out.

CREATE TABLE sales (
    sale_id      TEXT    NOT NULL PRIMARY KEY,
    title        TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    starts_at    INTEGER,
    ends_at      INTEGER,
    hold_seconds INTEGER NOT NULL CHECK (hold_seconds >= 0),
    created_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE sale_items (
    sale_id        TEXT    NOT NULL REFERENCES sales (sale_id),
    sku_id         TEXT    NOT NULL,
    title          TEXT    NOT NULL,
    price          TEXT    NOT NULL,
    stock          INTEGER NOT NULL,
    per_user_limit INTEGER NOT NULL CHECK (per_user_limit >= 0),
    PRIMARY KEY (sale_id, sku_id)
) STRICT;

CREATE TABLE orders (
    order_id        TEXT    NOT NULL PRIMARY KEY,
    sale_id         TEXT    NOT NULL,
    sku_id          TEXT    NOT NULL,
    buyer           TEXT    NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity > 0),
    amount          TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    paid_at         INTEGER,
    updated_at      INTEGER NOT NULL,
    FOREIGN KEY (sale_id, sku_id) REFERENCES sale_items (sale_id, sku_id)
) STRICT;

CREATE INDEX orders_by_sale ON orders (sale_id, sku_id);
CREATE INDEX orders_by_buyer ON orders (buyer, created_at);

CREATE TABLE order_events (
    order_id TEXT    NOT NULL REFERENCES orders (order_id),
    seq      INTEGER NOT NULL,
    status   TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (order_id, seq)
) STRICT;

-- One row: the seq of the last journal record applied (0 when fresh).
CREATE TABLE journal_position (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    applied_seq INTEGER NOT NULL CHECK (applied_seq >= 0)
) STRICT;

INSERT INTO journal_position (id, applied_seq) VALUES (1, 0);
