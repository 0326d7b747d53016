//! Conformance with real OTP: runs a scenario of the oracle's format
//! (`docs/oracle.md`) in simulated time and produces the canonical trace the
//! oracle prints, so that `diff <(otpsim conform s.json) s.trace` checks our supervisor
//! against Erlang/OTP's.
//!
//! The pieces mirror the oracle's: a *driver* process (the root supervisor's parent) runs the
//! timed script; scenario *workers* log their own start and the stop signal they get from
//! their supervisor; the node's trace supplies the `exit`/`sup_exit` lines (the oracle's
//! tracer monitors) and the supervisors' `report` lines (the oracle's logger handler).
//! `report` lines are modelled: the supervisor records each OTP error report
//! (`child_terminated`, `start_error`, `shutdown`, `shutdown_error`) where OTP logs it.
//!
//! ```
//! use otpsim::sim::conform::{self, Scenario};
//! let scenario = Scenario::parse(r#"{
//!   "tree": {"id": "root", "type": "supervisor", "children": [{"id": "a"}]},
//!   "script": [{"at": 100, "op": "crash", "path": "root/a"}]
//! }"#).unwrap();
//! let lines = conform::run(&scenario);
//! assert_eq!(lines[..4], ["call start_root", "start root", "start root/a", "result start_root -> {ok,<root>}"]);
//! assert!(lines.contains(&"restart root/a".to_string()));
//! ```
//!
//! The driver of a scenario: the oracle's book (its tracer's state), the workers and every
//! operation share the book, so they stay in one file (hence its length).

pub mod cluster;
mod scenario;
pub mod terms;

pub use cluster::ClusterScenario;

pub use scenario::{
    Action, ChildFunction, Op, PeerSpec, Scenario, ScenarioError, StartAction, StopDelay, Target,
    Template, TreeNode, WorkerSpec,
};

use crate::process::{ExitReason, Msg, Process};
use crate::registry::{Registry, RegistryOptions};
use crate::rt::Duration;
use crate::server::{StartError, StartOptions};
use crate::sim::Sim;
use crate::supervisor::dynamic::{self, DynamicInit, DynamicSupervisorRef};
use crate::supervisor::{
    self, AutoShutdown, ChildError, ChildInfo, ChildRef, ChildSpec, Counts, InitError, SpecError,
    Start, StartResult, Started, SupervisorInit, SupervisorRef, SupervisorSpec,
};
use crate::term::{Pid, Ref, Term};
use crate::trace::EventKind;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

/// A scenario of either format: one node, or several (with `"nodes"`).
///
/// ```
/// use otpsim::sim::conform::AnyScenario;
/// let scenario = AnyScenario::parse(r#"{
///   "nodes": [
///     {"name": "a", "tree": {"id": "root", "type": "supervisor", "children": [{"id": "m"}]}},
///     {"name": "b", "tree": {"id": "root", "type": "supervisor", "children": [{"id": "w"}]}}
///   ],
///   "script": [{"at": 100, "op": "link_remote", "path": "a:root/m", "target": "b:root/w"},
///              {"at": 200, "op": "halt", "node": "b"}]
/// }"#).unwrap();
/// # #[cfg(madsim)] {
/// let lines = scenario.run();
/// assert!(lines.contains(&"trapped a:root/m from=b:root/w reason=noconnection".to_string()));
/// # }
/// ```
#[derive(Clone, Debug)]
pub enum AnyScenario {
    /// One node.
    Node(Scenario),
    /// Several nodes.
    Cluster(ClusterScenario),
}

impl AnyScenario {
    /// Parses a scenario file's text, of either format.
    pub fn parse(text: &str) -> Result<AnyScenario, ScenarioError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ScenarioError::Json(e.to_string()))?;
        if value.get("nodes").is_some() {
            ClusterScenario::parse(&value).map(AnyScenario::Cluster)
        } else {
            Scenario::parse(text).map(AnyScenario::Node)
        }
    }

    /// What it shows.
    pub fn description(&self) -> &str {
        match self {
            AnyScenario::Node(s) => &s.description,
            AnyScenario::Cluster(s) => &s.description,
        }
    }

    /// Runs it (seed 0) and returns its canonical trace.
    pub fn run(&self) -> Vec<String> {
        self.run_seeded(0)
    }

    /// Runs it with another scheduling seed.
    pub fn run_seeded(&self, seed: u64) -> Vec<String> {
        match self {
            AnyScenario::Node(s) => run_seeded(s, seed),
            AnyScenario::Cluster(s) => cluster::run_seeded(s, seed),
        }
    }

    /// Compares our trace with the oracle's; the first difference, if any.
    pub fn compare(&self, expected: &[String], actual: &[String]) -> Option<String> {
        match self {
            AnyScenario::Node(s) => compare(s, expected, actual),
            AnyScenario::Cluster(s) => cluster::compare(s, expected, actual),
        }
    }
}

/// Runs a scenario in a fresh simulation (seed 0, no faults) and returns its canonical trace.
pub fn run(scenario: &Scenario) -> Vec<String> {
    run_seeded(scenario, 0)
}

/// [`run`] with another seed for madsim's scheduling. The trace must not depend on it: OTP's
/// order is causal, and so is ours.
pub fn run_seeded(scenario: &Scenario, seed: u64) -> Vec<String> {
    run_sim(scenario, &Sim::new(seed)).0
}

/// Runs a scenario with the given simulation settings (seed, faults); returns its canonical
/// trace and the run's report, whose full trace the harness's invariants read.
pub fn run_sim(scenario: &Scenario, sim: &Sim) -> (Vec<String>, super::RunReport) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let (sc, sink) = (Arc::new(scenario.clone()), out.clone());
    let report = sim.run(move |p| async move {
        let lines = driver(&p, sc).await;
        *sink.lock().unwrap_or_else(PoisonError::into_inner) = lines;
    });
    let mut lines = std::mem::take(&mut *out.lock().unwrap_or_else(PoisonError::into_inner));
    if let Some(failure) = report.failure() {
        lines.push(format!("otpsim_error {failure}"));
    }
    (lines, report)
}

/// Compares our trace with the oracle's, line by line, except that a maximal run of
/// `terminate`/`exit` lines of children of a supervisor that stops its children in parallel
/// is compared as a multiset. Returns a description of the first difference.
pub fn compare(scenario: &Scenario, expected: &[String], actual: &[String]) -> Option<String> {
    let (e, a) = (normalise(scenario, expected), normalise(scenario, actual));
    let index = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .or_else(|| (e.len() != a.len()).then_some(e.len().min(a.len())))?;
    let show = |l: &[String]| {
        l.get(index)
            .map_or("(end of trace)".to_string(), |s| s.clone())
    };
    Some(format!(
        "line {}: expected `{}`, got `{}`",
        index + 1,
        show(&e),
        show(&a)
    ))
}

/// Puts the lines Erlang does not order into one order: each run of parallel-shutdown lines
/// is sorted, and a child that failed in its `init` is written dead before its supervisor's
/// `start_error` report about it (OTP 25 acknowledges the failure before the process exits,
/// docs/behaviours.md item 14, so the oracle writes the two either way).
fn normalise(scenario: &Scenario, lines: &[String]) -> Vec<String> {
    let mut out = sort_parallel_shutdowns(scenario, lines);
    for i in 1..out.len() {
        if failed_start_of(&out[i - 1]).is_some_and(|path| death_of(&out[i]) == Some(path)) {
            out.swap(i - 1, i);
        }
    }
    out
}

/// The offender of a `start_error` report line.
fn failed_start_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("report ")?;
    let (_, rest) = rest.split_once(" context=start_error offender=")?;
    rest.split(' ').next()
}

/// The path of an `exit` or `sup_exit` line.
fn death_of(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("exit ")
        .or_else(|| line.strip_prefix("sup_exit "))?;
    rest.split(' ').next()
}

/// Sorts each run of parallel-shutdown lines so that their order does not matter.
fn sort_parallel_shutdowns(scenario: &Scenario, lines: &[String]) -> Vec<String> {
    sort_parallel_by(lines, |path| scenario.parallel_shutdown(path))
}

/// Sorts each run of `terminate`/`exit` lines of children of a supervisor for which
/// `parallel(path)` holds.
fn sort_parallel_by(lines: &[String], parallel_sup: impl Fn(&str) -> bool) -> Vec<String> {
    let parallel = |line: &str| {
        let rest = line
            .strip_prefix("terminate ")
            .or_else(|| line.strip_prefix("exit "))?;
        let path = rest.split(' ').next()?;
        let parent = path.rsplit_once('/')?.0;
        parallel_sup(parent).then(|| parent.to_string())
    };
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        match parallel(&lines[i]) {
            Some(parent) => {
                let start = i;
                while i < lines.len() && parallel(&lines[i]).as_deref() == Some(parent.as_str()) {
                    i += 1;
                }
                let mut run = lines[start..i].to_vec();
                run.sort();
                out.extend(run);
            }
            None => {
                out.push(lines[i].clone());
                i += 1;
            }
        }
    }
    out
}

// ---- the book: what the oracle's tracer process keeps ------------------------------------------

/// Per-path counters and the latest pid of each path (the oracle tracer's state).
#[derive(Default)]
struct BookState {
    starts: BTreeMap<String, u32>,
    attempts: BTreeMap<String, usize>,
    seqs: BTreeMap<String, Vec<StartAction>>,
    current: BTreeMap<String, Pid>,
    /// simple_one_for_one children: the worker behaviour of each path.
    dynamic: BTreeMap<String, WorkerSpec>,
    /// The registries by name (the latest incarnation).
    registries: BTreeMap<String, Registry<Term, Term>>,
    /// Every pid ever started at each path, in order (a multi-node target's `#n`).
    history: BTreeMap<String, Vec<Pid>>,
    /// The path of every pid ever started.
    paths: BTreeMap<Pid, String>,
    /// Every path ever started.
    known: BTreeSet<String>,
    /// A multi-node scenario's node names, by index - 1 (empty for one node).
    nodes: Vec<String>,
    /// A multi-node scenario's process groups scopes by node name (the latest incarnation).
    groups: BTreeMap<String, crate::cluster::Groups>,
}

#[derive(Clone, Default)]
struct Book(Arc<Mutex<BookState>>);

impl Book {
    /// The book of a multi-node scenario with these nodes.
    fn for_nodes(nodes: Vec<String>) -> Book {
        let book = Book::default();
        book.with(|b| b.nodes = nodes);
        book
    }

    /// Whether the scenario has several nodes (its workers log what they receive).
    fn multi_node(&self) -> bool {
        self.with(|b| !b.nodes.is_empty())
    }

    fn with<R>(&self, f: impl FnOnce(&mut BookState) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A process at `path` has started: name it and log `start`/`restart`.
    fn started(&self, p: &Process, path: &str, supervisor: bool) {
        self.started_as(p, p.pid(), path, supervisor);
    }

    /// Like `started`, for a process `p` started (a registry, logged by its parent).
    fn started_as(&self, p: &Process, pid: Pid, path: &str, supervisor: bool) {
        p.node().label(pid, path, supervisor);
        let n = self.with(|b| {
            b.current.insert(path.into(), pid);
            b.history.entry(path.into()).or_default().push(pid);
            b.paths.insert(pid, path.into());
            b.known.insert(path.into());
            let n = b.starts.entry(path.into()).or_default();
            *n += 1;
            *n
        });
        let verb = if n == 1 { "start" } else { "restart" };
        line(p, format!("{verb} {path}"));
    }

    /// The start behaviour of this attempt at `path`.
    fn start_action(&self, path: &str, default: &[StartAction]) -> StartAction {
        self.with(|b| {
            let attempt = b.attempts.entry(path.into()).or_default();
            *attempt += 1;
            let seq = b.seqs.get(path).map_or(default, Vec::as_slice);
            seq[(*attempt).min(seq.len()) - 1].clone()
        })
    }

    fn registry(&self, name: &str) -> Option<Registry<Term, Term>> {
        self.with(|b| b.registries.get(name).cloned())
    }

    fn current(&self, path: &str) -> Option<Pid> {
        self.with(|b| b.current.get(path).copied())
    }
}

fn line(p: &Process, text: impl Into<String>) {
    p.node().record(EventKind::Line(text.into()));
}

fn line_term(p: &Process, prefix: impl Into<String>, term: Term) {
    p.node().record(EventKind::LineTerm(prefix.into(), term));
}

// ---- workers and supervisors -------------------------------------------------------------------

/// The message that makes a worker exit by itself.
struct Crash(Term);

/// A worker's start acknowledgement (`proc_lib:init_ack`).
struct Ack(Ref);

/// Work the driver asks a worker to do in its own process (the oracle's `{do, From, Ref,
/// Fun}`), answered with [`Done`].
struct Do(Box<dyn FnOnce(&Process) -> Term + Send>, Pid, Ref);

/// The answer to a [`Do`].
struct Done(Ref, Term);

/// `Registry.register/3` from the calling process, as the term Elixir returns.
fn register_term(p: &Process, reg: Option<Registry<Term, Term>>, key: &Term, value: &Term) -> Term {
    match reg {
        Some(reg) => match reg.register(p, key.clone(), value.clone()) {
            Ok(owner) => Term::tuple([Term::atom("ok"), Term::Pid(owner)]),
            Err(e) => error(e.to_term()),
        },
        None => error(Term::atom("unknown_registry")),
    }
}

/// The start function of a worker at `path` (the oracle's `oracle_worker:start_link/2`).
async fn start_worker(p: &Process, book: Book, path: String, worker: WorkerSpec) -> StartResult {
    match book.start_action(&path, &worker.start_seq) {
        StartAction::Ok => {
            let (parent, tag) = (p.pid(), p.make_ref());
            let pid = p.spawn_link(move |w| run_worker(w, parent, tag, book, path, worker));
            p.receive(|m| m.downcast_ref::<Ack>().is_some_and(|a| a.0 == tag))
                .await;
            Ok(Started::Pid(pid))
        }
        StartAction::Ignore => {
            line(p, format!("start_ignore {path}"));
            Ok(Started::Ignore)
        }
        StartAction::Error(reason) => {
            line_term(p, format!("start_error {path} reason="), reason.clone());
            Err(reason)
        }
    }
}

/// The body of a worker (the oracle's `oracle_worker:init/3` and `loop/3`).
async fn run_worker(
    p: Process,
    parent: Pid,
    tag: Ref,
    book: Book,
    path: String,
    w: WorkerSpec,
) -> ExitReason {
    p.trap_exit(w.trap_exit);
    if let Some(name) = &w.peer.register_as {
        let _ = p.register(name);
    }
    book.started(&p, &path, false);
    for r in &w.register {
        let term = register_term(&p, book.registry(&r.registry), &r.key, &r.value);
        let prefix = format!("result register {path} {} {} -> ", r.registry, r.key);
        line_term(&p, prefix, term);
    }
    p.send(parent, Ack(tag));
    let multi_node = book.multi_node();
    let mut watching = cluster::Watching::default();
    if multi_node {
        cluster::after_start(&p, &book, &w.peer, &mut watching);
    }
    let crash_at = w.crash_after.map(|ms| p.node().elapsed_us() + ms * 1000);
    loop {
        let left =
            crash_at.map(|at| Duration::from_micros(at.saturating_sub(p.node().elapsed_us())));
        let Some(msg) = p.receive_timeout_opt(|_| true, left).await else {
            return ExitReason::from_term(w.crash_reason.clone());
        };
        match msg {
            Msg::Exit { from, reason } if from == parent => {
                line_term(&p, format!("terminate {path} reason="), reason.to_term());
                match w.stop_delay {
                    StopDelay::Infinity => std::future::pending::<()>().await,
                    StopDelay::Ms(0) => {}
                    StopDelay::Ms(ms) => p.sleep(Duration::from_millis(ms)).await,
                }
                return w.stop_reason.clone().map_or(reason, ExitReason::from_term);
            }
            msg => {
                if let Some(Crash(reason)) = msg.downcast_ref::<Crash>() {
                    return ExitReason::from_term(reason.clone());
                }
                match msg.downcast::<Do>() {
                    Ok(Do(work, from, tag)) => {
                        let answer = work(&p);
                        p.send(from, Done(tag, answer));
                    }
                    Err(msg) if multi_node => {
                        let peer = &w.peer;
                        let ends = cluster::on_message(&p, &book, &path, peer, &mut watching, msg);
                        if let Some(reason) = ends.await {
                            return reason;
                        }
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// The modules OTP reports for a scenario node.
fn modules(node: &TreeNode) -> &'static str {
    if node.registry.is_some() {
        return "oracle";
    }
    match (node.supervisor, node.dynamic) {
        (_, true) => "oracle_dsup",
        (true, false) => "oracle_sup",
        (false, _) => "oracle_worker",
    }
}

/// The child spec of a tree node, checked by OTP's rules.
fn child_spec(
    book: &Book,
    node: &Arc<TreeNode>,
    auto: AutoShutdown,
) -> Result<ChildSpec, SpecError> {
    let fields = node.spec_fields.each_ref().map(Option::as_ref);
    let start = start_for(book, node);
    terms::child_spec(node.id.clone(), start, fields, auto).map(|s| s.modules([modules(node)]))
}

fn start_for(book: &Book, node: &Arc<TreeNode>) -> Start {
    let (book, node) = (book.clone(), node.clone());
    if let Some(reg) = node.registry.clone() {
        return Start::new(move |p| {
            let (book, node, reg) = (book.clone(), node.clone(), reg.clone());
            Box::pin(async move {
                let options = RegistryOptions::new(reg.keys).partitions(reg.partitions);
                let registry = Registry::<Term, Term>::new(options);
                let pid = registry.start(p).await;
                if let Ok(pid) = pid {
                    book.with(|b| b.registries.insert(reg.name.clone(), registry.clone()));
                    book.started_as(p, pid, &node.path, true);
                }
                supervisor::start_result(pid)
            })
        });
    }
    if node.supervisor {
        return Start::new(move |p| {
            let (book, node) = (book.clone(), node.clone());
            Box::pin(async move {
                supervisor::start_result(start_any_supervisor(p, &book, &node).await)
            })
        });
    }
    Start::new(move |p| {
        Box::pin(start_worker(
            p,
            book.clone(),
            node.path.clone(),
            node.worker.clone(),
        ))
    })
}

/// Starts the (static or dynamic) supervisor of `node`.
async fn start_any_supervisor(
    p: &Process,
    book: &Book,
    node: &Arc<TreeNode>,
) -> Result<Pid, StartError> {
    if node.dynamic {
        start_dynamic(p, book, node).await.map(|s| s.pid())
    } else {
        start_supervisor(p, book, node).await.map(|s| s.pid())
    }
}

/// The oracle's `oracle_dsup:start_link/2` and `init/1`.
async fn start_dynamic(
    p: &Process,
    book: &Book,
    node: &Arc<TreeNode>,
) -> Result<DynamicSupervisorRef, StartError> {
    let (book, node) = (book.clone(), node.clone());
    let init = move |sp: &Process| {
        book.started(sp, &node.path, true);
        let [_, intensity, period, _] = node.flags.each_ref().map(Option::as_ref);
        match terms::dynamic_options(node.max_children.as_ref(), intensity, period) {
            Ok(options) => DynamicInit::Ok(options),
            Err(e) => DynamicInit::Invalid(InitError::SupervisorData(e)),
        }
    };
    dynamic::start_with(p, init, StartOptions::linked()).await
}

async fn start_supervisor(
    p: &Process,
    book: &Book,
    node: &Arc<TreeNode>,
) -> Result<SupervisorRef, StartError> {
    let (book, node) = (book.clone(), node.clone());
    let init = move |sp: &Process| {
        book.started(sp, &node.path, true);
        match supervisor_spec(&book, &node) {
            Ok(spec) => SupervisorInit::Ok(spec),
            Err(e) => SupervisorInit::Invalid(e),
        }
    };
    supervisor::start_with(p, init, StartOptions::linked()).await
}

/// The oracle's `oracle_sup:init/1`.
fn supervisor_spec(book: &Book, node: &Arc<TreeNode>) -> Result<SupervisorSpec, InitError> {
    let [strategy, intensity, period, auto] = node.flags.each_ref().map(Option::as_ref);
    let flags =
        terms::flags(strategy, intensity, period, auto).map_err(InitError::SupervisorData)?;
    let mut spec = SupervisorSpec::new(flags);
    if let Some(template) = &node.template {
        let (sup_path, book) = (node.path.clone(), book.clone());
        let start = Start::with_args(move |p, args| {
            let (book, sup_path) = (book.clone(), sup_path.clone());
            Box::pin(async move {
                // The extra arguments are the child's name (its path below the supervisor).
                let path = match args.first() {
                    Some(Term::Str(name)) => format!("{sup_path}/{name}"),
                    _ => return Err(Term::atom("badarg")),
                };
                match book.with(|b| b.dynamic.get(&path).cloned()) {
                    Some(worker) => start_worker(p, book, path, worker).await,
                    None => Err(Term::atom("badarg")),
                }
            })
        });
        let fields = template.node.spec_fields.each_ref().map(Option::as_ref);
        let template = terms::child_spec("template", start, fields, flags.auto_shutdown)
            .map_err(InitError::StartSpec)?
            .modules(["oracle_worker"]);
        return Ok(spec.child(template));
    }
    let mut ids = BTreeSet::new();
    for child in &node.children {
        let child_spec =
            child_spec(book, child, flags.auto_shutdown).map_err(InitError::StartSpec)?;
        if !ids.insert(child.id.clone()) {
            return Err(InitError::StartSpec(SpecError::DuplicateChildName(
                child.id.clone(),
            )));
        }
        spec = spec.child(child_spec);
    }
    Ok(spec)
}

// ---- the driver ----------------------------------------------------------------------------------

/// The oracle's driver: starts the root, runs the script, returns the trace.
async fn driver(p: &Process, sc: Arc<Scenario>) -> Vec<String> {
    let book = Book::default();
    p.trap_exit(true);
    p.node().label(p.pid(), "driver", false);
    line(p, "call start_root");
    let result = start_any_supervisor(p, &book, &sc.tree).await;
    let term = match &result {
        Ok(sup) => Term::tuple([Term::atom("ok"), Term::Pid(*sup)]),
        Err(StartError::Ignore) => Term::atom("ignore"),
        Err(e) => error(e.reason().to_term()),
    };
    if result.is_err() {
        // OTP 25 acknowledges a failed init before the process exits: wait for the exit.
        let exit = |m: &Msg| matches!(m, Msg::Exit { .. });
        let _ = p.receive_timeout(exit, Duration::from_secs(1)).await;
    }
    line_term(p, "result start_root -> ", term);
    for op in &sc.script {
        let now = p.node().elapsed_us();
        let at = op.at * 1000;
        if at > now {
            p.sleep(Duration::from_micros(at - now)).await;
        }
        exec(p, &sc, &book, &op.action).await;
        while p
            .try_receive(|m| matches!(m, Msg::Exit { .. }))
            .await
            .is_some()
        {}
    }
    p.sleep(Duration::from_millis(sc.settle_ms)).await;
    let known = book.with(|b| std::mem::take(&mut b.starts));
    p.node()
        .trace()
        .oracle_lines_known(|path| path == "driver" || known.contains_key(path))
}

fn error(reason: Term) -> Term {
    Term::tuple([Term::atom("error"), reason])
}

/// `ok` or `{error, Reason}`.
fn done_term(r: Result<(), ChildError>) -> Term {
    r.map_or_else(|e| error(e.to_term()), |()| Term::atom("ok"))
}

/// `{ok, Pid}`, `{ok, Pid, Info}`, `{ok, undefined}` or `{error, Reason}`.
fn started_term(r: Result<Started, ChildError>) -> Term {
    r.map_or_else(|e| error(e.to_term()), |s| s.to_term())
}

/// `DynamicSupervisor.start_child/2` with the spec of a scenario node; Elixir checks the spec
/// in the caller (docs/behaviours.md item 69) and returns `:ignore` bare (item 72). Elixir 1.14 accepts a
/// significant child (and ignores the flag).
async fn start_dynamic_child(p: &Process, book: &Book, sup: Pid, child: &Arc<TreeNode>) -> Term {
    let mut child = (**child).clone();
    if child.spec_fields[1]
        .as_ref()
        .is_some_and(|t| t.is_atom("true"))
    {
        child.spec_fields[1] = None;
    }
    let spec = match child_spec(book, &Arc::new(child), AutoShutdown::Never) {
        Ok(spec) => spec,
        Err(e) => return error(e.to_term()),
    };
    match DynamicSupervisorRef::from_pid(sup)
        .start_child(p, spec)
        .await
    {
        Ok(Started::Ignore) => Term::atom("ignore"),
        Ok(started) => started.to_term(),
        Err(e) => error(e.to_term()),
    }
}

/// A static or dynamic supervisor of the scenario, for the calls both answer.
enum AnySup {
    Static(SupervisorRef),
    Dynamic(DynamicSupervisorRef),
}

/// The supervisor at `path` (running as `pid`), by the kind the tree gives it.
fn any_sup(sc: &Scenario, path: &str, pid: Option<Pid>) -> Option<AnySup> {
    let pid = pid?;
    Some(if sc.supervisors[path].dynamic {
        AnySup::Dynamic(DynamicSupervisorRef::from_pid(pid))
    } else {
        AnySup::Static(SupervisorRef::from_pid(pid))
    })
}

impl AnySup {
    async fn which_children(&self, p: &Process) -> Result<Vec<ChildInfo>, Term> {
        match self {
            AnySup::Static(s) => s.which_children(p).await.map_err(|e| e.to_term()),
            AnySup::Dynamic(d) => d.which_children(p).await.map_err(|e| e.to_term()),
        }
    }

    async fn count_children(&self, p: &Process) -> Result<Counts, Term> {
        match self {
            AnySup::Static(s) => s.count_children(p).await.map_err(|e| e.to_term()),
            AnySup::Dynamic(d) => d.count_children(p).await.map_err(|e| e.to_term()),
        }
    }
}

/// Has the worker `pid` run `work` in its own process and waits for the answer (5 s, then
/// `timeout`, as the oracle).
async fn ask(p: &Process, pid: Pid, work: Box<dyn FnOnce(&Process) -> Term + Send>) -> Term {
    let tag = p.make_ref();
    p.send(pid, Do(work, p.pid(), tag));
    let accept = |m: &Msg| m.downcast_ref::<Done>().is_some_and(|d| d.0 == tag);
    match p.receive_timeout(accept, Duration::from_secs(5)).await {
        Some(msg) => msg
            .downcast::<Done>()
            .map_or(Term::atom("timeout"), |d| d.1),
        None => Term::atom("timeout"),
    }
}

/// Waits until `pid` is dead (at most 5 s, as the oracle).
async fn wait_dead(p: &Process, pid: Pid) {
    let mref = p.monitor(pid);
    let down = move |m: &Msg| matches!(m, Msg::Down { mref: r, .. } if *r == mref);
    if p.receive_timeout(down, Duration::from_secs(5))
        .await
        .is_none()
    {
        p.demonitor_flush(mref);
    }
}

/// The result of an API call, logged 10 ms after it returned (as the oracle does).
async fn result(p: &Process, what: String, term: Term) {
    p.sleep(Duration::from_millis(10)).await;
    line_term(p, format!("result {what} -> "), term);
}

async fn exec(p: &Process, sc: &Scenario, book: &Book, action: &Action) {
    // A path with no process: the oracle's driver catches the exit and logs it.
    let whereis = |op: &str, path: &str| {
        let pid = book.current(path);
        if pid.is_none() {
            let reason = Term::tuple([Term::atom("no_process_for_path"), Term::Str(path.into())]);
            line_term(
                p,
                format!("oracle_error {op} "),
                Term::tuple([Term::atom("exit"), reason]),
            );
        }
        pid
    };
    match action {
        Action::Crash { path, reason } => {
            let Some(pid) = whereis("crash", path) else {
                return;
            };
            line_term(p, format!("op crash {path} reason="), reason.clone());
            p.send(pid, Crash(reason.clone()));
            wait_dead(p, pid).await;
        }
        Action::Kill { path } => {
            let Some(pid) = whereis("kill", path) else {
                return;
            };
            line(p, format!("op kill {path}"));
            p.exit(pid, ExitReason::Kill);
            wait_dead(p, pid).await;
        }
        Action::ExitSignal { path, reason } => {
            let Some(pid) = whereis("exit_signal", path) else {
                return;
            };
            line_term(p, format!("op exit_signal {path} reason="), reason.clone());
            let reason = ExitReason::from_term(reason.clone());
            p.spawn(move |stranger| async move { stranger.exit(pid, reason) });
            p.sleep(Duration::from_millis(20)).await;
        }
        Action::SetStart { path, seq } => {
            line_term(
                p,
                format!("op set_start {path} "),
                Term::list(seq.iter().map(StartAction::to_term)),
            );
            book.with(|b| {
                b.seqs.insert(path.clone(), seq.clone());
                b.attempts.insert(path.clone(), 0);
            });
        }
        Action::Stop => {
            let root = &sc.tree.path;
            match book.current(root).filter(|pid| p.node().is_alive(*pid)) {
                None => line(p, format!("op stop {root} (not running)")),
                Some(pid) => {
                    line(p, format!("op stop {root}"));
                    p.exit(pid, ExitReason::Shutdown);
                    wait_dead(p, pid).await;
                }
            }
        }
        Action::Sleep => {}
        Action::Register {
            path,
            registry,
            key,
            value,
        } => {
            let Some(pid) = whereis("register", path) else {
                return;
            };
            let (reg, key2, value) = (book.registry(registry), key.clone(), value.clone());
            let work = move |w: &Process| register_term(w, reg, &key2, &value);
            let term = ask(p, pid, Box::new(work)).await;
            result(p, format!("register {path} {registry} {key}"), term).await;
        }
        Action::Unregister {
            path,
            registry,
            key,
        } => {
            let Some(pid) = whereis("unregister", path) else {
                return;
            };
            let (reg, key2) = (book.registry(registry), key.clone());
            let work = move |w: &Process| {
                if let Some(reg) = reg {
                    reg.unregister(w, &key2);
                }
                Term::atom("ok")
            };
            let term = ask(p, pid, Box::new(work)).await;
            result(p, format!("unregister {path} {registry} {key}"), term).await;
        }
        Action::Lookup { registry, key } => {
            let mut entries = book
                .registry(registry)
                .map(|r| r.lookup(key))
                .unwrap_or_default();
            entries.sort();
            let term = Term::list(
                entries
                    .into_iter()
                    .map(|(pid, v)| Term::tuple([Term::Pid(pid), v])),
            );
            result(p, format!("lookup {registry} {key}"), term).await;
        }
        Action::ChildCall {
            function,
            sup,
            id,
            by_pid,
        } => {
            let Some(sup_pid) = whereis(function.name(), sup) else {
                return;
            };
            let sup_ref = SupervisorRef::from_pid(sup_pid);
            let (child, shown) = if *by_pid {
                let path = format!("{sup}/{id}");
                let Some(pid) = whereis(function.name(), &path) else {
                    return;
                };
                (ChildRef::Pid(pid), format!("<{path}>"))
            } else {
                (ChildRef::Id(id.clone()), Term::atom(id.clone()).to_string())
            };
            let what = format!("{} {sup} {shown}", function.name());
            line(p, format!("call {what}"));
            let dynamic = sc.supervisors[sup.as_str()].dynamic;
            let term = match (function, child) {
                (ChildFunction::Terminate, ChildRef::Pid(pid)) if dynamic => {
                    let r = DynamicSupervisorRef::from_pid(sup_pid)
                        .terminate_child(p, pid)
                        .await;
                    r.map_or_else(|e| error(e.to_term()), |()| Term::atom("ok"))
                }
                (_, ChildRef::Id(_)) if dynamic => error(Term::atom("not_found")),
                (ChildFunction::Terminate, child) => {
                    done_term(sup_ref.terminate_child(p, child).await)
                }
                (ChildFunction::Restart, ChildRef::Id(id)) => {
                    started_term(sup_ref.restart_child(p, &id).await)
                }
                (ChildFunction::Delete, ChildRef::Id(id)) => {
                    done_term(sup_ref.delete_child(p, &id).await)
                }
                // restart/delete by pid exist only for simple_one_for_one, which refuses them.
                (ChildFunction::Restart | ChildFunction::Delete, ChildRef::Pid(_)) => {
                    error(ChildError::SimpleOneForOne.to_term())
                }
            };
            result(p, what, term).await;
        }
        Action::StartChild { sup, child } => {
            let Some(sup_pid) = whereis("start_child", sup) else {
                return;
            };
            line(p, format!("call start_child {sup} {}", child.id));
            let node = &sc.supervisors[sup.as_str()];
            let term = if node.dynamic {
                start_dynamic_child(p, book, sup_pid, child).await
            } else {
                let auto = node.flags[3]
                    .as_ref()
                    .and_then(|t| AutoShutdown::parse(t).ok())
                    .unwrap_or(AutoShutdown::Never);
                match child_spec(book, child, auto) {
                    Ok(spec) => {
                        started_term(SupervisorRef::from_pid(sup_pid).start_child(p, spec).await)
                    }
                    Err(e) => error(e.to_term()),
                }
            };
            result(p, format!("start_child {sup} {}", child.id), term).await;
        }
        Action::StartDynamic { sup, name, worker } => {
            let Some(sup_pid) = whereis("start_child", sup) else {
                return;
            };
            line(p, format!("call start_child {sup} {name}"));
            book.with(|b| b.dynamic.insert(format!("{sup}/{name}"), worker.clone()));
            let args = vec![Term::Str(name.clone())];
            let r = SupervisorRef::from_pid(sup_pid)
                .start_child_args(p, args)
                .await;
            result(p, format!("start_child {sup} {name}"), started_term(r)).await;
        }
        Action::WhichChildren { sup } => {
            let Some(sup_ref) = any_sup(sc, sup, whereis("which_children", sup)) else {
                return;
            };
            let children = sup_ref.which_children(p).await;
            let term = children.map_or_else(error, |c| Term::list(c.iter().map(|c| c.to_term())));
            result(p, format!("which_children {sup}"), term).await;
        }
        Action::CountChildren { sup } => {
            let Some(sup_ref) = any_sup(sc, sup, whereis("count_children", sup)) else {
                return;
            };
            let term = sup_ref
                .count_children(p)
                .await
                .map_or_else(error, |c| c.to_term());
            result(p, format!("count_children {sup}"), term).await;
        }
    }
}
