//! Three otpsim nodes as three OS processes on loopback, over the TCP transport
//! (`otpsim::dist::tcp`). Node 3 runs a process registered as `work`; on nodes 1 and 2 a
//! supervisor runs a `client` that does not trap exits and links to `work` (through a hello
//! to `{work, 3}`), and a process that monitors node 3. Node 3 is killed with SIGKILL: on the
//! survivors each client dies of `noconnection` and its supervisor restarts it, and the
//! node monitors hear `nodedown` (docs/architecture.md, "Across nodes"; the same rules as the
//! recorded OTP scenario `sim-tests/conformance/c07_noconnection_restarts`).
//!
//! ```sh
//! cargo run-native --example cluster
//! ```

#[cfg(madsim)]
fn main() {
    println!("the cluster example runs real OS processes: cargo run-native --example cluster");
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("node") => real::node(&args[2..]),
        _ => real::parent(),
    }
}

#[cfg(not(madsim))]
mod real {
    // The parent drives OS processes in real time, outside any simulation.
    #![allow(clippy::disallowed_methods)]
    use otpsim::dist::tcp::{Tcp, TcpConfig};
    use otpsim::rt::{self, Duration};
    use otpsim::supervisor::{self, ChildSpec, Flags, Start, Started, Strategy, SupervisorSpec};
    use otpsim::{ExitReason, Msg, Node, NodeConfig, Pid, Process};
    use serde::{Deserialize, Serialize};
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::mpsc;
    use std::time::Instant;

    /// A client's hello to `{work, 3}`: link to me.
    #[derive(Serialize, Deserialize)]
    struct Hello(Pid);

    /// `work`'s answer: linked.
    #[derive(Serialize, Deserialize)]
    struct Linked;

    /// Runs one node: `node K PORT1 PORT2 PORT3`.
    pub fn node(args: &[String]) -> ExitCode {
        let index: u16 = args[0].parse().expect("node index");
        let ports: Vec<u16> = args[1..].iter().map(|p| p.parse().expect("port")).collect();
        rt::block_on(index.into(), async move {
            let node = Node::with_config(NodeConfig {
                index,
                creation: 1,
                ..NodeConfig::default()
            });
            let at =
                |k: u16| std::net::SocketAddr::from(([127, 0, 0, 1], ports[usize::from(k) - 1]));
            let mut config = TcpConfig::new(at(index), "example-cookie");
            config.net_ticktime = Duration::from_secs(4);
            config
                .codec
                .register::<Hello>("hello")
                .register::<Linked>("linked");
            for k in (1..=3).filter(|&k| k != index) {
                config = config.peer(k, at(k));
            }
            let _tcp = Tcp::start(&node, config).await.expect("listens");
            let main = if index == 3 {
                node.spawn(work)
            } else {
                node.spawn(move |p| survivor(p, index))
            };
            node.wait_exit(main).await
        });
        ExitCode::SUCCESS
    }

    /// Node 3's `work`: links to every client that says hello.
    async fn work(p: Process) -> ExitReason {
        p.register("work").expect("the name is free");
        println!("n3 ready");
        loop {
            if let Ok(Hello(client)) = p.recv().await.downcast::<Hello>() {
                let _ = p.link(client);
                p.send(client, Linked);
            }
        }
    }

    static STARTS: AtomicU32 = AtomicU32::new(0);

    /// A client: links to `work` on node 3 and waits; it dies with that link.
    fn client(index: u16) -> ChildSpec {
        ChildSpec::worker(
            "client",
            Start::new(move |p| {
                let n = STARTS.fetch_add(1, Ordering::Relaxed) + 1;
                println!("n{index} client started #{n}");
                let pid = p.spawn_link(move |q| async move {
                    q.send_named("work", 3, Hello(q.pid()));
                    if q.receive(|m| m.is::<Linked>()).await.is::<Linked>() {
                        println!("n{index} client #{n} linked to work");
                    }
                    // Until the link takes it down.
                    q.receive(|_| false).await;
                    ExitReason::Normal
                });
                Box::pin(async move { Ok(Started::Pid(pid)) })
            }),
        )
    }

    /// Nodes 1 and 2: the supervised client, and a monitor of node 3.
    async fn survivor(p: Process, index: u16) -> ExitReason {
        p.spawn(move |w| async move {
            w.monitor_node(3, true);
            if let Msg::NodeDown { node, .. } =
                w.receive(|m| matches!(m, Msg::NodeDown { .. })).await
            {
                println!("n{index} nodedown n{node}");
            }
        });
        let spec = SupervisorSpec::new(Flags::elixir(Strategy::OneForOne)).child(client(index));
        let sup = supervisor::start_link(&p, spec)
            .await
            .expect("the tree starts");
        println!("n{index} ready");
        p.node()
            .wait_exit(sup.pid())
            .await
            .unwrap_or(ExitReason::Normal)
    }

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("an address").port()
    }

    /// Starts the three nodes, kills node 3 once both clients are linked to it, and checks
    /// what the survivors say.
    pub fn parent() -> ExitCode {
        let ports: Vec<String> = (0..3).map(|_| free_port().to_string()).collect();
        let exe = std::env::current_exe().expect("this program");
        let (tx, rx) = mpsc::channel::<String>();
        let mut children: Vec<Child> = Vec::new();
        let start = |k: u16, children: &mut Vec<Child>| {
            let mut child = Command::new(&exe)
                .arg("node")
                .arg(k.to_string())
                .args(&ports)
                .stdout(Stdio::piped())
                .spawn()
                .expect("a node starts");
            let out = child.stdout.take().expect("piped");
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            children.push(child);
        };
        let mut seen: Vec<String> = Vec::new();
        let wait_for = |want: &[&str], seen: &mut Vec<String>| -> bool {
            let deadline = Instant::now() + std::time::Duration::from_secs(20);
            while !want.iter().all(|w| seen.iter().any(|s| s == w)) {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => {
                        println!("{line}");
                        seen.push(line);
                    }
                    Err(_) => return false,
                }
            }
            true
        };
        // Node 3 first: the others reach it as they start.
        start(3, &mut children);
        let ok = wait_for(&["n3 ready"], &mut seen)
            && {
                start(1, &mut children);
                start(2, &mut children);
                let linked = [
                    "n1 ready",
                    "n2 ready",
                    "n1 client #1 linked to work",
                    "n2 client #1 linked to work",
                ];
                wait_for(&linked, &mut seen)
            }
            && {
                println!("-- SIGKILL node 3");
                let _ = children[0].kill();
                let _ = children[0].wait();
                let after = [
                    "n1 client started #2",
                    "n2 client started #2",
                    "n1 nodedown n3",
                    "n2 nodedown n3",
                ];
                wait_for(&after, &mut seen)
            };
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if ok {
            println!("done: the survivors' clients died of noconnection and were restarted");
            ExitCode::SUCCESS
        } else {
            eprintln!("the cluster example did not see what it expected; it saw: {seen:?}");
            ExitCode::FAILURE
        }
    }
}
