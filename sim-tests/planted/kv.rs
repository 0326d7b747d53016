//! A KV store's bucket registry, and planted bugs (a), (b) and (c).

use super::idle;
use otpsim::sim::harness::proptest::prelude::*;
use otpsim::sim::harness::{Domain, Target, Workload};
use otpsim::sim::invariants::Violation;
use otpsim::supervisor::dynamic::{self, DynamicOptions, DynamicSupervisorRef};
use otpsim::supervisor::{
    self, ChildSpec, Flags, Start, Started, Strategy as SupStrategy, SupervisorSpec,
};
use otpsim::{ExitReason, Msg, Pid, Process};

/// A KV store's bucket registry (issue 5, planted bug (a) and its fix): buckets are started
/// by the registry under a dynamic supervisor; the registry monitors them. The buggy variant
/// links to them instead, so one bucket's crash takes the registry (and every name) down.
///
/// Planted bug (b): buckets are `permanent` under the dynamic supervisor, so a crashed bucket
/// comes back as a process the registry never hears of (a leak).
///
/// Planted bug (c): the registry is started before the bucket supervisor it calls (under
/// rest_for_one) and keeps the one it found first, so when the bucket supervisor restarts,
/// the registry keeps calling the dead one: it is not restarted with it, since it comes
/// first. (The other variants look the supervisor up by its name at every creation.)
#[derive(Clone, Copy, Default)]
pub struct Kv {
    /// Planted bug (a).
    pub links_buckets: bool,
    /// Planted bug (b).
    pub permanent_buckets: bool,
    /// Planted bug (c).
    pub registry_first: bool,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum KvOp {
    /// Create bucket n (if absent).
    Create(u8),
    /// Ask the registry how many buckets it knows.
    Count,
}

pub struct KvState {
    registry: Pid,
}

struct Create(u8, Pid);
struct Created(bool);
struct Count(Pid);

/// The bucket registry: looks the bucket supervisor up by its name at every creation (one
/// kept from the first use would be dead after an operator restarted the supervisor alone;
/// planted bug (c) keeps it), and stops the buckets of an earlier registry when it starts (a
/// registry restarted alone would leave them running, nameless).
async fn registry(p: Process, kv: Kv) -> ExitReason {
    let mut names: std::collections::BTreeMap<u8, Pid> = Default::default();
    let mut kept: Option<DynamicSupervisorRef> = None;
    if let Some(buckets) = p.whereis("buckets").map(DynamicSupervisorRef::from_pid) {
        for orphan in buckets.which_children(&p).await.unwrap_or_default() {
            if let supervisor::ChildState::Running(bucket) = orphan.state {
                let _ = buckets.terminate_child(&p, bucket).await;
            }
        }
    }
    loop {
        match p.recv().await {
            Msg::Down { pid, .. } => names.retain(|_, b| *b != pid),
            msg => {
                if let Some(Create(n, from)) = msg.downcast_ref::<Create>() {
                    let found = || p.whereis("buckets").map(DynamicSupervisorRef::from_pid);
                    let buckets = if kv.registry_first {
                        if kept.is_none() {
                            kept = found();
                        }
                        kept
                    } else {
                        found()
                    };
                    let mut ok = names.contains_key(n);
                    if let (false, Some(buckets)) = (ok, &buckets) {
                        let spec = ChildSpec::worker(
                            "bucket",
                            Start::new(|p| {
                                let pid = p.spawn_link(idle);
                                Box::pin(async move { Ok(Started::Pid(pid)) })
                            }),
                        )
                        .restart(if kv.permanent_buckets {
                            supervisor::Restart::Permanent
                        } else {
                            supervisor::Restart::Temporary
                        });
                        if let Ok(Started::Pid(bucket)) = buckets.start_child(&p, spec).await {
                            if kv.links_buckets {
                                let _ = p.link(bucket);
                            } else {
                                p.monitor(bucket);
                            }
                            names.insert(*n, bucket);
                            ok = true;
                        }
                    }
                    p.send(*from, Created(ok));
                } else if let Some(Count(from)) = msg.downcast_ref::<Count>() {
                    p.send(*from, names.len());
                }
            }
        }
    }
}

impl Target for Kv {
    type Setup = ();
    type Op = KvOp;
    type State = KvState;

    fn name(&self) -> String {
        match *self {
            Kv {
                links_buckets: true,
                ..
            } => "kv-linked",
            Kv {
                permanent_buckets: true,
                ..
            } => "kv-permanent-buckets",
            Kv {
                registry_first: true,
                ..
            } => "kv-registry-first",
            _ => "kv",
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn workload(&self, domain: Domain) -> Workload<KvOp> {
        Workload::new()
            .kind("create", 1, domain.pick().prop_map(KvOp::Create))
            .kind("count", 1, Just(KvOp::Count))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, KvState), String> {
        let kv = *self;
        let dsup = ChildSpec::supervisor(
            "buckets",
            Start::new(|p| {
                Box::pin(async move {
                    let sup = dynamic::start_with(
                        p,
                        |_| dynamic::DynamicInit::Ok(DynamicOptions::default()),
                        otpsim::server::StartOptions::linked().named("buckets"),
                    )
                    .await
                    .map_err(|e| e.reason().to_term())?;
                    Ok(Started::Pid(sup.pid()))
                })
            }),
        );
        let reg = ChildSpec::worker(
            "registry",
            Start::new(move |p| {
                let pid = p.spawn_link(move |q| async move {
                    q.register("kv_registry").expect("free name");
                    registry(q, kv).await
                });
                Box::pin(async move { Ok(Started::Pid(pid)) })
            }),
        );
        let spec = if kv.registry_first {
            SupervisorSpec::new(Flags::elixir(SupStrategy::RestForOne))
                .child(reg)
                .child(dsup)
        } else {
            SupervisorSpec::new(Flags::elixir(SupStrategy::OneForAll))
                .child(dsup)
                .child(reg)
        };
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            sup.pid(),
            KvState {
                registry: Pid::from_raw(0),
            },
        ))
    }

    async fn apply(&self, state: &mut KvState, op: &KvOp, p: &Process) -> Result<(), Violation> {
        let Some(reg) = p.node().whereis("kv_registry") else {
            return Ok(());
        };
        state.registry = reg;
        match op {
            KvOp::Create(n) => p.send(reg, Create(*n, p.pid())),
            KvOp::Count => p.send(reg, Count(p.pid())),
        }
        let _ = p
            .receive_timeout(
                |m| m.downcast_ref::<Created>().is_some() || m.downcast_ref::<usize>().is_some(),
                otpsim::rt::Duration::from_secs(1),
            )
            .await;
        Ok(())
    }

    /// App invariant: a bucket's crash never takes the registry down. When every fault of
    /// the run hit a bucket, the registry must still be the one the workload last used.
    async fn check(&self, state: &mut KvState, p: &Process) -> Result<(), Violation> {
        let only_buckets_hit = otpsim::sim::harness::only_children_hit(p, "buckets");
        let now = p.node().whereis("kv_registry");
        // At rest, creating a new bucket works.
        if let Some(reg) = now {
            p.send(reg, Create(200, p.pid()));
            let reply = p
                .receive_timeout(
                    |m| m.downcast_ref::<Created>().is_some(),
                    otpsim::rt::Duration::from_secs(1),
                )
                .await;
            if !reply.is_some_and(|m| m.downcast_ref::<Created>().is_some_and(|c| c.0)) {
                return Err(Violation::app(
                    "create_works_at_rest",
                    "the registry could not create a bucket after the tree settled",
                ));
            }
        }
        // No bucket is alive that the registry does not know.
        if let (Some(reg), Some(dsup)) = (now, p.node().whereis("buckets")) {
            p.send(reg, Count(p.pid()));
            let known = p
                .receive_timeout(
                    |m| m.downcast_ref::<usize>().is_some(),
                    otpsim::rt::Duration::from_secs(1),
                )
                .await
                .and_then(|m| m.downcast_ref::<usize>().copied());
            let live = otpsim::sim::descendants(p.node(), dsup).len();
            if known.is_some_and(|known| known != live) {
                return Err(Violation::app(
                    "no_unknown_buckets",
                    format!("{live} bucket(s) alive, the registry knows {known:?}"),
                ));
            }
        }
        if only_buckets_hit && state.registry != Pid::from_raw(0) && now != Some(state.registry) {
            return Err(Violation::app(
                "registry_survives_bucket_crashes",
                "only buckets crashed, yet the registry is not the one it was",
            ));
        }
        Ok(())
    }
}
