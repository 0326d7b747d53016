//! One trace that keeps each invariant and one that breaks it (docs/cluster-invariants.md).
//!
//! One test per invariant, each with the traces that keep it and those that break it (hence the
//! file's length).
use super::*;

const K: &str = "k1";

fn a() -> Pid {
    Pid::new(1, 0, 3)
}
fn b() -> Pid {
    Pid::new(2, 0, 4)
}

/// A trace built event by event, one millisecond apart.
#[derive(Default)]
struct T(Trace);

impl T {
    fn dist(mut self, d: DistEvent) -> T {
        let at = self.0.len() as u64 * 1000;
        self.0.push(at, EventKind::Dist(d));
        self
    }
    fn at(mut self, at_ms: u64, kind: EventKind) -> T {
        self.0.push(at_ms * 1000, kind);
        self
    }
    fn cluster(self, c: ClusterEvent) -> T {
        let at = self.0.len() as u64;
        self.at(at, EventKind::Cluster(c))
    }
    fn start(self, pid: Pid) -> T {
        self.dist(DistEvent::Start {
            name: K.into(),
            pid,
            epoch: None,
        })
    }
    fn start_in(self, pid: Pid, epoch: u64) -> T {
        self.dist(DistEvent::Start {
            name: K.into(),
            pid,
            epoch: Some(epoch),
        })
    }
    fn desired(self, on: bool) -> T {
        self.dist(DistEvent::Desired { name: K.into(), on })
    }
    fn view(self, node: u16, pid: Option<Pid>) -> T {
        self.dist(DistEvent::View {
            node,
            name: K.into(),
            pid,
        })
    }
    fn exit(self, pid: Pid) -> T {
        let at = self.0.len() as u64;
        let reason = crate::term::Term::atom("shutdown");
        self.at(at, EventKind::Exit { pid, reason })
    }
    fn rest(self) -> T {
        self.cluster(ClusterEvent::AtRest)
    }
    fn check(&self, consistency: Consistency) -> Result<(), Invariant> {
        check(&self.0, consistency).map_err(|v| {
            assert!(!v.evidence.is_empty(), "{v}: no evidence");
            v.invariant
        })
    }
}

fn split() -> ClusterEvent {
    ClusterEvent::Partition {
        side: vec![1],
        one_way: false,
    }
}

#[test]
fn i1_one_instance_always_in_cp_and_at_rest_in_ap() {
    let healed = T::default()
        .start(a())
        .cluster(split())
        .start(b())
        .cluster(ClusterEvent::Heal)
        .exit(a())
        .rest();
    assert_eq!(healed.check(Consistency::Ap), Ok(()));
    assert_eq!(healed.check(Consistency::Cp), Err(Invariant::OneInstance));
    let duplicate = T::default().start(a()).start(b()).rest();
    assert_eq!(
        duplicate.check(Consistency::Ap),
        Err(Invariant::OneInstance)
    );
    let later = T::default().rest().start(a()).start(b());
    assert_eq!(later.check(Consistency::Ap), Err(Invariant::OneInstance));
}

/// CP with leases (docs/cp.md, "Leases"; docs/cluster-invariants.md, I1): an instance whose
/// node is paused can do nothing, so its name may start elsewhere once its lease is over; it
/// is then fenced, and must handle nothing after its node resumes, until it stops.
#[test]
fn i1_a_paused_nodes_instance_is_fenced_by_a_start_elsewhere() {
    let handled = DistEvent::Handled {
        pid: a(),
        from: Pid::new(3, 0, 9),
        seq: 1,
    };
    let paused = || {
        T::default()
            .start(a())
            .cluster(ClusterEvent::Pause { node: 1 })
            .start(b())
            .cluster(ClusterEvent::Resume { node: 1 })
    };
    assert_eq!(paused().exit(a()).check(Consistency::Cp), Ok(()));
    assert_eq!(
        paused()
            .dist(handled.clone())
            .exit(a())
            .check(Consistency::Cp),
        Err(Invariant::OneInstance)
    );
    // Not fenced when the other start came after the resume: two instances then.
    let resumed = T::default()
        .start(a())
        .cluster(ClusterEvent::Pause { node: 1 })
        .cluster(ClusterEvent::Resume { node: 1 })
        .start(b());
    assert_eq!(resumed.check(Consistency::Cp), Err(Invariant::OneInstance));
    // Started elsewhere in the microsecond its node resumed (one microsecond's events are
    // in the trace by source, not by cause): fenced, nothing of that node has run yet.
    let same_instant = T::default()
        .start(a())
        .cluster(ClusterEvent::Pause { node: 1 })
        .at(5, EventKind::Cluster(ClusterEvent::Resume { node: 1 }))
        .at(
            5,
            EventKind::Dist(DistEvent::Start {
                name: K.into(),
                pid: b(),
                epoch: None,
            }),
        )
        .at(
            5,
            EventKind::Exit {
                pid: a(),
                reason: crate::term::Term::atom("shutdown"),
            },
        );
    assert_eq!(same_instant.check(Consistency::Cp), Ok(()));
    // A handled message of a stopped instance is no longer judged as fenced.
    let stopped = paused().exit(a()).dist(handled);
    assert_eq!(stopped.check(Consistency::Cp), Ok(()));
    // A fenced instance still running at rest never stopped.
    assert_eq!(
        paused().rest().check(Consistency::Cp),
        Err(Invariant::OneInstance)
    );
}

#[test]
fn a_node_crash_ends_its_instances() {
    let t = T::default()
        .start(b())
        .cluster(ClusterEvent::Crash {
            node: 2,
            silent: false,
        })
        .start(a());
    assert_eq!(t.check(Consistency::Cp), Ok(()));
}

#[test]
fn i2_a_desired_name_runs_at_rest() {
    let kept = T::default()
        .desired(true)
        .start(a())
        .exit(a())
        .start(b())
        .view(1, Some(b()))
        .view(2, Some(b()))
        .rest();
    assert_eq!(kept.check(Consistency::Cp), Ok(()));
    let lost = T::default().desired(true).start(a()).exit(a()).rest();
    assert_eq!(lost.check(Consistency::Cp), Err(Invariant::NoLostChildren));
    let stopped = T::default()
        .desired(true)
        .start(a())
        .desired(false)
        .exit(a())
        .rest();
    assert_eq!(stopped.check(Consistency::Cp), Ok(()));
}

#[test]
fn i3_every_live_node_maps_the_name_to_its_instance() {
    let agreed = T::default()
        .start(a())
        .view(1, Some(a()))
        .view(2, Some(a()))
        .rest();
    assert_eq!(agreed.check(Consistency::Cp), Ok(()));
    let missing = T::default()
        .start(a())
        .view(1, Some(a()))
        .view(2, None)
        .rest();
    assert_eq!(
        missing.check(Consistency::Cp),
        Err(Invariant::RegistryAgreement)
    );
    // A node that is down at rest has no say.
    let down = T::default()
        .start(a())
        .view(1, Some(a()))
        .view(3, None)
        .cluster(ClusterEvent::Crash {
            node: 3,
            silent: true,
        })
        .rest();
    assert_eq!(down.check(Consistency::Cp), Ok(()));
}

#[test]
fn i4_no_registry_maps_a_name_to_a_dead_instance() {
    let cleaned = T::default()
        .start(a())
        .view(2, Some(a()))
        .exit(a())
        .view(2, None)
        .rest();
    assert_eq!(cleaned.check(Consistency::Cp), Ok(()));
    let dangling = T::default().start(a()).view(2, Some(a())).exit(a()).rest();
    assert_eq!(
        dangling.check(Consistency::Cp),
        Err(Invariant::NoDanglingEntries)
    );
}

fn handoff(phase: HandoffPhase) -> DistEvent {
    DistEvent::Handoff {
        id: 1,
        name: K.into(),
        phase,
    }
}

fn lookup(node: u16, pid: Pid) -> DistEvent {
    DistEvent::Lookup {
        node,
        name: K.into(),
        pid: Some(pid),
        call: 7,
    }
}

#[test]
fn i4_a_lookup_never_answers_an_instance_its_node_saw_die() {
    // docs/cluster-invariants.md I4: n2 saw a's DOWN, or n1 go down with a on it.
    let reason = crate::term::Term::atom("noconnection");
    let down = EventKind::Down {
        watcher: Pid::new(2, 0, 1),
        target: a(),
        reason,
    };
    let nodedown = EventKind::NodeDown {
        watcher: Pid::new(2, 0, 1),
        node: 1,
    };
    let crash = ClusterEvent::Crash {
        node: 1,
        silent: false,
    };
    let after_down = T::default()
        .start(a())
        .cluster(crash.clone())
        .at(2, down.clone())
        .dist(lookup(2, a()));
    assert_eq!(
        after_down.check(Consistency::Ap),
        Err(Invariant::NoDanglingEntries)
    );
    let after_nodedown = T::default()
        .start(a())
        .cluster(crash.clone())
        .at(2, nodedown.clone())
        .dist(lookup(2, a()));
    assert_eq!(
        after_nodedown.check(Consistency::Ap),
        Err(Invariant::NoDanglingEntries)
    );
    // A lookup from n2's next life, which heard nothing its previous life heard, may answer
    // stale (its registry rebuilt from a log that still names a: the CP registry, before
    // n1's `Down` commits; corpus/cp-restart-heals-no-partition.json).
    let reborn = T::default()
        .start(a())
        .cluster(crash.clone())
        .at(2, down.clone())
        .cluster(ClusterEvent::Restart {
            node: 2,
            creation: 1,
        })
        .dist(lookup(2, a()));
    assert_eq!(reborn.check(Consistency::Ap), Ok(()));
    // Before its node heard of it, a stale answer is allowed; so is a live instance.
    let unaware = T::default().start(a()).cluster(crash).dist(lookup(2, a()));
    assert_eq!(unaware.check(Consistency::Ap), Ok(()));
    let alive = T::default().start(a()).dist(lookup(2, a()));
    assert_eq!(alive.check(Consistency::Ap), Ok(()));
    // Asked before the news came: a registry that answers in order may answer stale,
    // unless it was holding calls when the news came (the lookup waited behind it).
    let asked = |t: T| {
        t.dist(DistEvent::Call {
            id: 7,
            node: 2,
            what: "whereis k1".into(),
            timeout_ms: 5000,
        })
    };
    let crash = ClusterEvent::Crash {
        node: 1,
        silent: false,
    };
    let queued = asked(T::default().start(a()))
        .cluster(crash.clone())
        .at(3, nodedown.clone())
        .dist(lookup(2, a()));
    assert_eq!(queued.check(Consistency::Ap), Ok(()));
    let held = asked(T::default().start(a()))
        .dist(DistEvent::Serving { node: 2, on: false })
        .cluster(crash)
        .at(4, nodedown)
        .dist(lookup(2, a()));
    assert_eq!(
        held.check(Consistency::Ap),
        Err(Invariant::NoDanglingEntries)
    );
}

#[test]
fn i5_every_live_instance_is_registered_somewhere_at_rest() {
    // docs/cluster-invariants.md I5: registered, fine; in no registry, an orphan (which
    // I5 names before I3 sees the registries disagree); no registries, not judged.
    let registered = T::default().start(a()).view(1, Some(a())).rest();
    assert_eq!(registered.check(Consistency::Ap), Ok(()));
    let orphan = T::default()
        .start(a())
        .view(1, Some(a()))
        .view(1, None)
        .rest();
    assert_eq!(
        orphan.check(Consistency::Ap),
        Err(Invariant::RegistrationFidelity)
    );
    let unrecorded = T::default().start(a()).rest();
    assert_eq!(unrecorded.check(Consistency::Ap), Ok(()));
}

/// S1 (docs/cluster-invariants.md): a message sent by name is handled once, in its
/// sender's order, and a move loses none, neither one sent to the old instance nor one
/// sent while no instance was registered.
#[test]
fn s1_messages_sent_by_name_survive_a_move_once_and_in_order() {
    let client = Pid::new(3, 0, 9);
    let sent = |seq, to| DistEvent::Sent {
        from: client,
        seq,
        name: K.into(),
        to,
        made_us: None,
    };
    let handled = |pid, seq| DistEvent::Handled {
        pid,
        from: client,
        seq,
    };
    let begin = HandoffPhase::Begin { from: a(), to: 2 };
    let moved = |t: T| {
        t.exit(a())
            .start(b())
            .dist(handoff(HandoffPhase::Delivered { pid: b() }))
    };
    let good = moved(
        T::default()
            .start(a())
            .dist(sent(0, Some(a())))
            .dist(handled(a(), 0))
            .dist(handoff(begin.clone()))
            .dist(handoff(HandoffPhase::StateSent)),
    )
    .dist(sent(1, Some(b())))
    .dist(handled(b(), 1))
    .rest();
    assert_eq!(good.check(Consistency::Cp), Ok(()));
    let lost_in_mailbox = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .dist(sent(0, Some(a())));
    assert_eq!(
        moved(lost_in_mailbox).check(Consistency::Cp),
        Err(Invariant::MessageRouting)
    );
    let dropped = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .exit(a())
        .dist(sent(0, None));
    assert_eq!(
        dropped.check(Consistency::Cp),
        Err(Invariant::MessageRouting)
    );
    // A "none" answered before the name was desired, whose answer came back while it
    // moved (corpus/cp-send-answered-before-its-name-was-desired.json), is not lost; one
    // made once it was desired is.
    let answered_late = |made_us| {
        T::default()
            .start(a())
            .desired(true)
            .dist(handoff(begin.clone()))
            .exit(a())
            .dist(DistEvent::Sent {
                from: client,
                seq: 0,
                name: K.into(),
                to: None,
                made_us: Some(made_us),
            })
    };
    assert_eq!(answered_late(0).check(Consistency::Cp), Ok(()));
    assert_eq!(
        answered_late(2_000).check(Consistency::Cp),
        Err(Invariant::MessageRouting)
    );
    let after_state = T::default()
        .start(a())
        .dist(sent(0, Some(a())))
        .dist(handoff(begin.clone()))
        .dist(handoff(HandoffPhase::StateSent))
        .dist(handled(a(), 0));
    assert_eq!(
        after_state.check(Consistency::Cp),
        Err(Invariant::MessageRouting)
    );
    let twice = T::default()
        .start(a())
        .dist(sent(0, Some(a())))
        .dist(handled(a(), 0))
        .dist(handled(a(), 0));
    assert_eq!(twice.check(Consistency::Cp), Err(Invariant::MessageRouting));
    let reordered = T::default()
        .start(a())
        .start(b())
        .dist(sent(0, Some(a())))
        .dist(sent(1, Some(b())))
        .dist(handled(b(), 1))
        .dist(handled(a(), 0));
    assert_eq!(
        reordered.check(Consistency::Ap),
        Err(Invariant::MessageRouting)
    );
    // A crash loses its mailbox, as in Erlang; a fault after the send may lose the
    // message on the way: neither is a routing failure.
    let crashed = T::default().start(a()).dist(sent(0, Some(a()))).at(
        10,
        EventKind::Exit {
            pid: a(),
            reason: crate::term::Term::atom("boom"),
        },
    );
    assert_eq!(crashed.check(Consistency::Cp), Ok(()));
    let faulted = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .dist(sent(0, Some(a())))
        .cluster(split());
    assert_eq!(moved(faulted).check(Consistency::Ap), Ok(()));
    // A move cut short by a fault (its target lost) is I2's and I6's to judge; an
    // aborted one moved nothing.
    let cut_short = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .exit(a())
        .cluster(ClusterEvent::Crash {
            node: 2,
            silent: false,
        })
        .dist(sent(0, None));
    assert_eq!(cut_short.check(Consistency::Ap), Ok(()));
    let aborted = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .dist(handoff(HandoffPhase::Aborted {
            why: "ignore".into(),
        }))
        .dist(sent(0, Some(a())))
        .exit(a());
    assert_eq!(aborted.check(Consistency::Ap), Ok(()));
    // A send recorded once the owner says it delivered it (the CP supervisor's): its
    // instance may handle it first, and even hand its state over before the sender hears.
    let answered_late = T::default()
        .start(a())
        .dist(handled(a(), 0))
        .dist(handoff(begin.clone()))
        .dist(handoff(HandoffPhase::StateSent))
        .dist(sent(0, Some(a())));
    assert_eq!(moved(answered_late).check(Consistency::Cp), Ok(()));
    // Handled twice, its send never recorded (its sender was told the call failed).
    let twice_unrecorded = T::default()
        .start(a())
        .dist(handled(a(), 0))
        .dist(handled(a(), 0));
    assert_eq!(
        twice_unrecorded.check(Consistency::Cp),
        Err(Invariant::MessageRouting)
    );
}

#[test]
fn i6_a_handoff_delivers_once_to_an_instance_after_the_old_one() {
    let begin = HandoffPhase::Begin { from: a(), to: 2 };
    let delivered = HandoffPhase::Delivered { pid: b() };
    let good = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .exit(a())
        .dist(handoff(HandoffPhase::StateSent))
        .start(b())
        .dist(handoff(delivered.clone()))
        .rest();
    assert_eq!(good.check(Consistency::Cp), Ok(()));
    let overlap = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .dist(handoff(delivered.clone()));
    assert_eq!(overlap.check(Consistency::Ap), Err(Invariant::Handoff));
    let twice = T::default()
        .dist(handoff(begin.clone()))
        .dist(handoff(delivered.clone()))
        .dist(handoff(delivered));
    assert_eq!(twice.check(Consistency::Ap), Err(Invariant::Handoff));
    let lost = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .exit(a())
        .rest();
    assert_eq!(lost.check(Consistency::Ap), Err(Invariant::Handoff));
    // With a fault in the run, a handoff may end without delivery (I2 then judges).
    let faulted = T::default()
        .start(a())
        .dist(handoff(begin.clone()))
        .exit(a())
        .cluster(ClusterEvent::Crash {
            node: 2,
            silent: false,
        })
        .rest();
    assert_eq!(faulted.check(Consistency::Ap), Ok(()));
    // One begun after the last fault must end all the same (exactly once when nothing
    // failed since: the CP supervisor's moves back to a node up again follow a fault).
    let after_the_fault = T::default()
        .cluster(ClusterEvent::Crash {
            node: 3,
            silent: false,
        })
        .start(a())
        .dist(handoff(begin.clone()))
        .exit(a())
        .rest();
    assert_eq!(
        after_the_fault.check(Consistency::Cp),
        Err(Invariant::Handoff)
    );
    // A state delivered after its handoff was aborted (the old instance ran on, or ran
    // again, without it).
    let after_abort = T::default()
        .start(a())
        .dist(handoff(begin))
        .dist(handoff(HandoffPhase::Aborted {
            why: "timed out".into(),
        }))
        .exit(a())
        .start(b())
        .dist(handoff(HandoffPhase::Delivered { pid: b() }));
    assert_eq!(after_abort.check(Consistency::Cp), Err(Invariant::Handoff));
}

fn conflict(state_delivered: bool) -> DistEvent {
    DistEvent::Conflict {
        name: K.into(),
        winner: a(),
        loser: b(),
        state_delivered,
    }
}

#[test]
fn i7_a_conflict_hands_the_losers_state_over_once_per_heal() {
    // docs/cluster-invariants.md I7 (SWARM.md: at most one delivery per name and heal).
    let other_loser = DistEvent::Conflict {
        name: K.into(),
        winner: a(),
        loser: Pid::new(3, 0, 9),
        state_delivered: true,
    };
    let resolved = T::default()
        .dist(conflict(true))
        .cluster(ClusterEvent::Heal)
        .dist(other_loser.clone());
    assert_eq!(resolved.check(Consistency::Ap), Ok(()));
    let dropped = T::default().dist(conflict(false));
    assert_eq!(
        dropped.check(Consistency::Ap),
        Err(Invariant::ConflictResolution)
    );
    let twice = T::default().dist(conflict(true)).dist(conflict(true));
    assert_eq!(
        twice.check(Consistency::Ap),
        Err(Invariant::ConflictResolution)
    );
    // Two losers of one heal go to the same winner; two winners are two picks.
    let two_losers = T::default().dist(conflict(true)).dist(other_loser.clone());
    assert_eq!(two_losers.check(Consistency::Ap), Ok(()));
    let two_winners = T::default().dist(conflict(true)).dist(DistEvent::Conflict {
        name: K.into(),
        winner: Pid::new(3, 0, 10),
        loser: Pid::new(3, 0, 9),
        state_delivered: true,
    });
    assert_eq!(
        two_winners.check(Consistency::Ap),
        Err(Invariant::ConflictResolution)
    );
    // A winner that ended hands the name on: a later loser's state goes to the next
    // instance (docs/cp.md, "AP mode": owed, or released and passed on).
    let ended = T::default()
        .start(a())
        .dist(conflict(true))
        .exit(a())
        .dist(DistEvent::Conflict {
            name: K.into(),
            winner: Pid::new(3, 0, 10),
            loser: Pid::new(3, 0, 9),
            state_delivered: true,
        });
    assert_eq!(ended.check(Consistency::Ap), Ok(()));
    // A winner that loses in turn hands on what it won: a chain, not a second winner.
    let chained = T::default().dist(conflict(true)).dist(DistEvent::Conflict {
        name: K.into(),
        winner: Pid::new(3, 0, 10),
        loser: a(),
        state_delivered: true,
    });
    assert_eq!(chained.check(Consistency::Ap), Ok(()));
    // A resume ends a split as a heal does; but one loser's state is delivered once, whatever
    // came between (the CP supervisor in AP mode, docs/cp.md "AP mode").
    let resumed = T::default()
        .dist(conflict(true))
        .cluster(ClusterEvent::Resume { node: 2 })
        .dist(other_loser);
    assert_eq!(resumed.check(Consistency::Ap), Ok(()));
    let again = T::default()
        .dist(conflict(true))
        .cluster(ClusterEvent::Heal)
        .dist(conflict(true));
    assert_eq!(
        again.check(Consistency::Ap),
        Err(Invariant::ConflictResolution)
    );
    // A loser that gave its state has it delivered by rest, unless its name is no longer
    // desired or a node lost its memory since (docs/cp.md, "AP mode": exactly once unless a
    // node holding the state crashed).
    let lost = || DistEvent::Lost {
        name: K.into(),
        loser: b(),
    };
    // Desired, running, and a loser gave its state.
    let after_loss = || T::default().desired(true).start(a()).dist(lost());
    let delivered = after_loss().dist(conflict(true)).rest();
    assert_eq!(delivered.check(Consistency::Ap), Ok(()));
    let never = after_loss().rest();
    assert_eq!(
        never.check(Consistency::Ap),
        Err(Invariant::ConflictResolution)
    );
    // A partition (here its heal) loses messages, not states: they are sent again.
    let partitioned = after_loss().cluster(ClusterEvent::Heal).rest();
    assert_eq!(
        partitioned.check(Consistency::Ap),
        Err(Invariant::ConflictResolution)
    );
    let forgotten = after_loss()
        .cluster(ClusterEvent::Crash {
            node: 2,
            silent: false,
        })
        .rest();
    assert_eq!(forgotten.check(Consistency::Ap), Ok(()));
    let terminated = after_loss().desired(false).exit(a()).rest();
    assert_eq!(terminated.check(Consistency::Ap), Ok(()));
    // Terminated and started again: a new child, which the old loser's state does not reach.
    let anew = T::default()
        .desired(true)
        .dist(lost())
        .desired(false)
        .desired(true)
        .start(a())
        .rest();
    assert_eq!(anew.check(Consistency::Ap), Ok(()));
}

fn call(timeout_ms: u64) -> DistEvent {
    DistEvent::Call {
        id: 7,
        node: 1,
        what: "whereis k1".into(),
        timeout_ms,
    }
}

/// The instance `n` of the name on node 1, for a crash loop.
fn nth(n: u32) -> Pid {
    Pid::new(1, 0, u64::from(10 + n))
}

/// `name` runs and crashes `crashes` times in a row, `gap_ms` apart, under an intensity
/// of 3 in 5 s.
fn crash_loop(crashes: u32, gap_ms: u64) -> T {
    let mut t = T::default().desired(true).dist(DistEvent::Intensity {
        name: K.into(),
        max_restarts: 3,
        max_seconds: 5,
    });
    let mut at = 10;
    for n in 0..=crashes {
        let start = DistEvent::Start {
            name: K.into(),
            pid: nth(n),
            epoch: None,
        };
        t = t.at(at, EventKind::Dist(start));
        if n < crashes {
            let reason = crate::term::Term::atom("boom");
            t = t.at(
                at + 1,
                EventKind::Exit {
                    pid: nth(n),
                    reason,
                },
            );
        }
        at += gap_ms;
    }
    t
}

#[test]
fn i8_crash_restarts_stay_within_the_names_intensity_across_nodes() {
    // docs/cluster-invariants.md I8: three restarts in 5 s are allowed, a fourth is a
    // crash loop nothing stops (swarm_dynamic_supervisor's crash path counts none).
    assert_eq!(crash_loop(3, 100).check(Consistency::Ap), Ok(()));
    assert_eq!(
        crash_loop(4, 100).check(Consistency::Ap),
        Err(Invariant::RestartIntensity)
    );
    // Spread out, as many as it likes.
    assert_eq!(crash_loop(8, 2000).check(Consistency::Ap), Ok(()));
    // A shutdown is not a crash, and a name nobody asked for is not judged.
    let shut = T::default()
        .desired(true)
        .dist(DistEvent::Intensity {
            name: K.into(),
            max_restarts: 0,
            max_seconds: 5,
        })
        .start(a())
        .exit(a())
        .start(b());
    assert_eq!(shut.check(Consistency::Ap), Ok(()));
    // Given up (no longer desired) after three restarts, then desired anew: a new child,
    // whose restarts count afresh (docs/cp.md, "Restarts in place, counted by the group").
    let boom = || crate::term::Term::atom("boom");
    let desired = |on| EventKind::Dist(DistEvent::Desired { name: K.into(), on });
    let again = crash_loop(3, 100)
        .at(
            600,
            EventKind::Exit {
                pid: nth(3),
                reason: boom(),
            },
        )
        .at(610, desired(false))
        .at(620, desired(true))
        .at(
            700,
            EventKind::Dist(DistEvent::Start {
                name: K.into(),
                pid: a(),
                epoch: None,
            }),
        );
    assert_eq!(again.check(Consistency::Cp), Ok(()));
    // An instance of the given-up desire, fenced on a paused node, crashes after the give-up:
    // the new desire's first start is not a restart of it, so its three restarts are within
    // the intensity (corpus/cp-crash-of-an-old-desire.json).
    let mut late = crash_loop(3, 100)
        .at(400, desired(false))
        .at(
            600,
            EventKind::Exit {
                pid: nth(3),
                reason: boom(),
            },
        )
        .at(620, desired(true));
    for n in 4..8 {
        let at = 700 + 100 * u64::from(n);
        let start = DistEvent::Start {
            name: K.into(),
            pid: nth(n),
            epoch: None,
        };
        late = late.at(at, EventKind::Dist(start));
        if n < 7 {
            let pid = nth(n);
            late = late.at(
                at + 1,
                EventKind::Exit {
                    pid,
                    reason: boom(),
                },
            );
        }
    }
    assert_eq!(late.check(Consistency::Cp), Ok(()));
    // The same, when the fenced instance crashes only after the new desire: it is not the
    // name's live instance, so its crash is nobody's restart.
    let start = |pid| {
        EventKind::Dist(DistEvent::Start {
            name: K.into(),
            pid,
            epoch: None,
        })
    };
    let crash = |pid| EventKind::Exit {
        pid,
        reason: boom(),
    };
    let mut fenced = T::default()
        .at(0, desired(true))
        .at(
            1,
            EventKind::Dist(DistEvent::Intensity {
                name: K.into(),
                max_restarts: 3,
                max_seconds: 5,
            }),
        )
        .at(2, start(b()))
        .at(3, EventKind::Cluster(ClusterEvent::Pause { node: 2 }))
        .at(10, start(nth(0)))
        .at(20, desired(false))
        .at(
            21,
            EventKind::Exit {
                pid: nth(0),
                reason: crate::term::Term::atom("shutdown"),
            },
        )
        .at(30, desired(true))
        .at(40, EventKind::Cluster(ClusterEvent::Resume { node: 2 }))
        .at(50, crash(b()));
    for n in 1..5 {
        let at = 100 * u64::from(n);
        fenced = fenced.at(at, start(nth(n)));
        if n < 4 {
            fenced = fenced.at(at + 3, crash(nth(n)));
        }
    }
    assert_eq!(fenced.check(Consistency::Cp), Ok(()));
}

fn members(node: u16, members: &[u16]) -> DistEvent {
    DistEvent::Members {
        node,
        members: members.to_vec(),
    }
}

#[test]
fn i10_live_nodes_agree_on_the_members_at_rest() {
    // docs/cluster-invariants.md I10: every node counts the live ones, a crashed node
    // is left out, and a restarted one counts again from what it records.
    let agreed = T::default()
        .dist(members(1, &[1, 2]))
        .dist(members(2, &[1, 2]))
        .rest();
    assert_eq!(agreed.check(Consistency::Ap), Ok(()));
    let split = T::default()
        .dist(members(1, &[1, 2]))
        .dist(members(2, &[2]))
        .rest();
    assert_eq!(
        split.check(Consistency::Ap),
        Err(Invariant::MembershipAgreement)
    );
    let crashed = T::default()
        .dist(members(1, &[1, 2, 3]))
        .dist(members(2, &[1, 2, 3]))
        .dist(members(3, &[1, 2, 3]))
        .cluster(ClusterEvent::Crash {
            node: 3,
            silent: false,
        })
        .dist(members(1, &[1, 2]))
        .dist(members(2, &[1, 2]))
        .rest();
    assert_eq!(crashed.check(Consistency::Ap), Ok(()));
    let stale = T::default()
        .dist(members(1, &[1, 2]))
        .dist(members(2, &[1, 2]))
        .cluster(ClusterEvent::Restart {
            node: 2,
            creation: 1,
        })
        .dist(members(2, &[2]))
        .rest();
    assert_eq!(
        stale.check(Consistency::Ap),
        Err(Invariant::MembershipAgreement)
    );
}

#[test]
fn i10_cp_starts_never_go_back_to_an_older_ownership_epoch() {
    // SWARM.md I10 ("ownership epochs strictly increase over time, and no two nodes hold a
    // valid lease on the same epoch"), as docs/cluster-invariants.md reads it from the
    // starts: k1 moves from n1 to n2 at epoch 2, and a restart in place keeps its epoch.
    let a2 = || Pid::new(1, 0, 5);
    let moved = T::default()
        .start_in(a(), 1)
        .exit(a())
        .start_in(a2(), 1)
        .exit(a2())
        .start_in(b(), 2);
    assert_eq!(moved.check(Consistency::Cp), Ok(()));
    // n2 starts it from its old view (epoch 1), after n1's start at epoch 2.
    let stale = T::default().start_in(a(), 2).exit(a()).start_in(b(), 1);
    assert_eq!(
        stale.check(Consistency::Cp),
        Err(Invariant::MembershipAgreement)
    );
    // Two owners at one epoch.
    let shared = T::default().start_in(a(), 1).exit(a()).start_in(b(), 1);
    assert_eq!(
        shared.check(Consistency::Cp),
        Err(Invariant::MembershipAgreement)
    );
    // AP mode's cut-off side keeps acting on its old ownership until the heal (docs/cp.md,
    // "AP mode"), and a design without epochs (Swarm's) records none.
    assert_eq!(stale.check(Consistency::Ap), Ok(()));
    let unnumbered = T::default()
        .start(a())
        .exit(a())
        .start(b())
        .exit(b())
        .start(a2());
    assert_eq!(unnumbered.check(Consistency::Cp), Ok(()));
}

#[test]
fn s4_cp_every_node_lists_the_live_instance_of_a_grouped_name_and_nothing_else() {
    // docs/cluster-invariants.md S4, CP: k1 is wanted in g; at rest every node whose process
    // groups ever listed anything lists k1's live instance in g, and no other process.
    let grouped = |member| DistEvent::Grouped {
        scope: "s".into(),
        name: K.into(),
        group: "g".into(),
        member,
    };
    let listed = |node: u16, members: &[Pid]| DistEvent::GroupMembers {
        node,
        scope: "s".into(),
        group: "g".into(),
        members: members.to_vec(),
    };
    let b = Pid::new(1, 0, 9);
    let started = |node: u16| DistEvent::GroupsStarted {
        node,
        scope: "s".into(),
    };
    let restarted = || {
        T::default()
            .dist(started(1))
            .dist(started(2))
            .desired(true)
            .start(a())
            .dist(grouped(true))
            .dist(listed(1, &[a()]))
            .dist(listed(2, &[a()]))
            .exit(a())
            .dist(listed(1, &[]))
            .dist(listed(2, &[]))
            .start(b)
    };
    let kept = restarted()
        .dist(listed(1, &[b]))
        .dist(listed(2, &[b]))
        .rest();
    assert_eq!(kept.check(Consistency::Cp), Ok(()));
    // n2 never hears of the new instance.
    let missed = restarted().dist(listed(1, &[b])).rest();
    assert_eq!(
        missed.check(Consistency::Cp),
        Err(Invariant::GroupMembership)
    );
    // A node down at rest is not judged.
    let down = restarted()
        .dist(listed(1, &[b]))
        .cluster(ClusterEvent::Crash {
            node: 2,
            silent: false,
        })
        .rest();
    assert_eq!(down.check(Consistency::Cp), Ok(()));
    let rebooted = || {
        restarted()
            .dist(listed(1, &[b]))
            .dist(listed(2, &[b]))
            .cluster(ClusterEvent::Restart {
                node: 2,
                creation: 1,
            })
    };
    // Its scope starts again, and never hears of b.
    let empty = rebooted().dist(started(2)).rest();
    assert_eq!(
        empty.check(Consistency::Cp),
        Err(Invariant::GroupMembership)
    );
    let synced = rebooted().dist(started(2)).dist(listed(2, &[b])).rest();
    assert_eq!(synced.check(Consistency::Cp), Ok(()));
    // Listed twice.
    let twice = restarted()
        .dist(listed(1, &[b]))
        .dist(listed(2, &[b, b]))
        .rest();
    assert_eq!(
        twice.check(Consistency::Cp),
        Err(Invariant::GroupMembership)
    );
    // Another scope's groups are not judged.
    let other = restarted()
        .dist(listed(1, &[b]))
        .dist(listed(2, &[b]))
        .dist(DistEvent::GroupMembers {
            node: 1,
            scope: "pg".into(),
            group: "g".into(),
            members: vec![a()],
        })
        .rest();
    assert_eq!(other.check(Consistency::Cp), Ok(()));
    // A restarted node whose scope has not started again lists nothing, and is not judged.
    let rebooted = rebooted().rest();
    assert_eq!(rebooted.check(Consistency::Cp), Ok(()));
    // Left the group, and still listed by n2.
    let stale = restarted()
        .dist(listed(1, &[b]))
        .dist(listed(2, &[b]))
        .dist(grouped(false))
        .dist(listed(1, &[]))
        .rest();
    assert_eq!(
        stale.check(Consistency::Cp),
        Err(Invariant::GroupMembership)
    );
}

#[test]
fn s4_a_name_keeps_its_groups_across_restarts_at_rest() {
    // docs/cluster-invariants.md S4 (bitwalker/swarm#26): k1 joined g; after a restart,
    // a registry that counts the new instance in g keeps it, one that does not breaks it.
    let groups = |node: u16, groups: &[&str]| DistEvent::Groups {
        node,
        name: K.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    let joined = DistEvent::Joined {
        name: K.into(),
        group: "g".into(),
        pid: a(),
    };
    let kept = T::default()
        .desired(true)
        .start(a())
        .view(1, Some(a()))
        .dist(joined.clone())
        .dist(groups(1, &["g"]))
        .exit(a())
        .start(b())
        .view(1, Some(b()))
        .rest();
    assert_eq!(kept.check(Consistency::Ap), Ok(()));
    let lost = T::default()
        .desired(true)
        .start(a())
        .view(1, Some(a()))
        .dist(joined)
        .dist(groups(1, &["g"]))
        .exit(a())
        .view(1, None)
        .start(b())
        .view(1, Some(b()))
        .rest();
    assert_eq!(lost.check(Consistency::Ap), Err(Invariant::GroupMembership));
    // A join taken on a stale entry of a dead instance binds no later one.
    let stale = T::default()
        .desired(true)
        .start(a())
        .exit(a())
        .dist(DistEvent::Joined {
            name: K.into(),
            group: "g".into(),
            pid: a(),
        })
        .start(b())
        .view(1, Some(b()))
        .rest();
    assert_eq!(stale.check(Consistency::Ap), Ok(()));
}

#[test]
fn i9_every_call_returns_within_its_timeout() {
    let ret = || DistEvent::Return {
        id: 7,
        result: "undefined".into(),
    };
    let prompt = T::default().dist(call(5)).dist(ret());
    assert_eq!(prompt.check(Consistency::Ap), Ok(()));
    let late = T::default().dist(call(5)).at(20, EventKind::Dist(ret()));
    assert_eq!(late.check(Consistency::Ap), Err(Invariant::BoundedProgress));
    let hung = T::default()
        .dist(call(5))
        .at(20, EventKind::Line("later".into()));
    assert_eq!(hung.check(Consistency::Ap), Err(Invariant::BoundedProgress));
    // A call whose node crashed ended with its caller; the same microsecond counts.
    let crashed = |at_ms| {
        T::default()
            .dist(call(5))
            .at(
                at_ms,
                EventKind::Cluster(ClusterEvent::Crash {
                    node: 1,
                    silent: false,
                }),
            )
            .at(20, EventKind::Line("later".into()))
    };
    assert_eq!(crashed(2).check(Consistency::Ap), Ok(()));
    let same = T::default()
        .at(
            3,
            EventKind::Cluster(ClusterEvent::Crash {
                node: 1,
                silent: false,
            }),
        )
        .at(3, EventKind::Dist(call(5)))
        .at(20, EventKind::Line("later".into()));
    assert_eq!(same.check(Consistency::Ap), Ok(()));
    // Its node paused for 10 ms: 10 ms more, not 11.
    let paused = |return_ms| {
        T::default()
            .dist(call(5))
            .at(2, EventKind::Cluster(ClusterEvent::Pause { node: 1 }))
            .at(12, EventKind::Cluster(ClusterEvent::Resume { node: 1 }))
            .at(return_ms, EventKind::Dist(ret()))
    };
    assert_eq!(paused(14).check(Consistency::Ap), Ok(()));
    assert_eq!(
        paused(17).check(Consistency::Ap),
        Err(Invariant::BoundedProgress)
    );
}

#[test]
fn s2_every_instance_runs_where_its_placement_puts_it_at_rest() {
    // docs/cluster-invariants.md S2: with node 2 the place of every name, an instance on
    // node 1 is misplaced at rest; without a placement rule nothing is judged.
    fn on_two(_: &str, members: &BTreeSet<u16>) -> Option<u16> {
        members.contains(&2).then_some(2)
    }
    let members = |node| DistEvent::Members {
        node,
        members: vec![1, 2],
    };
    let t = |pid| {
        T::default()
            .dist(members(1))
            .dist(members(2))
            .start(pid)
            .view(1, Some(pid))
            .view(2, Some(pid))
            .rest()
    };
    assert_eq!(
        check_placed(&t(b()).0, Consistency::Ap, Some(on_two)),
        Ok(())
    );
    let misplaced = check_placed(&t(a()).0, Consistency::Ap, Some(on_two));
    assert_eq!(
        misplaced.map_err(|v| v.invariant),
        Err(Invariant::Placement)
    );
    assert_eq!(t(a()).check(Consistency::Ap), Ok(()));
}

#[test]
fn s3_a_terminated_name_does_not_start_again_unless_started_again() {
    let restarted = T::default()
        .desired(true)
        .start(a())
        .desired(false)
        .exit(a())
        .desired(true)
        .start(b());
    assert_eq!(restarted.check(Consistency::Cp), Ok(()));
    // A start records the name desired when it returns, after its instance started.
    let started_again = T::default()
        .desired(true)
        .start(a())
        .desired(false)
        .exit(a())
        .start(b())
        .desired(true);
    assert_eq!(started_again.check(Consistency::Cp), Ok(()));
    // A start after the resurrected instance ended does not excuse it.
    let excused_late = T::default()
        .desired(true)
        .start(a())
        .desired(false)
        .exit(a())
        .start(b())
        .exit(b())
        .desired(true);
    assert_eq!(
        excused_late.check(Consistency::Cp),
        Err(Invariant::NoResurrection)
    );
    let resurrected = T::default()
        .desired(true)
        .start(a())
        .desired(false)
        .exit(a())
        .start(b());
    assert_eq!(
        resurrected.check(Consistency::Cp),
        Err(Invariant::NoResurrection)
    );
}

/// I1 in the CP cluster registry (docs/cp.md, "Registry"): no two processes that run hold a
/// name; a holder whose name went with its node has ended, unless its node is paused (fenced,
/// and it must not run at rest); a log position recorded twice counts once; a registration
/// committed after its process ended gives the name to no one.
#[test]
fn i1_registered_names_have_one_running_holder() {
    let named = |pid, change, index| DistEvent::Registered {
        name: K.into(),
        pid,
        change,
        index,
    };
    let (on, off, dropped) = (NameChange::On, NameChange::Off, NameChange::Dropped);
    let handed = T::default()
        .dist(named(a(), on, 1))
        .dist(named(a(), off, 2))
        .dist(named(b(), on, 3))
        .rest();
    assert_eq!(handed.check(Consistency::Cp), Ok(()));
    let two = T::default().dist(named(a(), on, 1)).dist(named(b(), on, 2));
    assert_eq!(two.check(Consistency::Cp), Err(Invariant::OneInstance));
    // The first holder ended first: its name is free.
    let ended = T::default()
        .dist(named(a(), on, 1))
        .exit(a())
        .dist(named(b(), on, 2));
    assert_eq!(ended.check(Consistency::Cp), Ok(()));
    // A new leader applying position 1 again after 2 and 3 records it again.
    let replayed = handed.dist(named(a(), on, 1));
    assert_eq!(replayed.check(Consistency::Cp), Ok(()));
    // Committed after its process ended (asked before): nobody holds it.
    let late = T::default()
        .exit(a())
        .dist(named(a(), on, 1))
        .dist(named(b(), on, 2));
    assert_eq!(late.check(Consistency::Cp), Ok(()));
    // Dropped with its node while it still runs: its lease should have stopped it.
    let running = T::default()
        .dist(named(a(), on, 1))
        .dist(named(a(), dropped, 2));
    assert_eq!(running.check(Consistency::Cp), Err(Invariant::OneInstance));
    // One `Down` drops two names at one log position: each is judged.
    let c = Pid::new(1, 0, 5);
    let two_dropped = |c_ends: bool| {
        let named_as = |name: &str, pid, change| DistEvent::Registered {
            name: name.into(),
            pid,
            change,
            index: 9,
        };
        let t = T::default()
            .dist(named(a(), on, 1))
            .dist(DistEvent::Registered {
                name: "k2".into(),
                pid: c,
                change: on,
                index: 2,
            })
            .exit(a());
        let t = if c_ends { t.exit(c) } else { t };
        t.dist(named_as(K, a(), dropped))
            .dist(named_as("k2", c, dropped))
            .rest()
    };
    assert_eq!(two_dropped(true).check(Consistency::Cp), Ok(()));
    assert_eq!(
        two_dropped(false).check(Consistency::Cp),
        Err(Invariant::OneInstance)
    );
    // Its node's crash in the very microsecond of the drop, after it in the merged trace.
    let crash = ClusterEvent::Crash {
        node: 1,
        silent: false,
    };
    let same = T::default()
        .dist(named(a(), on, 1))
        .at(5, EventKind::Dist(named(a(), dropped, 2)))
        .at(5, EventKind::Cluster(crash.clone()))
        .at(6, EventKind::Line("later".into()));
    assert_eq!(same.check(Consistency::Cp), Ok(()));
    let crashed = T::default()
        .dist(named(a(), on, 1))
        .cluster(ClusterEvent::Crash {
            node: 1,
            silent: false,
        })
        .dist(named(a(), dropped, 2))
        .dist(named(b(), on, 3));
    assert_eq!(crashed.check(Consistency::Cp), Ok(()));
    // Paused: fenced, and it must end by the time the cluster is at rest.
    let paused = || {
        T::default()
            .dist(named(a(), on, 1))
            .cluster(ClusterEvent::Pause { node: 1 })
            .dist(named(a(), dropped, 2))
            .dist(named(b(), on, 3))
    };
    assert_eq!(
        paused().rest().check(Consistency::Cp),
        Err(Invariant::OneInstance)
    );
    assert_eq!(paused().exit(a()).rest().check(Consistency::Cp), Ok(()));
}
