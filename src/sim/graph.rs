//! Randomly wired process graphs: links, monitors, trapping and non-trapping processes,
//! messages passed along, processes exiting on their own and killed from outside.
//!
//! A [`GraphCase`] is plain data generated from a seed; its [`root`](GraphCase::root) body
//! builds the graph and drives it. It exercises every rule of the process core at once, which
//! makes it the workload of the determinism check.
//!
//! ```
//! use otpsim::sim::{graph::GraphCase, Sim};
//! let case = GraphCase::generate(11);
//! # // Natively the clock is real: runs take seconds and no two are alike.
//! # #[cfg(madsim)] {
//! let report = Sim::new(11).check_determinism(case.root()).expect("deterministic");
//! assert!(report.trace.len() > 10);
//! # }
//! ```

use crate::process::{ExitReason, Msg, Process};
use crate::rt::Duration;
use crate::term::Pid;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// How a process of the graph ends, or the reason of an exit signal sent to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    /// `normal`.
    Normal,
    /// `shutdown`.
    Shutdown,
    /// `boom` (an error).
    Boom,
    /// `kill`.
    Kill,
    /// A panic.
    Panic,
}

impl Ending {
    fn reason(self) -> ExitReason {
        match self {
            Ending::Normal => ExitReason::Normal,
            Ending::Shutdown => ExitReason::Shutdown,
            Ending::Boom | Ending::Panic => ExitReason::error("boom"),
            Ending::Kill => ExitReason::Kill,
        }
    }
}

/// One process of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vertex {
    /// Whether it traps exits.
    pub trap_exit: bool,
    /// Earlier processes it links to when it starts.
    pub links: Vec<usize>,
    /// Earlier processes it monitors when it starts.
    pub monitors: Vec<usize>,
    /// Earlier processes it passes messages on to.
    pub forward: Vec<usize>,
    /// Exits by itself this long after starting, if set.
    pub lifetime_ms: Option<u64>,
    /// How it exits by itself.
    pub ending: Ending,
}

/// What the root does to the graph at a given time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `exit(P, Reason)` from the root.
    Exit(usize, Ending),
    /// Send a message that hops along `forward` edges this many times.
    Send(usize, u32),
    /// The root links to the process.
    Link(usize),
    /// The root unlinks from the process.
    Unlink(usize),
    /// The root monitors the process.
    Monitor(usize),
}

/// A generated graph and the root's timed actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphCase {
    /// The processes, spawned in order.
    pub vertices: Vec<Vertex>,
    /// `(at_ms, action)` in time order.
    pub actions: Vec<(u64, Action)>,
}

impl GraphCase {
    /// The graph for `seed`: 3 to 16 processes and up to 20 actions over 2 simulated seconds.
    pub fn generate(seed: u64) -> GraphCase {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut below = |n: u64| rng.next_u64() % n.max(1);
        let n = 3 + below(14) as usize;
        let mut vertices = Vec::with_capacity(n);
        for i in 0..n {
            let mut pick = |count: u64| -> Vec<usize> {
                (0..count)
                    .filter(|_| i > 0)
                    .map(|_| below(i as u64) as usize)
                    .collect()
            };
            let (links, monitors, forward) = (pick(2), pick(2), pick(2));
            vertices.push(Vertex {
                trap_exit: below(2) == 0,
                links,
                monitors,
                forward,
                lifetime_ms: (below(3) == 0).then(|| 1 + below(1500)),
                ending: ending(below(5)),
            });
        }
        let mut actions: Vec<(u64, Action)> = (0..below(21))
            .map(|_| {
                let at = 1 + below(2000);
                let target = below(n as u64) as usize;
                let action = match below(5) {
                    0 => Action::Exit(target, ending(below(4))),
                    1 => Action::Send(target, below(6) as u32),
                    2 => Action::Link(target),
                    3 => Action::Unlink(target),
                    _ => Action::Monitor(target),
                };
                (at, action)
            })
            .collect();
        actions.sort_by_key(|(at, _)| *at);
        GraphCase { vertices, actions }
    }

    /// The root process's body: spawn the graph, perform the actions, wait a second, exit.
    pub fn root(&self) -> impl FnOnce(Process) -> RootFuture + Clone + Send + 'static {
        let case = self.clone();
        move |p| Box::pin(run_root(case, p))
    }
}

/// The future of a graph's root process.
pub type RootFuture = std::pin::Pin<Box<dyn Future<Output = ExitReason> + Send>>;

fn ending(k: u64) -> Ending {
    [
        Ending::Normal,
        Ending::Shutdown,
        Ending::Boom,
        Ending::Kill,
        Ending::Panic,
    ][k as usize % 5]
}

async fn run_root(case: GraphCase, p: Process) -> ExitReason {
    p.trap_exit(true);
    let mut pids: Vec<Pid> = Vec::with_capacity(case.vertices.len());
    for v in case.vertices {
        let earlier = |ix: &[usize]| ix.iter().map(|i| pids[*i]).collect::<Vec<_>>();
        let (links, monitors, forward) =
            (earlier(&v.links), earlier(&v.monitors), earlier(&v.forward));
        let pid = p.spawn(move |w| {
            vertex(
                w,
                v.trap_exit,
                links,
                monitors,
                forward,
                v.lifetime_ms,
                v.ending,
            )
        });
        pids.push(pid);
    }
    let mut now = 0;
    for (at, action) in case.actions {
        p.sleep(Duration::from_millis(at - now)).await;
        now = at;
        match action {
            Action::Exit(i, ending) => p.exit(pids[i], ending.reason()),
            Action::Send(i, hops) => p.send(pids[i], Hop(hops)),
            Action::Link(i) => {
                let _ = p.link(pids[i]);
            }
            Action::Unlink(i) => p.unlink(pids[i]),
            Action::Monitor(i) => {
                p.monitor(pids[i]);
            }
        }
    }
    p.sleep(Duration::from_secs(1)).await;
    // Drain what the graph told the root, so its mailbox is part of the record.
    while let Some(msg) = p.recv_timeout(Duration::ZERO).await {
        p.note(format!("root got {msg:?}"));
    }
    ExitReason::Normal
}

/// A message that is passed on `hops` more times.
struct Hop(u32);

async fn vertex(
    w: Process,
    trap_exit: bool,
    links: Vec<Pid>,
    monitors: Vec<Pid>,
    forward: Vec<Pid>,
    lifetime_ms: Option<u64>,
    ending: Ending,
) -> ExitReason {
    w.trap_exit(trap_exit);
    for to in links {
        if w.link(to).is_err() {
            w.note(format!("link to {to} failed: noproc"));
        }
    }
    for target in monitors {
        w.monitor(target);
    }
    let life = Duration::from_millis(lifetime_ms.unwrap_or(10_000));
    let deadline = w.now() + life;
    let mut handled = 0u32;
    loop {
        let left = deadline.saturating_duration_since(w.now());
        let Some(msg) = w.recv_timeout(left).await else {
            break;
        };
        handled += 1;
        match msg {
            Msg::User(_) => {
                if let Ok(Hop(hops)) = msg.downcast::<Hop>() {
                    if hops > 0 && !forward.is_empty() {
                        let next = forward[(hops as usize + handled as usize) % forward.len()];
                        w.send(next, Hop(hops - 1));
                    }
                }
            }
            Msg::Exit { from, reason } => w.note(format!("trapped exit of {from}: {reason}")),
            Msg::Down { pid, reason, .. } => w.note(format!("{pid} went down: {reason}")),
            Msg::NodeDown { .. } | Msg::NodeUp { .. } => {} // a graph is one node
        }
    }
    if ending == Ending::Panic {
        panic!("vertex {} gives up after {handled} messages", w.pid());
    }
    if ending == Ending::Kill {
        w.exit(w.pid(), ExitReason::Kill);
        w.sleep(Duration::from_secs(1)).await;
    }
    ending.reason()
}
