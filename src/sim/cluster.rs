//! Several nodes in one simulation: a cluster of otpsim nodes whose processes link, monitor
//! and message each other across nodes with Erlang's distribution semantics, over a simulated
//! switch that a scenario can partition, and nodes it can crash and restart.
//!
//! What holds (docs/architecture.md, "Across nodes"):
//!
//! * each pair of processes keeps its order across nodes;
//! * signals are lost only when a connection goes down;
//! * a lost connection fires `noconnection` at both ends of every link across it (a process
//!   that does not trap exits dies of it) and `DOWN noconnection` for every monitor;
//! * a link or monitor to a process of an unreachable node gets `noconnection`, to one of an
//!   earlier incarnation of a restarted node `noproc`;
//! * a send to a node that is not connected connects it (Erlang's `dist_auto_connect`), unless
//!   a partition separates the two;
//! * a partition is silent: the connection is declared down after `net_ticktime`; a crash
//!   is seen at once (the peer's sockets close), a silent crash after `net_ticktime`.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::cluster::ClusterSim;
//! use otpsim::{ExitReason, Msg};
//! let report = ClusterSim::new(1).nodes(2).run(|ctl| async move {
//!     let (n1, n2) = (ctl.node(1), ctl.node(2));
//!     let target = n2.spawn(|q| async move { q.recv().await; });
//!     n1.spawn(move |p| async move {
//!         p.trap_exit(true);
//!         p.link(target).unwrap();
//!         let _ = p.recv().await; // the EXIT of the crash
//!     });
//!     ctl.sleep(otpsim::rt::Duration::from_millis(10)).await;
//!     ctl.crash(2);
//!     ctl.sleep(otpsim::rt::Duration::from_millis(10)).await;
//! });
//! let lines = report.trace.lines();
//! assert!(lines.iter().any(|l| l == "signal <2.1> -> <1.1> reason=noconnection trapped"));
//! # }
//! ```
//!
//! The cluster's state (nodes, incarnations, connections, partitions, the switch's queues) sits
//! behind one lock, as a node's does, and every operation on it is here, so that what changes under
//! it is decided in one place (hence its length).

use crate::process::{Carrier, Halt, Node, NodeConfig, NodeDownReason, Signal};
use crate::rt::{self, Duration, Instant};
use crate::term::Pid;
use crate::trace::{ClusterEvent, Event, EventKind, Trace};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// Settings of a simulated cluster run.
#[derive(Clone, Debug)]
pub struct ClusterSim {
    /// The seed: madsim's scheduling and the switch's latencies.
    pub seed: u64,
    /// Nodes `1..=nodes`.
    pub nodes: u16,
    /// The latency of every link, before jitter.
    pub latency: Duration,
    /// Up to this much more, drawn per signal (each pair's order is kept).
    pub jitter: Duration,
    /// How long a connection that hears nothing lives (Erlang's `net_ticktime`).
    pub net_ticktime: Duration,
    /// The step budget of the run: every node's steps together. Once it is spent, every node
    /// halts ([`Halt::StepBudget`]).
    pub step_budget: u64,
    /// Simulated time after which the run stops.
    pub time_limit: Duration,
    /// Whether a send to a node that is not connected connects it (Erlang's default); with
    /// `false` only [`ClusterCtl::connect`] does (`dist_auto_connect never`).
    pub auto_connect: bool,
    /// The nodes' names in the trace (`n1`, `n2`, ... unless set).
    pub names: Vec<String>,
    /// If set, every signal between nodes goes through this codec, as on a real network
    /// (`dist::tcp`): a message of a type it does not know is dropped, and the trace says
    /// why (`undeliverable ...`).
    pub codec: Option<crate::dist::Codec>,
    /// The drift of each node's clock in parts per million, from node 1 (missing: 0); see
    /// [`ClusterSim::drift`].
    pub drift_ppm: Vec<i32>,
    /// Check each node incarnation's trace with the single-node invariants
    /// ([`ClusterReport::node_violation`]); see [`ClusterSim::check_nodes`].
    pub check_nodes: bool,
}

impl ClusterSim {
    /// A cluster of three nodes, 200 µs links with up to 100 µs of jitter, `net_ticktime`
    /// 4 s (what the OTP probes used), 10 million steps, 10 simulated minutes.
    pub fn new(seed: u64) -> ClusterSim {
        ClusterSim {
            seed,
            nodes: 3,
            latency: Duration::from_micros(200),
            jitter: Duration::from_micros(100),
            net_ticktime: Duration::from_secs(4),
            step_budget: 10_000_000,
            time_limit: Duration::from_secs(600),
            auto_connect: true,
            names: Vec::new(),
            codec: None,
            drift_ppm: Vec::new(),
            check_nodes: false,
        }
    }

    /// The same settings, with the single-node invariants (`sim::invariants`: orphans,
    /// restart types and intensity, restart order, shutdown, registry) checked on each node
    /// incarnation's own trace at the end of the run. An incarnation that crashed simply
    /// stops: its processes end with it, without exits.
    pub fn check_nodes(mut self, on: bool) -> ClusterSim {
        self.check_nodes = on;
        self
    }

    /// The same settings, with node `k`'s clock `ppm` parts per million fast (negative:
    /// slow) for the whole run, across its restarts: its processes' [`now`](crate::Process::now),
    /// timers and wall time drift; the trace stays in true time.
    ///
    /// ```
    /// # #[cfg(madsim)] {
    /// use otpsim::rt::Duration;
    /// use otpsim::sim::cluster::ClusterSim;
    /// let report = ClusterSim::new(1).drift(2, -100_000).run(|ctl| async move {
    ///     for k in [1, 2] {
    ///         ctl.node(k).spawn(|p| async move {
    ///             p.sleep(Duration::from_secs(1)).await;
    ///             p.note("a second");
    ///         });
    ///     }
    ///     ctl.sleep(Duration::from_secs(2)).await;
    /// });
    /// let lines = report.trace.lines();
    /// assert_eq!(lines[0], "clock n2 drift -100000ppm");
    /// let at = |pid: &str| {
    ///     let i = lines.iter().position(|l| *l == format!("note {pid} a second"));
    ///     report.trace.events()[i.unwrap()].at_us
    /// };
    /// assert!(at("<1.1>") < 1_010_000);
    /// assert!(at("<2.1>") > 1_111_000); // 10% slow: its second lasts 1.11 s
    /// # }
    /// ```
    pub fn drift(mut self, k: u16, ppm: i32) -> ClusterSim {
        let i = usize::from(k.max(1) - 1);
        if self.drift_ppm.len() <= i {
            self.drift_ppm.resize(i + 1, 0);
        }
        self.drift_ppm[i] = ppm;
        self
    }

    /// The same settings, with every signal between nodes encoded and decoded by `codec`,
    /// so that a message type production could not send is found in the simulation.
    ///
    /// ```
    /// # #[cfg(madsim)] {
    /// use otpsim::dist::Codec;
    /// use otpsim::sim::cluster::ClusterSim;
    /// let mut codec = Codec::new();
    /// codec.register::<u32>("u32");
    /// let report = ClusterSim::new(1).nodes(2).codec(codec).run(|ctl| async move {
    ///     let sink = ctl.node(2).spawn(|q| async move { q.recv().await; });
    ///     ctl.node(1).spawn(move |p| async move { p.send(sink, 2.5f64) });
    ///     ctl.sleep(otpsim::rt::Duration::from_millis(10)).await;
    /// });
    /// let lines = report.trace.lines();
    /// assert!(lines.iter().any(|l| l.starts_with("undeliverable") && l.contains("f64")));
    /// # }
    /// ```
    pub fn codec(mut self, codec: crate::dist::Codec) -> ClusterSim {
        self.codec = Some(codec);
        self
    }

    /// The same settings with a node per name, named so in the trace (`a:root/w`).
    pub fn names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> ClusterSim {
        self.names = names.into_iter().map(Into::into).collect();
        let n = self.names.len() as u16;
        self.nodes(n)
    }

    /// The same settings, where a send never connects a node by itself (`false`: Erlang's
    /// `dist_auto_connect never`).
    pub fn auto_connect(mut self, on: bool) -> ClusterSim {
        self.auto_connect = on;
        self
    }

    /// Node `k`'s drift in parts per million.
    fn drift_of(&self, k: u16) -> i32 {
        self.drift_ppm.get(usize::from(k) - 1).copied().unwrap_or(0)
    }

    /// Node `k`'s name in the trace.
    pub fn name(&self, k: u16) -> String {
        match self.names.get(usize::from(k) - 1) {
            Some(name) => name.clone(),
            None => format!("n{k}"),
        }
    }

    /// The same settings with `n` nodes.
    pub fn nodes(mut self, n: u16) -> ClusterSim {
        assert!((1..crate::term::MAX_NODE).contains(&n), "1 to 4094 nodes");
        self.nodes = n;
        self
    }

    /// The same settings with another `net_ticktime`.
    pub fn net_ticktime(mut self, ticktime: Duration) -> ClusterSim {
        self.net_ticktime = ticktime;
        self
    }

    /// Runs `scenario` against a fresh cluster until it returns (or the time limit passes),
    /// then halts every node and returns the cluster's one trace.
    pub fn run<F, Fut>(&self, scenario: F) -> ClusterReport
    where
        F: FnOnce(ClusterCtl) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        super::NotSimulated::require("ClusterSim::run");
        let settings = self.clone();
        let slack = Duration::from_secs(60);
        rt::block_on_limited(self.seed, Some(self.time_limit + slack), async move {
            let cluster = Cluster::new(settings.clone());
            rt::spawn(switch(Arc::downgrade(&cluster)));
            let ctl = ClusterCtl {
                cluster: cluster.clone(),
            };
            let waited = rt::timeout(settings.time_limit, scenario(ctl)).await;
            let report = cluster.finish(waited.is_none());
            // Let every halted task run once so that nothing is left pending (and leaked).
            rt::sleep(Duration::from_millis(1)).await;
            report
        })
    }
}

/// What a cluster run did.
#[derive(Clone, Debug)]
pub struct ClusterReport {
    /// Every node's events, and the cluster's own (crashes, restarts, partitions), in time
    /// order; a process of node `k` labelled `path` prints as `nk:path`.
    pub trace: Trace,
    /// The scenario did not return within the time limit.
    pub timed_out: bool,
    /// Nodes that halted by themselves, with why: a spent step budget (a livelock) halts
    /// every running node, each naming its busiest process.
    pub halts: Vec<(u16, Halt)>,
    /// The first violation of a single-node invariant in a node incarnation's own trace, with
    /// the node (when [`ClusterSim::check_nodes`] is on).
    pub node_violation: Option<(u16, crate::sim::invariants::Violation)>,
}

impl ClusterReport {
    /// What went wrong with the run itself, if anything: for a spent step budget, the node
    /// whose busiest process took the most steps (the livelock's likeliest place).
    pub fn failure(&self) -> Option<String> {
        let steps = |halt: &Halt| match halt {
            Halt::StepBudget { steps, .. } => *steps,
            _ => u64::MAX,
        };
        let worst = self
            .halts
            .iter()
            .max_by_key(|(k, halt)| (steps(halt), std::cmp::Reverse(*k)));
        if let Some((node, halt)) = worst {
            return Some(format!("node n{node}: {halt}"));
        }
        self.timed_out
            .then(|| "the scenario did not return within the time limit".to_string())
    }
}

/// The scenario's handle on the cluster: its nodes, and the faults it injects.
#[derive(Clone)]
pub struct ClusterCtl {
    cluster: Arc<Cluster>,
}

impl ClusterCtl {
    /// The current incarnation of node `k` (a handle: spawn on it, send to it).
    pub fn node(&self, k: u16) -> Node {
        self.cluster.slot(k, |s| s.node.clone())
    }

    /// Waits `duration` of simulated time.
    pub async fn sleep(&self, duration: Duration) {
        rt::sleep(duration).await
    }

    /// Node `k` crashes: its processes end without exit signals, and its peers see its
    /// connections close at once (`noconnection` for everything across them).
    pub fn crash(&self, k: u16) {
        self.cluster.crash(k, false);
    }

    /// Node `k` is lost without a word (a host gone, a cable cut): its peers find out after
    /// `net_ticktime`.
    pub fn crash_silently(&self, k: u16) {
        self.cluster.crash(k, true);
    }

    /// Node `k`'s host loses power: the node is lost silently (as
    /// [`crash_silently`](ClusterCtl::crash_silently)), and its [disk](crate::Disk) keeps only
    /// what was synced. A running node only: a node already down lost power long ago.
    pub fn power_fail(&self, k: u16) {
        let c = &self.cluster;
        if c.live(k).is_some() {
            c.crash(k, true);
            c.disks[usize::from(k - 1)].power_fail();
            c.note(ClusterEvent::PowerFail { node: k });
        }
    }

    /// Node `k`'s disk, which outlives its incarnations (the one its processes see as
    /// [`Node::disk`]).
    pub fn disk(&self, k: u16) -> crate::Disk {
        let c = &self.cluster;
        assert!(k >= 1 && k <= c.settings.nodes, "no node n{k}");
        c.disks[usize::from(k - 1)].clone()
    }

    /// Node `k` starts again with a new creation (its pids differ from its earlier ones): a
    /// crashed node boots; a running one crashes first.
    pub fn restart(&self, k: u16) {
        self.cluster.restart(k);
    }

    /// Nothing gets through between the nodes of `side` and the others, either way.
    pub fn partition(&self, side: &[u16]) {
        self.cluster.partition(side, true);
    }

    /// Nothing gets from the nodes of `side` to the others; the other way is open.
    pub fn partition_one_way(&self, side: &[u16]) {
        self.cluster.partition(side, false);
    }

    /// Every partition ends. Connections that were declared down come back when a process
    /// next sends across them.
    pub fn heal(&self) {
        self.cluster.heal();
    }

    /// Node `k` stops (`SIGSTOP`, a long garbage collection): its processes and timers
    /// wait, nothing gets to or from it, and its peers declare their connections down
    /// after `net_ticktime`, which it hears only when it [resumes](Self::resume)
    /// (`sim-tests/conformance/c11_pause_resume.trace`).
    pub fn pause(&self, k: u16) {
        self.cluster.pause(k);
    }

    /// A paused node `k` runs again.
    pub fn resume(&self, k: u16) {
        self.cluster.resume(k);
    }

    /// For `duration`, every signal between nodes `a` and `b` (either way) takes `extra`
    /// longer (a congested link; each pair's order still holds, and nothing is lost).
    pub fn slow_link(&self, a: u16, b: u16, extra: Duration, duration: Duration) {
        let c = &self.cluster;
        let until = c.now_us() + duration.as_micros() as u64;
        let extra_us = extra.as_micros() as u64;
        lock(&c.switch).slow.insert(pair(a, b), (until, extra_us));
        c.note(ClusterEvent::SlowLink {
            a: a.min(b),
            b: a.max(b),
            extra_ms: extra.as_millis() as u64,
            for_ms: duration.as_millis() as u64,
        });
    }

    /// Node `k`'s wall clock is stepped by `ms` milliseconds (forward if positive), as NTP
    /// steps a host's clock: its processes' [`system_time`](crate::Process::system_time)
    /// jumps; their [`now`](crate::Process::now) and timers do not.
    pub fn jump_clock(&self, k: u16, ms: i64) {
        let c = &self.cluster;
        assert!(k >= 1 && k <= c.settings.nodes, "no node n{k}");
        c.skews[usize::from(k - 1)].jump(ms);
        c.note(ClusterEvent::ClockJump { node: k, ms });
    }

    /// Node `by` closes its connection to `peer` (`erlang:disconnect_node/1`): what was on
    /// its way is lost, `by`'s subscribers hear `disconnect`, `peer`'s `connection_closed`.
    /// The next send connects them again, unless auto-connect is off.
    pub fn disconnect(&self, by: u16, peer: u16) {
        self.cluster.disconnect_pair(by, peer);
    }

    /// Node `from` connects to `to` (`net_kernel:connect_node/1`); `false` if `to` cannot be
    /// reached (down, or cut off by a partition).
    pub fn connect(&self, from: u16, to: u16) -> bool {
        self.cluster.connect_pair(from, to)
    }

    /// Whether node `k` runs (it is not down; it may be paused).
    pub fn is_up(&self, k: u16) -> bool {
        self.cluster.live(k).is_some()
    }

    /// The nodes that node `k` is connected to (`erlang:nodes()` there), in order.
    pub fn connected(&self, k: u16) -> Vec<u16> {
        let sw = lock(&self.cluster.switch);
        let mut peers: Vec<u16> = sw
            .up
            .iter()
            .filter_map(|&(a, b)| (a == k).then_some(b).or((b == k).then_some(a)))
            .collect();
        peers.sort_unstable();
        peers
    }

    /// Runs `body` in a fresh process on node `k` and returns what it returns (`None` if
    /// the process ends first: it crashed, or its node went down).
    ///
    /// ```
    /// # #[cfg(madsim)] {
    /// use otpsim::sim::cluster::ClusterSim;
    /// ClusterSim::new(1).nodes(2).run(|ctl| async move {
    ///     let pid = ctl.on(2, |p| async move { p.pid() }).await.unwrap();
    ///     assert_eq!(pid.node(), 2);
    /// });
    /// # }
    /// ```
    pub async fn on<T, F, Fut>(&self, k: u16, body: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(crate::Process) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = rt::sync::oneshot::channel();
        self.node(k).spawn(move |p| async move {
            let _ = tx.send(body(p).await);
        });
        rx.await.ok()
    }

    /// Registers a start function on every node, and on every node that boots later (a
    /// restart): what processes spawn by name on other nodes
    /// ([`Process::spawn_on`](crate::Process::spawn_on)).
    pub fn register_start<F, Fut>(&self, name: &str, start: F)
    where
        F: Fn(crate::Process, crate::Term) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: crate::process::IntoExitReason,
    {
        let start = crate::process::box_start(start);
        lock(&self.cluster.starts).insert(name.to_string(), start.clone());
        for k in 1..=self.cluster.settings.nodes {
            self.cluster
                .slot(k, |s| s.node.register_start_fn(name, start.clone()));
        }
    }

    /// Marks the trace: the faults are healed and the quiet period is over, so from here on
    /// the cluster invariants' at-rest rules apply (`sim::cluster_invariants`). The cluster
    /// harness does it before its at-rest check.
    pub fn at_rest(&self) {
        self.cluster.note(ClusterEvent::AtRest);
    }

    /// Writes `text` into the cluster's trace, at this moment (a scenario's own remarks).
    pub fn note(&self, text: impl Into<String>) {
        self.cluster.record(EventKind::Line(text.into()));
    }
}

/// A node of the cluster: its current incarnation, and the traces of the earlier ones.
struct Slot {
    node: Node,
    creation: u16,
    /// When the incarnation started, in µs since the run started.
    offset_us: u64,
    /// Crashed and not restarted.
    down: bool,
    /// Earlier incarnations' traces, with their offsets.
    past: Vec<(u64, Trace)>,
    /// The machine the incarnation runs on (paused and resumed as one).
    machine: rt::Machine,
    /// Paused: the peers whose connections went down meanwhile (it finds out on resume).
    paused: Option<Vec<u16>>,
}

/// A signal on a link.
struct Frame {
    from: Pid,
    to: Pid,
    signal: Signal,
}

/// What the switch knows: connections, partitions, and the signals on their way.
#[derive(Default)]
struct Switch {
    /// Connected pairs of nodes (lower index first).
    up: BTreeSet<(u16, u16)>,
    /// Directed links a partition cut: nothing gets through until the heal.
    cut: BTreeSet<(u16, u16)>,
    /// Silently crashed nodes: nothing gets to or from them until they restart.
    silent: BTreeSet<u16>,
    /// Paused nodes: nothing gets to or from them.
    paused: BTreeSet<u16>,
    /// Slow pairs of nodes: until when (µs), and how much later their signals arrive.
    slow: BTreeMap<(u16, u16), (u64, u64)>,
    /// When a connected pair that hears nothing is declared down.
    deadlines: BTreeMap<(u16, u16), u64>,
    /// Signals in flight, by (due µs, sequence).
    queue: BTreeMap<(u64, u64), Frame>,
    /// The due time of each directed link's last signal (its order is kept).
    last_due: BTreeMap<(u16, u16), u64>,
    /// Answers for the sending node itself (`noconnection` to a link or monitor that
    /// cannot be set up), delivered by the switch, never under a node's lock.
    answers: VecDeque<Frame>,
    /// Connections that came up, to tell both nodes (`nodeup`), by the switch.
    ups: VecDeque<(u16, u16)>,
    /// Signals of connections that went down which had arrived: handed over when the loss
    /// is (`Cluster::lose`).
    arrived: Vec<Frame>,
    seq: u64,
}

/// The cluster: its nodes, its switch, its clock and its own events.
struct Cluster {
    settings: ClusterSim,
    slots: Mutex<Vec<Slot>>,
    switch: Mutex<Switch>,
    rng: Mutex<ChaCha8Rng>,
    wake: rt::sync::Notify,
    start: Instant,
    /// The cluster's own events (faults, connections), with their times.
    events: Mutex<Vec<Event>>,
    /// The start functions every node has (`ClusterCtl::register_start`).
    starts: Mutex<BTreeMap<String, crate::process::StartFn>>,
    /// Each node's clock skew and disk (node 1 first), which outlive its incarnations.
    skews: Vec<rt::Skew>,
    disks: Vec<crate::Disk>,
    /// Every node's steps, against the run's budget.
    steps: Arc<std::sync::atomic::AtomicU64>,
    /// The run is over: the switch stops.
    finished: std::sync::atomic::AtomicBool,
}

/// The ordered pair of two nodes.
fn pair(a: u16, b: u16) -> (u16, u16) {
    (a.min(b), a.max(b))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cluster {
    fn new(settings: ClusterSim) -> Arc<Cluster> {
        let skews: Vec<rt::Skew> = (1..=settings.nodes)
            .map(|k| rt::Skew::new(settings.drift_of(k)))
            .collect();
        let cluster = Arc::new(Cluster {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(
                settings.seed ^ 0x0063_6c75_7374_6572,
            )),
            settings,
            slots: Mutex::new(Vec::new()),
            switch: Mutex::default(),
            wake: rt::sync::Notify::new(),
            start: rt::now(),
            events: Mutex::default(),
            starts: Mutex::default(),
            disks: skews.iter().map(|_| crate::Disk::new()).collect(),
            steps: Arc::default(),
            finished: Default::default(),
            skews,
        });
        for k in 1..=cluster.settings.nodes {
            let ppm = cluster.settings.drift_of(k);
            if ppm != 0 {
                cluster.note(ClusterEvent::Drift { node: k, ppm });
            }
        }
        // Node 0 is the scenario's side: it hosts no process, so it has no slot.
        let slots: Vec<Slot> = (1..=cluster.settings.nodes)
            .map(|k| {
                let (node, machine) = cluster.boot(k, 0);
                Slot {
                    node,
                    creation: 0,
                    offset_us: 0,
                    down: false,
                    past: Vec::new(),
                    machine,
                    paused: None,
                }
            })
            .collect();
        *lock(&cluster.slots) = slots;
        cluster
    }

    /// Microseconds since the run started.
    fn now_us(&self) -> u64 {
        (rt::now() - self.start).as_micros() as u64
    }

    /// A fresh node `k` of creation `creation` on a machine of its own, attached to the
    /// switch.
    fn boot(self: &Arc<Self>, k: u16, creation: u16) -> (Node, rt::Machine) {
        let machine = rt::Machine::new(&format!("{}.{creation}", self.settings.name(k)));
        let node = Node::with_config(NodeConfig {
            trace: true,
            step_budget: Some(self.settings.step_budget),
            quiet_panics: true,
            index: k,
            creation,
            machine: Some(machine.clone()),
            skew: Some(self.skews[usize::from(k - 1)].clone()),
            disk: Some(self.disks[usize::from(k - 1)].clone()),
            shared_steps: Some(self.steps.clone()),
            ..NodeConfig::default()
        });
        node.attach(Arc::new(Port {
            cluster: Arc::downgrade(self),
        }));
        for (name, start) in lock(&self.starts).iter() {
            node.register_start_fn(name, start.clone());
        }
        (node, machine)
    }

    /// `f` of node `k`'s slot.
    fn slot<R>(&self, k: u16, f: impl FnOnce(&mut Slot) -> R) -> R {
        assert!(k >= 1 && k <= self.settings.nodes, "no node n{k}");
        f(&mut lock(&self.slots)[usize::from(k - 1)])
    }

    /// Node `k`'s current incarnation, unless it is down.
    fn live(&self, k: u16) -> Option<Node> {
        self.slot(k, |s| (!s.down).then(|| s.node.clone()))
    }

    fn record(&self, kind: EventKind) {
        let at_us = self.now_us();
        lock(&self.events).push(Event { at_us, kind });
    }

    fn note(&self, event: ClusterEvent) {
        self.record(EventKind::Cluster(event));
    }

    fn crash(&self, k: u16, silent: bool) {
        let Some(node) = self.live(k) else {
            return;
        };
        let paused = self.slot(k, |s| {
            s.down = true;
            s.paused.take().is_some()
        });
        node.halt();
        if paused {
            // Its tasks end with it; the machine runs again to let them.
            lock(&self.switch).paused.remove(&k);
            self.slot(k, |s| s.machine.resume());
        }
        self.note(ClusterEvent::Crash { node: k, silent });
        if silent {
            // Its links stall: the peers' ticks go unanswered until net_ticktime.
            let mut sw = lock(&self.switch);
            sw.silent.insert(k);
            self.arm_deadlines(&mut sw);
        } else {
            let lost = self.disconnect(k);
            self.lose(lost, NodeDownReason::ConnectionClosed);
        }
        self.wake.notify_one();
    }

    fn restart(self: &Arc<Self>, k: u16) {
        self.crash(k, false);
        // After a silent crash its peers still count it connected: the new incarnation's
        // first contact replaces the old connection, which goes down now.
        let lost = self.disconnect(k);
        self.lose(lost, NodeDownReason::ConnectionClosed);
        let creation = self.slot(k, |s| s.creation) + 1;
        let (fresh, machine) = self.boot(k, creation);
        let now = self.now_us();
        let old = self.slot(k, |s| {
            s.machine = machine;
            let old = std::mem::replace(&mut s.node, fresh);
            s.creation = creation;
            (old, std::mem::replace(&mut s.offset_us, now))
        });
        let past = (old.1, old.0.take_trace());
        self.slot(k, |s| {
            s.past.push(past);
            s.down = false;
        });
        // Its links answer again, except across a partition: a restart heals no network.
        lock(&self.switch).silent.remove(&k);
        self.note(ClusterEvent::Restart { node: k, creation });
    }

    fn partition(&self, side: &[u16], both_ways: bool) {
        let inside: BTreeSet<u16> = side.iter().copied().collect();
        let mut sw = lock(&self.switch);
        for &a in &inside {
            for b in (1..=self.settings.nodes).filter(|b| !inside.contains(b)) {
                sw.cut.insert((a, b));
                if both_ways {
                    sw.cut.insert((b, a));
                }
            }
        }
        self.arm_deadlines(&mut sw);
        drop(sw);
        self.wake.notify_one();
        self.note(ClusterEvent::Partition {
            side: inside.into_iter().collect(),
            one_way: !both_ways,
        });
    }

    fn heal(&self) {
        let mut sw = lock(&self.switch);
        // A silently crashed node's links stay stalled: nothing answers there.
        sw.cut.clear();
        sw.disarm_deadlines();
        // What waited on the healed links is due: it goes on, in order.
        drop(sw);
        self.note(ClusterEvent::Heal);
        self.wake.notify_one();
    }

    /// See [`ClusterCtl::pause`].
    fn pause(&self, k: u16) {
        if self.live(k).is_none() || self.slot(k, |s| s.paused.is_some()) {
            return;
        }
        self.slot(k, |s| {
            s.paused = Some(Vec::new());
            s.machine.pause();
        });
        let mut sw = lock(&self.switch);
        sw.paused.insert(k);
        self.arm_deadlines(&mut sw);
        drop(sw);
        self.note(ClusterEvent::Pause { node: k });
        self.wake.notify_one();
    }

    /// See [`ClusterCtl::resume`].
    fn resume(&self, k: u16) {
        let Some(missed) = self.slot(k, |s| s.paused.take()) else {
            return;
        };
        self.slot(k, |s| s.machine.resume());
        {
            // A pause shorter than net_ticktime costs no connection.
            let mut sw = lock(&self.switch);
            sw.paused.remove(&k);
            sw.disarm_deadlines();
        }
        self.note(ClusterEvent::Resume { node: k });
        // Its peers closed the connections that timed out meanwhile: it hears it now.
        let lost = missed.into_iter().map(|peer| (k, peer)).collect();
        self.lose(lost, NodeDownReason::ConnectionClosed);
        self.wake.notify_one();
    }

    /// Every connected pair with a blocked link gets a deadline (if it has none).
    fn arm_deadlines(&self, sw: &mut Switch) {
        let due = self.now_us() + self.settings.net_ticktime.as_micros() as u64;
        let blocked: Vec<(u16, u16)> = sw
            .up
            .iter()
            .copied()
            .filter(|&(a, b)| sw.blocked(a, b) || sw.blocked(b, a))
            .collect();
        for p in blocked {
            sw.deadlines.entry(p).or_insert(due);
        }
    }

    /// Takes down every connection of node `k`: what was on its way is lost. Returns the
    /// (node, lost peer) pairs whose processes must hear `noconnection`.
    fn disconnect(&self, k: u16) -> Vec<(u16, u16)> {
        let mut sw = lock(&self.switch);
        let pairs: Vec<(u16, u16)> = sw
            .up
            .iter()
            .copied()
            .filter(|&(a, b)| a == k || b == k)
            .collect();
        let now = self.now_us();
        pairs.into_iter().flat_map(|p| sw.down(p, now)).collect()
    }

    /// Each (node, peer): node's processes lose their links and monitors across to peer,
    /// and its subscribers hear `reason`; a paused node hears it when it resumes.
    ///
    /// Signals from `peer` that had arrived are handed over first; whether `nodedown` comes
    /// before or after them is the seeded choice of the run (Erlang does not order it with
    /// the node's other signals: `erlang:monitor_node/2`), while links and monitors fire
    /// after them (each pair keeps its order).
    fn lose(&self, lost: Vec<(u16, u16)>, reason: NodeDownReason) {
        for (at, peer) in lost {
            let arrived: Vec<Frame> = {
                let mut sw = lock(&self.switch);
                let (mine, rest) = std::mem::take(&mut sw.arrived)
                    .into_iter()
                    .partition(|f| f.to.node() == at && f.from.node() == peer);
                sw.arrived = rest;
                mine
            };
            let Some(node) = self.live(at) else {
                continue;
            };
            let later = self.slot(at, |s| match &mut s.paused {
                Some(missed) => {
                    missed.push(peer);
                    true
                }
                None => false,
            });
            if later {
                continue;
            }
            if !arrived.is_empty() && lock(&self.rng).next_u64().is_multiple_of(2) {
                node.nodedown_first(peer, reason);
            }
            for frame in arrived {
                let (from, to) = (frame.from, frame.to);
                if let Some(signal) = self.through_codec(frame) {
                    node.arrive(from, to, signal);
                }
            }
            node.connection_lost(peer, reason);
        }
    }

    /// The frame's signal as the other side of a real network would get it, with a codec
    /// (`None`, and a trace event on the sender's node, if it could not cross).
    fn through_codec(&self, frame: Frame) -> Option<Signal> {
        let Some(codec) = &self.settings.codec else {
            return Some(frame.signal);
        };
        let crossed = codec
            .encode_signal(frame.signal)
            .and_then(|wire| codec.decode_signal(wire));
        match crossed {
            Ok(signal) => Some(signal),
            Err(e) => {
                if let Some(node) = self.live(frame.from.node()) {
                    node.undeliverable(frame.from, frame.to, e.to_string());
                }
                None
            }
        }
    }

    /// See [`ClusterCtl::disconnect`].
    fn disconnect_pair(&self, by: u16, peer: u16) {
        let now = self.now_us();
        let lost = lock(&self.switch).down(pair(by, peer), now);
        if lost.is_empty() {
            return;
        }
        self.note(ClusterEvent::Disconnect { by, peer });
        self.lose(vec![(by, peer)], NodeDownReason::Disconnect);
        self.lose(vec![(peer, by)], NodeDownReason::ConnectionClosed);
        self.wake.notify_one();
    }

    /// See [`ClusterCtl::connect`].
    fn connect_pair(&self, from: u16, to: u16) -> bool {
        if from == to {
            return true;
        }
        if !Port::reachable(self, from, to) {
            return false;
        }
        lock(&self.switch).connect(pair(from, to));
        self.wake.notify_one();
        true
    }

    /// Halts every node and merges the traces.
    fn finish(&self, timed_out: bool) -> ClusterReport {
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
        let mut parts: Vec<(u16, u64, Trace)> = Vec::new();
        let mut halts = Vec::new();
        for k in 1..=self.settings.nodes {
            let (node, down, offset, past) = self.slot(k, |s| {
                (
                    s.node.clone(),
                    s.down,
                    s.offset_us,
                    std::mem::take(&mut s.past),
                )
            });
            if let Some(halt) = node.halted().filter(|_| !down) {
                halts.push((k, halt));
            }
            node.halt();
            // A paused machine's tasks wait in madsim's executor, which would keep them (and
            // the node they hold) for ever: they run again, halted, and end.
            self.slot(k, |s| {
                if s.paused.take().is_some() {
                    s.machine.resume();
                }
            });
            for (offset, trace) in past {
                parts.push((k, offset, trace));
            }
            parts.push((k, offset, node.take_trace()));
        }
        let node_violation = if self.settings.check_nodes {
            parts.iter().find_map(|(k, _, trace)| {
                let options = crate::sim::invariants::CheckOptions::default();
                let violation = crate::sim::invariants::check(trace, &options).err()?;
                Some((*k, violation))
            })
        } else {
            None
        };
        let mut events: Vec<(u64, u16, usize, Event)> = Vec::new();
        for (k, offset, trace) in parts {
            for (i, e) in trace.events().iter().enumerate() {
                let mut e = e.clone();
                e.at_us += offset;
                // A label that already names its node (`a:root/w`) stays as it is.
                if let EventKind::Label { path, .. } = &mut e.kind {
                    if !path.contains(':') {
                        *path = format!("{}:{path}", self.settings.name(k));
                    }
                }
                events.push((e.at_us, k, i, e));
            }
        }
        for (i, e) in lock(&self.events).drain(..).enumerate() {
            events.push((e.at_us, 0, i, e));
        }
        // Time first; at one instant, node by node, each in its own order (the cluster's
        // own events before the nodes').
        events.sort_by_key(|(at, k, i, _)| (*at, *k, *i));
        let mut trace = Trace::default();
        for (_, _, _, e) in events {
            trace.push(e.at_us, e.kind);
        }
        ClusterReport {
            trace,
            timed_out,
            halts,
            node_violation,
        }
    }
}

impl Switch {
    /// Drops the deadlines of pairs that nothing blocks any more.
    fn disarm_deadlines(&mut self) {
        let open: Vec<(u16, u16)> = self
            .deadlines
            .keys()
            .copied()
            .filter(|&(a, b)| !self.blocked(a, b) && !self.blocked(b, a))
            .collect();
        for p in open {
            self.deadlines.remove(&p);
        }
    }

    /// Whether nothing gets through from node `a` to node `b` now.
    fn blocked(&self, a: u16, b: u16) -> bool {
        self.cut.contains(&(a, b))
            || [a, b]
                .iter()
                .any(|k| self.silent.contains(k) || self.paused.contains(k))
    }

    /// The pair `p` is connected from now on; both nodes will hear `nodeup`.
    fn connect(&mut self, p: (u16, u16)) {
        if self.up.insert(p) {
            self.ups.push_back(p);
        }
    }

    /// Queues `frame` on `link`, due no earlier than `due` and after the link's last one.
    fn push(&mut self, link: (u16, u16), due: u64, frame: Frame) {
        let last = self.last_due.entry(link).or_insert(0);
        let due = due.max(*last);
        *last = due;
        self.seq += 1;
        self.queue.insert((due, self.seq), frame);
    }

    /// The connection of `p` goes down: its signals in flight are lost. Returns who must
    /// hear it: (node, peer) both ways.
    fn down(&mut self, p: (u16, u16), now: u64) -> Vec<(u16, u16)> {
        if !self.up.remove(&p) {
            return Vec::new();
        }
        self.deadlines.remove(&p);
        // A `nodeup` not yet told is stale now.
        self.ups.retain(|u| *u != p);
        // What had arrived (due by now, on a link that was open) is still handed over, after
        // or before the `nodedown` (`Cluster::lose`); the rest is lost.
        let across = |f: &Frame| pair(f.from.node(), f.to.node()) == p;
        let keys: Vec<(u64, u64)> = self
            .queue
            .iter()
            .filter(|(_, f)| across(f))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if let Some(f) = self.queue.remove(&key) {
                if key.0 <= now && !self.blocked(f.from.node(), f.to.node()) {
                    self.arrived.push(f);
                }
            }
        }
        self.last_due.remove(&(p.0, p.1));
        self.last_due.remove(&(p.1, p.0));
        vec![(p.0, p.1), (p.1, p.0)]
    }
}

/// A node's way into the switch.
struct Port {
    cluster: Weak<Cluster>,
}

impl Port {
    /// Whether a connection between nodes `a` and `b` can be had now.
    fn reachable(cluster: &Cluster, a: u16, b: u16) -> bool {
        b >= 1 && b <= cluster.settings.nodes && cluster.live(b).is_some() && {
            let sw = lock(&cluster.switch);
            !sw.blocked(a, b) && !sw.blocked(b, a)
        }
    }
}

impl Carrier for Port {
    fn connect(&self, from: u16, to: u16) -> bool {
        let Some(cluster) = self.cluster.upgrade() else {
            return false;
        };
        if lock(&cluster.switch).up.contains(&pair(from, to)) {
            return true;
        }
        cluster.settings.auto_connect && cluster.connect_pair(from, to)
    }

    fn carry(&self, from: Pid, to: Pid, signal: Signal) {
        let Some(cluster) = self.cluster.upgrade() else {
            return;
        };
        let (a, b) = (from.node(), to.node());
        let reachable = cluster.settings.auto_connect && Port::reachable(&cluster, a, b);
        let now = cluster.now_us();
        let mut sw = lock(&cluster.switch);
        let p = pair(a, b);
        if !sw.up.contains(&p) {
            if !reachable {
                // No connection and none to be had: a link or monitor fails at once.
                let Some(answer) = signal.unreachable_answer() else {
                    return;
                };
                sw.answers.push_back(Frame {
                    from: to,
                    to: from,
                    signal: answer,
                });
                drop(sw);
                cluster.wake.notify_one();
                return;
            }
            sw.connect(p); // auto-connect
        }
        let jitter = cluster.settings.jitter.as_micros() as u64;
        let extra = match jitter {
            0 => 0,
            j => lock(&cluster.rng).next_u64() % (j + 1),
        };
        let slow = sw
            .slow
            .get(&p)
            .filter(|(until, _)| now < *until)
            .map_or(0, |(_, extra)| *extra);
        let due = now + cluster.settings.latency.as_micros() as u64 + extra + slow;
        sw.push((a, b), due, Frame { from, to, signal });
        drop(sw);
        cluster.wake.notify_one();
    }
}

/// The switch's task: delivers each signal when it is due (holding those of a stalled link),
/// the answers of failed connections, and declares silent connections down.
async fn switch(cluster: Weak<Cluster>) {
    loop {
        let Some(c) = cluster.upgrade() else {
            return;
        };
        if c.finished.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let now = c.now_us();
        let mut deliveries: Vec<Frame> = Vec::new();
        let mut lost = Vec::new();
        let ups: Vec<(u16, u16)>;
        let next = {
            let mut sw = lock(&c.switch);
            ups = sw.ups.drain(..).collect();
            deliveries.extend(sw.answers.drain(..));
            let expired: Vec<(u16, u16)> = sw
                .deadlines
                .iter()
                .filter(|(_, &due)| due <= now)
                .map(|(p, _)| *p)
                .collect();
            for p in expired {
                lost.extend(sw.down(p, now));
            }
            // Due signals of open links go; those of a stalled link wait in place, so that
            // the link's order holds when it opens again (a heal wakes the switch).
            let due: Vec<(u64, u64)> = sw
                .queue
                .iter()
                .take_while(|(key, _)| key.0 <= now)
                .filter(|(_, f)| !sw.blocked(f.from.node(), f.to.node()))
                .map(|(key, _)| *key)
                .collect();
            for key in due {
                deliveries.extend(sw.queue.remove(&key));
            }
            let next_frame = sw
                .queue
                .iter()
                .find(|(key, f)| key.0 > now || !sw.blocked(f.from.node(), f.to.node()))
                .map(|(key, _)| key.0.max(now));
            let next_deadline = sw.deadlines.values().min().copied();
            next_frame.into_iter().chain(next_deadline).min()
        };
        if !lost.is_empty() {
            let pairs: Vec<(u16, u16)> = lost.iter().copied().filter(|(a, b)| a < b).collect();
            c.note(ClusterEvent::TickTimeout { pairs });
        }
        for (a, b) in ups {
            for (at, peer) in [(a, b), (b, a)] {
                if let Some(node) = c.live(at) {
                    node.connection_up(peer);
                }
            }
        }
        c.lose(lost, NodeDownReason::NetTickTimeout);
        for frame in deliveries {
            let (from, to) = (frame.from, frame.to);
            let Some(signal) = c.through_codec(frame) else {
                continue;
            };
            if let Some(node) = c.live(to.node()) {
                node.arrive(from, to, signal);
            }
        }
        let deadline = match next {
            Some(us) => c.start + Duration::from_micros(us),
            None => rt::now() + Duration::from_secs(3600),
        };
        // The task holds the cluster while it waits, until the run finishes and wakes it: a
        // task left waiting when the run ends would never be freed (madsim's runtime keeps
        // a pending task's timer, and the timer the task).
        rt::sleep_until_notified(deadline, &c.wake).await;
    }
}
