//! The run's event record: events, their canonical text form, a stable hash, and the first
//! divergence between two runs.
//!
//! Every process-level event (spawn, exit, link, monitor, exit signal, `DOWN`, name
//! registration, injected fault) is recorded by the process core; upper layers (supervisors,
//! the harness) add [`EventKind::Line`]s in the oracle's text form. Processes are named by their
//! tree path once one is known ([`EventKind::Label`]), by `<0.N>` before.
//!
//! ```
//! use otpsim::trace::{Trace, EventKind};
//! use otpsim::term::{Pid, Term};
//! let mut t = Trace::default();
//! let p = Pid::from_raw(1);
//! t.push(0, EventKind::Label { pid: p, path: "root/a".into(), supervisor: false });
//! t.push(1500, EventKind::Exit { pid: p, reason: Term::atom("boom") });
//! assert_eq!(t.lines(), ["label <0.1> root/a", "exit root/a reason=boom"]);
//! assert_eq!(t.timeline()[1], "     1.500ms  exit root/a reason=boom");
//! ```
//!
//! Every event kind and its one rendering sit together, so that a kind's text is defined where
//! the kind is (hence the file's length).

mod causes;
pub mod vocab;

pub use vocab::{
    ClusterEvent, DistEvent, FaultKind, HandoffPhase, NameChange, ReportContext, SupervisorKind,
};

use crate::hash::Fnv1a;
use crate::term::{Pid, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use vocab::{Restart, Shutdown};

/// One recorded event, stamped with the simulated time in microseconds since the node started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Microseconds since the node started.
    pub at_us: u64,
    /// What happened.
    pub kind: EventKind,
}

/// How a spawned process is tied to its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpawnTie {
    /// `spawn`: no tie.
    None,
    /// `spawn_link`.
    Link,
    /// `spawn_monitor`.
    Monitor,
}

/// What an exit signal did when it reached its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalOutcome {
    /// The target traps exits: the signal became an `EXIT` message.
    Trapped,
    /// The target died of it.
    Killed,
    /// A `normal` signal to a process that does not trap exits.
    Ignored,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A process was created by `parent` (none for a process started from outside).
    Spawn {
        /// The new process.
        pid: Pid,
        /// Who spawned it.
        parent: Option<Pid>,
        /// Link or monitor created atomically with the spawn.
        tie: SpawnTie,
    },
    /// From now on `pid` is named `path` in the trace.
    Label {
        /// The process.
        pid: Pid,
        /// Its path in the supervision tree, e.g. `root/sub/a`.
        path: String,
        /// Whether it is a supervisor (its exit prints as `sup_exit`).
        supervisor: bool,
    },
    /// A process exited.
    Exit {
        /// The process.
        pid: Pid,
        /// Its exit reason.
        reason: Term,
    },
    /// A link was created.
    Link {
        /// The process that called `link`.
        from: Pid,
        /// The other end.
        to: Pid,
    },
    /// A link was removed by `unlink`.
    Unlink {
        /// The process that called `unlink`.
        from: Pid,
        /// The other end.
        to: Pid,
    },
    /// A monitor was created.
    Monitor {
        /// The monitoring process.
        watcher: Pid,
        /// The monitored process.
        target: Pid,
    },
    /// A monitor was removed with `demonitor`.
    Demonitor {
        /// The monitoring process.
        watcher: Pid,
        /// The monitored process.
        target: Pid,
    },
    /// An exit signal reached a live process.
    Signal {
        /// The sender (for a link, the process that died).
        from: Pid,
        /// The target.
        to: Pid,
        /// The signal's reason.
        reason: Term,
        /// What it did.
        outcome: SignalOutcome,
    },
    /// A monitor's `DOWN` message was delivered.
    Down {
        /// The monitoring process.
        watcher: Pid,
        /// The process that went down.
        target: Pid,
        /// Its exit reason (`noproc` if it was already dead).
        reason: Term,
    },
    /// `{nodedown, Node}` reached a process that monitors the node.
    NodeDown {
        /// The process.
        watcher: Pid,
        /// The node's index.
        node: u16,
    },
    /// `{nodeup, Node}` reached a process subscribed to nodes' connections.
    NodeUp {
        /// The process.
        watcher: Pid,
        /// The node's index.
        node: u16,
    },
    /// A local name was registered.
    Register {
        /// The name.
        name: String,
        /// Its owner.
        pid: Pid,
    },
    /// A local name was released (explicitly or by the owner's death).
    Unregister {
        /// The name.
        name: String,
        /// Its former owner.
        pid: Pid,
    },
    /// A fault was injected by a simulator.
    Fault {
        /// The process it hit.
        pid: Pid,
        /// What it was.
        fault: FaultKind,
    },
    /// The process runs library code (an OTP or Elixir process such as `Registry.Partition`)
    /// that does not fail by itself: a simulator injects no crash of its own code into it,
    /// only what reaches it from outside (kills, exit signals).
    Library {
        /// The process.
        pid: Pid,
        /// What it is.
        what: String,
    },
    /// A note a process wrote into the trace.
    Note {
        /// The writer.
        pid: Pid,
        /// The text.
        text: String,
    },
    /// A supervisor's error report (OTP's `{supervisor, Context}` log events, docs/behaviours.md item 106).
    Report {
        /// The supervisor.
        supervisor: Pid,
        /// What the report is about.
        context: ReportContext,
        /// The child (or children) it is about.
        offender: Offender,
        /// The reason.
        reason: Term,
    },
    /// A supervisor's bookkeeping, recorded for the harness's invariant checks (not part of
    /// the oracle's projection).
    Supervision {
        /// The supervisor.
        sup: Pid,
        /// What it did.
        what: SupEvent,
    },
    /// A registry entry appeared or went away (for the registry consistency invariant).
    RegistryEntry {
        /// The registry (its first partition's pid names it).
        registry: Pid,
        /// Whether the registry has unique keys.
        unique: bool,
        /// The key, in its `Debug` form.
        key: String,
        /// The owner of the entry.
        pid: Pid,
        /// Registered (`true`) or removed (`false`).
        added: bool,
    },
    /// Something that happened to a cluster's nodes or network (`sim::cluster`).
    Cluster(ClusterEvent),
    /// What a distributed supervisor or registry did with a name.
    Dist(DistEvent),
    /// A signal for another node could not be sent (a message type without a codec,
    /// `dist::CodecError`): it was dropped.
    Undeliverable {
        /// The sender.
        from: Pid,
        /// The addressee.
        to: Pid,
        /// Why.
        why: String,
    },
    /// A line in the oracle's text form, written by an upper layer (supervisor, harness).
    Line(String),
    /// A line in the oracle's text form that ends with a term, rendered with the pid names
    /// known at that point (`result start_child root a -> {ok,<root/a>}`).
    LineTerm(String, Term),
}

/// A supervisor's bookkeeping, as the harness's invariants need it: its flags, its children's
/// specs, and the moments OTP's rules apply (an exit taken, a restart counted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupEvent {
    /// The supervisor initialised.
    Init {
        /// A supervisor with its strategy, or a DynamicSupervisor.
        kind: SupervisorKind,
        /// Restarts allowed in a period.
        intensity: u64,
        /// The period, in seconds.
        period: u64,
    },
    /// A child process started (first start or restart).
    Started {
        /// The child.
        pid: Pid,
        /// Its id (a dynamic child's template id).
        id: Arc<str>,
        /// Its restart type.
        restart: Restart,
        /// How it is stopped.
        shutdown: Shutdown,
        /// Its place in the supervisor's start order (larger: later); 0 for dynamic children.
        order: u64,
    },
    /// A child's start function returned `ignore` (first start, restart or API start): the
    /// child has no process (docs/behaviours.md items 11, 39).
    Ignored {
        /// Its id.
        id: Arc<str>,
        /// Its restart type (a temporary child that is ignored is dropped).
        restart: Restart,
        /// Its place in the supervisor's start order.
        order: u64,
    },
    /// The supervisor took a child's `EXIT` (OTP's `restart_child/3`).
    Exited {
        /// The child.
        pid: Pid,
        /// Its exit reason.
        reason: Term,
    },
    /// The supervisor counted a restart of the child last known as `pid` in its window
    /// (OTP's `add_restart`): after an exit, or when retrying a failed restart.
    Restart {
        /// The child's last pid.
        pid: Option<Pid>,
        /// Its id.
        id: Arc<str>,
    },
    /// `terminate_child` removed a child whose failed restart was being retried: the retry
    /// is dropped (docs/behaviours.md item 40; Elixir's `DynamicSupervisor` the same).
    RetryDropped {
        /// The child's last pid.
        pid: Option<Pid>,
        /// Its id.
        id: Arc<str>,
    },
    /// The supervisor is terminating, about to stop its children.
    Stopping,
}

/// Whom a supervisor report is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Offender {
    /// One child: its pid if it had one, its id unless it is a dynamic child.
    Child {
        /// The child's pid (the last one, for a child whose restart failed).
        pid: Option<Pid>,
        /// The child's id.
        id: Option<String>,
    },
    /// This many dynamic children that stopped with the same unexpected reason.
    Children(u64),
}

/// A run's events in the order they happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    events: Vec<Event>,
}

/// The first place where two traces differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first differing event.
    pub index: usize,
    /// That event in the first trace, as a timeline line (`None`: the trace ended).
    pub left: Option<String>,
    /// That event in the second trace.
    pub right: Option<String>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "<end of trace>".into());
        write!(
            f,
            "traces diverge at event {}:\n  first run:  {}\n  second run: {}",
            self.index,
            show(&self.left),
            show(&self.right)
        )
    }
}

impl Trace {
    /// Appends an event.
    pub fn push(&mut self, at_us: u64, kind: EventKind) {
        self.events.push(Event { at_us, kind });
    }

    /// The events.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The first `n` events.
    pub fn prefix(&self, n: usize) -> Trace {
        Trace {
            events: self.events[..n.min(self.events.len())].to_vec(),
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The canonical text form, one line per event, without times.
    pub fn lines(&self) -> Vec<String> {
        self.render(|_, line| line)
    }

    /// The canonical text form prefixed with each event's time in milliseconds.
    pub fn timeline(&self) -> Vec<String> {
        self.render(|at_us, line| format!("{:>10.3}ms  {line}", at_us as f64 / 1000.0))
    }

    /// Only the [`EventKind::Line`]s and the exits of labelled processes: the projection that
    /// is compared with the OTP oracle's trace.
    pub fn oracle_lines(&self) -> Vec<String> {
        self.oracle_lines_known(|_| true)
    }

    /// Like [`oracle_lines`](Trace::oracle_lines), knowing only the paths `known` accepts:
    /// the oracle names the processes of its scenario's tree and prints every other pid (a
    /// registry's partitions, say) as `<pid>`.
    pub fn oracle_lines_known(&self, known: impl Fn(&str) -> bool) -> Vec<String> {
        let mut names = Names {
            oracle: true,
            ..Names::default()
        };
        let mut out = Vec::new();
        for e in &self.events {
            if matches!(&e.kind, EventKind::Label { path, .. } if !known(path)) {
                continue;
            }
            let keep = match &e.kind {
                EventKind::Line(_) | EventKind::LineTerm(..) | EventKind::Report { .. } => true,
                EventKind::Exit { pid, .. } => names.labels.contains_key(pid),
                _ => false,
            };
            let line = names.line(&e.kind);
            if keep {
                out.push(line);
            }
        }
        out
    }

    /// A stable 64-bit hash of the times and canonical lines (FNV-1a; the same on every
    /// platform and toolchain, so it can be stored in corpus files).
    pub fn hash(&self) -> u64 {
        let mut h = Fnv1a::default();
        let mut names = Names::default();
        for e in &self.events {
            h.write_bytes(&e.at_us.to_le_bytes());
            h.write_bytes(names.line(&e.kind).as_bytes());
            h.write_bytes(b"\n");
        }
        h.value()
    }

    /// The first event at which `self` and `other` differ (time or content), if any.
    pub fn first_divergence(&self, other: &Trace) -> Option<Divergence> {
        let (a, b) = (self.timeline(), other.timeline());
        let index = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .or_else(|| (a.len() != b.len()).then_some(a.len().min(b.len())))?;
        Some(Divergence {
            index,
            left: a.get(index).cloned(),
            right: b.get(index).cloned(),
        })
    }

    fn render(&self, mut f: impl FnMut(u64, String) -> String) -> Vec<String> {
        let mut names = Names::default();
        self.events
            .iter()
            .map(|e| f(e.at_us, names.line(&e.kind)))
            .collect()
    }
}

/// The path labels seen so far while rendering.
#[derive(Default)]
struct Names {
    labels: BTreeMap<Pid, (String, bool)>,
    /// Print unknown pids as the oracle does (`<pid>`) instead of `<0.N>`.
    oracle: bool,
}

impl Names {
    fn name(&self, pid: Pid) -> String {
        match self.labels.get(&pid) {
            Some((path, _)) => path.clone(),
            None if self.oracle => "<pid>".into(),
            None => pid.to_string(),
        }
    }

    fn term(&self, t: &Term) -> String {
        t.canonical(&|p| match self.labels.get(&p) {
            Some((path, _)) => Some(path.clone()),
            None => self.oracle.then(|| "pid".into()),
        })
    }

    fn line(&mut self, kind: &EventKind) -> String {
        let mut s = String::new();
        let n = |p: &Pid| self.name(*p);
        let _ = match kind {
            EventKind::Spawn { pid, parent, tie } => {
                let verb = match tie {
                    SpawnTie::None => "spawn",
                    SpawnTie::Link => "spawn_link",
                    SpawnTie::Monitor => "spawn_monitor",
                };
                match parent {
                    Some(parent) => write!(s, "{verb} {} parent={}", n(pid), n(parent)),
                    None => write!(s, "{verb} {}", n(pid)),
                }
            }
            EventKind::Label {
                pid,
                path,
                supervisor,
            } => {
                let line = format!("label {} {path}", n(pid));
                self.labels.insert(*pid, (path.clone(), *supervisor));
                return line;
            }
            EventKind::Exit { pid, reason } => {
                let verb = match self.labels.get(pid) {
                    Some((_, true)) => "sup_exit",
                    _ => "exit",
                };
                write!(s, "{verb} {} reason={}", n(pid), self.term(reason))
            }
            EventKind::Link { from, to } => write!(s, "link {} {}", n(from), n(to)),
            EventKind::Unlink { from, to } => write!(s, "unlink {} {}", n(from), n(to)),
            EventKind::Monitor { watcher, target } => {
                write!(s, "monitor {} {}", n(watcher), n(target))
            }
            EventKind::Demonitor { watcher, target } => {
                write!(s, "demonitor {} {}", n(watcher), n(target))
            }
            EventKind::Signal {
                from,
                to,
                reason,
                outcome,
            } => {
                let outcome = match outcome {
                    SignalOutcome::Trapped => "trapped",
                    SignalOutcome::Killed => "killed",
                    SignalOutcome::Ignored => "ignored",
                };
                write!(
                    s,
                    "signal {} -> {} reason={} {outcome}",
                    n(from),
                    n(to),
                    self.term(reason)
                )
            }
            EventKind::NodeDown { watcher, node } => write!(s, "nodedown {} n{node}", n(watcher)),
            EventKind::NodeUp { watcher, node } => write!(s, "nodeup {} n{node}", n(watcher)),
            EventKind::Down {
                watcher,
                target,
                reason,
            } => write!(
                s,
                "down {} of {} reason={}",
                n(watcher),
                n(target),
                self.term(reason)
            ),
            EventKind::Register { name, pid } => write!(s, "register {name} {}", n(pid)),
            EventKind::Unregister { name, pid } => write!(s, "unregister {name} {}", n(pid)),
            EventKind::Fault { pid, fault } => write!(s, "fault {} {fault}", n(pid)),
            EventKind::Library { pid, what } => write!(s, "library {} {what}", n(pid)),
            EventKind::Note { pid, text } => write!(s, "note {} {text}", n(pid)),
            EventKind::Report {
                supervisor,
                context,
                offender,
                reason,
            } => {
                // The oracle names the offender by its path; a child without a known path
                // is named by its supervisor's path and its id.
                let offender = match offender {
                    Offender::Children(count) => format!("{count}_children"),
                    Offender::Child { pid, id } => {
                        match (pid.filter(|p| self.labels.contains_key(p)), id) {
                            (Some(pid), _) => n(&pid),
                            (None, Some(id)) => {
                                format!("{}/{}", n(supervisor), Term::atom(id.clone()))
                            }
                            (None, None) => pid.map_or_else(|| "undefined".into(), |p| n(&p)),
                        }
                    }
                };
                write!(
                    s,
                    "report {} context={context} offender={offender} reason={}",
                    n(supervisor),
                    self.term(reason)
                )
            }
            EventKind::Supervision { sup, what } => {
                let _ = write!(s, "sup {} ", n(sup));
                match what {
                    SupEvent::Init {
                        kind,
                        intensity,
                        period,
                    } => write!(s, "init {kind} intensity={intensity} period={period}"),
                    SupEvent::Started {
                        pid,
                        id,
                        restart,
                        shutdown,
                        order,
                    } => write!(
                        s,
                        "started {} id={id} restart={restart} shutdown={shutdown} order={order}",
                        n(pid)
                    ),
                    SupEvent::Ignored { id, restart, order } => {
                        write!(s, "ignored id={id} restart={restart} order={order}")
                    }
                    SupEvent::Exited { pid, reason } => {
                        write!(s, "exited {} reason={}", n(pid), self.term(reason))
                    }
                    SupEvent::Restart { pid, id } => match pid {
                        Some(pid) => write!(s, "restart {} id={id}", n(pid)),
                        None => write!(s, "restart id={id}"),
                    },
                    SupEvent::RetryDropped { pid, id } => match pid {
                        Some(pid) => write!(s, "retry dropped {} id={id}", n(pid)),
                        None => write!(s, "retry dropped id={id}"),
                    },
                    SupEvent::Stopping => write!(s, "stopping"),
                }
            }
            EventKind::RegistryEntry {
                registry,
                unique,
                key,
                pid,
                added,
            } => write!(
                s,
                "registry {} {} key={key} {}",
                n(registry),
                if *added { "register" } else { "unregister" },
                n(pid)
            )
            .and(if *unique {
                Ok(())
            } else {
                s.write_str(" duplicate")
            }),
            EventKind::Line(line) => s.write_str(line),
            EventKind::Cluster(event) => write!(s, "{event}"),
            EventKind::Dist(event) => s.write_str(&event.render(&n)),
            EventKind::Undeliverable { from, to, why } => {
                write!(s, "undeliverable {} -> {}: {why}", n(from), n(to))
            }
            EventKind::LineTerm(prefix, term) => write!(s, "{prefix}{}", self.term(term)),
        };
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(reason: &'static str) -> Trace {
        let mut t = Trace::default();
        let (a, b) = (Pid::from_raw(1), Pid::from_raw(2));
        t.push(
            0,
            EventKind::Spawn {
                pid: b,
                parent: Some(a),
                tie: SpawnTie::Link,
            },
        );
        t.push(
            10,
            EventKind::Label {
                pid: a,
                path: "root".into(),
                supervisor: true,
            },
        );
        t.push(
            20,
            EventKind::Exit {
                pid: a,
                reason: Term::atom(reason),
            },
        );
        t
    }

    #[test]
    fn lines_name_processes_by_their_latest_label() {
        assert_eq!(
            sample("shutdown").lines(),
            [
                "spawn_link <0.2> parent=<0.1>",
                "label <0.1> root",
                "sup_exit root reason=shutdown"
            ]
        );
        assert_eq!(
            sample("shutdown").oracle_lines(),
            ["sup_exit root reason=shutdown"]
        );
    }

    /// Every kind of event the supervision vocabulary renders, after `sample`.
    fn vocabulary() -> Trace {
        let mut t = sample("shutdown");
        let (sup, child) = (Pid::from_raw(1), Pid::from_raw(2));
        let kind = SupervisorKind::Supervisor(vocab::Strategy::RestForOne);
        let events = [
            EventKind::Supervision {
                sup,
                what: SupEvent::Init {
                    kind,
                    intensity: 3,
                    period: 5,
                },
            },
            EventKind::Supervision {
                sup,
                what: SupEvent::Started {
                    pid: child,
                    id: "a".into(),
                    restart: Restart::Transient,
                    shutdown: Shutdown::Timeout(500),
                    order: 2,
                },
            },
            EventKind::Fault {
                pid: child,
                fault: FaultKind::Delay {
                    from: sup,
                    delay: std::time::Duration::from_micros(1500),
                },
            },
            EventKind::Fault {
                pid: child,
                fault: FaultKind::Crash(Term::tuple([
                    Term::atom("panic"),
                    Term::Str("injected".into()),
                ])),
            },
            EventKind::Report {
                supervisor: sup,
                context: ReportContext::ShutdownError,
                offender: Offender::Child {
                    pid: Some(child),
                    id: Some("a".into()),
                },
                reason: Term::atom("killed"),
            },
        ];
        for (i, e) in events.into_iter().enumerate() {
            t.push(100 + i as u64, e);
        }
        t
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        // The values are pinned: corpus files store trace hashes, so they must never drift.
        assert_eq!(Trace::default().hash(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(
            format!("{:016x}", sample("shutdown").hash()),
            "9c409363056f55d8"
        );
        assert_eq!(format!("{:016x}", vocabulary().hash()), "7dc4efbf7f1fc717");
        assert_ne!(sample("shutdown").hash(), sample("normal").hash());
        assert_eq!(
            vocabulary().lines()[3..],
            [
                "sup root init rest_for_one intensity=3 period=5",
                "sup root started <0.2> id=a restart=transient shutdown=500 order=2",
                "fault <0.2> delay from <0.1> 1.500ms",
                "fault <0.2> crash {panic,\"injected\"}",
                "report root context=shutdown_error offender=root/a reason=killed",
            ]
        );
    }

    #[test]
    fn first_divergence_names_the_event() {
        let d = sample("shutdown")
            .first_divergence(&sample("normal"))
            .unwrap();
        assert_eq!(d.index, 2);
        assert_eq!(
            d.left.unwrap().trim(),
            "0.020ms  sup_exit root reason=shutdown"
        );
        let mut longer = sample("shutdown");
        longer.push(30, EventKind::Line("x".into()));
        let d = sample("shutdown").first_divergence(&longer).unwrap();
        assert_eq!((d.index, d.left), (3, None));
        assert!(sample("normal")
            .first_divergence(&sample("normal"))
            .is_none());
    }
}
