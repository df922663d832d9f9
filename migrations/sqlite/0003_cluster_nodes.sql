-- flashgate store, SQLite, version 3: the schema PostgreSQL's 0003 gives a
-- store shared by the nodes of a cluster. An SQLite file lives in one
-- node's data dir and is fed by that node alone, but the code that applies
-- a batch is the same on both backends, so the tables are too.
--
-- The applied journal position, per node (keyed by `cluster.node_id`; the
-- empty key '' for a node alone, which inherits the one position of an
-- existing store).

CREATE TABLE journal_positions (
    node_id     TEXT    NOT NULL PRIMARY KEY,
    applied_seq INTEGER NOT NULL CHECK (applied_seq >= 0)
) STRICT;

INSERT INTO journal_positions (node_id, applied_seq)
    SELECT '', applied_seq FROM journal_position WHERE applied_seq > 0;

DROP TABLE journal_position;

-- Each node's own view of a sale's life cycle; `sales.status` is the
-- latest transition of any node (`ended` is final).
CREATE TABLE sale_nodes (
    sale_id    TEXT    NOT NULL REFERENCES sales (sale_id),
    node_id    TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sale_id, node_id)
) STRICT;

INSERT INTO sale_nodes (sale_id, node_id, status, created_at, updated_at)
    SELECT sale_id, '', status, created_at, created_at FROM sales;

ALTER TABLE sales ADD COLUMN status_node TEXT NOT NULL DEFAULT '';
ALTER TABLE sales ADD COLUMN status_at INTEGER NOT NULL DEFAULT 0;

-- The node whose journal holds the order.
ALTER TABLE orders ADD COLUMN node_id TEXT NOT NULL DEFAULT '';

CREATE INDEX orders_by_node ON orders (node_id, created_at);

-- What each node leased of each item's global stock (granted - returned is
-- what it holds, sold units included).
CREATE TABLE leases (
    sale_id    TEXT    NOT NULL,
    sku_id     TEXT    NOT NULL,
    node_id    TEXT    NOT NULL,
    granted    INTEGER NOT NULL CHECK (granted >= 0),
    returned   INTEGER NOT NULL CHECK (returned >= 0 AND returned <= granted),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sale_id, sku_id, node_id),
    FOREIGN KEY (sale_id, sku_id) REFERENCES sale_items (sale_id, sku_id)
) STRICT;
