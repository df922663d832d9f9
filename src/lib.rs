//! flashgate: an order gateway for livestream flash sales on WeChat.
//!
//! The module tree follows docs/ARCHITECTURE.md. The order path, top to
//! bottom: [`http`] (parse, authenticate, admit) → [`sale`] (the engine:
//! sale life cycle, order state machine, holds) → [`inventory`] (lock-free
//! stock shards, per-buyer limits, idempotency keys). Payments: [`pay`]
//! speaks WeChat Pay API v3 (and simulates it); [`payments`] runs the
//! gateway's side of it against the engine.

pub mod app;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod http;
pub mod ids;
pub mod inventory;
pub mod journal;
pub mod json;
pub mod metrics;
pub mod money;
pub mod pay;
pub mod payments;
pub mod sale;
pub mod sched;
pub mod shutdown;
pub mod store;
pub mod stripes;
