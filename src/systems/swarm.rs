//! Seed 003 on Swarm: a cluster of three nodes running Elixir's Swarm and
//! `Swarm.DynamicSupervisor` (the model of [`cluster::swarm`](crate::cluster::swarm)), with
//! workers started by name from any node, looked up and crashed, under every cluster fault.
//!
//! As a [`ClusterTarget`] (`SwarmSystem`) it is what the harness points at to show where
//! Swarm fails; its failures are Swarm's own (docs/cluster-invariants.md names the upstream
//! issues), not regressions.
//!
//! The target's worker, its workload, its cluster wiring and the catalogue of Swarm's flaws that
//! its failures are matched to belong together (hence its length).

use crate::cluster::handoff::{Handoff, HandoffReply};
use crate::cluster::swarm::{self, Config, DynamicSupervisor};
use crate::rt::Duration;
use crate::sim::cluster::ClusterCtl;
use crate::sim::cluster_harness::{ClusterFamily, ClusterTarget};
use crate::sim::cluster_invariants::Consistency;
use crate::sim::invariants::{KnownFlaw, Violation};
use crate::trace::{DistEvent, EventKind, Trace};
use crate::{ExitReason, Pid, Process, Term};

/// A worker of the seed system: it counts what it is told (`u32`s, and [`Bump`]s, which it
/// records as handled), hands its count over when asked to move, adopts a predecessor's
/// count, adds a conflict loser's, answers a call with its count, and stops when told to
/// die ([`Handoff`]).
pub struct Counter(pub i64);

/// A message sent by name to a [`Counter`], numbered by its sender: the worker records
/// handling it, for the message-routing invariant (S1, docs/cluster-invariants.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bump {
    /// The sender.
    pub from: Pid,
    /// The sender's count of its messages, from 0.
    pub seq: u64,
}

impl Handoff for Counter {
    fn begin_handoff(&mut self, _: &Process) -> HandoffReply {
        HandoffReply::Resume(Term::Int(self.0))
    }

    fn end_handoff(&mut self, _: &Process, state: Term) {
        if let Term::Int(n) = state {
            self.0 = n;
        }
    }

    fn resolve_conflict(&mut self, _: &Process, state: Term) {
        if let Term::Int(n) = state {
            self.0 += n;
        }
    }

    fn handle(&mut self, p: &Process, msg: crate::Msg) {
        if let Some(&Bump { from, seq }) = msg.downcast_ref::<Bump>() {
            p.node().record(EventKind::Dist(DistEvent::Handled {
                pid: p.pid(),
                from,
                seq,
            }));
            self.0 += 1;
        } else if msg.is::<u32>() {
            self.0 += 1;
        }
    }

    fn handle_call(&mut self, _: &Process, _: Term) -> Result<Term, ExitReason> {
        Ok(Term::Int(self.0))
    }
}

/// A client's three numbered [`Bump`]s to `name`, 300 ms apart: `deliver` routes each as the
/// system routes a message by name and says which instance it went to, if any, or `Err` when
/// the system cannot say whether it went anywhere (a call that failed: it may still arrive);
/// each whose fate is known is recorded as `sent`, for the message-routing invariant (S1,
/// docs/cluster-invariants.md).
pub(crate) async fn send_bumps<F, Fut>(p: &Process, name: &str, mut deliver: F)
where
    F: FnMut(Bump) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Pid>, Unknown>>,
{
    for seq in 0..3 {
        let from = p.pid();
        let made_us = Some(p.node().elapsed_us());
        if let Ok(to) = deliver(Bump { from, seq }).await {
            let name = name.to_string();
            let sent = DistEvent::Sent {
                from,
                seq,
                name,
                to,
                made_us,
            };
            p.node().record(EventKind::Dist(sent));
        }
        p.sleep(Duration::from_millis(300)).await;
    }
}

/// A send whose fate its sender cannot know.
pub(crate) struct Unknown;

/// The [`Counter`] worker's start function, from 0.
pub async fn worker(p: Process, _: Term) -> ExitReason {
    swarm::serve(p, Counter(0)).await
}

/// A worker that cannot work (a bad configuration, a dependency that is gone): it crashes
/// 200 ms after every start.
pub async fn faulty(p: Process, _: Term) -> ExitReason {
    p.sleep(Duration::from_millis(200)).await;
    ExitReason::error("bad_config")
}

/// Starts Swarm on `node` of a cluster of nodes `1..=nodes`: the workers' start functions
/// (`worker`, `faulty`), the tracker and the dynamic supervisor (at its first boot and at
/// every restart).
pub fn boot(node: &crate::Node, nodes: u16) {
    node.register_start("worker", worker);
    node.register_start("faulty", faulty);
    let config = Config::new(1..=nodes);
    node.spawn(move |p| swarm::tracker(p, config));
    node.spawn(DynamicSupervisor::run);
}

/// The seed system as a cluster target: Swarm on three nodes, a workload of children started
/// by name from any node, looked up, and crashed, under every cluster fault. Swarm is AP:
/// two instances of a name may run until the cluster is at rest.
pub struct SwarmSystem;

/// An operation of the workload: from node `on`, start or look up child `k{name}`, or crash
/// it wherever it runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SwarmOp {
    /// `DynamicSupervisor.start_child` of `k{name}` from node `on`.
    Start {
        /// Which child: `k0` to `k2`.
        name: u8,
        /// The node it is called on.
        on: u16,
    },
    /// `Swarm.register_name` of `k{name}` (a [`Counter`] worker, spawned by the owner's
    /// tracker, unsupervised) from node `on`.
    Register {
        /// Which child.
        name: u8,
        /// The node it is called on.
        on: u16,
    },
    /// `Swarm.whereis_name` of `k{name}` on node `on`.
    Whereis {
        /// Which child.
        name: u8,
        /// The node it is called on.
        on: u16,
    },
    /// `k{name}`'s instance, as node `on` finds it, crashes.
    Crash {
        /// Which child.
        name: u8,
        /// The node that finds it.
        on: u16,
    },
    /// `Swarm.join("g", pid)` of `k{name}`'s instance, as node `on` finds it.
    Join {
        /// Which child.
        name: u8,
        /// The node it is called on.
        on: u16,
    },
    /// `Swarm.leave("g", pid)` of `k{name}`'s instance, as node `on` finds it.
    Leave {
        /// Which child.
        name: u8,
        /// The node it is called on.
        on: u16,
    },
    /// A client on node `on` sends three [`Bump`]s to `k{name}` with `Swarm.send`, 300 ms
    /// apart.
    Send {
        /// Which child.
        name: u8,
        /// The node the client runs on.
        on: u16,
    },
    /// `DynamicSupervisor.start_child` of `k{name}` from node `on`, with a [`faulty`] worker.
    StartFaulty {
        /// Which child.
        name: u8,
        /// The node it is called on.
        on: u16,
    },
}

impl ClusterTarget for SwarmSystem {
    type Op = SwarmOp;

    fn name(&self) -> String {
        "swarm".into()
    }

    fn boot(&self, _: u16, node: &crate::Node, _: bool) {
        boot(node, 3);
    }

    fn op(&self, draw: &mut dyn FnMut(u64) -> u64) -> Option<SwarmOp> {
        let (name, on) = (draw(3) as u8, 1 + draw(3) as u16);
        Some(match draw(26) {
            0..=5 => SwarmOp::Start { name, on },
            24 | 25 => SwarmOp::Register { name, on },
            6..=8 => SwarmOp::Whereis { name, on },
            9..=13 => SwarmOp::Crash { name, on },
            14..=16 => SwarmOp::Join { name, on },
            17 => SwarmOp::Leave { name, on },
            18..=22 => SwarmOp::Send { name, on },
            _ => SwarmOp::StartFaulty { name, on },
        })
    }

    async fn apply(&self, ctl: &ClusterCtl, op: &SwarmOp) {
        let op = op.clone();
        match op {
            SwarmOp::Start { name, on } | SwarmOp::StartFaulty { name, on } => {
                let start = match op {
                    SwarmOp::Start { .. } => "worker",
                    _ => "faulty",
                };
                let _ = ctl
                    .on(on, move |p| async move {
                        let name = format!("k{name}");
                        let nil = Term::atom("nil");
                        let _ = DynamicSupervisor::start_child(&p, &name, start, nil).await;
                    })
                    .await;
            }
            SwarmOp::Register { name, on } => {
                let _ = ctl
                    .on(on, move |p| async move {
                        let (start, arg) = ("worker".into(), Term::atom("nil"));
                        let mfa = swarm::Mfa::Spawn { start, arg };
                        let _ = swarm::register_name(&p, &format!("k{name}"), mfa).await;
                    })
                    .await;
            }
            SwarmOp::Whereis { name, on } => {
                let _ = ctl
                    .on(on, move |p| async move {
                        let _ = swarm::whereis_name(&p, &format!("k{name}")).await;
                    })
                    .await;
            }
            SwarmOp::Join { name, on } | SwarmOp::Leave { name, on } => {
                let join = matches!(op, SwarmOp::Join { .. });
                let _ = ctl
                    .on(on, move |p| async move {
                        if let Some(pid) = swarm::whereis_name(&p, &format!("k{name}")).await {
                            if join {
                                swarm::join(&p, "g", pid).await;
                            } else {
                                swarm::leave(&p, "g", pid).await;
                            }
                        }
                    })
                    .await;
            }
            SwarmOp::Send { name, on } => {
                let _ = ctl
                    .on(on, move |p| async move {
                        let name = format!("k{name}");
                        let (p, name) = (&p, name.as_str());
                        let deliver = |bump| async move { Ok(swarm::send(p, name, bump).await) };
                        send_bumps(p, name, deliver).await;
                    })
                    .await;
            }
            SwarmOp::Crash { name, on } => {
                let _ = ctl
                    .on(on, move |p| async move {
                        if let Some(pid) = swarm::whereis_name(&p, &format!("k{name}")).await {
                            p.exit(pid, ExitReason::error("crash"));
                        }
                    })
                    .await;
            }
        }
    }

    fn run_for(&self) -> Duration {
        Duration::from_secs(12)
    }

    /// The final heal, then a sync (5 s) and a handoff (5 s) and a tick (4 s) to settle.
    fn quiet(&self) -> Duration {
        Duration::from_secs(15)
    }

    fn consistency(&self) -> Consistency {
        Consistency::Ap
    }

    /// Every cluster family but faults inside a node: the model's trackers and supervisors
    /// run unsupervised (Swarm's restart of its tracker is not modelled), and a worker's
    /// crash is an operation of the workload.
    fn families(&self) -> Vec<ClusterFamily> {
        let mut families = ClusterFamily::ALL.to_vec();
        families.retain(|f| *f != ClusterFamily::Process);
        families
    }

    async fn check(&self, _: &ClusterCtl) -> Result<(), String> {
        Ok(())
    }

    /// Swarm's `Ring` (the model's [`swarm::placement`]).
    fn placement(&self) -> Option<crate::sim::cluster_invariants::Placement> {
        Some(swarm::placement)
    }

    /// Every cluster invariant Swarm breaks is one of its [`flaws`]; anything else (a
    /// panic, a livelock, a run that does not replay) is a regression of the model.
    fn known_flaw(&self, violation: &Violation, trace: &Trace) -> Option<&'static KnownFlaw> {
        flaws::of(violation, trace)
    }
}

/// Swarm's documented flaws, as the cluster invariants see them (docs/cluster-invariants.md,
/// "What the harness finds in Swarm"): each with the upstream issue or the file that
/// infers it.
pub mod flaws {
    use crate::cluster::swarm::RESOLVED_AS_CONFLICT;
    use crate::sim::invariants::{Invariant, KnownFlaw, Violation};
    use crate::trace::{ClusterEvent, DistEvent, EventKind, HandoffPhase, Trace};

    /// I1: after a partition, a pause or a silent node loss heals, both sides' instances of
    /// a name keep running (one side may have started its own through a registration that
    /// Swarm retried while the owner it had picked was gone).
    pub static DUPLICATE_AFTER_HEAL: KnownFlaw = KnownFlaw {
        name: "duplicate-after-heal",
        source: "bitwalker/swarm#86",
    };
    /// I1: node crashes seen through trackers with different views of the cluster (each its
    /// own ring) restart a name twice.
    pub static TWO_RESTARTS: KnownFlaw = KnownFlaw {
        name: "divergent-rings-two-restarts",
        source: "docs/cluster-invariants.md (divergent rings, inferred)",
    };
    /// I2: a node crash seen through trackers with different views of the cluster: each
    /// leaves the restart to an owner that does not make it.
    pub static NO_RESTART: KnownFlaw = KnownFlaw {
        name: "divergent-rings-no-restart",
        source: "bitwalker/swarm#44",
    };
    /// I2: the state of a handoff is cast to a node that is lost before it starts the
    /// process: process and state are gone.
    pub static HANDOFF_TARGET_LOST: KnownFlaw = KnownFlaw {
        name: "handoff-target-lost",
        source: "bitwalker/swarm#67",
    };
    /// I10: a tracker drops a live node from its ring. A `noconnection` `DOWN` is a
    /// `nodedown` to Swarm (`handle_monitor`); one that waited in a syncing tracker's mailbox
    /// (Swarm postpones it) is handled after the node came back, and takes it out again with
    /// no `nodeup` to follow.
    pub static STALE_NODEDOWN: KnownFlaw = KnownFlaw {
        name: "stale-nodedown",
        source: "docs/cluster-invariants.md (a postponed noconnection DOWN, inferred)",
    };
    /// I2: a crashed child's re-registration by its node's supervisor starts no other
    /// instance (it meets the dead entry, `already_registered`, or is lost with its node),
    /// and nobody retries.
    pub static CRASH_RESTART_LOST: KnownFlaw = KnownFlaw {
        name: "crash-restart-lost",
        source: "docs/cluster-invariants.md (swarm_dynamic_supervisor, inferred)",
    };
    /// I3 (and S4): a node's registry misses a name, keeps an old instance, or misses a
    /// group update, for longer than the quiet period (replication is fire and forget,
    /// anti-entropy every 5 minutes).
    pub static REGISTRY_DIVERGES: KnownFlaw = KnownFlaw {
        name: "registry-diverges",
        source: "bitwalker/swarm#45",
    };
    /// I4: a registry keeps a dead instance.
    pub static DANGLING_ENTRY: KnownFlaw = KnownFlaw {
        name: "dangling-entry",
        source: "bitwalker/swarm#90",
    };
    /// S2: an instance runs at rest away from the node its ring names: a re-sync ends
    /// without a topology change, so nothing moves it.
    pub static NOT_REBALANCED: KnownFlaw = KnownFlaw {
        name: "not-rebalanced",
        source: "bitwalker/swarm#89",
    };
    /// I7: a re-sync after a netsplit tells the loser to die and drops its state.
    pub static CONFLICT_STATE_DROPPED: KnownFlaw = KnownFlaw {
        name: "conflict-state-dropped",
        source: "bitwalker/swarm#89",
    };
    /// I8: a crashing child is registered again for ever: the crash path counts no restarts.
    pub static CRASH_LOOP: KnownFlaw = KnownFlaw {
        name: "unbounded-crash-loop",
        source: "docs/cluster-invariants.md (swarm_dynamic_supervisor has no intensity)",
    };
    /// S4: a name loses a group it joined: a child restarted after a crash by its
    /// `DynamicSupervisor` is registered anew, in no group; or a join raced a move, and the
    /// handoff carried the entry as it was before.
    pub static GROUP_LOST: KnownFlaw = KnownFlaw {
        name: "group-lost-on-restart",
        source: "bitwalker/swarm#26",
    };
    /// I9: a call to the tracker (`whereis`, `join`) waits in its mailbox while it syncs,
    /// past its caller's timeout (Swarm waits for ever).
    pub static CALL_POSTPONED: KnownFlaw = KnownFlaw {
        name: "call-postponed",
        source: "bitwalker/swarm#136",
    };
    /// S1: a message sent by name while the name moves is lost, or handled by the old
    /// instance after its state went: Swarm keeps nothing for a name between its old
    /// instance's `die` and its new one's registration, and lets the old one work on after
    /// `begin_handoff`.
    pub static LOST_IN_MOVE: KnownFlaw = KnownFlaw {
        name: "message-lost-in-move",
        source: "docs/cluster-invariants.md (Swarm.send keeps nothing during a handoff)",
    };
    /// S1: while a split kept two instances of a name running, a sender's messages by name
    /// went to whichever instance its node's registry named at each send, so each instance
    /// handled some of them, and not in the order they were sent.
    pub static SPLIT_BETWEEN_DUPLICATES: KnownFlaw = KnownFlaw {
        name: "messages-split-between-duplicates",
        source: "bitwalker/swarm#86 (two instances after a netsplit; Swarm.send routes by the local registry)",
    };
    /// S3: a process `register_name` started ends of its own accord, the news (an `untrack`,
    /// fire and forget) does not reach a node cut off meanwhile, and that node restarts the
    /// name when it sees the process's node go down: a name nobody wants any more runs again.
    pub static RESURRECTED: KnownFlaw = KnownFlaw {
        name: "restarted-after-exit",
        source: "docs/cluster-invariants.md (fire-and-forget untrack, inferred)",
    };
    /// I9: `start_child` waits on Swarm past `Task.await`'s 5 s (a syncing tracker, or an
    /// owner that is gone).
    pub static START_CHILD_HANGS: KnownFlaw = KnownFlaw {
        name: "start-child-hangs",
        source: "bitwalker/swarm#91",
    };

    /// Which of the flaws `violation` (of a cluster invariant), of a run whose trace is
    /// `trace`, is: each only where the trace shows its cause. Anything else is a regression
    /// of the model: a violation with no flaw of Swarm's behind it, or an invariant Swarm has
    /// not been seen to break (I6 among them).
    pub fn of(violation: &Violation, trace: &Trace) -> Option<&'static KnownFlaw> {
        let name = violation.subject.as_str();
        let faulted = trace.events().iter().any(|e| match &e.kind {
            EventKind::Cluster(c) => c.fault_kind().is_some(),
            _ => false,
        });
        let call = call_of(violation, trace);
        Some(match violation.invariant {
            Invariant::OneInstance if restarted_twice(violation, trace) => &TWO_RESTARTS,
            Invariant::OneInstance if split_or_paused(trace) => &DUPLICATE_AFTER_HEAL,
            Invariant::NoLostChildren if handoff_undelivered(trace, name) => &HANDOFF_TARGET_LOST,
            Invariant::NoLostChildren if last_end(trace, name) == End::Crashed => {
                &CRASH_RESTART_LOST
            }
            Invariant::NoLostChildren if last_end(trace, name) == End::WithItsNode => &NO_RESTART,
            Invariant::RegistryAgreement if faulted => &REGISTRY_DIVERGES,
            Invariant::NoDanglingEntries => &DANGLING_ENTRY,
            Invariant::ConflictResolution => &CONFLICT_STATE_DROPPED,
            Invariant::RestartIntensity => &CRASH_LOOP,
            Invariant::BoundedProgress
                if call.starts_with("whereis") || call.starts_with("join") =>
            {
                &CALL_POSTPONED
            }
            Invariant::BoundedProgress if call.starts_with("start_child") => &START_CHILD_HANGS,
            Invariant::Placement if faulted => &NOT_REBALANCED,
            Invariant::MessageRouting if evidence_has(violation, trace, is_handoff) => {
                &LOST_IN_MOVE
            }
            Invariant::MessageRouting
                if handled_by_two(violation, trace) && split_or_paused(trace) =>
            {
                &SPLIT_BETWEEN_DUPLICATES
            }
            Invariant::NoResurrection if faulted => &RESURRECTED,
            Invariant::MembershipAgreement if dropped_while_up(violation, trace) => &STALE_NODEDOWN,
            Invariant::GroupMembership if grouped_somewhere(trace, name) => &REGISTRY_DIVERGES,
            Invariant::GroupMembership => &GROUP_LOST,
            _ => return None,
        })
    }

    /// Whether the cluster split: a partition, a pause, or a node lost silently (the others
    /// keep it for a while, then see it down, and it comes back).
    fn split_or_paused(trace: &Trace) -> bool {
        trace.events().iter().any(|e| {
            matches!(
                e.kind,
                EventKind::Cluster(
                    ClusterEvent::Partition { .. }
                        | ClusterEvent::Pause { .. }
                        | ClusterEvent::Crash { silent: true, .. }
                )
            )
        })
    }

    /// Whether the two instances of `violation` (their `managed ... start` events are its
    /// evidence) both started after a node crash that took an instance of their name: two
    /// restarts of one lost instance, where the other duplicates keep one never lost.
    fn restarted_twice(violation: &Violation, trace: &Trace) -> bool {
        let events = trace.events();
        let starts: Vec<usize> = violation
            .events
            .iter()
            .copied()
            .filter(|&i| {
                matches!(
                    events.get(i).map(|e| &e.kind),
                    Some(EventKind::Dist(DistEvent::Start { .. }))
                )
            })
            .collect();
        let Some(&first) = starts.iter().min() else {
            return false;
        };
        if starts.len() < 2 {
            return false;
        }
        let name = violation.subject.as_str();
        let mut live = std::collections::BTreeSet::new();
        for e in events.iter().take(first) {
            match &e.kind {
                EventKind::Dist(DistEvent::Start { name: n, pid, .. }) if n == name => {
                    live.insert(*pid);
                }
                EventKind::Exit { pid, .. } => {
                    live.remove(pid);
                }
                EventKind::Cluster(ClusterEvent::Crash { node, .. })
                    if live.iter().any(|p| p.node() == *node) =>
                {
                    return true;
                }
                _ => {}
            }
        }
        false
    }

    /// Whether one of `violation`'s events is one `is` picks.
    fn evidence_has(violation: &Violation, trace: &Trace, is: fn(&EventKind) -> bool) -> bool {
        let events = trace.events();
        violation
            .events
            .iter()
            .any(|&i| events.get(i).is_some_and(|e| is(&e.kind)))
    }

    /// Whether the violation's evidence shows two instances handling the sender's messages.
    fn handled_by_two(violation: &Violation, trace: &Trace) -> bool {
        let events = trace.events();
        let mut handlers =
            violation
                .events
                .iter()
                .filter_map(|&i| match events.get(i).map(|e| &e.kind) {
                    Some(EventKind::Dist(DistEvent::Handled { pid, .. })) => Some(*pid),
                    _ => None,
                });
        let first = handlers.next();
        handlers.any(|pid| Some(pid) != first)
    }

    /// Whether an event is a step of a handoff.
    fn is_handoff(kind: &EventKind) -> bool {
        matches!(kind, EventKind::Dist(DistEvent::Handoff { .. }))
    }

    /// Whether some node's registry still counts `name` in a group at the end: a group
    /// update that did not reach every node, where a group lost by a restart is lost
    /// everywhere.
    fn grouped_somewhere(trace: &Trace, name: &str) -> bool {
        let mut grouped = std::collections::BTreeMap::new();
        for e in trace.events() {
            match &e.kind {
                EventKind::Dist(DistEvent::Groups {
                    node,
                    name: n,
                    groups,
                }) if n == name => {
                    grouped.insert(*node, !groups.is_empty());
                }
                EventKind::Dist(DistEvent::View {
                    node,
                    name: n,
                    pid: None,
                }) if n == name => {
                    grouped.remove(node);
                }
                EventKind::Cluster(
                    ClusterEvent::Restart { node, .. } | ClusterEvent::Crash { node, .. },
                ) => {
                    grouped.remove(node);
                }
                _ => {}
            }
        }
        grouped.values().any(|g| *g)
    }

    /// Whether a handoff of `name` sent its state that never reached a live instance, and no
    /// instance of the name started since: its target was lost, or resolved it as a conflict
    /// with an instance a crash of its node had taken (one of the node's previous life, which
    /// its registry had taken from another's).
    fn handoff_undelivered(trace: &Trace, name: &str) -> bool {
        let mut sent = std::collections::BTreeSet::new();
        let mut live = std::collections::BTreeSet::new();
        let mut crashed = std::collections::BTreeSet::new();
        let mut to_the_dead = false;
        for e in trace.events() {
            match &e.kind {
                EventKind::Dist(DistEvent::Start { name: n, pid, .. }) => {
                    live.insert(*pid);
                    if n == name {
                        sent.clear();
                    }
                }
                EventKind::Exit { pid, .. } => {
                    live.remove(pid);
                }
                EventKind::Cluster(ClusterEvent::Crash { node, .. }) => {
                    let gone: Vec<_> = live.iter().filter(|p| p.node() == *node).copied().collect();
                    for pid in gone {
                        live.remove(&pid);
                        crashed.insert(pid);
                    }
                }
                EventKind::Dist(DistEvent::Conflict {
                    name: n, winner, ..
                }) if n == name => to_the_dead = crashed.contains(winner),
                EventKind::Dist(DistEvent::Handoff { id, name: n, phase }) => match phase {
                    HandoffPhase::StateSent if n == name => {
                        sent.insert(*id);
                    }
                    HandoffPhase::Aborted { why } if to_the_dead && why == RESOLVED_AS_CONFLICT => {
                    }
                    HandoffPhase::Delivered { .. } | HandoffPhase::Aborted { .. } => {
                        sent.remove(id);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        !sent.is_empty()
    }

    /// Whether the node of a [`MembershipAgreement`](Invariant::MembershipAgreement)
    /// violation (`n3`) left out of its last view a node `k` that it had seen come up again
    /// after a `noconnection` `DOWN` of a process of `k` reached it while it was not serving
    /// (a `DOWN` Swarm postpones), with no `nodedown` of `k` since.
    fn dropped_while_up(violation: &Violation, trace: &Trace) -> bool {
        let Some(me): Option<u16> = violation
            .subject
            .strip_prefix('n')
            .and_then(|n| n.parse().ok())
        else {
            return false;
        };
        let mut serving = false;
        // Nodes with a postponed `noconnection` DOWN, and those of them seen up since.
        let mut postponed = std::collections::BTreeSet::new();
        let mut stale = std::collections::BTreeSet::new();
        let mut members = None;
        for e in trace.events() {
            match &e.kind {
                EventKind::Dist(DistEvent::Serving { node, on }) if *node == me => serving = *on,
                EventKind::Down {
                    watcher,
                    target,
                    reason,
                } if watcher.node() == me && !serving && reason.is_atom("noconnection") => {
                    postponed.insert(target.node());
                }
                EventKind::NodeUp { watcher, node }
                    if watcher.node() == me && postponed.remove(node) =>
                {
                    stale.insert(*node);
                }
                EventKind::NodeDown { watcher, node } if watcher.node() == me => {
                    stale.remove(node);
                }
                EventKind::Cluster(ClusterEvent::Restart { node, .. }) if *node == me => {
                    (serving, members) = (false, None);
                    postponed.clear();
                    stale.clear();
                }
                EventKind::Dist(DistEvent::Members { node, members: m }) if *node == me => {
                    members = Some(m);
                }
                _ => {}
            }
        }
        members.is_some_and(|m| stale.iter().any(|k| !m.contains(k)))
    }

    /// How a name's last instance ended.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum End {
        /// It crashed (an exit neither `normal` nor `shutdown`).
        Crashed,
        /// A crash of its node took it.
        WithItsNode,
        /// It exited normally, or has not ended.
        Otherwise,
    }

    /// How `name`'s last instance ended.
    fn last_end(trace: &Trace, name: &str) -> End {
        let mut last = None;
        let mut end = End::Otherwise;
        for e in trace.events() {
            match &e.kind {
                EventKind::Dist(DistEvent::Start { name: n, pid, .. }) if n == name => {
                    (last, end) = (Some(*pid), End::Otherwise);
                }
                EventKind::Exit { pid, reason } if Some(*pid) == last => {
                    let reason = crate::ExitReason::from_term(reason.clone());
                    let crashed = !reason.is_normal() && !reason.is_shutdown();
                    end = if crashed {
                        End::Crashed
                    } else {
                        End::Otherwise
                    };
                    last = None;
                }
                EventKind::Cluster(ClusterEvent::Crash { node, .. })
                    if last.is_some_and(|p| p.node() == *node) =>
                {
                    (last, end) = (None, End::WithItsNode);
                }
                _ => {}
            }
        }
        end
    }

    /// What the late call of a [`BoundedProgress`](Invariant::BoundedProgress) violation was.
    fn call_of<'t>(violation: &Violation, trace: &'t Trace) -> &'t str {
        let call = violation
            .events
            .first()
            .and_then(|&i| trace.events().get(i));
        match call.map(|e| &e.kind) {
            Some(EventKind::Dist(DistEvent::Call { what, .. })) => what,
            _ => "",
        }
    }
}
