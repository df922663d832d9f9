//! Several gateway nodes selling one sale through Redis stock leases.
//!
//! The global stock of each item lives in Redis; a node sells only units it
//! has leased, from its own lock-free shards, so an order never waits on
//! Redis for stock in the common case (its buyer's limit is one call, see
//! [`limits`]). The protocol, per item:
//!
//! 1. **Register.** The node that takes a sale's create writes its spec,
//!    state `scheduled` and global stock to Redis once (`register_sale`,
//!    Lua, refused if the sale exists), then journals `sale_created`
//!    locally with a local stock of zero. Other nodes learn the sale by
//!    polling the registry and journal the same `sale_created`.
//! 2. **Lease.** While the sale is live and an item's local remaining is
//!    under `lease_low_watermark_units`, the node's refill task runs the
//!    `lease` script: atomically `take = min(block, remaining)`, moved from
//!    the global stock to the node's entry of the item's `leased` hash and
//!    recorded under the lease id, so a retried lease takes nothing twice.
//!    The node journals `lease_granted` *before* the units reach its shards
//!    (as a restock is journaled): a reservation that takes them is queued,
//!    and made durable, after the grant.
//! 3. **Return.** Units go back by taking them out of the shards first
//!    (nobody can reserve them any more), journaling `lease_returned`, and
//!    only then running the `return` script, keyed by the return id so a
//!    retried return adds nothing twice.
//! 4. **Restart.** Replay rebuilds exactly what the node holds: the grants
//!    minus the returns. Redis may say the node holds more: a lease whose
//!    grant never reached the journal (a crash between the two), or a
//!    return journaled but not applied. That gap was never sold, so it is
//!    returned at start-up (`reconcile`). Redis saying *less* than the
//!    journal would be an oversell risk and stops the start-up.
//! 5. **Life cycle.** A host action runs the `transition` script (the same
//!    table as `sale::lifecycle`) on the shared state, then the node moves
//!    its own sale to that state. The script publishes the sale id on the
//!    events channel: other nodes poll at once (the poll interval is the
//!    fallback for a message lost while a subscriber reconnects).
//!
//! 6. **Per-user limits.** A new order counts its units for the buyer in
//!    Redis before it reserves ([`limits`]), so the limit holds across the
//!    nodes; releases give them back.
//!
//! A unit of a dead node's lease never comes back on a TTL: it may be sold
//! and acknowledged. It comes back when that node restarts and replays.
//! Key layout and scripts: [`registry`]. Redis is one server or a Redis
//! Cluster (`cluster.redis_mode`): every key of a sale is in one hash slot,
//! so no script or command spans two (see [`registry`], "Slots"). What is not clustered yet is listed
//! in docs/ARCHITECTURE.md, "Cluster".

pub mod limits;
pub mod lock;
pub mod node;
pub mod redis_link;
pub mod registry;

pub use limits::{LimitRefusal, LimitTicket};
pub use node::{ClusterError, ClusterNode};
pub use redis_link::{RedisFailure, RedisLink};
pub use registry::{Granted, Registry, Restocked, Transitioned};

#[cfg(test)]
pub(crate) mod test_redis;
#[cfg(test)]
pub(crate) mod test_redis_cluster;
#[cfg(test)]
mod tests;
