//! Seed 003 on the CP distributed supervisor (`otpsim::cluster::cp`, docs/cp.md): the `swarm`
//! target's cluster, workload and faults, run on the design that agrees on ownership instead
//! of Swarm. A case of one target is a case of the other (the same operations), so a Swarm
//! failure kept in `corpus/` can be run on `cp` as it is.
//!
//! A child runs on its shard's owner only, under the owner's lease, so it never has two
//! instances; a node lost for longer than its lease and the fencing margin is committed down
//! and its children start on the others. `Join` and `Leave` put a child in the group `g` or
//! take it out, committed with the child, so that its instance stays in the group across
//! restarts and moves (S4, which Swarm breaks).
//!
//! `Register` also registers a process of the caller's node in the cluster registry, under
//! `r{name}` (docs/cp.md, "Registry"); `Whereis` looks it up, and `Crash` kills it too. No
//! two processes that run ever hold one name (I1), and a lookup never answers a process its
//! node saw end (I4).
//!
//! [`ApSystem`] (`ap`) runs the same supervisor in AP mode ([`Mode::Ap`]): each side of a
//! partition keeps its children, so a name may run twice until the heal, and every conflict
//! hands the loser's count to the winner, once (I1 at rest, I7).

use super::swarm::{faulty, send_bumps, Bump, Counter, SwarmOp, SwarmSystem, Unknown};
use crate::cluster::cp::handoff;
use crate::cluster::cp::supervisor::{self, DistConfig, DistError, DistRef, Mode};
use crate::rt::Duration;
use crate::sim::cluster::ClusterCtl;
use crate::sim::cluster_harness::{ClusterFamily, ClusterTarget};
use crate::sim::cluster_invariants::Consistency;
use crate::{ExitReason, Process, Term};

/// The workers' supervisor, the same on every node: `workers` on nodes 1 to 3, routing
/// [`Bump`]s by name.
pub fn config() -> DistConfig {
    DistConfig::new("workers", 1..=3).message::<Bump>("bump")
}

/// A worker: the `swarm` target's [`Counter`], from 0, moved with its count
/// ([`handoff::serve`]).
pub async fn worker(p: Process, _: Term) -> ExitReason {
    handoff::serve(p, Counter(0)).await
}

/// Starts the supervisor on `node` with the workers' start functions (`worker`, `faulty`), at
/// its first boot and at every restart.
pub fn boot(node: &crate::Node) {
    boot_in(node, Mode::Cp);
}

/// [`boot`], with the supervisor in `mode`.
pub fn boot_in(node: &crate::Node, mode: Mode) {
    node.register_start("worker", worker);
    node.register_start("faulty", faulty);
    let config = DistConfig { mode, ..config() };
    supervisor::boot(node, config).expect("the target's settings work");
}

/// The seed system on the CP supervisor, as a cluster target: three nodes, the `swarm`
/// target's workload ([`SwarmOp`]) and every cluster fault. CP: at most one instance of a name
/// at any moment, not only at rest.
pub struct CpSystem;

fn dsup() -> DistRef {
    config().handle()
}

impl ClusterTarget for CpSystem {
    type Op = SwarmOp;

    fn name(&self) -> String {
        "cp".into()
    }

    fn boot(&self, _: u16, node: &crate::Node, _: bool) {
        boot(node);
    }

    /// The `swarm` target's operations, drawn the same way.
    fn op(&self, draw: &mut dyn FnMut(u64) -> u64) -> Option<SwarmOp> {
        SwarmSystem.op(draw)
    }

    async fn apply(&self, ctl: &ClusterCtl, op: &SwarmOp) {
        let op = op.clone();
        let _ = ctl
            .on(on_node(&op), move |p| async move { apply(&p, op).await })
            .await;
    }

    /// As long as `swarm`'s cases.
    fn run_for(&self) -> Duration {
        SwarmSystem.run_for()
    }

    /// The final heal, then an election (1-2 s after a node boots), a lapsed node's lease
    /// and fencing margin (4 s) before its shards move, and the supervisors' reconciliation
    /// (every 0.5 s) and restart grants, with room to spare (campaigns settle within 4 s of
    /// the heal: README, "The CP supervisor").
    fn quiet(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn consistency(&self) -> Consistency {
        Consistency::Cp
    }

    /// `swarm`'s families: every cluster fault, none inside a node (the supervisor's own
    /// processes are not under a local supervisor yet).
    fn families(&self) -> Vec<ClusterFamily> {
        SwarmSystem.families()
    }

    async fn check(&self, _: &ClusterCtl) -> Result<(), String> {
        Ok(())
    }
}

/// The seed system on the same supervisor in AP mode ([`Mode::Ap`]), as a cluster target:
/// [`CpSystem`]'s nodes, workload and faults, judged as AP (at most one instance of a name at
/// rest; a conflict's loser hands its state to the winner once, I7).
pub struct ApSystem;

impl ClusterTarget for ApSystem {
    type Op = SwarmOp;

    fn name(&self) -> String {
        "ap".into()
    }

    fn boot(&self, _: u16, node: &crate::Node, _: bool) {
        boot_in(node, Mode::Ap);
    }

    fn op(&self, draw: &mut dyn FnMut(u64) -> u64) -> Option<SwarmOp> {
        CpSystem.op(draw)
    }

    async fn apply(&self, ctl: &ClusterCtl, op: &SwarmOp) {
        CpSystem.apply(ctl, op).await
    }

    fn run_for(&self) -> Duration {
        CpSystem.run_for()
    }

    /// [`CpSystem`]'s, which covers a conflict's resolution too: the loser's node learns of
    /// it within a reconciliation of catching up, and its state goes over in one more.
    fn quiet(&self) -> Duration {
        CpSystem.quiet()
    }

    fn consistency(&self) -> Consistency {
        Consistency::Ap
    }

    fn families(&self) -> Vec<ClusterFamily> {
        CpSystem.families()
    }

    async fn check(&self, _: &ClusterCtl) -> Result<(), String> {
        Ok(())
    }
}

/// The node an operation is called on.
fn on_node(op: &SwarmOp) -> u16 {
    match *op {
        SwarmOp::Start { on, .. }
        | SwarmOp::Register { on, .. }
        | SwarmOp::Whereis { on, .. }
        | SwarmOp::Crash { on, .. }
        | SwarmOp::Join { on, .. }
        | SwarmOp::Leave { on, .. }
        | SwarmOp::Send { on, .. }
        | SwarmOp::StartFaulty { on, .. } => on,
    }
}

/// An operation, from a process of its node.
async fn apply(p: &Process, op: SwarmOp) {
    let dsup = dsup();
    match op {
        SwarmOp::Start { name, .. } => {
            let nil = Term::atom("nil");
            let _ = dsup
                .start_child(p, &format!("k{name}"), "worker", nil)
                .await;
        }
        // Swarm's own `register_name` is a supervised start here; the cluster registry
        // registers a process of this node too, which ends if it was not registered (it may
        // have been: its node's name server then unregisters it).
        SwarmOp::Register { name, .. } => {
            let nil = Term::atom("nil");
            let _ = dsup
                .start_child(p, &format!("k{name}"), "worker", nil)
                .await;
            let pid = p.spawn(|_| std::future::pending::<()>());
            if dsup.register(p, &format!("r{name}"), pid).await.is_err() {
                p.exit(pid, ExitReason::Kill);
            }
        }
        SwarmOp::StartFaulty { name, .. } => {
            let nil = Term::atom("nil");
            let _ = dsup
                .start_child(p, &format!("k{name}"), "faulty", nil)
                .await;
        }
        SwarmOp::Whereis { name, .. } => {
            let _ = dsup.whereis(p, &format!("k{name}")).await;
            let _ = dsup.whereis_name(p, &format!("r{name}")).await;
        }
        SwarmOp::Crash { name, .. } => {
            if let Some(pid) = dsup.whereis(p, &format!("k{name}")).await {
                p.exit(pid, ExitReason::error("crash"));
            }
            if let Some(pid) = dsup.whereis_name(p, &format!("r{name}")).await {
                p.exit(pid, ExitReason::error("crash"));
            }
        }
        SwarmOp::Join { name, .. } => {
            let _ = dsup.join_group(p, &format!("k{name}"), "g").await;
        }
        SwarmOp::Leave { name, .. } => {
            let _ = dsup.leave_group(p, &format!("k{name}"), "g").await;
        }
        SwarmOp::Send { name, .. } => {
            let name = format!("k{name}");
            let (dsup, name) = (&dsup, name.as_str());
            // A call that failed may still deliver its message (as a `gen_server:call` that
            // timed out may still be handled): its fate is unknown, not judged.
            let deliver = |bump| async move {
                match dsup.send(p, name, bump).await {
                    Ok(pid) => Ok(Some(pid)),
                    Err(DistError::NotFound) => Ok(None),
                    Err(_) => Err(Unknown),
                }
            };
            send_bumps(p, name, deliver).await;
        }
    }
}
