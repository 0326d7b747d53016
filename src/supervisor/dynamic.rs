//! `DynamicSupervisor` with the semantics of Elixir's (docs/behaviours.md §J): children are added at run
//! time, keyed by pid, restarted one_for_one, and stopped all at once.
//!
//! ```
//! use otpsim::{rt, Node, ExitReason};
//! use otpsim::supervisor::{ChildSpec, Start, Started, dynamic::{self, DynamicOptions}};
//!
//! rt::block_on(0, async {
//!     let node = Node::new();
//!     let main = node.spawn(|p| async move {
//!         let sup = dynamic::start_link(&p, DynamicOptions::default().max_children(1)).await.unwrap();
//!         let worker = || ChildSpec::worker("w", Start::new(|p| Box::pin(async move {
//!             Ok(Started::Pid(p.spawn_link(|w| async move { w.recv().await; })))
//!         })));
//!         let first = sup.start_child(&p, worker()).await.unwrap();
//!         assert_eq!(sup.start_child(&p, worker()).await.unwrap_err().to_term().to_string(), "max_children");
//!         sup.terminate_child(&p, first.pid().unwrap()).await.unwrap();
//!         assert_eq!(sup.count_children(&p).await.unwrap().specs, 0);
//!     });
//!     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
//! });
//! ```

use super::intensity::RestartWindow;
use super::shutdown::{stop_in_parallel, Queued};
use super::spec::{
    ChildSpec, ChildType, FlagsError, InitError, Restart, Shutdown, SpecError, Start, StartResult,
    Started,
};
use super::{start_result, ChildId, ChildInfo, ChildState, Counts};
use crate::process::{ExitReason, Msg, Process};
use crate::server::{
    self, CallError, CallReply, From, GenServer, Init, Next, ServerRef, StartError, StartOptions,
    StopError,
};
use crate::term::{Pid, Term};
use crate::trace::{Offender, ReportContext, SupEvent, SupervisorKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The options of `DynamicSupervisor.init/1` (docs/behaviours.md item 68); the defaults are Elixir's:
/// 3 restarts in 5 seconds, no limit on children, no extra arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicOptions {
    /// The most restarts within `max_seconds`.
    pub max_restarts: u64,
    /// The restart window in whole seconds (at least 1).
    pub max_seconds: u64,
    /// The most children, running or restarting (`None`: `:infinity`).
    pub max_children: Option<usize>,
    /// Prepended to every child's start arguments.
    pub extra_arguments: Vec<Term>,
}

impl Default for DynamicOptions {
    fn default() -> DynamicOptions {
        DynamicOptions {
            max_restarts: 3,
            max_seconds: 5,
            max_children: None,
            extra_arguments: Vec::new(),
        }
    }
}

impl DynamicOptions {
    /// Sets `max_restarts`.
    pub fn max_restarts(mut self, n: u64) -> DynamicOptions {
        self.max_restarts = n;
        self
    }

    /// Sets `max_seconds`.
    pub fn max_seconds(mut self, s: u64) -> DynamicOptions {
        self.max_seconds = s;
        self
    }

    /// Sets `max_children`.
    pub fn max_children(mut self, n: usize) -> DynamicOptions {
        self.max_children = Some(n);
        self
    }

    /// A dynamic supervisor with these options as the child `id` of another supervisor.
    pub fn into_child(self, id: impl Into<ChildId>) -> ChildSpec {
        self.into_child_with(id, StartOptions::linked())
    }

    /// Like [`into_child`](Self::into_child), started with `start` (a local or via name;
    /// it is always linked to its supervisor).
    pub fn into_child_with(self, id: impl Into<ChildId>, start: StartOptions) -> ChildSpec {
        let options = Arc::new(self);
        let start = StartOptions {
            link: true,
            ..start
        };
        ChildSpec::supervisor(
            id,
            Start::new(move |p| {
                let (options, start) = (options.clone(), start.clone());
                Box::pin(async move {
                    let init = move |_: &Process| DynamicInit::Ok((*options).clone());
                    start_result(start_with(p, init, start).await.map(|s| s.pid()))
                })
            }),
        )
        .modules(["DynamicSupervisor"])
    }
}

/// The result of a dynamic supervisor's `init` callback.
#[derive(Clone, Debug)]
pub enum DynamicInit {
    /// `{:ok, flags}`.
    Ok(DynamicOptions),
    /// `:ignore`.
    Ignore,
    /// The options could not even be built; the start fails with this error.
    Invalid(InitError),
}

/// Why a dynamic supervisor call failed, with Elixir's error terms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DynamicError {
    /// `:not_found`: not a current child's pid (docs/behaviours.md item 76).
    #[error("no such child")]
    NotFound,
    /// `:max_children` (docs/behaviours.md item 70).
    #[error("the supervisor has max_children children")]
    MaxChildren,
    /// An invalid child spec (docs/behaviours.md item 69).
    #[error("invalid child spec: {0}")]
    Invalid(SpecError),
    /// The start function returned `{:error, reason}` (returned unwrapped, item 72).
    #[error("the child failed to start: {0}")]
    StartFailed(Term),
    /// The supervisor could not be called.
    #[error("the supervisor could not be called: {0}")]
    Supervisor(CallError),
}

impl DynamicError {
    /// The live process that already holds the child's name, if that is why it did not
    /// start (`{:error, {:already_started, pid}}`): what a find-or-start cache uses.
    ///
    /// ```
    /// use otpsim::supervisor::dynamic::DynamicError;
    /// use otpsim::{Pid, Term};
    /// let owner = Pid::from_raw(7);
    /// let e = DynamicError::StartFailed(Term::tuple([Term::atom("already_started"), Term::Pid(owner)]));
    /// assert_eq!(e.already_started(), Some(owner));
    /// assert_eq!(DynamicError::MaxChildren.already_started(), None);
    /// ```
    pub fn already_started(&self) -> Option<Pid> {
        match self {
            DynamicError::StartFailed(Term::Tuple(items)) => match items.as_slice() {
                [tag, Term::Pid(pid)] if tag.is_atom("already_started") => Some(*pid),
                _ => None,
            },
            _ => None,
        }
    }

    /// The `reason` of Elixir's `{:error, reason}`.
    pub fn to_term(&self) -> Term {
        match self {
            DynamicError::NotFound => Term::atom("not_found"),
            DynamicError::MaxChildren => Term::atom("max_children"),
            DynamicError::Invalid(e) => e.to_term(),
            DynamicError::StartFailed(r) => r.clone(),
            DynamicError::Supervisor(_) => Term::atom("noproc"),
        }
    }
}

type InitFn = dyn Fn(&Process) -> DynamicInit + Send + Sync;

pub(super) enum Call {
    Start(ChildSpec),
    Terminate(Pid),
    Which,
    Count,
}

pub(super) enum Reply {
    Started(Result<Started, DynamicError>),
    Done(Result<(), DynamicError>),
    Which(Vec<ChildInfo>),
    Count(Counts),
}

/// `{:"$gen_restart", pid}`: the retry of a failed restart, a plain message to itself.
struct GenRestart(Pid);

struct Child {
    spec: Arc<ChildSpec>,
    restarting: bool,
}

pub(super) struct Dynamic {
    options: DynamicOptions,
    /// Keyed by pid (the old pid while restarting), so iteration is in pid order.
    children: BTreeMap<Pid, Child>,
    window: RestartWindow,
}

impl GenServer for Dynamic {
    type Arg = Arc<InitFn>;
    type Call = Call;
    type Reply = Reply;
    type Cast = ();
    type Cont = ();

    async fn init(init: Arc<InitFn>, p: &Process) -> Init<Self> {
        p.trap_exit(true);
        super::label_by_name(p);
        let options = match init(p) {
            DynamicInit::Ok(options) => options,
            DynamicInit::Ignore => return Init::Ignore,
            DynamicInit::Invalid(e) => return Init::Stop(ExitReason::from_term(e.to_term())),
        };
        if options.max_seconds == 0 {
            let e = InitError::SupervisorData(FlagsError::InvalidPeriod(Term::Int(0)));
            return Init::Stop(ExitReason::from_term(e.to_term()));
        }
        let window = RestartWindow::new(options.max_restarts, options.max_seconds);
        super::record(p, || SupEvent::Init {
            kind: SupervisorKind::Dynamic,
            intensity: options.max_restarts,
            period: options.max_seconds,
        });
        Init::Ok(Dynamic {
            options,
            children: BTreeMap::new(),
            window,
        })
    }

    async fn handle_call(
        &mut self,
        call: Call,
        _from: From<Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        CallReply::Reply(match call {
            Call::Start(spec) => Reply::Started(self.start_child(spec, p).await),
            Call::Terminate(pid) => Reply::Done(self.terminate_child(pid, p).await),
            Call::Which => Reply::Which(self.which_children()),
            Call::Count => Reply::Count(self.count_children()),
        })
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        match msg {
            Msg::Exit { from, reason } => match self.children.get(&from) {
                Some(child) if !child.restarting => {
                    super::record(p, || SupEvent::Exited {
                        pid: from,
                        reason: reason.to_term(),
                    });
                    self.child_exited(from, reason, p).await
                }
                _ => Next::Continue,
            },
            msg => match msg.downcast::<GenRestart>() {
                Ok(GenRestart(pid)) if self.children.get(&pid).is_some_and(|c| c.restarting) => {
                    self.restart(pid, p).await
                }
                _ => Next::Continue,
            },
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, p: &Process) {
        super::record(p, || SupEvent::Stopping);
        let all: Vec<Pid> = self.children.keys().copied().collect();
        self.stop(all, p).await;
    }
}

impl Dynamic {
    fn report(&self, context: ReportContext, pid: Pid, reason: &Term, p: &Process) {
        let offender = || Offender::Child {
            pid: Some(pid),
            id: None,
        };
        super::report(p, context, offender, reason);
    }

    async fn call_start(&self, spec: &ChildSpec, p: &Process) -> StartResult {
        spec.start
            .run(p, self.options.extra_arguments.clone())
            .await
    }

    async fn start_child(&mut self, spec: ChildSpec, p: &Process) -> Result<Started, DynamicError> {
        // Elixir 1.14 accepts `significant: true` here (and ignores it); later versions
        // refuse it with `{:invalid_significant, true}` (docs/behaviours.md item 69). We follow 1.14, the
        // version the conformance traces come from.
        // docs/behaviours.md item 70: running and restarting children count.
        if self
            .options
            .max_children
            .is_some_and(|max| self.children.len() >= max)
        {
            return Err(DynamicError::MaxChildren);
        }
        let started = self
            .call_start(&spec, p)
            .await
            .map_err(DynamicError::StartFailed)?;
        if let Some(pid) = started.pid() {
            super::record(p, || super::started_event(pid, &spec, 0));
            self.children.insert(
                pid,
                Child {
                    spec: Arc::new(spec),
                    restarting: false,
                },
            );
        }
        Ok(started)
    }

    async fn terminate_child(&mut self, pid: Pid, p: &Process) -> Result<(), DynamicError> {
        if !self.children.contains_key(&pid) {
            return Err(DynamicError::NotFound);
        }
        self.stop(vec![pid], p).await;
        Ok(())
    }

    /// Stops these children all at once and forgets them (docs/behaviours.md items 77-78).
    async fn stop(&mut self, pids: Vec<Pid>, p: &Process) {
        let mut running = Vec::new();
        for pid in pids {
            if let Some(child) = self.children.remove(&pid) {
                if child.restarting {
                    let id = child.spec.id.clone();
                    super::record(p, || SupEvent::RetryDropped {
                        pid: Some(pid),
                        id: id.shared(),
                    });
                } else {
                    running.push((pid, child.spec.shutdown, child.spec.restart));
                }
            }
        }
        for (pid, reason) in stop_in_parallel(running, Queued::Judged, accepted, p).await {
            self.report(ReportContext::ShutdownError, pid, &reason.to_term(), p);
        }
    }

    /// Elixir's `maybe_restart_child` (docs/behaviours.md item 73, with §C's rules).
    async fn child_exited(&mut self, pid: Pid, reason: ExitReason, p: &Process) -> Next<Self> {
        let Some(restart) = self.children.get(&pid).map(|c| c.spec.restart) else {
            return Next::Continue;
        };
        let term = reason.to_term();
        if restart == Restart::Permanent {
            self.report(ReportContext::ChildTerminated, pid, &term, p);
            return self.restart(pid, p).await;
        }
        if reason.is_normal() || reason.is_shutdown() {
            self.children.remove(&pid);
            return Next::Continue;
        }
        self.report(ReportContext::ChildTerminated, pid, &term, p);
        if restart == Restart::Transient {
            return self.restart(pid, p).await;
        }
        self.children.remove(&pid);
        Next::Continue
    }

    /// Restarts the child known as `old` (docs/behaviours.md items 74-75).
    async fn restart(&mut self, old: Pid, p: &Process) -> Next<Self> {
        super::record(p, || SupEvent::Restart {
            pid: Some(old),
            id: self
                .children
                .get(&old)
                .map_or_else(|| "".into(), |c| c.spec.id.shared()),
        });
        if !self.window.add(super::whole_seconds(p)) {
            self.report(
                ReportContext::Shutdown,
                old,
                &Term::atom("reached_max_restart_intensity"),
                p,
            );
            self.children.remove(&old);
            return Next::Stop(ExitReason::Shutdown);
        }
        let Some(spec) = self.children.get(&old).map(|c| c.spec.clone()) else {
            return Next::Continue;
        };
        match self.call_start(&spec, p).await {
            Ok(started) => {
                self.children.remove(&old);
                if let Some(pid) = started.pid() {
                    super::record(p, || super::started_event(pid, &spec, 0));
                    self.children.insert(
                        pid,
                        Child {
                            spec,
                            restarting: false,
                        },
                    );
                }
            }
            Err(reason) => {
                self.report(ReportContext::StartError, old, &reason, p);
                if let Some(child) = self.children.get_mut(&old) {
                    child.restarting = true;
                }
                p.send(p.pid(), GenRestart(old));
            }
        }
        Next::Continue
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|(pid, c)| ChildInfo {
                id: None,
                state: if c.restarting {
                    ChildState::Restarting
                } else {
                    ChildState::Running(*pid)
                },
                child_type: c.spec.child_type,
                modules: c.spec.modules.clone(),
            })
            .collect()
    }

    fn count_children(&self) -> Counts {
        let mut counts = Counts::default();
        for c in self.children.values() {
            counts.specs += 1;
            if !c.restarting {
                counts.active += 1;
            }
            match c.spec.child_type {
                ChildType::Worker => counts.workers += 1,
                ChildType::Supervisor => counts.supervisors += 1,
            }
        }
        counts
    }
}

/// docs/behaviours.md item 78: the reasons a stopped child may give without a `shutdown_error` report.
fn accepted(reason: &ExitReason, how: Shutdown, restart: Restart) -> bool {
    match reason {
        ExitReason::Killed => how == Shutdown::BrutalKill,
        ExitReason::Shutdown | ExitReason::ShutdownWith(_) => true,
        ExitReason::Normal => restart != Restart::Permanent,
        _ => false,
    }
}

/// Starts a dynamic supervisor linked to the caller (`DynamicSupervisor.start_link/1`).
pub async fn start_link(
    p: &Process,
    options: DynamicOptions,
) -> Result<DynamicSupervisorRef, StartError> {
    start_with(
        p,
        move |_| DynamicInit::Ok(options.clone()),
        StartOptions::linked(),
    )
    .await
}

/// Starts a dynamic supervisor whose `init` callback is `init`, with the given options.
pub async fn start_with(
    p: &Process,
    init: impl Fn(&Process) -> DynamicInit + Send + Sync + 'static,
    options: StartOptions,
) -> Result<DynamicSupervisorRef, StartError> {
    let init: Arc<InitFn> = Arc::new(init);
    server::start_with::<Dynamic>(p, init, options)
        .await
        .map(|server| DynamicSupervisorRef { server })
}

/// A running dynamic supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicSupervisorRef {
    server: ServerRef<Dynamic>,
}

impl DynamicSupervisorRef {
    /// The dynamic supervisor at `pid`.
    pub fn from_pid(pid: Pid) -> DynamicSupervisorRef {
        DynamicSupervisorRef {
            server: ServerRef::from_pid(pid),
        }
    }

    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// Stops the supervisor with reason `normal` (`DynamicSupervisor.stop/1`): it terminates its
    /// children as when its parent stops it, then exits; when this returns `Ok` it is dead.
    /// With another reason or a timeout: [`server::stop`]`(p, sup.pid(), reason, timeout)`
    /// (its children get `shutdown` whatever the reason).
    pub async fn stop(&self, p: &Process) -> Result<(), StopError> {
        self.server.stop(p).await
    }

    async fn call(&self, p: &Process, call: Call) -> Result<Reply, DynamicError> {
        self.server
            .call_timeout(p, call, None)
            .await
            .map_err(DynamicError::Supervisor)
    }

    /// Starts a child from `spec` (its id is ignored); `ignore` is returned as
    /// [`Started::Ignore`] and nothing is stored (docs/behaviours.md items 69-72).
    pub async fn start_child(&self, p: &Process, spec: ChildSpec) -> Result<Started, DynamicError> {
        match self.call(p, Call::Start(spec)).await? {
            Reply::Started(r) => r,
            _ => unreachable!("start_child answers Started"),
        }
    }

    /// Stops the child `pid` (docs/behaviours.md item 76).
    pub async fn terminate_child(&self, p: &Process, pid: Pid) -> Result<(), DynamicError> {
        match self.call(p, Call::Terminate(pid)).await? {
            Reply::Done(r) => r,
            _ => unreachable!("terminate_child answers Done"),
        }
    }

    /// The children in pid order (docs/behaviours.md item 79).
    pub async fn which_children(&self, p: &Process) -> Result<Vec<ChildInfo>, DynamicError> {
        match self.call(p, Call::Which).await? {
            Reply::Which(r) => Ok(r),
            _ => unreachable!("which_children answers Which"),
        }
    }

    /// Counts: `specs` is the number of children, running or restarting (docs/behaviours.md item 79).
    pub async fn count_children(&self, p: &Process) -> Result<Counts, DynamicError> {
        match self.call(p, Call::Count).await? {
            Reply::Count(r) => Ok(r),
            _ => unreachable!("count_children answers Count"),
        }
    }
}
