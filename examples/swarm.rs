//! Seed 003 as its users write it (docs/cluster-invariants.md, "What the harness finds in
//! Swarm"): `MyApp.Supervisor` is Swarm's dynamic supervisor on every node, and
//! `MyApp.Worker` a worker that counts its ticks and moves with its count. Node 1 starts six
//! workers by name; Swarm spreads them over nodes 1 to 3. Node 3 leaves (it crashes): its
//! workers start again on the survivors, their counts lost (Swarm hands state over only on
//! planned moves). Node 4 joins: the workers whose names now belong to it move there, with
//! their counts (`begin_handoff`, `end_handoff`).
//!
//! ```sh
//! cargo run --example swarm          # in simulation: the same story, to the microsecond, every run
//! cargo run-native --example swarm   # natively: four OS processes over TCP on loopback
//! ```

use otpsim::cluster::handoff::{Handoff, HandoffReply};
use otpsim::cluster::swarm::{self, Config, DynamicSupervisor};
use otpsim::rt::Duration;
use otpsim::{ExitReason, Msg, Node, Process, Term};

/// The workers node 1 starts.
const WORKERS: [&str; 6] = ["w1", "w2", "w3", "w4", "w5", "w6"];

/// The nodes of the topology (libcluster's list): 1 to 3 from the start, 4 later.
const NODES: u16 = 4;

/// A worker's tick, every 100 ms.
struct Tick;

/// `MyApp.Worker`: counts its ticks, and moves with its count.
struct Worker {
    name: String,
    count: i64,
}

impl Handoff for Worker {
    fn begin_handoff(&mut self, p: &Process) -> HandoffReply {
        let n = p.pid().node();
        println!("{} on n{n} hands off at count {}", self.name, self.count);
        HandoffReply::Resume(Term::Int(self.count))
    }

    fn end_handoff(&mut self, p: &Process, state: Term) {
        if let Term::Int(count) = state {
            self.count = count;
            let n = p.pid().node();
            println!("{} resumed on n{n} at count {count}", self.name);
        }
    }

    fn resolve_conflict(&mut self, _: &Process, state: Term) {
        if let Term::Int(count) = state {
            self.count += count;
        }
    }

    fn handle(&mut self, p: &Process, msg: Msg) {
        if msg.is::<Tick>() {
            self.count += 1;
            p.send_after(Duration::from_millis(100), p.pid(), Tick);
        }
    }
}

/// The worker's start function: its name is its argument.
async fn worker(p: Process, arg: Term) -> ExitReason {
    let name = match arg {
        Term::Atom(name) => name.into_owned(),
        other => other.to_string(),
    };
    println!("{name} started on n{}", p.pid().node());
    p.send_after(Duration::from_millis(100), p.pid(), Tick);
    swarm::serve(p, Worker { name, count: 0 }).await
}

/// What every node runs (`MyApp.Application`): the worker's start function, Swarm's
/// tracker and `MyApp.Supervisor`.
fn boot(node: &Node) {
    node.register_start("worker", worker);
    let config = Config::new(1..=NODES);
    node.spawn(move |p| swarm::tracker(p, config));
    node.spawn(DynamicSupervisor::run);
}

/// Node 1, once Swarm has synced: starts the workers by name.
async fn start_workers(p: &Process) {
    p.sleep(Duration::from_secs(6)).await;
    for name in WORKERS {
        let started = DynamicSupervisor::start_child(p, name, "worker", Term::atom(name)).await;
        if let Err(e) = started {
            println!("{name} did not start: {e}");
        }
    }
    println!("n1 started the workers");
}

#[cfg(madsim)]
fn main() {
    use otpsim::sim::cluster::ClusterSim;
    let mut codec = otpsim::dist::Codec::new();
    swarm::codec(&mut codec);
    let report = ClusterSim::new(3)
        .nodes(NODES)
        .codec(codec)
        .run(|ctl| async move {
            ctl.crash(4); // not up yet
            for k in 1..=3 {
                boot(&ctl.node(k));
            }
            ctl.node(1)
                .spawn(|p| async move { start_workers(&p).await });
            ctl.sleep(Duration::from_secs(10)).await;
            println!("-- node 3 leaves");
            ctl.crash(3);
            ctl.sleep(Duration::from_secs(6)).await;
            println!("-- node 4 joins");
            ctl.restart(4);
            boot(&ctl.node(4));
            ctl.sleep(Duration::from_secs(15)).await;
            println!("-- where each worker runs");
            for name in WORKERS {
                let pid = ctl
                    .on(
                        1,
                        move |p| async move { swarm::whereis_name(&p, name).await },
                    )
                    .await
                    .flatten();
                match pid {
                    Some(pid) => println!("{name} on n{}", pid.node()),
                    None => println!("{name} nowhere"),
                }
            }
        });
    let undeliverable = report.trace.lines();
    let undeliverable = undeliverable
        .iter()
        .filter(|l| l.starts_with("undeliverable"));
    assert_eq!(
        undeliverable.count(),
        0,
        "every message Swarm sends has a codec"
    );
    if let Some(failure) = report.failure() {
        eprintln!("{failure}");
        std::process::exit(1);
    }
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    nodes::main(real::node, real::parent)
}

#[cfg(not(madsim))]
#[path = "common/nodes.rs"]
mod nodes;

#[cfg(not(madsim))]
mod real {
    use super::nodes::{self, Nodes};
    use super::{boot, start_workers, NODES, WORKERS};
    use otpsim::dist::tcp::Tcp;
    use otpsim::rt;
    use std::collections::BTreeMap;
    use std::process::ExitCode;

    /// Runs one node: `node K PORT1 PORT2 PORT3 PORT4`.
    pub fn node(args: &[String]) -> ExitCode {
        let (index, ports) = nodes::args(args);
        rt::block_on(index.into(), async move {
            let (node, mut config) = nodes::node(index, &ports);
            otpsim::cluster::swarm::codec(&mut config.codec);
            let _tcp = Tcp::start(&node, config).await.expect("listens");
            boot(&node);
            println!("n{index} up");
            let main = node.spawn(move |p| async move {
                if index == 1 {
                    start_workers(&p).await;
                }
                p.receive(|_| false).await;
            });
            node.wait_exit(main).await
        });
        ExitCode::SUCCESS
    }

    /// Where each worker runs, from the nodes' lines (`w1 started on n2`, `w1 resumed on
    /// n4 at count 57`).
    fn placement(seen: &[String]) -> BTreeMap<String, String> {
        let mut at = BTreeMap::new();
        for line in seen {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [name, "started" | "resumed", "on", node, ..] = words[..] {
                at.insert(name.to_string(), node.to_string());
            }
        }
        at
    }

    /// Starts nodes 1 to 3, kills node 3 once the workers have run a while, starts node 4,
    /// and checks what the nodes say.
    pub fn parent() -> ExitCode {
        let mut nodes = Nodes::new(NODES);
        for k in 1..=3 {
            nodes.start(k);
        }
        let all_started = |seen: &[String]| placement(seen).len() == WORKERS.len();
        let never = |_: &[String]| false;
        let mut ok = nodes.read_until(30, all_started);
        nodes.read_until(2, never); // the workers count meanwhile
        if ok {
            let on_3: Vec<String> = placement(&nodes.seen)
                .into_iter()
                .filter(|(_, n)| n == "n3")
                .map(|(w, _)| w)
                .collect();
            println!("-- node 3 leaves (SIGKILL); it ran {on_3:?}");
            nodes.kill(3);
            ok = nodes.read_until(30, |seen| placement(seen).values().all(|n| n != "n3"));
            nodes.read_until(2, never);
        }
        if ok {
            println!("-- node 4 joins");
            nodes.start(4);
            // Every worker handed off resumes on node 4 with its count.
            ok = nodes.read_until(30, |seen| {
                let off = seen.iter().filter(|l| l.contains(" hands off at count "));
                let resumed = seen
                    .iter()
                    .filter(|l| l.contains(" resumed on n4 at count "));
                let (off, resumed) = (off.count(), resumed.count());
                off > 0 && resumed == off
            });
        }
        println!("-- where each worker runs: {:?}", placement(&nodes.seen));
        if ok {
            println!("done: node 3's workers started again on the survivors, and node 4 took over its share with their counts");
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "the swarm example did not see what it expected; it saw: {:?}",
                nodes.seen
            );
            ExitCode::FAILURE
        }
    }
}
