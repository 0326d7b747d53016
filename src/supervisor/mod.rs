//! Supervisors with the semantics of OTP's `supervisor` (docs/behaviours.md §A-§I).
//!
//! A supervisor is a process that starts its children in order, restarts them by strategy
//! when they exit (within a restart intensity), and stops them in reverse order.
//!
//! ```
//! use otpsim::{rt, Node, ExitReason, Msg};
//! use otpsim::supervisor::{self, ChildSpec, Flags, Strategy, SupervisorSpec, ChildState};
//! use otpsim::server::{GenServer, Init};
//! # use otpsim::Process;
//!
//! struct Worker;
//! impl GenServer for Worker {
//!     type Arg = ();
//!     type Call = ();
//!     type Reply = ();
//!     type Cast = ();
//!     type Cont = ();
//!     async fn init(_: (), _p: &Process) -> Init<Self> {
//!         Init::Ok(Worker)
//!     }
//! }
//!
//! rt::block_on(0, async {
//!     let node = Node::new();
//!     let main = node.spawn(|p| async move {
//!         let spec = SupervisorSpec::new(Flags::new(Strategy::OneForOne).intensity(3))
//!             .child(ChildSpec::server::<Worker>("a", ()))
//!             .child(ChildSpec::server::<Worker>("b", ()));
//!         let sup = supervisor::start_link(&p, spec).await.unwrap();
//!         let children = sup.which_children(&p).await.unwrap();
//!         assert_eq!(children[0].id.as_deref(), Some("b")); // newest first
//!         let ChildState::Running(a) = children[1].state else { panic!() };
//!         let mref = p.monitor(a);
//!         p.exit(a, ExitReason::Kill);
//!         p.receive(|m| matches!(m, Msg::Down { mref: r, .. } if *r == mref)).await;
//!         // The supervisor got a's EXIT before this call: `a` runs again with a new pid.
//!         let again = sup.which_children(&p).await.unwrap();
//!         assert!(matches!(again[1].state, ChildState::Running(pid) if pid != a));
//!     });
//!     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
//! });
//! ```

mod children;
pub mod dynamic;
mod engine;
mod intensity;
mod shutdown;
mod spec;
pub mod task;

pub use intensity::RestartWindow;
pub use spec::{
    check_childspecs, start_result, AutoShutdown, BoxFuture, ChildId, ChildSpec, ChildType, Flags,
    FlagsError, InitError, Invalid, Restart, Shutdown, SpecError, Start, StartResult, Started,
    Strategy,
};

use crate::process::Process;
use crate::server::{self, CallError, ServerRef, StartError, StartOptions, StopError};
use crate::term::{Pid, Term};
use crate::trace::{EventKind, Offender, ReportContext, SupEvent};
use engine::{Call, Reply, Supervisor};
use std::sync::Arc;

/// What a supervisor's `init` returns: its flags and children.
#[derive(Clone, Debug, Default)]
pub struct SupervisorSpec {
    /// The flags.
    pub flags: Flags,
    /// The children, in start order.
    pub children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A supervisor with these flags and no children yet.
    pub fn new(flags: Flags) -> SupervisorSpec {
        SupervisorSpec {
            flags,
            children: Vec::new(),
        }
    }

    /// Appends a child.
    pub fn child(mut self, child: ChildSpec) -> SupervisorSpec {
        self.children.push(child);
        self
    }

    /// This supervisor as the child `id` of another supervisor (type supervisor, shutdown
    /// `infinity`); every restart starts it from this spec again.
    pub fn into_child(self, id: impl Into<ChildId>) -> ChildSpec {
        self.into_child_with(id, StartOptions::linked())
    }

    /// Like [`into_child`](Self::into_child), started with `start` (a local or via name;
    /// it is always linked to its supervisor).
    pub fn into_child_with(self, id: impl Into<ChildId>, start: StartOptions) -> ChildSpec {
        let spec = Arc::new(self);
        let start = StartOptions {
            link: true,
            ..start
        };
        ChildSpec::supervisor(
            id,
            Start::new(move |p| {
                let (spec, start) = (spec.clone(), start.clone());
                Box::pin(async move {
                    let init = move |_: &Process| SupervisorInit::Ok((*spec).clone());
                    start_result(start_with(p, init, start).await.map(|s| s.pid()))
                })
            }),
        )
        .modules(["supervisor"])
    }
}

/// The result of a supervisor's `init` callback.
#[derive(Clone, Debug)]
pub enum SupervisorInit {
    /// `{ok, {Flags, Children}}`.
    Ok(SupervisorSpec),
    /// `ignore`: the start returns [`StartError::Ignore`].
    Ignore,
    /// The flags or specs could not even be built (e.g. from a configuration file); the start
    /// fails with this error, as OTP's validation would.
    Invalid(InitError),
}

/// A child named by its id (static supervisors) or its pid (simple_one_for_one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildRef {
    /// By id.
    Id(String),
    /// By pid.
    Pid(Pid),
}

impl From<&str> for ChildRef {
    fn from(id: &str) -> ChildRef {
        ChildRef::Id(id.into())
    }
}

impl From<Pid> for ChildRef {
    fn from(pid: Pid) -> ChildRef {
        ChildRef::Pid(pid)
    }
}

/// Why an API call failed, with OTP's error terms ([`ChildError::to_term`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChildError {
    /// `not_found`: no child with that id (or pid).
    #[error("no such child")]
    NotFound,
    /// `running`: the child is running (restart_child, delete_child).
    #[error("the child is running")]
    Running,
    /// `restarting`: the child's restart is being retried.
    #[error("the child is restarting")]
    Restarting,
    /// `simple_one_for_one`: not available on a simple_one_for_one supervisor.
    #[error("not supported by a simple_one_for_one supervisor")]
    SimpleOneForOne,
    /// `already_present`: a child with that id exists but is not running.
    #[error("a child with that id exists")]
    AlreadyPresent,
    /// `{already_started, Pid}`: a child with that id is running.
    #[error("a child with that id is running as {0}")]
    AlreadyStarted(Pid),
    /// An invalid child spec.
    #[error("invalid child spec: {0}")]
    Invalid(SpecError),
    /// The start function returned `{error, Reason}`. `start_child` on a static supervisor
    /// adds the child record (`{error, {Reason, #child{}}}` in OTP 25).
    #[error("the child failed to start: {reason}")]
    StartFailed {
        /// The start function's reason.
        reason: Term,
        /// OTP 25's `#child{}` record, for `start_child` on a static supervisor.
        child: Option<Term>,
    },
    /// The supervisor could not be called (it is not running).
    #[error("the supervisor could not be called: {0}")]
    Supervisor(CallError),
}

impl ChildError {
    /// The `Reason` of OTP's `{error, Reason}`.
    pub fn to_term(&self) -> Term {
        match self {
            ChildError::NotFound => Term::atom("not_found"),
            ChildError::Running => Term::atom("running"),
            ChildError::Restarting => Term::atom("restarting"),
            ChildError::SimpleOneForOne => Term::atom("simple_one_for_one"),
            ChildError::AlreadyPresent => Term::atom("already_present"),
            ChildError::AlreadyStarted(pid) => {
                Term::tuple([Term::atom("already_started"), Term::Pid(*pid)])
            }
            ChildError::Invalid(e) => e.to_term(),
            ChildError::StartFailed { reason, child } => match child {
                Some(record) => Term::tuple([reason.clone(), record.clone()]),
                None => reason.clone(),
            },
            ChildError::Supervisor(_) => Term::atom("noproc"),
        }
    }
}

/// A child's state in [`SupervisorRef::which_children`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildState {
    /// Running.
    Running(Pid),
    /// Not running (`undefined`).
    Undefined,
    /// A failed restart is being retried (`restarting`).
    Restarting,
}

/// One entry of [`SupervisorRef::which_children`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    /// The id (`None`, OTP's `undefined`, for simple_one_for_one children).
    pub id: Option<ChildId>,
    /// Its state.
    pub state: ChildState,
    /// Worker or supervisor.
    pub child_type: ChildType,
    /// Its modules.
    pub modules: std::sync::Arc<[String]>,
}

impl ChildInfo {
    /// OTP's `{Id, Child, Type, Modules}`.
    pub fn to_term(&self) -> Term {
        Term::tuple([
            Term::atom(
                self.id
                    .as_ref()
                    .map_or_else(|| "undefined".into(), ChildId::to_string),
            ),
            match self.state {
                ChildState::Running(pid) => Term::Pid(pid),
                ChildState::Undefined => Term::atom("undefined"),
                ChildState::Restarting => Term::atom("restarting"),
            },
            Term::atom(self.child_type.as_atom()),
            Term::list(self.modules.iter().map(|m| Term::atom(m.clone()))),
        ])
    }
}

/// The result of [`SupervisorRef::count_children`] (docs/behaviours.md item 58).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every child spec, running or not.
    pub specs: usize,
    /// Running children.
    pub active: usize,
    /// Specs of supervisors.
    pub supervisors: usize,
    /// Specs of workers.
    pub workers: usize,
}

impl Counts {
    /// OTP's `[{specs,S},{active,A},{supervisors,Su},{workers,W}]`.
    pub fn to_term(&self) -> Term {
        let pair = |k: &'static str, v: usize| Term::tuple([Term::atom(k), Term::Int(v as i64)]);
        Term::list([
            pair("specs", self.specs),
            pair("active", self.active),
            pair("supervisors", self.supervisors),
            pair("workers", self.workers),
        ])
    }
}

/// Records a supervisor report (OTP's `{supervisor, Context}` error reports, docs/behaviours.md item 106)
/// from the supervisor `p`, building it only when tracing.
fn report(p: &Process, context: ReportContext, offender: impl FnOnce() -> Offender, reason: &Term) {
    p.node().record_with(|| EventKind::Report {
        supervisor: p.pid(),
        context,
        offender: offender(),
        reason: reason.clone(),
    });
}

/// Records a supervisor's bookkeeping event (when tracing).
fn record(p: &Process, what: impl FnOnce() -> SupEvent) {
    p.node().record_with(|| EventKind::Supervision {
        sup: p.pid(),
        what: what(),
    });
}

/// The `Started` event of a child `pid` started from `spec`, `order`-th in start order.
fn started_event(pid: Pid, spec: &ChildSpec, order: u64) -> SupEvent {
    SupEvent::Started {
        pid,
        id: spec.id.shared(),
        restart: spec.restart,
        shutdown: spec.shutdown,
        order,
    }
}

/// The current time in whole seconds, as OTP's `erlang:monotonic_time(second)` stamps
/// restarts (docs/behaviours.md items 21-23).
fn whole_seconds(p: &Process) -> u64 {
    p.node().elapsed_us() / 1_000_000
}

/// A supervisor known by a local name and not yet named in the trace takes its name as its
/// tree path, the root of its children's paths.
fn label_by_name(p: &Process) {
    let node = p.node();
    if node.tracing() && node.path_of(p.pid()).is_none() {
        if let Some(name) = p.registered_name() {
            node.label(p.pid(), name, true);
        }
    }
}

/// Starts a supervisor linked to the calling process and waits until every child has started
/// (`supervisor:start_link/2`).
pub async fn start_link(p: &Process, spec: SupervisorSpec) -> Result<SupervisorRef, StartError> {
    start_with(
        p,
        move |_| SupervisorInit::Ok(spec.clone()),
        StartOptions::linked(),
    )
    .await
}

/// Starts a supervisor whose `init` callback is `init` (called in the supervisor process,
/// again each time the supervisor is restarted), with the given options.
pub async fn start_with(
    p: &Process,
    init: impl Fn(&Process) -> SupervisorInit + Send + Sync + 'static,
    options: StartOptions,
) -> Result<SupervisorRef, StartError> {
    let init: Arc<engine::InitFn> = Arc::new(init);
    server::start_with::<Supervisor>(p, init, options)
        .await
        .map(|server| SupervisorRef { server })
}

/// A running supervisor: the API of docs/behaviours.md §H. Every call waits for as long as the supervisor
/// is busy (OTP's `infinity` timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupervisorRef {
    server: ServerRef<Supervisor>,
}

impl SupervisorRef {
    /// The supervisor at `pid` (for a supervisor started by another supervisor).
    pub fn from_pid(pid: Pid) -> SupervisorRef {
        SupervisorRef {
            server: ServerRef::from_pid(pid),
        }
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// Stops the supervisor with reason `normal` (`Supervisor.stop/1`): it terminates its
    /// children as when its parent stops it, then exits; when this returns `Ok` it is dead.
    /// With another reason or a timeout: [`server::stop`]`(p, sup.pid(), reason, timeout)`
    /// (its children get `shutdown` whatever the reason).
    pub async fn stop(&self, p: &Process) -> Result<(), StopError> {
        self.server.stop(p).await
    }

    async fn call(&self, p: &Process, call: Call) -> Result<Reply, ChildError> {
        self.server
            .call_timeout(p, call, None)
            .await
            .map_err(ChildError::Supervisor)
    }

    /// Adds and starts a child (static supervisors; docs/behaviours.md item 54).
    pub async fn start_child(&self, p: &Process, spec: ChildSpec) -> Result<Started, ChildError> {
        match self.call(p, Call::StartChild(spec)).await? {
            Reply::Started(r) => r,
            _ => unreachable!("start_child answers Started"),
        }
    }

    /// Starts a child of a simple_one_for_one supervisor from its template with these extra
    /// arguments (docs/behaviours.md items 36, 61).
    pub async fn start_child_args(
        &self,
        p: &Process,
        args: Vec<Term>,
    ) -> Result<Started, ChildError> {
        match self.call(p, Call::StartChildArgs(args)).await? {
            Reply::Started(r) => r,
            _ => unreachable!("start_child answers Started"),
        }
    }

    /// Stops a child; it keeps its spec unless temporary (docs/behaviours.md items 53, 61).
    pub async fn terminate_child(
        &self,
        p: &Process,
        child: impl Into<ChildRef>,
    ) -> Result<(), ChildError> {
        match self.call(p, Call::Terminate(child.into())).await? {
            Reply::Done(r) => r,
            _ => unreachable!("terminate_child answers Done"),
        }
    }

    /// Starts a stopped child again (docs/behaviours.md item 55).
    pub async fn restart_child(&self, p: &Process, id: &str) -> Result<Started, ChildError> {
        match self.call(p, Call::Restart(id.into())).await? {
            Reply::Started(r) => r,
            _ => unreachable!("restart_child answers Started"),
        }
    }

    /// Removes a stopped child's spec (docs/behaviours.md item 56).
    pub async fn delete_child(&self, p: &Process, id: &str) -> Result<(), ChildError> {
        match self.call(p, Call::Delete(id.into())).await? {
            Reply::Done(r) => r,
            _ => unreachable!("delete_child answers Done"),
        }
    }

    /// The children, newest first (docs/behaviours.md items 37, 57).
    pub async fn which_children(&self, p: &Process) -> Result<Vec<ChildInfo>, ChildError> {
        match self.call(p, Call::Which).await? {
            Reply::Which(r) => Ok(r),
            _ => unreachable!("which_children answers Which"),
        }
    }

    /// Counts of specs, running children, supervisors and workers (docs/behaviours.md item 58).
    pub async fn count_children(&self, p: &Process) -> Result<Counts, ChildError> {
        match self.call(p, Call::Count).await? {
            Reply::Count(r) => Ok(r),
            _ => unreachable!("count_children answers Count"),
        }
    }

    /// A child's spec (docs/behaviours.md item 59).
    pub async fn get_childspec(
        &self,
        p: &Process,
        child: impl Into<ChildRef>,
    ) -> Result<ChildSpec, ChildError> {
        match self.call(p, Call::GetSpec(child.into())).await? {
            Reply::Spec(r) => r,
            _ => unreachable!("get_childspec answers Spec"),
        }
    }
}
