//! A planned move of a shard, with its children's state (docs/cp.md, "Handoff"): two
//! phases, each committed through the group, so that a name never runs on both nodes and its
//! state is delivered at most once.
//!
//! 1. The leader commits the move ([`Command::Move`](super::control::Command::Move)): the
//!    shard is in transit at the next epoch, still owned by its owner, which stops running it.
//! 2. The owner asks each of the shard's children for its state ([`Request::Begin`]); a
//!    child run by [`serve`] answers with [`Handoff::begin_handoff`] and stops. One that does
//!    not answer in time is killed. Once every child has stopped, the owner sends the target
//!    a [`Handover`] with the states, again at each reconciliation until the move is settled.
//! 3. The target keeps the states and commits the move
//!    ([`Command::Moved`](super::control::Command::Moved)); only then does it start the
//!    children, each given its state once ([`Request::End`], [`Handoff::end_handoff`]).
//!
//! A move that takes too long is aborted by the leader
//! ([`Command::Abort`](super::control::Command::Abort)): the owner runs the children again,
//! afresh. A move whose owner is lost completes without the state; one whose target is lost
//! is aborted. Either way the shard changes epoch, and a late handover is ignored.
//!
//! ```
//! use otpsim::cluster::cp::handoff;
//! use otpsim::cluster::handoff::{Handoff, HandoffReply};
//! use otpsim::{Msg, Process, Term};
//!
//! /// Counts what it is sent, and moves with its count.
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
//!     fn resolve_conflict(&mut self, _: &Process, _: Term) {}
//!     fn handle(&mut self, _: &Process, _: Msg) {
//!         self.0 += 1;
//!     }
//! }
//!
//! /// A child that moves with its count: registered on every node
//! /// (`node.register_start("counter", counter)`).
//! async fn counter(p: Process, _: Term) -> otpsim::ExitReason {
//!     handoff::serve(p, Counter(0)).await
//! }
//! # let _ = counter;
//! ```

use super::lease::{self, Lease};
use crate::cluster::handoff::{handle_message, Handoff, HandoffReply};
use crate::trace::{DistEvent, EventKind, HandoffPhase};
use crate::{ExitReason, Pid, Process, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a CP supervisor asks of a child it moves.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Its shard moves to another node: answer [`Begun`] to `reply`, with the state to move
    /// with, and stop.
    Begin {
        /// The supervisor.
        reply: Pid,
        /// The handoff's id.
        id: u64,
    },
    /// It started on its new owner: the state its predecessor handed over.
    End(Term),
    /// Another instance of its name lost a conflict to it (AP mode, after a partition):
    /// the loser's state.
    Resolve(Term),
}

/// The lease a child runs under, which its supervisor gives it when it asks ([`AskFence`], CP
/// mode): a child run by [`serve`] acts on no message once the lease has lapsed, and stops as
/// the enforcer would stop it (`{shutdown, lease_lost}`). A node paused past its lease may
/// resume its children before its enforcer; this keeps them from handling what waited in
/// their mailboxes meanwhile, fenced (docs/cp.md, "Leases").
#[derive(Clone, Debug)]
pub struct Fence(pub Lease);

/// What a child run by [`serve`] sends the process it is linked to as it starts (its
/// supervisor), which answers with a [`Fence`]. The supervisor sends nothing unasked: a child
/// that is a plain process gets no message it did not expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AskFence(pub Pid);

/// A child's answer to [`Request::Begin`]: the state it moves with (`None`: start afresh).
#[derive(Clone, Debug, PartialEq)]
pub struct Begun {
    /// The handoff's id.
    pub id: u64,
    /// The state.
    pub state: Option<Term>,
}

/// Runs `worker` as a child of a CP distributed supervisor, fenced by its node's lease
/// ([`Fence`]): it moves with the state
/// [`Handoff::begin_handoff`] gives (a CP shard has one owner, so `Ignore` starts it afresh
/// on the new owner, as `Restart` does), is given that state on the new owner
/// ([`Handoff::end_handoff`]); in AP mode, it gives the same state when it loses a conflict
/// and stops, and the winner is given it ([`Handoff::resolve_conflict`]). It handles every
/// other message as [`handle_message`] does.
pub async fn serve<W: Handoff>(p: Process, mut worker: W) -> ExitReason {
    let mut fence: Option<Lease> = None;
    if let Some(&supervisor) = p.links().first() {
        p.send(supervisor, AskFence(p.pid()));
    }
    loop {
        let msg = p.recv().await;
        let msg = match msg.downcast::<Fence>() {
            Ok(Fence(lease)) => {
                fence = Some(lease);
                continue;
            }
            Err(msg) => msg,
        };
        if fence.as_ref().is_some_and(|l| l.left(p.now()).is_zero()) {
            return lease::lease_lost();
        }
        match msg.downcast::<Request>() {
            Ok(Request::Begin { reply, id }) => {
                let state = match worker.begin_handoff(&p) {
                    HandoffReply::Resume(state) => Some(state),
                    HandoffReply::Restart | HandoffReply::Ignore => None,
                };
                p.send(reply, Begun { id, state });
                return worker.die(&p);
            }
            Ok(Request::End(state)) => worker.end_handoff(&p, state),
            Ok(Request::Resolve(state)) => worker.resolve_conflict(&p, state),
            Err(msg) => {
                if let Err(reason) = handle_message(&mut worker, &p, msg) {
                    return reason;
                }
            }
        }
    }
}

/// A child stopped for a move.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Handed {
    /// Its shard.
    pub shard: u16,
    /// Its name.
    pub name: String,
    /// The handoff's id.
    pub id: u64,
    /// The state it moves with, if any.
    pub state: Option<Term>,
    /// Whether it stopped as asked (or as its owner's lease lapsed): started again on the
    /// target without counting a restart. One that crashed or was killed meanwhile is a
    /// crash, restarted only if the group grants it.
    pub clean: bool,
}

/// What an owner sends the target of its moves: each shard with the epoch of its move, and
/// the children it stopped for them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    /// The moves.
    pub moves: Vec<(u16, u64)>,
    /// The children stopped.
    pub children: Vec<Handed>,
}

/// A child asked to hand over.
#[derive(Debug)]
pub(super) struct Asked {
    shard: u16,
    name: String,
    id: u64,
    /// Its answer, once it came.
    state: Option<Option<Term>>,
}

/// An owner's side of one shard's move.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// The target.
    pub to: u16,
    /// The epoch of the move.
    pub epoch: u64,
    /// The children not stopped yet.
    asked: BTreeMap<Pid, Asked>,
    /// The children stopped.
    pub handed: Vec<Handed>,
    /// Whether a handover went to the target.
    sent: bool,
    /// The move is no longer in transit (completed or aborted): kept only until the
    /// children asked have stopped.
    settled: bool,
}

fn record(p: &Process, id: u64, name: &str, phase: HandoffPhase) {
    let name = name.to_string();
    p.node()
        .record(EventKind::Dist(DistEvent::Handoff { id, name, phase }));
}

/// Records that a handoff ended without delivering its state.
pub(super) fn aborted(p: &Process, id: u64, name: &str, why: &str) {
    let why = why.to_string();
    record(p, id, name, HandoffPhase::Aborted { why });
}

/// Records that a handoff's state reached `pid`, and gives it.
pub(super) fn deliver(p: &Process, id: u64, name: &str, pid: Pid, state: Term) {
    p.send(pid, Request::End(state));
    record(p, id, name, HandoffPhase::Delivered { pid });
}

impl Outgoing {
    /// A move of `shard` to `to` at `epoch`: each of `running` (the shard's children, by
    /// name) is asked for its state; `passed` are children handed to this node and not
    /// started here yet, passed on as they are.
    pub fn begin(
        p: &Process,
        shard: u16,
        (to, epoch): (u16, u64),
        running: Vec<(String, Pid)>,
        passed: Vec<Handed>,
    ) -> Outgoing {
        let mut asked = BTreeMap::new();
        for (name, pid) in running {
            let id = p.make_ref().0;
            record(p, id, &name, HandoffPhase::Begin { from: pid, to });
            p.send(pid, Request::Begin { reply: p.pid(), id });
            let state = None;
            asked.insert(
                pid,
                Asked {
                    shard,
                    name,
                    id,
                    state,
                },
            );
        }
        Outgoing {
            to,
            epoch,
            asked,
            handed: passed,
            sent: false,
            settled: false,
        }
    }

    /// Whether `pid` is one of the children stopping for this move.
    pub fn stopping(&self, pid: Pid) -> bool {
        self.asked.contains_key(&pid)
    }

    /// The children asked and not stopped yet, with their handoffs' ids.
    pub fn waiting(&self) -> impl Iterator<Item = (Pid, u64)> + '_ {
        self.asked.iter().map(|(pid, a)| (*pid, a.id))
    }

    /// A child's answer.
    pub fn answered(&mut self, p: &Process, begun: Begun) {
        if let Some(asked) = self.asked.values_mut().find(|a| a.id == begun.id) {
            if begun.state.is_none() {
                aborted(p, asked.id, &asked.name, "restart");
            }
            asked.state = Some(begun.state);
        }
    }

    /// A child stopped, for `reason`: handed over with its answer, if it gave one.
    pub fn stopped(&mut self, p: &Process, pid: Pid, reason: &ExitReason) {
        let Some(asked) = self.asked.remove(&pid) else {
            return;
        };
        let lease_lost = *reason == super::lease::lease_lost();
        let clean = reason.is_normal() || reason.is_shutdown() || lease_lost;
        let state = match asked.state {
            Some(state) => state,
            None => {
                let why = format!("stopped before it answered: {}", reason.to_term());
                aborted(p, asked.id, &asked.name, &why);
                None
            }
        };
        self.handed.push(Handed {
            shard: asked.shard,
            name: asked.name,
            id: asked.id,
            state,
            clean,
        });
    }

    /// Whether every child asked has stopped.
    pub fn stopped_all(&self) -> bool {
        self.asked.is_empty()
    }

    /// Whether the handover can go: every child asked has stopped, and the move is still in
    /// transit.
    pub fn ready(&self) -> bool {
        self.asked.is_empty() && !self.settled
    }

    /// The move is no longer in transit.
    pub fn settle(&mut self) {
        self.settled = true;
    }

    /// Marks the handover sent, recording the states it carries the first time.
    pub fn sending(&mut self, p: &Process) {
        if !self.sent {
            for h in self.handed.iter().filter(|h| h.state.is_some()) {
                record(p, h.id, &h.name, HandoffPhase::StateSent);
            }
        }
        self.sent = true;
    }

    /// The move was aborted (once every child asked has stopped): the children stopped,
    /// to run again here, the states they carry delivered to their next instances.
    pub fn take_back(self) -> Vec<Handed> {
        self.handed
    }
}
