//! # otpsim
//!
//! Erlang/OTP supervision for Rust, and a deterministic simulation harness that proves a
//! supervision tree recovers.
//!
//! The layers point down: [`systems`] → `sim` → [`supervisor`] → `server` → [`process`] →
//! [`trace`] / [`rt`] / [`term`].
//! The same code runs natively on tokio and, built with `--cfg madsim` (plain `cargo test`),
//! inside the madsim simulator, where a seed fixes every choice.

#![warn(missing_docs)]

/// Checks an internal consistency condition of the runtime in debug builds (`cargo test`):
/// a broken one is a bug of otpsim, not of the process it happens in, so it is raised as
/// [`process::InternalError`], which the process's panic handling lets through and which
/// fails the run, instead of becoming that process's exit reason. Release builds skip it.
macro_rules! internal_check {
    ($cond:expr, $($arg:tt)+) => {
        if cfg!(debug_assertions) && !$cond {
            std::panic::panic_any($crate::process::InternalError(format!($($arg)+)));
        }
    };
}

pub mod cluster;
pub mod dist;
pub mod hash;
pub mod process;
pub mod registry;
pub mod rt;
pub mod server;
pub mod sim;
pub mod supervisor;
pub mod systems;
pub mod term;
pub mod trace;

pub use process::{Disk, ExitReason, Msg, Node, NodeConfig, Process};

/// Every built-in target of `otpsim fuzz` and `otpsim replay`: the random processes over a
/// cluster (`cluster-graph`), the generated supervision trees (`tree`), the
/// [example systems](systems), Swarm (`swarm`, [`systems::swarm`]), whose failures are
/// its known flaws, and, with the feature `cp` (on by default), the CP supervisor on Swarm's workload (`cp`), and the
/// same in AP mode (`ap`).
#[cfg(feature = "harness")]
pub fn targets() -> Vec<std::sync::Arc<dyn sim::harness::AnyTarget>> {
    use std::sync::Arc;
    vec![
        Arc::new(sim::cluster_graph::ClusterGraphTarget),
        Arc::new(sim::tree::Tree),
        Arc::new(systems::kv::KvTarget),
        Arc::new(systems::todo::TodoTarget),
        Arc::new(systems::connections::ConnectionsTarget),
        Arc::new(systems::pipeline::PipelineTarget),
        Arc::new(systems::tickets::TicketsTarget),
        Arc::new(sim::cluster_harness::AsTarget::new(
            systems::swarm::SwarmSystem,
        )),
        #[cfg(feature = "cp")]
        Arc::new(sim::cluster_harness::AsTarget::new(systems::cp::CpSystem)),
        #[cfg(feature = "cp")]
        Arc::new(sim::cluster_harness::AsTarget::new(systems::cp::ApSystem)),
    ]
}
pub use term::{Pid, Ref, Term};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
