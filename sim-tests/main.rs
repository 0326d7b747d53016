//! otpsim's integration tests: one binary, run by plain `cargo test` (simulated) and by
//! `cargo test-native`. Tests that need simulated time are `#[cfg(madsim)]`: natively they
//! would sleep on the wall clock.

mod build_mode;
mod cli;
#[cfg(madsim)]
mod cluster;
#[cfg(madsim)]
mod cluster_planted;
mod common;
mod conformance;
#[cfg(all(madsim, feature = "cp"))]
mod cp;
#[cfg(all(madsim, feature = "cp"))]
mod cp_registry;
mod determinism;
#[cfg(madsim)]
mod groups;
mod harness;
#[cfg(madsim)]
mod invariants;
#[cfg(madsim)]
mod pictures;
#[cfg(madsim)]
mod planted;
mod probes;
mod process_core;
mod registry;
#[cfg(madsim)]
mod registry_model;
mod server;
#[cfg(madsim)]
mod stops;
#[cfg(madsim)]
mod supervision_model;
mod supervisor;
#[cfg(madsim)]
mod swarm;
#[cfg(madsim)]
mod systems;
#[cfg(madsim)]
mod tcp;
#[cfg(not(madsim))]
mod tcp_native;
