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
    nodes::main(real::node, real::parent)
}

#[cfg(not(madsim))]
#[path = "common/nodes.rs"]
mod nodes;

#[cfg(not(madsim))]
mod real {
    use super::nodes::{self, Nodes};
    use otpsim::dist::tcp::Tcp;
    use otpsim::rt;
    use otpsim::supervisor::{self, ChildSpec, Flags, Start, Started, Strategy, SupervisorSpec};
    use otpsim::{ExitReason, Msg, Pid, Process};
    use serde::{Deserialize, Serialize};
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A client's hello to `{work, 3}`: link to me.
    #[derive(Serialize, Deserialize)]
    struct Hello(Pid);

    /// `work`'s answer: linked.
    #[derive(Serialize, Deserialize)]
    struct Linked;

    /// Runs one node: `node K PORT1 PORT2 PORT3`.
    pub fn node(args: &[String]) -> ExitCode {
        let (index, ports) = nodes::args(args);
        rt::block_on(index.into(), async move {
            let (node, mut config) = nodes::node(index, &ports);
            config
                .codec
                .register::<Hello>("hello")
                .register::<Linked>("linked");
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

    /// Starts the three nodes, kills node 3 once both clients are linked to it, and checks
    /// what the survivors say.
    pub fn parent() -> ExitCode {
        let mut nodes = Nodes::new(3);
        // Node 3 first: the others reach it as they start.
        nodes.start(3);
        let ok = nodes.wait_for(&["n3 ready"])
            && {
                nodes.start(1);
                nodes.start(2);
                nodes.wait_for(&[
                    "n1 ready",
                    "n2 ready",
                    "n1 client #1 linked to work",
                    "n2 client #1 linked to work",
                ])
            }
            && {
                println!("-- SIGKILL node 3");
                nodes.kill(3);
                nodes.wait_for(&[
                    "n1 client started #2",
                    "n2 client started #2",
                    "n1 nodedown n3",
                    "n2 nodedown n3",
                ])
            };
        if ok {
            println!("done: the survivors' clients died of noconnection and were restarted");
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "the cluster example did not see what it expected; it saw: {:?}",
                nodes.seen
            );
            ExitCode::FAILURE
        }
    }
}
