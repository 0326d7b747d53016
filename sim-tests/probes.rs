//! Conformance with OTP behaviour that the oracle's scenario format cannot express, recorded
//! by small Erlang and Elixir programs in `sim-tests/conformance/probes/` (`run_probes.sh`
//! re-runs them on OTP 25.2.3 / Elixir 1.14.0). Each test runs the same story in otpsim and
//! compares its lines with the probe's recorded `.out`.

use crate::common::check;
use otpsim::supervisor::dynamic::{self, DynamicOptions};
use otpsim::supervisor::{self, ChildSpec, Flags, Restart, Shutdown, Start, Started, Strategy};
use otpsim::term::Term;
use otpsim::{ExitReason, Msg, Pid, Process};
use std::collections::BTreeMap;

/// The lines of a probe's output, by case (`case NAME` opens one).
fn probe_cases(file: &str) -> BTreeMap<String, Vec<String>> {
    let path = format!(
        "{}/sim-tests/conformance/probes/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut cases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        match line.strip_prefix("case ") {
            Some(name) => current = name.split(' ').next().unwrap_or(name).to_string(),
            None => cases.entry(current.clone()).or_default().push(line.into()),
        }
    }
    cases
}

/// A child of the queued-exit story: it exits with the reason it is sent (`live` never does
/// by itself and does not trap exits).
struct Die(ExitReason);
/// The supervisor may finish the start that keeps it busy.
struct Go;
/// The busy start has begun.
struct Entered;

async fn child(q: Process) -> ExitReason {
    loop {
        if let Ok(Die(reason)) = q.recv().await.downcast::<Die>() {
            return reason;
        }
    }
}

/// The start that keeps the supervisor busy until [`Go`] (erlang:suspend_process in the
/// probe): it tells the driver, waits in the supervisor's own mailbox, and returns `ignore`.
fn busy_start(driver: Pid) -> Start {
    Start::new(move |p| {
        Box::pin(async move {
            p.send(driver, Entered);
            p.receive(|m| m.is::<Go>()).await;
            Ok(Started::Ignore)
        })
    })
}

const CHILDREN: [(&str, Option<&str>); 6] = [
    ("normal", Some("normal")),
    ("shutdown", Some("shutdown")),
    ("shutdown_x", Some("{shutdown,x}")),
    ("boom", Some("boom")),
    ("boom2", Some("boom")),
    ("live", None),
];

fn reason(text: &str) -> ExitReason {
    match text {
        "{shutdown,x}" => ExitReason::ShutdownWith(Term::atom("x")),
        other => ExitReason::error(Term::atom(other.to_string())),
    }
}

/// Starts the supervisor of a queued-exit case (linked to `p`) and its six children; a start
/// with no arguments (simple_one_for_one) or the `gate` child (DynamicSupervisor) is the
/// busy start.
async fn start_case(
    p: &Process,
    sofo: bool,
    restart: Restart,
    shutdown: Shutdown,
) -> (Pid, Vec<Pid>) {
    let me = p.pid();
    let kids = CHILDREN.len();
    if sofo {
        let template = ChildSpec::worker(
            "w",
            Start::with_args(move |p, args| {
                let busy = args.is_empty();
                let pid = (!busy).then(|| p.spawn_link(child));
                Box::pin(async move {
                    if busy {
                        p.send(me, Entered);
                        p.receive(|m| m.is::<Go>()).await;
                        return Ok(Started::Ignore);
                    }
                    Ok(Started::Pid(pid.expect("a child")))
                })
            }),
        )
        .restart(restart)
        .shutdown(shutdown);
        let flags = Flags::new(Strategy::SimpleOneForOne);
        let spec = supervisor::SupervisorSpec::new(flags).child(template);
        let sup = supervisor::start_link(p, spec).await.unwrap();
        let mut pids = Vec::new();
        for _ in 0..kids {
            let started = sup.start_child_args(p, vec![Term::atom("kid")]).await;
            pids.push(started.unwrap().pid().unwrap());
        }
        return (sup.pid(), pids);
    }
    let sup = dynamic::start_link(p, DynamicOptions::default())
        .await
        .unwrap();
    let mut pids = Vec::new();
    for _ in 0..kids {
        let start = Start::new(|p| {
            let pid = p.spawn_link(child);
            Box::pin(async move { Ok(Started::Pid(pid)) })
        });
        let spec = ChildSpec::worker("w", start)
            .restart(restart)
            .shutdown(shutdown);
        pids.push(sup.start_child(p, spec).await.unwrap().pid().unwrap());
    }
    (sup.pid(), pids)
}

/// `sofo_queued_exit.erl`: a supervisor terminates while children that already died wait in
/// its mailbox as `EXIT`s, behind its parent's exit signal. A simple_one_for_one supervisor
/// (OTP) monitors and signals them anyway and judges the queued reason by its shutdown rule,
/// reporting each reason once with its number of children, in term order; a DynamicSupervisor
/// (Elixir) judges them at once, accepting only `normal` from a non-permanent child, and
/// reports each child, in pid order (docs/behaviours.md items 47, 52, 77, 78).
#[test]
fn g52_j77_a_terminating_supervisor_judges_the_exits_already_queued() {
    let expected = probe_cases("sofo_queued_exit.out");
    assert_eq!(expected.len(), 12, "the probe's cases");
    for (case, recorded) in expected {
        let (kind, rest) = case.split_once('_').expect("kind_restart_shutdown");
        let (restart, shutdown) = rest.split_once('_').expect("restart_shutdown");
        let restart = Restart::parse(&Term::atom(restart.to_string())).unwrap();
        let shutdown = match shutdown {
            "5000" => Shutdown::Timeout(5000),
            _ => Shutdown::BrutalKill,
        };
        let (name, sofo) = (case.clone(), kind == "sofo");
        let report = check(move |p| async move {
            p.trap_exit(true);
            let (sup, kids) = start_case(&p, sofo, restart, shutdown).await;
            p.node().label(sup, name.clone(), true);
            for (pid, (kid, _)) in kids.iter().zip(CHILDREN) {
                p.node().label(*pid, format!("{name}/{kid}"), false);
            }
            // Keep the supervisor busy, as the probe suspends it.
            let me = p.pid();
            p.spawn(move |q| async move {
                if sofo {
                    let sup = supervisor::SupervisorRef::from_pid(sup);
                    let _ = sup.start_child_args(&q, vec![]).await;
                } else {
                    let sup = dynamic::DynamicSupervisorRef::from_pid(sup);
                    let busy = ChildSpec::worker("busy", busy_start(me));
                    let _ = sup.start_child(&q, busy).await;
                }
            });
            p.receive(|m| m.is::<Entered>()).await;
            p.exit(sup, ExitReason::Shutdown);
            for (pid, (_, exit)) in kids.iter().zip(CHILDREN) {
                let Some(exit) = exit else { continue };
                let mref = p.monitor(*pid);
                p.send(*pid, Die(reason(exit)));
                p.receive(|m| matches!(m, Msg::Down { mref: r, .. } if *r == mref))
                    .await;
            }
            p.send(sup, Go);
            p.receive(|m| matches!(m, Msg::Exit { from, .. } if *from == sup))
                .await;
        });
        let ours: Vec<String> = report
            .trace
            .lines()
            .into_iter()
            .filter(|l| {
                l.starts_with("report ")
                    || l.starts_with(&format!("exit {case}/"))
                    || l.starts_with(&format!("sup_exit {case} "))
            })
            .collect();
        let theirs: Vec<String> = recorded
            .into_iter()
            .filter(|l| !l.starts_with("op ") && !l.starts_with("start "))
            .collect();
        assert_eq!(ours, theirs, "case {case}");
    }
}

/// The lines of a probe's output that has no cases.
fn probe_lines(file: &str) -> Vec<String> {
    probe_cases(file).remove("").unwrap_or_default()
}

/// `get_childspec_probe.erl`: a simple_one_for_one supervisor answers `get_childspec` with
/// its template for a child's pid, for any dead pid (a former child or not) and for the
/// template's id; a live stranger's pid or another id is `not_found`. A static supervisor
/// knows its children by id only (docs/behaviours.md items 59, 61).
#[test]
fn h59_h61_get_childspec_of_a_simple_one_for_one_supervisor() {
    use otpsim::supervisor::SupervisorSpec;
    let report = check(|p| async move {
        let show = |what: &str, result: Result<ChildSpec, supervisor::ChildError>| {
            let answer = match result {
                Ok(spec) => format!("{{ok,#{{id={},restart={}}}}}", spec.id, spec.restart),
                Err(e) => format!("{{error,{}}}", e.to_term()),
            };
            p.note(format!("result get_childspec {what} -> {answer}"));
        };
        let start = || {
            Start::new(|p| {
                let pid = p.spawn_link(crate::common::wait_forever);
                Box::pin(async move { Ok(Started::Pid(pid)) })
            })
        };
        let template = ChildSpec::worker("tmpl", start()).restart(Restart::Transient);
        let simple = SupervisorSpec::new(Flags::new(Strategy::SimpleOneForOne)).child(template);
        let sup = supervisor::start_link(&p, simple).await.unwrap();
        let child = sup
            .start_child_args(&p, vec![])
            .await
            .unwrap()
            .pid()
            .unwrap();
        let gone = sup
            .start_child_args(&p, vec![])
            .await
            .unwrap()
            .pid()
            .unwrap();
        sup.terminate_child(&p, gone).await.unwrap();
        let never = p.spawn(|_| async {});
        crate::common::kill(&p, never).await;
        let stranger = p.spawn(crate::common::wait_forever);
        show("simple child_pid", sup.get_childspec(&p, child).await);
        show(
            "simple terminated_child_pid",
            sup.get_childspec(&p, gone).await,
        );
        show(
            "simple dead_stranger_pid",
            sup.get_childspec(&p, never).await,
        );
        show(
            "simple live_stranger_pid",
            sup.get_childspec(&p, stranger).await,
        );
        show("simple template_id", sup.get_childspec(&p, "tmpl").await);
        show("simple other_id", sup.get_childspec(&p, "other").await);
        let static_sup = supervisor::start_link(
            &p,
            SupervisorSpec::default().child(ChildSpec::worker("a", start())),
        )
        .await
        .unwrap();
        let children = static_sup.which_children(&p).await.unwrap();
        let supervisor::ChildState::Running(a) = children[0].state else {
            panic!("a runs")
        };
        show("static child_pid", static_sup.get_childspec(&p, a).await);
        show("static id", static_sup.get_childspec(&p, "a").await);
    });
    let ours: Vec<String> = report
        .trace
        .lines()
        .into_iter()
        .filter_map(|l| l.split_once(" result ").map(|(_, r)| format!("result {r}")))
        .collect();
    assert_eq!(ours, probe_lines("get_childspec_probe.out"));
}
