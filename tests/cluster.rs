//! Three real `flashgate serve` processes selling one sale through the
//! machine's Redis (127.0.0.1:6379, a key prefix of the test's own, deleted
//! at the end): a burst of distinct buyers spread over the three sells
//! exactly the stock, every order stays readable on the node that made it,
//! and no node sells more than it leased. The burst and the kill -9 tests
//! share one PostgreSQL store between the three nodes (a database of the
//! test's own on 127.0.0.1:5432, dropped at the end) and check it converges:
//! every acknowledged order in it exactly once, under its node, and each
//! node's recorded position at its journal's end.
//!
//! `three_nodes_on_a_redis_cluster_sell_one_sale_exactly` runs three nodes
//! on a real Redis Cluster of three masters the test starts itself
//! (`src/cluster/test_redis_cluster.rs`, needs `redis-server` and
//! `redis-cli` on the PATH).

mod common;
#[path = "../src/cluster/test_redis_cluster.rs"]
mod redis_cluster;

use common::pg::PgDatabase;
use common::served::{Served, BINARY};
use common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use tokio::time::Instant;

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A key prefix of the test's own; every key under it is deleted on drop.
struct RedisPrefix {
    prefix: String,
    connection: redis::Connection,
}

impl RedisPrefix {
    fn new(tag: &str) -> RedisPrefix {
        let client = redis::Client::open(REDIS_URL).expect("a valid Redis URL");
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .unwrap_or_else(|error| {
                panic!(
                    "tests/cluster.rs needs Redis at {REDIS_URL} and cannot reach it ({error}); \
                     start it (e.g. `redis-server --daemonize yes`)"
                )
            });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        let prefix = format!("flashgate-test:{tag}:{}:{nanos}", std::process::id());
        RedisPrefix { prefix, connection }
    }

    /// Moves `units` of the sale's item from the global stock to `node`'s
    /// lease by hand: a grant Redis made whose journal record a crash lost.
    fn forge_lease(&mut self, sale_id: &str, node: &str, units: i64) {
        let _: () = redis::pipe()
            .cmd("HINCRBY")
            .arg(format!("{}:sale:{{{sale_id}}}:stock", self.prefix))
            .arg(SKU)
            .arg(-units)
            .cmd("HINCRBY")
            .arg(format!("{}:sale:{{{sale_id}}}:leased:{SKU}", self.prefix))
            .arg(node)
            .arg(units)
            .query(&mut self.connection)
            .expect("a lease without a journal record");
    }

    fn hash(&mut self, key: &str) -> HashMap<String, i64> {
        redis::cmd("HGETALL")
            .arg(format!("{}:{key}", self.prefix))
            .query(&mut self.connection)
            .expect("HGETALL")
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut self.connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query(&mut self.connection);
        }
    }
}

/// A running cluster node ([`common::served`]: free ports, `/healthz`,
/// SIGTERM, reaped on drop), its data in the scratch dir under its id.
struct Node(Served);

impl Node {
    /// `overrides`: `FLASHGATE__CLUSTER__<KEY>` settings over the test's;
    /// `storage`: `FLASHGATE__STORAGE__<KEY>` settings.
    fn spawn(
        scratch: &Scratch,
        node_id: &str,
        prefix: &str,
        overrides: &[(&str, String)],
        storage: &[(&str, String)],
    ) -> Node {
        let cluster = [
            ("REDIS_URL", REDIS_URL.to_owned()),
            ("NODE_ID", node_id.to_owned()),
            ("KEY_PREFIX", prefix.to_owned()),
            ("LEASE_BLOCK_UNITS", "10".to_owned()),
            ("LEASE_LOW_WATERMARK_UNITS", "3".to_owned()),
            ("REFILL_WAIT_MS", "200".to_owned()),
            ("POLL_INTERVAL_MS", "50".to_owned()),
        ];
        let env: Vec<(String, String)> = cluster
            .iter()
            .chain(overrides)
            .map(|(key, value)| (format!("FLASHGATE__CLUSTER__{key}"), value.clone()))
            .chain(
                storage
                    .iter()
                    .map(|(key, value)| (format!("FLASHGATE__STORAGE__{key}"), value.clone())),
            )
            .collect();
        let stderr_path = scratch.0.join(format!("{node_id}.log"));
        Node(Served::spawn(&scratch.0.join(node_id), stderr_path, &env))
    }

    /// Spawns the node and waits for `/healthz`; another port if the one
    /// chosen was taken meanwhile.
    async fn start(scratch: &Scratch, node_id: &str, prefix: &str) -> Node {
        Node::start_with(scratch, node_id, prefix, &[]).await
    }

    async fn start_with(
        scratch: &Scratch,
        node_id: &str,
        prefix: &str,
        overrides: &[(&str, String)],
    ) -> Node {
        Node(Served::start(|_| Node::spawn(scratch, node_id, prefix, overrides, &[]).0).await)
    }

    /// A node whose store is the shared PostgreSQL database `db`.
    async fn start_shared(scratch: &Scratch, node_id: &str, prefix: &str, db: &PgDatabase) -> Node {
        let storage = [("POSTGRES_URL", db.url())];
        Node(Served::start(|_| Node::spawn(scratch, node_id, prefix, &[], &storage).0).await)
    }
}

impl std::ops::Deref for Node {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Served {
        &mut self.0
    }
}

/// Waits until `node` reports the sale live (a node with an empty lease
/// reports a live sale as `sold_out`).
async fn wait_live(node: &Node, sale_id: &str) {
    let deadline = Instant::now() + WAIT;
    let mut client = Client::connect(node.addr).await;
    loop {
        let reply = client.get(&format!("/v1/sales/{sale_id}"), OPS_TOKEN).await;
        if reply.status == 200 {
            let status = reply.json()["status"].clone();
            if status == "live" || status == "sold_out" {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {} never saw sale {sale_id} live: {}",
            node.addr,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A burst of `buyers` distinct buyers (`<tag>_<i>`), buyer i on node
/// i % 3, over `connections` connections per node: `(node index, buyer,
/// order id)` of every 201.
async fn burst(
    nodes: &[Node],
    sale_id: &'static str,
    tag: &'static str,
    buyers: usize,
    connections: usize,
) -> Vec<(usize, String, String)> {
    let mut tasks = Vec::new();
    for (node_index, node) in nodes.iter().enumerate() {
        for connection in 0..connections {
            let addr = node.addr;
            let mine: Vec<usize> = (0..buyers)
                .filter(|buyer| buyer % nodes.len() == node_index)
                .filter(|buyer| (buyer / nodes.len()) % connections == connection)
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut sold = Vec::new();
                for buyer in mine {
                    let buyer = format!("{tag}_{buyer}");
                    if let Some(order_id) = buy(&mut client, sale_id, &buyer).await {
                        sold.push((node_index, buyer, order_id));
                    }
                }
                sold
            }));
        }
    }
    let mut sold = Vec::new();
    for task in tasks {
        sold.extend(task.await.expect("a buyer task"));
    }
    sold
}

/// One buyer, "whale", ordering one unit `attempts` times on every node at
/// once, each with its own key: `(node index, key, order id)` of the 201s;
/// every other answer must be 409 `LIMIT_EXCEEDED`.
async fn one_buyer_everywhere(
    nodes: &[Node],
    sale_id: &'static str,
    attempts: usize,
) -> Vec<(usize, String, Value)> {
    let mut tasks = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        for attempt in 0..attempts {
            let addr = node.addr;
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let key = format!("whale-{index}-{attempt}");
                let reply = try_order(&mut client, "whale", &key, sale_id).await;
                (index, key, reply)
            }));
        }
    }
    let mut made = Vec::new();
    for task in tasks {
        let (index, key, reply) = task.await.expect("an order task");
        match reply.status.as_u16() {
            201 => made.push((index, key, reply.json()["order_id"].clone())),
            409 => {
                let message = assert_error(&reply, 409, "LIMIT_EXCEEDED");
                assert!(message.contains("per-user limit"), "{message}");
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    made
}

/// One buyer's order on `addr`, retried while the node answers 503 (its
/// refill not there yet). `Some(order_id)` for a 201, `None` for SOLD_OUT.
async fn buy(client: &mut Client, sale_id: &str, buyer: &str) -> Option<String> {
    let token = buyer_token(buyer);
    for _ in 0..200 {
        let reply = client
            .order(&token, &format!("key-{buyer}"), sale_id, 1)
            .await;
        match reply.status.as_u16() {
            201 => {
                let order_id = reply.json()["order_id"]
                    .as_str()
                    .expect("order_id")
                    .to_owned();
                return Some(order_id);
            }
            409 => {
                assert_error(&reply, 409, "SOLD_OUT");
                return None;
            }
            503 => {
                assert_error(&reply, 503, "OVERLOADED");
                assert!(
                    reply.header("retry-after").is_some(),
                    "503 without Retry-After"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("buyer {buyer}: unexpected {other}: {}", reply.text()),
        }
    }
    panic!("buyer {buyer} got 503 for 200 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_three_nodes_sells_exactly_the_stock_and_no_node_more_than_it_leased() {
    const STOCK: i64 = 95;
    const BUYERS: usize = 180;
    const CONNECTIONS_PER_NODE: usize = 4;
    let mut redis = RedisPrefix::new("cluster-burst");
    let scratch = Scratch::new("cluster-burst");
    let db = PgDatabase::create();
    let mut nodes = Vec::new();
    for node_id in ["n1", "n2", "n3"] {
        nodes.push(Node::start_shared(&scratch, node_id, &redis.prefix, &db).await);
    }
    let sale_id = "cluster-1";
    let mut host = Client::connect(nodes[0].addr).await;
    host.create_sale(&sale_body(sale_id, STOCK, 1))
        .await
        .expect_json(201);
    let mut other = Client::connect(nodes[1].addr).await;
    let duplicate = other.create_sale(&sale_body(sale_id, 7, 1)).await;
    assert!(
        duplicate.status == 409,
        "a second create on another node is refused: {}",
        duplicate.text()
    );
    host.start_sale(sale_id).await.expect_json(200);
    for node in &nodes {
        wait_live(node, sale_id).await;
    }

    // The burst: buyer i goes to node i % 3, over a few connections each.
    let sold = burst(&nodes, sale_id, "o_buyer", BUYERS, CONNECTIONS_PER_NODE).await;
    assert_eq!(sold.len() as i64, STOCK, "201s over the three nodes");
    let order_ids: HashSet<&String> = sold.iter().map(|(_, _, order_id)| order_id).collect();
    assert_eq!(
        order_ids.len(),
        sold.len(),
        "order ids are unique across nodes"
    );

    // Every 201 order is readable on the node that made it.
    let mut sold_per_node = [0i64; 3];
    for (node_index, buyer, order_id) in &sold {
        sold_per_node[*node_index] += 1;
        let mut client = Client::connect(nodes[*node_index].addr).await;
        let order = client
            .get(&format!("/v1/orders/{order_id}"), &buyer_token(buyer))
            .await
            .expect_json(200);
        assert_eq!(order["status"], "reserved", "{order}");
    }

    // No node sold more than it leased; Redis accounts for every unit.
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    let global = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
    let leased_total: i64 = leased.values().sum();
    assert_eq!(global[SKU] + leased_total, STOCK, "{global:?} {leased:?}");
    for (node_index, node) in nodes.iter().enumerate() {
        let node_id = format!("n{}", node_index + 1);
        let stats: Value = Client::connect(node.addr).await.stats(sale_id).await;
        let item = &stats["items"][0];
        let (held, reserved) = (
            item["stock"].as_i64().unwrap(),
            item["reserved"].as_i64().unwrap(),
        );
        assert_eq!(
            reserved, sold_per_node[node_index],
            "node {node_id}: {stats}"
        );
        assert!(
            reserved <= held,
            "node {node_id} sold {reserved} of the {held} it holds"
        );
        assert_eq!(
            leased.get(&node_id).copied().unwrap_or(0),
            held,
            "node {node_id}: what Redis says it leased is what its journal holds"
        );
    }
    // Exactly the stock was sold, so nothing is left anywhere.
    assert_eq!(global[SKU], 0);

    // The one store the three nodes share converges: every acknowledged
    // order once, under its node; each node's position at its journal's
    // end; one sale with its global stock; each node's lease as Redis has it.
    let mut acknowledged: HashMap<String, Vec<String>> = HashMap::new();
    for (node_index, _, order_id) in &sold {
        let node_id = format!("n{}", node_index + 1);
        acknowledged
            .entry(node_id)
            .or_default()
            .push(order_id.clone());
    }
    let node_ids = ["n1", "n2", "n3"];
    let pairs: Vec<(&str, &Node)> = node_ids.into_iter().zip(nodes.iter()).collect();
    store_converges(&db, &pairs, sale_id, &acknowledged).await;
    let (stock, views, leases) = db.with_client(|client| {
        let stock: i64 = client
            .query_one(
                "SELECT stock FROM sale_items WHERE sale_id = $1",
                &[&sale_id],
            )
            .expect("the item")
            .get(0);
        let views: Vec<(String, String)> = client
            .query(
                "SELECT node_id, status FROM sale_nodes WHERE sale_id = $1 ORDER BY node_id",
                &[&sale_id],
            )
            .expect("sale_nodes")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let leases: HashMap<String, i64> = client
            .query(
                "SELECT node_id, granted - returned FROM leases WHERE sale_id = $1",
                &[&sale_id],
            )
            .expect("leases")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        (stock, views, leases)
    });
    assert_eq!(stock, STOCK, "the store keeps the global stock");
    let live = |node: &str| (node.to_owned(), "live".to_owned());
    assert_eq!(views, [live("n1"), live("n2"), live("n3")]);
    assert_eq!(leases, leased, "the store's leases are Redis's");

    // The stats of any node show who holds what, as Redis does.
    let stats = Client::connect(nodes[2].addr).await.stats(sale_id).await;
    let item = &stats["cluster"]["items"][0];
    assert_eq!(stats["cluster"]["node_id"], "n3", "{stats}");
    assert_eq!(item["global_remaining"], 0, "{stats}");
    let shown: HashMap<String, i64> = item["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|lease| {
            let node_id = lease["node_id"].as_str().expect("node_id").to_owned();
            (node_id, lease["units"].as_i64().expect("units"))
        })
        .collect();
    assert_eq!(shown, leased, "{stats}");

    // `flashgate cluster leases` shows the same.
    let report = cluster_command(&[
        ("REDIS_URL", REDIS_URL.to_owned()),
        ("KEY_PREFIX", redis.prefix.clone()),
    ]);
    assert!(report.status.success(), "{report:?}");
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(text.contains(&format!("sale {sale_id} (live)")), "{text}");
    assert!(
        text.contains(&format!("{SKU}: global remaining 0, leased {STOCK}")),
        "{text}"
    );
    for (node_id, units) in &leased {
        assert!(
            text.contains(&format!("    {node_id}: {units}\n")),
            "{text}"
        );
    }

    // Redis sees a call per block, not per order: blocks of 10 while the
    // stock is plenty, shrinking to single units at the very end (about 22
    // calls for 95 units over three nodes).
    let mut lease_calls = 0;
    for node in &nodes {
        lease_calls += redis_calls(node, "lease").await;
    }
    assert!(
        lease_calls > 0 && lease_calls <= (STOCK / 3) as u64,
        "{lease_calls} lease calls for {STOCK} orders in blocks of at most 10"
    );
}

/// `flashgate_cluster_redis_calls_total{op}` of a node.
async fn redis_calls(node: &Node, op: &str) -> u64 {
    let text = Client::connect(node.addr)
        .await
        .get_anonymous("/metrics")
        .await
        .text();
    let prefix = format!("flashgate_cluster_redis_calls_total{{op=\"{op}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().expect("a count"))
}

/// Buys one unit for each of `buyers` on `node`; how many got a 201.
async fn buy_all(node: &Node, sale_id: &str, buyers: impl Iterator<Item = String>) -> i64 {
    buy_all_ids(node, sale_id, buyers).await.len() as i64
}

/// Buys one unit for each of `buyers` on `node`; the ids of the 201s.
async fn buy_all_ids(
    node: &Node,
    sale_id: &str,
    buyers: impl Iterator<Item = String>,
) -> Vec<String> {
    let mut client = Client::connect(node.addr).await;
    let mut sold = Vec::new();
    for buyer in buyers {
        if let Some(order_id) = buy(&mut client, sale_id, &buyer).await {
            sold.push(order_id);
        }
    }
    sold
}

/// How long the shared store may take to catch up with the nodes.
const STORE_WAIT: Duration = Duration::from_secs(20);

/// Waits until the shared store holds every order of `acknowledged` (node
/// id → the order ids its 201s gave) exactly once, under that node, and
/// nothing else of the sale; and each node's recorded position has reached
/// its journal's end (`flashgate_journal_durable_seq`, read first).
async fn store_converges(
    db: &PgDatabase,
    nodes: &[(&str, &Node)],
    sale_id: &str,
    acknowledged: &HashMap<String, Vec<String>>,
) {
    let mut expected: Vec<(String, String)> = acknowledged
        .iter()
        .flat_map(|(node, ids)| ids.iter().map(|id| (id.clone(), node.clone())))
        .collect();
    expected.sort();
    let deadline = Instant::now() + STORE_WAIT;
    loop {
        let mut ends = HashMap::new();
        for (node_id, node) in nodes {
            let end = metric(node, "flashgate_journal_durable_seq").await as i64;
            ends.insert(node_id.to_string(), end);
        }
        let sale = sale_id.to_owned();
        let (orders, positions) = db.with_client(move |client| {
            let orders: Vec<(String, String)> = client
                .query(
                    "SELECT order_id, node_id FROM orders WHERE sale_id = $1 ORDER BY order_id",
                    &[&sale],
                )
                .expect("orders")
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            let positions: HashMap<String, i64> = client
                .query("SELECT node_id, applied_seq FROM journal_positions", &[])
                .expect("positions")
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            (orders, positions)
        });
        let caught_up = ends
            .iter()
            .all(|(node, end)| positions.get(node).is_some_and(|at| at >= end));
        if orders == expected && caught_up {
            assert_eq!(
                positions.len(),
                nodes.len(),
                "one position per node: {positions:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the shared store did not converge within {STORE_WAIT:?}: positions {positions:?}, \
             journal ends {ends:?}; {} orders stored, {} acknowledged; missing or foreign: {:?}",
            orders.len(),
            expected.len(),
            orders
                .iter()
                .filter(|order| !expected.contains(order))
                .chain(expected.iter().filter(|order| !orders.contains(order)))
                .take(5)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(stock held, reserved)` of the sale's item on `node`.
async fn held_and_sold(node: &Node, sale_id: &str) -> (i64, i64) {
    let stats = Client::connect(node.addr).await.stats(sale_id).await;
    let item = &stats["items"][0];
    (
        item["stock"].as_i64().expect("stock"),
        item["reserved"].as_i64().expect("reserved"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_sale_keeps_its_sold_units_and_gives_back_the_rest() {
    const STOCK: i64 = 60;
    let mut redis = RedisPrefix::new("cluster-kill");
    let scratch = Scratch::new("cluster-kill");
    let db = PgDatabase::create();
    let mut nodes = Vec::new();
    for node_id in ["n1", "n2", "n3"] {
        nodes.push(Node::start_shared(&scratch, node_id, &redis.prefix, &db).await);
    }
    let mut acknowledged: HashMap<String, Vec<String>> = HashMap::new();
    let sale_id = "cluster-kill";
    let mut host = Client::connect(nodes[0].addr).await;
    host.live_sale(sale_id, STOCK, 1).await;
    for node in &nodes {
        wait_live(node, sale_id).await;
    }
    let buyers = |from: usize, count: usize| (from..from + count).map(|i| format!("o_b{i}"));
    let sold_before_kill = buy_all_ids(&nodes[1], sale_id, buyers(0, 15)).await;
    assert_eq!(sold_before_kill.len(), 15);
    acknowledged.insert("n2".into(), sold_before_kill);
    // Kill it once no refill is in flight, so what it held is known.
    let deadline = Instant::now() + WAIT;
    let held_at_kill = loop {
        let (held, _) = held_and_sold(&nodes[1], sale_id).await;
        let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
        if leased.get("n2") == Some(&held) {
            break held;
        }
        assert!(Instant::now() < deadline, "n2's lease never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    nodes[1].kill_9();
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    assert_eq!(
        leased["n2"], held_at_kill,
        "the dead node's lease stays its own"
    );
    // A lease Redis granted n2 whose grant never reached its journal (a
    // crash between the two), made by hand.
    redis.forge_lease(sale_id, "n2", 5);

    // The others sell what is not in n2's lease, then answer SOLD_OUT.
    let by_n1 = buy_all_ids(&nodes[0], sale_id, buyers(100, 30)).await;
    let by_n3 = buy_all_ids(&nodes[2], sale_id, buyers(200, 30)).await;
    let sold_by_others = (by_n1.len() + by_n3.len()) as i64;
    assert_eq!(sold_by_others, STOCK - held_at_kill - 5);
    acknowledged.insert("n1".into(), by_n1);
    acknowledged.insert("n3".into(), by_n3);

    // n2 restarts on its journal: its orders are there, the hand-made
    // lease goes back, and it sells the rest of its own lease.
    nodes[1] = Node::start_shared(&scratch, "n2", &redis.prefix, &db).await;
    let (held, sold) = held_and_sold(&nodes[1], sale_id).await;
    assert_eq!(
        (held, sold),
        (held_at_kill, 15),
        "replay rebuilt what n2 holds"
    );
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    assert_eq!(
        leased["n2"], held_at_kill,
        "the unjournaled lease was given back"
    );
    // The 5 given back are leased by whichever node asks first.
    let mut sold_after = 0;
    for (index, from) in [(1, 300), (0, 400), (2, 500)] {
        let count = if index == 1 { 30 } else { 10 };
        let ids = buy_all_ids(&nodes[index], sale_id, buyers(from, count)).await;
        sold_after += ids.len() as i64;
        let node_id = format!("n{}", index + 1);
        acknowledged.entry(node_id).or_default().extend(ids);
    }
    assert_eq!(
        15 + sold_by_others + sold_after,
        STOCK,
        "exactly the stock is sold"
    );

    // Ending the sale gives back whatever a node still holds unsold: none.
    host.sale_action(sale_id, "end").await.expect_json(200);
    let deadline = Instant::now() + WAIT;
    loop {
        let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
        let global = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
        let mut matches = global[SKU] + leased.values().sum::<i64>() == STOCK;
        for (index, node) in nodes.iter().enumerate() {
            let (held, sold) = held_and_sold(node, sale_id).await;
            let node_id = format!("n{}", index + 1);
            matches &= held == sold && leased.get(&node_id).copied().unwrap_or(0) == held;
        }
        if matches {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leases never settled: {leased:?} {global:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The shared store converges, the killed node's orders included, and
    // every node's `end` leaves the one sale ended.
    let pairs: Vec<(&str, &Node)> = ["n1", "n2", "n3"].into_iter().zip(nodes.iter()).collect();
    store_converges(&db, &pairs, sale_id, &acknowledged).await;
    let deadline = Instant::now() + STORE_WAIT;
    loop {
        let statuses = db.with_client(|client| {
            client
                .query(
                    "SELECT status FROM sales UNION ALL \
                     SELECT status FROM sale_nodes ORDER BY 1",
                    &[],
                )
                .expect("statuses")
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
        });
        if statuses == ["ended"; 4] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sale and each node's view of it should end: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/readyz` of `node`: its status code and body.
async fn readyz(node: &Node) -> (u16, Value) {
    let reply = Client::connect(node.addr)
        .await
        .get_anonymous("/readyz")
        .await;
    (reply.status.as_u16(), reply.json())
}

/// Waits until `/readyz` of `node` answers `status` with `body`.
async fn wait_readyz(node: &Node, status: u16, body: Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = readyz(node).await;
        if seen == (status, body.clone()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {status} {body}; last {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Orders one unit until a 201 while the node answers 503 `OVERLOADED`
/// (Redis coming back, the refill on its way).
async fn order_once_redis_is_back(client: &mut Client, buyer: &str, key: &str, sale_id: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = client.order(&buyer_token(buyer), key, sale_id, 1).await;
        if reply.status == 201 {
            return;
        }
        assert_error(&reply, 503, "OVERLOADED");
        assert!(
            Instant::now() < deadline,
            "never sold again after Redis came back: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node` holds `units` of the sale's item (its lease arrived).
async fn wait_held(node: &Node, sale_id: &str, units: i64) {
    let deadline = Instant::now() + WAIT;
    while held_and_sold(node, sale_id).await.0 != units {
        assert!(Instant::now() < deadline, "the node never held {units}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The sale's status as `node` shows it.
async fn status_on(node: &Node, sale_id: &str) -> Option<String> {
    let reply = Client::connect(node.addr)
        .await
        .get(&format!("/v1/sales/{sale_id}"), OPS_TOKEN)
        .await;
    (reply.status == 200).then(|| reply.json()["status"].as_str().unwrap_or("").to_owned())
}

/// How long until `node` shows the sale `status`; panics after [`WAIT`].
async fn time_until(node: &Node, sale_id: &str, status: &str) -> Duration {
    let started = Instant::now();
    while status_on(node, sale_id).await.as_deref() != Some(status) {
        assert!(
            started.elapsed() < WAIT,
            "{} never showed {sale_id} {status}",
            node.addr
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_actions_reach_the_other_nodes_by_pub_sub_well_before_the_poll() {
    // A poll every 5 s: only pub/sub explains a change seen within 1 s.
    const POLL_MS: u64 = 5000;
    let redis = RedisPrefix::new("cluster-pubsub");
    let scratch = Scratch::new("cluster-pubsub");
    let slow_poll = [("POLL_INTERVAL_MS", POLL_MS.to_string())];
    let n1 = Node::start_with(&scratch, "n1", &redis.prefix, &slow_poll).await;
    let n2 = Node::start_with(&scratch, "n2", &redis.prefix, &slow_poll).await;
    // Both have made their first poll and subscribed once /healthz answers
    // and a moment has passed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sale_id = "cluster-pubsub";
    let mut host = Client::connect(n1.addr).await;
    host.create_sale(&sale_body(sale_id, 10, 1))
        .await
        .expect_json(201);
    let learned = time_until(&n2, sale_id, "scheduled").await;
    host.start_sale(sale_id).await.expect_json(200);
    let started = time_until(&n2, sale_id, "live").await;
    let mut other = Client::connect(n2.addr).await;
    other.sale_action(sale_id, "pause").await.expect_json(200);
    let paused = time_until(&n1, sale_id, "paused").await;
    for (what, took) in [("create", learned), ("start", started), ("pause", paused)] {
        assert!(
            took < Duration::from_secs(1),
            "the {what} took {took:?} to reach the other node (poll: {POLL_MS} ms)"
        );
    }
    // The shared table refuses what it refuses on any node.
    let refused = other.sale_action(sale_id, "pause").await;
    assert_error(&refused, 409, "INVALID_STATE");
}

/// A TCP proxy in front of Redis that the test can cut and restore: a
/// Redis outage for one node without stopping the machine's Redis.
struct RedisProxy {
    addr: SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl RedisProxy {
    async fn start() -> RedisProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accept_down, accept_connections) = (down.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if accept_down.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is refused at once
                }
                let task = tokio::spawn(async move {
                    let Ok(mut redis) = tokio::net::TcpStream::connect("127.0.0.1:6379").await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                });
                accept_connections.lock().unwrap().push(task.abort_handle());
            }
        });
        RedisProxy {
            addr,
            down,
            connections,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Cuts every connection and refuses new ones.
    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A gauge or counter of a node's `/metrics` (0 when absent).
async fn metric(node: &Node, series: &str) -> f64 {
    let text = Client::connect(node.addr)
        .await
        .get_anonymous("/metrics")
        .await
        .text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_node_sells_its_lease_then_answers_503_and_recovers() {
    const STOCK: i64 = 100;
    let mut redis = RedisPrefix::new("cluster-outage");
    let scratch = Scratch::new("cluster-outage");
    let proxy = RedisProxy::start().await;
    let settings = [
        ("REDIS_URL", proxy.url()),
        ("LEASE_BLOCK_UNITS", "20".to_owned()),
        ("LEASE_LOW_WATERMARK_UNITS", "5".to_owned()),
        ("REDIS_TIMEOUT_MS", "300".to_owned()),
    ];
    let node = Node::start_with(&scratch, "n1", &redis.prefix, &settings).await;
    let sale_id = "cluster-outage";
    let mut host = Client::connect(node.addr).await;
    host.live_sale(sale_id, STOCK, 1).await;
    let buyers = |from: usize, count: usize| (from..from + count).map(|i| format!("o_b{i}"));
    assert_eq!(buy_all(&node, sale_id, buyers(0, 1)).await, 1);
    wait_held(&node, sale_id, 20).await;

    wait_readyz(&node, 200, serde_json::json!({"status": "ready"})).await;
    proxy.cut();
    // Still ready while it has leased units to sell, saying why it is not
    // whole: a load balancer keeps sending it the buyers those units are for.
    let degraded = serde_json::json!({"status": "ready", "degraded": "redis_unreachable"});
    wait_readyz(&node, 200, degraded).await;
    // What the node leased, it sells without Redis.
    assert_eq!(buy_all(&node, sale_id, buyers(1, 19)).await, 19);
    // Then: 503 with Retry-After, not SOLD_OUT (80 units are in Redis).
    let mut client = Client::connect(node.addr).await;
    let reply = client
        .order(&buyer_token("o_late"), "key-late", sale_id, 1)
        .await;
    assert_error(&reply, 503, "OVERLOADED");
    assert!(
        reply.header("retry-after").is_some(),
        "503 without Retry-After"
    );
    // Host actions need Redis: 503, and nothing changed.
    let paused = host.sale_action(sale_id, "pause").await;
    assert_error(&paused, 503, "OVERLOADED");
    // Stats still answer, saying why the cluster part is missing.
    let stats = host.stats(sale_id).await;
    assert_eq!(stats["items"][0]["reserved"], 20, "{stats}");
    assert!(stats["cluster"]["redis_error"].is_string(), "{stats}");
    let deadline = Instant::now() + WAIT;
    while metric(&node, "flashgate_cluster_redis_up").await != 0.0 {
        assert!(Instant::now() < deadline, "redis_up never went to 0");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its lease spent, the node can only answer 503: not ready, and why.
    let (status, body) = readyz(&node).await;
    assert_eq!(
        (status, &body["status"]),
        (503, &"redis_unreachable".into())
    );
    let unready = "flashgate_unready{reason=\"redis_unreachable\"}";
    assert_eq!(metric(&node, unready).await, 1.0);

    // Redis back: the node reconnects and sells again.
    proxy.restore();
    order_once_redis_is_back(&mut client, "o_late", "key-late", sale_id).await;
    assert_eq!(metric(&node, "flashgate_cluster_redis_up").await, 1.0);
    // Ready again, with nothing to say.
    wait_readyz(&node, 200, serde_json::json!({"status": "ready"})).await;
    assert_eq!(metric(&node, unready).await, 0.0);
    let (held, sold) = held_and_sold(&node, sale_id).await;
    assert_eq!(sold, 21);
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    let global = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
    assert_eq!(
        leased["n1"], held,
        "Redis and the journal agree on the lease"
    );
    assert_eq!(global[SKU] + held, STOCK);
    // The units sold while Redis was away (limits checked on this node,
    // `limits_without_redis = "local"`) are counted in Redis now.
    for buyer in buyers(0, 20).chain(["o_late".to_owned()]) {
        wait_count(&mut redis, sale_id, &buyer, 1);
    }
}

/// Runs `flashgate cluster leases` with `[cluster]` from the environment.
fn cluster_command(cluster: &[(&str, String)]) -> std::process::Output {
    let mut command = Command::new(BINARY);
    command.args(["cluster", "leases"]);
    for (name, _) in std::env::vars() {
        if name.starts_with("FLASHGATE__") {
            command.env_remove(name);
        }
    }
    command.env("FLASHGATE__CLUSTER__NODE_ID", "cli");
    for (key, value) in cluster {
        command.env(format!("FLASHGATE__CLUSTER__{key}"), value);
    }
    command.output().expect("run flashgate cluster leases")
}

#[test]
fn the_cluster_command_refuses_without_a_cluster_and_fails_fast_without_redis() {
    let mut command = Command::new(BINARY);
    command.args(["cluster", "leases"]);
    for (name, _) in std::env::vars() {
        if name.starts_with("FLASHGATE__") {
            command.env_remove(name);
        }
    }
    let alone = command.output().expect("run flashgate cluster leases");
    assert_eq!(alone.status.code(), Some(2), "{alone:?}");
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("redis_url"),
        "{alone:?}"
    );
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let unreachable = cluster_command(&[
        ("REDIS_URL", nowhere.clone()),
        ("REDIS_TIMEOUT_MS", "300".to_owned()),
    ]);
    assert_eq!(unreachable.status.code(), Some(3), "{unreachable:?}");
    assert!(
        String::from_utf8_lossy(&unreachable.stderr).contains(&nowhere),
        "{unreachable:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_gives_back_what_the_node_did_not_sell() {
    const STOCK: i64 = 50;
    let mut redis = RedisPrefix::new("cluster-shutdown");
    let scratch = Scratch::new("cluster-shutdown");
    let mut node = Node::start(&scratch, "n1", &redis.prefix).await;
    let sale_id = "cluster-shutdown";
    Client::connect(node.addr)
        .await
        .live_sale(sale_id, STOCK, 1)
        .await;
    let buyers = (0..3).map(|i| format!("o_b{i}"));
    assert_eq!(buy_all(&node, sale_id, buyers).await, 3);
    let deadline = Instant::now() + WAIT;
    while held_and_sold(&node, sale_id).await.0 <= 3 {
        assert!(Instant::now() < deadline, "no lease beyond the sold units");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.stop().await;
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    let global = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
    assert_eq!(leased["n1"], 3, "only the sold units stay leased");
    assert_eq!(global[SKU], STOCK - 3);
    // Restarted, it replays the return: a journal holding more than Redis
    // records would stop the start-up. Then it leases again and agrees.
    let node = Node::start(&scratch, "n1", &redis.prefix).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (held, sold) = held_and_sold(&node, sale_id).await;
        assert_eq!(sold, 3);
        let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
        let global = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
        if leased["n1"] == held && global[SKU] + held == STOCK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never settled: {leased:?} {global:?} {held}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restock_on_one_node_is_sold_by_every_node() {
    const STOCK: i64 = 12;
    let mut redis = RedisPrefix::new("cluster-restock");
    let scratch = Scratch::new("cluster-restock");
    let n1 = Node::start(&scratch, "n1", &redis.prefix).await;
    let n2 = Node::start(&scratch, "n2", &redis.prefix).await;
    let sale_id = "cluster-restock";
    let mut host = Client::connect(n1.addr).await;
    host.live_sale(sale_id, STOCK, 1).await;
    wait_live(&n2, sale_id).await;
    let buyers = |from: usize, count: usize| (from..from + count).map(|i| format!("o_b{i}"));
    let sold =
        buy_all(&n1, sale_id, buyers(0, 10)).await + buy_all(&n2, sale_id, buyers(100, 10)).await;
    assert_eq!(sold, STOCK, "sold out first");
    // Restocked through n2; n1 sells some of it too.
    let restocked = Client::connect(n2.addr)
        .await
        .post_json(
            &format!("/admin/v1/sales/{sale_id}/items/{SKU}/restock"),
            HOST_TOKEN,
            &serde_json::json!({"add": 8}),
        )
        .await
        .expect_json(200);
    assert_eq!(restocked["cluster"]["node_id"], "n2", "{restocked}");
    // A node that has not heard of the restock yet still answers SOLD_OUT
    // (what it last read); pub/sub tells it within milliseconds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The units land in either node's lease: buy on both until both say
    // SOLD_OUT.
    let sold_after = buy_all(&n1, sale_id, buyers(200, 5)).await
        + buy_all(&n2, sale_id, buyers(300, 10)).await
        + buy_all(&n1, sale_id, buyers(400, 10)).await;
    assert_eq!(sold_after, 8, "every restocked unit sold, none more");
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    let global = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
    assert_eq!(global[SKU] + leased.values().sum::<i64>(), STOCK + 8);
    // Beyond the limit, or once ended: refused, nothing changed.
    let mut client = Client::connect(n1.addr).await;
    let path = format!("/admin/v1/sales/{sale_id}/items/{SKU}/restock");
    let too_much = client
        .post_json(&path, HOST_TOKEN, &serde_json::json!({"add": 10_000_000}))
        .await;
    assert_error(&too_much, 400, "INVALID_REQUEST");
    client.sale_action(sale_id, "end").await.expect_json(200);
    let ended = client
        .post_json(&path, HOST_TOKEN, &serde_json::json!({"add": 1}))
        .await;
    assert_error(&ended, 409, "INVALID_STATE");
    let after = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    assert_eq!(after[SKU] + leased.values().sum::<i64>(), STOCK + 8);
}

/// Runs `flashgate cluster reclaim --node ID --data-dir DIR`.
fn reclaim_command(
    prefix: &str,
    node_id: &str,
    data_dir: &std::path::Path,
) -> std::process::Output {
    let mut command = Command::new(BINARY);
    command
        .args(["cluster", "reclaim", "--node", node_id, "--data-dir"])
        .arg(data_dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("FLASHGATE__") {
            command.env_remove(name);
        }
    }
    command
        .env("FLASHGATE__CLUSTER__REDIS_URL", REDIS_URL)
        .env("FLASHGATE__CLUSTER__KEY_PREFIX", prefix)
        .env("FLASHGATE__LOG__LEVEL", "warn")
        .output()
        .expect("run flashgate cluster reclaim")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaim_gives_back_a_dead_nodes_unsold_lease_and_refuses_a_running_node() {
    const STOCK: i64 = 40;
    let mut redis = RedisPrefix::new("cluster-reclaim");
    let scratch = Scratch::new("cluster-reclaim");
    let n1 = Node::start(&scratch, "n1", &redis.prefix).await;
    let mut n2 = Node::start(&scratch, "n2", &redis.prefix).await;
    let sale_id = "cluster-reclaim";
    Client::connect(n1.addr)
        .await
        .live_sale(sale_id, STOCK, 1)
        .await;
    wait_live(&n2, sale_id).await;
    let buyers = |from: usize, count: usize| (from..from + count).map(|i| format!("o_b{i}"));
    assert_eq!(buy_all(&n2, sale_id, buyers(0, 4)).await, 4);
    let deadline = Instant::now() + WAIT;
    let held = loop {
        let (held, _) = held_and_sold(&n2, sale_id).await;
        let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
        if held > 4 && leased.get("n2") == Some(&held) {
            break held;
        }
        assert!(Instant::now() < deadline, "n2's lease never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // A running node's data dir is locked: refused, nothing changed.
    let running = reclaim_command(&redis.prefix, "n2", &scratch.0.join("n2"));
    assert_eq!(running.status.code(), Some(1), "{running:?}");
    assert!(
        String::from_utf8_lossy(&running.stderr).contains("is locked"),
        "{running:?}"
    );
    assert_eq!(
        redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"))["n2"],
        held
    );

    n2.kill_9();
    let reclaimed = reclaim_command(&redis.prefix, "n2", &scratch.0.join("n2"));
    assert!(reclaimed.status.success(), "{reclaimed:?}");
    let text = String::from_utf8_lossy(&reclaimed.stdout).into_owned();
    assert!(
        text.contains(&format!("node n2: {} units given back", held - 4)),
        "{text}"
    );
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    let global = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
    assert_eq!(leased["n2"], 4, "n2 keeps only what it sold");
    assert_eq!(global[SKU] + leased.values().sum::<i64>(), STOCK);
    // The others can sell the rest now: everything but n2's 4.
    let sold = buy_all(&n1, sale_id, buyers(100, STOCK as usize)).await;
    assert_eq!(sold, STOCK - 4);

    // n2 restarts on its journal, returns included, and agrees with Redis.
    let n2 = Node::start(&scratch, "n2", &redis.prefix).await;
    let (held, sold) = held_and_sold(&n2, sale_id).await;
    assert_eq!((held, sold), (4, 4));
}

/// One buyer's order with its own key on `client`, retried while the node
/// answers 503 (its refill not there yet): the final status and body.
async fn try_order(client: &mut Client, buyer: &str, key: &str, sale_id: &str) -> Reply {
    let token = buyer_token(buyer);
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = client.order(&token, key, sale_id, 1).await;
        if reply.status != 503 || Instant::now() >= deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls Redis until the buyer's count of the item is `expected`.
fn wait_count(redis: &mut RedisPrefix, sale_id: &str, buyer: &str, expected: i64) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let counts = redis.hash(&format!("sale:{{{sale_id}}}:bought:{SKU}"));
        let held = counts.get(buyer).copied().unwrap_or(0);
        if held == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{buyer}'s count in Redis stayed {held}, expected {expected}: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_buyer_hitting_all_three_nodes_at_once_gets_exactly_the_limit() {
    const LIMIT: u32 = 2;
    const ATTEMPTS_PER_NODE: usize = 5;
    let mut redis = RedisPrefix::new("cluster-limit");
    let scratch = Scratch::new("cluster-limit");
    let mut nodes = Vec::new();
    for node_id in ["n1", "n2", "n3"] {
        nodes.push(Node::start(&scratch, node_id, &redis.prefix).await);
    }
    let sale_id = "cluster-limit";
    Client::connect(nodes[0].addr)
        .await
        .live_sale(sale_id, 100, LIMIT)
        .await;
    for node in &nodes {
        wait_live(node, sale_id).await;
    }

    // 15 concurrent orders of one buyer, five on each node, each its own key.
    let made = one_buyer_everywhere(&nodes, sale_id, ATTEMPTS_PER_NODE).await;
    assert_eq!(
        made.len(),
        LIMIT as usize,
        "exactly the limit across nodes: {made:?}"
    );
    wait_count(&mut redis, sale_id, "whale", 2);
    let refused: f64 = {
        let mut sum = 0.0;
        for node in &nodes {
            sum += metric(node, "flashgate_reservations_total{outcome=\"limit\"}").await;
        }
        sum
    };
    assert_eq!(refused, (3 * ATTEMPTS_PER_NODE - 2) as f64);

    // A retry of a made order's key on its node is a replay, not a refusal.
    let (index, key, order_id) = made[0].clone();
    let mut client = Client::connect(nodes[index].addr).await;
    let replay = client.order(&buyer_token("whale"), &key, sale_id, 1).await;
    assert_eq!(replay.expect_json(200)["order_id"], order_id);
    wait_count(&mut redis, sale_id, "whale", 2);

    // A cancel gives the unit back across the nodes: another node sells
    // the buyer one more, then refuses the next.
    let order_id = order_id.as_str().expect("an order id").to_owned();
    let cancelled = client
        .post_empty(
            &format!("/v1/orders/{order_id}/cancel"),
            &buyer_token("whale"),
        )
        .await;
    cancelled.expect_json(200);
    wait_count(&mut redis, sale_id, "whale", 1);
    let elsewhere = (index + 1) % nodes.len();
    let mut other = Client::connect(nodes[elsewhere].addr).await;
    let again = try_order(&mut other, "whale", "whale-again", sale_id).await;
    again.expect_json(201);
    let over = try_order(&mut other, "whale", "whale-over", sale_id).await;
    assert_error(&over, 409, "LIMIT_EXCEEDED");
    wait_count(&mut redis, sale_id, "whale", 2);
    // Another buyer is not affected.
    let minnow = try_order(&mut other, "minnow", "minnow-1", sale_id).await;
    minnow.expect_json(201);
    assert!(
        metric(
            &nodes[elsewhere],
            "flashgate_cluster_redis_calls_total{op=\"limit\"}"
        )
        .await
            >= 3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_limits_without_redis_refuse_a_node_sells_nothing_while_redis_is_away() {
    let redis = RedisPrefix::new("cluster-refuse");
    let scratch = Scratch::new("cluster-refuse");
    let proxy = RedisProxy::start().await;
    let settings = [
        ("REDIS_URL", proxy.url()),
        ("LIMITS_WITHOUT_REDIS", "refuse".to_owned()),
        ("REDIS_TIMEOUT_MS", "300".to_owned()),
    ];
    let node = Node::start_with(&scratch, "n1", &redis.prefix, &settings).await;
    let sale_id = "cluster-refuse";
    Client::connect(node.addr)
        .await
        .live_sale(sale_id, 50, 1)
        .await;
    let mut client = Client::connect(node.addr).await;
    try_order(&mut client, "r_b0", "k", sale_id)
        .await
        .expect_json(201);

    proxy.cut();
    // The lease has units, but no buyer's limit can be checked: 503.
    let reply = client.order(&buyer_token("r_b1"), "k", sale_id, 1).await;
    let message = assert_error(&reply, 503, "OVERLOADED");
    assert!(message.contains("buyer limits"), "{message}");
    assert!(reply.header("retry-after").is_some());
    // It sells nothing now, lease or not: out of rotation, saying why.
    let unready = serde_json::json!({"status": "redis_unreachable"});
    wait_readyz(&node, 503, unready).await;

    proxy.restore();
    order_once_redis_is_back(&mut client, "r_b1", "k", sale_id).await;
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarts_while_redis_is_away_sells_what_its_journal_holds_then_reconciles() {
    const STOCK: i64 = 100;
    let mut redis = RedisPrefix::new("cluster-cold");
    let scratch = Scratch::new("cluster-cold");
    let proxy = RedisProxy::start().await;
    let settings = [
        ("REDIS_URL", proxy.url()),
        ("LEASE_BLOCK_UNITS", "20".to_owned()),
        ("LEASE_LOW_WATERMARK_UNITS", "5".to_owned()),
        ("REDIS_TIMEOUT_MS", "300".to_owned()),
    ];
    let sale_id = "cluster-cold";
    let buyers = |from: usize, count: usize| (from..from + count).map(|i| format!("c_b{i}"));

    // A node's very first start needs Redis: without it, a clear refusal.
    proxy.cut();
    let mut refused = Node::spawn(&scratch, "n1", &redis.prefix, &settings, &[]);
    let status = refused.wait_exit(WAIT).await;
    assert!(
        status.is_some_and(|status| !status.success()),
        "started without Redis and without a kept tag: {status:?}"
    );
    let stderr = refused.stderr();
    assert!(
        stderr.contains("a node's first start needs Redis"),
        "{stderr}"
    );
    drop(refused);
    proxy.restore();

    let mut node = Node::start_with(&scratch, "n1", &redis.prefix, &settings).await;
    Client::connect(node.addr)
        .await
        .live_sale(sale_id, STOCK, 1)
        .await;
    assert_eq!(buy_all(&node, sale_id, buyers(0, 1)).await, 1);
    wait_held(&node, sale_id, 20).await;
    // Killed holding a lease of 20 (1 sold); restarted while Redis is away.
    node.kill_9();
    proxy.cut();
    let node = Node::start_with(&scratch, "n1", &redis.prefix, &settings).await;
    let mut client = Client::connect(node.addr).await;
    let ready = client.get_anonymous("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["degraded"], "redis_unreachable");
    assert_eq!(held_and_sold(&node, sale_id).await, (20, 1));
    // Meanwhile Redis records 7 more for n1 than its journal (a grant
    // whose record a crash lost), made by hand: the reconcile owes them back.
    redis.forge_lease(sale_id, "n1", 7);
    // Its journal's lease sells without Redis; then 503.
    assert_eq!(buy_all(&node, sale_id, buyers(1, 19)).await, 19);
    let reply = client.order(&buyer_token("c_late"), "k", sale_id, 1).await;
    assert_error(&reply, 503, "OVERLOADED");

    // Redis back: reconciled (Redis and the journal agree), then it leases.
    proxy.restore();
    order_once_redis_is_back(&mut client, "c_late", "k", sale_id).await;
    let (held, sold) = held_and_sold(&node, sale_id).await;
    assert_eq!(sold, 21);
    let leased = redis.hash(&format!("sale:{{{sale_id}}}:leased:{SKU}"));
    let global = redis.hash(&format!("sale:{{{sale_id}}}:stock"));
    assert_eq!(
        leased["n1"], held,
        "reconciled: the 7 Redis recorded beyond the journal went back"
    );
    assert_eq!(global[SKU] + held, STOCK);
}

/// A hash of a Redis Cluster, read through a cluster connection.
fn cluster_hash(
    connection: &mut redis::cluster::ClusterConnection,
    key: &str,
) -> HashMap<String, i64> {
    redis::cmd("HGETALL")
        .arg(key)
        .query(connection)
        .expect("HGETALL on the Redis Cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_a_redis_cluster_sell_one_sale_exactly() {
    const STOCK: i64 = 60;
    const LIMIT: u32 = 2;
    const BUYERS: usize = 120;
    const CONNECTIONS_PER_NODE: usize = 3;
    const WHALE_ATTEMPTS_PER_NODE: usize = 3;
    let cluster = redis_cluster::RedisCluster::start(3);
    let prefix = "fg-rc";
    let scratch = Scratch::new("cluster-redis-cluster");
    let mode = ("REDIS_MODE", "cluster".to_owned());
    // n1 and n3 name every seed; n2 one (the client learns the rest).
    let all_seeds = [("REDIS_URL", cluster.seeds()), mode.clone()];
    let one_seed = [("REDIS_URL", cluster.urls()[1].clone()), mode.clone()];
    let nodes = [
        Node::start_with(&scratch, "n1", prefix, &all_seeds).await,
        Node::start_with(&scratch, "n2", prefix, &one_seed).await,
        Node::start_with(&scratch, "n3", prefix, &all_seeds).await,
    ];
    let sale_id = "rc-sale";
    let mut host = Client::connect(nodes[0].addr).await;
    host.create_sale(&sale_body(sale_id, STOCK, LIMIT))
        .await
        .expect_json(201);
    let duplicate = Client::connect(nodes[1].addr)
        .await
        .create_sale(&sale_body(sale_id, 7, 1))
        .await;
    assert_eq!(duplicate.status, 409, "{}", duplicate.text());

    // Host actions on any node reach every node.
    Client::connect(nodes[1].addr)
        .await
        .start_sale(sale_id)
        .await
        .expect_json(200);
    for node in &nodes {
        wait_live(node, sale_id).await;
    }
    Client::connect(nodes[2].addr)
        .await
        .sale_action(sale_id, "pause")
        .await
        .expect_json(200);
    for node in &nodes {
        time_until(node, sale_id, "paused").await;
    }
    host.start_sale(sale_id).await.expect_json(200);
    for node in &nodes {
        wait_live(node, sale_id).await;
    }

    // One buyer on all three nodes at once gets exactly the limit.
    let whale: Vec<usize> = one_buyer_everywhere(&nodes, sale_id, WHALE_ATTEMPTS_PER_NODE)
        .await
        .into_iter()
        .map(|(index, _, _)| index)
        .collect();
    assert_eq!(whale.len(), LIMIT as usize, "the limit across nodes");

    // A burst of distinct buyers over the three nodes sells the rest.
    let sold = burst(&nodes, sale_id, "rc_buyer", BUYERS, CONNECTIONS_PER_NODE).await;
    let mut sold_per_node = [0i64; 3];
    for index in whale {
        sold_per_node[index] += 1;
    }
    for (node_index, _, _) in &sold {
        sold_per_node[*node_index] += 1;
    }
    assert_eq!(
        sold_per_node.iter().sum::<i64>(),
        STOCK,
        "201s over the three nodes: {sold_per_node:?}"
    );

    // Redis accounts for every unit: nothing left, every lease is what
    // the node's journal holds, and no node sold more than it leased.
    let client = redis::cluster::ClusterClient::new(cluster.urls()).expect("a cluster client");
    let mut connection = client.get_connection().expect("a cluster connection");
    let key = |rest: &str| format!("{prefix}:sale:{{{sale_id}}}:{rest}");
    let global = cluster_hash(&mut connection, &key("stock"));
    let leased = cluster_hash(&mut connection, &key(&format!("leased:{SKU}")));
    assert_eq!(global[SKU], 0, "{global:?}");
    assert_eq!(leased.values().sum::<i64>(), STOCK, "{leased:?}");
    for (node_index, node) in nodes.iter().enumerate() {
        let node_id = format!("n{}", node_index + 1);
        let stats: Value = Client::connect(node.addr).await.stats(sale_id).await;
        let item = &stats["items"][0];
        let (held, reserved) = (
            item["stock"].as_i64().unwrap(),
            item["reserved"].as_i64().unwrap(),
        );
        assert_eq!(reserved, sold_per_node[node_index], "{node_id}: {stats}");
        assert_eq!(
            leased.get(&node_id).copied().unwrap_or(0),
            held,
            "{node_id}"
        );
    }
    let bought = cluster_hash(&mut connection, &key(&format!("bought:{SKU}")));
    assert_eq!(bought["whale"], i64::from(LIMIT), "{bought:?}");

    // The layout: every key of the sale in one slot, on one master; the
    // node-wide keys in one slot; the prefix finds all of them.
    let sale_keys = cluster.keys(&format!("{prefix}:sale:{{{sale_id}}}:*"));
    assert!(
        sale_keys.len() >= 6,
        "spec, state, stock, leased, bought, grants: {sale_keys:?}"
    );
    let slot = cluster.key_slot(sale_id);
    for sale_key in &sale_keys {
        assert_eq!(cluster.key_slot(sale_key), slot, "{sale_key}");
    }
    let holders: Vec<usize> = (0..3)
        .filter(|&index| {
            !cluster
                .keys_on(index, &format!("{prefix}:sale:{{{sale_id}}}:*"))
                .is_empty()
        })
        .collect();
    assert_eq!(
        holders.len(),
        1,
        "the sale's keys on one master: {holders:?}"
    );
    let nodes_key = format!("{prefix}:{{nodes}}");
    assert_eq!(
        cluster.key_slot(&nodes_key),
        cluster.key_slot(&format!("{prefix}:{{nodes}}:tag_seq"))
    );
    assert_eq!(cluster_hash(&mut connection, &nodes_key).len(), 3);
    let every_key = cluster.keys(&format!("{prefix}:*"));
    assert!(
        every_key.contains(&format!("{prefix}:sales")),
        "{every_key:?}"
    );
    assert!(every_key.contains(&nodes_key), "{every_key:?}");

    // `flashgate cluster leases` reads the Redis Cluster too.
    let report = cluster_command(&[
        ("REDIS_URL", cluster.seeds()),
        mode,
        ("KEY_PREFIX", prefix.to_owned()),
    ]);
    assert!(report.status.success(), "{report:?}");
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(text.contains(&format!("sale {sale_id} (live)")), "{text}");
    assert!(
        text.contains(&format!("{SKU}: global remaining 0, leased {STOCK}")),
        "{text}"
    );
}
