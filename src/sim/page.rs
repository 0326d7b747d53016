//! A run as one self-contained HTML page (inline SVG and script, no network): the
//! supervision tree, a lane per process over the run's events (a restarted child is a new
//! bar in its lane), links, exit signals, `DOWN`s and held signals as arrows, injected faults
//! marked, the restart-intensity window of a supervisor that gave up, the violation
//! highlighted, and the [`why`]-chain. Clicking an event shows it and its causes.
//!
//! The page is [`Model`] (built here, from the trace alone) drawn by `page.js`.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::{page, Sim};
//! let report = Sim::new(0).run(|p| async move {
//!     let worker = p.spawn_link(|q| async move { q.recv().await; });
//!     otpsim::sim::label(p.node(), worker, "root/worker", false);
//!     p.trap_exit(true);
//!     p.exit(worker, otpsim::ExitReason::Kill);
//!     let _ = p.recv().await;
//! });
//! let model = page::Model::new("a kill", &report.trace, None);
//! assert_eq!(model.lanes.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["root/worker", "<0.1>"]);
//! let html = page::render(&model);
//! assert!(html.starts_with("<!DOCTYPE html>"));
//! assert!(!html.contains("<script src") && !html.contains("<link")); // nothing fetched
//! # }
//! ```

use super::invariants::Violation;
use super::why;
use crate::term::Pid;
use crate::trace::{EventKind, FaultKind, ReportContext, SupEvent, Trace};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the page draws.
#[derive(Clone, Debug, Serialize)]
pub struct Model {
    /// The page's title.
    pub title: String,
    /// One lane per process (per tree path: every incarnation of a child shares its lane),
    /// in tree order.
    pub lanes: Vec<Lane>,
    /// Each process's life, as a bar in its lane.
    pub bars: Vec<Bar>,
    /// Every event, in trace order.
    pub events: Vec<Item>,
    /// The restart-intensity window of each supervisor that gave up.
    pub windows: Vec<Window>,
    /// The why-chain (indices into `events`).
    pub why: Vec<usize>,
    /// The broken invariant, if any.
    pub violation: Option<Verdict>,
}

/// A lane.
#[derive(Clone, Debug, Serialize)]
pub struct Lane {
    /// The tree path, or `<0.N>` for a process without one.
    pub name: String,
    /// Whether it is a supervisor's lane.
    pub supervisor: bool,
    /// Its depth in the tree (0 for a root or a process without a path).
    pub depth: usize,
}

/// One process's life.
#[derive(Clone, Debug, Serialize)]
pub struct Bar {
    /// Its lane.
    pub lane: usize,
    /// Its pid.
    pub pid: String,
    /// The event of its spawn (or of its first appearance).
    pub from: usize,
    /// The event of its exit (none: alive at the end).
    pub to: Option<usize>,
    /// Its exit reason.
    pub reason: Option<String>,
}

/// One event, placed.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    /// Simulated time, microseconds.
    pub t: u64,
    /// Its kind, for the drawing: `spawn`, `exit`, `fault`, `delay`, `signal`, `down`,
    /// `link`, `monitor`, `sup`, `report`, `name`, `note` or `other`.
    pub kind: &'static str,
    /// The lane it is drawn in (none: not a process's event).
    pub lane: Option<usize>,
    /// For an arrow: the lane it comes from.
    pub from_lane: Option<usize>,
    /// Its timeline line.
    pub text: String,
    /// The events that caused it.
    pub causes: Vec<usize>,
    /// Whether it shows the violation.
    pub violation: bool,
}

/// A supervisor's restart-intensity window when it gave up.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    /// The supervisor's lane.
    pub lane: usize,
    /// The first event inside the window.
    pub from: usize,
    /// The give-up report.
    pub to: usize,
    /// The restarts it counted in the window.
    pub restarts: Vec<usize>,
    /// Its intensity and period (seconds).
    pub intensity: u64,
    /// The period, in seconds.
    pub period: u64,
}

/// The broken invariant.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Which.
    pub invariant: String,
    /// About what.
    pub subject: String,
    /// Why.
    pub message: String,
}

impl Model {
    /// The model of `trace`, failing with `violation` if given.
    pub fn new(title: &str, trace: &Trace, violation: Option<&Violation>) -> Model {
        let events = trace.events();
        let timeline = trace.timeline();
        let causes = trace.causes();
        let lanes = Lanes::of(trace);
        let lane = |pid: &Pid| Some(lanes.of_pid[pid]);
        let shows: Vec<usize> = violation.map(|v| v.events.to_vec()).unwrap_or_default();
        let mut items = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let (kind, at, from) = match &e.kind {
                EventKind::Spawn { pid, .. } => ("spawn", lane(pid), None),
                EventKind::Exit { pid, .. } => ("exit", lane(pid), None),
                EventKind::Fault {
                    pid,
                    fault: FaultKind::Delay { from, .. },
                } => ("delay", lane(pid), lane(from)),
                EventKind::Fault { pid, .. } => ("fault", lane(pid), None),
                EventKind::Signal { from, to, .. } => ("signal", lane(to), lane(from)),
                EventKind::Down {
                    watcher, target, ..
                } => ("down", lane(watcher), lane(target)),
                EventKind::Link { from, to } | EventKind::Unlink { from, to } => {
                    ("link", lane(to), lane(from))
                }
                EventKind::Monitor { watcher, target }
                | EventKind::Demonitor { watcher, target } => {
                    ("monitor", lane(target), lane(watcher))
                }
                EventKind::Supervision { sup, .. } => ("sup", lane(sup), None),
                EventKind::Report { supervisor, .. } => ("report", lane(supervisor), None),
                EventKind::Register { pid, .. }
                | EventKind::Unregister { pid, .. }
                | EventKind::RegistryEntry { pid, .. } => ("name", lane(pid), None),
                EventKind::Note { pid, .. } => ("note", lane(pid), None),
                EventKind::Undeliverable { from, to, .. } => ("fault", lane(from), lane(to)),
                EventKind::NodeDown { watcher, .. } | EventKind::NodeUp { watcher, .. } => {
                    ("down", lane(watcher), None)
                }
                EventKind::Label { pid, .. } | EventKind::Library { pid, .. } => {
                    ("other", lane(pid), None)
                }
                EventKind::Cluster(_)
                | EventKind::Dist(_)
                | EventKind::Line(_)
                | EventKind::LineTerm(..) => ("other", None, None),
            };
            items.push(Item {
                t: e.at_us,
                kind,
                lane: at,
                from_lane: from,
                text: timeline[i].trim_start().to_string(),
                causes: causes[i].clone(),
                violation: shows.contains(&i),
            });
        }
        Model {
            title: title.to_string(),
            bars: lanes.bars(trace),
            windows: windows(trace, &lanes),
            why: why::steps(trace, violation),
            violation: violation.map(|v| Verdict {
                invariant: v.invariant.to_string(),
                subject: v.subject.clone(),
                message: v.message.clone(),
            }),
            lanes: lanes.lanes,
            events: items,
        }
    }
}

/// The page of `model`: one HTML document, nothing fetched.
pub fn render(model: &Model) -> String {
    let json = serde_json::to_string(model).unwrap_or_else(|_| "null".into());
    // Inside a <script>, only `</` could end it early.
    let json = json.replace("</", "<\\/");
    let title = escape(&model.title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>\n{}</style>\n</head>\n<body>\n\
         <script id=\"model\" type=\"application/json\">{json}</script>\n\
         <script>\n{}</script>\n</body>\n</html>\n",
        include_str!("page.css"),
        include_str!("page.js"),
    )
}

/// Writes the page of `trace` (failing with `violation`, if given) to `path`.
pub fn write(
    path: &std::path::Path,
    title: &str,
    trace: &Trace,
    violation: Option<&Violation>,
) -> std::io::Result<()> {
    std::fs::write(path, render(&Model::new(title, trace, violation)))
}

/// HTML-escapes text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The lanes of a trace and which pid is drawn in which.
struct Lanes {
    lanes: Vec<Lane>,
    of_pid: BTreeMap<Pid, usize>,
}

impl Lanes {
    fn of(trace: &Trace) -> Lanes {
        // Each pid's last tree path (a label can be renamed), and every pid seen.
        let mut path: BTreeMap<Pid, (String, bool)> = BTreeMap::new();
        let mut pids: Vec<Pid> = Vec::new();
        let seen = |pid: Pid, pids: &mut Vec<Pid>| {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        };
        for e in trace.events() {
            if let EventKind::Label {
                pid,
                path: p,
                supervisor,
            } = &e.kind
            {
                path.insert(*pid, (p.clone(), *supervisor));
            }
            for pid in actors(&e.kind) {
                seen(pid, &mut pids);
            }
        }
        let name = |pid: &Pid| match path.get(pid) {
            Some((p, sup)) => (p.clone(), *sup),
            None => (pid.to_string(), false),
        };
        // Tree order: labelled lanes by path components, then the others by pid.
        let mut names: Vec<(String, bool)> = Vec::new();
        for pid in &pids {
            let (n, sup) = name(pid);
            match names.iter_mut().find(|(m, _)| *m == n) {
                Some(existing) => existing.1 |= sup,
                None => names.push((n, sup)),
            }
        }
        names.sort_by(|(a, _), (b, _)| {
            let key = |n: &str| {
                (
                    n.starts_with('<'),
                    n.split('/').map(str::to_string).collect::<Vec<_>>(),
                )
            };
            key(a).cmp(&key(b))
        });
        let lanes: Vec<Lane> = names
            .iter()
            .map(|(n, sup)| Lane {
                name: n.clone(),
                supervisor: *sup,
                depth: if n.starts_with('<') {
                    0
                } else {
                    n.matches('/').count()
                },
            })
            .collect();
        let of_pid = pids
            .iter()
            .map(|pid| {
                let n = name(pid).0;
                let lane = lanes.iter().position(|l| l.name == n).unwrap_or_default();
                (*pid, lane)
            })
            .collect();
        Lanes { lanes, of_pid }
    }

    /// Each pid's bar: from its spawn (or first event) to its exit.
    fn bars(&self, trace: &Trace) -> Vec<Bar> {
        let mut bars: Vec<Bar> = Vec::new();
        let mut open: BTreeMap<Pid, usize> = BTreeMap::new();
        for (i, e) in trace.events().iter().enumerate() {
            for pid in actors(&e.kind) {
                if !open.contains_key(&pid) && !bars.iter().any(|b| b.pid == pid.to_string()) {
                    open.insert(pid, bars.len());
                    bars.push(Bar {
                        lane: self.of_pid[&pid],
                        pid: pid.to_string(),
                        from: i,
                        to: None,
                        reason: None,
                    });
                }
            }
            if let EventKind::Exit { pid, reason } = &e.kind {
                if let Some(b) = open.remove(pid) {
                    bars[b].to = Some(i);
                    bars[b].reason = Some(reason.to_string());
                }
            }
        }
        bars
    }
}

/// The processes an event is about.
fn actors(kind: &EventKind) -> Vec<Pid> {
    match kind {
        EventKind::Spawn { pid, .. }
        | EventKind::Exit { pid, .. }
        | EventKind::Label { pid, .. }
        | EventKind::Library { pid, .. }
        | EventKind::Note { pid, .. }
        | EventKind::Register { pid, .. }
        | EventKind::Unregister { pid, .. }
        | EventKind::RegistryEntry { pid, .. } => vec![*pid],
        EventKind::Fault { pid, fault } => match fault {
            FaultKind::Delay { from, .. } => vec![*from, *pid],
            _ => vec![*pid],
        },
        EventKind::Link { from, to }
        | EventKind::Unlink { from, to }
        | EventKind::Undeliverable { from, to, .. }
        | EventKind::Signal { from, to, .. } => vec![*from, *to],
        EventKind::Monitor { watcher, target }
        | EventKind::Demonitor { watcher, target }
        | EventKind::Down {
            watcher, target, ..
        } => vec![*watcher, *target],
        EventKind::Supervision { sup, .. } => vec![*sup],
        EventKind::NodeDown { watcher, .. } | EventKind::NodeUp { watcher, .. } => vec![*watcher],
        EventKind::Report { supervisor, .. } => vec![*supervisor],
        EventKind::Cluster(_)
        | EventKind::Dist(_)
        | EventKind::Line(_)
        | EventKind::LineTerm(..) => Vec::new(),
    }
}

/// The restart-intensity windows of the supervisors that gave up.
fn windows(trace: &Trace, lanes: &Lanes) -> Vec<Window> {
    let events = trace.events();
    let mut flags: BTreeMap<Pid, (u64, u64)> = BTreeMap::new();
    let mut restarts: BTreeMap<Pid, Vec<usize>> = BTreeMap::new();
    let mut windows = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match &e.kind {
            EventKind::Supervision {
                sup,
                what: SupEvent::Init {
                    intensity, period, ..
                },
            } => {
                flags.insert(*sup, (*intensity, *period));
            }
            EventKind::Supervision {
                sup,
                what: SupEvent::Restart { .. },
            } => restarts.entry(*sup).or_default().push(i),
            EventKind::Report {
                supervisor,
                context: ReportContext::Shutdown,
                ..
            } => {
                let (intensity, period) = flags.get(supervisor).copied().unwrap_or((0, 0));
                let start = e.at_us.saturating_sub(period * 1_000_000);
                let from = events[..=i]
                    .iter()
                    .position(|x| x.at_us >= start)
                    .unwrap_or(i);
                let counted = restarts
                    .get(supervisor)
                    .map(|r| r.iter().copied().filter(|&r| r >= from).collect())
                    .unwrap_or_default();
                windows.push(Window {
                    lane: lanes.of_pid[supervisor],
                    from,
                    to: i,
                    restarts: counted,
                    intensity,
                    period,
                });
            }
            _ => {}
        }
    }
    windows
}
