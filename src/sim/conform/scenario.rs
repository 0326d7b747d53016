//! The oracle's scenario format (`otp-oracle/README.md`), parsed into types. Every error names
//! the field it is about (`tree.children[1].shutdown`).
//!
//! The scenario format field by field: each field's parsing and error message sits next to its
//! meaning (hence the file's length).

use crate::registry::Keys;
use crate::term::Term;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a scenario file cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The file is not JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// A field is missing or has the wrong shape.
    #[error("field `{field}`: {message}")]
    Invalid {
        /// Where, e.g. `script[3].op`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A valid oracle scenario that uses something otpsim does not model yet.
    #[error("field `{field}`: {what} not supported yet")]
    Unsupported {
        /// Where.
        field: String,
        /// What.
        what: String,
    },
}

pub(super) type Result<T> = std::result::Result<T, ScenarioError>;

pub(super) fn invalid(field: &str, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A JSON object together with its place in the file, for errors that name the field.
pub(super) struct Obj<'a> {
    map: &'a Map<String, Value>,
    at: String,
}

impl<'a> Obj<'a> {
    pub(super) fn new(value: &'a Value, at: impl Into<String>) -> Result<Obj<'a>> {
        let at = at.into();
        match value {
            Value::Object(map) => Ok(Obj { map, at }),
            _ => Err(invalid(&at, "expected an object")),
        }
    }

    pub(super) fn field(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.into()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    pub(super) fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(&self.field(key), "expected a string")),
        }
    }

    pub(super) fn req_str(&self, key: &str) -> Result<&'a str> {
        self.str(key)?
            .ok_or_else(|| invalid(&self.field(key), "missing"))
    }

    pub(super) fn uint(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(&self.field(key), "expected a non-negative integer")),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(&self.field(key), "expected true or false")),
        }
    }

    pub(super) fn term(&self, key: &str) -> Result<Option<Term>> {
        self.get(key)
            .map(|v| json_term(v, &self.field(key)))
            .transpose()
    }

    /// A value the oracle passes to OTP as decoded, without turning strings into atoms
    /// (`intensity`, `period`, `significant`): a string stays a string.
    fn raw(&self, key: &str) -> Result<Option<Term>> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(Some(Term::Str(s.clone()))),
            _ => self.term(key),
        }
    }
}

/// A JSON value as the oracle reads reasons and flag values: a string is an atom, an array a
/// tuple, an integer an integer, `true`/`false` atoms.
fn json_term(value: &Value, at: &str) -> Result<Term> {
    match value {
        Value::String(s) => Ok(Term::atom(s.clone())),
        Value::Bool(b) => Ok(Term::atom(b.to_string())),
        Value::Number(n) => n
            .as_i64()
            .map(Term::Int)
            .ok_or_else(|| invalid(at, "expected an integer")),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| json_term(v, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>>>()
            .map(Term::Tuple),
        _ => Err(invalid(at, "expected a string, an integer or an array")),
    }
}

/// What a worker's start function does on one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAction {
    /// Start the worker.
    Ok,
    /// Return `ignore`.
    Ignore,
    /// Return `{error, Reason}`.
    Error(Term),
}

impl StartAction {
    fn parse(s: &str, at: &str) -> Result<StartAction> {
        match s {
            "ok" => Ok(StartAction::Ok),
            "ignore" => Ok(StartAction::Ignore),
            "error" => Ok(StartAction::Error(Term::atom("start_failed"))),
            _ => match s.strip_prefix("error:") {
                Some(reason) => Ok(StartAction::Error(Term::atom(reason.to_string()))),
                None => Err(invalid(at, format!("unknown start behaviour {s:?}"))),
            },
        }
    }

    /// The oracle's term for it: `ok`, `ignore`, `{error,R}`.
    pub fn to_term(&self) -> Term {
        match self {
            StartAction::Ok => Term::atom("ok"),
            StartAction::Ignore => Term::atom("ignore"),
            StartAction::Error(r) => Term::tuple([Term::atom("error"), r.clone()]),
        }
    }
}

/// `start` or `start_seq` of an object.
fn start_seq(obj: &Obj) -> Result<Vec<StartAction>> {
    if let Some(v) = obj.get("start_seq") {
        let at = obj.field("start_seq");
        let items = v
            .as_array()
            .ok_or_else(|| invalid(&at, "expected an array of start behaviours"))?;
        if !items.is_empty() {
            return items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let at = format!("{at}[{i}]");
                    let s = v
                        .as_str()
                        .ok_or_else(|| invalid(&at, "expected a string"))?;
                    StartAction::parse(s, &at)
                })
                .collect();
        }
    }
    let start = obj.str("start")?.unwrap_or("ok");
    Ok(vec![StartAction::parse(start, &obj.field("start"))?])
}

/// How long a worker keeps running after its stop signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopDelay {
    /// This many milliseconds.
    Ms(u64),
    /// Until it is killed.
    Infinity,
}

/// The behaviour of a scenario worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerSpec {
    /// Whether it traps exits (default true).
    pub trap_exit: bool,
    /// Delay after the stop signal.
    pub stop_delay: StopDelay,
    /// Exit reason when stopping (default: the signal's reason).
    pub stop_reason: Option<Term>,
    /// Start behaviour per attempt.
    pub start_seq: Vec<StartAction>,
    /// Each incarnation exits by itself this many ms after starting.
    pub crash_after: Option<u64>,
    /// ... with this reason.
    pub crash_reason: Term,
    /// Registrations the worker makes while it starts.
    pub register: Vec<Registration>,
    /// What it does across nodes (multi-node scenarios only).
    pub peer: PeerSpec,
}

/// A worker's fields for multi-node scenarios (`otp-oracle/README.md`, "Worker fields").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSpec {
    /// A local name it registers before its start is acknowledged.
    pub register_as: Option<String>,
    /// Whether it answers a call with the request (`echo`, the default) or never
    /// (`noreply`).
    pub no_reply: bool,
    /// Milliseconds it sleeps before replying.
    pub reply_delay: u64,
    /// What every incarnation links to right after its start.
    pub link: Vec<Target>,
    /// What every incarnation monitors right after its start.
    pub monitor: Vec<Target>,
    /// The nodes every incarnation monitors (`monitor_node`).
    pub monitor_node: Vec<String>,
}

/// The target of a cross-node action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The pid started at a path (`b:root/w`): the latest, or the `n`-th ever (`#n`,
    /// counting across node restarts).
    Path {
        /// The path, with its node.
        path: String,
        /// Which start, if not the latest.
        nth: Option<usize>,
    },
    /// A registered name on a node (`{Name, Node}`).
    Name {
        /// The name.
        name: String,
        /// The node's name.
        node: String,
    },
}

impl Target {
    /// Parses a target (a path string or `{"name", "node"}`).
    pub(super) fn parse(value: &Value, at: &str) -> Result<Target> {
        match value {
            Value::String(s) => {
                let (path, nth) = match s.split_once('#') {
                    Some((path, n)) => {
                        let n = n.parse().map_err(|_| invalid(at, "expected PATH#N"))?;
                        (path, Some(n))
                    }
                    None => (s.as_str(), None),
                };
                if !path.contains(':') {
                    return Err(invalid(at, "a path names its node (\"b:root/w\")"));
                }
                Ok(Target::Path {
                    path: path.into(),
                    nth,
                })
            }
            value => {
                let obj = Obj::new(value, at)?;
                Ok(Target::Name {
                    name: obj.req_str("name")?.into(),
                    node: obj.req_str("node")?.into(),
                })
            }
        }
    }

    /// The node the target is on.
    pub fn node(&self) -> &str {
        match self {
            Target::Path { path, .. } => path.split_once(':').map_or("", |(n, _)| n),
            Target::Name { node, .. } => node,
        }
    }
}

impl std::fmt::Display for Target {
    /// As the oracle prints it: `b:root/w`, `b:root/w#1`, `{srv,b}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Path { path, nth: None } => f.write_str(path),
            Target::Path { path, nth: Some(n) } => write!(f, "{path}#{n}"),
            Target::Name { name, node } => write!(f, "{{{name},{node}}}"),
        }
    }
}

fn targets(obj: &Obj, key: &str) -> Result<Vec<Target>> {
    let Some(list) = obj.get(key) else {
        return Ok(Vec::new());
    };
    let at = obj.field(key);
    let list = list
        .as_array()
        .ok_or_else(|| invalid(&at, "expected an array"))?;
    list.iter()
        .enumerate()
        .map(|(i, t)| Target::parse(t, &format!("{at}[{i}]")))
        .collect()
}

impl PeerSpec {
    fn parse(obj: &Obj) -> Result<PeerSpec> {
        let no_reply = match obj.str("reply")? {
            None | Some("echo") => false,
            Some("noreply") => true,
            Some(other) => {
                let message = format!("expected \"echo\" or \"noreply\", not {other:?}");
                return Err(invalid(&obj.field("reply"), message));
            }
        };
        let mut monitor_node = Vec::new();
        if let Some(list) = obj.get("monitor_node") {
            let at = obj.field("monitor_node");
            for v in list
                .as_array()
                .ok_or_else(|| invalid(&at, "expected an array"))?
            {
                let name = v
                    .as_str()
                    .ok_or_else(|| invalid(&at, "expected node names"))?;
                monitor_node.push(name.to_string());
            }
        }
        Ok(PeerSpec {
            register_as: obj.str("register_as")?.map(String::from),
            no_reply,
            reply_delay: obj.uint("reply_delay")?.unwrap_or(0),
            link: targets(obj, "link")?,
            monitor: targets(obj, "monitor")?,
            monitor_node,
        })
    }
}

/// A registration in a registry: `{"registry", "key", "value"}` (a string key stays a
/// string, as the oracle passes it to Elixir; the value is read like a reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The registry's name.
    pub registry: String,
    /// The key.
    pub key: Term,
    /// The value (`nil` by default).
    pub value: Term,
}

/// A registry node: `Registry.start_link(keys:, name:, partitions:)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryNode {
    /// Unique or duplicate keys.
    pub keys: Keys,
    /// Its name (the node's id by default).
    pub name: String,
    /// Its number of partitions.
    pub partitions: usize,
}

impl WorkerSpec {
    fn parse(obj: &Obj) -> Result<WorkerSpec> {
        let mut register = Vec::new();
        if let Some(list) = obj.get("register") {
            let at = obj.field("register");
            let list = list
                .as_array()
                .ok_or_else(|| invalid(&at, "expected an array"))?;
            for (i, r) in list.iter().enumerate() {
                let r = Obj::new(r, format!("{at}[{i}]"))?;
                register.push(Registration {
                    registry: r.req_str("registry")?.into(),
                    key: r
                        .raw("key")?
                        .ok_or_else(|| invalid(&r.field("key"), "missing"))?,
                    value: r.term("value")?.unwrap_or_else(|| Term::atom("nil")),
                });
            }
        }
        let stop_delay = match obj.get("stop_delay") {
            None => StopDelay::Ms(0),
            Some(Value::String(s)) if s == "infinity" => StopDelay::Infinity,
            Some(v) => StopDelay::Ms(v.as_u64().ok_or_else(|| {
                invalid(
                    &obj.field("stop_delay"),
                    "expected milliseconds or \"infinity\"",
                )
            })?),
        };
        Ok(WorkerSpec {
            trap_exit: obj.bool("trap_exit")?.unwrap_or(true),
            stop_delay,
            stop_reason: obj.term("stop_reason")?,
            start_seq: start_seq(obj)?,
            crash_after: obj.uint("crash_after")?,
            crash_reason: obj
                .term("crash_reason")?
                .unwrap_or_else(|| Term::atom("boom")),
            register,
            peer: PeerSpec::parse(obj)?,
        })
    }
}

/// A node of the tree: a worker or a supervisor.
#[derive(Clone, Debug)]
pub struct TreeNode {
    /// The child id.
    pub id: String,
    /// Its path (`root/sub/a`).
    pub path: String,
    /// Whether it is a supervisor (static or dynamic).
    pub supervisor: bool,
    /// Whether it is a dynamic supervisor (Elixir's `DynamicSupervisor`).
    pub dynamic: bool,
    /// A registry node's settings.
    pub registry: Option<RegistryNode>,
    /// A dynamic supervisor's `max_children` (`"infinity"` or an integer).
    pub max_children: Option<Term>,
    /// The child spec fields, as terms (checked by OTP's rules when the spec is built):
    /// restart, significant, type, shutdown.
    pub spec_fields: [Option<Term>; 4],
    /// Supervisor flags as terms: strategy, intensity, period, auto_shutdown.
    pub flags: [Option<Term>; 4],
    /// A supervisor's children.
    pub children: Vec<Arc<TreeNode>>,
    /// A simple_one_for_one supervisor's template.
    pub template: Option<Template>,
    /// A worker's behaviour.
    pub worker: WorkerSpec,
}

impl TreeNode {
    fn parse(value: &Value, parent: Option<&str>, at: &str) -> Result<TreeNode> {
        TreeNode::parse_in(value, parent, "", at)
    }

    /// A node of a multi-node scenario's tree: the root's path names its node (`a:root`).
    pub(super) fn parse_root_of(value: &Value, node: &str, at: &str) -> Result<TreeNode> {
        TreeNode::parse_in(value, None, &format!("{node}:"), at)
    }

    fn parse_in(value: &Value, parent: Option<&str>, prefix: &str, at: &str) -> Result<TreeNode> {
        let obj = Obj::new(value, at)?;
        let id = obj.req_str("id")?.to_string();
        let path = match parent {
            Some(parent) => format!("{parent}/{id}"),
            None => format!("{prefix}{id}"),
        };
        let node_type = obj.str("type")?.unwrap_or("worker");
        let dynamic = node_type == "dynamic_supervisor";
        let registry = match node_type {
            "registry" => Some(RegistryNode {
                keys: match obj.str("keys")?.unwrap_or("unique") {
                    "unique" => Keys::Unique,
                    "duplicate" => Keys::Duplicate,
                    other => {
                        return Err(invalid(
                            &obj.field("keys"),
                            format!("unknown keys {other:?}"),
                        ))
                    }
                },
                name: obj.str("name")?.unwrap_or(&id).to_string(),
                partitions: obj.uint("partitions")?.unwrap_or(1).max(1) as usize,
            }),
            _ => None,
        };
        let supervisor = match node_type {
            "worker" => false,
            "supervisor" | "dynamic_supervisor" | "registry" => true,
            other => {
                return Err(invalid(
                    &obj.field("type"),
                    format!("unknown node type {other:?}"),
                ))
            }
        };
        let restart = obj.str("restart")?.map(|r| Term::atom(r.to_string()));
        let shutdown = match obj.get("shutdown") {
            None => None,
            Some(Value::String(s)) if s == "brutal_kill" || s == "infinity" => {
                Some(Term::atom(s.clone()))
            }
            Some(v) => Some(Term::Int(v.as_i64().ok_or_else(|| {
                invalid(
                    &obj.field("shutdown"),
                    "expected milliseconds, \"brutal_kill\" or \"infinity\"",
                )
            })?)),
        };
        let significant = obj.raw("significant")?;
        let kind = Term::atom(if supervisor { "supervisor" } else { "worker" });
        let flags = [
            obj.str("strategy")?.map(|s| Term::atom(s.to_string())),
            obj.raw("intensity")?,
            obj.raw("period")?,
            obj.str("auto_shutdown")?.map(|s| Term::atom(s.to_string())),
        ];
        let simple = flags[0]
            .as_ref()
            .is_some_and(|s| s.is_atom("simple_one_for_one"));
        let mut children = Vec::new();
        let mut template = None;
        if supervisor && simple {
            let at = obj.field("child_template");
            let json = match obj.get("child_template") {
                None => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(invalid(&at, "expected an object")),
            };
            let mut with_id = json.clone();
            with_id.insert("id".into(), "template".into());
            let node = TreeNode::parse(&Value::Object(with_id), Some(&path), &at)?;
            template = Some(Template {
                node: Arc::new(node),
                json,
            });
        } else if dynamic {
            if obj.get("children").is_some() {
                let at = obj.field("children");
                return Err(invalid(
                    &at,
                    "a dynamic_supervisor starts empty; add children with start_child",
                ));
            }
        } else if supervisor {
            if let Some(list) = obj.get("children") {
                let at = obj.field("children");
                let list = list
                    .as_array()
                    .ok_or_else(|| invalid(&at, "expected an array"))?;
                for (i, child) in list.iter().enumerate() {
                    children.push(Arc::new(TreeNode::parse(
                        child,
                        Some(&path),
                        &format!("{at}[{i}]"),
                    )?));
                }
            }
        }
        Ok(TreeNode {
            id,
            path,
            supervisor,
            dynamic,
            registry,
            max_children: obj.raw("max_children")?.map(|t| match t {
                Term::Str(s) if s == "infinity" => Term::atom("infinity"),
                t => t,
            }),
            spec_fields: [restart, significant, Some(kind), shutdown],
            flags,
            children,
            template,
            worker: WorkerSpec::parse(&obj)?,
        })
    }

    /// Whether it is a simple_one_for_one supervisor.
    pub fn is_simple(&self) -> bool {
        self.template.is_some()
    }

    /// Whether its children are keyed by pid (simple_one_for_one or dynamic).
    pub fn by_pid(&self) -> bool {
        self.is_simple() || self.dynamic
    }
}

/// The child template of a simple_one_for_one supervisor.
#[derive(Clone, Debug)]
pub struct Template {
    /// The template as a child node (id `template`).
    pub node: Arc<TreeNode>,
    /// Its JSON, which each `start_child` merges its own fields into.
    pub json: Map<String, Value>,
}

/// A script operation. Field names follow the oracle's format: `path` is a process's tree
/// path, `sup` a supervisor's.
#[derive(Clone, Debug)]
pub enum Action {
    /// The worker at `path` exits with `reason`.
    Crash {
        /// The worker.
        path: String,
        /// Its exit reason.
        reason: Term,
    },
    /// `exit(Pid, kill)` from the driver.
    Kill {
        /// The target.
        path: String,
    },
    /// `exit(Pid, reason)` from a process that is neither parent nor linked.
    ExitSignal {
        /// The target.
        path: String,
        /// The signal's reason.
        reason: Term,
    },
    /// The root's parent stops it.
    Stop,
    /// `terminate_child`, `restart_child`, `delete_child`.
    ChildCall {
        /// Which function.
        function: ChildFunction,
        /// The supervisor.
        sup: String,
        /// The child's id (or name below `sup`, when `by_pid`).
        id: String,
        /// Pass the latest pid of `sup/id` instead of the id (simple_one_for_one).
        by_pid: bool,
    },
    /// `start_child` on a static supervisor.
    StartChild {
        /// The supervisor.
        sup: String,
        /// The new child.
        child: Arc<TreeNode>,
    },
    /// `start_child` on a simple_one_for_one supervisor.
    StartDynamic {
        /// The supervisor.
        sup: String,
        /// The child's name (its path below `sup`).
        name: String,
        /// The template's worker fields merged with the child's.
        worker: WorkerSpec,
    },
    /// `which_children`.
    WhichChildren {
        /// The supervisor.
        sup: String,
    },
    /// `count_children`.
    CountChildren {
        /// The supervisor.
        sup: String,
    },
    /// Replaces the start behaviour of `path` for later attempts.
    SetStart {
        /// The worker's path.
        path: String,
        /// Its new start behaviour per attempt.
        seq: Vec<StartAction>,
    },
    /// The worker at `path` registers itself in `registry`.
    Register {
        /// The worker.
        path: String,
        /// The registry's name.
        registry: String,
        /// The key.
        key: Term,
        /// The value.
        value: Term,
    },
    /// The worker at `path` unregisters `key`.
    Unregister {
        /// The worker.
        path: String,
        /// The registry's name.
        registry: String,
        /// The key.
        key: Term,
    },
    /// `Registry.lookup/2` from the driver.
    Lookup {
        /// The registry's name.
        registry: String,
        /// The key.
        key: Term,
    },
    /// Nothing (a time marker).
    Sleep,
}

/// A registry named in an operation must be a registry node of the tree.
fn check_registry(name: &str, at: &str, sups: &BTreeMap<String, Arc<TreeNode>>) -> Result<()> {
    let known = sups
        .values()
        .any(|n| n.registry.as_ref().is_some_and(|r| r.name == name));
    if known {
        Ok(())
    } else {
        Err(invalid(
            at,
            format!("no registry named {name:?} in the tree"),
        ))
    }
}

/// The API functions that take a child reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildFunction {
    /// `terminate_child`.
    Terminate,
    /// `restart_child`.
    Restart,
    /// `delete_child`.
    Delete,
}

impl ChildFunction {
    /// The function's name.
    pub fn name(self) -> &'static str {
        match self {
            ChildFunction::Terminate => "terminate_child",
            ChildFunction::Restart => "restart_child",
            ChildFunction::Delete => "delete_child",
        }
    }
}

/// One timed operation.
#[derive(Clone, Debug)]
pub struct Op {
    /// Milliseconds after scenario time 0.
    pub at: u64,
    /// What to do.
    pub action: Action,
}

/// A whole scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// How long to wait after the last op.
    pub settle_ms: u64,
    /// The root supervisor.
    pub tree: Arc<TreeNode>,
    /// The script.
    pub script: Vec<Op>,
    /// Supervisors by path.
    pub supervisors: BTreeMap<String, Arc<TreeNode>>,
}

impl Scenario {
    /// Parses a scenario file's text.
    ///
    /// ```
    /// use otpsim::sim::conform::{Scenario, ScenarioError};
    /// let err = Scenario::parse(r#"{"tree": {"id": "root", "type": "supervisor",
    ///     "children": [{"id": "a", "shutdown": -1.5}]}}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "field `tree.children[0].shutdown`: expected milliseconds, \"brutal_kill\" or \"infinity\"");
    /// ```
    pub fn parse(text: &str) -> Result<Scenario> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ScenarioError::Json(e.to_string()))?;
        let top = Obj::new(&value, "")?;
        let tree_value = top.get("tree").ok_or_else(|| invalid("tree", "missing"))?;
        let tree = Arc::new(TreeNode::parse(tree_value, None, "tree")?);
        if !tree.supervisor {
            return Err(invalid("tree.type", "the root must be a supervisor"));
        }
        let mut supervisors = BTreeMap::new();
        collect_supervisors(&tree, &mut supervisors);
        let mut script = Vec::new();
        if let Some(list) = top.get("script") {
            let list = list
                .as_array()
                .ok_or_else(|| invalid("script", "expected an array"))?;
            for (i, op) in list.iter().enumerate() {
                script.push(parse_op(op, &format!("script[{i}]"), &supervisors)?);
            }
        }
        Ok(Scenario {
            name: top.str("name")?.unwrap_or("").into(),
            description: top.str("description")?.unwrap_or("").into(),
            settle_ms: top.uint("settle_ms")?.unwrap_or(500),
            tree,
            script,
            supervisors,
        })
    }

    /// Whether the supervisor at `path` stops its children in parallel (their shutdown lines
    /// have no defined order).
    pub fn parallel_shutdown(&self, path: &str) -> bool {
        self.supervisors.get(path).is_some_and(|s| s.by_pid())
    }
}

pub(super) fn collect_supervisors(node: &Arc<TreeNode>, out: &mut BTreeMap<String, Arc<TreeNode>>) {
    if node.supervisor {
        out.insert(node.path.clone(), node.clone());
        for child in &node.children {
            collect_supervisors(child, out);
        }
    }
}

pub(super) fn parse_op(
    value: &Value,
    at: &str,
    sups: &BTreeMap<String, Arc<TreeNode>>,
) -> Result<Op> {
    let obj = Obj::new(value, at)?;
    let op = obj.req_str("op")?;
    let path = || obj.req_str("path").map(String::from);
    let sup = || -> Result<(String, Arc<TreeNode>)> {
        let name = obj.req_str("sup")?;
        let node = sups
            .get(name)
            .ok_or_else(|| invalid(&obj.field("sup"), format!("no supervisor at path {name:?}")))?;
        Ok((name.to_string(), node.clone()))
    };
    let reason = |default: &'static str| -> Result<Term> {
        Ok(obj.term("reason")?.unwrap_or_else(|| Term::atom(default)))
    };
    let action = match op {
        "crash" => Action::Crash {
            path: path()?,
            reason: reason("boom")?,
        },
        "kill" => Action::Kill { path: path()? },
        "exit_signal" => Action::ExitSignal {
            path: path()?,
            reason: reason("shutdown")?,
        },
        "stop" => Action::Stop,
        "sleep" => Action::Sleep,
        "terminate_child" | "restart_child" | "delete_child" => {
            let (sup, node) = sup()?;
            let function = match op {
                "terminate_child" => ChildFunction::Terminate,
                "restart_child" => ChildFunction::Restart,
                _ => ChildFunction::Delete,
            };
            if node.dynamic && function != ChildFunction::Terminate {
                let what = format!("{op} does not exist for a dynamic_supervisor");
                return Err(invalid(&obj.field("op"), what));
            }
            let by_pid = node.by_pid() && obj.bool("id_is_pid")?.unwrap_or(true);
            Action::ChildCall {
                function,
                sup,
                id: obj.req_str("id")?.into(),
                by_pid,
            }
        }
        "start_child" => {
            let (sup, node) = sup()?;
            let child = obj
                .get("child")
                .ok_or_else(|| invalid(&obj.field("child"), "missing"))?;
            let field = obj.field("child");
            match &node.template {
                Some(template) => {
                    let overrides = Obj::new(child, field.clone())?;
                    let name = overrides.req_str("id")?.to_string();
                    let mut merged = template.json.clone();
                    merged.extend(overrides.map.iter().map(|(k, v)| (k.clone(), v.clone())));
                    let merged = Value::Object(merged);
                    let worker = WorkerSpec::parse(&Obj::new(&merged, field)?)?;
                    Action::StartDynamic { sup, name, worker }
                }
                None => Action::StartChild {
                    child: Arc::new(TreeNode::parse(child, Some(&sup), &field)?),
                    sup,
                },
            }
        }
        "which_children" => Action::WhichChildren { sup: sup()?.0 },
        "count_children" => Action::CountChildren { sup: sup()?.0 },
        "set_start" => Action::SetStart {
            path: path()?,
            seq: start_seq(&obj)?,
        },
        "register" | "unregister" => {
            let registry = obj.req_str("registry")?.to_string();
            check_registry(&registry, &obj.field("registry"), sups)?;
            let key = obj
                .raw("key")?
                .ok_or_else(|| invalid(&obj.field("key"), "missing"))?;
            let path = path()?;
            if op == "register" {
                let value = obj.term("value")?.unwrap_or_else(|| Term::atom("nil"));
                Action::Register {
                    path,
                    registry,
                    key,
                    value,
                }
            } else {
                Action::Unregister {
                    path,
                    registry,
                    key,
                }
            }
        }
        "lookup" => {
            let registry = obj.req_str("registry")?.to_string();
            check_registry(&registry, &obj.field("registry"), sups)?;
            let key = obj
                .raw("key")?
                .ok_or_else(|| invalid(&obj.field("key"), "missing"))?;
            Action::Lookup { registry, key }
        }
        other => {
            return Err(invalid(
                &obj.field("op"),
                format!("unknown operation {other:?}"),
            ))
        }
    };
    Ok(Op {
        at: obj.uint("at")?.unwrap_or(0),
        action,
    })
}
