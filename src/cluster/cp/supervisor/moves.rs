//! A node's supervisor's side of planned moves (docs/cp.md, "Handoff"): the leader proposes
//! them and aborts the stuck ones; an owner hands its children over and settles what ended;
//! a target commits what it was handed, and takes over what it acquires.

use super::{DistSupervisor, HandoffTimeout, Peer};
use crate::cluster::cp::consensus;
use crate::cluster::cp::control::{self, Answer, Child, Command, Control, Query, Transit};
use crate::cluster::cp::handoff::{self, Handover, Outgoing};
use crate::cluster::cp::lease;
use crate::rt::Duration;
use crate::{Pid, Process};
use std::collections::{BTreeMap, BTreeSet};

/// The longest the leader waits before it moves a shard again after aborting its move.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl DistSupervisor {
    /// Forgets the moves of this node's shards that are no longer in transit, once the
    /// children asked have stopped: completed (the shard is another node's), or aborted (it
    /// is still this node's: its children run here again, each given the state it handed
    /// over, and those that crashed meanwhile are counted).
    pub(super) fn settle_moves(
        &mut self,
        p: &Process,
        outgoing: &[Transit],
        shards: &[(u16, u64)],
        kept: &[u16],
    ) {
        let ended: Vec<u16> = self
            .outgoing
            .iter()
            .filter(|(&shard, o)| !outgoing.contains(&(shard, o.to, o.epoch)))
            .map(|(&shard, _)| shard)
            .collect();
        let mut crashed = false;
        for shard in ended {
            let Some(o) = self.outgoing.get_mut(&shard) else {
                continue;
            };
            o.settle();
            if !o.stopped_all() {
                continue;
            }
            let Some(o) = self.outgoing.remove(&shard) else {
                continue;
            };
            // Kept by this node at the epoch after the move's: aborted, or its target lost.
            // Anything else (completed, and perhaps back since) took the states elsewhere.
            let back = (shard, o.epoch + 1);
            if !kept.contains(&shard) || !shards.contains(&back) {
                continue;
            }
            for h in o.take_back() {
                if self.children.contains_key(&h.name) {
                    // Started again meanwhile (it should not have been): its state is stale.
                    if h.state.is_some() {
                        handoff::aborted(p, h.id, &h.name, "its name runs again already");
                    }
                    continue;
                }
                if h.clean {
                    self.handed_in.insert(h.name.clone(), h);
                    continue;
                }
                if h.state.is_some() {
                    handoff::aborted(p, h.id, &h.name, "crashed in an aborted move");
                }
                let crash = self.next_crash();
                self.crashed.insert(h.name, crash);
                crashed = true;
            }
        }
        if crashed {
            self.save_crashed(p);
        }
    }

    /// Begins the moves of this node's shards not begun yet (each child running asked for
    /// its state, with a deadline), and sends each target the handover of the moves whose
    /// children have all stopped (again at each reconciliation, until the move is settled).
    ///
    /// A move begins only under the lease, with the margin a start needs. A node whose lease
    /// lapsed may be committed down any moment (the leader revoked it, or an old leader's
    /// `Down` waits in a log), which completes the move without its states: it keeps the
    /// shard's children (until the lapse stops them, in CP mode) until it is granted again,
    /// and begins then, or until the move is aborted, or the shard goes to an heir and, in AP
    /// mode, its instances lose the conflict, with their states
    /// (`corpus/ap-lapsed-owner-begins-no-move.json`).
    pub(super) fn hand_over(&mut self, p: &Process, outgoing: &[Transit]) {
        let leased = self.lease.left(p.now()) >= lease::START_WITHIN;
        for &(shard, to, epoch) in outgoing {
            if self.outgoing.contains_key(&shard) || !leased {
                continue;
            }
            let of_shard = |name: &str| control::shard_of(name, self.config.shards) == shard;
            let running: Vec<(String, Pid)> = self
                .children
                .iter()
                .filter(|(name, _)| of_shard(name))
                .map(|(name, r)| (name.clone(), r.pid))
                .collect();
            // Children handed to this node and not started here yet go on as they are.
            let passed: Vec<String> = self
                .handed_in
                .keys()
                .filter(|name| of_shard(name))
                .cloned()
                .collect();
            let passed = passed
                .iter()
                .filter_map(|name| self.handed_in.remove(name))
                .collect();
            let o = Outgoing::begin(p, shard, (to, epoch), running, passed);
            for (pid, id) in o.waiting() {
                let timeout = HandoffTimeout {
                    pid,
                    id,
                    kill: false,
                };
                p.send_after(self.config.handoff_timeout, p.pid(), timeout);
            }
            self.outgoing.insert(shard, o);
        }
        let mut handovers: BTreeMap<u16, Handover> = BTreeMap::new();
        let shards = self.config.shards;
        let stopping: BTreeSet<u16> = self
            .stopping
            .values()
            .map(|name| control::shard_of(name, shards))
            .collect();
        let ready = |(shard, o): &(&u16, &mut Outgoing)| o.ready() && !stopping.contains(shard);
        for (&shard, o) in self.outgoing.iter_mut().filter(ready) {
            o.sending(p);
            let handover = handovers.entry(o.to).or_insert(Handover {
                moves: Vec::new(),
                children: Vec::new(),
            });
            handover.moves.push((shard, o.epoch));
            handover.children.extend(o.handed.iter().cloned());
        }
        for (to, handover) in handovers {
            p.send_named(&self.config.name, to, Peer::Handover(handover));
        }
    }

    /// Commits the moves to this node whose handover it has: it owns their shards then, and
    /// starts their children.
    pub(super) async fn complete(&mut self, p: &Process, incoming: &[Transit]) {
        let (group, me) = (&self.config.raft.name, p.pid().node());
        let moved: Vec<(u16, u64)> = incoming
            .iter()
            .map(|&(shard, _, epoch)| (shard, epoch))
            .filter(|key| self.received.contains_key(key))
            .collect();
        if !moved.is_empty() {
            let command = Command::Moved(moved);
            let _ = consensus::propose::<Control>(p, group, me, command, self.config.timeout).await;
        }
    }

    /// On the leader: proposes the moves the placement wants (shards back to their first
    /// owner, away from nodes that leave), and aborts those in transit for longer than a
    /// move may take.
    pub(super) async fn rebalance(&mut self, p: &Process) {
        let (group, me) = (&self.config.raft.name, p.pid().node());
        let timeout = self.config.timeout;
        let Ok(Answer::Plan { wanted, transit }) =
            consensus::query::<Control>(p, group, me, Query::Plan, timeout).await
        else {
            return;
        };
        let now = p.now();
        self.backoff.retain(|_, (until, wait)| now < *until + *wait);
        let wanted: Vec<(u16, u16)> = wanted
            .into_iter()
            .filter(|(shard, _)| {
                self.backoff
                    .get(shard)
                    .is_none_or(|(until, _)| now >= *until)
            })
            .collect();
        if !wanted.is_empty() {
            let command = Command::Move(wanted);
            let _ = consensus::propose::<Control>(p, group, me, command, timeout).await;
        }
        self.transit_seen.retain(|key, _| transit.contains(key));
        for key in &transit {
            self.transit_seen.entry(*key).or_insert(now);
        }
        let stuck: Vec<(u16, u64)> = self
            .transit_seen
            .iter()
            .filter(|(_, &seen)| now > seen + self.config.max_handoff)
            .map(|(key, _)| *key)
            .collect();
        if !stuck.is_empty() {
            // Not moved again at once: the owner runs the children again first, and a move
            // that failed waits twice as long before each new try (up to a minute).
            for &(shard, _) in &stuck {
                let wait = match self.backoff.get(&shard) {
                    Some(&(_, wait)) => (wait * 2).min(MAX_BACKOFF),
                    None => self.config.max_handoff,
                };
                self.backoff.insert(shard, (now + wait, wait));
            }
            let command = Command::Abort(stuck);
            let _ = consensus::propose::<Control>(p, group, me, command, timeout).await;
        }
    }

    /// Children of shards this node did not own at its last reconciliation (all of them at
    /// boot) may have crashed just before, unseen (on this node before it went down, or on
    /// their last owner): each of those starts is a restart and asks for a grant like one,
    /// but for those their owner stopped cleanly and handed over in the move that gave this
    /// node the shard.
    pub(super) fn acquire(
        &mut self,
        p: &Process,
        wanted: &BTreeMap<String, Child>,
        shards: &[(u16, u64)],
        outgoing: &[Transit],
        kept: &[u16],
    ) {
        let mut acquired = false;
        for &(shard, epoch) in shards {
            let moving_on = outgoing.iter().any(|&(s, _, _)| s == shard);
            // Owned since the last reconciliation, at this epoch or one that left it here
            // (a move away begun, or ended with this node keeping it).
            match self.shards.get(&shard) {
                Some(&before) if before == epoch || moving_on || kept.contains(&shard) => {
                    continue;
                }
                _ => {}
            }
            // A completed move keeps its epoch; one begun since (away from here already) is
            // the next. Any other epoch came by another way (a lost owner, a boot): afresh.
            let moved_at = if moving_on { epoch - 1 } else { epoch };
            for h in self.received.remove(&(shard, moved_at)).unwrap_or_default() {
                if h.clean {
                    self.handed_in.insert(h.name.clone(), h);
                } else if h.state.is_some() {
                    handoff::aborted(p, h.id, &h.name, "crashed as it handed over");
                }
            }
            for name in wanted.keys() {
                if control::shard_of(name, self.config.shards) == shard
                    && !self.children.contains_key(name)
                    && !self.handed_in.contains_key(name)
                {
                    let crash = self.next_crash();
                    self.crashed.insert(name.clone(), crash);
                    acquired = true;
                }
            }
        }
        self.shards = shards.iter().copied().collect();
        if acquired {
            self.save_crashed(p);
        }
    }
}
