//! A node's lease on the shards it owns (docs/cp.md, "Leases"): what lets the majority give a
//! lost node's shards to others without ever running a name twice.
//!
//! Each node's keeper ([`keep`]) asks the group's leader for a lease three times a lease
//! ([`DistConfig::lease`]), so that two renewals may fail before it lapses. The leader
//! answers once a majority confirms it still leads, and counts the lease from then; the node
//! counts it from when it asked, for the lease less the drift margin
//! ([`DistConfig::drift_margin`]). A node that cannot renew stops its children when its own
//! count runs out ([`enforce`]: `{shutdown, lease_lost}`, then `kill`); the leader
//! commits it down (its shards to the nodes that are up) only once its count, from a later
//! moment and with the fencing margin added, has run out too. While the clocks drift apart
//! by less than the margins allow, the old owner has stopped before the new one starts
//! (docs/cp.md gives the safe band).
//!
//! A node committed down is refused leases until it asks for them again (`Up`); it then owns
//! nothing until shards are moved to it.
//!
//! ```
//! use otpsim::cluster::cp::lease::Lease;
//! use otpsim::rt::{Duration, Instant};
//! use otpsim::Pid;
//!
//! # #[cfg(madsim)] madsim::runtime::Runtime::new().block_on(async {
//! let lease = Lease::default();
//! let now = Instant::now();
//! // No lease yet: nothing may run under it.
//! assert_eq!(lease.left(now), Duration::ZERO);
//! assert!(!lease.hold(Pid::new(1, 0, 7), now));
//! lease.renewed(now + Duration::from_secs(2));
//! assert!(lease.hold(Pid::new(1, 0, 8), now));
//! assert_eq!(lease.left(now), Duration::from_secs(2));
//! // Held twice (a child registered under a name, say): released twice before it is not.
//! assert!(lease.hold(Pid::new(1, 0, 8), now));
//! lease.release(Pid::new(1, 0, 8));
//! // Lapsed: the pids held under it are the ones to stop.
//! assert_eq!(lease.lapse(now + Duration::from_secs(3)), vec![Pid::new(1, 0, 8)]);
//! assert_eq!(lease.left(now), Duration::ZERO);
//! # });
//! ```

use super::consensus::{self, ConsensusError};
use super::control::{Answer, Command, Control, Query};
use super::supervisor::DistConfig;
use crate::rt::{Duration, Instant};
use crate::{ExitReason, Pid, Process, Term};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How much of its lease a node must have left to start a child.
pub const START_WITHIN: Duration = Duration::from_millis(500);

/// The longest a renewal waits for the leader.
const RENEW_WITHIN: Duration = Duration::from_secs(1);

/// The lease a node holds and the children that run under it, shared by the node's keeper
/// and its supervisor (one per incarnation of the node).
#[derive(Clone, Debug, Default)]
pub struct Lease(Arc<Mutex<Held>>);

#[derive(Debug, Default)]
struct Held {
    /// Until when, on the node's clock; none when lapsed or never granted.
    until: Option<Instant>,
    /// The pids held, each with how many times (a child may also be a registered process).
    pids: BTreeMap<Pid, u32>,
}

impl Lease {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // Only ever locked for a few statements that cannot panic.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the lease still holds at `now` (zero when lapsed or never granted).
    pub fn left(&self, now: Instant) -> Duration {
        self.held()
            .until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// Runs `pid` under the lease, to be stopped when it lapses: `false` (and not held) if
    /// the lease does not hold at `now`, in which case the caller stops it. Each hold is
    /// [released](Self::release) once.
    pub fn hold(&self, pid: Pid, now: Instant) -> bool {
        let mut held = self.held();
        if held.until.is_some_and(|until| until > now) {
            *held.pids.entry(pid).or_default() += 1;
            true
        } else {
            false
        }
    }

    /// One hold of `pid` ends: it no longer runs, or no longer needs the lease.
    pub fn release(&self, pid: Pid) {
        let mut held = self.held();
        if let Some(count) = held.pids.get_mut(&pid) {
            *count -= 1;
            if *count == 0 {
                held.pids.remove(&pid);
            }
        }
    }

    /// The lease holds until `until` (a renewal; an earlier end than the one held is ignored).
    pub fn renewed(&self, until: Instant) {
        let mut held = self.held();
        if held.until.is_none_or(|u| u < until) {
            held.until = Some(until);
        }
    }

    /// If the lease no longer holds at `now`, ends it: the pids that ran under it, to stop.
    pub fn lapse(&self, now: Instant) -> Vec<Pid> {
        let mut held = self.held();
        if held.until.is_some_and(|until| until > now) {
            return Vec::new();
        }
        held.until = None;
        std::mem::take(&mut held.pids).into_keys().collect()
    }
}

/// Why a child is stopped when its node's lease lapses.
pub fn lease_lost() -> ExitReason {
    ExitReason::ShutdownWith(Term::atom("lease_lost"))
}

/// Stops `pid` because the lease lapsed: `{shutdown, lease_lost}`, and `kill` at once after
/// it, so that a child that traps exits stops too (it gets no time to act on the message).
pub fn stop(p: &Process, pid: Pid) {
    p.exit(pid, lease_lost());
    p.exit(pid, ExitReason::Kill);
}

/// The enforcer of `lease` on this node, as the calling process: it stops the children held
/// under the lease when it lapses, at that moment, whatever the keeper is waiting for.
pub async fn enforce(p: Process, lease: Lease) -> ExitReason {
    // While no lease holds, nothing is held; a child starts only with `START_WITHIN` of a
    // lease left, so looking again that often sees every new lease before it can lapse.
    let idle = START_WITHIN;
    loop {
        stop_lapsed(&p, &lease);
        let left = lease.left(p.now());
        p.sleep(if left.is_zero() { idle } else { left }).await;
    }
}

/// The keeper of `lease` on this node, as the calling process, until the node goes down: it
/// renews the lease, asks for leases again when the group committed this node down, and, on
/// the leader, commits down the members whose lease lapsed with the fencing margin. (The
/// children held under the lease are stopped by [`enforce`], on time whatever the keeper
/// waits for.)
pub async fn keep(p: Process, config: DistConfig, lease: Lease) -> ExitReason {
    let me = p.pid().node();
    let group = config.raft.name.clone();
    let lasts = config.lease.saturating_sub(config.drift_margin);
    let renew_every = (config.lease / 3).max(Duration::from_millis(1));
    let mut renew_at = p.now();
    loop {
        // A wait for the group lasts at most half of what is left of the lease, so that a
        // renewal can still be tried before it lapses.
        let left = lease.left(p.now());
        let within = if left.is_zero() {
            RENEW_WITHIN
        } else {
            (left / 2).min(RENEW_WITHIN)
        };
        let next_lapse = down_lapsed(&p, &config, within).await;
        if p.now() >= renew_at {
            let asked = p.now();
            renew_at = asked + renew_every;
            match consensus::lease::<Control>(&p, &group, me, within).await {
                Ok(()) => lease.renewed(asked + lasts),
                Err(ConsensusError::LeaseRefused) => {
                    let up = Command::Up(me);
                    let _ = consensus::propose::<Control>(&p, &group, me, up, within).await;
                }
                Err(_) => {}
            }
        }
        // Awake for the next renewal, the end of its own lease, and (on the leader) the
        // moment the next member's lease and fencing margin are over.
        let now = p.now();
        let mut wake = renew_at.max(now);
        if let Some(left) = Some(lease.left(now)).filter(|l| !l.is_zero()) {
            wake = wake.min(now + left);
        }
        if let Some(lapse) = next_lapse {
            wake = wake.min(now + lapse);
        }
        p.sleep(wake.saturating_duration_since(now)).await;
    }
}

/// Stops the children held under the lease if it lapsed.
fn stop_lapsed(p: &Process, lease: &Lease) {
    for pid in lease.lapse(p.now()) {
        stop(p, pid);
    }
}

/// Members with the age of their last grant, in ms.
type Ages = Vec<(u16, u64)>;

/// On the leader: commits down each member up whose last grant, with the lease and the
/// fencing margin, is over (its own count ended earlier, by the drift margin more). How long
/// until the next member's is over, on the leader.
async fn down_lapsed(p: &Process, config: &DistConfig, within: Duration) -> Option<Duration> {
    let (me, group) = (p.pid().node(), &config.raft.name);
    let status = consensus::status::<Control>(p, group, me, within)
        .await
        .ok()?;
    let lapsed_after = (config.lease + config.fencing_margin).as_millis() as u64;
    let (lapsed, holding): (Ages, Ages) = status
        .lease_ages_ms
        .into_iter()
        .filter(|&(node, _)| node != me)
        .partition(|&(_, age)| age > lapsed_after);
    let next = holding
        .iter()
        .map(|&(_, age)| Duration::from_millis(lapsed_after - age + 1))
        .min();
    if lapsed.is_empty() {
        return next;
    }
    let Ok(Answer::Members { down, .. }) =
        consensus::query::<Control>(p, group, me, Query::Members, within).await
    else {
        return next;
    };
    let after = config.lease + config.fencing_margin;
    for (node, _) in lapsed.into_iter().filter(|(n, _)| !down.contains(n)) {
        // Revoked first, in one step with the check: a grant between the two would let the
        // node run what the commit gives to another.
        // And proposed here only: forwarded to another leader, which may have granted the
        // node a lease since, it would put down a node that holds one.
        if consensus::expire::<Control>(p, group, me, node, after, within).await == Ok(true) {
            let down = Command::Down(node);
            let _ = consensus::propose_at::<Control>(p, group, me, down, within).await;
        }
    }
    next
}
