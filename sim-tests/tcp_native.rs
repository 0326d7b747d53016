//! The TCP transport natively, over loopback: two nodes in this process, a call answered and
//! messages in order (the same rules as `sim-tests/tcp.rs` on madsim's TCP; the cluster
//! example runs three OS processes).
#![cfg(not(madsim))]

use crate::common::Echo;
use otpsim::dist::tcp::{Tcp, TcpConfig};
use otpsim::server::{self, ServerRef, StartOptions};
use otpsim::{rt, Node, NodeConfig, Term};
use std::net::SocketAddr;

fn config(peer: Option<SocketAddr>) -> TcpConfig {
    let mut c = TcpConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), "cookie");
    server::register_calls::<Echo>(&mut c.codec, "echo");
    c.codec.register::<u32>("u32");
    match peer {
        Some(addr) => c.peer(2, addr),
        None => c,
    }
}

#[test]
fn a_call_and_ordered_messages_cross_loopback() {
    let got = rt::block_on(0, async {
        let n2 = Node::with_config(NodeConfig {
            index: 2,
            ..NodeConfig::default()
        });
        let t2 = Tcp::start(&n2, config(None)).await.expect("listens");
        let n1 = Node::with_config(NodeConfig {
            index: 1,
            ..NodeConfig::default()
        });
        let _t1 = Tcp::start(&n1, config(Some(t2.local_addr())))
            .await
            .expect("listens");
        let (ready, started) = rt::sync::oneshot::channel();
        let (done, collected) = rt::sync::oneshot::channel();
        n2.spawn(move |p| async move {
            let opts = StartOptions::default().named("echo");
            server::start_with::<Echo>(&p, (), opts)
                .await
                .expect("starts");
            p.register("sink").expect("free");
            let _ = ready.send(());
            let mut got = Vec::new();
            while got.len() < 50 {
                if let Ok(n) = p.recv().await.downcast::<u32>() {
                    got.push(n);
                }
            }
            let _ = done.send(got);
        });
        started.await.expect("started");
        n1.spawn(|p| async move {
            let reply = ServerRef::<Echo>::call_named(&p, "echo", 2, Term::atom("hi"), None).await;
            assert_eq!(reply, Ok(Term::atom("hi")));
            for i in 0..50u32 {
                p.send_named("sink", 2, i);
            }
        });
        // A bound, not a wait: a broken transport fails here instead of hanging.
        rt::timeout(rt::Duration::from_secs(10), collected).await
    });
    let got = got
        .expect("the messages arrived within 10 s")
        .expect("sent");
    assert_eq!(got, (0..50).collect::<Vec<u32>>());
}
