//! Seed 003 on Swarm: a cluster of three nodes running Elixir's Swarm and
//! `Swarm.DynamicSupervisor` (the model of [`cluster::swarm`](crate::cluster::swarm)), with
//! workers started by name from any node, looked up and crashed, under every cluster fault.
//!
//! As a [`ClusterTarget`] (`SwarmSystem`) it is what the harness points at to show where
//! Swarm fails; its failures are Swarm's own (docs/cluster-invariants.md names the upstream
//! issues), not regressions.

use crate::cluster::swarm::{
    self, Config, DynamicSupervisor, HandoffAnswer, HandoffReply, SwarmMsg,
};
use crate::rt::Duration;
use crate::sim::cluster::ClusterCtl;
use crate::sim::cluster_harness::ClusterTarget;
use crate::sim::cluster_invariants::Consistency;
use crate::{ExitReason, Process, Term};

/// A worker of the seed system: it counts what it is told, hands its count over when asked
/// to move, adopts a predecessor's count, and stops when told to die.
pub async fn worker(p: Process, _: Term) -> ExitReason {
    let mut count = 0i64;
    loop {
        let msg = p.recv().await;
        match msg.downcast::<SwarmMsg>() {
            Ok(SwarmMsg::BeginHandoff { reply, tag }) => {
                let answer = HandoffAnswer {
                    tag,
                    reply: HandoffReply::Resume(Term::Int(count)),
                };
                p.send(reply, answer);
            }
            Ok(SwarmMsg::EndHandoff(Term::Int(n))) => count = n,
            Ok(SwarmMsg::ResolveConflict(Term::Int(n))) => count += n,
            Ok(SwarmMsg::Die) => return ExitReason::Shutdown,
            Ok(_) => {}
            Err(msg) => {
                if msg.is::<u32>() {
                    count += 1;
                }
            }
        }
    }
}

/// Starts Swarm on `node` of a cluster of nodes `1..=nodes`: the worker's start function,
/// the tracker and the dynamic supervisor (at its first boot and at every restart).
pub fn boot(node: &crate::Node, nodes: u16) {
    node.register_start("worker", worker);
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
        Some(match draw(4) {
            0 | 1 => SwarmOp::Start { name, on },
            2 => SwarmOp::Whereis { name, on },
            _ => SwarmOp::Crash { name, on },
        })
    }

    async fn apply(&self, ctl: &ClusterCtl, op: &SwarmOp) {
        let op = op.clone();
        match op {
            SwarmOp::Start { name, on } => {
                let _ = ctl
                    .on(on, move |p| async move {
                        let name = format!("k{name}");
                        let _ =
                            DynamicSupervisor::start_child(&p, &name, "worker", Term::atom("nil"))
                                .await;
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

    async fn check(&self, _: &ClusterCtl) -> Result<(), String> {
        Ok(())
    }
}
