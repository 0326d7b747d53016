//! Faults: the families a case draws from (swarm testing), the faults themselves as data,
//! how a fault picks its victim, and how it is injected into a running tree.
//!
//! A fault's `victim` number picks a live process of the tree (not its root) by rendezvous
//! hashing over tree paths, so the same number keeps picking the same process when the rest
//! of the tree changes: a failing case shrinks without re-aiming its faults.
//!
//! | family | fault | what it does |
//! | --- | --- | --- |
//! | `crash` | [`Fault::Crash`] | a worker exits by itself with a reason |
//! | `kill` | [`Fault::Kill`] | `exit(Pid, kill)` from outside |
//! | `signal` | [`Fault::Signal`] | an exit signal from a stranger |
//! | `storm` | [`Fault::Storm`] | a worker crashes as often as its supervisor allows (and once more) |
//! | `stop` | [`Fault::Stop`] | a graceful restart: `terminate_child` + `restart_child` of a static supervisor's child, or `stop` of a permanent server or supervisor (which its supervisor restarts) |
//! | `delay` | [`Delays`] | signals held up to a few milliseconds (FIFO per pair kept) |

use super::index::{with_index, TraceIndex};
use crate::process::{ExitReason, Node, Process};
use crate::rt::{Duration, SeededConfig};
use crate::server;
use crate::supervisor::{Restart, SupervisorRef};
use crate::term::{Pid, Term};
use crate::trace::{EventKind, FaultKind, SupervisorKind};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// A fault; see the [module](self) documentation for how `victim` picks a process. A tree
/// with no process to pick makes the fault a no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The process exits with `reason` by itself, at once (a panic, an error, ...).
    Crash {
        /// Which process.
        victim: u16,
        /// How it ends.
        reason: CrashReason,
    },
    /// `exit(Pid, kill)` from outside.
    Kill {
        /// Which process.
        victim: u16,
    },
    /// `exit(Pid, Reason)` from a process that is neither its parent nor linked to it.
    Signal {
        /// Which process.
        victim: u16,
        /// The signal's reason.
        reason: CrashReason,
    },
    /// The process and each replacement crash as often as its supervisor's intensity allows
    /// within one period, and once more if `over`.
    Storm {
        /// Which process.
        victim: u16,
        /// One crash more than the intensity allows.
        over: bool,
    },
    /// A graceful restart of a supervised child (a worker or a subtree), as an operator does
    /// it: what a correct tree recovers from, like a crash, but through the shutdown path
    /// (`terminate` runs).
    Stop {
        /// Which process.
        victim: u16,
        /// How it is stopped.
        how: StopHow,
    },
}

impl Fault {
    /// The fault's `victim` number, to set.
    ///
    /// ```
    /// use otpsim::sim::harness::Fault;
    /// let mut kill = Fault::Kill { victim: 7 };
    /// *kill.victim_mut() = 2;
    /// assert_eq!(kill, Fault::Kill { victim: 2 });
    /// ```
    pub fn victim_mut(&mut self) -> &mut u16 {
        match self {
            Fault::Crash { victim, .. }
            | Fault::Kill { victim }
            | Fault::Signal { victim, .. }
            | Fault::Storm { victim, .. }
            | Fault::Stop { victim, .. } => victim,
        }
    }
}

/// How a [`Fault::Stop`] restarts its victim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopHow {
    /// Its supervisor's `terminate_child`, then `restart_child` (a static supervisor's
    /// child): OTP's strategy plays no part (docs/behaviours.md items 53, 55).
    Cycle,
    /// `stop` with reason `normal` (`gen_server:stop/1`) of a permanent server or
    /// supervisor: it terminates as it would for its parent, and its supervisor restarts it
    /// by its strategy, counting the restart.
    Stop,
}
//
// Terminating a child without starting it again (or a dynamic child, which nothing
// restarts) is not a fault: it is the application's decision, which its model must know.
// Workloads do it as operations (the `tree` target's `terminate_child`).

/// An exit reason a fault uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashReason {
    /// A panic: `{panic, "injected"}`.
    Panic,
    /// An error: the atom `injected` (any reason but `normal`, `shutdown` and
    /// `{shutdown, _}` is one).
    Error,
    /// `normal`.
    Normal,
    /// `shutdown`.
    Shutdown,
    /// `{shutdown, injected}`.
    ShutdownWith,
}

impl CrashReason {
    /// The exit reason.
    pub fn exit_reason(self) -> ExitReason {
        match self {
            CrashReason::Panic => ExitReason::Panic("injected".into()),
            CrashReason::Error => ExitReason::error("injected"),
            CrashReason::Normal => ExitReason::Normal,
            CrashReason::Shutdown => ExitReason::Shutdown,
            CrashReason::ShutdownWith => ExitReason::ShutdownWith(Term::atom("injected")),
        }
    }
}

/// Message delays: `percent` of all signals are held up to `max_ms` (FIFO per
/// sender-receiver pair is kept; different senders interleave).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delays {
    /// How many signals in a hundred are delayed.
    pub percent: u8,
    /// The longest delay.
    pub max_ms: u16,
}

impl Delays {
    /// The simulator's fault settings for these delays.
    pub fn config(self) -> SeededConfig {
        SeededConfig {
            delay_probability: f64::from(self.percent.min(100)) / 100.0,
            max_delay: Duration::from_millis(u64::from(self.max_ms)),
            ..SeededConfig::default()
        }
    }
}

/// A family of faults, switched on per case (swarm testing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// [`Fault::Crash`].
    Crash,
    /// [`Fault::Kill`].
    Kill,
    /// [`Fault::Signal`].
    Signal,
    /// [`Fault::Storm`].
    Storm,
    /// [`Delays`].
    Delay,
    /// [`Fault::Stop`].
    Stop,
}

impl Family {
    /// The family of an injected fault as the trace records it (a seeded crash at a
    /// message is a crash; `terminate_child` and `restart_child` are a graceful stop).
    pub fn of(kind: &FaultKind) -> Family {
        match kind {
            FaultKind::Crash(_) | FaultKind::CrashAtMessage(_) => Family::Crash,
            FaultKind::Kill => Family::Kill,
            FaultKind::StrangerSignal(_) => Family::Signal,
            FaultKind::StormCrash { .. } => Family::Storm,
            FaultKind::Delay { .. } => Family::Delay,
            FaultKind::Stop(_) | FaultKind::RestartChild => Family::Stop,
        }
    }

    /// Every family.
    pub const ALL: [Family; 6] = [
        Family::Crash,
        Family::Kill,
        Family::Signal,
        Family::Storm,
        Family::Delay,
        Family::Stop,
    ];

    /// The family's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Family::Crash => "crash",
            Family::Kill => "kill",
            Family::Signal => "signal",
            Family::Storm => "storm",
            Family::Delay => "delay",
            Family::Stop => "stop",
        }
    }

    /// The family called `name`.
    pub fn parse(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

fn reason() -> impl Strategy<Value = CrashReason> {
    prop_oneof![
        3 => Just(CrashReason::Error),
        2 => Just(CrashReason::Panic),
        1 => Just(CrashReason::Normal),
        1 => Just(CrashReason::Shutdown),
        1 => Just(CrashReason::ShutdownWith),
    ]
}

/// Faults of the given families (none: no fault at all).
pub fn fault_strategy(families: &[Family]) -> Option<BoxedStrategy<Fault>> {
    let victim = || any::<u16>();
    let mut options: Vec<BoxedStrategy<Fault>> = Vec::new();
    for family in families {
        options.push(match family {
            Family::Crash => (victim(), reason())
                .prop_map(|(victim, reason)| Fault::Crash { victim, reason })
                .boxed(),
            Family::Kill => victim().prop_map(|victim| Fault::Kill { victim }).boxed(),
            Family::Signal => (victim(), reason())
                .prop_map(|(victim, reason)| Fault::Signal { victim, reason })
                .boxed(),
            Family::Storm => (victim(), any::<bool>())
                .prop_map(|(victim, over)| Fault::Storm { victim, over })
                .boxed(),
            Family::Stop => {
                let how = prop_oneof![Just(StopHow::Cycle), Just(StopHow::Stop)];
                (victim(), how)
                    .prop_map(|(victim, how)| Fault::Stop { victim, how })
                    .boxed()
            }
            Family::Delay => continue,
        });
    }
    (!options.is_empty()).then(|| proptest::strategy::Union::new(options).boxed())
}

/// Injects one fault into the tree under `root` (`None`: into any process of the node but
/// `p`), from the driver `p`.
pub(crate) async fn inject(fault: &Fault, root: Option<Pid>, p: &Process) {
    let node = p.node();
    // The processes under `root`, or (`None`) every process of the node but the injector.
    let scope = || match root {
        Some(root) => node.descendants(root),
        None => {
            let mut all = node.live_pids();
            all.retain(|pid| *pid != p.pid());
            all
        }
    };
    // `keep` runs with the node locked (it reads the index): it must not use the node.
    let pick = |victim: u16, keep: &dyn Fn(&TraceIndex, Pid) -> bool| {
        let candidates = scope();
        let candidates = with_index(node, |index| {
            candidates
                .into_iter()
                .filter(|pid| keep(index, *pid))
                .collect()
        });
        pick_victim(node, victim, candidates)
    };
    let any = |_: &TraceIndex, _: Pid| true;
    // A supervisor does not crash by itself (OTP's supervisor has no bug to crash of), nor
    // does a library process (a registry partition); what reaches them from outside are
    // kills and exit signals, which the other faults send.
    let worker = |index: &TraceIndex, pid: Pid| !index.is_library(pid);
    match *fault {
        Fault::Crash { victim, reason } => {
            if let Some(pid) = pick(victim, &worker) {
                let reason = reason.exit_reason();
                node.inject_exit(pid, reason.clone(), FaultKind::Crash(reason.to_term()));
            }
        }
        Fault::Kill { victim } => {
            if let Some(pid) = pick(victim, &any) {
                node.record(EventKind::Fault {
                    pid,
                    fault: FaultKind::Kill,
                });
                p.exit(pid, ExitReason::Kill);
            }
        }
        Fault::Signal { victim, reason } => {
            if let Some(pid) = pick(victim, &any) {
                let reason = reason.exit_reason();
                node.record(EventKind::Fault {
                    pid,
                    fault: FaultKind::StrangerSignal(reason.to_term()),
                });
                let stranger = node.spawn(move |q| async move { q.exit(pid, reason) });
                let _ = node.wait_exit(stranger).await;
            }
        }
        Fault::Storm { victim, over } => {
            if let Some(pid) = pick(victim, &worker) {
                storm(pid, over, p).await;
            }
        }
        Fault::Stop { victim, how } => {
            // Restarted by hand: children of static supervisors (`restart_child`), or
            // permanent servers and supervisors (`stop`, then their supervisor restarts
            // them); not library internals.
            let servers: std::collections::BTreeSet<Pid> = match how {
                StopHow::Stop => {
                    let all = scope().into_iter();
                    all.filter(|pid| node.is_server(*pid)).collect()
                }
                StopHow::Cycle => Default::default(),
            };
            let stoppable = |index: &TraceIndex, pid: Pid| {
                let Some((sup, _)) = index.supervisor_of(pid) else {
                    return false;
                };
                let static_child = index.supervisor(sup).is_some_and(|(k, _, _)| k.is_static());
                !index.is_internal(pid)
                    && match how {
                        StopHow::Cycle => static_child,
                        StopHow::Stop => {
                            servers.contains(&pid)
                                && index.restart_of(pid) == Some(Restart::Permanent)
                        }
                    }
            };
            if let Some(pid) = pick(victim, &stoppable) {
                stop(pid, how, p).await;
            }
        }
    }
}

/// A graceful stop of the supervised child `victim`.
async fn stop(victim: Pid, how: StopHow, p: &Process) {
    let node = p.node();
    let Some((sup, id)) = with_index(node, |index| index.supervisor_of(victim)) else {
        return;
    };
    let kind = with_index(node, |index| index.supervisor(sup)).map(|(kind, _, _)| kind);
    let fault = match how {
        StopHow::Cycle => FaultKind::RestartChild,
        StopHow::Stop => FaultKind::Stop(ExitReason::Normal.to_term()),
    };
    node.record(EventKind::Fault { pid: victim, fault });
    match how {
        StopHow::Stop => {
            let timeout = Some(Duration::from_secs(5));
            let _ = server::stop(p, victim, ExitReason::Normal, timeout).await;
        }
        StopHow::Cycle if kind.is_some_and(SupervisorKind::is_static) => {
            let sup = SupervisorRef::from_pid(sup);
            let _ = sup.terminate_child(p, &*id).await;
            let _ = sup.restart_child(p, &id).await;
        }
        StopHow::Cycle => {}
    }
}

/// How much likelier a fault hits a process that others watch (see [`pick_victim`]).
const WATCHED: f64 = 3.0;

/// The candidate a fault's `victim` number picks: the one whose name scores highest with it
/// (rendezvous hashing). Removing other candidates never changes the pick, so a case keeps
/// hitting the same process while shrinking removes the rest of the tree.
///
/// A process that a process other than its parent or its children monitors or is linked to
/// weighs [`WATCHED`] times more: its death is someone's business besides its supervisor's
/// (a registry's, a client's, a server's that tracks it), which is where the cleanup that
/// flaws hide in runs. A candidate is
/// named by its tree path, or (unnamed, like a dynamic supervisor's children) by its
/// parent's name and its place among its unnamed siblings.
fn pick_victim(node: &Node, victim: u16, candidates: Vec<Pid>) -> Option<Pid> {
    let mut unnamed: std::collections::BTreeMap<Option<Pid>, usize> = Default::default();
    let mut best: Option<(u64, String, Pid)> = None;
    for pid in candidates {
        let name = match node.path_of(pid) {
            Some(path) => path,
            None => {
                let parent = node.parent_of(pid);
                let k = unnamed.entry(parent).or_default();
                *k += 1;
                let parent_name = parent.and_then(|q| node.path_of(q));
                format!("{}/#{k}", parent_name.unwrap_or_else(|| "?".into()))
            }
        };
        let mut h = crate::hash::Fnv1a::default();
        h.write_bytes(&victim.to_le_bytes());
        h.write_bytes(name.as_bytes());
        let mut h = h.value();
        // Finish the mix, so that nearby names and numbers score far apart.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        // Weighted rendezvous hashing: the score is ln(u) / weight for u uniform in (0, 1],
        // mapped back to an integer in the same order.
        let weight = if node.is_watched(pid) { WATCHED } else { 1.0 };
        let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let h = ((u.ln() / weight + 64.0) * 1e17) as u64;
        if best
            .as_ref()
            .is_none_or(|(bh, bn, _)| (h, &name) > (*bh, bn))
        {
            best = Some((h, name, pid));
        }
    }
    best.map(|(_, _, pid)| pid)
}

/// Crashes `victim` (and each of its replacements) as many times as its supervisor's
/// intensity allows (`over`: once more), spread over one period.
async fn storm(victim: Pid, over: bool, p: &Process) {
    let node = p.node();
    let sup = node.parent_of(victim);
    let flags = sup.and_then(|sup| with_index(node, |index| index.supervisor(sup)));
    let (intensity, period) = flags.map_or((3, 5), |(_, i, p)| (i, p));
    let crashes = (intensity + u64::from(over)).clamp(1, 50);
    let gap = Duration::from_millis(period * 1000 / (crashes + 1));
    let path = node.path_of(victim);
    let library = with_index(node, TraceIndex::library);
    let mut current = Some(victim);
    for n in 0..crashes {
        if let Some(pid) = current {
            let fault = FaultKind::StormCrash {
                n: n + 1,
                of: crashes,
            };
            node.inject_exit(pid, ExitReason::error("storm"), fault);
        }
        p.sleep(gap).await;
        // The victim's replacement: the same tree path, or the newest child of its supervisor.
        current = match (&path, sup) {
            (Some(path), _) => node.find_path(path),
            (None, Some(sup)) => node
                .descendants(sup)
                .into_iter()
                .rev()
                .find(|pid| node.parent_of(*pid) == Some(sup) && !library.contains(pid)),
            (None, None) => None,
        };
    }
}
