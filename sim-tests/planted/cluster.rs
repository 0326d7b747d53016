//! Planted bugs across nodes (issue 18): systems with a flaw of a shape users write in
//! distributed Erlang, each with its fixed twin, that the cluster harness
//! (`otpsim::sim::cluster_harness`) must find and shrink.
//!
//! * [`Singleton`]: a guard on node 1 keeps one instance of a service on node 2. Buggy, it
//!   takes `DOWN noconnection` for the instance's death and fails over to node 3, so after a
//!   partition heals two instances run. Fixed, `noconnection` means "unknown": it watches the
//!   same instance again once its node answers.
//! * [`StaleCache`]: a client on node 1 looks up a server on node 2 once and keeps its pid.
//!   Buggy, it keeps sending to it after node 2 restarted, so every request is lost. Fixed,
//!   it looks the server up again when a request goes unanswered.
//! * [`Books`]: a collector on node 1 books what a producer on node 2 sends. Buggy, it takes
//!   `nodedown` as coming after node 2's last message and books nothing after it, so items
//!   that arrive after it are lost to the books (Erlang does not order `nodedown` with the
//!   node's other signals). Fixed, it books whatever arrives.
//! * [`Cron`]: a job on node 2 runs every 500 ms. Buggy, it waits for the next run by
//!   polling the wall clock (`system_time`), so when NTP steps the clock back it stalls for as
//!   long as the step. Fixed, it waits on monotonic time (`now`, or a timer), which never
//!   jumps.

use otpsim::rt::Duration;
use otpsim::sim::cluster::ClusterCtl;
use otpsim::sim::cluster_harness::ClusterTarget;
use otpsim::{ExitReason, Msg, Node, Pid, Process, Term};

/// The guarded service: registers as `singleton` on its node, or, if one is already there,
/// exits with `{duplicate, Existing}`.
async fn instance(p: Process, _: Term) -> ExitReason {
    if p.register("singleton").is_err() {
        let existing = p
            .whereis("singleton")
            .map_or(Term::atom("undefined"), Term::Pid);
        return ExitReason::from_term(Term::tuple([Term::atom("duplicate"), existing]));
    }
    p.receive(|_| false).await;
    ExitReason::Normal
}

/// A guard that keeps one instance of a service (see the module's documentation).
pub struct Singleton {
    /// Fail over on `noconnection` (the flaw).
    pub buggy: bool,
}

async fn guard(p: Process, buggy: bool) -> ExitReason {
    let retry = Duration::from_millis(500);
    let mut home = 2;
    loop {
        let Ok(mut pid) = p.spawn_on(home, "singleton", Term::atom("nil")).await else {
            p.sleep(retry).await;
            continue;
        };
        let mut mref = p.monitor(pid);
        loop {
            let down = p
                .receive(move |m| matches!(m, Msg::Down { mref: r, .. } if *r == mref))
                .await;
            let Msg::Down { reason, .. } = down else {
                unreachable!("accepted above")
            };
            match reason.to_term() {
                t if t.is_atom("noconnection") && buggy => {
                    // The flaw: the instance may well be running still.
                    home = 3;
                    break;
                }
                t if t.is_atom("noconnection") => {
                    p.sleep(retry).await;
                    mref = p.monitor(pid);
                }
                Term::Tuple(items) if matches!(items.first(), Some(t) if t.is_atom("duplicate")) => {
                    match items.get(1) {
                        Some(Term::Pid(existing)) => {
                            pid = *existing;
                            mref = p.monitor(pid);
                        }
                        _ => break,
                    }
                }
                _ => break,
            }
        }
    }
}

impl ClusterTarget for Singleton {
    type Op = ();

    fn name(&self) -> String {
        format!("singleton{}", if self.buggy { "-buggy" } else { "" })
    }

    fn faulty(&self, _: u16) -> Vec<u16> {
        vec![2, 3]
    }

    fn boot(&self, k: u16, node: &Node, first: bool) {
        node.register_start("singleton", instance);
        if k == 1 && first {
            let buggy = self.buggy;
            node.spawn(move |p| guard(p, buggy));
        }
    }

    async fn check(&self, ctl: &ClusterCtl) -> Result<(), String> {
        let running: Vec<Pid> = [2, 3]
            .into_iter()
            .filter_map(|k| ctl.node(k).whereis("singleton"))
            .collect();
        match running.len() {
            1 => Ok(()),
            n => Err(format!(
                "{n} instances of the singleton at rest: {running:?}"
            )),
        }
    }
}

/// A client that caches a server's pid (see the module's documentation).
pub struct StaleCache {
    /// Never look the server up again (the flaw).
    pub buggy: bool,
}

/// `Hello(from)` to `{server, 2}` asks for its pid; `Req(n, from)` asks for `Ack(n)`.
struct Hello(Pid);
struct Here(Pid);
struct Req(u64, Pid);
struct Ack(u64);
/// The client's answer to `Stats(from)`: the last request sent and the last acknowledged.
struct Stats(Pid);
struct StatsAre(u64, u64);

async fn server(p: Process) -> ExitReason {
    p.register("server").expect("one server per node");
    loop {
        let msg = p.recv().await;
        let msg = match msg.downcast::<Hello>() {
            Ok(Hello(from)) => {
                p.send(from, Here(p.pid()));
                continue;
            }
            Err(msg) => msg,
        };
        if let Ok(Req(n, from)) = msg.downcast::<Req>() {
            p.send(from, Ack(n));
        }
    }
}

async fn client(p: Process, buggy: bool) -> ExitReason {
    p.register("client").expect("one client");
    let (mut sent, mut acked, mut cached, mut asked_at) = (0u64, 0u64, None::<Pid>, 0u64);
    let tick = Duration::from_millis(200);
    loop {
        // Look the server up when there is none, or (fixed) when requests go unanswered.
        if cached.is_none() || (!buggy && sent > acked + 5 && sent > asked_at + 5) {
            p.send_named("server", 2, Hello(p.pid()));
            asked_at = sent;
        }
        if let Some(server) = cached {
            sent += 1;
            p.send(server, Req(sent, p.pid()));
        }
        let until = p.now() + tick;
        while let Some(msg) = p
            .recv_timeout(until.saturating_duration_since(p.now()))
            .await
        {
            let msg = match msg.downcast::<Here>() {
                Ok(Here(pid)) => {
                    cached = Some(pid);
                    continue;
                }
                Err(msg) => msg,
            };
            let msg = match msg.downcast::<Ack>() {
                Ok(Ack(n)) => {
                    acked = acked.max(n);
                    continue;
                }
                Err(msg) => msg,
            };
            if let Ok(Stats(from)) = msg.downcast::<Stats>() {
                p.send(from, StatsAre(sent, acked));
            }
        }
    }
}

impl ClusterTarget for StaleCache {
    type Op = ();

    fn name(&self) -> String {
        format!("stale-cache{}", if self.buggy { "-buggy" } else { "" })
    }

    fn nodes(&self) -> u16 {
        2
    }

    fn faulty(&self, _: u16) -> Vec<u16> {
        vec![2]
    }

    fn boot(&self, k: u16, node: &Node, first: bool) {
        if k == 2 {
            node.spawn(server);
        } else if first {
            let buggy = self.buggy;
            node.spawn(move |p| client(p, buggy));
        }
    }

    async fn check(&self, ctl: &ClusterCtl) -> Result<(), String> {
        let stats = ctl
            .on(1, |p| async move {
                let client = p.whereis("client")?;
                p.send(client, Stats(p.pid()));
                let answer = p.receive_timeout(|m| m.is::<StatsAre>(), Duration::from_secs(1));
                let StatsAre(sent, acked) = answer.await?.downcast::<StatsAre>().ok()?;
                Some((sent, acked))
            })
            .await
            .flatten();
        match stats {
            Some((sent, acked)) if sent <= acked + 3 => Ok(()),
            Some((sent, acked)) => Err(format!(
                "requests lost at rest: {sent} sent, the last acknowledged is {acked}"
            )),
            None => Err("the client does not answer".into()),
        }
    }
}

/// A collector on node 1 that books what a producer on node 2 sends it (see the module's
/// documentation, bug (c)).
pub struct Books {
    /// Close the books at `nodedown` (the flaw: a message of that node may still come).
    pub buggy: bool,
}

/// One item of the producer.
struct Item;
/// Asks the collector for `Counted(received, booked)`.
struct Count(Pid);
struct Counted(u64, u64);

async fn producer(p: Process) -> ExitReason {
    loop {
        p.send_named("collector", 1, Item);
        p.sleep(Duration::from_millis(5)).await;
    }
}

async fn collector(p: Process, buggy: bool) -> ExitReason {
    p.register("collector").expect("one collector");
    p.monitor_nodes(true);
    let (mut received, mut booked, mut closed) = (0u64, 0u64, false);
    loop {
        match p.recv().await {
            Msg::NodeDown { node: 2, .. } => closed = true,
            Msg::NodeUp { node: 2 } => closed = false,
            m if m.is::<Item>() => {
                received += 1;
                // The flaw: after `nodedown` nothing more of node 2 is expected.
                if !(buggy && closed) {
                    booked += 1;
                }
            }
            m => {
                if let Ok(Count(from)) = m.downcast::<Count>() {
                    p.send(from, Counted(received, booked));
                }
            }
        }
    }
}

impl ClusterTarget for Books {
    type Op = ();

    fn name(&self) -> String {
        format!("books{}", if self.buggy { "-buggy" } else { "" })
    }

    fn nodes(&self) -> u16 {
        2
    }

    fn faulty(&self, _: u16) -> Vec<u16> {
        vec![2]
    }

    fn boot(&self, k: u16, node: &Node, first: bool) {
        if k == 2 {
            node.spawn(producer);
        } else if first {
            let buggy = self.buggy;
            node.spawn(move |p| collector(p, buggy));
        }
    }

    async fn check(&self, ctl: &ClusterCtl) -> Result<(), String> {
        let counts = ctl
            .on(1, |p| async move {
                let collector = p.whereis("collector")?;
                p.send(collector, Count(p.pid()));
                let answer = p.receive_timeout(|m| m.is::<Counted>(), Duration::from_secs(1));
                let Counted(received, booked) = answer.await?.downcast::<Counted>().ok()?;
                Some((received, booked))
            })
            .await
            .flatten();
        match counts {
            Some((received, booked)) if received == booked => Ok(()),
            Some((received, booked)) => Err(format!(
                "items lost to the books: {received} received, {booked} booked"
            )),
            None => Err("the collector does not answer".into()),
        }
    }
}

/// A periodic job (see the module's documentation).
pub struct Cron {
    /// Wait for the next run on the wall clock (the flaw).
    pub buggy: bool,
}

/// `Runs(from)` asks the job how often it has run: `RunsAre(n)`.
struct Runs(Pid);
struct RunsAre(u64);

async fn cron(p: Process, buggy: bool) -> ExitReason {
    p.register("cron").expect("one job per node");
    let period = Duration::from_millis(500);
    let mut runs = 0u64;
    loop {
        let (next, next_wall) = (p.now() + period, p.system_time() + period);
        // Answer questions until the next run is due.
        loop {
            let due = if buggy {
                p.system_time() >= next_wall
            } else {
                p.now() >= next
            };
            if due {
                break;
            }
            if let Some(msg) = p.recv_timeout(Duration::from_millis(50)).await {
                if let Ok(Runs(from)) = msg.downcast::<Runs>() {
                    p.send(from, RunsAre(runs));
                }
            }
        }
        runs += 1;
    }
}

impl ClusterTarget for Cron {
    type Op = ();

    fn name(&self) -> String {
        format!("cron{}", if self.buggy { "-buggy" } else { "" })
    }

    fn nodes(&self) -> u16 {
        2
    }

    fn boot(&self, k: u16, node: &Node, _: bool) {
        if k == 2 {
            let buggy = self.buggy;
            node.spawn(move |p| cron(p, buggy));
        }
    }

    /// At rest the job runs: at least twice in 1.5 s.
    async fn check(&self, ctl: &ClusterCtl) -> Result<(), String> {
        let runs = || {
            ctl.on(2, |p| async move {
                p.send_named("cron", 2, Runs(p.pid()));
                let answer = p.receive_timeout(|m| m.is::<RunsAre>(), Duration::from_secs(1));
                let RunsAre(n) = answer.await?.downcast::<RunsAre>().ok()?;
                Some(n)
            })
        };
        let before = runs().await.flatten();
        ctl.sleep(Duration::from_millis(1500)).await;
        let after = runs().await.flatten();
        match (before, after) {
            (Some(a), Some(b)) if b >= a + 2 => Ok(()),
            (Some(a), Some(b)) => Err(format!("the job stalled: {a} runs, then {b} 1.5 s later")),
            _ => Err("the job does not answer".into()),
        }
    }
}
