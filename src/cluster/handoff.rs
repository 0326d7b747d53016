//! The contract of a worker that a distributed supervisor moves between nodes with its state:
//! Swarm's `begin_handoff`, `end_handoff`, `resolve_conflict` and `die`, as one trait, so that
//! the same worker runs under Swarm's model ([`swarm::serve`](super::swarm::serve)) and under
//! any other supervisor that speaks it.
//!
//! ```
//! use otpsim::cluster::handoff::{Handoff, HandoffReply};
//! use otpsim::{Msg, Process, Term};
//!
//! /// Counts the `u32`s it is sent, and moves with its count.
//! struct Counter(i64);
//!
//! impl Handoff for Counter {
//!     fn begin_handoff(&mut self, _: &Process) -> HandoffReply {
//!         HandoffReply::Resume(Term::Int(self.0))
//!     }
//!     fn end_handoff(&mut self, _: &Process, state: Term) {
//!         if let Term::Int(n) = state {
//!             self.0 = n;
//!         }
//!     }
//!     fn resolve_conflict(&mut self, _: &Process, state: Term) {
//!         if let Term::Int(n) = state {
//!             self.0 += n;
//!         }
//!     }
//!     fn handle(&mut self, _: &Process, msg: Msg) {
//!         if msg.is::<u32>() {
//!             self.0 += 1;
//!         }
//!     }
//! }
//! let mut c = Counter(2);
//! # let _ = &mut c;
//! ```

use crate::process::{ExitReason, Msg, Process};
use crate::term::{Pid, Term};

/// A synchronous request to a worker run by the contract (a `GenServer.call` of Swarm's
/// `multi_call`): the worker answers `reply` with a [`CallReply`] that carries `tag`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Call {
    /// What is asked.
    pub request: Term,
    /// Who waits for the answer.
    pub reply: Pid,
    /// What the answer carries, to match it with this request.
    pub tag: u64,
}

/// A worker's answer to a [`Call`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallReply {
    /// The request's tag.
    pub tag: u64,
    /// The answer.
    pub reply: Term,
}

/// A worker's answer to `begin_handoff`.
#[derive(Clone, Debug, PartialEq)]
pub enum HandoffReply {
    /// Start afresh on the new owner.
    Restart,
    /// Move, with this state.
    Resume(Term),
    /// Stay here.
    Ignore,
}

/// A worker that moves between nodes with its state. Each method runs in the worker's own
/// process (`p`), between its messages.
pub trait Handoff: Send + 'static {
    /// Its name belongs to another node now: move with a state, start afresh there, or stay.
    fn begin_handoff(&mut self, p: &Process) -> HandoffReply;

    /// It started on the new owner: the state its predecessor handed over.
    fn end_handoff(&mut self, p: &Process, state: Term);

    /// Another instance of its name lost a conflict after a netsplit: the loser's state.
    fn resolve_conflict(&mut self, p: &Process, state: Term);

    /// Any other message.
    fn handle(&mut self, p: &Process, msg: Msg);

    /// A [`Call`]: the answer, or the reason to exit with. By default the worker exits with
    /// `{bad_call, request}`, as a GenServer without a matching `handle_call` clause crashes.
    fn handle_call(&mut self, p: &Process, request: Term) -> Result<Term, ExitReason> {
        let _ = p;
        Err(ExitReason::error(Term::tuple([
            Term::atom("bad_call"),
            request,
        ])))
    }

    /// Told to stop (its name went elsewhere): the reason it exits with (`shutdown`).
    fn die(&mut self, p: &Process) -> ExitReason {
        let _ = p;
        ExitReason::Shutdown
    }
}

/// A message for the worker other than its supervisor's: a [`Call`] goes to
/// [`Handoff::handle_call`] and is answered (or gives the reason the worker exits with), any
/// other message to [`Handoff::handle`]. What every supervisor's runner of the contract does
/// with the messages that are not its own.
pub fn handle_message<W: Handoff>(worker: &mut W, p: &Process, msg: Msg) -> Result<(), ExitReason> {
    match msg.downcast::<Call>() {
        Ok(Call {
            request,
            reply,
            tag,
        }) => {
            let answer = worker.handle_call(p, request)?;
            p.send(reply, CallReply { tag, reply: answer });
        }
        Err(msg) => worker.handle(p, msg),
    }
    Ok(())
}
