//! Supervisor flags and child specifications, with OTP's defaults and validation (docs/behaviours.md §A).
//!
//! Rust's types already rule out most of the malformed specs OTP checks for (a missing id, a
//! start function that is not an `{M,F,A}`, an unknown restart type, a negative shutdown
//! time). What the types cannot rule out is checked by [`Flags::check`] and
//! [`ChildSpec::check`], in OTP's order, and reported as [`FlagsError`] / [`SpecError`].
//! Loosely typed values (an oracle scenario's atoms and integers) become these types through
//! `otpsim::sim::conform::terms`, which reports invalid values with OTP's error terms
//! (`{invalid_restart_type,forever}`).
//!
//! Flags, child specs and their errors: every default and check of docs/behaviours.md §A, in one
//! place.

use crate::process::{catch_panic, ExitReason, Process};
use crate::server::{GenServer, StartError};
use crate::term::{Pid, Term};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future borrowing the supervisor process, as returned by start functions.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a successful start function returned (`{ok,Pid}`, `{ok,Pid,Info}`, `ignore`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// `{ok, Pid}`: the child runs, linked to the supervisor.
    Pid(Pid),
    /// `{ok, Pid, Info}`: as `Pid`; the info is handed back by `start_child`/`restart_child`.
    WithInfo(Pid, Term),
    /// `ignore`: no process; the supervisor keeps the spec (unless temporary) with no pid.
    Ignore,
}

impl Started {
    /// The child's pid, if one was started.
    pub fn pid(&self) -> Option<Pid> {
        match self {
            Started::Pid(p) | Started::WithInfo(p, _) => Some(*p),
            Started::Ignore => None,
        }
    }

    /// OTP's result term: `{ok,Pid}`, `{ok,Pid,Info}` or `{ok,undefined}`.
    pub fn to_term(&self) -> Term {
        let ok = Term::atom("ok");
        match self {
            Started::Pid(p) => Term::tuple([ok, Term::Pid(*p)]),
            Started::WithInfo(p, info) => Term::tuple([ok, Term::Pid(*p), info.clone()]),
            Started::Ignore => Term::tuple([ok, Term::atom("undefined")]),
        }
    }
}

/// The result of a start function: `Err(Reason)` is OTP's `{error, Reason}`.
pub type StartResult = Result<Started, Term>;

/// Turns the result of a start (e.g. [`server::start_link`](crate::server::start_link), with
/// the server mapped to its pid) into a [`StartResult`]: `ignore` stays `ignore`, a failed
/// init is `{error, Reason}`, a taken name is `{error, {already_started, Pid}}`.
pub fn start_result(result: Result<Pid, StartError>) -> StartResult {
    match result {
        Ok(pid) => Ok(Started::Pid(pid)),
        Err(StartError::Ignore) => Ok(Started::Ignore),
        Err(StartError::Failed(reason)) => Err(reason.to_term()),
        Err(StartError::AlreadyStarted(pid)) => {
            Err(Term::tuple([Term::atom("already_started"), Term::Pid(pid)]))
        }
    }
}

type StartFn = dyn for<'a> Fn(&'a Process, Vec<Term>) -> BoxFuture<'a, StartResult> + Send + Sync;

/// A start function: called inside the supervisor process on every (re)start; it must start
/// the child linked to the calling process and return its pid.
///
/// The second argument holds the extra arguments of a `simple_one_for_one` `start_child`
/// (empty for every other child).
#[derive(Clone)]
pub struct Start(Arc<StartFn>);

impl Start {
    /// A start function that takes no extra arguments.
    pub fn new<F>(f: F) -> Start
    where
        F: for<'a> Fn(&'a Process) -> BoxFuture<'a, StartResult> + Send + Sync + 'static,
    {
        Start(Arc::new(move |p, _extra| f(p)))
    }

    /// A start function for a `simple_one_for_one` template: it gets the extra arguments of
    /// each `start_child` call (OTP's `apply(M, F, A ++ ExtraArgs)`).
    pub fn with_args<F>(f: F) -> Start
    where
        F: for<'a> Fn(&'a Process, Vec<Term>) -> BoxFuture<'a, StartResult> + Send + Sync + 'static,
    {
        Start(Arc::new(f))
    }

    /// Runs the start function in the calling (supervisor) process; a panic in it becomes
    /// `{error, {panic, Message}}`, as OTP's `catch apply(M, F, A)` turns an exception into
    /// an error (docs/behaviours.md item 10).
    pub async fn run(&self, p: &Process, extra: Vec<Term>) -> StartResult {
        match catch_panic((self.0)(p, extra)).await {
            Ok(result) => result,
            Err(panic) => Err(ExitReason::Panic(panic).to_term()),
        }
    }
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Start(..)")
    }
}

pub use crate::trace::vocab::{AutoShutdown, ChildType, Invalid, Restart, Shutdown, Strategy};

/// A supervisor's flags (docs/behaviours.md §A 1-2).
///
/// The default is Erlang's: `one_for_one`, at most 1 restart in 5 seconds, no auto-shutdown.
/// Elixir's `Supervisor.init/2` uses 3 restarts in 5 seconds instead: that is
/// [`Flags::elixir`], or `Flags::default().intensity(3)`.
///
/// ```
/// use otpsim::supervisor::{Flags, Strategy};
/// let flags = Flags::new(Strategy::RestForOne).intensity(10).period(1);
/// assert_eq!((flags.intensity, flags.period), (10, 1));
/// assert_eq!(Flags::default().intensity, 1);
/// assert_eq!(Flags::elixir(Strategy::OneForOne).intensity, 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// The restart strategy.
    pub strategy: Strategy,
    /// The most restarts allowed within `period` seconds.
    pub intensity: u64,
    /// The length of the restart window in whole seconds (must be at least 1).
    pub period: u64,
    /// Whether significant children stop the supervisor.
    pub auto_shutdown: AutoShutdown,
}

impl Default for Flags {
    fn default() -> Flags {
        Flags::new(Strategy::OneForOne)
    }
}

impl Flags {
    /// Erlang's defaults with the given strategy: 1 restart in 5 seconds.
    pub fn new(strategy: Strategy) -> Flags {
        Flags {
            strategy,
            intensity: 1,
            period: 5,
            auto_shutdown: AutoShutdown::Never,
        }
    }

    /// Elixir's `Supervisor.init/2` defaults with the given strategy: 3 restarts in 5 seconds.
    pub fn elixir(strategy: Strategy) -> Flags {
        Flags::new(strategy).intensity(3)
    }

    /// Sets the intensity.
    pub fn intensity(mut self, intensity: u64) -> Flags {
        self.intensity = intensity;
        self
    }

    /// Sets the period (seconds).
    pub fn period(mut self, period: u64) -> Flags {
        self.period = period;
        self
    }

    /// Sets auto-shutdown.
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Flags {
        self.auto_shutdown = auto_shutdown;
        self
    }

    /// OTP's checks that the types leave open: the period must be positive.
    pub fn check(&self) -> Result<(), FlagsError> {
        if self.period == 0 {
            return Err(FlagsError::InvalidPeriod(Term::Int(0)));
        }
        Ok(())
    }
}

/// An invalid supervisor flag; `start_link` fails with `{supervisor_data, Error}` (docs/behaviours.md §A 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    /// `{invalid_strategy, X}`.
    #[error("invalid strategy: {0}")]
    InvalidStrategy(Term),
    /// `{invalid_intensity, X}`: not an integer >= 0.
    #[error("invalid intensity: {0}")]
    InvalidIntensity(Term),
    /// `{invalid_period, X}`: not an integer > 0.
    #[error("invalid period: {0}")]
    InvalidPeriod(Term),
    /// `{invalid_auto_shutdown, X}`.
    #[error("invalid auto_shutdown: {0}")]
    InvalidAutoShutdown(Term),
    /// `{invalid_max_children, X}` (DynamicSupervisor).
    #[error("invalid max_children: {0}")]
    InvalidMaxChildren(Term),
}

impl FlagsError {
    /// OTP's error term, e.g. `{invalid_period,0}`.
    pub fn to_term(&self) -> Term {
        let (tag, value) = match self {
            FlagsError::InvalidStrategy(v) => ("invalid_strategy", v),
            FlagsError::InvalidIntensity(v) => ("invalid_intensity", v),
            FlagsError::InvalidPeriod(v) => ("invalid_period", v),
            FlagsError::InvalidAutoShutdown(v) => ("invalid_auto_shutdown", v),
            FlagsError::InvalidMaxChildren(v) => ("invalid_max_children", v),
        };
        Term::tuple([Term::atom(tag), value.clone()])
    }
}

/// An invalid child spec (docs/behaviours.md §A 4-6), in OTP's order of checks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `{invalid_restart_type, R}`.
    #[error("invalid restart type: {0}")]
    InvalidRestartType(Term),
    /// `{invalid_significant, S}`.
    #[error("invalid significant flag: {0}")]
    InvalidSignificant(Term),
    /// `{bad_combination,[{auto_shutdown,never},{significant,true}]}`.
    #[error("a significant child needs a supervisor with auto_shutdown")]
    SignificantWithoutAutoShutdown,
    /// `{bad_combination,[{restart,permanent},{significant,true}]}`.
    #[error("a permanent child cannot be significant")]
    SignificantPermanent,
    /// `{invalid_child_type, T}`.
    #[error("invalid child type: {0}")]
    InvalidChildType(Term),
    /// `{invalid_shutdown, S}`.
    #[error("invalid shutdown: {0}")]
    InvalidShutdown(Term),
    /// `{invalid_child_spec, X}`: not a child spec at all (e.g. `start_child` with extra
    /// arguments on a supervisor that is not simple_one_for_one).
    #[error("not a child spec: {0}")]
    InvalidChildSpec(Term),
    /// `{duplicate_child_name, Id}`: two children of the init list share an id.
    #[error("duplicate child id {0}")]
    DuplicateChildName(String),
}

impl SpecError {
    /// OTP's error term.
    pub fn to_term(&self) -> Term {
        let tagged = |tag: &'static str, v: &Term| Term::tuple([Term::atom(tag), v.clone()]);
        let combination = |a: (&'static str, &'static str)| {
            Term::tuple([
                Term::atom("bad_combination"),
                Term::list([
                    Term::tuple([Term::atom(a.0), Term::atom(a.1)]),
                    Term::tuple([Term::atom("significant"), Term::atom("true")]),
                ]),
            ])
        };
        match self {
            SpecError::InvalidRestartType(v) => tagged("invalid_restart_type", v),
            SpecError::InvalidSignificant(v) => tagged("invalid_significant", v),
            SpecError::SignificantWithoutAutoShutdown => combination(("auto_shutdown", "never")),
            SpecError::SignificantPermanent => combination(("restart", "permanent")),
            SpecError::InvalidChildType(v) => tagged("invalid_child_type", v),
            SpecError::InvalidShutdown(v) => tagged("invalid_shutdown", v),
            SpecError::InvalidChildSpec(v) => tagged("invalid_child_spec", v),
            SpecError::DuplicateChildName(id) => {
                tagged("duplicate_child_name", &Term::atom(id.clone()))
            }
        }
    }
}

/// How a supervisor's `init` failed before starting any child (docs/behaviours.md §A 2, 5, 6); the
/// supervisor's start fails with [`InitError::to_term`] as the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    /// `{supervisor_data, Error}`: invalid flags.
    #[error("invalid supervisor flags: {0}")]
    SupervisorData(FlagsError),
    /// `{start_spec, Error}`: an invalid child spec in the init list.
    #[error("invalid child spec: {0}")]
    StartSpec(SpecError),
    /// `{bad_start_spec, Specs}`: simple_one_for_one needs exactly one spec (the count is
    /// given; OTP prints the specs themselves).
    #[error("simple_one_for_one needs exactly one child spec, got {0}")]
    BadStartSpec(usize),
}

impl InitError {
    /// OTP's exit reason.
    pub fn to_term(&self) -> Term {
        match self {
            InitError::SupervisorData(e) => {
                Term::tuple([Term::atom("supervisor_data"), e.to_term()])
            }
            InitError::StartSpec(e) => Term::tuple([Term::atom("start_spec"), e.to_term()]),
            InitError::BadStartSpec(n) => {
                Term::tuple([Term::atom("bad_start_spec"), Term::Int(*n as i64)])
            }
        }
    }
}

/// A child's id: a string, cheap to clone (a supervisor reports it in every
/// `which_children`, and every restart and trace event names it).
///
/// ```
/// use otpsim::supervisor::ChildId;
/// let id = ChildId::from("worker");
/// assert_eq!(id, "worker");
/// assert_eq!(id.as_str(), "worker");
/// assert_eq!(format!("{id}"), "worker");
/// assert_eq!(id.clone(), ChildId::from(String::from("worker")));
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildId(Arc<str>);

impl ChildId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string itself (a copy costs no allocation).
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl std::ops::Deref for ChildId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ChildId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ChildId {
    fn from(id: &str) -> ChildId {
        ChildId(id.into())
    }
}

impl From<String> for ChildId {
    fn from(id: String) -> ChildId {
        ChildId(id.into())
    }
}

impl From<&String> for ChildId {
    fn from(id: &String) -> ChildId {
        ChildId(id.as_str().into())
    }
}

impl From<ChildId> for String {
    fn from(id: ChildId) -> String {
        id.0.to_string()
    }
}

impl PartialEq<str> for ChildId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ChildId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// One child of a supervisor: its id, how to start it, and how to restart and stop it
/// (docs/behaviours.md §A 3).
///
/// The defaults are OTP's: `permanent`, `worker`, not significant, shutdown 5000 ms for a
/// worker and `infinity` for a supervisor.
///
/// ```
/// use otpsim::supervisor::{ChildSpec, Restart, Shutdown, Start, Started};
/// let spec = ChildSpec::worker("cache", Start::new(|p| Box::pin(async move {
///     let pid = p.spawn_link(|_p| async { /* the child's work */ });
///     Ok(Started::Pid(pid))
/// })))
/// .restart(Restart::Transient);
/// assert_eq!(spec.shutdown, Shutdown::Timeout(5000));
/// assert_eq!(spec.restart, Restart::Transient);
/// ```
#[derive(Clone, Debug)]
pub struct ChildSpec {
    /// The id, unique among the supervisor's children.
    pub id: ChildId,
    /// The start function, called again on every restart.
    pub start: Start,
    /// When it is restarted.
    pub restart: Restart,
    /// How it is stopped.
    pub shutdown: Shutdown,
    /// Worker or supervisor.
    pub child_type: ChildType,
    /// Whether its exit can stop the supervisor (with `auto_shutdown`).
    pub significant: bool,
    /// The modules reported by `which_children` (OTP's `modules`), shared by every copy of
    /// the spec.
    pub modules: Arc<[String]>,
}

impl ChildSpec {
    /// A worker child.
    pub fn worker(id: impl Into<ChildId>, start: Start) -> ChildSpec {
        ChildSpec {
            id: id.into(),
            start,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(5000),
            child_type: ChildType::Worker,
            significant: false,
            modules: Arc::new([]),
        }
    }

    /// A supervisor child (shutdown `infinity`).
    pub fn supervisor(id: impl Into<ChildId>, start: Start) -> ChildSpec {
        ChildSpec {
            shutdown: Shutdown::Infinity,
            child_type: ChildType::Supervisor,
            ..ChildSpec::worker(id, start)
        }
    }

    /// A worker that runs the [`GenServer`] `S`, started with a clone of `arg` each time.
    pub fn server<S>(id: impl Into<ChildId>, arg: S::Arg) -> ChildSpec
    where
        S: GenServer,
        S::Arg: Clone + Sync,
    {
        ChildSpec::server_with::<S>(id, arg, crate::server::StartOptions::linked())
    }

    /// A worker that runs the [`GenServer`] `S` started with `options` (a local or `via`
    /// name: a restarted child takes the name again, docs/behaviours.md item 93). The server is always
    /// linked to its supervisor, whatever `options.link` says.
    ///
    /// ```
    /// # #[cfg(madsim)] {
    /// use otpsim::registry::{Keys, Registry, RegistryOptions};
    /// use otpsim::server::{GenServer, Init, StartOptions};
    /// use otpsim::supervisor::{self, ChildSpec, Flags, Strategy, SupervisorSpec};
    /// use otpsim::{sim::Sim, Process};
    ///
    /// struct Worker;
    /// impl GenServer for Worker {
    ///     type Arg = ();
    ///     type Call = ();
    ///     type Reply = ();
    ///     type Cast = ();
    ///     type Cont = ();
    ///     async fn init(_: (), _p: &Process) -> Init<Self> {
    ///         Init::Ok(Worker)
    ///     }
    /// }
    ///
    /// let report = Sim::new(0).run(|p| async move {
    ///     let reg = Registry::<String, ()>::start_link(&p, RegistryOptions::new(Keys::Unique)).await.unwrap();
    ///     let named = StartOptions::default().via(reg.via("worker".to_string()));
    ///     let spec = SupervisorSpec::new(Flags::new(Strategy::OneForOne))
    ///         .child(ChildSpec::server_with::<Worker>("worker", (), named));
    ///     supervisor::start_link(&p, spec).await.unwrap();
    ///     assert!(reg.whereis_name(&"worker".to_string()).is_some());
    /// });
    /// assert_eq!(report.failure(), None);
    /// # }
    /// ```
    pub fn server_with<S>(
        id: impl Into<ChildId>,
        arg: S::Arg,
        options: crate::server::StartOptions,
    ) -> ChildSpec
    where
        S: GenServer,
        S::Arg: Clone + Sync,
    {
        let options = crate::server::StartOptions {
            link: true,
            ..options
        };
        let start = Start::new(move |p| {
            let (arg, options) = (arg.clone(), options.clone());
            Box::pin(async move {
                start_result(
                    crate::server::start_with::<S>(p, arg, options)
                        .await
                        .map(|s| s.pid()),
                )
            })
        });
        let module = std::any::type_name::<S>()
            .rsplit("::")
            .next()
            .unwrap_or("server");
        ChildSpec::worker(id, start).modules([module])
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> ChildSpec {
        self.restart = restart;
        self
    }

    /// Sets the shutdown.
    pub fn shutdown(mut self, shutdown: Shutdown) -> ChildSpec {
        self.shutdown = shutdown;
        self
    }

    /// Marks the child significant.
    pub fn significant(mut self, significant: bool) -> ChildSpec {
        self.significant = significant;
        self
    }

    /// Sets the modules.
    pub fn modules<M: Into<String>>(mut self, modules: impl IntoIterator<Item = M>) -> ChildSpec {
        self.modules = modules.into_iter().map(Into::into).collect();
        self
    }

    /// OTP's checks that the types leave open, in OTP's order: a significant child needs
    /// `auto_shutdown` and must not be permanent.
    pub fn check(&self, auto_shutdown: AutoShutdown) -> Result<(), SpecError> {
        if self.significant {
            if auto_shutdown == AutoShutdown::Never {
                return Err(SpecError::SignificantWithoutAutoShutdown);
            }
            if self.restart == Restart::Permanent {
                return Err(SpecError::SignificantPermanent);
            }
        }
        Ok(())
    }

    /// The spec as OTP's `#child{}` record term (it appears in `start_child` errors).
    pub fn record_term(&self) -> Term {
        Term::tuple([
            Term::atom("child"),
            Term::atom("undefined"),
            Term::atom(self.id.to_string()),
            Term::atom("start"),
            Term::atom(self.restart.as_atom()),
            Term::atom(if self.significant { "true" } else { "false" }),
            self.shutdown.to_term(),
            Term::atom(self.child_type.as_atom()),
            self.modules_term(),
        ])
    }

    /// The modules as a list of atoms.
    pub fn modules_term(&self) -> Term {
        Term::list(self.modules.iter().map(|m| Term::atom(m.clone())))
    }
}

/// Checks a list of child specs as OTP's `check_childspecs/2` does: each spec in order, then
/// its id against the ones before it.
pub fn check_childspecs(specs: &[ChildSpec], auto_shutdown: AutoShutdown) -> Result<(), SpecError> {
    let mut seen = std::collections::BTreeSet::new();
    for spec in specs {
        spec.check(auto_shutdown)?;
        if !seen.insert(spec.id.as_str()) {
            return Err(SpecError::DuplicateChildName(spec.id.to_string()));
        }
    }
    Ok(())
}
