//! Randomly wired processes over a cluster, under cluster faults: the `cluster-graph` target
//! of `otpsim fuzz`. Processes on 3 to 5 nodes link to and monitor each other across nodes,
//! send each other numbered messages over time, and end by themselves; nodes crash (at once
//! or silently), restart, pause and resume, links between nodes slow down, and nodes are
//! partitioned and healed.
//!
//! A case fails when the run fails (a livelock, a halt), when a process sees a pair's
//! messages out of order (E1: each process checks the numbers it receives from each sender),
//! or when a signal of an earlier incarnation of a restarted node is delivered (E5).
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::cluster_graph::ClusterGraphCase;
//! let case = ClusterGraphCase::generate(3);
//! assert!((3..=5).contains(&case.nodes));
//! let report = case.run(3);
//! assert_eq!(case.check(&report), Ok(()));
//! # }
//! ```
//!
//! The target is one unit: its case, the processes it wires, its checks, its shrinker and its
//! corpus form, each of which reads the others' fields (hence its length).

use super::cluster::{ClusterCtl, ClusterReport, ClusterSim};
use super::corpus::CorpusFile;
use super::graph::Ending;
use super::harness::{AnyTarget, CaseReport, Failure, Family, HarnessReport};
use super::invariants::{Invariant, Violation};
use crate::process::{ExitReason, Msg, Process};
use crate::rt::Duration;
use crate::term::{Pid, Term};
use crate::trace::{ClusterEvent, EventKind, Trace};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One process of the cluster graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterVertex {
    /// The node it runs on.
    pub node: u16,
    /// Whether it traps exits.
    pub trap_exit: bool,
    /// Processes it links to when it starts (any node).
    pub links: Vec<usize>,
    /// Processes it monitors when it starts.
    pub monitors: Vec<usize>,
    /// Processes it sends numbered messages to, this many each, in bursts of up to three
    /// every 100 ms (a burst is what a link's jitter could reorder).
    pub sends: Vec<(usize, u32)>,
    /// Exits by itself this long after starting, if set.
    pub lifetime_ms: Option<u64>,
    /// How it exits by itself.
    pub ending: Ending,
}

/// A fault of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterFault {
    /// The node crashes; its peers see it at once.
    Crash(u16),
    /// The node is lost silently; its peers find out after `net_ticktime`.
    CrashSilently(u16),
    /// The node restarts with a new creation.
    Restart(u16),
    /// Nothing gets through between these nodes and the others.
    Partition(Vec<u16>),
    /// Every partition ends.
    Heal,
    /// The node stops for this many milliseconds (longer than `net_ticktime`: its peers
    /// declare it down).
    Pause(u16, u64),
    /// For `ms` milliseconds, signals between two nodes take `extra_ms` longer.
    SlowLink {
        /// One node.
        a: u16,
        /// The other.
        b: u16,
        /// The added latency.
        extra_ms: u64,
        /// For how long.
        ms: u64,
    },
}

/// A generated cluster graph and its timed faults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterGraphCase {
    /// Nodes `1..=nodes`.
    pub nodes: u16,
    /// The processes, spawned in order at the start.
    pub vertices: Vec<ClusterVertex>,
    /// `(at_ms, fault)` in time order.
    pub faults: Vec<(u64, ClusterFault)>,
}

/// How long a case runs, in simulated time.
const RUN: Duration = Duration::from_secs(10);

impl ClusterGraphCase {
    /// The case of `seed`: 3 to 5 nodes, 6 to 20 processes, up to 4 faults in the first 8
    /// simulated seconds.
    pub fn generate(seed: u64) -> ClusterGraphCase {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6772_6170_6863);
        let mut below = |n: u64| rng.next_u64() % n.max(1);
        let nodes = 3 + below(3) as u16;
        let n = 6 + below(15) as usize;
        let mut vertices = Vec::with_capacity(n);
        for _ in 0..n {
            let mut pick = |count: u64| -> Vec<usize> {
                (0..count).map(|_| below(n as u64) as usize).collect()
            };
            let (links, monitors) = (pick(2), pick(2));
            // One numbered stream per receiver.
            let mut targets = pick(2);
            targets.sort_unstable();
            targets.dedup();
            let sends = targets
                .into_iter()
                .map(|t| (t, 1 + below(20) as u32))
                .collect();
            vertices.push(ClusterVertex {
                node: 1 + below(u64::from(nodes)) as u16,
                trap_exit: below(2) == 0,
                links,
                monitors,
                sends,
                lifetime_ms: (below(3) == 0).then(|| 1 + below(8000)),
                ending: match below(4) {
                    0 => Ending::Normal,
                    1 => Ending::Shutdown,
                    2 => Ending::Boom,
                    _ => Ending::Panic,
                },
            });
        }
        let mut faults: Vec<(u64, ClusterFault)> = (0..below(5))
            .map(|_| {
                let at = 1 + below(8000);
                let node = 1 + below(u64::from(nodes)) as u16;
                let fault = match below(7) {
                    0 => ClusterFault::Crash(node),
                    1 => ClusterFault::CrashSilently(node),
                    2 => ClusterFault::Restart(node),
                    3 => ClusterFault::Partition(
                        (1..=nodes)
                            .filter(|k| (k + node).is_multiple_of(2))
                            .collect(),
                    ),
                    4 => ClusterFault::Pause(node, 100 + below(6000)),
                    5 => ClusterFault::SlowLink {
                        a: node,
                        b: 1 + (node + below(u64::from(nodes) - 1) as u16) % nodes,
                        extra_ms: 1 + below(500),
                        ms: 100 + below(3000),
                    },
                    _ => ClusterFault::Heal,
                };
                (at, fault)
            })
            .collect();
        faults.sort_by_key(|(at, _)| *at);
        ClusterGraphCase {
            nodes,
            vertices,
            faults,
        }
    }

    /// Each vertex's pid: its node's processes are numbered in spawn order.
    fn pids(&self) -> Vec<Pid> {
        let mut next: BTreeMap<u16, u64> = BTreeMap::new();
        self.vertices
            .iter()
            .map(|v| {
                let serial = next.entry(v.node).or_insert(0);
                *serial += 1;
                Pid::new(v.node, 0, *serial)
            })
            .collect()
    }

    /// Runs the case with `seed` (the switch's latencies and madsim's scheduling).
    pub fn run(&self, seed: u64) -> ClusterReport {
        let case = self.clone();
        ClusterSim::new(seed)
            .nodes(self.nodes)
            .run(move |ctl| drive(case, ctl))
    }

    /// What is wrong with a run of this case, if anything.
    pub fn check(&self, report: &ClusterReport) -> Result<(), String> {
        if let Some(f) = report.failure() {
            return Err(f);
        }
        out_of_order(&report.trace)?;
        old_incarnations(&report.trace)?;
        links_fire_once(&report.trace)
    }
}

/// The scenario: spawn every vertex on its node, then inject the faults at their times.
async fn drive(case: ClusterGraphCase, ctl: ClusterCtl) {
    let pids = case.pids();
    for v in &case.vertices {
        let (v, pids) = (v.clone(), pids.clone());
        ctl.node(v.node).spawn(move |p| vertex(v, pids, p));
    }
    let start = crate::rt::now();
    // A pause ends with a resume of its own.
    let mut steps: Vec<(u64, Option<&ClusterFault>, u16)> = Vec::new();
    for (at_ms, fault) in &case.faults {
        steps.push((*at_ms, Some(fault), 0));
        if let ClusterFault::Pause(k, ms) = fault {
            steps.push((at_ms + ms, None, *k));
        }
    }
    steps.sort_by_key(|(at, ..)| *at);
    for (at_ms, fault, resumed) in steps {
        let due = start + Duration::from_millis(at_ms);
        crate::rt::sleep_until(due).await;
        let Some(fault) = fault else {
            ctl.resume(resumed);
            continue;
        };
        match fault {
            ClusterFault::Crash(k) => ctl.crash(*k),
            ClusterFault::CrashSilently(k) => ctl.crash_silently(*k),
            ClusterFault::Restart(k) => ctl.restart(*k),
            ClusterFault::Partition(side) => ctl.partition(side),
            ClusterFault::Heal => ctl.heal(),
            ClusterFault::Pause(k, _) => ctl.pause(*k),
            ClusterFault::SlowLink { a, b, extra_ms, ms } => ctl.slow_link(
                *a,
                *b,
                Duration::from_millis(*extra_ms),
                Duration::from_millis(*ms),
            ),
        }
    }
    crate::rt::sleep_until(start + RUN).await;
}

/// A numbered message: the `n`-th from its sender to its receiver.
struct Numbered(u32);

/// One process: its links and monitors, its numbered sends over time, and its checks of
/// what it receives.
async fn vertex(v: ClusterVertex, pids: Vec<Pid>, p: Process) -> ExitReason {
    p.trap_exit(v.trap_exit);
    for &t in &v.links {
        let _ = p.link(pids[t]);
    }
    for &t in &v.monitors {
        p.monitor(pids[t]);
    }
    // Without a lifetime of its own it lives past the run (the nodes halt at its end).
    let life = v.lifetime_ms.map_or(RUN + RUN, Duration::from_millis);
    let deadline = p.now() + life;
    let mut sent: Vec<(Pid, u32, u32)> = v.sends.iter().map(|&(t, n)| (pids[t], 0, n)).collect();
    let mut last: BTreeMap<Pid, u32> = BTreeMap::new();
    let tick = Duration::from_millis(100);
    let mut next_send = p.now();
    loop {
        let now = p.now();
        if now >= deadline {
            break;
        }
        if now >= next_send {
            for (to, done, total) in sent.iter_mut() {
                let burst = (*total - *done).min(3);
                for _ in 0..burst {
                    *done += 1;
                    p.send(*to, (p.pid(), Numbered(*done)));
                }
            }
            next_send = now + tick;
        }
        let wait = next_send.min(deadline).saturating_duration_since(p.now());
        let Some(msg) = p.recv_timeout(wait).await else {
            continue;
        };
        if let Msg::User(_) = &msg {
            if let Ok((from, Numbered(n))) = msg.downcast::<(Pid, Numbered)>() {
                let previous = last.insert(from, n).unwrap_or(0);
                if n <= previous {
                    panic!("order broken: {n} from {from} after {previous}");
                }
            }
        }
    }
    if v.ending == Ending::Panic {
        panic!("vertex {} gives up", p.pid());
    }
    match v.ending {
        Ending::Normal => ExitReason::Normal,
        Ending::Shutdown => ExitReason::Shutdown,
        _ => ExitReason::error("boom"),
    }
}

/// E1: a process that saw a pair's messages out of order panicked saying so.
fn out_of_order(trace: &Trace) -> Result<(), String> {
    for e in trace.events() {
        if let EventKind::Exit {
            pid,
            reason: Term::Tuple(items),
        } = &e.kind
        {
            if let [Term::Atom(tag), Term::Str(message)] = items.as_slice() {
                if tag == "panic" && message.starts_with("order broken") {
                    return Err(format!("per-pair order (E1): {pid}: {message}"));
                }
            }
        }
    }
    Ok(())
}

/// E5: after node k restarts with creation c, no signal that a process of an earlier
/// creation of k sent is delivered (what the runtime says about such a process, `noproc` or
/// `noconnection`, is not its signal). Signals handed over at the very moment of the restart
/// are the old incarnation's last ones, which had arrived as it went down (the merged trace
/// puts the cluster's own events first within a microsecond).
fn old_incarnations(trace: &Trace) -> Result<(), String> {
    let mut creation: BTreeMap<u16, (u16, u64)> = BTreeMap::new();
    for e in trace.events() {
        let from = match &e.kind {
            EventKind::Cluster(ClusterEvent::Restart { node, creation: c }) => {
                creation.insert(*node, (*c, e.at_us));
                continue;
            }
            EventKind::Signal { from, reason, .. }
            | EventKind::Down {
                target: from,
                reason,
                ..
            } if !reason.is_atom("noconnection") && !reason.is_atom("noproc") => *from,
            _ => continue,
        };
        if creation
            .get(&from.node())
            .is_some_and(|&(c, at)| from.creation() < c && e.at_us > at)
        {
            return Err(format!(
                "a signal of an earlier incarnation was delivered (E5) at {}us: {:?}",
                e.at_us, e.kind
            ));
        }
    }
    Ok(())
}

/// E3, exactly once: every cross-node link fires at its near end when its connection goes
/// down (the near end made the link and is running), and no link or monitor fires twice
/// (each is made once, when its process starts).
fn links_fire_once(trace: &Trace) -> Result<(), String> {
    use std::collections::BTreeSet;
    // (from, to) -> when the near end `from` linked to `to` on another node.
    let mut links: BTreeMap<(Pid, Pid), u64> = BTreeMap::new();
    let mut monitors: BTreeMap<(Pid, Pid), u32> = BTreeMap::new();
    let mut signals: BTreeMap<(Pid, Pid), Vec<(u64, bool)>> = BTreeMap::new();
    let mut downs: BTreeMap<(Pid, Pid), u32> = BTreeMap::new();
    let mut exits: BTreeMap<Pid, u64> = BTreeMap::new();
    let mut unlinked: BTreeSet<(Pid, Pid)> = BTreeSet::new();
    // When connections went down: (pair of nodes, µs); nodes crashed or paused, by time.
    let mut cuts: Vec<((u16, u16), u64)> = Vec::new();
    let mut crashes: Vec<(u16, u64)> = Vec::new();
    let mut pauses: Vec<(u16, u64, bool)> = Vec::new();
    let nodes: BTreeSet<u16> = trace
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Spawn { pid, .. } => Some(pid.node()),
            _ => None,
        })
        .collect();
    for e in trace.events() {
        let at = e.at_us;
        match &e.kind {
            EventKind::Link { from, to } if from.node() != to.node() => {
                links.entry((*from, *to)).or_insert(at);
            }
            EventKind::Unlink { from, to } => {
                unlinked.insert((*from, *to));
                unlinked.insert((*to, *from));
            }
            EventKind::Monitor { watcher, target } => {
                *monitors.entry((*watcher, *target)).or_default() += 1;
            }
            EventKind::Signal {
                from, to, reason, ..
            } => {
                let cut = reason.is_atom("noconnection");
                signals.entry((*from, *to)).or_default().push((at, cut));
            }
            EventKind::Down {
                watcher,
                target,
                reason,
            } if reason.is_atom("noconnection") => {
                let n = downs.entry((*watcher, *target)).or_default();
                *n += 1;
                if *n > monitors.get(&(*watcher, *target)).copied().unwrap_or(0) {
                    return Err(format!(
                        "a monitor fired noconnection twice (E3): {watcher} of {target} at {at}us"
                    ));
                }
            }
            EventKind::Exit { pid, .. } => {
                exits.entry(*pid).or_insert(at);
            }
            EventKind::Cluster(c) => match c {
                ClusterEvent::Crash { node, silent } => {
                    crashes.push((*node, at));
                    // A silent crash cuts nothing yet: ticks declare it later.
                    if *silent {
                        continue;
                    }
                    cuts.extend(
                        nodes
                            .iter()
                            .filter(|&k| k != node)
                            .map(|&k| ((k.min(*node), k.max(*node)), at)),
                    );
                }
                ClusterEvent::TickTimeout { pairs } => cuts.extend(pairs.iter().map(|p| (*p, at))),
                ClusterEvent::Disconnect { by, peer } => {
                    cuts.push(((*by.min(peer), *by.max(peer)), at))
                }
                ClusterEvent::Pause { node } => pauses.push((*node, at, true)),
                ClusterEvent::Resume { node } => pauses.push((*node, at, false)),
                _ => {}
            },
            _ => {}
        }
    }
    for ((to, from), list) in &signals {
        if list.iter().filter(|(_, cut)| *cut).count() > 1 {
            return Err(format!(
                "a link fired noconnection twice (E3): {to} -> {from}"
            ));
        }
    }
    let paused_at = |node: u16, t: u64| {
        let mut paused = false;
        for (k, at, on) in &pauses {
            if *k == node && *at <= t {
                paused = *on;
            }
        }
        paused
    };
    for (&(from, to), &made) in &links {
        if unlinked.contains(&(from, to)) {
            continue;
        }
        let pair = (from.node().min(to.node()), from.node().max(to.node()));
        let Some(&(_, cut)) = cuts.iter().find(|(p, at)| *p == pair && *at >= made) else {
            continue;
        };
        let alive = exits.get(&from).is_none_or(|&died| died > cut);
        let crashed = crashes
            .iter()
            .any(|&(k, at)| k == from.node() && at >= made && at <= cut);
        let consumed = signals
            .get(&(to, from))
            .is_some_and(|l| l.iter().any(|&(at, _)| at >= made && at < cut));
        if !alive || crashed || consumed || paused_at(from.node(), cut) {
            continue;
        }
        let fired = signals
            .get(&(to, from))
            .is_some_and(|l| l.iter().any(|&(at, _)| at >= cut && at <= cut + 1_000));
        if !fired {
            return Err(format!(
                "a link did not fire when its connection went down at {cut}us (E3): {from} linked to {to} at {made}us"
            ));
        }
    }
    Ok(())
}

/// Runs the case of `seed` (twice, on this thread and a fresh one, when `check_determinism`),
/// for a campaign: the tally (one check per case: its verdict) and the failure, if any.
pub fn run_case(seed: u64, check_determinism: bool) -> (super::harness::Tally, Result<(), String>) {
    let case = ClusterGraphCase::generate(seed);
    let report = case.run(seed);
    let tally = super::harness::Tally::of(&report.trace, 1);
    if check_determinism {
        let again = {
            let case = case.clone();
            #[allow(clippy::disallowed_methods)] // a fresh thread, outside the simulation
            std::thread::spawn(move || case.run(seed))
                .join()
                .map(|r| r.trace)
        };
        match again {
            Ok(trace) => {
                if let Some(d) = report.trace.first_divergence(&trace) {
                    return (tally, Err(format!("determinism: seed {seed}: {d}")));
                }
            }
            Err(_) => return (tally, Err(format!("seed {seed}: the rerun panicked"))),
        }
    }
    (tally, case.check(&report))
}

/// The invariant a cluster-graph failure broke, from its message.
fn violation_of(message: &str) -> Violation {
    let invariant = if message.starts_with("determinism") {
        Invariant::Determinism
    } else if message.contains("(E1)") {
        Invariant::App("cluster-order".into())
    } else if message.contains("(E3)") {
        Invariant::App("cluster-links-fire-once".into())
    } else if message.contains("(E5)") {
        Invariant::App("cluster-old-incarnations".into())
    } else {
        Invariant::Run
    };
    Violation::new(invariant, "cluster", message)
}

impl ClusterGraphCase {
    /// The case on one node fewer, if its last node runs no process and no fault names it
    /// alone (partitions forget it).
    fn without_last_node(&self) -> Option<ClusterGraphCase> {
        let last = self.nodes;
        let named = |f: &ClusterFault| match f {
            ClusterFault::Crash(k)
            | ClusterFault::CrashSilently(k)
            | ClusterFault::Restart(k)
            | ClusterFault::Pause(k, _) => *k == last,
            ClusterFault::SlowLink { a, b, .. } => *a == last || *b == last,
            ClusterFault::Partition(_) | ClusterFault::Heal => false,
        };
        if last <= 2
            || self.vertices.iter().any(|v| v.node == last)
            || self.faults.iter().any(|(_, f)| named(f))
        {
            return None;
        }
        let faults = self
            .faults
            .iter()
            .map(|(at, f)| match f {
                ClusterFault::Partition(side) => {
                    let side = side.iter().copied().filter(|k| *k != last).collect();
                    (*at, ClusterFault::Partition(side))
                }
                f => (*at, f.clone()),
            })
            .collect();
        Some(ClusterGraphCase {
            nodes: last - 1,
            vertices: self.vertices.clone(),
            faults,
        })
    }

    /// The case without vertex `i`: what referred to it goes, later indices move down.
    fn without_vertex(&self, i: usize) -> ClusterGraphCase {
        let keep = |refs: &[usize]| -> Vec<usize> {
            refs.iter()
                .filter(|&&r| r != i)
                .map(|&r| if r > i { r - 1 } else { r })
                .collect()
        };
        let mut vertices = self.vertices.clone();
        vertices.remove(i);
        for v in &mut vertices {
            v.links = keep(&v.links);
            v.monitors = keep(&v.monitors);
            v.sends = v
                .sends
                .iter()
                .filter(|(t, _)| *t != i)
                .map(|&(t, n)| (if t > i { t - 1 } else { t }, n))
                .collect();
        }
        ClusterGraphCase {
            vertices,
            ..self.clone()
        }
    }
}

/// A smaller case that still breaks the same invariant: fewer faults, fewer processes, seed
/// 0, shorter pauses. Returns the case, its run seed and the failure's message.
pub fn shrink(
    case: ClusterGraphCase,
    seed: u64,
    message: String,
) -> (ClusterGraphCase, u64, String) {
    let kind = violation_of(&message).invariant;
    if kind == Invariant::Determinism {
        return (case, seed, message);
    }
    let fails = |c: &ClusterGraphCase, s: u64| -> Option<String> {
        let report = c.run(s);
        c.check(&report)
            .err()
            .filter(|m| violation_of(m).invariant == kind)
    };
    let (mut case, mut seed, mut message) = (case, seed, message);
    let mut budget = 400;
    let mut better = true;
    while better && budget > 0 {
        better = false;
        let mut i = 0;
        while i < case.faults.len() && budget > 0 {
            let mut smaller = case.clone();
            smaller.faults.remove(i);
            budget -= 1;
            match fails(&smaller, seed) {
                Some(m) => (case, message, better) = (smaller, m, true),
                None => i += 1,
            }
        }
        let mut i = case.vertices.len();
        while i > 0 && budget > 0 {
            i -= 1;
            let smaller = case.without_vertex(i);
            budget -= 1;
            if let Some(m) = fails(&smaller, seed) {
                (case, message, better) = (smaller, m, true);
            }
        }
        for i in 0..case.faults.len() {
            if let (_, ClusterFault::Pause(_, ms)) = case.faults[i] {
                if ms > 100 && budget > 0 {
                    let mut smaller = case.clone();
                    if let (_, ClusterFault::Pause(_, ms)) = &mut smaller.faults[i] {
                        *ms /= 2;
                    }
                    budget -= 1;
                    if let Some(m) = fails(&smaller, seed) {
                        (case, message, better) = (smaller, m, true);
                    }
                }
            }
        }
        if let Some(smaller) = case.without_last_node().filter(|_| budget > 0) {
            budget -= 1;
            if let Some(m) = fails(&smaller, seed) {
                (case, message, better) = (smaller, m, true);
            }
        }
        if seed != 0 && budget > 0 {
            budget -= 1;
            if let Some(m) = fails(&case, 0) {
                (seed, message, better) = (0, m, true);
            }
        }
    }
    (case, seed, message)
}

/// `cluster-graph` as a target of the campaign, the corpus and `otpsim replay`: a failing
/// case is shrunk and saved as `{"seed": S, "graph": case}`.
pub struct ClusterGraphTarget;

/// A saved cluster-graph case.
#[derive(Serialize, Deserialize)]
struct Saved {
    seed: u64,
    graph: ClusterGraphCase,
}

impl AnyTarget for ClusterGraphTarget {
    fn name(&self) -> String {
        "cluster-graph".into()
    }

    fn fuzz_seed(
        self: std::sync::Arc<Self>,
        seed: u64,
        _: &[Family],
        determinism: bool,
        corpus: Option<std::path::PathBuf>,
        _: &dyn Fn(&str) -> bool,
    ) -> HarnessReport {
        let (tally, outcome) = run_case(seed, determinism);
        let failure = outcome.err().map(|message| {
            let (graph, run_seed, message) =
                shrink(ClusterGraphCase::generate(seed), seed, message);
            let violation = violation_of(&message);
            let case = serde_json::to_value(Saved {
                seed: run_seed,
                graph,
            })
            .unwrap_or_default();
            let file = CorpusFile::failure(&self.name(), case.clone(), &violation);
            let saved = corpus.and_then(|dir| super::corpus::save(&dir, &file).ok());
            Failure {
                violation,
                case,
                saved,
                seed,
                found_at_case: 1,
                found_after: std::time::Duration::ZERO,
            }
        });
        HarnessReport::of_one_case(failure, tally)
    }

    fn replay(self: std::sync::Arc<Self>, case: &serde_json::Value) -> Result<CaseReport, String> {
        let saved: Saved = serde_json::from_value(case.clone()).map_err(|e| e.to_string())?;
        let report = saved.graph.run(saved.seed);
        let violation = saved.graph.check(&report).err().map(|m| violation_of(&m));
        let tally = super::harness::Tally::of(&report.trace, 1);
        Ok(CaseReport {
            violation,
            trace: report.trace,
            held: Vec::new(),
            tally,
        })
    }

    fn trace_hash(self: std::sync::Arc<Self>, seed: u64) -> Result<u64, String> {
        Ok(ClusterGraphCase::generate(seed).run(seed).trace.hash())
    }
}
