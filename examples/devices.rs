//! Seed 003's promise kept (docs/cp.md): device processes spread over three nodes by the CP
//! distributed supervisor, each found by name from anywhere. Node 1 starts six devices; each
//! runs on the owner of its name's shard. Node 3 is killed: once its lease and the fencing
//! margin are over (4 s), the majority commits it down, and its devices start on the
//! survivors. Then node 2 goes too: node 1 alone is a minority, its devices stop when its
//! lease lapses, and a start there answers `Unavailable` instead of diverging.
//!
//! Node 1 also starts a dashboard on node 2 and registers it in the cluster registry
//! (`DistRef::register`, docs/cp.md "Registry"), asked of node 2's name server; every node
//! finds it by name.
//!
//! ```sh
//! cargo run --example devices          # in simulation, the same every run
//! cargo run-native --example devices   # three OS processes over TCP, SIGKILL
//! ```

use otpsim::cluster::cp::supervisor::{self, DistConfig, DistError};
use otpsim::rt::Duration;
use otpsim::{ExitReason, Node, Process, Term};

/// The devices node 1 starts.
const DEVICES: [&str; 6] = ["d1", "d2", "d3", "d4", "d5", "d6"];

/// The supervisor on nodes 1 to 3.
fn config() -> DistConfig {
    DistConfig::new("devices", 1..=3)
}

/// A device: says where it runs, then serves until it is stopped.
async fn device(p: Process, arg: Term) -> ExitReason {
    println!("{arg} started on n{}", p.pid().node());
    loop {
        let _ = p.recv().await;
    }
}

/// What every node runs: the device's start function and the distributed supervisor.
fn boot(node: &Node) {
    node.register_start("device", device);
    supervisor::boot(node, config()).expect("the example's settings work");
}

/// Node 1's part: once the group has a leader, starts the devices by name; then every
/// 2 s tries to start one more (`probe1`, `probe2`, ...) and says what it got.
async fn node_one(p: &Process) {
    p.sleep(Duration::from_secs(3)).await;
    let dsup = config().handle();
    for name in DEVICES {
        if let Err(e) = dsup.start_child(p, name, "device", Term::atom(name)).await {
            println!("{name} did not start: {e}");
        }
    }
    println!("n1 started the devices");
    // A process of node 2, registered from node 1: node 2's name server holds it under its
    // lease, then the group commits the name.
    match p.spawn_on(2, "device", Term::atom("dashboard")).await {
        Ok(dashboard) => match dsup.register(p, "dashboard", dashboard).await {
            Ok(()) => {
                p.sleep(Duration::from_millis(100)).await;
                let found = dsup.whereis_name(p, "dashboard").await;
                let at = found.map_or("nowhere".to_string(), |pid| format!("n{}", pid.node()));
                println!("dashboard registered, found on {at}");
            }
            Err(e) => println!("dashboard not registered: {e}"),
        },
        Err(e) => println!("dashboard not started: {e}"),
    }
    for i in 1.. {
        p.sleep(Duration::from_secs(2)).await;
        let name = format!("probe{i}");
        match dsup
            .start_child(p, &name, "device", Term::from(name.clone()))
            .await
        {
            Ok(pid) => println!("{name}: started on n{}", pid.node()),
            Err(DistError::Unavailable) => println!("{name}: unavailable"),
            Err(e) => println!("{name}: {e}"),
        }
    }
}

#[cfg(madsim)]
fn main() {
    use otpsim::sim::cluster::ClusterSim;
    let mut codec = otpsim::dist::Codec::new();
    supervisor::codec(&mut codec);
    let report = ClusterSim::new(7)
        .nodes(3)
        .codec(codec)
        .run(|ctl| async move {
            for k in 1..=3 {
                boot(&ctl.node(k));
            }
            ctl.node(1).spawn(|p| async move { node_one(&p).await });
            ctl.sleep(Duration::from_secs(6)).await;
            println!("-- node 3 is lost");
            ctl.crash(3);
            ctl.sleep(Duration::from_secs(8)).await;
            where_each_runs(&ctl).await;
            println!("-- node 2 is lost: node 1 alone is a minority");
            ctl.crash(2);
            // A start waits 5 s for the group before it answers.
            ctl.sleep(Duration::from_secs(10)).await;
        });
    let lines = report.trace.lines();
    let undeliverable = lines.iter().filter(|l| l.starts_with("undeliverable"));
    assert_eq!(undeliverable.count(), 0, "every message has a codec");
    if let Some(failure) = report.failure() {
        eprintln!("{failure}");
        std::process::exit(1);
    }
    let verdict = otpsim::sim::cluster_invariants::check(
        &report.trace,
        otpsim::sim::cluster_invariants::Consistency::Cp,
    );
    match verdict {
        Ok(()) => println!("every cluster invariant holds (one instance per name, always)"),
        Err(v) => {
            eprintln!("{v}");
            std::process::exit(1);
        }
    }
}

/// Where each device runs, as node 1 finds it.
#[cfg(madsim)]
async fn where_each_runs(ctl: &otpsim::sim::cluster::ClusterCtl) {
    for name in DEVICES {
        let dsup = config().handle();
        let pid = ctl
            .on(1, move |p| async move { dsup.whereis(&p, name).await })
            .await
            .flatten();
        match pid {
            Some(pid) => println!("{name} on n{}", pid.node()),
            None => println!("{name} nowhere"),
        }
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
    use super::{boot, node_one, DEVICES};
    use otpsim::dist::tcp::Tcp;
    use otpsim::rt;
    use std::collections::BTreeMap;
    use std::process::ExitCode;

    /// Runs one node: `node K PORT1 PORT2 PORT3`.
    pub fn node(args: &[String]) -> ExitCode {
        let (index, ports) = nodes::args(args);
        rt::block_on(index.into(), async move {
            let (node, mut config) = nodes::node(index, &ports);
            otpsim::cluster::cp::supervisor::codec(&mut config.codec);
            let _tcp = Tcp::start(&node, config).await.expect("listens");
            boot(&node);
            println!("n{index} up");
            let main = node.spawn(move |p| async move {
                if index == 1 {
                    node_one(&p).await;
                }
                p.receive(|_| false).await;
            });
            node.wait_exit(main).await
        });
        ExitCode::SUCCESS
    }

    /// Where each device last started, from the nodes' lines (`d1 started on n2`).
    fn placement(seen: &[String]) -> BTreeMap<String, String> {
        let mut at = BTreeMap::new();
        for line in seen {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [name, "started", "on", node] = words[..] {
                if DEVICES.contains(&name) {
                    at.insert(name.to_string(), node.to_string());
                }
            }
        }
        at
    }

    /// Starts the three nodes, kills node 3 once every device runs, waits for its devices on
    /// the survivors, kills node 2, and waits for node 1 to answer `unavailable`.
    pub fn parent() -> ExitCode {
        let mut nodes = Nodes::new(3);
        for k in 1..=3 {
            nodes.start(k);
        }
        let all_started = |seen: &[String]| {
            placement(seen).len() == DEVICES.len()
                && seen
                    .iter()
                    .any(|l| l == "dashboard registered, found on n2")
        };
        let mut ok = nodes.read_until(30, all_started);
        if ok {
            let on_3: Vec<String> = placement(&nodes.seen)
                .into_iter()
                .filter(|(_, n)| n == "n3")
                .map(|(d, _)| d)
                .collect();
            println!("-- node 3 is lost (SIGKILL); it ran {on_3:?}");
            #[allow(clippy::disallowed_methods)] // the parent measures real time
            let killed = std::time::Instant::now();
            nodes.kill(3);
            // Within the quiet period the `cp` target allows (10 s), with room for a real
            // machine's scheduling.
            ok = nodes.read_until(15, |seen| placement(seen).values().all(|n| n != "n3"));
            if ok {
                let took = killed.elapsed().as_secs_f64();
                println!("-- node 3's devices run on the survivors {took:.1}s after the kill");
            }
        }
        if ok {
            println!("-- where each device runs: {:?}", placement(&nodes.seen));
            println!("-- node 2 is lost (SIGKILL): node 1 alone is a minority");
            nodes.kill(2);
            let seen_before = nodes.seen.len();
            ok = nodes.read_until(20, |seen| {
                seen[seen_before..]
                    .iter()
                    .any(|l| l.ends_with(": unavailable"))
            });
        }
        if ok {
            println!("done: the dashboard was registered and found; node 3's devices started again on the survivors, and node 1 alone answered unavailable");
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "the devices example did not see what it expected; it saw: {:?}",
                nodes.seen
            );
            ExitCode::FAILURE
        }
    }
}
