//! The distributed supervisor users should run (feature `cp`): ownership of names agreed
//! through consensus, so that a name has at most one live instance whatever the network does,
//! and a minority side of a partition stops instead of diverging (docs/cp.md).
//!
//! * [`consensus`]: a Raft group (TiKV's raft-rs) in a process per node, its log on the
//!   node's disk, replicating a state machine.
//! * [`control`]: what the supervisor replicates: the shard table and the desired children.
//! * [`handoff`]: a planned move of a shard, its children handed over with their state.
//! * [`lease`]: a node's lease on the shards it owns, and the commit of a lapsed node down.
//! * [`names`]: the cluster registry's table, replicated with the rest.
//! * [`supervisor`]: the distributed supervisor: `start_child` by name from any node, each
//!   child run by its shard's owner and restarted there.

pub mod consensus;
pub mod control;
pub mod handoff;
pub mod lease;
mod log;
pub mod names;
pub mod supervisor;

pub use log::CorruptLog;
