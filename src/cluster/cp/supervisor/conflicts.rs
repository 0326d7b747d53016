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
//!   state shows the loser resolved. The owner commits [`Command::Resolve`] first (at its
//!   next reconciliation, not while it handles the copy), and gives the state to the instance
//!   it runs ([`Request::Resolve`]) only if the group took that commit as the loser's first
//!   and from the owner of the name: once cluster-wide, even when a copy reaches a node that
//!   owned the name before (a stale node is refused, whatever it believes). While the name
//!   does not run there (it restarts, say), nothing is committed and the copy waits. A name no
//!   longer desired drops its losers' states.
//! - **Exactly once unless a node forgets.** A commit whose answer the owner did not hear is
//!   *unsure*: its state is given once the log names the owner's supervisor for that loser
//!   (a pid: the node's life that proposed it, not a later one). An owner whose own instance
//!   then loses gives it what the group gave it first, so that it goes on with its state. A
//!   state the group gave an owner whose name then left it before it gave the state (the
//!   shard moved, or went to an heir while the owner was cut off) is released
//!   ([`Command::Release`]) and passed on to the name's owner like a loser's copy. Only a
//!   crash loses a state: the loser's node's before the commit, or the owner's after it and
//!   before it gave it, or before the next owner resolved what it passed on.

use super::{DistSupervisor, KillStopping, Peer, FRESH_WITHIN};
use crate::cluster::cp::consensus;
use crate::cluster::cp::control::{Answer, Command, Control, Outcome, Query};
use crate::cluster::cp::handoff::{Begun, Request};
use crate::trace::{DistEvent, EventKind};
use crate::{Pid, Process, Term};
use std::collections::{BTreeMap, BTreeSet};

/// A loser's state this node sends to the name's owner until its own applied state shows the
/// loser resolved: of an instance of this node that lost a conflict (asked for its state
/// first), or one passed on after a release ([`DistSupervisor::return_states`]).
pub(super) struct Losing {
    name: String,
    /// The request's id.
    id: u64,
    /// The state, once the loser answered.
    state: Option<Term>,
    /// Passed on after a release ([`DistSupervisor::return_states`]): until a fresh read, this
    /// node's applied state may predate the release, and name the resolution it undid.
    released: bool,
}

/// A state the group gave this node's life (or may have: unsure) for a name that then left
/// the node before the state was given: to release and pass on
/// ([`DistSupervisor::return_states`]).
pub(super) struct Returning {
    name: String,
    state: Term,
    /// Whether the log named this life for it (owed, or an unsure one since confirmed): a
    /// loser found unresolved then was released by this life, whatever its answer said.
    certain: bool,
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
        let (state, released) = (None, false);
        self.losing.insert(
            pid,
            Losing {
                name,
                id,
                state,
                released,
            },
        );
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
    /// it; forgets those resolved, and those of names no longer desired. A state passed on
    /// after a release is forgotten only once a fresh read shows this node applied the release.
    pub(super) async fn send_losers(&mut self, p: &Process) {
        let (group, me, timeout) = (&self.config.raft.name, p.pid().node(), self.config.timeout);
        if self.losing.values().any(|l| l.released)
            && consensus::fresh::<Control>(p, group, me, FRESH_WITHIN)
                .await
                .is_ok()
        {
            for l in self.losing.values_mut() {
                l.released = false;
            }
        }
        let answered: Vec<(Pid, String, Term, bool)> = self
            .losing
            .iter()
            .filter_map(|(&pid, l)| Some((pid, l.name.clone(), l.state.clone()?, l.released)))
            .collect();
        for (loser, name, state, released) in answered {
            let query = |q| consensus::query::<Control>(p, group, me, q, timeout);
            let resolved = query(Query::Resolved(loser)).await;
            let desired = query(Query::Desired(name.clone())).await;
            let given = !released && matches!(resolved, Ok(Answer::Resolved(Some(_))));
            if given || desired == Ok(Answer::Desired(false)) {
                self.losing.remove(&loser);
                continue;
            }
            if let Ok(Answer::Owner(Some(owner))) = query(Query::Owner(name.clone())).await {
                let resolve = Peer::Resolve { name, loser, state };
                p.send_named(&self.config.name, owner, resolve);
            }
        }
    }

    /// The winner's side: a loser's state reached this node (a copy, perhaps again). It is
    /// given at the next reconciliation ([`resolve_received`](Self::resolve_received)), which
    /// this does not hasten: a reconciliation sends copies, and one sent to this node itself
    /// (the loser's shard came back) must not start the next at once.
    pub(super) fn received_loser(&mut self, name: String, loser: Pid, state: Term) {
        if self.config.mode == super::Mode::Ap {
            self.resolving.insert(loser, (name, state));
        }
    }

    /// Gives each loser's state received to the instance of its name this node runs, once
    /// cluster-wide: the group commits the resolution first, and refuses it unless this node
    /// owns the name (`wanted`) and no other gave it. A resolution whose answer this node did
    /// not hear (the proposal timed out, and may yet have committed) is *unsure*: its state is
    /// given once the log names this supervisor (this life, which proposed it) for it. A state
    /// committed while its winner ended is owed to the name's next instance here. Copies of
    /// names this node does not own are dropped (the loser's node sends them to the owner it
    /// knows); owed and unsure states of such names are passed on
    /// ([`return_states`](Self::return_states)).
    pub(super) async fn resolve_received(&mut self, p: &Process, wanted: &BTreeSet<String>) {
        let (group, timeout) = (self.config.raft.name.clone(), self.config.timeout);
        let (group, me) = (&group, p.pid().node());
        let left: Vec<String> = self
            .owed
            .keys()
            .filter(|name| !wanted.contains(*name))
            .cloned()
            .collect();
        for name in left {
            for (loser, state) in self.owed.remove(&name).unwrap_or_default() {
                self.pass_on(loser, name.clone(), state, true);
            }
        }
        let owed: Vec<String> = self.owed.keys().cloned().collect();
        for name in owed {
            if let Some(winner) = self.live_instance(p, &name) {
                for (loser, state) in self.owed.remove(&name).unwrap_or_default() {
                    self.give_once(p, &name, winner, loser, state);
                }
            }
        }
        // One entry per loser: an unsure one, or else the latest copy received.
        let mut received: BTreeMap<Pid, (String, Term, bool)> = std::mem::take(&mut self.resolving)
            .into_iter()
            .map(|(loser, (name, state))| (loser, (name, state, false)))
            .collect();
        for (loser, (name, state)) in std::mem::take(&mut self.unsure) {
            received.insert(loser, (name, state, true));
        }
        for (loser, (name, state, unsure)) in received {
            if self.given.contains(&loser) {
                continue;
            }
            // A copy of a name that is not this node's goes to the owner its loser's node
            // knows; an unsure one may be this life's to give, and is passed on then.
            if !wanted.contains(&name) {
                if unsure {
                    self.pass_on(loser, name, state, false);
                }
                continue;
            }
            let Some(winner) = self.live_instance(p, &name).filter(|&w| w != loser) else {
                // Not running here yet: kept for the next reconciliation.
                self.keep(loser, name, state, unsure);
                continue;
            };
            let query = Query::Resolved(loser);
            if let Ok(Answer::Resolved(Some(to))) =
                consensus::query::<Control>(p, group, me, query, timeout).await
            {
                if unsure && to == p.pid() {
                    self.settle(p, &name, winner, loser, state);
                }
                continue;
            }
            let command = Command::Resolve {
                name: name.clone(),
                loser,
                by: p.pid(),
            };
            let mine = Some(p.pid());
            match consensus::propose::<Control>(p, group, me, command, timeout).await {
                Ok((_, Outcome::Resolved { first, to })) if first || (unsure && to == mine) => {
                    self.settle(p, &name, winner, loser, state);
                }
                // Another node's, or not this node's to give.
                Ok(_) => {}
                // Unknown: it may have committed.
                Err(_) => self.keep(loser, name, state, true),
            }
        }
    }

    /// Before this node's own instance of `name` loses a conflict (the name's shard went
    /// elsewhere while the node was cut off), the states the group gave this node for it
    /// reach it, so that they go on with its own state to the next winner: those owed, and
    /// the unsure ones the log names this node for.
    pub(super) async fn give_before_losing(&mut self, p: &Process, name: &str, instance: Pid) {
        let (group, timeout) = (self.config.raft.name.clone(), self.config.timeout);
        let (group, me) = (&group, p.pid().node());
        for (loser, state) in self.owed.remove(name).unwrap_or_default() {
            self.give_once(p, name, instance, loser, state);
        }
        let unsure: Vec<Pid> = self
            .unsure
            .iter()
            .filter(|(_, (n, _))| n == name)
            .map(|(&loser, _)| loser)
            .collect();
        for loser in unsure {
            let query = Query::Resolved(loser);
            if let Ok(Answer::Resolved(Some(to))) =
                consensus::query::<Control>(p, group, me, query, timeout).await
            {
                if let Some((_, state)) = self.unsure.remove(&loser).filter(|_| to == p.pid()) {
                    self.give_once(p, name, instance, loser, state);
                }
            }
        }
    }

    /// Releases and passes on the states the group gave this life for names that left this
    /// node before it gave them: once [`Command::Release`] committed, each goes to the name's
    /// owner like a loser's own ([`send_losers`](Self::send_losers)), and is resolved there
    /// once. One the log names another supervisor for was given there (or lost with that
    /// life); an unsure one the log names nobody for waits, as its resolution may commit yet
    /// (the loser's node still sends its copies meanwhile), until the loser is resolved
    /// elsewhere or its name is no longer desired (for ever, if the loser's node forgot it).
    pub(super) async fn return_states(&mut self, p: &Process) {
        let (group, timeout) = (self.config.raft.name.clone(), self.config.timeout);
        let (group, me, life) = (&group, p.pid().node(), p.pid());
        // Read only at or after every commit this life heard of: an owed state's resolution,
        // a release it proposed.
        if consensus::fresh::<Control>(p, group, me, FRESH_WITHIN)
            .await
            .is_err()
        {
            return;
        }
        let given = &self.given;
        self.returning.retain(|loser, _| !given.contains(loser));
        let returning: Vec<(Pid, String)> = self
            .returning
            .iter()
            .map(|(&loser, r)| (loser, r.name.clone()))
            .collect();
        for (loser, name) in returning {
            let query = |q| consensus::query::<Control>(p, group, me, q, timeout);
            if query(Query::Desired(name)).await == Ok(Answer::Desired(false)) {
                self.returning.remove(&loser);
                continue;
            }
            let Ok(Answer::Resolved(to)) = query(Query::Resolved(loser)).await else {
                continue;
            };
            let certain = self.returning.get(&loser).is_some_and(|r| r.certain);
            let released = match to {
                Some(by) if by == life => {
                    if let Some(r) = self.returning.get_mut(&loser) {
                        r.certain = true;
                    }
                    let command = Command::Release { loser, by };
                    match consensus::propose::<Control>(p, group, me, command, timeout).await {
                        Ok((_, Outcome::Released(None))) => true,
                        // Asked again at the next reconciliation.
                        Ok(_) | Err(_) => continue,
                    }
                }
                // Given by another supervisor (or lost with its life).
                Some(_) => false,
                // Released by this life, whose answer it did not hear.
                None if certain => true,
                // Its resolution may commit yet; the loser's node sends copies meanwhile.
                None => continue,
            };
            let Some(Returning { name, state, .. }) = self.returning.remove(&loser) else {
                continue;
            };
            // Not this life's to give any more, whatever a read that predates the release
            // says: only the copy passed on goes on.
            self.unsure.remove(&loser);
            self.resolving.remove(&loser);
            if released {
                let (id, state) = (p.make_ref().0, Some(state));
                let losing = Losing {
                    name,
                    id,
                    state,
                    released: true,
                };
                self.losing.insert(loser, losing);
            }
        }
    }

    /// A state the group gave this life (`certain`), or may have, for a name that left this
    /// node: released and passed on at the next reconciliation.
    fn pass_on(&mut self, loser: Pid, name: String, state: Term, certain: bool) {
        let returning = self.returning.entry(loser).or_insert(Returning {
            name,
            state,
            certain,
        });
        returning.certain |= certain;
    }

    /// A received state kept for the next reconciliation, unsure or not.
    fn keep(&mut self, loser: Pid, name: String, state: Term, unsure: bool) {
        let kept = if unsure {
            &mut self.unsure
        } else {
            &mut self.resolving
        };
        kept.insert(loser, (name, state));
    }

    /// A resolution committed for this node: the state goes to `winner`, or, if it ended
    /// meanwhile, to the name's next instance here.
    fn settle(&mut self, p: &Process, name: &str, winner: Pid, loser: Pid, state: Term) {
        // This life's to give here again, whatever waited to be passed on.
        self.returning.remove(&loser);
        if p.node().is_alive(winner) {
            self.give_once(p, name, winner, loser, state);
        } else {
            self.owed
                .entry(name.to_string())
                .or_default()
                .push((loser, state));
        }
    }

    /// Gives `loser`'s state to `winner` unless this life gave it already: a copy that comes
    /// again before this node has applied its own resolution, and whose proposal then fails,
    /// must not be given twice.
    fn give_once(&mut self, p: &Process, name: &str, winner: Pid, loser: Pid, state: Term) {
        if self.given.insert(loser) {
            give(p, name, winner, loser, state);
        }
    }

    /// The instance of `name` this node runs and names, if it is alive.
    fn live_instance(&self, p: &Process, name: &str) -> Option<Pid> {
        self.running(p, name).filter(|&pid| p.node().is_alive(pid))
    }
}

/// Gives `loser`'s state to `winner`, and records the conflict resolved.
fn give(p: &Process, name: &str, winner: Pid, loser: Pid, state: Term) {
    p.send(winner, Request::Resolve(state));
    p.node().record(EventKind::Dist(DistEvent::Conflict {
        name: name.to_string(),
        winner,
        loser,
        state_delivered: true,
    }));
}
