//! Multi-node scenarios: the oracle's format with a `"nodes"` list (`otp-oracle/README.md`,
//! "Multi-node scenarios"; `docs/oracle.md`), run on a simulated cluster ([`ClusterSim`]) and
//! printed as the oracle prints them, so that a trace recorded from OTP 25's distribution
//! compares with ours line by line (blocks of lines Erlang does not order compared as the
//! oracle's README says).
//!
//! The pieces mirror the oracle's: an *agent* on each node is its root supervisor's parent and
//! runs the node-local operations; the *driver* (the scenario's side, on no node) runs the
//! script, the node and network faults, and has workers do the cross-node actions; workers
//! log what they receive from other processes.
//!
//! The agent, the driver and the workers exchange one set of messages and share the scenario's
//! bookkeeping, so they are one file (hence its length).

use super::scenario::{self, invalid, Obj, Result, Target};
use super::{exec, start_any_supervisor, Book, Op, Scenario, TreeNode};
use crate::cluster::Groups;
use crate::process::{ExitReason, Msg, Process};
use crate::rt::Duration;
use crate::server::{self, CallError, GenServer, ServerRef};
use crate::sim::cluster::{ClusterCtl, ClusterSim};
use crate::term::{Pid, Ref, Term};
use crate::trace::EventKind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How the lines after an operation are compared: Erlang orders them not at all, or only
/// per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// In order, as every single-node line.
    None,
    /// As a multiset.
    Unordered,
    /// Each node's lines in order; nodes interleave.
    Interleaved,
}

/// A node of a multi-node scenario.
#[derive(Clone, Debug)]
pub struct ScenarioNode {
    /// Its name (`a`).
    pub name: String,
    /// Its tree, as a single-node scenario without a script (paths `a:root/...`).
    pub tree: Option<Arc<Scenario>>,
    /// Whether it runs from the start (`false`: only a later `restart` starts it).
    pub boot: bool,
}

/// A cross-node or cluster operation.
#[derive(Clone, Debug)]
pub enum ClusterAction {
    /// A single-node operation, run by the agent of node `node`.
    Local {
        /// The node's index in `nodes`.
        node: usize,
        /// What.
        action: super::Action,
    },
    /// `stop` of every running node's root, in `nodes` order, or of one node's.
    Stop(Option<usize>),
    /// `erlang:disconnect_node(B)` on A.
    Disconnect(usize, usize),
    /// `net_kernel:connect_node(B)` on A.
    Connect(usize, usize),
    /// `erlang:halt()` on the node.
    Halt(usize),
    /// A new incarnation of the node, connected to these nodes (all running ones if `None`).
    Restart(usize, Option<Vec<usize>>),
    /// `SIGSTOP`.
    Pause(usize),
    /// `SIGCONT`.
    Resume(usize),
    /// The worker at `path` links to the target.
    LinkRemote(String, Target),
    /// The worker at `path` monitors the target.
    MonitorRemote(String, Target),
    /// The worker at `path` monitors a node.
    MonitorNode(String, usize),
    /// The worker at `path` subscribes to nodes' ups and downs.
    MonitorNodes(String),
    /// The worker sends numbered messages, then exits if asked to.
    SendRemote {
        /// The sender.
        path: String,
        /// To whom.
        target: Target,
        /// The first number.
        first: u64,
        /// How many.
        count: u64,
        /// The exit reason afterwards.
        exit: Option<Term>,
    },
    /// The worker calls the target (the driver does not wait).
    CallRemote {
        /// The caller.
        path: String,
        /// The server.
        target: Target,
        /// The request.
        request: Term,
        /// Milliseconds, or `None` for `infinity`.
        timeout: Option<u64>,
    },
    /// The worker sleeps (the driver does not wait).
    Busy(String, u64),
    /// `erlang:nodes()` on the node.
    Nodes(usize),
    /// The worker at `path` joins a group of the scope `pg` (`pg:join(Group, self())`).
    PgJoin(String, String),
    /// `pg:get_members(Group)` on the node.
    PgMembers(usize, String),
    /// Nothing (a time marker).
    Sleep,
}

/// The most messages one `send_remote` sends.
const MAX_SENDS: u64 = 100_000;

/// A timed operation of a multi-node scenario.
#[derive(Clone, Debug)]
pub struct ClusterOp {
    /// Milliseconds after scenario time 0.
    pub at: u64,
    /// How the lines up to the next operation are compared.
    pub block: Block,
    /// What.
    pub action: ClusterAction,
}

/// A multi-node scenario.
#[derive(Clone, Debug)]
pub struct ClusterScenario {
    /// Its name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// How long to wait after the last op.
    pub settle_ms: u64,
    /// Erlang's `net_ticktime`, in seconds.
    pub net_ticktime: u64,
    /// `dist_auto_connect always` (`false`: `never`, the scenario default).
    pub auto_connect: bool,
    /// The nodes, in start order.
    pub nodes: Vec<ScenarioNode>,
    /// The script.
    pub script: Vec<ClusterOp>,
    /// Whether every node runs the process groups scope `pg` (the script uses it).
    pub uses_pg: bool,
    /// Every node's supervisors by path.
    pub supervisors: BTreeMap<String, Arc<TreeNode>>,
}

impl ClusterScenario {
    /// Parses a scenario with a `"nodes"` list.
    pub fn parse(value: &Value) -> Result<ClusterScenario> {
        let top = Obj::new(value, "")?;
        let list = top
            .get("nodes")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("nodes", "expected an array"))?;
        let mut nodes = Vec::new();
        let mut supervisors = BTreeMap::new();
        if list.is_empty() || list.len() > 64 {
            return Err(invalid("nodes", "expected 1 to 64 nodes"));
        }
        for (i, n) in list.iter().enumerate() {
            let at = format!("nodes[{i}]");
            let obj = Obj::new(n, at.clone())?;
            let name = obj.req_str("name")?.to_string();
            let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
            if name.is_empty() || !name.chars().all(plain) {
                let message = "expected a name of letters, digits and `_`";
                return Err(invalid(&obj.field("name"), message));
            }
            if nodes.iter().any(|n: &ScenarioNode| n.name == name) {
                return Err(invalid(&obj.field("name"), format!("{name:?} twice")));
            }
            let tree = match obj.get("tree") {
                None => None,
                Some(t) => {
                    let tree = Arc::new(TreeNode::parse_root_of(t, &name, &format!("{at}.tree"))?);
                    if !tree.supervisor {
                        return Err(invalid(
                            &obj.field("tree.type"),
                            "the root must be a supervisor",
                        ));
                    }
                    let mut sups = BTreeMap::new();
                    scenario::collect_supervisors(&tree, &mut sups);
                    supervisors.extend(sups.clone());
                    Some(Arc::new(Scenario {
                        name: name.clone(),
                        description: String::new(),
                        settle_ms: 0,
                        tree,
                        script: Vec::new(),
                        supervisors: sups,
                    }))
                }
            };
            nodes.push(ScenarioNode {
                name,
                tree,
                boot: obj.bool("boot")?.unwrap_or(true),
            });
        }
        let auto_connect = match top.str("dist_auto_connect")? {
            None | Some("never") => false,
            Some("always") => true,
            Some(other) => {
                let message = format!("expected \"never\" or \"always\", not {other:?}");
                return Err(invalid("dist_auto_connect", message));
            }
        };
        let mut sc = ClusterScenario {
            name: top.str("name")?.unwrap_or("").into(),
            description: top.str("description")?.unwrap_or("").into(),
            settle_ms: top.uint("settle_ms")?.unwrap_or(500),
            net_ticktime: top.uint("net_ticktime")?.unwrap_or(4),
            auto_connect,
            nodes,
            script: Vec::new(),
            uses_pg: false,
            supervisors,
        };
        for (path, node) in &sc.supervisors {
            for child in node.children.iter().filter(|c| !c.supervisor) {
                sc.check_peer(
                    &child.worker.peer,
                    &format!("the worker {path}/{}", child.id),
                )?;
            }
        }
        if let Some(list) = top.get("script") {
            let list = list
                .as_array()
                .ok_or_else(|| invalid("script", "expected an array"))?;
            for (i, op) in list.iter().enumerate() {
                let op = sc.parse_op(op, &format!("script[{i}]"))?;
                let pg = matches!(
                    op.action,
                    ClusterAction::PgJoin(..) | ClusterAction::PgMembers(..)
                );
                sc.uses_pg |= pg;
                sc.script.push(op);
            }
        }
        Ok(sc)
    }

    /// A worker's cross-node fields name nodes of the scenario.
    fn check_peer(&self, peer: &scenario::PeerSpec, at: &str) -> Result<()> {
        let targets = peer.link.iter().chain(&peer.monitor).map(Target::node);
        for node in targets.chain(peer.monitor_node.iter().map(String::as_str)) {
            self.node(node, at)?;
        }
        Ok(())
    }

    /// The index of the node called `name`.
    fn node(&self, name: &str, at: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| invalid(at, format!("no node {name:?}")))
    }

    /// The node a path (`a:root/w`) is on.
    fn node_of(&self, path: &str, at: &str) -> Result<usize> {
        let (node, _) = path
            .split_once(':')
            .ok_or_else(|| invalid(at, "a path names its node (\"a:root/w\")"))?;
        self.node(node, at)
    }

    fn parse_op(&self, value: &Value, at: &str) -> Result<ClusterOp> {
        let obj = Obj::new(value, at)?;
        let op = obj.req_str("op")?;
        let path = || -> Result<String> {
            let path = obj.req_str("path")?;
            self.node_of(path, &obj.field("path"))?;
            Ok(path.to_string())
        };
        let node = |key: &str| self.node(obj.req_str(key)?, &obj.field(key));
        let pair = || -> Result<(usize, usize)> {
            let at = obj.field("nodes");
            let list = obj.get("nodes").and_then(Value::as_array);
            match list.map(|l| l.iter().map(Value::as_str).collect::<Vec<_>>()) {
                Some(l) if l.len() == 2 => match (l[0], l[1]) {
                    (Some(a), Some(b)) => Ok((self.node(a, &at)?, self.node(b, &at)?)),
                    _ => Err(invalid(&at, "expected two node names")),
                },
                _ => Err(invalid(&at, "expected two node names")),
            }
        };
        let target = || -> Result<Target> {
            let at = obj.field("target");
            let t = Target::parse(
                obj.get("target").ok_or_else(|| invalid(&at, "missing"))?,
                &at,
            )?;
            self.node(t.node(), &at)?;
            Ok(t)
        };
        let action = match op {
            "disconnect" => {
                let (a, b) = pair()?;
                ClusterAction::Disconnect(a, b)
            }
            "connect" => {
                let (a, b) = pair()?;
                ClusterAction::Connect(a, b)
            }
            "halt" => ClusterAction::Halt(node("node")?),
            "pause" => ClusterAction::Pause(node("node")?),
            "resume" => ClusterAction::Resume(node("node")?),
            "restart" => {
                let connect = match obj.get("connect") {
                    None => None,
                    Some(list) => {
                        let at = obj.field("connect");
                        let names = list
                            .as_array()
                            .ok_or_else(|| invalid(&at, "expected an array"))?;
                        let mut out = Vec::new();
                        for n in names {
                            let n = n
                                .as_str()
                                .ok_or_else(|| invalid(&at, "expected node names"))?;
                            out.push(self.node(n, &at)?);
                        }
                        Some(out)
                    }
                };
                ClusterAction::Restart(node("node")?, connect)
            }
            "link_remote" => ClusterAction::LinkRemote(path()?, target()?),
            "monitor_remote" => ClusterAction::MonitorRemote(path()?, target()?),
            "monitor_node" => ClusterAction::MonitorNode(path()?, node("node")?),
            "monitor_nodes" => ClusterAction::MonitorNodes(path()?),
            "send_remote" => {
                let first = obj.uint("first")?.unwrap_or(1);
                let count = obj.uint("count")?.unwrap_or(1);
                if !(1..=MAX_SENDS).contains(&count) || first.checked_add(count).is_none() {
                    let message = format!("expected 1 to {MAX_SENDS} messages");
                    return Err(invalid(&obj.field("count"), message));
                }
                ClusterAction::SendRemote {
                    path: path()?,
                    target: target()?,
                    first,
                    count,
                    exit: obj.term("exit")?,
                }
            }
            "call_remote" => ClusterAction::CallRemote {
                path: path()?,
                target: target()?,
                request: obj.term("request")?.unwrap_or_else(|| Term::atom("hello")),
                timeout: match obj.get("timeout") {
                    Some(Value::String(s)) if s == "infinity" => None,
                    _ => Some(obj.uint("timeout")?.unwrap_or(5000)),
                },
            },
            "busy" => ClusterAction::Busy(path()?, obj.uint("ms")?.unwrap_or(0)),
            "nodes" => ClusterAction::Nodes(node("node")?),
            "sleep" => ClusterAction::Sleep,
            "stop" => match obj.str("node")? {
                None => ClusterAction::Stop(None),
                Some(n) => ClusterAction::Stop(Some(self.node(n, &obj.field("node"))?)),
            },
            "pg_join" => ClusterAction::PgJoin(path()?, obj.req_str("group")?.to_string()),
            "pg_members" => {
                ClusterAction::PgMembers(node("node")?, obj.req_str("group")?.to_string())
            }
            "global_register" | "global_whereis" => {
                return Err(scenario::ScenarioError::Unsupported {
                    field: obj.field("op"),
                    what: format!("{op} (global is not modelled)"),
                })
            }
            _ => {
                let Op { action, .. } = scenario::parse_op(value, at, &self.supervisors)?;
                let node = match &action {
                    super::Action::Lookup { .. } => node("node")?,
                    _ => {
                        let p = obj.str("path")?.or(obj.str("sup")?).unwrap_or("");
                        self.node_of(p, at)?
                    }
                };
                ClusterAction::Local { node, action }
            }
        };
        let default = match action {
            ClusterAction::Disconnect(..)
            | ClusterAction::Connect(..)
            | ClusterAction::Halt(_)
            | ClusterAction::Pause(_)
            | ClusterAction::Resume(_) => Block::Unordered,
            ClusterAction::Restart(..) => Block::Interleaved,
            _ => Block::None,
        };
        let block = match obj.str("block")? {
            None => default,
            Some("none") => Block::None,
            Some("unordered") => Block::Unordered,
            Some("interleaved") => Block::Interleaved,
            Some(other) => {
                let message =
                    format!("expected \"none\", \"unordered\" or \"interleaved\", not {other:?}");
                return Err(invalid(&obj.field("block"), message));
            }
        };
        Ok(ClusterOp {
            at: obj.uint("at")?.unwrap_or(0),
            block,
            action,
        })
    }

    /// Whether the supervisor at `path` stops its children in parallel.
    pub fn parallel_shutdown(&self, path: &str) -> bool {
        self.supervisors.get(path).is_some_and(|s| s.by_pid())
    }
}

// ---- running it ---------------------------------------------------------------------------------

/// A node-local operation for a node's agent, with the channel that says it is done.
struct AgentOp(super::Action, crate::rt::sync::oneshot::Sender<()>);

/// A cross-node action for a worker to do in its own process.
enum Act {
    Link(Pid),
    Monitor(Target, Option<Pid>),
    MonitorNode(u16),
    MonitorNodes,
    Send {
        to: Option<Pid>,
        target: Target,
        first: u64,
        count: u64,
        exit: Option<Term>,
    },
    Call {
        to: Option<Pid>,
        target: Target,
        request: Term,
        timeout: Option<u64>,
    },
    Busy(u64),
    /// `pg:join(Group, self())`.
    PgJoin(String),
}

/// A worker's `Act`, acknowledged with `Done` when `ack` is set.
pub(super) struct ActMsg(Act, Option<(Pid, Ref)>);

/// A numbered message of `send_remote`.
struct Numbered {
    from: Pid,
    i: u64,
}

/// The calls a scenario worker answers (`gen_server:call` with any term).
pub(super) struct OracleServer;

impl GenServer for OracleServer {
    type Arg = ();
    type Call = Term;
    type Reply = Term;
    type Cast = ();
    type Cont = ();

    async fn init(_: (), _: &Process) -> server::Init<Self> {
        server::Init::Ok(OracleServer)
    }
}

/// What a worker of a multi-node scenario keeps: how to print what it monitors.
#[derive(Default)]
pub(super) struct Watching {
    monitors: BTreeMap<Ref, String>,
}

impl Book {
    /// A pid as the oracle prints it in a line: its path, or `<pid>`.
    fn shown(&self, pid: Pid) -> String {
        self.with(|b| b.paths.get(&pid).cloned())
            .unwrap_or_else(|| "<pid>".to_string())
    }

    /// The pid of a path target (`#n`: the n-th ever started there).
    fn resolve(&self, target: &Target) -> Option<Pid> {
        let Target::Path { path, nth } = target else {
            return None;
        };
        self.with(|b| match nth {
            None => b.current.get(path).copied(),
            Some(n) => b
                .history
                .get(path)
                .and_then(|h| h.get(n.checked_sub(1)?).copied()),
        })
    }

    /// The scope `pg` of the node named `node` (its latest incarnation).
    fn groups(&self, node: &str) -> Option<Groups> {
        self.with(|b| b.groups.get(node).cloned())
    }

    /// The index (1-based) of a node by name.
    fn index(&self, name: &str) -> u16 {
        self.with(|b| {
            b.nodes
                .iter()
                .position(|n| n == name)
                .map_or(0, |i| i as u16 + 1)
        })
    }

    /// A node's incarnation ended: its paths start afresh (`start`, not `restart`).
    fn forget_starts_on(&self, node: &str) {
        let prefix = format!("{node}:");
        self.with(|b| b.starts.retain(|path, _| !path.starts_with(&prefix)));
    }

    /// The name of a node by index.
    fn name(&self, index: u16) -> String {
        self.with(|b| b.nodes.get(usize::from(index).wrapping_sub(1)).cloned())
            .unwrap_or_else(|| format!("n{index}"))
    }
}

fn line(p: &Process, text: String) {
    p.node().record(EventKind::Line(text));
}

fn line_term(p: &Process, prefix: String, term: Term) {
    p.node().record(EventKind::LineTerm(prefix, term));
}

/// A worker's cross-node set-up right after its start: its name is registered before.
pub(super) fn after_start(
    p: &Process,
    book: &Book,
    w: &scenario::PeerSpec,
    watching: &mut Watching,
) {
    for t in &w.link {
        if let Some(pid) = book.resolve(t) {
            let _ = p.link(pid);
        }
    }
    for t in &w.monitor {
        monitor(p, book, t.clone(), book.resolve(t), watching);
    }
    for n in &w.monitor_node {
        p.monitor_node(book.index(n), true);
    }
}

fn monitor(p: &Process, book: &Book, target: Target, pid: Option<Pid>, watching: &mut Watching) {
    let mref = match (&target, pid) {
        (Target::Name { name, node }, _) => p.monitor_name(name, book.index(node)),
        (_, Some(pid)) => p.monitor(pid),
        (_, None) => return,
    };
    let shown = match &target {
        Target::Path { path, .. } => path.clone(),
        name => name.to_string(),
    };
    watching.monitors.insert(mref, shown);
}

/// What a worker of a multi-node scenario does with a message other than its own
/// (the oracle's `oracle_worker` on a peer): logs it, answers a call, does an [`Act`].
/// Returns the exit reason if it is to exit.
pub(super) async fn on_message(
    p: &Process,
    book: &Book,
    path: &str,
    w: &scenario::PeerSpec,
    watching: &mut Watching,
    msg: Msg,
) -> Option<ExitReason> {
    let msg = match server::take_call::<OracleServer>(msg) {
        Ok((request, from)) => {
            let prefix = format!("served {path} from={} req=", book.shown(from.pid()));
            line_term(p, prefix, request.clone());
            if !w.no_reply {
                if w.reply_delay > 0 {
                    p.sleep(Duration::from_millis(w.reply_delay)).await;
                }
                from.reply(p, request);
            }
            return None;
        }
        Err(msg) => msg,
    };
    let msg = match msg.downcast::<Numbered>() {
        Ok(Numbered { from, i }) => {
            line(p, format!("recv {path} from={} msg={i}", book.shown(from)));
            return None;
        }
        Err(msg) => msg,
    };
    let msg = match msg.downcast::<ActMsg>() {
        Ok(ActMsg(act, ack)) => return act_on(p, book, path, watching, act, ack).await,
        Err(msg) => msg,
    };
    match msg {
        Msg::Exit { from, reason } => {
            let prefix = format!("trapped {path} from={} reason=", book.shown(from));
            line_term(p, prefix, reason.to_term());
        }
        Msg::Down { mref, pid, reason } => {
            let target = watching
                .monitors
                .remove(&mref)
                .unwrap_or_else(|| book.shown(pid));
            line_term(
                p,
                format!("down {path} target={target} reason="),
                reason.to_term(),
            );
        }
        Msg::NodeDown { node, reason } => {
            let node = book.name(node);
            match reason {
                None => line(p, format!("nodedown {path} node={node}")),
                Some(r) => line(
                    p,
                    format!("nodedown {path} node={node} reason={}", r.as_atom()),
                ),
            }
        }
        Msg::NodeUp { node } => line(p, format!("nodeup {path} node={}", book.name(node))),
        Msg::User(_) => {}
    }
    None
}

async fn act_on(
    p: &Process,
    book: &Book,
    path: &str,
    watching: &mut Watching,
    act: Act,
    ack: Option<(Pid, Ref)>,
) -> Option<ExitReason> {
    let done = |p: &Process| {
        if let Some((to, tag)) = ack {
            p.send(to, super::Done(tag, Term::atom("ok")));
        }
    };
    match act {
        Act::Link(pid) => {
            let _ = p.link(pid);
        }
        Act::Monitor(target, pid) => monitor(p, book, target, pid, watching),
        Act::MonitorNode(node) => p.monitor_node(node, true),
        Act::MonitorNodes => p.monitor_nodes(true),
        Act::Send {
            to,
            target,
            first,
            count,
            exit,
        } => {
            for i in first..first + count {
                let msg = Numbered { from: p.pid(), i };
                match (&target, to) {
                    (Target::Name { name, node }, _) => p.send_named(name, book.index(node), msg),
                    (_, Some(pid)) => p.send(pid, msg),
                    (_, None) => {}
                }
            }
            done(p);
            return exit.map(ExitReason::from_term);
        }
        Act::Call {
            to,
            target,
            request,
            timeout,
        } => {
            done(p);
            let wait = timeout.map(Duration::from_millis);
            let (result, shown) = match (&target, to) {
                (Target::Name { name, node }, _) => {
                    let n = book.index(node);
                    let r =
                        ServerRef::<OracleServer>::call_named(p, name, n, request.clone(), wait)
                            .await;
                    (
                        r,
                        Term::tuple([Term::atom(name.clone()), Term::atom(node.clone())]),
                    )
                }
                (_, Some(pid)) => {
                    let r = ServerRef::<OracleServer>::from_pid(pid)
                        .call_timeout(p, request.clone(), wait)
                        .await;
                    (r, Term::Pid(pid))
                }
                (_, None) => return None,
            };
            let timeout = timeout.map_or(Term::atom("infinity"), |ms| Term::Int(ms as i64));
            let mfa = Term::tuple([
                Term::atom("gen_server"),
                Term::atom("call"),
                Term::list([shown, request, timeout]),
            ]);
            let term = match result {
                Ok(reply) => Term::tuple([Term::atom("reply"), reply]),
                Err(e) => {
                    let reason = match e {
                        CallError::NodeDown(n) => {
                            Term::tuple([Term::atom("nodedown"), Term::atom(book.name(n))])
                        }
                        CallError::Noproc => Term::atom("noproc"),
                        CallError::Timeout => Term::atom("timeout"),
                        CallError::Exit(r) => r.to_term(),
                    };
                    Term::tuple([Term::atom("exit"), Term::tuple([reason, mfa])])
                }
            };
            line_term(p, format!("result call_remote {path} -> "), term);
            return None;
        }
        Act::Busy(ms) => {
            done(p);
            p.sleep(Duration::from_millis(ms)).await;
            return None;
        }
        Act::PgJoin(group) => {
            let node = path.split(':').next().unwrap_or_default();
            if let Some(groups) = book.groups(node) {
                let _ = groups.join(p, group, [p.pid()]).await;
            }
        }
    }
    done(p);
    None
}

/// Runs a multi-node scenario (seed 0) and returns its canonical trace.
pub fn run(sc: &ClusterScenario) -> Vec<String> {
    run_seeded(sc, 0)
}

/// [`run`] with another seed; the trace must not depend on it.
pub fn run_seeded(sc: &ClusterScenario, seed: u64) -> Vec<String> {
    let sim = ClusterSim::new(seed)
        .names(sc.nodes.iter().map(|n| n.name.clone()))
        .auto_connect(sc.auto_connect)
        .net_ticktime(Duration::from_secs(sc.net_ticktime));
    let book = Book::for_nodes(sc.nodes.iter().map(|n| n.name.clone()).collect());
    let sc2 = Arc::new(sc.clone());
    let b2 = book.clone();
    let report = sim.run(move |ctl| driver(ctl, sc2, b2));
    let known = book.with(|b| b.known.clone());
    let mut lines = report
        .trace
        .oracle_lines_known(|path| known.contains(path) || path.ends_with(":driver"));
    if let Some(failure) = report.failure() {
        lines.push(format!("otpsim_error {failure}"));
    }
    lines
}

/// How long the driver's control of a node takes, at least (the oracle's `peer` channel).
const CONTROL_ROUND_TRIP: Duration = Duration::from_millis(2);

/// The agents of the running nodes (by index in `nodes`).
type Agents = BTreeMap<usize, Pid>;

async fn driver(ctl: ClusterCtl, sc: Arc<ClusterScenario>, book: Book) {
    let n = sc.nodes.len() as u16;
    for a in 1..=n {
        for b in a + 1..=n {
            ctl.connect(a, b);
        }
    }
    let start = crate::rt::now();
    let mut agents = Agents::new();
    for (i, node) in sc.nodes.iter().enumerate() {
        if node.boot {
            boot(&ctl, &sc, &book, &mut agents, i).await;
        } else {
            ctl.crash(i as u16 + 1);
        }
    }
    for op in &sc.script {
        let due = start + Duration::from_millis(op.at);
        let now = crate::rt::now();
        if due > now {
            ctl.sleep(due - now).await;
        }
        run_op(&ctl, &sc, &book, &mut agents, &op.action).await;
    }
    ctl.sleep(Duration::from_millis(sc.settle_ms)).await;
}

/// Starts node `i`'s agent and its tree; waits until the root has started.
async fn boot(ctl: &ClusterCtl, sc: &ClusterScenario, book: &Book, agents: &mut Agents, i: usize) {
    let Some(tree) = sc.nodes[i].tree.clone() else {
        return;
    };
    let name = sc.nodes[i].name.clone();
    let (ready, started) = crate::rt::sync::oneshot::channel();
    let book = book.clone();
    let pg = sc.uses_pg;
    let pid = ctl
        .node(i as u16 + 1)
        .spawn(move |p| agent(p, name, tree, book, pg, ready));
    agents.insert(i, pid);
    let _ = started.await;
}

/// A node's agent: the root supervisor's parent, which runs the node's local operations.
async fn agent(
    p: Process,
    name: String,
    sc: Arc<Scenario>,
    book: Book,
    pg: bool,
    ready: crate::rt::sync::oneshot::Sender<()>,
) {
    p.trap_exit(true);
    p.node().label(p.pid(), format!("{name}:driver"), false);
    // The oracle's peers start the scope `pg` before their tree when the script uses it.
    if pg {
        if let Ok(groups) = Groups::start_link(&p, "pg").await {
            book.with(|b| b.groups.insert(name.clone(), groups));
        }
    }
    let root = sc.tree.path.clone();
    line(&p, format!("call start_root {root}"));
    let result = start_any_supervisor(&p, &book, &sc.tree).await;
    let term = match &result {
        Ok(sup) => Term::tuple([Term::atom("ok"), Term::Pid(*sup)]),
        Err(e) => Term::tuple([Term::atom("error"), e.reason().to_term()]),
    };
    line_term(&p, format!("result start_root {root} -> "), term);
    let _ = ready.send(());
    loop {
        let msg = p.recv().await;
        if let Ok(AgentOp(action, done)) = msg.downcast::<AgentOp>() {
            exec(&p, &sc, &book, &action).await;
            while p
                .try_receive(|m| matches!(m, Msg::Exit { .. }))
                .await
                .is_some()
            {}
            let _ = done.send(());
        }
    }
}

/// Has node `i`'s agent run a local action; waits for it.
async fn on_agent(ctl: &ClusterCtl, agents: &Agents, i: usize, action: super::Action) -> bool {
    let Some(&agent) = agents.get(&i) else {
        return false;
    };
    let (tx, rx) = crate::rt::sync::oneshot::channel();
    ctl.node(i as u16 + 1).send(agent, AgentOp(action, tx));
    // A paused node's agent does nothing until it resumes: the driver goes on.
    let done = crate::rt::timeout(DRIVER_WAIT, rx).await;
    if done.is_none() {
        ctl.note(format!("oracle_error node_busy {}", i + 1));
    }
    matches!(done, Some(Ok(())))
}

/// How long the driver waits for a node to carry out an operation (the oracle's 5 s).
const DRIVER_WAIT: Duration = Duration::from_secs(5);

/// Has the worker at `path` do `act`; waits for its acknowledgement if `wait`.
async fn on_worker(
    ctl: &ClusterCtl,
    sc: &ClusterScenario,
    book: &Book,
    path: &str,
    act: Act,
    wait: bool,
) {
    let Some(worker) = book.current(path) else {
        ctl.note(format!("oracle_error worker_down {path} noproc"));
        return;
    };
    let k = sc.node_of(path, "").map_or(0, |i| i as u16 + 1);
    if !wait {
        ctl.node(k).send(worker, ActMsg(act, None));
        return;
    }
    let acked = ctl.on(k, move |h| async move {
        let tag = h.make_ref();
        h.send(worker, ActMsg(act, Some((h.pid(), tag))));
        let accept = |m: &Msg| m.downcast_ref::<super::Done>().is_some_and(|d| d.0 == tag);
        h.receive_timeout(accept, DRIVER_WAIT).await.is_some()
    });
    // The helper itself waits on a paused node: the driver bounds the wait too.
    if crate::rt::timeout(DRIVER_WAIT, acked).await.flatten() != Some(true) {
        ctl.note(format!("oracle_error worker_timeout {path}"));
    }
}

async fn run_op(
    ctl: &ClusterCtl,
    sc: &ClusterScenario,
    book: &Book,
    agents: &mut Agents,
    action: &ClusterAction,
) {
    let name = |i: usize| sc.nodes[i].name.clone();
    let k = |i: usize| i as u16 + 1;
    match action {
        ClusterAction::Local { node, action } => {
            on_agent(ctl, agents, *node, action.clone()).await;
        }
        ClusterAction::Stop(only) => {
            for i in 0..sc.nodes.len() {
                if only.is_some_and(|o| o != i) {
                    continue;
                }
                on_agent(ctl, agents, i, super::Action::Stop).await;
                // The oracle's driver reaches each node over a control channel of its own,
                // with a round trip longer than a link's latency: what the stop sent to other
                // nodes lands before the next node is stopped.
                ctl.sleep(CONTROL_ROUND_TRIP).await;
            }
        }
        ClusterAction::Disconnect(a, b) => {
            ctl.note(format!("op disconnect {} {}", name(*a), name(*b)));
            ctl.disconnect(k(*a), k(*b));
        }
        ClusterAction::Connect(a, b) => {
            ctl.note(format!("op connect {} {}", name(*a), name(*b)));
            if !ctl.connect(k(*a), k(*b)) {
                ctl.note(format!("result connect {} {} -> false", name(*a), name(*b)));
            }
        }
        ClusterAction::Halt(i) => {
            ctl.note(format!("op halt {}", name(*i)));
            agents.remove(i);
            ctl.crash(k(*i));
            book.forget_starts_on(&name(*i));
        }
        ClusterAction::Restart(i, connect) => {
            ctl.note(format!("op restart {}", name(*i)));
            agents.remove(i);
            ctl.restart(k(*i));
            book.forget_starts_on(&name(*i));
            let peers: Vec<usize> = match connect {
                Some(list) => list.clone(),
                // Every running node.
                None => (0..sc.nodes.len())
                    .filter(|&j| j != *i && ctl.is_up(k(j)))
                    .collect(),
            };
            for j in peers {
                ctl.connect(k(*i), k(j));
            }
            boot(ctl, sc, book, agents, *i).await;
        }
        ClusterAction::Pause(i) => {
            ctl.note(format!("op pause {}", name(*i)));
            ctl.pause(k(*i));
        }
        ClusterAction::Resume(i) => {
            ctl.note(format!("op resume {}", name(*i)));
            ctl.resume(k(*i));
        }
        ClusterAction::LinkRemote(path, target) => {
            ctl.note(format!("op link_remote {path} target={target}"));
            if let Some(pid) = book.resolve(target) {
                on_worker(ctl, sc, book, path, Act::Link(pid), true).await;
            }
        }
        ClusterAction::MonitorRemote(path, target) => {
            ctl.note(format!("op monitor_remote {path} target={target}"));
            let act = Act::Monitor(target.clone(), book.resolve(target));
            on_worker(ctl, sc, book, path, act, true).await;
        }
        ClusterAction::MonitorNode(path, node) => {
            ctl.note(format!("op monitor_node {path} node={}", name(*node)));
            on_worker(ctl, sc, book, path, Act::MonitorNode(k(*node)), true).await;
        }
        ClusterAction::MonitorNodes(path) => {
            ctl.note(format!("op monitor_nodes {path}"));
            on_worker(ctl, sc, book, path, Act::MonitorNodes, true).await;
        }
        ClusterAction::SendRemote {
            path,
            target,
            first,
            count,
            exit,
        } => {
            let last = first + count - 1;
            let exit_text = exit
                .as_ref()
                .map_or(String::new(), |e| format!(" exit={e}"));
            ctl.note(format!(
                "op send_remote {path} target={target} msgs={first}..{last}{exit_text}"
            ));
            let act = Act::Send {
                to: book.resolve(target),
                target: target.clone(),
                first: *first,
                count: *count,
                exit: exit.clone(),
            };
            on_worker(ctl, sc, book, path, act, true).await;
        }
        ClusterAction::CallRemote {
            path,
            target,
            request,
            timeout,
        } => {
            let shown = timeout.map_or("infinity".to_string(), |t| t.to_string());
            ctl.note(format!(
                "op call_remote {path} target={target} request={request} timeout={shown}"
            ));
            let act = Act::Call {
                to: book.resolve(target),
                target: target.clone(),
                request: request.clone(),
                timeout: *timeout,
            };
            on_worker(ctl, sc, book, path, act, false).await;
        }
        ClusterAction::Busy(path, ms) => {
            ctl.note(format!("op busy {path} ms={ms}"));
            on_worker(ctl, sc, book, path, Act::Busy(*ms), false).await;
        }
        ClusterAction::Sleep => {}
        ClusterAction::PgJoin(path, group) => {
            ctl.note(format!(
                "op pg_join {path} group={}",
                Term::atom(group.clone())
            ));
            on_worker(ctl, sc, book, path, Act::PgJoin(group.clone()), true).await;
        }
        ClusterAction::PgMembers(i, group) => {
            let members = book
                .groups(&name(*i))
                .map_or(Vec::new(), |g| g.get_members(group));
            // The oracle sorts the printed pids (`lists:sort` of the strings).
            let mut shown: Vec<String> = members
                .iter()
                .map(|&m| match book.shown(m) {
                    path if path.starts_with('<') => path,
                    path => format!("<{path}>"),
                })
                .collect();
            shown.sort();
            ctl.note(format!(
                "result pg_members {} {} -> [{}]",
                name(*i),
                Term::atom(group.clone()),
                shown.join(",")
            ));
        }
        ClusterAction::Nodes(i) => {
            // The oracle sorts the node names (each with the same prefix).
            let mut peers: Vec<String> = ctl
                .connected(k(*i))
                .into_iter()
                .map(|j| name(usize::from(j) - 1))
                .collect();
            peers.sort();
            ctl.note(format!(
                "result nodes {} -> [{}]",
                name(*i),
                peers.join(",")
            ));
        }
    }
}

/// Compares a multi-node trace with the oracle's: line by line, except inside the
/// reference's `unordered { }` blocks (a multiset) and `interleaved { }` blocks (each node's
/// lines in order), applied at the same positions of ours, which has no markers; runs of
/// parallel shutdown lines are sorted in both first. Returns the first difference.
pub fn compare(sc: &ClusterScenario, expected: &[String], actual: &[String]) -> Option<String> {
    let parallel = |p: &str| sc.parallel_shutdown(p);
    let mut e: Vec<Line> = Vec::new();
    let mut kind = Block::None;
    for l in expected {
        match l.as_str() {
            "unordered {" => kind = Block::Unordered,
            "interleaved {" => kind = Block::Interleaved,
            "}" => kind = Block::None,
            text => e.push(Line {
                text: text.to_string(),
                block: kind,
            }),
        }
    }
    let texts: Vec<String> = e.iter().map(|l| l.text.clone()).collect();
    let sorted = super::sort_parallel_by(&texts, parallel);
    for (l, t) in e.iter_mut().zip(sorted) {
        l.text = t;
    }
    let a = super::sort_parallel_by(actual, parallel);
    let mut i = 0;
    while i < e.len() {
        let block = e[i].block;
        let end = (i..e.len())
            .find(|&j| e[j].block != block)
            .unwrap_or(e.len());
        let (want, got) = (&e[i..end], a.get(i..end.min(a.len())).unwrap_or(&[]));
        let want: Vec<&str> = want.iter().map(|l| l.text.as_str()).collect();
        let got: Vec<&str> = got.iter().map(String::as_str).collect();
        let same = match block {
            Block::None => want == got,
            Block::Unordered => sorted_eq(&want, &got),
            Block::Interleaved => by_node(&want) == by_node(&got),
        };
        if !same {
            let first = (0..want.len())
                .find(|&j| want.get(j) != got.get(j))
                .unwrap_or(0);
            return Some(format!(
                "line {} ({block:?} block of {} lines): expected `{}`, got `{}`",
                i + first + 1,
                want.len(),
                want.get(first).unwrap_or(&"(end)"),
                got.get(first).unwrap_or(&"(end of trace)")
            ));
        }
        i = end;
    }
    (a.len() > e.len()).then(|| {
        format!(
            "line {}: expected the end, got `{}`",
            e.len() + 1,
            a[e.len()]
        )
    })
}

struct Line {
    text: String,
    block: Block,
}

fn sorted_eq(a: &[&str], b: &[&str]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// Lines grouped by their node, each group in order (the README's rule: the node of a line is
/// the part before `:` of its first word after the tag that contains `:` and no `=`).
fn by_node<'a>(lines: &[&'a str]) -> BTreeMap<String, Vec<&'a str>> {
    let mut out: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for l in lines {
        let node = l
            .split(' ')
            .skip(1)
            .find(|w| w.contains(':') && !w.contains('='))
            .and_then(|w| w.split_once(':'))
            .map_or("", |(n, _)| n);
        out.entry(node.to_string()).or_default().push(l);
    }
    out
}
