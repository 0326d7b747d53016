//! Distributed libraries built on the runtime's distribution: a name registry and a dynamic
//! supervisor spread over a cluster.
//!
//! * [`handoff`]: the contract of a worker that moves between nodes with its state, which
//!   Swarm's model and other distributed supervisors drive alike.
//! * [`swarm`]: Elixir's Swarm and `Swarm.DynamicSupervisor` as they are, failures included,
//!   so that the harness shows where they fail (docs/cluster-invariants.md).
//! * [`groups`]: process groups across the cluster, as Erlang's `pg`: each node owns its
//!   members, the views split with the network and merge when it heals.
//! * `cp` (feature `cp`): the design that keeps what Swarm breaks, on Raft (docs/cp.md).
//!
//! Both record what they do with names as [`DistEvent`](crate::trace::DistEvent)s, which the
//! cluster invariants (`sim::cluster_invariants`) read.

#[cfg(feature = "cp")]
pub mod cp;
pub mod groups;
pub mod handoff;
mod recorded;
pub mod swarm;

pub use groups::Groups;
