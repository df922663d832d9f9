-- flashgate store, PostgreSQL, version 3: one store shared by the nodes of
-- a cluster (docs/ARCHITECTURE.md, "Cluster").
--
-- Every node feeds the store from its own journal, so the applied journal
-- position is kept per node, keyed by `cluster.node_id`; a node alone has
-- no id and keeps its position under the empty key ''. An existing store
-- carries its one position over to that key.

CREATE TABLE journal_positions (
    node_id     TEXT   NOT NULL PRIMARY KEY,
    applied_seq BIGINT NOT NULL CHECK (applied_seq >= 0)
);

INSERT INTO journal_positions (node_id, applied_seq)
    SELECT '', applied_seq FROM journal_position WHERE applied_seq > 0;

DROP TABLE journal_position;

-- Every node journals the same sale_created and the same start/pause/end
-- as it follows the shared state. Each node's sequence is checked against
-- the life-cycle table in its own row here; `sales.status` is the latest
-- transition of any node (by its time; `ended` is final), and
-- `status_node`/`status_at` say whose and when.
CREATE TABLE sale_nodes (
    sale_id    TEXT   NOT NULL REFERENCES sales (sale_id),
    node_id    TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (sale_id, node_id)
);

INSERT INTO sale_nodes (sale_id, node_id, status, created_at, updated_at)
    SELECT sale_id, '', status, created_at, created_at FROM sales;

ALTER TABLE sales
    ADD COLUMN status_node TEXT   NOT NULL DEFAULT '',
    ADD COLUMN status_at   BIGINT NOT NULL DEFAULT 0;

-- The node whose journal holds the order (order ids carry the node's tag,
-- so they are unique across nodes).
ALTER TABLE orders ADD COLUMN node_id TEXT NOT NULL DEFAULT '';

CREATE INDEX orders_by_node ON orders (node_id, created_at);

-- What each node leased of each item's global stock, from its journal's
-- lease_granted and lease_returned: held = granted - returned (sold units
-- included). Redis is the live truth; this is the durable, queryable copy.
CREATE TABLE leases (
    sale_id    TEXT   NOT NULL,
    sku_id     TEXT   NOT NULL,
    node_id    TEXT   NOT NULL,
    granted    BIGINT NOT NULL CHECK (granted >= 0),
    returned   BIGINT NOT NULL CHECK (returned >= 0 AND returned <= granted),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (sale_id, sku_id, node_id),
    FOREIGN KEY (sale_id, sku_id) REFERENCES sale_items (sale_id, sku_id)
);
