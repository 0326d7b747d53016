//! The TCP transport (`dist::tcp`) on madsim's simulated TCP: the same code as in production,
//! with the network faults a simulation can give it. Each test names the cross-node rule it
//! shows (docs/architecture.md, "Across nodes"; the recorded OTP scenarios in
//! `sim-tests/conformance/c*`).
#![cfg(madsim)]

use crate::common::Echo;
use otpsim::dist::tcp::{ConnectError, Tcp, TcpConfig};
use otpsim::rt::{self, Duration, Machine};
use otpsim::server::{self, ServerRef};
use otpsim::{Msg, Node, NodeConfig, Pid, Process, Term};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 4370))
}

/// Node `index` (creation `creation`) on machine `ip`, over TCP, knowing where nodes
/// `1..=peers` listen (node k at 10.0.0.k, so a restarted node on another address dials).
async fn boot(index: u16, creation: u16, ip: u8, peers: u16) -> (Node, Tcp, Machine) {
    boot_with(index, creation, ip, peers, "cookie").await
}

/// [`boot`] with the cluster's secret `cookie`.
async fn boot_with(
    index: u16,
    creation: u16,
    ip: u8,
    peers: u16,
    cookie: &str,
) -> (Node, Tcp, Machine) {
    let machine = Machine::with_ip(&format!("n{index}.{creation}"), addr(ip).ip());
    let node = Node::with_config(NodeConfig {
        trace: true,
        index,
        creation,
        machine: Some(machine.clone()),
        ..NodeConfig::default()
    });
    let mut config = TcpConfig::new(addr(ip), cookie);
    config.net_ticktime = Duration::from_secs(4);
    server::register_calls::<Echo>(&mut config.codec, "echo");
    config.codec.register::<u32>("u32").register::<Pid>("pid");
    for k in (1..=peers).filter(|&k| k != index) {
        config = config.peer(k, addr(k as u8));
    }
    let (tx, rx) = rt::sync::oneshot::channel();
    let n = node.clone();
    machine.spawn(async move {
        let _ = tx.send(Tcp::start(&n, config).await.expect("listens"));
    });
    let tcp = rx.await.expect("started");
    (node, tcp, machine)
}

type Log = Arc<Mutex<Vec<String>>>;

/// A process on `node` that logs what it receives into `log`, trapping exits.
fn recorder(node: &Node, log: &Log) -> Pid {
    let log = log.clone();
    node.spawn(move |p| record(p, log))
}

async fn record(p: Process, log: Log) {
    p.trap_exit(true);
    loop {
        let text = match p.recv().await {
            Msg::Exit { reason, .. } => format!("EXIT {reason}"),
            Msg::Down { reason, .. } => format!("DOWN {reason}"),
            Msg::NodeDown { reason: None, .. } => "nodedown".to_string(),
            Msg::NodeDown {
                reason: Some(r), ..
            } => format!("nodedown {}", r.as_atom()),
            Msg::NodeUp { .. } => "nodeup".to_string(),
            Msg::User(v) => match v.downcast::<u32>() {
                Ok(n) => format!("got {n}"),
                Err(_) => "got something".into(),
            },
        };
        log.lock().unwrap().push(text);
    }
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// E1 and calls over TCP: messages keep their order, a call to a name on the other node is
/// answered (`c03_call_node_down`, `c09_call_across_disconnect`).
#[test]
fn messages_keep_their_order_and_calls_are_answered_over_tcp() {
    rt::block_on(1, async {
        let (n1, _t1, _m1) = boot(1, 0, 1, 2).await;
        let (n2, _t2, _m2) = boot(2, 0, 2, 2).await;
        let log = Log::default();
        let r = recorder(&n2, &log);
        let (tx, rx) = rt::sync::oneshot::channel();
        n2.spawn(move |p| async move {
            let started =
                server::start_with::<Echo>(&p, (), server::StartOptions::default().named("echo"))
                    .await;
            let _ = tx.send(started.is_ok());
            std::future::pending::<()>().await;
        });
        assert!(rx.await.unwrap());
        let (tx, rx) = rt::sync::oneshot::channel();
        n1.spawn(move |p| async move {
            for i in 0..100u32 {
                p.send(r, i);
            }
            let reply = ServerRef::<Echo>::call_named(&p, "echo", 2, Term::atom("hi"), None).await;
            let _ = tx.send(reply);
        });
        assert_eq!(rx.await.unwrap(), Ok(Term::atom("hi")));
        rt::sleep(Duration::from_millis(10)).await;
        let got = taken(&log);
        let want: Vec<String> = (0..100).map(|i| format!("got {i}")).collect();
        assert_eq!(got, want);
    });
}

/// E3 and E8 over TCP: a clogged link is declared down by ticks within `net_ticktime` (links
/// fire `noconnection`, `monitor_node` fires `nodedown`); after the clog ends, the next send
/// connects again (E6: auto-connect) and subscribers hear `nodeup`.
#[test]
fn a_clogged_link_goes_down_by_ticks_and_a_send_reconnects_after_it() {
    rt::block_on(2, async {
        let (n1, t1, m1) = boot(1, 0, 1, 2).await;
        let (n2, _t2, m2) = boot(2, 0, 2, 2).await;
        let log = Log::default();
        let far = recorder(&n2, &Log::default());
        let l2 = log.clone();
        n1.spawn(move |p| async move {
            p.link(far).unwrap();
            p.monitor_node(2, true);
            p.monitor_nodes(true);
            record(p, l2).await
        });
        rt::sleep(Duration::from_millis(100)).await;
        assert_eq!(t1.connected(), vec![2]);
        // The link connected the nodes.
        assert_eq!(taken(&log), ["nodeup"]);
        let start = rt::now();
        m1.clog(&m2);
        let mut seen = Vec::new();
        while !seen.iter().any(|l| l == "EXIT noconnection") {
            rt::sleep(Duration::from_millis(50)).await;
            seen.extend(taken(&log));
            assert!(
                rt::now() - start < Duration::from_secs(5),
                "no noconnection after 5 s"
            );
        }
        seen.sort();
        assert_eq!(
            seen,
            ["EXIT noconnection", "nodedown", "nodedown net_tick_timeout"]
        );
        assert!(rt::now() - start >= Duration::from_secs(3));
        assert_eq!(t1.connected(), Vec::<u16>::new());
        m1.unclog(&m2);
        n1.spawn(move |p| async move { p.send(far, 7u32) });
        rt::sleep(Duration::from_millis(100)).await;
        assert_eq!(t1.connected(), vec![2]);
        assert!(taken(&log).contains(&"nodeup".to_string()));
    });
}

/// E5 over TCP: a peer that comes back with a new creation replaces its old connection
/// (which goes down: `noconnection`), and links and monitors to its old pids answer
/// `noproc` (`c06_link_monitor_unreachable_and_old`).
#[test]
fn a_restarted_peer_answers_noproc_for_its_old_pids() {
    rt::block_on(3, async {
        let (n1, _t1, _m1) = boot(1, 0, 1, 2).await;
        let (n2, _t2, m2) = boot(2, 0, 2, 2).await;
        let old = recorder(&n2, &Log::default());
        let log = Log::default();
        let watcher = recorder(&n1, &log);
        n1.spawn(move |p| async move {
            p.send(old, 1u32);
        });
        rt::sleep(Duration::from_millis(100)).await;
        m2.kill(); // its sockets close
        n2.halt();
        rt::sleep(Duration::from_millis(100)).await;
        // Node 2 again, creation 1, elsewhere: it dials node 1 first.
        let (n2b, _t2b, _m2b) = boot(2, 1, 3, 2).await;
        let fresh = recorder(&n2b, &Log::default());
        n2b.spawn(move |p| async move { p.send(watcher, 5u32) });
        rt::sleep(Duration::from_millis(100)).await;
        n1.spawn(move |p| async move {
            p.trap_exit(true);
            let _ = p.link(old);
            let m = p.monitor(old);
            let mut seen = Vec::new();
            for _ in 0..2 {
                match p.recv().await {
                    Msg::Exit { reason, .. } => seen.push(format!("EXIT {reason}")),
                    Msg::Down { mref, reason, .. } if mref == m => {
                        seen.push(format!("DOWN {reason}"))
                    }
                    _ => {}
                }
            }
            seen.sort();
            assert_eq!(seen, ["DOWN noproc", "EXIT noproc"]);
            p.send(watcher, 9u32);
            let _ = fresh;
        });
        rt::sleep(Duration::from_millis(100)).await;
        assert_eq!(taken(&log), ["got 5", "got 9"]);
    });
}

/// A message of a type without a codec does not cross: a typed error in the trace, counted
/// by the transport, and the message is dropped.
#[test]
fn a_message_without_a_codec_is_undeliverable_and_says_why() {
    rt::block_on(4, async {
        let (n1, t1, _m1) = boot(1, 0, 1, 2).await;
        let (n2, _t2, _m2) = boot(2, 0, 2, 2).await;
        let log = Log::default();
        let r = recorder(&n2, &log);
        struct NotOnTheWire;
        n1.spawn(move |p| async move {
            p.send(r, NotOnTheWire);
            p.send(r, 1u32);
        });
        rt::sleep(Duration::from_millis(100)).await;
        assert_eq!(taken(&log), ["got 1"]);
        assert_eq!(t1.undeliverable(), 1);
        let lines = n1.trace_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("undeliverable") && l.contains("NotOnTheWire")),
            "{lines:?}"
        );
    });
}

/// A node with another cookie is refused, whichever side dials, and `connect` says so
/// (Erlang's handshake status `not_allowed`; the bad input: joining a node with the
/// wrong cookie); a peer without an address, and one that does not answer, are typed too.
#[test]
fn a_node_with_another_cookie_is_refused_and_connect_says_so() {
    rt::block_on(7, async {
        let (n1, t1, _m1) = boot_with(1, 0, 1, 4, "cookie").await;
        let (_n2, _t2, _m2) = boot_with(2, 0, 2, 4, "cookie").await;
        let (n3, t3, _m3) = boot_with(3, 0, 3, 4, "another").await;
        // From a process of the node, on its machine.
        let connect = |node: &Node, tcp: &Tcp, peer: u16| {
            let (tx, rx) = rt::sync::oneshot::channel();
            let tcp = tcp.clone();
            node.spawn(move |_| async move {
                let _ = tx.send(tcp.connect(peer).await);
            });
            async move { rx.await.expect("answered") }
        };
        assert_eq!(connect(&n1, &t1, 2).await, Ok(()));
        assert_eq!(connect(&n3, &t3, 1).await, Err(ConnectError::NotAllowed(1)));
        assert_eq!(connect(&n1, &t1, 3).await, Err(ConnectError::NotAllowed(3)));
        assert_eq!(
            connect(&n1, &t1, 9).await,
            Err(ConnectError::UnknownPeer(9))
        );
        assert_eq!(
            connect(&n1, &t1, 4).await,
            Err(ConnectError::Unreachable(4))
        );
        assert_eq!(t1.connected(), vec![2]);
    });
}

/// Remote spawn over TCP: the request and its answer cross the wire (the answer's type is
/// the runtime's own, in every codec).
#[test]
fn a_process_spawns_on_the_other_node_over_tcp() {
    rt::block_on(5, async {
        let (n1, _t1, _m1) = boot(1, 0, 1, 2).await;
        let (n2, _t2, _m2) = boot(2, 0, 2, 2).await;
        n2.register_start("adder", |p, arg: Term| async move {
            if let (Ok(to), Term::Int(n)) = (p.recv().await.downcast::<Pid>(), arg) {
                p.send(to, n as u32 + 1);
            }
        });
        let (tx, rx) = rt::sync::oneshot::channel();
        n1.spawn(move |p| async move {
            let pid = p
                .spawn_on(2, "adder", Term::Int(41))
                .await
                .expect("spawned");
            p.send(pid, p.pid());
            let _ = tx.send(p.recv().await.downcast::<u32>().ok());
        });
        assert_eq!(rx.await.unwrap(), Some(42));
    });
}

/// Two nodes that dial each other at the same moment keep one connection (the lower index's)
/// and lose nothing: what each sent while connecting arrives, in order, and each side hears
/// one `nodeup`.
#[test]
fn two_nodes_dialling_each_other_at_once_lose_nothing() {
    rt::block_on(6, async {
        let (n1, t1, _m1) = boot(1, 0, 1, 2).await;
        let (n2, t2, _m2) = boot(2, 0, 2, 2).await;
        let (log1, log2) = (Log::default(), Log::default());
        let (r1, r2) = (recorder(&n1, &log1), recorder(&n2, &log2));
        for (node, to) in [(&n1, r2), (&n2, r1)] {
            node.spawn(move |p| async move {
                p.monitor_nodes(true);
                for i in 0..20u32 {
                    p.send(to, i);
                }
            });
        }
        rt::sleep(Duration::from_millis(200)).await;
        let want: Vec<String> = (0..20).map(|i| format!("got {i}")).collect();
        assert_eq!(taken(&log1), want);
        assert_eq!(taken(&log2), want);
        assert_eq!((t1.connected(), t2.connected()), (vec![2], vec![1]));
    });
}
