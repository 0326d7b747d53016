//! Runtime benchmarks, run natively in release mode (`benches/run.sh`, or
//! `cargo bench-native --bench runtime -- b1`). Each prints tab-separated lines
//! `RESULT<TAB>otpsim<TAB><workload><TAB><metric><TAB><value>`.
//!
//! `OTPSIM_BENCH_DIVIDE=N` divides the counts, for a smoke run.
//!
//! These measure wall-clock time on purpose; nothing here runs in `cargo test`.
#![allow(clippy::disallowed_methods)] // Instant::now: a benchmark measures real time

use otpsim::server::{GenServer, Init, Next};
use otpsim::supervisor::{self, ChildSpec, Flags, Strategy, SupervisorSpec};
use otpsim::{rt, ExitReason, Node, Pid, Process};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn divide() -> u64 {
    std::env::var("OTPSIM_BENCH_DIVIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|d| *d > 0)
        .unwrap_or(1)
}

fn result(workload: &str, metric: &str, value: f64) {
    println!("RESULT\totpsim\t{workload}\t{metric}\t{value:.1}");
}

/// A server that stops with `boom` right after its init (through `handle_continue`), and
/// counts its starts.
struct Crasher;

struct Counter {
    starts: AtomicU64,
    target: u64,
    stamps: Mutex<Vec<(u64, Instant)>>,
    notify: Pid,
}

impl GenServer for Crasher {
    type Arg = Arc<Counter>;
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Cont = ();

    async fn init(c: Arc<Counter>, p: &Process) -> Init<Self> {
        let n = c.starts.fetch_add(1, Ordering::Relaxed) + 1;
        // The 1st, the 1,001st, the (N-999)th and the (N+1)th start are timed.
        if n == 1 || n == 1001 || n + 999 == c.target || n == c.target + 1 {
            c.stamps.lock().unwrap().push((n, Instant::now()));
        }
        if n == c.target + 1 {
            p.send(c.notify, ());
        }
        Init::Continue(Crasher, ())
    }

    async fn handle_continue(&mut self, _: (), _p: &Process) -> Next<Self> {
        Next::Stop(ExitReason::error("boom"))
    }
}

/// b1: restart throughput of a one_for_one supervisor with one permanent crashing child,
/// intensity 10^9 per second: time until the (N+1)th start.
fn b1() {
    let n = 100_000 / divide();
    rt::block_on(0, async move {
        let node = Node::new();
        let main = node.spawn(move |p| async move {
            let counter = Arc::new(Counter {
                starts: AtomicU64::new(0),
                target: n,
                stamps: Mutex::new(Vec::new()),
                notify: p.pid(),
            });
            let spec = SupervisorSpec::new(
                Flags::new(Strategy::OneForOne)
                    .intensity(1_000_000_000)
                    .period(1),
            )
            .child(ChildSpec::server::<Crasher>("crasher", counter.clone()));
            p.trap_exit(true);
            let sup = supervisor::start_link(&p, spec)
                .await
                .expect("supervisor starts");
            p.receive(|m| m.is::<()>()).await;
            p.exit(sup.pid(), ExitReason::Kill);
            let stamps = counter.stamps.lock().unwrap().clone();
            let at = |k: u64| {
                stamps
                    .iter()
                    .find(|(i, _)| *i == k)
                    .map(|(_, t)| *t)
                    .expect("stamped")
            };
            let total = (at(n + 1) - at(1)).as_secs_f64();
            result("b1", "restarts_per_s", n as f64 / total);
            if n >= 2000 {
                let first = (at(1001) - at(1)).as_secs_f64();
                let last = (at(n + 1) - at(n - 999)).as_secs_f64();
                result("b1", "restarts_per_s_first_1k", 1000.0 / first);
                result("b1", "restarts_per_s_last_1k", 1000.0 / last);
            }
        });
        node.wait_exit(main).await;
    });
}

fn main() {
    if rt::SIMULATED {
        eprintln!("benchmarks run natively: use benches/run.sh or `cargo bench-native`");
        std::process::exit(2);
    }
    let all = ["b1"];
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen: Vec<&str> = if args.is_empty() {
        all.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    for workload in chosen {
        match workload {
            "b1" => b1(),
            other => {
                eprintln!("unknown workload {other:?}; known: {all:?}");
                std::process::exit(2);
            }
        }
    }
}
