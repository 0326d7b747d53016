//! Process groups across nodes (`otpsim::cluster::Groups`), beyond what the oracle's
//! scenarios `c19`-`c22` record: the API of OTP 25's `pg` (`kernel/src/pg.erl`: `join/3`,
//! `leave/3`, `get_local_members/2`, `which_groups/1`, `monitor/2`, `demonitor/2`; the
//! scope's table dies with its process).
#![cfg(madsim)]

use otpsim::cluster::groups::{GroupsError, GroupsEvent};
use otpsim::cluster::Groups;
use otpsim::rt::Duration;
use otpsim::sim::cluster::{ClusterCtl, ClusterSim};
use otpsim::supervisor::{self, Flags, Strategy, SupervisorSpec};
use otpsim::{ExitReason, Pid, Process};
use std::future::Future;
use std::sync::{Arc, Mutex};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn run<F, Fut>(scenario: F)
where
    F: FnOnce(ClusterCtl) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let report = ClusterSim::new(0).nodes(2).run(scenario);
    assert_eq!(
        report.failure(),
        None,
        "{}",
        report.trace.timeline().join("\n")
    );
}

/// A process that runs until it is told to exit.
fn idle(p: &Process) -> Pid {
    p.spawn(|q| async move {
        q.recv().await;
    })
}

/// Starts the scope "pg" on node `k`, and a process there that may join.
async fn scope_with_member(ctl: &ClusterCtl, k: u16) -> (Groups, Pid) {
    ctl.on(k, |p| async move {
        let groups = Groups::start_link(&p, "pg").await.unwrap();
        (groups, idle(&p))
    })
    .await
    .unwrap()
}

/// pg.erl `join/3` and `leave/3`: only a process of the scope's node joins there
/// (`{nolocal, Pid}`); a process that joins twice is listed twice and leaves once per join,
/// then `not_joined`; `get_local_members` and `which_local_groups` list this node's only.
#[test]
fn join_and_leave_are_local_and_counted() {
    run(|ctl| async move {
        ctl.connect(1, 2);
        let (g1, m1) = scope_with_member(&ctl, 1).await;
        let (g2, m2) = scope_with_member(&ctl, 2).await;
        let (a, b) = (g1.clone(), g2.clone());
        ctl.on(2, move |p| async move {
            assert_eq!(b.join(&p, "g", [m1]).await, Err(GroupsError::NotLocal(m1)));
            assert_eq!(b.leave(&p, "g", [m1]).await, Err(GroupsError::NotLocal(m1)));
            b.join(&p, "g", [m2, m2]).await.unwrap();
            b.join(&p, "h", [m2]).await.unwrap();
        })
        .await;
        ctl.sleep(ms(10)).await; // node 1 hears of them before its own join
        ctl.on(1, move |p| async move {
            a.join(&p, "g", [m1]).await.unwrap();
        })
        .await;
        ctl.sleep(ms(10)).await;
        assert_eq!(g1.get_members("g"), vec![m1, m2, m2]);
        assert_eq!(g1.get_local_members("g"), vec![m1]);
        assert_eq!(g1.which_groups(), vec!["g", "h"]);
        assert_eq!(g1.which_local_groups(), vec!["g"]);
        assert_eq!(g2.which_local_groups(), vec!["g", "h"]);
        let b = g2.clone();
        ctl.on(2, move |p| async move {
            assert_eq!(b.leave(&p, "g", [m2]).await, Ok(true));
            assert_eq!(b.get_local_members("g"), vec![m2]);
            assert_eq!(b.leave(&p, "g", [m2]).await, Ok(true));
            assert_eq!(b.leave(&p, "g", [m2]).await, Ok(false)); // not_joined
        })
        .await;
        ctl.sleep(ms(10)).await;
        assert_eq!(g1.get_members("g"), vec![m1]);
        assert_eq!(g1.get_members("h"), vec![m2]);
    });
}

/// pg.erl `monitor/2` and `demonitor/2` (OTP 25.1): the subscriber hears every join and
/// leave of its group on any node, a member's exit, and the loss of a node's members when
/// the connection goes; `demonitor` ends it and drops what is still in the mailbox.
#[test]
fn a_monitor_hears_every_change_of_its_group() {
    run(|ctl| async move {
        ctl.connect(1, 2);
        let (g1, m1) = scope_with_member(&ctl, 1).await;
        let (g2, m2) = scope_with_member(&ctl, 2).await;
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        let a = g1.clone();
        let watcher = ctl
            .on(1, move |p| async move {
                p.spawn(move |q| async move {
                    let (mref, now) = a.monitor(&q, "g").await.unwrap();
                    assert!(now.is_empty());
                    loop {
                        let msg = q.recv().await;
                        if let Some(e) = msg.downcast_ref::<GroupsEvent>() {
                            assert_eq!(e.mref, mref);
                            let pids: Vec<String> = e.pids.iter().map(|p| p.to_string()).collect();
                            let line = format!("{} {} {}", e.group, e.joined, pids.join(","));
                            log.lock().unwrap().push(line);
                        } else if msg.downcast_ref::<&str>().is_some() {
                            // Events sent before the demonitor are dropped with it.
                            q.sleep(ms(50)).await;
                            assert_eq!(a.demonitor(&q, mref).await, Ok(true));
                            assert_eq!(q.mailbox_len(), 0);
                            assert_eq!(a.demonitor(&q, mref).await, Ok(false));
                            log.lock().unwrap().push("demonitored".to_string());
                            break;
                        }
                    }
                })
            })
            .await
            .unwrap();
        ctl.sleep(ms(5)).await;
        let b = g2.clone();
        ctl.on(
            2,
            move |p| async move { b.join(&p, "g", [m2]).await.unwrap() },
        )
        .await;
        ctl.sleep(ms(5)).await;
        let a = g1.clone();
        ctl.on(
            1,
            move |p| async move { a.join(&p, "g", [m1]).await.unwrap() },
        )
        .await;
        ctl.sleep(ms(5)).await;
        ctl.node(2).send(m2, ()); // m2 exits: it leaves on every node
        ctl.sleep(ms(5)).await;
        let b = g2.clone();
        let m3 = ctl
            .on(2, move |p| async move {
                let m3 = idle(&p);
                b.join(&p, "g", [m3]).await.unwrap();
                m3
            })
            .await
            .unwrap();
        ctl.sleep(ms(5)).await;
        ctl.disconnect(1, 2); // node 2's members are gone for node 1
        ctl.sleep(ms(5)).await;
        assert_eq!(g1.get_members("g"), vec![m1]);
        ctl.node(1).send(watcher, "stop");
        let a = g1.clone();
        ctl.on(
            1,
            move |p| async move { a.leave(&p, "g", [m1]).await.unwrap() },
        )
        .await;
        ctl.sleep(ms(100)).await;
        assert_eq!(
            *heard.lock().unwrap(),
            vec![
                format!("g true {m2}"),
                format!("g true {m1}"),
                format!("g false {m2}"),
                format!("g true {m3}"),
                format!("g false {m3}"),
                "demonitored".to_string(),
            ]
        );
    });
}

/// pg.erl `monitor_scope/1` (OTP 25.1): the caller gets every group's members now, then
/// hears every group's changes: joins, leaves, a peer scope's members forgotten when the
/// connection goes (its `DOWN`), and at the reconnection's `sync` the members the peer has
/// now (not those it had meanwhile and dropped).
#[test]
fn a_scope_monitor_hears_every_group_across_a_disconnection() {
    run(|ctl| async move {
        ctl.connect(1, 2);
        let (g1, m1) = scope_with_member(&ctl, 1).await;
        let (g2, m2) = scope_with_member(&ctl, 2).await;
        let join = |k: u16, groups: &Groups, group: &'static str, pid: Pid| {
            let groups = groups.clone();
            ctl.on(
                k,
                move |p| async move { groups.join(&p, group, [pid]).await },
            )
        };
        join(2, &g2, "g", m2).await.unwrap().unwrap();
        ctl.sleep(ms(5)).await;
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        let a = g1.clone();
        ctl.on(1, move |p| {
            p.spawn(move |q| async move {
                let (mref, now) = a.monitor_scope(&q).await.unwrap();
                log.lock().unwrap().push(format!("now {now:?}"));
                loop {
                    let msg = q.recv().await;
                    let Some(e) = msg.downcast_ref::<GroupsEvent>() else {
                        break;
                    };
                    assert_eq!(e.mref, mref);
                    let pids: Vec<String> = e.pids.iter().map(|p| p.to_string()).collect();
                    let line = format!("{} {} {}", e.group, e.joined, pids.join(","));
                    log.lock().unwrap().push(line);
                }
            });
            async {}
        })
        .await;
        ctl.sleep(ms(5)).await;
        join(2, &g2, "h", m2).await.unwrap().unwrap();
        ctl.sleep(ms(5)).await;
        join(1, &g1, "g", m1).await.unwrap().unwrap();
        ctl.sleep(ms(5)).await;
        ctl.disconnect(1, 2);
        ctl.sleep(ms(5)).await;
        let b = g2.clone();
        ctl.on(2, move |p| async move { b.leave(&p, "h", [m2]).await })
            .await
            .unwrap()
            .unwrap();
        assert!(ctl.connect(1, 2));
        ctl.sleep(ms(50)).await;
        let mut members = g1.get_members("g");
        members.sort();
        assert_eq!(members, vec![m1, m2]);
        assert_eq!(
            *heard.lock().unwrap(),
            vec![
                format!("now {{\"g\": [{m2}]}}"),
                format!("h true {m2}"),
                format!("g true {m1}"),
                format!("g false {m2}"),
                format!("h false {m2}"),
                format!("g true {m2}"),
            ]
        );
    });
}

/// pg's table dies with its scope ("Local membership is not preserved if scope process
/// exits and restarts"): reads of a dead scope are empty and its calls fail, the other
/// nodes forget its members (the DOWN of the scope), and a supervisor's restart starts it
/// empty. A handle runs one incarnation at a time.
#[test]
fn a_restarted_scope_starts_empty() {
    run(|ctl| async move {
        ctl.connect(1, 2);
        let (g2, m2) = scope_with_member(&ctl, 2).await;
        let groups = Groups::new("pg");
        let g1 = groups.clone();
        let m1 = ctl
            .on(1, move |p| async move {
                let spec =
                    SupervisorSpec::new(Flags::new(Strategy::OneForOne)).child(g1.child_spec("pg"));
                // A supervisor stops with its parent: one that stays starts it.
                p.spawn(move |q| async move {
                    supervisor::start_link(&q, spec).await.unwrap();
                    q.recv().await;
                });
                p.sleep(ms(1)).await;
                let m1 = idle(&p);
                g1.join(&p, "g", [m1]).await.unwrap();
                m1
            })
            .await
            .unwrap();
        ctl.sleep(ms(10)).await;
        assert_eq!(g2.get_members("g"), vec![m1]);
        let first = groups.pid().unwrap();
        ctl.node(1).exit(first, ExitReason::Kill);
        ctl.sleep(ms(10)).await;
        let second = groups.pid().unwrap();
        assert_ne!(second, first);
        assert_eq!(groups.get_members("g"), Vec::<Pid>::new());
        assert_eq!(g2.get_members("g"), Vec::<Pid>::new());
        let b = g2.clone();
        ctl.on(
            2,
            move |p| async move { b.join(&p, "g", [m2]).await.unwrap() },
        )
        .await;
        ctl.sleep(ms(10)).await;
        assert_eq!(
            groups.get_members("g"),
            vec![m2],
            "{}",
            ctl.node(1).trace_lines().join("\n")
        ); // the new scope learnt of it
           // One incarnation at a time: the handle runs on node 1, not on node 2 as well.
        let elsewhere = groups.clone();
        ctl.on(2, move |p| async move {
            let e = elsewhere.start(&p).await;
            assert_eq!(e, Err(otpsim::server::StartError::AlreadyStarted(second)));
        })
        .await;
        let stray = Groups::new("other");
        ctl.on(1, move |p| async move {
            let e = stray.join(&p, "g", [p.pid()]).await;
            assert_eq!(e, Err(GroupsError::NotRunning("other".into())));
        })
        .await;
    });
}
