//! The systems our users start from: classic supervision designs, each runnable natively
//! (`cargo run-native --example NAME`) and, as a harness [`Target`](crate::sim::harness::Target)
//! with its own application invariants, fuzzed in simulation (`otpsim fuzz --target NAME`).
//!
//! Each module's documentation draws its tree and explains the choices that make it
//! recover, and the flaw of the obvious alternative where there is one.
//!
//! * [`kv`]: a key-value store whose registry monitors buckets under a DynamicSupervisor.
//! * [`connections`]: a network connection that reconnects with backoff, supervised three
//!   ways: linked to its owner, with its dependents, and on demand.
//! * [`pipeline`]: source, transformer and sink under rest_for_one, each item delivered once.
//! * [`tickets`]: a support desk (tickets restarted with their last state, a queue rebuilt
//!   from the store, notifications under a TaskSupervisor) and a chat room over a registry.
//! * [`swarm`] (feature `harness`): seed 003, workers spread over a cluster by Elixir's Swarm,
//!   as a cluster target whose failures are Swarm's own.
//! * `cp` (features `harness` and `cp`): seed 003 on the CP distributed supervisor, the
//!   `swarm` target's workload and faults on the design that keeps what Swarm breaks; and
//!   `ap`, the same in AP mode (Swarm's semantics, without its failures).
//! * [`todo`](mod@todo): a to-do service: a database pool under via names, to-do servers started on
//!   demand by a find-or-start cache, every change stored before it is acknowledged.

pub mod connections;
#[cfg(all(feature = "harness", feature = "cp"))]
pub mod cp;
pub mod kv;
pub mod pipeline;
#[cfg(feature = "harness")]
pub mod swarm;
pub mod tickets;
pub mod todo;
