//! # otpsim
//!
//! Erlang/OTP supervision for Rust, and a deterministic simulation harness that proves a
//! supervision tree recovers.
//!
//! The layers point down: `sim` → [`supervisor`] → `server` → [`process`] → [`trace`] / [`rt`] /
//! [`term`].
//! The same code runs natively on tokio and, built with `--cfg madsim` (plain `cargo test`),
//! inside the madsim simulator, where a seed fixes every choice.

#![warn(missing_docs)]

pub mod process;
pub mod registry;
pub mod rt;
pub mod server;
pub mod sim;
pub mod supervisor;
pub mod term;
pub mod trace;

pub use process::{ExitReason, Msg, Node, NodeConfig, Process};
pub use term::{Pid, Ref, Term};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
