//! The process core: links, monitors, exit signals, trap_exit, mailboxes, names and panics,
//! each rule against `docs/behaviours.md` §M (items 97-102) and Erlang's reference manual.
//! Every test here runs both simulated and natively (no timers involved).
//!
//! One test per rule of docs/behaviours.md §M and the process API (hence the file's length).

use crate::common::{check, has_line};
use otpsim::process::{Noproc, RegisterError};
use otpsim::{ExitReason, Msg, Pid, Process};

/// Waits for the `DOWN` of `mref` and returns its reason.
async fn down_reason(p: &Process, mref: otpsim::process::MonitorRef) -> ExitReason {
    match p
        .receive(|m| matches!(m, Msg::Down { mref: r, .. } if *r == mref))
        .await
    {
        Msg::Down { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// Panics with `msg` (a unit function, so bodies that call it keep type `()`).
fn crash(msg: &str) {
    panic!("{msg}")
}

/// Waits for a user message of type `T`.
async fn recv_user<T: Send + 'static>(p: &Process) -> T {
    p.receive(|m| m.is::<T>())
        .await
        .downcast::<T>()
        .ok()
        .unwrap()
}

struct Ping(Pid);
struct Pong;

/// A process that answers every `Ping` with a `Pong`, and reports trapped exits.
async fn ponger(p: Process, trap: bool, report_to: Option<Pid>) {
    p.trap_exit(trap);
    loop {
        match p.recv().await {
            Msg::Exit { from, reason } => {
                if let Some(to) = report_to {
                    p.send(to, (from, reason));
                }
            }
            m => {
                if let Ok(Ping(from)) = m.downcast::<Ping>() {
                    p.send(from, Pong);
                }
            }
        }
    }
}

async fn is_alive_by_ping(p: &Process, pid: Pid) -> bool {
    let mref = p.monitor(pid);
    p.send(pid, Ping(p.pid()));
    let answer = p
        .receive(|m| m.is::<Pong>() || matches!(m, Msg::Down { mref: r, .. } if *r == mref))
        .await;
    p.demonitor_flush(mref);
    answer.is::<Pong>()
}

#[test]
fn m97_a_linked_process_dies_with_the_same_reason_unless_it_traps() {
    check(|p| async move {
        // a non-trapping process linked to a crashing one dies with its reason
        let (a, mref) = p.spawn_monitor(|a| async move {
            a.spawn_link(|_| async { ExitReason::error("boom") });
            a.recv().await; // never arrives: the link kills us first
        });
        assert_eq!(down_reason(&p, mref).await, ExitReason::error("boom"));
        assert!(!p.node().is_alive(a));

        // a trapping one receives {'EXIT', From, Reason} and lives on
        p.trap_exit(true);
        let child = p.spawn_link(|_| async { ExitReason::error("boom") });
        match p.recv().await {
            Msg::Exit { from, reason } => {
                assert_eq!(from, child);
                assert_eq!(reason, ExitReason::error("boom"));
            }
            other => panic!("expected an EXIT, got {other:?}"),
        }
    });
}

#[test]
fn m97_a_normal_exit_of_a_link_is_ignored_by_a_non_trapping_process() {
    check(|p| async move {
        let root = p.pid();
        let a = p.spawn(move |a| async move {
            let b = a.spawn_link(|_| async {});
            a.send(root, b);
            ponger(a, false, None).await;
        });
        let b: Pid = recv_user(&p).await;
        let mref = p.monitor(b);
        let reason = down_reason(&p, mref).await;
        assert!(matches!(reason, ExitReason::Normal | ExitReason::Noproc));
        assert!(
            is_alive_by_ping(&p, a).await,
            "the normal exit of a link killed it"
        );
    });
}

#[test]
fn m97_a_dying_process_signals_all_its_links_and_monitors() {
    let report = check(|p| async move {
        p.trap_exit(true);
        let (b, mref) = p.spawn_monitor(|b| async move {
            b.recv().await;
            ExitReason::error("bye")
        });
        p.link(b).unwrap();
        p.send(b, ());
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(format!("{:?}", p.recv().await));
        }
        assert_eq!(
            got[0],
            format!("{{'EXIT',{b},bye}}"),
            "links are signalled first"
        );
        assert!(got[1].starts_with("{'DOWN',") && got[1].ends_with(&format!("{b},bye}}")));
        let _ = mref;
    });
    assert!(has_line(&report, "exit <0.2> reason=bye"));
    assert!(has_line(
        &report,
        "signal <0.2> -> <0.1> reason=bye trapped"
    ));
    assert!(has_line(&report, "down <0.1> of <0.2> reason=bye"));
}

#[test]
fn m98_kill_cannot_be_trapped_and_links_see_killed() {
    check(|p| async move {
        p.trap_exit(true);
        let root = p.pid();
        let victim = p.spawn_link(move |v| async move {
            v.trap_exit(true);
            v.send(root, "trapping");
            v.recv().await;
        });
        assert_eq!(recv_user::<&str>(&p).await, "trapping");
        p.exit(victim, ExitReason::Kill);
        // It never runs again, so it is dead the moment the signal arrives (the BEAM's
        // is_process_alive after exit/2 from the same sender says the same), and its link
        // signal is already in the mailbox.
        assert!(!p.node().is_alive(victim));
        assert_eq!(p.mailbox_len(), 1);
        match p.recv().await {
            Msg::Exit { from, reason } => {
                assert_eq!(from, victim);
                assert_eq!(reason, ExitReason::Killed, "links receive killed, not kill");
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn m98_exit_self_kill_is_killed_but_a_self_chosen_kill_reason_spreads_as_kill() {
    // Asked of OTP 25: exit(self(), kill) dies `killed`; a process that simply exits with
    // reason `kill` sends `kill` to its links, where it is an ordinary, trappable reason.
    check(|p| async move {
        let (_, mref) = p.spawn_monitor(|s| async move {
            s.trap_exit(true);
            s.exit(s.pid(), ExitReason::Kill);
            s.recv().await;
        });
        assert_eq!(down_reason(&p, mref).await, ExitReason::Killed);

        p.trap_exit(true);
        let child = p.spawn_link(|_| async { ExitReason::Kill });
        match p.recv().await {
            Msg::Exit { from, reason } => assert_eq!((from, reason), (child, ExitReason::Kill)),
            other => panic!("{other:?}"),
        }
        let (_, mref) = p.spawn_monitor(|a| async move {
            a.spawn_link(|_| async { ExitReason::Kill });
            a.recv().await;
        });
        assert_eq!(down_reason(&p, mref).await, ExitReason::Kill);
    });
}

#[test]
fn m99_exit_normal_is_ignored_unless_trapping_or_sent_to_self() {
    check(|p| async move {
        let root = p.pid();
        // ignored by a non-trapping process
        let plain = p.spawn(|a| ponger(a, false, None));
        p.exit(plain, ExitReason::Normal);
        assert!(is_alive_by_ping(&p, plain).await);
        // delivered as a message to a trapping one
        let trapping = p.spawn(move |a| ponger(a, true, Some(root)));
        assert!(is_alive_by_ping(&p, trapping).await);
        p.exit(trapping, ExitReason::Normal);
        let (from, reason): (Pid, ExitReason) = recv_user(&p).await;
        assert_eq!((from, reason), (root, ExitReason::Normal));
        // exit(self(), normal) ends the caller with reason normal
        let (_, mref) = p.spawn_monitor(|s| async move {
            s.exit(s.pid(), ExitReason::Normal);
            s.recv().await;
            ExitReason::error("survived")
        });
        assert_eq!(down_reason(&p, mref).await, ExitReason::Normal);
        // any other reason kills a non-trapping target
        let (victim, mref) = p.spawn_monitor(|a| ponger(a, false, None));
        p.exit(victim, ExitReason::error("go"));
        assert_eq!(down_reason(&p, mref).await, ExitReason::error("go"));
    });
}

#[test]
fn m100_monitors_are_one_way_and_a_dead_pid_gives_noproc_at_once() {
    check(|p| async move {
        let root = p.pid();
        let (dead, mref) = p.spawn_monitor(|_| async {});
        assert_eq!(down_reason(&p, mref).await, ExitReason::Normal);
        let again = p.monitor(dead);
        match p.recv().await {
            Msg::Down { mref, pid, reason } => {
                assert_eq!((mref, pid, reason), (again, dead, ExitReason::Noproc));
            }
            other => panic!("{other:?}"),
        }
        // the watcher's death does not affect the watched process
        let target = p.spawn(|a| ponger(a, false, None));
        let (_, watcher_down) = p.spawn_monitor(move |w| async move {
            w.monitor(target);
            w.send(root, "monitoring");
            ExitReason::error("watcher died")
        });
        assert_eq!(recv_user::<&str>(&p).await, "monitoring");
        assert_eq!(
            down_reason(&p, watcher_down).await,
            ExitReason::error("watcher died")
        );
        assert!(is_alive_by_ping(&p, target).await);
    });
}

#[test]
fn m100_demonitor_stops_the_down_and_flush_removes_a_delivered_one() {
    check(|p| async move {
        let (child, mref) = p.spawn_monitor(|c| async move {
            c.recv().await;
        });
        assert!(p.demonitor(mref));
        assert!(!p.demonitor(mref), "a second demonitor finds nothing");
        p.send(child, ());
        let m2 = p.monitor(child);
        assert_eq!(down_reason(&p, m2).await, ExitReason::Normal);
        assert_eq!(p.mailbox_len(), 0, "no DOWN for the removed monitor");

        let (_, m3) = p.spawn_monitor(|_| async {});
        let (_, m4) = p.spawn_monitor(|_| async {});
        down_reason(&p, m4).await; // both have exited by now
        assert_eq!(p.mailbox_len(), 1, "the DOWN of m3 waits in the mailbox");
        assert!(!p.demonitor_flush(m3), "the monitor is no longer active");
        assert_eq!(p.mailbox_len(), 0, "flush removed the delivered DOWN");
    });
}

#[test]
fn m101_messages_between_one_pair_arrive_in_send_order() {
    check(|p| async move {
        let root = p.pid();
        let sink = p.spawn(move |s| async move {
            let mut got = Vec::new();
            while got.len() < 200 {
                got.push(recv_user::<u32>(&s).await);
            }
            s.send(root, got);
        });
        for i in 0..100u32 {
            p.send(sink, i);
        }
        p.spawn(move |q| async move {
            for i in 1000..1100u32 {
                q.send(sink, i);
            }
        });
        let got: Vec<u32> = recv_user(&p).await;
        let mine: Vec<u32> = got.iter().copied().filter(|i| *i < 1000).collect();
        let theirs: Vec<u32> = got.iter().copied().filter(|i| *i >= 1000).collect();
        assert_eq!(mine, (0..100).collect::<Vec<_>>());
        assert_eq!(theirs, (1000..1100).collect::<Vec<_>>());
    });
}

#[test]
fn m102_after_unlink_no_exit_signal_arrives_but_a_queued_one_stays() {
    check(|p| async move {
        p.trap_exit(true);
        let a = p.spawn_link(|a| async move {
            a.recv().await;
            ExitReason::error("late")
        });
        p.unlink(a);
        p.unlink(a); // unlinking twice, or an unknown pid, is fine
        p.unlink(Pid::from_raw(999));
        let mref = p.monitor(a);
        p.send(a, ());
        assert_eq!(down_reason(&p, mref).await, ExitReason::error("late"));
        assert_eq!(p.mailbox_len(), 0, "no EXIT after unlink");

        let b = p.spawn_link(|_| async { ExitReason::error("early") });
        let mref = p.monitor(b);
        down_reason(&p, mref).await; // b is dead: its EXIT is queued
        p.unlink(b);
        match p.recv().await {
            Msg::Exit { from, reason } => {
                assert_eq!((from, reason), (b, ExitReason::error("early")))
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn link_to_a_dead_pid_is_noproc_when_not_trapping_and_an_exit_message_when_trapping() {
    check(|p| async move {
        let (dead, mref) = p.spawn_monitor(|_| async {});
        down_reason(&p, mref).await;
        assert_eq!(p.link(dead), Err(Noproc));
        assert!(p.links().is_empty());
        p.trap_exit(true);
        assert_eq!(p.link(dead), Ok(()));
        match p.recv().await {
            Msg::Exit { from, reason } => assert_eq!((from, reason), (dead, ExitReason::Noproc)),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.link(p.pid()), Ok(()), "linking to oneself does nothing");
        assert!(p.links().is_empty());
    });
}

#[test]
fn links_are_bidirectional() {
    check(|p| async move {
        let root = p.pid();
        let a = p.spawn(move |a| async move {
            a.recv().await;
            a.send(root, a.links());
            a.recv().await;
        });
        p.link(a).unwrap();
        assert_eq!(p.links(), vec![a]);
        p.send(a, ());
        assert_eq!(recv_user::<Vec<Pid>>(&p).await, vec![root]);
        p.trap_exit(true);
        p.send(a, ());
        assert!(matches!(p.recv().await, Msg::Exit { from, .. } if from == a));
        assert!(p.links().is_empty(), "the link is gone with the process");
    });
}

#[test]
fn sending_to_a_dead_pid_is_silently_dropped() {
    check(|p| async move {
        let (dead, mref) = p.spawn_monitor(|_| async {});
        down_reason(&p, mref).await;
        p.send(dead, "into the void");
        p.exit(dead, ExitReason::error("too late"));
        p.node().send(dead, 1u8);
        assert!(!p.node().is_alive(dead));
    });
}

#[test]
fn a_panic_is_the_exit_reason_links_and_monitors_see_and_the_run_goes_on() {
    let report = check(|p| async move {
        p.trap_exit(true);
        let child = p.spawn_link(|_| async { crash("kaboom") });
        let mref = p.monitor(child);
        match p.recv().await {
            Msg::Exit { reason, .. } => assert_eq!(reason, ExitReason::Panic("kaboom".into())),
            other => panic!("{other:?}"),
        }
        let reason = down_reason(&p, mref).await;
        assert!(matches!(reason, ExitReason::Panic(_) | ExitReason::Noproc));
        // a panic while the body is being constructed is caught too
        let (_, mref) = p.spawn_monitor(|_| -> std::future::Ready<()> { panic!("too early") });
        assert_eq!(
            down_reason(&p, mref).await,
            ExitReason::Panic("too early".into())
        );
    });
    assert!(has_line(&report, "exit <0.2> reason={panic,\"kaboom\"}"));
}

#[test]
fn names_are_registered_unique_and_released_at_death() {
    let report = check(|p| async move {
        p.register("root").unwrap();
        assert_eq!(p.whereis("root"), Some(p.pid()));
        assert_eq!(
            p.register("other"),
            Err(RegisterError::AlreadyNamed("root".into()))
        );
        let root = p.pid();
        let (child, mref) = p.spawn_monitor(move |c| async move {
            assert_eq!(c.register("root"), Err(RegisterError::Taken(root)));
            c.register("child").unwrap();
            c.send(root, ());
            c.recv().await;
        });
        recv_user::<()>(&p).await;
        assert_eq!(p.whereis("child"), Some(child));
        p.send(child, ());
        down_reason(&p, mref).await;
        assert_eq!(p.whereis("child"), None, "the name dies with its owner");
        assert!(p.unregister("root"));
        assert!(!p.unregister("root"));
        assert_eq!(p.whereis("root"), None);
    });
    assert!(has_line(&report, "register child <0.2>"));
    assert!(has_line(&report, "unregister child <0.2>"));
}

#[test]
fn selective_receive_leaves_other_messages_in_order() {
    check(|p| async move {
        let me = p.pid();
        for i in 0..5u32 {
            p.send(me, i);
        }
        p.send(me, "marker");
        assert_eq!(recv_user::<&str>(&p).await, "marker");
        for i in 0..5u32 {
            assert_eq!(recv_user::<u32>(&p).await, i);
        }
    });
}

/// A selective receive's predicate is user code: it may use the node (ask whether a process
/// lives, send), and a panic in it ends its own process with that panic while the node goes
/// on. It once ran under the node's lock: the first hung the node, the second poisoned it.
/// The run is watched from another thread: a hung node never answers (wall clock only
/// bounds a failure; a passing run answers at once).
#[test]
fn a_receive_predicate_may_use_the_node_and_a_panic_in_it_ends_only_its_process() {
    let (tx, rx) = std::sync::mpsc::channel();
    #[allow(clippy::disallowed_methods)] // a watcher thread outside the run
    std::thread::spawn(move || {
        let report = check(|p| async move {
            let me = p.pid();
            let other = p.spawn(|q| async move {
                assert_eq!(recv_user::<&str>(&q).await, "poke");
            });
            p.send(me, 1u32);
            p.send(me, 2u32);
            let taken = p
                .receive(|m| {
                    if p.node().is_alive(other) && m.downcast_ref::<u32>() == Some(&1) {
                        p.send(other, "poke");
                    }
                    m.downcast_ref::<u32>() == Some(&2)
                })
                .await;
            assert_eq!(taken.downcast_ref::<u32>(), Some(&2));
            let (victim, mref) = p.spawn_monitor(|q| async move {
                q.send(q.pid(), ());
                q.receive(|_| -> bool { panic!("in the predicate") }).await;
            });
            assert_eq!(
                down_reason(&p, mref).await,
                ExitReason::Panic("in the predicate".into())
            );
            assert!(!p.node().is_alive(victim));
            // The node goes on: the message left behind, then a new one.
            p.send(me, 3u32);
            assert_eq!(recv_user::<u32>(&p).await, 1);
            assert_eq!(recv_user::<u32>(&p).await, 3);
        });
        let _ = tx.send(report.root_exit);
    });
    let exit = rx.recv_timeout(std::time::Duration::from_secs(120));
    assert_eq!(
        exit,
        Ok(Some(ExitReason::Normal)),
        "the node hung or the root failed"
    );
}

#[cfg(madsim)]
mod simulated {
    use super::*;
    use otpsim::rt::{Duration, SeededConfig};
    use otpsim::sim::Sim;

    #[test]
    fn m101_fifo_per_pair_holds_when_the_simulator_delays_signals() {
        // Every signal is delayed by up to 50 ms: different senders interleave, but one
        // sender's messages, and its exit after them, keep their order.
        let faults = SeededConfig {
            delay_probability: 0.7,
            max_delay: Duration::from_millis(50),
            ..Default::default()
        };
        for seed in 0..20 {
            let report = Sim::new(seed).with_faults(faults).run(|p| async move {
                p.trap_exit(true);
                let root = p.pid();
                let senders: Vec<Pid> = (0..3u32)
                    .map(|k| {
                        p.spawn_link(move |s| async move {
                            for i in 0..30u32 {
                                s.send(root, (k, i));
                            }
                        })
                    })
                    .collect();
                let mut next = [0u32; 3];
                let mut exited = 0;
                while exited < 3 {
                    match p.recv().await {
                        Msg::Exit { from, .. } => {
                            let k = senders.iter().position(|s| *s == from).unwrap();
                            assert_eq!(next[k], 30, "sender {k}'s EXIT overtook its messages");
                            exited += 1;
                        }
                        m => {
                            let (k, i) = m.downcast::<(u32, u32)>().ok().unwrap();
                            assert_eq!(i, next[k as usize], "sender {k} reordered");
                            next[k as usize] += 1;
                        }
                    }
                }
            });
            crate::common::assert_normal(&report);
            assert!(report
                .trace
                .lines()
                .iter()
                .any(|l| l.contains("delay from")));
        }
    }

    #[test]
    fn receive_timeout_gives_up_after_exactly_the_timeout() {
        check(|p| async move {
            let t0 = otpsim::rt::now();
            assert!(p.recv_timeout(Duration::from_millis(250)).await.is_none());
            // madsim adds tens of nanoseconds per poll; the timeout is exact to the µs
            assert_eq!((otpsim::rt::now() - t0).as_micros(), 250_000);
        });
    }

    /// `erlang:send_after/3` and `cancel_timer/1`: the message arrives after exactly the
    /// delay; a pending timer does not hold back the owner's later messages to the same
    /// process; a timer cancelled in time never fires, one that fired cannot be cancelled.
    #[test]
    fn send_after_fires_at_its_time_and_cancel_timer_stops_it() {
        check(|p| async move {
            let t0 = p.now();
            let me = p.pid();
            let late = p.send_after(Duration::from_millis(100), me, "timer");
            let cancelled = p.send_after(Duration::from_millis(50), me, "cancelled");
            p.send(me, "direct");
            let first = p.recv().await;
            assert_eq!(first.downcast_ref::<&str>(), Some(&"direct"));
            assert!(p.cancel_timer(cancelled));
            let second = p.recv().await;
            assert_eq!(second.downcast_ref::<&str>(), Some(&"timer"));
            assert_eq!((p.now() - t0).as_micros(), 100_000);
            assert!(!p.cancel_timer(late), "a fired timer cannot be cancelled");
            assert!(p.recv_timeout(Duration::from_millis(100)).await.is_none());
        });
    }

    #[test]
    fn injected_crashes_are_exit_reasons_and_trace_events() {
        let faults = SeededConfig {
            crash_probability: 1.0,
            ..Default::default()
        };
        let report = Sim::new(1).with_faults(faults).run(|p| async move {
            let child = p.spawn(|c| async move {
                c.recv().await;
            });
            p.send(child, ());
            p.sleep(Duration::from_millis(1)).await;
        });
        assert!(has_line(&report, "fault <0.2> crash at message 1"));
        assert!(has_line(&report, "exit <0.2> reason=injected_crash"));
    }
}

/// A broken internal invariant of the runtime (`internal_check!` in debug builds) is a bug of
/// otpsim: it is not the exit reason of the process it happened in, it fails the run.
#[test]
#[should_panic]
fn an_internal_error_fails_the_run_instead_of_ending_a_process() {
    otpsim::sim::Sim::new(0).run(|p| async move {
        let (_, mref) = p.spawn_monitor(|_| async {
            let planted = otpsim::process::InternalError("planted".into());
            if planted.0 == "planted" {
                std::panic::panic_any(planted);
            }
        });
        p.receive(|m| matches!(m, Msg::Down { mref: r, .. } if *r == mref))
            .await;
    });
}

/// A node of a cluster (index 2, restarted once) hands out pids and refs that carry both, and
/// what is keyed by pid (links, monitors, liveness) works on them (the cluster's
/// identity: docs/architecture.md, "Identity"; issue 18 item 1).
#[test]
fn a_nodes_pids_carry_its_index_and_creation() {
    use otpsim::process::{Node, NodeConfig};
    otpsim::rt::block_on(0, async {
        let node = Node::with_config(NodeConfig {
            index: 2,
            creation: 1,
            ..NodeConfig::default()
        });
        let root = node.spawn(|p| async move {
            let child = p.spawn_link(crate::common::wait_forever);
            assert_eq!((child.node(), child.creation(), child.serial()), (2, 1, 2));
            assert_eq!(child.to_string(), "<2.2.1>");
            assert!(p.node().is_alive(child));
            p.trap_exit(true);
            let mref = p.monitor(child);
            p.exit(child, ExitReason::Kill);
            p.receive(|m| matches!(m, Msg::Down { mref: r, .. } if *r == mref))
                .await;
            p.receive(|m| matches!(m, Msg::Exit { from, .. } if *from == child))
                .await;
            assert!(!p.node().is_alive(child));
        });
        assert_eq!(root.to_string(), "<2.1.1>");
        assert_eq!(node.wait_exit(root).await, Some(ExitReason::Normal));
    });
}
