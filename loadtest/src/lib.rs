//! flashgate-loadtest: plays flash sales against a flashgate gateway and
//! measures it against a do-nothing HTTP endpoint driven with the same
//! request stream in the same run.
//!
//! The run, top to bottom: [`cli`] → [`plan`] (what to do, resolved) →
//! [`stream`] (every request built before timing) → [`scenario`] (rounds
//! in order against [`target`] and [`ceiling`], through [`client`]; sale
//! set-up, stats and read-back in [`admin`]; payments in [`pay`]) →
//! [`verify`] (pure checks) → [`report`] (table or JSON). `--cluster N`:
//! N more nodes ([`target::Cluster`]) take the same rounds, their Redis
//! calls counted by [`redis_calls`]; a gateway round's journal commits are
//! read from its `/metrics` by [`commits`].

pub mod admin;
pub mod ceiling;
pub mod cli;
pub mod client;
pub mod commits;
pub mod conventional;
pub mod cpu;
pub mod outcome;
pub mod pay;
pub mod plan;
pub mod redis_calls;
pub mod report;
pub mod scenario;
pub mod stream;
pub mod target;
pub mod verify;
