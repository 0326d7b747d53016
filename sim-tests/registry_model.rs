//! Property: registry consistency under crashes, kills, strangers' exit signals and delayed
//! messages (issue 4). Workers run under a supervisor, each started under a `via` name and
//! registering a few extra keys of a small, colliding key space in a unique registry.
//!
//! * during the run, a unique key never maps to two live pids;
//! * at quiescence, every entry belongs to a live process (every death has been processed)
//!   and the entries are exactly the live workers' keys;
//! * every via-named worker, restarted or not, is reachable by its name.

use otpsim::registry::{Keys, Registry, RegistryOptions};
use otpsim::rt::{Duration, SeededConfig};
use otpsim::server::{self, CallReply, From, GenServer, Init, ServerRef, StartOptions};
use otpsim::sim::Sim;
use otpsim::supervisor::{self, ChildSpec, Flags, Restart, Start, SupervisorSpec};
use otpsim::{ExitReason, Pid, Process};
use proptest::prelude::*;

type Reg = Registry<String, u32>;

/// A worker: registers its extra keys (when free) in init, answers calls with its pid.
struct Member;

impl GenServer for Member {
    type Arg = (Reg, u32, Vec<String>);
    type Call = ();
    type Reply = Pid;
    type Cast = ();
    type Cont = ();

    async fn init((reg, id, keys): Self::Arg, p: &Process) -> Init<Self> {
        for key in keys {
            let _ = reg.register(p, key, id);
        }
        Init::Ok(Member)
    }

    async fn handle_call(&mut self, _: (), _from: From<Pid>, p: &Process) -> CallReply<Self> {
        CallReply::Reply(p.pid())
    }
}

#[derive(Clone, Debug)]
enum Fault {
    Kill(usize),
    Crash(usize),
    Stranger(usize),
    Wait(u64),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (0..6usize).prop_map(Fault::Kill),
        (0..6usize).prop_map(Fault::Crash),
        (0..6usize).prop_map(Fault::Stranger),
        (0..20u64).prop_map(Fault::Wait),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    partitions: usize,
    /// Per worker: the extra keys it registers (from a space of 4, so they collide), and
    /// whether it is temporary (not restarted: its entries must go for good).
    workers: Vec<(Vec<u8>, bool)>,
    faults: Vec<Fault>,
}

fn case() -> impl Strategy<Value = Case> {
    let workers = prop::collection::vec(
        (
            prop::collection::vec(0..4u8, 0..3),
            prop::bool::weighted(0.3),
        ),
        1..6,
    );
    (
        any::<u64>(),
        1..4usize,
        workers,
        prop::collection::vec(fault(), 0..20),
    )
        .prop_map(|(seed, partitions, workers, faults)| Case {
            seed,
            partitions,
            workers,
            faults,
        })
}

fn name(i: usize) -> String {
    format!("w{i}")
}

/// Runs a case; returns the first inconsistency found.
fn run(case: Case) -> Result<(), String> {
    let faults = SeededConfig {
        delay_probability: 0.3,
        max_delay: Duration::from_millis(3),
        ..SeededConfig::default()
    };
    let out = std::sync::Arc::new(std::sync::Mutex::new(Ok(())));
    let sink = out.clone();
    let report = Sim::new(case.seed)
        .with_faults(faults)
        .run(move |p| async move {
            let r = check(&p, case).await;
            *sink.lock().unwrap() = r;
        });
    if let Some(f) = report.failure() {
        return Err(f);
    }
    if report.root_exit != Some(ExitReason::Normal) {
        return Err(format!("the checker exited {:?}", report.root_exit));
    }
    let r = out.lock().unwrap().clone();
    r
}

async fn check(p: &Process, case: Case) -> Result<(), String> {
    let options = RegistryOptions::new(Keys::Unique).partitions(case.partitions);
    let reg: Reg = Registry::start_link(p, options)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut spec = SupervisorSpec::new(
        Flags::new(supervisor::Strategy::OneForOne)
            .intensity(1_000_000)
            .period(1),
    );
    for (i, (keys, temporary)) in case.workers.iter().enumerate() {
        let keys: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
        let restart = if *temporary {
            Restart::Temporary
        } else {
            Restart::Permanent
        };
        let (reg2, via) = (reg.clone(), reg.via(name(i)));
        spec = spec.child(
            ChildSpec::worker(
                name(i),
                Start::new(move |sp| {
                    let arg = (reg2.clone(), i as u32, keys.clone());
                    let opts = StartOptions::linked().via(via.clone());
                    Box::pin(async move {
                        supervisor::start_result(
                            server::start_with::<Member>(sp, arg, opts)
                                .await
                                .map(|s| s.pid()),
                        )
                    })
                }),
            )
            .restart(restart),
        );
    }
    let sup = supervisor::start_link(p, spec)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let n = case.workers.len();
    let all_keys: Vec<String> = (0..4)
        .map(|k| format!("k{k}"))
        .chain((0..n).map(name))
        .collect();
    // Who holds each key: a key changes hands only after its holder died.
    let mut holders: std::collections::BTreeMap<String, Pid> = Default::default();
    for f in &case.faults {
        match f {
            Fault::Kill(i) | Fault::Crash(i) | Fault::Stranger(i) => {
                if let Some(pid) = reg.whereis_name(&name(i % n)) {
                    let reason = match f {
                        Fault::Kill(_) => ExitReason::Kill,
                        Fault::Crash(_) => ExitReason::error("boom"),
                        _ => ExitReason::Shutdown,
                    };
                    if matches!(f, Fault::Stranger(_)) {
                        p.spawn(move |s| async move { s.exit(pid, reason) });
                    } else {
                        p.exit(pid, reason);
                    }
                }
            }
            Fault::Wait(ms) => p.sleep(Duration::from_millis(*ms)).await,
        }
        // A unique key never maps to two live pids.
        for key in &all_keys {
            let live: Vec<Pid> = reg
                .lookup(key)
                .into_iter()
                .map(|(pid, _)| pid)
                .filter(|pid| p.node().is_alive(*pid))
                .collect();
            if live.len() > 1 {
                return Err(format!("key {key} maps to live {live:?}"));
            }
            if let Some(&holder) = live.first() {
                if let Some(previous) = holders.insert(key.clone(), holder) {
                    if previous != holder && p.node().is_alive(previous) {
                        return Err(format!(
                            "key {key} went from the live {previous} to {holder}"
                        ));
                    }
                }
            }
        }
    }
    // Quiescence: faults stop, delayed signals land, restarts finish.
    p.sleep(Duration::from_secs(1)).await;
    sup.count_children(p).await.map_err(|e| e.to_string())?;
    let mut owners = Vec::new();
    for key in &all_keys {
        for (pid, _) in reg.lookup(key) {
            if !p.node().is_alive(pid) {
                return Err(format!("key {key} still maps to the dead {pid}"));
            }
            owners.push(pid);
        }
    }
    for i in 0..n {
        let temporary = case.workers[i].1;
        let Some(pid) = reg.whereis_name(&name(i)) else {
            if temporary {
                continue; // it may have been stopped for good
            }
            return Err(format!("{} is not reachable by its name", name(i)));
        };
        let answer = ServerRef::<Member>::from_pid(pid).call(p, ()).await;
        if answer != Ok(pid) {
            return Err(format!("{} answered {answer:?}", name(i)));
        }
        // Its entries are exactly its name and the extra keys it holds.
        if !reg.keys(pid).contains(&name(i)) {
            return Err(format!("{} does not hold its name", name(i)));
        }
    }
    let live_workers: Vec<Pid> = (0..n).filter_map(|i| reg.whereis_name(&name(i))).collect();
    if let Some(stranger) = owners.iter().find(|o| !live_workers.contains(o)) {
        return Err(format!("{stranger} holds keys but is not a live worker"));
    }
    Ok(())
}

#[test]
fn registry_stays_consistent_under_crashes_kills_and_delays() {
    let mut runner = crate::common::seeded_runner(128);
    let result = runner.run(&case(), |case| run(case).map_err(TestCaseError::fail));
    if let Err(e) = result {
        panic!("{e}");
    }
}
