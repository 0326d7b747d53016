//! The distributed supervisor users should run (feature `cp`): ownership of names agreed
//! through consensus, so that a name has at most one live instance whatever the network does,
//! and a minority side of a partition stops instead of diverging (docs/cp.md).
//!
//! * [`consensus`]: a Raft group (TiKV's raft-rs) in a process per node, its log on the
//!   node's disk, replicating a state machine.

pub mod consensus;
mod log;

pub use log::CorruptLog;
