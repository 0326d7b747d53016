//! AP mode's conflicts (docs/cp.md, "AP mode"; SWARM.md §4.2 item 9): a node cut off from
//! the majority keeps its children, the majority starts them elsewhere once it has committed
//! the node down, and when the node learns that (at the heal, or at its resume) each of its
//! instances whose shard went to another node loses the conflict.
//!
//! - **One winner, the same for every node:** the instance that runs on the owner the
//!   committed table names. Only that owner's supervisor resolves, so no two nodes can pick
//!   differently, whatever order their messages came in (I7).
//! - **The loser's state, once.** The loser's supervisor asks it for its state (as for a move:
//!   [`Request::Begin`]; it answers and stops, or is killed after the handoff timeout), then
//!   sends the state to the owner's supervisor at each reconciliation until its own applied
//!   state shows the loser resolved. The owner commits [`Command::Resolve`] first, and gives
//!   the state to the instance it runs ([`Request::Resolve`]) only if that commit was the
//!   loser's first: once cluster-wide, even when a copy reaches another owner after the shard
//!   moved. While the name does not run there (it restarts, say), nothing is committed and the
//!   loser's node sends it again later. A name no longer desired drops its losers' states.

use super::{DistSupervisor, KillStopping, Peer};
use crate::cluster::cp::consensus;
use crate::cluster::cp::control::{Answer, Command, Control, Outcome, Query};
use crate::cluster::cp::handoff::{Begun, Request};
use crate::trace::{DistEvent, EventKind};
use crate::{Pid, Process, Term};

/// An instance of this node that lost a conflict: asked for its state, then holding it until
/// the winner's node says it was given.
pub(super) struct Losing {
    name: String,
    /// The request's id.
    id: u64,
    /// The state, once the loser answered.
    state: Option<Term>,
}

impl DistSupervisor {
    /// The instance `pid` of `name` runs here while the committed table gives its shard to
    /// another node, and `name` is still desired (AP mode): it loses the conflict. It is asked
    /// for its state, and killed if it has not stopped within the handoff timeout.
    pub(super) fn lose(&mut self, p: &Process, name: String, pid: Pid) {
        let id = p.make_ref().0;
        p.send(pid, Request::Begin { reply: p.pid(), id });
        p.send_after(self.config.handoff_timeout, p.pid(), KillStopping(pid));
        self.stopping.insert(pid, name.clone());
        let state = None;
        self.losing.insert(pid, Losing { name, id, state });
    }

    /// A loser's answer: `false` if `begun` answers no conflict. A loser that gave a state
    /// is recorded as `lost`: its state is to reach the winner once (I7). One without a state
    /// (`Restart`, `Ignore`) leaves nothing to resolve.
    pub(super) fn lost(&mut self, p: &Process, begun: &Begun) -> bool {
        let Some((&loser, losing)) = self.losing.iter_mut().find(|(_, l)| l.id == begun.id) else {
            return false;
        };
        match &begun.state {
            Some(state) if losing.state.is_none() => {
                losing.state = Some(state.clone());
                let name = losing.name.clone();
                p.node()
                    .record(EventKind::Dist(DistEvent::Lost { name, loser }));
            }
            Some(_) => {}
            None => {
                self.losing.remove(&loser);
            }
        }
        true
    }

    /// A loser ended: one that gave no state (killed, crashed) leaves nothing to resolve.
    pub(super) fn loser_ended(&mut self, pid: Pid) {
        if self.losing.get(&pid).is_some_and(|l| l.state.is_none()) {
            self.losing.remove(&pid);
        }
    }

    /// Sends each loser's state to the owner of its name, as this node's applied state names
    /// it; forgets those resolved, and those of names no longer desired.
    pub(super) async fn send_losers(&mut self, p: &Process) {
        let (group, me, timeout) = (&self.config.raft.name, p.pid().node(), self.config.timeout);
        let answered: Vec<(Pid, String, Term)> = self
            .losing
            .iter()
            .filter_map(|(&pid, l)| Some((pid, l.name.clone(), l.state.clone()?)))
            .collect();
        for (loser, name, state) in answered {
            let query = |q| consensus::query::<Control>(p, group, me, q, timeout);
            let resolved = query(Query::Resolved(loser)).await;
            let desired = query(Query::Desired(name.clone())).await;
            if resolved == Ok(Answer::Resolved(true)) || desired == Ok(Answer::Desired(false)) {
                self.losing.remove(&loser);
                continue;
            }
            if let Ok(Answer::Owner(Some(owner))) = query(Query::Owner(name.clone())).await {
                let resolve = Peer::Resolve { name, loser, state };
                p.send_named(&self.config.name, owner, resolve);
            }
        }
    }

    /// The winner's side: gives `loser`'s state to the instance of `name` this node runs,
    /// once cluster-wide (the group commits the loser's resolution first). Nothing while the
    /// name does not run here: the loser's node sends it again.
    pub(super) async fn resolve(&mut self, p: &Process, name: String, loser: Pid, state: Term) {
        let (group, me, timeout) = (&self.config.raft.name, p.pid().node(), self.config.timeout);
        if self.running(p, &name).is_none_or(|w| w == loser) {
            return;
        }
        let query = Query::Resolved(loser);
        if let Ok(Answer::Resolved(true)) =
            consensus::query::<Control>(p, group, me, query, timeout).await
        {
            return;
        }
        let command = Command::Resolve {
            name: name.clone(),
            loser,
        };
        let outcome = consensus::propose::<Control>(p, group, me, command, timeout).await;
        if outcome.map(|o| o.1) != Ok(Outcome::Resolved { first: true }) {
            return;
        }
        // The instance that runs now: the one asked about may have ended meanwhile.
        let Some(winner) = self.running(p, &name).filter(|&w| w != loser) else {
            return;
        };
        p.send(winner, Request::Resolve(state));
        p.node().record(EventKind::Dist(DistEvent::Conflict {
            name,
            winner,
            loser,
            state_delivered: true,
        }));
    }
}
