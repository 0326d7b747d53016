//! Runtime benchmarks, run natively in release mode (`benches/run.sh`, or
//! `cargo bench-native --bench runtime -- b1`). Each prints tab-separated lines
//! `RESULT<TAB>otpsim<TAB><workload><TAB><metric><TAB><value>`.
//!
//! `OTPSIM_BENCH_DIVIDE=N` divides the counts, for a smoke run.
//!
//! These measure wall-clock time on purpose; nothing here runs in `cargo test`.
#![allow(clippy::disallowed_methods)] // Instant::now: a benchmark measures real time

use otpsim::registry::{Keys, Registry, RegistryOptions};
use otpsim::server::{self, CallReply, From, GenServer, Init, Next, StartOptions};
use otpsim::supervisor::dynamic::{self, DynamicOptions};
use otpsim::supervisor::{self, ChildSpec, Flags, Strategy, SupervisorSpec};
use otpsim::{rt, ExitReason, Msg, Node, Pid, Process};
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

/// An idle server (the children of b2, b3 and b5; the server of b4 answers calls).
struct Idle;

impl GenServer for Idle {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Cont = ();

    async fn init(_: (), _p: &Process) -> Init<Self> {
        Init::Ok(Idle)
    }

    async fn handle_call(&mut self, _: (), _from: From<()>, _p: &Process) -> CallReply<Self> {
        CallReply::Reply(())
    }
}

/// Resident memory in bytes (Linux `/proc/self/statm`).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Runs `body` as a process on a fresh node and waits for it.
fn in_process<F, Fut>(body: F)
where
    F: FnOnce(Process) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt::block_on(0, async move {
        let node = Node::new();
        let main = node.spawn(body);
        node.wait_exit(main).await;
    });
}

/// Waits until `pid` is dead.
async fn wait_dead(p: &Process, pid: Pid) {
    let mref = p.monitor(pid);
    p.receive(|m| matches!(m, Msg::Down { mref: r, .. } if *r == mref))
        .await;
}

/// b2: 100,000 `start_child` of an idle GenServer on a DynamicSupervisor, then its shutdown.
fn b2() {
    let n = 100_000 / divide();
    in_process(move |p| async move {
        let sup = dynamic::start_link(&p, DynamicOptions::default())
            .await
            .expect("starts");
        let spec = ChildSpec::server::<Idle>("idle", ());
        let before = resident_bytes();
        let t0 = Instant::now();
        for _ in 0..n {
            sup.start_child(&p, spec.clone())
                .await
                .expect("child starts");
        }
        let spawn = t0.elapsed().as_secs_f64();
        let after = resident_bytes();
        p.trap_exit(true);
        let t1 = Instant::now();
        p.exit(sup.pid(), ExitReason::Shutdown);
        wait_dead(&p, sup.pid()).await;
        let shutdown = t1.elapsed().as_secs_f64();
        result("b2", "spawns_per_s", n as f64 / spawn);
        result(
            "b2",
            "bytes_per_child",
            after.saturating_sub(before) as f64 / n as f64,
        );
        result("b2", "shutdown_ms", shutdown * 1000.0);
    });
}

/// b3: 100,000 GenServers under unique via names, then 1,000,000 lookups of the names.
fn b3() {
    let (n, lookups) = (100_000 / divide(), 1_000_000 / divide());
    in_process(move |p| async move {
        let reg: Registry<u64, ()> = Registry::start_link(&p, RegistryOptions::new(Keys::Unique))
            .await
            .expect("starts");
        let t0 = Instant::now();
        for i in 0..n {
            let opts = StartOptions::linked().via(reg.via(i));
            server::start_with::<Idle>(&p, (), opts)
                .await
                .expect("server starts");
        }
        let registering = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut found = 0u64;
        for i in 0..lookups {
            found += u64::from(reg.whereis_name(&(i % n)).is_some());
        }
        let looking = t1.elapsed().as_secs_f64();
        assert_eq!(found, lookups);
        result("b3", "registrations_per_s", n as f64 / registering);
        result("b3", "lookups_per_s", lookups as f64 / looking);
    });
}

/// b4: 1,000,000 sequential calls to one GenServer from a process.
fn b4() {
    let n = 1_000_000 / divide();
    in_process(move |p| async move {
        let server = server::start_link::<Idle>(&p, ()).await.expect("starts");
        let t0 = Instant::now();
        for _ in 0..n {
            server.call(&p, ()).await.expect("reply");
        }
        let secs = t0.elapsed().as_secs_f64();
        result("b4", "calls_per_s", n as f64 / secs);
        result("b4", "rtt_us", secs * 1e6 / n as f64);
    });
}

/// b5: root -> 10 -> 100 -> 1,000 leaf supervisors -> 10 idle workers each.
fn b5() {
    let leaf_workers = 10;
    let leaf = (0..leaf_workers).fold(SupervisorSpec::new(Flags::default()), |s, i| {
        s.child(ChildSpec::server::<Idle>(format!("w{i}"), ()))
    });
    let level = |child: SupervisorSpec| {
        (0..10).fold(SupervisorSpec::new(Flags::default()), |s, i| {
            s.child(child.clone().into_child(format!("s{i}")))
        })
    };
    let root = level(level(level(leaf)));
    in_process(move |p| async move {
        p.trap_exit(true);
        let t0 = Instant::now();
        let sup = supervisor::start_link(&p, root)
            .await
            .expect("the tree starts");
        let start = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        p.exit(sup.pid(), ExitReason::Shutdown);
        wait_dead(&p, sup.pid()).await;
        let stop = t1.elapsed().as_secs_f64();
        assert!(
            p.node().processes().len() <= 1,
            "every worker has terminated"
        );
        result("b5", "start_ms", start * 1000.0);
        result("b5", "stop_ms", stop * 1000.0);
    });
}

/// b6's server on the peer node: answers a call with its pid, counts plain `u64` messages,
/// and answers a [`Finish`] with how many it counted.
struct Peer {
    count: u64,
}

/// The end of b6's one-way messages: answer the sender with the count.
#[derive(serde::Serialize, serde::Deserialize)]
struct Finish(Pid);

/// The count of b6's one-way messages.
#[derive(serde::Serialize, serde::Deserialize)]
struct Counted(u64);

impl GenServer for Peer {
    type Arg = ();
    type Call = u64;
    type Reply = Pid;
    type Cast = ();
    type Cont = ();

    async fn init(_: (), _: &Process) -> Init<Self> {
        Init::Ok(Peer { count: 0 })
    }

    async fn handle_call(&mut self, _: u64, _: From<Pid>, p: &Process) -> CallReply<Self> {
        CallReply::Reply(p.pid())
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        match msg.downcast::<u64>() {
            Ok(_) => self.count += 1,
            Err(msg) => {
                if let Ok(Finish(to)) = msg.downcast::<Finish>() {
                    p.send(to, Counted(self.count));
                }
            }
        }
        Next::Continue
    }
}

/// b6's nodes: node `index` on loopback, over TCP, with the peer at `peer`.
async fn b6_node(index: u16, listen: u16, peer: u16) -> (Node, otpsim::dist::tcp::Tcp) {
    use otpsim::dist::tcp::{Tcp, TcpConfig};
    let node = Node::with_config(otpsim::NodeConfig {
        index,
        creation: 1,
        ..otpsim::NodeConfig::default()
    });
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut config = TcpConfig::new(at(listen), "b6");
    server::register_calls::<Peer>(&mut config.codec, "peer");
    config.codec.register::<u64>("u64");
    config.codec.register::<Finish>("finish");
    config.codec.register::<Counted>("counted");
    let config = config.peer(3 - index, at(peer));
    let tcp = Tcp::start(&node, config).await.expect("listens");
    (node, tcp)
}

/// b6, the other OS process: node 2 with the server registered as `peer`.
fn b6_peer(listen: u16, peer: u16) {
    rt::block_on(0, async move {
        let (node, _tcp) = b6_node(2, listen, peer).await;
        let main = node.spawn(|p| async move {
            let opts = StartOptions::linked().named("peer");
            let server = server::start_with::<Peer>(&p, (), opts)
                .await
                .expect("starts");
            println!("ready");
            p.node().wait_exit(server.pid()).await;
        });
        node.wait_exit(main).await;
    });
}

/// b6: two OS processes on loopback over the TCP transport: 100,000 sequential calls across
/// them, then 1,000,000 one-way messages with a final acknowledgement.
fn b6() {
    use std::io::BufRead;
    let (calls, msgs) = (100_000 / divide(), 1_000_000 / divide());
    let port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("an address").port()
    };
    let (mine, theirs) = (port(), port());
    let mut child = std::process::Command::new(std::env::current_exe().expect("this program"))
        .args(["b6-peer", &theirs.to_string(), &mine.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the peer starts");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the peer says it is ready");
    assert_eq!(line.trim(), "ready");
    rt::block_on(0, async move {
        let (node, _tcp) = b6_node(1, mine, theirs).await;
        let main = node.spawn(move |p| async move {
            let first = server::ServerRef::<Peer>::call_named(&p, "peer", 2, 0, None).await;
            let server = server::ServerRef::<Peer>::from_pid(first.expect("the peer answers"));
            let t0 = Instant::now();
            for i in 0..calls {
                server.call(&p, i).await.expect("reply");
            }
            let secs = t0.elapsed().as_secs_f64();
            result("b6", "calls_per_s", calls as f64 / secs);
            result("b6", "rtt_us", secs * 1e6 / calls as f64);
            let t1 = Instant::now();
            for i in 0..msgs {
                p.send(server.pid(), i);
            }
            p.send(server.pid(), Finish(p.pid()));
            let counted = p.receive(|m| m.is::<Counted>()).await;
            let secs = t1.elapsed().as_secs_f64();
            let Ok(Counted(n)) = counted.downcast::<Counted>() else {
                unreachable!("accepted above")
            };
            assert_eq!(n, msgs, "every message arrived");
            result("b6", "msgs_per_s", msgs as f64 / secs);
        });
        node.wait_exit(main).await;
    });
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("b6-peer") {
        let port = |i: usize| args[i].parse().expect("a port");
        b6_peer(port(2), port(3));
        return;
    }
    if rt::SIMULATED {
        eprintln!("benchmarks run natively: use benches/run.sh or `cargo bench-native`");
        std::process::exit(2);
    }
    let all = ["b1", "b2", "b3", "b4", "b5", "b6"];
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
            "b2" => b2(),
            "b3" => b3(),
            "b4" => b4(),
            "b5" => b5(),
            "b6" => b6(),
            other => {
                eprintln!("unknown workload {other:?}; known: {all:?}");
                std::process::exit(2);
            }
        }
    }
}
