//! Messages routed by name (docs/cp.md, "Handoff", messages by name): delivered by the
//! supervisor of the node that runs the child, held while it restarts or moves, routed on to
//! the node that owns it now, each with the time it has left.

use super::{DistSupervisor, Peer, Reply, FRESH_WITHIN};
use crate::cluster::cp::consensus;
use crate::cluster::cp::control::{self, Answer, Child, Control, Query, Transit};
use crate::rt::Duration;
use crate::server::From;
use crate::{Pid, Process};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A message routed by name, encoded by the supervisor's messages codec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    /// Its type's tag.
    pub tag: String,
    /// Its encoding.
    pub bytes: Vec<u8>,
}

/// How far a routed message or caller may still go: the supervisors that routed it on, and
/// the time it has left, held or in transit (each supervisor takes off what it held it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// How many supervisors routed it on.
    pub hops: u8,
    /// Its time left, in ms.
    pub budget_ms: u64,
}

/// What waits for a child to run, on the node that runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Waiting {
    /// A message to deliver to it.
    Letter(Letter),
    /// A caller to tell its pid.
    Pid,
}

/// A message or a caller waiting for a child.
pub(super) struct Held {
    pub(super) waiting: Waiting,
    from: From<Reply>,
    hops: u8,
    /// Dropped unanswered after this (its time is up: the caller times out).
    until: crate::rt::Instant,
    /// The caller, monitored: held no longer once it is down (it was told the call failed,
    /// so its message must not arrive later, after one it sent since).
    pub(super) caller: crate::process::MonitorRef,
}

impl Held {
    /// Takes it out of the holding: its caller no longer monitored.
    fn release(self, p: &Process) -> (Waiting, From<Reply>, u8, crate::rt::Instant) {
        p.demonitor_flush(self.caller);
        (self.waiting, self.from, self.hops, self.until)
    }

    /// Answers its caller.
    pub(super) fn reply(self, p: &Process, reply: Reply) {
        self.release(p).1.reply(p, reply);
    }
}

/// A supervisor routes a message on at most this many times (its state and the owner's may
/// disagree for a moment, never for long).
const MAX_HOPS: u8 = 3;

impl DistSupervisor {
    /// A message or a caller for the child `name`: answered now if it runs here, held
    /// otherwise (until it runs, or is found to run elsewhere: [`Self::route_held`]).
    pub(super) fn route(
        &mut self,
        p: &Process,
        name: String,
        waiting: Waiting,
        from: From<Reply>,
        route: Route,
    ) {
        match self.running(p, &name) {
            Some(pid) => self.post(p, pid, waiting, from),
            None => {
                let until = p.now() + Duration::from_millis(route.budget_ms);
                let caller = p.monitor(from.pid());
                let held = Held {
                    waiting,
                    from,
                    hops: route.hops,
                    until,
                    caller,
                };
                self.held.entry(name).or_default().push(held);
                self.kick(p);
            }
        }
    }

    /// Delivers a message to `pid`, and tells its sender; or tells a caller `pid`.
    pub(super) fn post(&self, p: &Process, pid: Pid, waiting: Waiting, from: From<Reply>) {
        let Waiting::Letter(letter) = waiting else {
            return from.reply(p, Ok(Some(pid)));
        };
        match self.config.messages.decode(&letter.tag, &letter.bytes) {
            Ok(msg) => {
                p.send_boxed(pid, msg, None);
                from.reply(p, Ok(Some(pid)));
            }
            Err(e) => from.reply(p, Err(e.to_string())),
        }
    }

    /// The messages and callers held: answered if their child runs here now, routed on to
    /// its owner if that is another node, kept while it is this node's to run or moves from
    /// or to it, and answered as undelivered when its child is not desired or its caller
    /// gave up.
    pub(super) async fn route_held(
        &mut self,
        p: &Process,
        wanted: &BTreeMap<String, Child>,
        incoming: &[Transit],
    ) {
        let (group, me) = (self.config.raft.name.clone(), p.pid().node());
        let names: Vec<String> = self.held.keys().cloned().collect();
        let mut undesired = Vec::new();
        for name in names {
            let held = self.held.remove(&name).unwrap_or_default();
            let now = p.now();
            let (live, late): (Vec<Held>, Vec<Held>) =
                held.into_iter().partition(|h| now < h.until);
            // Out of time: dropped unanswered, so that its caller's call times out
            // (`Unavailable`: it cannot know whether the message arrived), not `NotFound`.
            for h in late {
                h.release(p);
            }
            if let Some(pid) = self.running(p, &name) {
                for h in live {
                    let (waiting, from, ..) = h.release(p);
                    self.post(p, pid, waiting, from);
                }
                continue;
            }
            let shard = control::shard_of(&name, self.config.shards);
            let here = wanted.contains_key(&name)
                || self.outgoing.contains_key(&shard)
                || incoming.iter().any(|&(s, _, _)| s == shard);
            if here {
                if !live.is_empty() {
                    self.held.insert(name, live);
                }
                continue;
            }
            let query = Query::Owner(name.clone());
            let owner = match consensus::query::<Control>(p, &group, me, query, FRESH_WITHIN).await
            {
                Ok(Answer::Owner(owner)) => owner,
                Ok(_) | Err(_) => None,
            };
            if owner == Some(me) {
                undesired.push((name, live));
                continue;
            }
            for h in live {
                match owner {
                    Some(owner) if h.hops < MAX_HOPS => {
                        let (waiting, from, hops, until) = h.release(p);
                        let left = until.saturating_duration_since(p.now());
                        let route = Route {
                            hops: hops + 1,
                            budget_ms: left.as_millis() as u64,
                        };
                        let forward = Peer::Forward {
                            name: name.clone(),
                            waiting,
                            from,
                            route,
                        };
                        p.send_named(&self.config.name, owner, forward);
                    }
                    // Routed on too often (states that disagree): dropped unanswered, its
                    // fate unknown to its caller, as when its time runs out.
                    Some(_) => {
                        h.release(p);
                    }
                    None => self.held.entry(name.clone()).or_default().push(h),
                }
            }
        }
        // Not desired, as this node sees it: answered so only from a state the majority
        // confirms as current (the caller may know of a start this node has not applied yet).
        if undesired.is_empty() {
            return;
        }
        let fresh = consensus::fresh::<Control>(p, &group, me, FRESH_WITHIN)
            .await
            .is_ok();
        for (name, live) in undesired {
            let query = Query::Desired(name.clone());
            let desired = match fresh {
                true => consensus::query::<Control>(p, &group, me, query, FRESH_WITHIN).await,
                false => Err(consensus::ConsensusError::Unavailable),
            };
            match desired {
                Ok(Answer::Desired(false)) => {
                    for h in live {
                        h.reply(p, Ok(None));
                    }
                }
                _ => self.held.entry(name).or_default().extend(live),
            }
        }
    }
}
