//! The simulator's throughput, measured in a release build of the simulation (plain `cargo
//! bench --bench simulator`, which `benches/run.sh sim` runs): simulated cases per second,
//! on one core for a small process graph, and on every core for a 50-process supervision
//! tree hit by 100 faults; and on one core for a cluster-graph case of 3 nodes and about 15
//! processes under cluster faults, and for a case of seed 003 on Swarm (3 nodes, its workload
//! and every cluster fault) (both with the `harness` feature, on by default), and the same
//! cases on the CP supervisor (feature `cp`, on by default). Prints
//! `RESULT<TAB>otpsim<TAB>sim<TAB><metric><TAB><value>` lines; `simulator small`, `simulator
//! large`, `simulator cluster`, `simulator swarm`, `simulator cp` or `simulator floor` runs
//! one of them.
//!
//! `floor` is madsim alone, with no otpsim code: a fresh runtime running the schedule a small
//! case averages (6 tasks, 24 timers). It bounds what the small case can reach on this
//! machine. Each runs for 3 s (divided by
//! `OTPSIM_BENCH_DIVIDE`), or exactly `OTPSIM_BENCH_CASES` cases (per core) when that is set:
//! the same work on every run, for a profiler.
#![allow(clippy::disallowed_methods)] // Instant::now: a benchmark measures real time

use otpsim::rt::Duration;
use otpsim::sim::graph::GraphCase;
use otpsim::sim::Sim;
use otpsim::supervisor::{
    self, ChildSpec, ChildState, Flags, Start, Started, SupervisorRef, SupervisorSpec,
};
use otpsim::{ExitReason, Process};
use std::time::Instant;

fn seconds() -> f64 {
    let divide: f64 = std::env::var("OTPSIM_BENCH_DIVIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|d: &f64| *d > 0.0)
        .unwrap_or(1.0);
    3.0 / divide
}

fn result(metric: &str, value: f64) {
    println!("RESULT\totpsim\tsim\t{metric}\t{value:.1}");
}

/// A fixed number of cases to run instead of a time budget, if one is set.
fn fixed_cases() -> Option<u64> {
    std::env::var("OTPSIM_BENCH_CASES").ok()?.parse().ok()
}

/// Runs `case(seed)` for seeds `first`, `first + 1`, ... for the time budget (or the fixed
/// number of cases); cases per second.
fn rate(first: u64, mut case: impl FnMut(u64)) -> f64 {
    let (budget, cases) = (seconds(), fixed_cases());
    let t0 = Instant::now();
    let mut n = 0;
    while cases.map_or(t0.elapsed().as_secs_f64() < budget, |c| n < c) {
        case(first + n);
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// A worker that waits for ever (it ends by an exit signal).
fn worker(id: String) -> ChildSpec {
    ChildSpec::worker(
        id,
        Start::new(|p| {
            Box::pin(async move {
                Ok(Started::Pid(
                    p.spawn_link(|_w| std::future::pending::<()>()),
                ))
            })
        }),
    )
}

/// Root supervisor -> 7 supervisors -> 6 workers each (50 processes); 100 kills of random
/// workers over one simulated second; then the root is stopped.
async fn large_tree(p: Process, seed: u64) {
    let sub = (0..6).fold(
        SupervisorSpec::new(Flags::default().intensity(1000)),
        |s, i| s.child(worker(format!("w{i}"))),
    );
    let root = (0..7).fold(
        SupervisorSpec::new(Flags::default().intensity(1000)),
        |s, i| s.child(sub.clone().into_child(format!("s{i}"))),
    );
    let sup = supervisor::start_link(&p, root)
        .await
        .expect("the tree starts");
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for _ in 0..100 {
        p.sleep(Duration::from_millis(next(20))).await;
        let subs = sup.which_children(&p).await.unwrap_or_default();
        let Some(ChildState::Running(s)) = subs.get(next(7) as usize).map(|c| c.state) else {
            continue;
        };
        let workers = SupervisorRef::from_pid(s)
            .which_children(&p)
            .await
            .unwrap_or_default();
        if let Some(ChildState::Running(w)) = workers.get(next(6) as usize).map(|c| c.state) {
            p.exit(w, ExitReason::Kill);
        }
    }
    p.trap_exit(true);
    p.exit(sup.pid(), ExitReason::Shutdown);
    let _ = p.receive(|m| matches!(m, otpsim::Msg::Exit { .. })).await;
}

/// madsim's own cost for a small case's schedule: a fresh runtime, a root task that spawns 5
/// tasks of 3 timers each and waits on 8 of its own, and a last timer after it: 6 tasks and
/// 24 timers (a small case averages 6.0 task spawns and 23.5 timers, counted with callgrind).
#[cfg(madsim)]
fn madsim_floor(seed: u64) {
    use madsim::time::{sleep, Duration};
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async {
        let root = madsim::task::spawn(async {
            for i in 0..5u64 {
                madsim::task::spawn(async move {
                    for k in 0..3 {
                        sleep(Duration::from_millis(100 + 37 * i + 11 * k)).await;
                    }
                });
            }
            for k in 0..8 {
                sleep(Duration::from_millis(50 + 130 * k)).await;
            }
        });
        let _ = root.await;
        sleep(Duration::from_millis(1)).await;
    });
}

fn main() {
    if !otpsim::rt::SIMULATED {
        eprintln!(
            "the simulator benchmark needs the simulated build: `cargo bench --bench simulator`"
        );
        std::process::exit(2);
    }
    // `simulator small` or `simulator large` runs only that workload (for a profiler).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |w: &str| only.is_empty() || only.iter().any(|o| o == w);
    // Small: graph cases with exactly 5 processes.
    let small: Vec<GraphCase> = (0..)
        .map(GraphCase::generate)
        .filter(|c| c.vertices.len() == 5)
        .take(64)
        .collect();
    if wanted("small") {
        let small_rate = rate(0, |n| {
            let case = &small[n as usize % small.len()];
            let report = Sim::new(n).run(case.root());
            assert!(report.failure().is_none());
        });
        result("small_cases_per_s_per_core", small_rate);
    }
    #[cfg(feature = "harness")]
    if wanted("cluster") {
        use otpsim::sim::cluster_graph::ClusterGraphCase;
        let cluster: Vec<ClusterGraphCase> = (0..)
            .map(ClusterGraphCase::generate)
            .filter(|c| c.nodes == 3 && (13..=17).contains(&c.vertices.len()))
            .take(64)
            .collect();
        let cluster_rate = rate(0, |n| {
            let case = &cluster[n as usize % cluster.len()];
            let report = case.run(n);
            assert_eq!(case.check(&report), Ok(()));
        });
        result("cluster_cases_per_s_per_core", cluster_rate);
    }
    #[cfg(feature = "harness")]
    if wanted("swarm") {
        // Seed 003 on Swarm, 3 nodes: generated cases of the cluster harness, whatever they
        // find (Swarm's failures are its own).
        use otpsim::sim::cluster_harness::ClusterHarness;
        use otpsim::systems::swarm::SwarmSystem;
        let target = std::sync::Arc::new(SwarmSystem);
        let harness = ClusterHarness::of(target.clone());
        let swarm_rate = rate(0, |n| {
            let _ = harness.generate(n).run(&target);
        });
        result("swarm_cases_per_s_per_core", swarm_rate);
    }
    #[cfg(feature = "cp")]
    if wanted("cp") {
        // Seed 003 on the CP supervisor (feature `cp`), 3 nodes: the same generated cases as
        // `swarm`'s, each checked (a failure here is a bug of the design).
        use otpsim::sim::cluster_harness::ClusterHarness;
        use otpsim::systems::cp::CpSystem;
        let target = std::sync::Arc::new(CpSystem);
        let harness = ClusterHarness::of(target.clone());
        let cp_rate = rate(0, |n| {
            let _ = harness.generate(n).run(&target);
        });
        result("cp_cases_per_s_per_core", cp_rate);
    }
    #[cfg(madsim)]
    if wanted("floor") {
        result("madsim_floor_cases_per_s_per_core", rate(0, madsim_floor));
    }
    if wanted("large") {
        // On every core, as a campaign runs (the target is for the whole machine).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rates: Vec<f64> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..cores as u64)
                .map(|core| {
                    s.spawn(move || {
                        rate(core << 32, |n| {
                            let report = Sim::new(n).run(move |p| large_tree(p, n));
                            assert!(report.failure().is_none(), "{:?}", report.failure());
                        })
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let total: f64 = rates.iter().sum();
        result("large_cases_per_s", total);
        result("large_cases_per_s_per_core", total / cores as f64);
    }
}
