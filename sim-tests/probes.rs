//! Conformance with OTP behaviour that the oracle's scenario format cannot express, recorded
//! by small Erlang and Elixir programs in `sim-tests/conformance/probes/` (`run_probes.sh`
//! re-runs them on OTP 25.2.3 / Elixir 1.14.0). Each test runs the same story in otpsim and
//! compares its lines with the probe's recorded `.out`.
//!
//! One test per recorded probe, each with the story it replays (hence the file's length).

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
            otpsim::sim::label(p.node(), sup, name.clone(), true);
            for (pid, (kid, _)) in kids.iter().zip(CHILDREN) {
                otpsim::sim::label(p.node(), *pid, format!("{name}/{kid}"), false);
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
        let child = crate::common::start_simple(&p, sup).await;
        let gone = crate::common::start_simple(&p, sup).await;
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

/// A server of the stop story: notes its `terminate` (which takes `stop_ms`, or panics) and
/// the end of a busy cast, as the probe's server logs them.
struct StopSrv {
    name: String,
    stop_ms: u64,
    panics: bool,
}

impl otpsim::server::GenServer for StopSrv {
    type Arg = (String, u64, bool);
    type Call = ();
    type Reply = ();
    type Cast = u64;
    type Cont = ();

    async fn init((name, stop_ms, panics): Self::Arg, p: &Process) -> otpsim::server::Init<Self> {
        p.trap_exit(true);
        otpsim::sim::label(p.node(), p.pid(), name.clone(), false);
        otpsim::server::Init::Ok(StopSrv {
            name,
            stop_ms,
            panics,
        })
    }

    async fn handle_cast(&mut self, ms: u64, p: &Process) -> otpsim::server::Next<Self> {
        p.sleep(otpsim::rt::Duration::from_millis(ms)).await;
        p.note(format!("busy_done {}", self.name));
        otpsim::server::Next::Continue
    }

    async fn terminate(&mut self, reason: &ExitReason, p: &Process) {
        p.note(format!("terminate {} reason={reason}", self.name));
        assert!(!self.panics, "crash_in_terminate");
        if self.stop_ms > 0 {
            p.sleep(otpsim::rt::Duration::from_millis(self.stop_ms))
                .await;
            p.note(format!("terminate_done {}", self.name));
        }
    }
}

/// The probe's form of a stop's result.
fn stop_result(name: &str, result: Result<(), otpsim::server::StopError>) -> String {
    match result {
        Ok(()) => format!("result stop {name} -> ok"),
        Err(e) => {
            let names = |_| Some(name.to_string());
            format!(
                "result stop {name} -> {{exit,{}}}",
                e.to_term().canonical(&names)
            )
        }
    }
}

/// What a stop case does, from its caller (a process labelled `caller`).
#[derive(Clone, Copy)]
enum StopCase {
    /// Stop a server with this reason and timeout (ms), the caller linked to it or not and
    /// trapping exits or not; the server's terminate takes `stop_ms`, a cast keeps it busy
    /// for `busy_ms` first.
    Server {
        reason: &'static str,
        timeout: Option<u64>,
        linked: bool,
        trapping: bool,
        stop_ms: u64,
        busy_ms: u64,
    },
    /// Stop a server that was killed before.
    Dead,
    /// A supervisor (static or dynamic) with children a, b, c, stopped with this reason.
    Supervisor { dynamic: bool, reason: &'static str },
    /// The caller stops itself.
    Itself,
    /// A process that is not a server, with a timeout of 100 ms.
    NotAServer,
}

/// Runs one stop case and returns its lines in the probe's form.
fn run_stop_case(name: &'static str, case: StopCase) -> Vec<String> {
    use otpsim::server::{self, ServerRef, StartOptions};
    let srv = || format!("srv_{}", name.split('_').next().unwrap_or(name));
    let report = check(move |p| async move {
        let me = p.pid();
        let caller = p.spawn(move |q| async move {
            otpsim::sim::label(q.node(), q.pid(), "caller", false);
            let note_alive = |q: &Process, name: &str, pid: Pid| {
                q.note(format!("alive {name} -> {}", q.node().is_alive(pid)));
            };
            match case {
                StopCase::Server {
                    reason,
                    timeout,
                    linked,
                    trapping,
                    stop_ms,
                    busy_ms,
                } => {
                    q.trap_exit(trapping);
                    let arg = (srv(), stop_ms, false);
                    let options = StartOptions {
                        link: linked,
                        ..StartOptions::default()
                    };
                    let s = server::start_with::<StopSrv>(&q, arg, options)
                        .await
                        .unwrap();
                    if busy_ms > 0 {
                        s.cast(&q, busy_ms);
                    }
                    let reason = self::reason(reason);
                    let timeout = timeout.map(otpsim::rt::Duration::from_millis);
                    let result = s.stop_with(&q, reason, timeout).await;
                    q.note(stop_result(&srv(), result));
                    if linked {
                        q.note("caller still running");
                    } else {
                        note_alive(&q, &srv(), s.pid());
                    }
                    if q.node().is_alive(s.pid()) {
                        let mref = q.monitor(s.pid());
                        q.receive(|m| matches!(m, Msg::Down { mref: r, .. } if *r == mref))
                            .await;
                    }
                    if trapping || timeout.is_some() {
                        let queued = q.mailbox_len();
                        let exit = q.try_receive(|m| matches!(m, Msg::Exit { .. })).await;
                        let shown = match exit {
                            Some(Msg::Exit { reason, .. }) => {
                                format!("[{{'EXIT',<{}>,{reason}}}]", srv())
                            }
                            _ => "[]".to_string(),
                        };
                        assert!(queued <= 1, "{queued} messages left");
                        q.note(format!("mailbox caller -> {shown}"));
                    }
                }
                StopCase::Dead => {
                    let s = server::start_with::<StopSrv>(
                        &q,
                        (srv(), 0, false),
                        StartOptions::default(),
                    )
                    .await
                    .unwrap();
                    crate::common::kill(&q, s.pid()).await;
                    q.note(stop_result(&srv(), s.stop(&q).await));
                }
                StopCase::Supervisor { dynamic, reason } => {
                    let sup_name = format!(
                        "{}sup_{}",
                        if dynamic { "d" } else { "" },
                        name.split('_').next().unwrap_or(name)
                    );
                    let kids = ["a", "b", "c"];
                    let kid = |id: &'static str, sup: &str| {
                        let path = format!("{sup}/{id}");
                        ChildSpec::worker(
                            id,
                            Start::new(move |p| {
                                let path = path.clone();
                                Box::pin(async move {
                                    let arg = (path, 0, false);
                                    let s = server::start_link::<StopSrv>(p, arg).await;
                                    supervisor::start_result(s.map(|s| s.pid()))
                                })
                            }),
                        )
                    };
                    let pid = if dynamic {
                        let sup = dynamic::start_link(&q, DynamicOptions::default())
                            .await
                            .unwrap();
                        q.unlink(sup.pid()); // as the probe does
                        otpsim::sim::label(q.node(), sup.pid(), sup_name.clone(), true);
                        for id in kids {
                            sup.start_child(&q, kid(id, &sup_name)).await.unwrap();
                        }
                        let result = server::stop(&q, sup.pid(), self::reason(reason), None).await;
                        q.note(stop_result(&sup_name, result));
                        sup.pid()
                    } else {
                        let spec = kids
                            .iter()
                            .fold(supervisor::SupervisorSpec::default(), |s, id| {
                                s.child(kid(id, &sup_name))
                            });
                        let sup = supervisor::start_link(&q, spec).await.unwrap();
                        q.unlink(sup.pid()); // as the probe does
                        otpsim::sim::label(q.node(), sup.pid(), sup_name.clone(), true);
                        let result = server::stop(&q, sup.pid(), self::reason(reason), None).await;
                        q.note(stop_result(&sup_name, result));
                        sup.pid()
                    };
                    note_alive(&q, &sup_name, pid);
                }
                StopCase::Itself => {
                    let result = ServerRef::<StopSrv>::from_pid(q.pid()).stop(&q).await;
                    q.note(stop_result("caller", result));
                }
                StopCase::NotAServer => {
                    let plain = q.spawn(crate::common::wait_forever);
                    otpsim::sim::label(q.node(), plain, "plain_i1", false);
                    let timeout = Some(otpsim::rt::Duration::from_millis(100));
                    let result = ServerRef::<StopSrv>::from_pid(plain)
                        .stop_with(&q, ExitReason::Normal, timeout)
                        .await;
                    q.note(stop_result("plain_i1", result));
                    note_alive(&q, "plain_i1", plain);
                    crate::common::kill(&q, plain).await;
                    q.note(format!(
                        "mailbox caller -> {}",
                        if q.mailbox_len() == 0 { "[]" } else { "?" }
                    ));
                }
            }
        });
        let _ = p.node().wait_exit(caller).await;
        let _ = me;
    });
    report
        .trace
        .lines()
        .into_iter()
        .filter_map(|l| {
            let kept = ["exit ", "sup_exit "];
            if kept.iter().any(|k| l.starts_with(k)) {
                // Named processes only (the test's root is not part of the story).
                return (!l.contains(" <0.")).then_some(l);
            }
            l.split_once("> ")
                .filter(|(head, _)| head.starts_with("note <"))
                .map(|(_, text)| text.to_string())
                .or_else(|| l.strip_prefix("note caller ").map(String::from))
                .or_else(|| {
                    l.split_once(' ')
                        .filter(|(head, _)| *head == "note")
                        .and_then(|(_, rest)| rest.split_once(' ').map(|(_, t)| t.to_string()))
                })
        })
        .collect()
}

/// `stop_probe.erl`: `gen_server:stop/1,3` and stopping supervisors, on OTP 25 (the cases
/// that go through Erlang's API; Elixir's wraps the same errors, and the logger's lines and
/// a crashing `terminate`'s stack trace have no counterpart here). `Ok` exactly when the
/// server died with the reason asked for; a timeout never kills it; a linked caller that
/// does not trap exits dies of any reason but `normal`; a supervisor stops its children in
/// reverse start order (a DynamicSupervisor all at once) with `shutdown` whatever the reason.
#[test]
fn proc_lib_stop_as_otp_does_it() {
    let cases: [(&str, StopCase); 14] = [
        (
            "a_default_normal",
            StopCase::Server {
                reason: "normal",
                timeout: None,
                linked: false,
                trapping: false,
                stop_ms: 0,
                busy_ms: 0,
            },
        ),
        (
            "b1_shutdown_tuple",
            StopCase::Server {
                reason: "{shutdown,x}",
                timeout: None,
                linked: false,
                trapping: false,
                stop_ms: 0,
                busy_ms: 0,
            },
        ),
        (
            "b2_boom",
            StopCase::Server {
                reason: "boom",
                timeout: None,
                linked: false,
                trapping: false,
                stop_ms: 0,
                busy_ms: 0,
            },
        ),
        (
            "b3_linked_normal",
            StopCase::Server {
                reason: "normal",
                timeout: None,
                linked: true,
                trapping: false,
                stop_ms: 0,
                busy_ms: 0,
            },
        ),
        (
            "b4_linked_shutdown_tuple",
            StopCase::Server {
                reason: "{shutdown,x}",
                timeout: None,
                linked: true,
                trapping: false,
                stop_ms: 0,
                busy_ms: 0,
            },
        ),
        (
            "b5_linked_boom",
            StopCase::Server {
                reason: "boom",
                timeout: None,
                linked: true,
                trapping: false,
                stop_ms: 0,
                busy_ms: 0,
            },
        ),
        (
            "b6_linked_trapping_boom",
            StopCase::Server {
                reason: "boom",
                timeout: None,
                linked: true,
                trapping: true,
                stop_ms: 0,
                busy_ms: 0,
            },
        ),
        ("c1_dead_pid", StopCase::Dead),
        (
            "d1_timeout_slow_terminate",
            StopCase::Server {
                reason: "normal",
                timeout: Some(100),
                linked: false,
                trapping: false,
                stop_ms: 300,
                busy_ms: 0,
            },
        ),
        (
            "d3_timeout_busy_server",
            StopCase::Server {
                reason: "normal",
                timeout: Some(100),
                linked: false,
                trapping: false,
                stop_ms: 0,
                busy_ms: 300,
            },
        ),
        (
            "e1_supervisor_stop",
            StopCase::Supervisor {
                dynamic: false,
                reason: "normal",
            },
        ),
        (
            "e2_supervisor_stop_boom_elixir",
            StopCase::Supervisor {
                dynamic: false,
                reason: "boom",
            },
        ),
        ("h1_stop_self", StopCase::Itself),
        ("i1_not_a_gen_process", StopCase::NotAServer),
    ];
    let recorded = probe_cases("stop_probe.out");
    for (name, case) in cases {
        let ours = run_stop_case(name, case);
        let theirs: Vec<String> = recorded[name]
            .iter()
            .filter(|l| {
                !l.starts_with("start ")
                    && !l.starts_with("call ")
                    && !l.starts_with("op ")
                    && !l.starts_with("report ")
            })
            .cloned()
            .collect();
        assert_eq!(ours, theirs, "case {name}");
    }
    // A DynamicSupervisor stops its children all at once: the same lines, in no set order.
    let mut ours = run_stop_case(
        "e3_dynamic_supervisor_stop",
        StopCase::Supervisor {
            dynamic: true,
            reason: "normal",
        },
    );
    let mut theirs: Vec<String> = recorded["e3_dynamic_supervisor_stop"]
        .iter()
        .filter(|l| !l.starts_with("start ") && !l.starts_with("call "))
        .cloned()
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "case e3");
}

/// `stop_probe.erl` f1: a `terminate` that crashes makes the crash the exit reason, and the
/// stop reports it (a panic here, an Erlang error there).
#[test]
fn proc_lib_stop_reports_a_terminate_that_crashed() {
    use otpsim::server::{self, StartOptions, StopError};
    check(|p| async move {
        let arg = ("srv_f1".to_string(), 0, true);
        let s = server::start_with::<StopSrv>(&p, arg, StartOptions::default())
            .await
            .unwrap();
        let crash = ExitReason::Panic("crash_in_terminate".into());
        assert_eq!(s.stop(&p).await, Err(StopError::Exit(crash)));
    });
}

/// A GenServer that runs `async_nolink` tasks and takes their results in `handle_info`,
/// noting each message as the probe prints it.
struct Owner {
    tasks: otpsim::supervisor::task::TaskSupervisorRef,
    running: BTreeMap<otpsim::process::MonitorRef, &'static str>,
}

/// What a task of the owner does: return a value, panic, or exit `normal` without a result.
#[derive(Clone, Copy)]
enum Job {
    Returns(&'static str),
    Panics,
    ExitsNormal,
}

impl otpsim::server::GenServer for Owner {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = (&'static str, Job);
    type Cont = ();

    async fn init(_: (), p: &Process) -> otpsim::server::Init<Self> {
        use otpsim::supervisor::task::{self, TaskOptions};
        let tasks = task::start_link(p, TaskOptions::default()).await.unwrap();
        otpsim::server::Init::Ok(Owner {
            tasks,
            running: BTreeMap::new(),
        })
    }

    async fn handle_cast(
        &mut self,
        (case, job): (&'static str, Job),
        p: &Process,
    ) -> otpsim::server::Next<Self> {
        let task = self
            .tasks
            .async_nolink(p, move |t| async move {
                match job {
                    Job::Returns(value) => value,
                    Job::Panics => panic!("boom"),
                    Job::ExitsNormal => {
                        t.exit(t.pid(), ExitReason::Normal);
                        std::future::pending().await
                    }
                }
            })
            .await
            .unwrap();
        self.running.insert(task.mref(), case);
        otpsim::server::Next::Continue
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> otpsim::server::Next<Self> {
        use otpsim::supervisor::task::TaskReply;
        let line = match TaskReply::<&'static str>::from_msg(msg) {
            Ok(reply) => format!("msg {{<task_ref>,{}}}", reply.value),
            Err(Msg::Down { mref, reason, .. }) if self.running.contains_key(&mref) => {
                let reason = match reason {
                    ExitReason::Panic(_) => "<crash>".to_string(),
                    other => other.to_string(),
                };
                format!("msg {{DOWN,<task_ref>,process,<task_pid>,{reason}}}")
            }
            Err(other) => format!("msg {other:?}"),
        };
        p.note(line);
        otpsim::server::Next::Continue
    }
}

/// `task_replies.exs` a-c: a GenServer that starts `async_nolink` tasks gets, in
/// `handle_info`, the result as a message tagged with the task's monitor (`{ref, result}`)
/// and then the task's `DOWN` with reason `normal`; a task that crashes, or exits `normal`
/// without a result, sends only its `DOWN` (docs/behaviours.md item 81).
#[test]
fn k81_task_replies_reach_a_genserver_as_messages() {
    let recorded = probe_cases("task_replies.out");
    let cases = [
        ("a_returns_value", Job::Returns("result_a")),
        ("b_raises", Job::Panics),
        ("c_exit_normal", Job::ExitsNormal),
    ];
    for (case, job) in cases {
        let report = check(move |p| async move {
            let owner = otpsim::server::start_link::<Owner>(&p, ()).await.unwrap();
            owner.cast(&p, (case, job));
            p.sleep(otpsim::rt::Duration::from_millis(10)).await;
        });
        let ours: Vec<String> = report
            .trace
            .lines()
            .into_iter()
            .filter_map(|l| l.split_once(" msg ").map(|(_, m)| format!("msg {m}")))
            .collect();
        // Elixir writes atoms with a colon and the crash as an exception with its stack.
        let theirs: Vec<String> = recorded
            .iter()
            .find(|(name, _)| name.as_str() == case)
            .map(|(_, lines)| lines.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.starts_with("msg "))
            .map(|l| {
                let l = l.replace(":DOWN", "DOWN").replace(":process", "process");
                let l = l
                    .replace(":normal", "normal")
                    .replace(":result_a", "result_a");
                match l.find("{%RuntimeError") {
                    Some(at) => format!("{}<crash>}}", &l[..at]),
                    None => l,
                }
            })
            .collect();
        assert_eq!(ours, theirs, "case {case}");
    }
}
