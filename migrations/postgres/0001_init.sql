-- flashgate store, PostgreSQL: the queryable durable copy of the journal.
--
-- Times are Unix milliseconds (BIGINT). Money is NUMERIC, never a float.
-- A price is at most 10 million yuan (money::AMOUNT_YUAN_MAX), so
-- NUMERIC(12,2) holds it; an order amount is price × quantity and quantity
-- is bounded only by a u32 limit, hence the wider NUMERIC(20,2).

CREATE TABLE sales (
    sale_id      TEXT    NOT NULL PRIMARY KEY,
    title        TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    starts_at    BIGINT,
    ends_at      BIGINT,
    hold_seconds BIGINT  NOT NULL CHECK (hold_seconds >= 0),
    created_at   BIGINT  NOT NULL
);

CREATE TABLE sale_items (
    sale_id        TEXT          NOT NULL REFERENCES sales (sale_id),
    sku_id         TEXT          NOT NULL,
    title          TEXT          NOT NULL,
    price          NUMERIC(12,2) NOT NULL,
    stock          BIGINT        NOT NULL,
    per_user_limit BIGINT        NOT NULL CHECK (per_user_limit >= 0),
    PRIMARY KEY (sale_id, sku_id)
);

CREATE TABLE orders (
    order_id        TEXT          NOT NULL PRIMARY KEY,
    sale_id         TEXT          NOT NULL,
    sku_id          TEXT          NOT NULL,
    buyer           TEXT          NOT NULL,
    quantity        BIGINT        NOT NULL CHECK (quantity > 0),
    amount          NUMERIC(20,2) NOT NULL,
    idempotency_key TEXT          NOT NULL,
    status          TEXT          NOT NULL,
    created_at      BIGINT        NOT NULL,
    expires_at      BIGINT        NOT NULL,
    paid_at         BIGINT,
    updated_at      BIGINT        NOT NULL,
    FOREIGN KEY (sale_id, sku_id) REFERENCES sale_items (sale_id, sku_id)
);

CREATE INDEX orders_by_sale ON orders (sale_id, sku_id);
CREATE INDEX orders_by_buyer ON orders (buyer, created_at);

CREATE TABLE order_events (
    order_id TEXT   NOT NULL REFERENCES orders (order_id),
    seq      BIGINT NOT NULL,
    status   TEXT   NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- One row: the seq of the last journal record applied (0 when fresh).
CREATE TABLE journal_position (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    applied_seq BIGINT  NOT NULL CHECK (applied_seq >= 0)
);

INSERT INTO journal_position (id, applied_seq) VALUES (1, 0);
