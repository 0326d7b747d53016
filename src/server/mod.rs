//! GenServer-style servers: typed call, cast and info, `init` with OTP's results, call
//! timeouts, `handle_continue`, and `terminate`.
//!
//! A server is a type implementing [`GenServer`]; its value is the server's state.
//! [`start_link`] runs `init` synchronously, as `gen_server:start_link` does, and returns a
//! typed [`ServerRef`].
//!
//! ```
//! use otpsim::{rt, Node, Process, ExitReason};
//! use otpsim::server::{self, GenServer, Init, CallReply, From};
//!
//! struct Counter(u64);
//!
//! impl GenServer for Counter {
//!     type Arg = u64;
//!     type Call = ();
//!     type Reply = u64;
//!     type Cast = u64;
//!     type Cont = ();
//!
//!     async fn init(start: u64, _p: &Process) -> Init<Self> {
//!         Init::Ok(Counter(start))
//!     }
//!     async fn handle_call(&mut self, _: (), _from: From<u64>, _p: &Process) -> CallReply<Self> {
//!         CallReply::Reply(self.0)
//!     }
//!     async fn handle_cast(&mut self, n: u64, _p: &Process) -> server::Next<Self> {
//!         self.0 += n;
//!         server::Next::Continue
//!     }
//! }
//!
//! rt::block_on(0, async {
//!     let node = Node::new();
//!     let main = node.spawn(|p| async move {
//!         let counter = server::start_link::<Counter>(&p, 40).await.unwrap();
//!         counter.cast(&p, 2);
//!         assert_eq!(counter.call(&p, ()).await, Ok(42));
//!     });
//!     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
//! });
//! ```
//!
//! The GenServer behaviour: its callbacks, starts, calls and loop share the private message types
//! they exchange, so they stay in one file (stopping is in `stop.rs`).

mod stop;

pub use stop::{stop, StopError};

use crate::process::{catch_panic, ExitReason, MonitorRef, Msg, Process, RegisterError};
use crate::rt::Duration;
use crate::term::{Pid, Ref};
use crate::trace::SpawnTie;
use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use stop::SystemStop;

/// What `init` decided.
pub enum Init<S: GenServer> {
    /// `{ok, State}`: the server runs.
    Ok(S),
    /// `{ok, State, {continue, C}}`: the server runs `handle_continue(C)` before any message.
    Continue(S, S::Cont),
    /// `ignore`: the start returns [`StartError::Ignore`]; the process exits `normal`.
    Ignore,
    /// `{stop, Reason}`: the start fails with this reason, which is also the exit reason.
    Stop(ExitReason),
}

/// What a handler decided.
pub enum Next<S: GenServer> {
    /// `{noreply, State}`: wait for the next message.
    Continue,
    /// `{noreply, State, {continue, C}}`: run `handle_continue(C)` first.
    ContinueWith(S::Cont),
    /// `{stop, Reason, State}`: run `terminate` and exit.
    Stop(ExitReason),
}

/// What `handle_call` decided.
pub enum CallReply<S: GenServer> {
    /// `{reply, Reply, State}`.
    Reply(S::Reply),
    /// `{reply, Reply, State, {continue, C}}`.
    ReplyContinue(S::Reply, S::Cont),
    /// `{noreply, State}`: the reply is sent later with [`From::reply`].
    NoReply,
    /// `{stop, Reason, Reply, State}` / `{stop, Reason, State}`: reply (if given), then
    /// `terminate` and exit.
    Stop(ExitReason, Option<S::Reply>),
}

/// A GenServer: the state of a server process and its callbacks.
///
/// Only `init` is required. The defaults follow Elixir's `use GenServer`: an unexpected call
/// or cast stops the server (`bad_call`, `bad_cast`), other messages are ignored.
pub trait GenServer: Sized + Send + 'static {
    /// The argument given to `init`.
    type Arg: Send + 'static;
    /// Requests of [`ServerRef::call`].
    type Call: Send + 'static;
    /// Replies to calls.
    type Reply: Send + 'static;
    /// Requests of [`ServerRef::cast`].
    type Cast: Send + 'static;
    /// Continuation values for `handle_continue` (use `()` if unused).
    type Cont: Send + 'static;

    /// Initialises the state; the caller of [`start_link`] waits for the result.
    fn init(arg: Self::Arg, p: &Process) -> impl Future<Output = Init<Self>> + Send;

    /// Handles a call; the caller waits for the reply.
    fn handle_call(
        &mut self,
        request: Self::Call,
        from: From<Self::Reply>,
        p: &Process,
    ) -> impl Future<Output = CallReply<Self>> + Send {
        let _ = (request, from, p);
        async { CallReply::Stop(ExitReason::error("bad_call"), None) }
    }

    /// Handles a cast.
    fn handle_cast(
        &mut self,
        request: Self::Cast,
        p: &Process,
    ) -> impl Future<Output = Next<Self>> + Send {
        let _ = (request, p);
        async { Next::Stop(ExitReason::error("bad_cast")) }
    }

    /// Handles any other message: user messages of other types, `EXIT` from processes other
    /// than the parent (when trapping), monitors' `DOWN`.
    fn handle_info(&mut self, msg: Msg, p: &Process) -> impl Future<Output = Next<Self>> + Send {
        let _ = (msg, p);
        async { Next::Continue }
    }

    /// Continues work asked for by [`Init::Continue`] or a `...Continue` result.
    fn handle_continue(
        &mut self,
        cont: Self::Cont,
        p: &Process,
    ) -> impl Future<Output = Next<Self>> + Send {
        let _ = (cont, p);
        async { Next::Continue }
    }

    /// Called before the server exits: after a `Stop` result, a panic in a handler, or an
    /// exit signal from its parent while trapping exits. Not called when the server is killed
    /// or dies of a link without trapping.
    fn terminate(&mut self, reason: &ExitReason, p: &Process) -> impl Future<Output = ()> + Send {
        let _ = (reason, p);
        async {}
    }
}

/// The caller of a pending call, for a reply sent later ([`CallReply::NoReply`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct From<R> {
    pid: Pid,
    tag: Ref,
    #[serde(skip)]
    _reply: PhantomData<fn(R)>,
}

impl<R: Send + 'static> From<R> {
    /// The calling process.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends the reply (`gen_server:reply/2`). A reply to a caller that gave up is dropped.
    pub fn reply(self, p: &Process, reply: R) {
        if self.pid.node() != p.pid().node() {
            crate::dist::note_type::<Reply<R>>();
        }
        let tag = self.tag;
        p.send_boxed(self.pid, Box::new(Reply { tag, value: reply }), Some(tag));
    }
}

/// A typed handle on a server process.
pub struct ServerRef<S> {
    pid: Pid,
    _server: PhantomData<fn() -> S>,
}

impl<S> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for ServerRef<S> {}

impl<S> PartialEq for ServerRef<S> {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid
    }
}

impl<S> Eq for ServerRef<S> {}

impl<S> std::fmt::Debug for ServerRef<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerRef({})", self.pid)
    }
}

/// Why a call got no reply. A call never panics the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server was not alive when called (`noproc`).
    #[error("noproc: the server is not alive")]
    Noproc,
    /// The server exited before replying, with this reason.
    #[error("the server exited with reason {0}")]
    Exit(ExitReason),
    /// No reply within the timeout. A late reply is dropped.
    #[error("the call timed out")]
    Timeout,
    /// The server's node went down during the call, or could not be reached
    /// (`{nodedown, Node}`: a call's `DOWN noconnection`).
    #[error("nodedown: node n{0} is not connected")]
    NodeDown(u16),
}

/// Why a server did not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// `init` returned [`Init::Ignore`].
    #[error("ignore")]
    Ignore,
    /// `init` stopped or panicked, or the process died before it finished.
    #[error("the server failed to start: {0}")]
    Failed(ExitReason),
    /// The name is registered to this live process.
    #[error("already started as {0}")]
    AlreadyStarted(Pid),
}

impl StartError {
    /// The exit reason the start stands for, as `{error, Reason}` in OTP
    /// (`{already_started, Pid}` for a taken name).
    pub fn reason(&self) -> ExitReason {
        use crate::term::Term;
        match self {
            StartError::Ignore => ExitReason::Normal,
            StartError::Failed(r) => r.clone(),
            StartError::AlreadyStarted(pid) => ExitReason::Other(Term::tuple([
                Term::atom("already_started"),
                Term::Pid(*pid),
            ])),
        }
    }
}

/// Erlang's default call timeout: 5 seconds.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl<S: GenServer> ServerRef<S> {
    /// A handle on `pid`, trusted to run server `S`. Calls to a process that is not an `S`
    /// get no reply (and time out).
    pub fn from_pid(pid: Pid) -> ServerRef<S> {
        ServerRef {
            pid,
            _server: PhantomData,
        }
    }

    /// The server registered under a local `name`.
    pub fn whereis(p: &Process, name: &str) -> Option<ServerRef<S>> {
        p.whereis(name).map(ServerRef::from_pid)
    }

    /// The server's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Calls the server with Erlang's default timeout of 5 s.
    pub async fn call(&self, p: &Process, request: S::Call) -> Result<S::Reply, CallError> {
        self.call_timeout(p, request, Some(DEFAULT_CALL_TIMEOUT))
            .await
    }

    /// Calls the server, waiting at most `timeout` (`None`: forever). The server is monitored
    /// for the duration of the call, so its death is reported at once.
    pub async fn call_timeout(
        &self,
        p: &Process,
        request: S::Call,
        timeout: Option<Duration>,
    ) -> Result<S::Reply, CallError> {
        let caller = p.pid();
        if self.pid.node() != caller.node() {
            crate::dist::note_type::<CallRequest<S>>();
        }
        let wait = p.request(self.pid, |tag| call_request::<S>(caller, tag, request));
        await_call_reply::<S>(p, wait, timeout, self.pid.node()).await
    }

    /// Calls the server that node `node` has registered as `name` (`gen_server:call({Name,
    /// Node}, Request, Timeout)`): `Noproc` if nobody has the name there, `NodeDown` if the
    /// node cannot be reached or the connection goes down during the call
    /// (`sim-tests/conformance/c03_call_node_down.trace`, `c09_call_across_disconnect.trace`).
    pub async fn call_named(
        p: &Process,
        name: &str,
        node: u16,
        request: S::Call,
        timeout: Option<Duration>,
    ) -> Result<S::Reply, CallError> {
        let caller = p.pid();
        if node != caller.node() {
            crate::dist::note_type::<CallRequest<S>>();
        }
        let wait = p.request_named(name, node, |tag| call_request::<S>(caller, tag, request));
        await_call_reply::<S>(p, wait, timeout, node).await
    }

    /// Sends a cast; casts to a dead server are dropped.
    pub fn cast(&self, p: &Process, request: S::Cast) {
        p.send(self.pid, CastRequest::<S>(request));
    }
}

/// The message of a call from `caller` with the alias `tag`.
fn call_request<S: GenServer>(caller: Pid, tag: Ref, request: S::Call) -> Box<dyn Any + Send> {
    let from = From {
        pid: caller,
        tag,
        _reply: PhantomData,
    };
    Box::new(CallRequest::<S> { from, request })
}

/// The end of a call: its reply, or why there is none (the server on node `node`).
async fn await_call_reply<S: GenServer>(
    p: &Process,
    (mref, tag): (MonitorRef, Ref),
    timeout: Option<Duration>,
    node: u16,
) -> Result<S::Reply, CallError> {
    let accept = |m: &Msg| match m {
        Msg::Down { mref: r, .. } => *r == mref,
        m => m
            .downcast_ref::<Reply<S::Reply>>()
            .is_some_and(|r| r.tag == tag),
    };
    match p.await_reply(accept, timeout, (mref, tag)).await {
        Some(Msg::Down { reason, .. }) => Err(match reason {
            ExitReason::Noproc => CallError::Noproc,
            reason if reason == ExitReason::noconnection() => CallError::NodeDown(node),
            reason => CallError::Exit(reason),
        }),
        Some(msg) => {
            let reply = msg
                .downcast::<Reply<S::Reply>>()
                .unwrap_or_else(|_| unreachable!("accepted above"));
            Ok(reply.value)
        }
        None => Err(CallError::Timeout),
    }
}

/// Takes a call of server type `S` out of a message, for a process that answers calls
/// without running a [`GenServer`] loop (as an Erlang process may answer `'$gen_call'`
/// itself); gives the message back if it is not one.
///
/// ```
/// # #[cfg(madsim)] {
/// use otpsim::server::{self, GenServer, ServerRef};
/// use otpsim::Process;
/// /// A server type that is never started: it only names the call's types.
/// struct Add;
/// impl GenServer for Add {
///     type Arg = ();
///     type Call = u32;
///     type Reply = u32;
///     type Cast = ();
///     type Cont = ();
///     async fn init(_: (), _: &Process) -> server::Init<Self> {
///         server::Init::Ok(Add)
///     }
/// }
/// let answer = otpsim::sim::Sim::new(1).run(|p| async move {
///     let raw = p.spawn(|q| async move {
///         let msg = q.recv().await;
///         if let Ok((n, from)) = server::take_call::<Add>(msg) {
///             from.reply(&q, n + 1);
///         }
///     });
///     let reply = ServerRef::<Add>::from_pid(raw).call(&p, 41).await;
///     assert_eq!(reply, Ok(42));
/// });
/// assert_eq!(answer.failure(), None);
/// # }
/// ```
pub fn take_call<S: GenServer>(msg: Msg) -> Result<(S::Call, From<S::Reply>), Msg> {
    msg.downcast::<CallRequest<S>>()
        .map(|CallRequest { from, request }| (request, from))
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "S::Call: serde::Serialize",
    deserialize = "S::Call: serde::de::DeserializeOwned"
))]
struct CallRequest<S: GenServer> {
    from: From<S::Reply>,
    request: S::Call,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "S::Cast: serde::Serialize",
    deserialize = "S::Cast: serde::de::DeserializeOwned"
))]
struct CastRequest<S: GenServer>(S::Cast);

#[derive(serde::Serialize, serde::Deserialize)]
struct Reply<R> {
    tag: Ref,
    value: R,
}

/// Registers the calls, casts and replies of server `S` in `codec` under `tag` (`tag.call`,
/// `tag.cast`, `tag.reply`), so that processes on other nodes can call it over a real
/// network (`dist::tcp`). Both nodes register it.
///
/// ```
/// use otpsim::server::{self, GenServer};
/// struct Counter(u64);
/// impl GenServer for Counter {
///     type Arg = ();
///     type Call = u64;
///     type Reply = u64;
///     type Cast = ();
///     type Cont = ();
///     async fn init(_: (), _: &otpsim::Process) -> server::Init<Self> {
///         server::Init::Ok(Counter(0))
///     }
/// }
/// let mut codec = otpsim::dist::Codec::new();
/// server::register_calls::<Counter>(&mut codec, "counter");
/// ```
pub fn register_calls<S: GenServer>(codec: &mut crate::dist::Codec, tag: &str)
where
    S::Call: serde::Serialize + serde::de::DeserializeOwned,
    S::Reply: serde::Serialize + serde::de::DeserializeOwned,
    S::Cast: serde::Serialize + serde::de::DeserializeOwned,
{
    codec.register::<CallRequest<S>>(&format!("{tag}.call"));
    codec.register::<CastRequest<S>>(&format!("{tag}.cast"));
    codec.register::<Reply<S::Reply>>(&format!("{tag}.reply"));
}

struct StartAck {
    tag: Ref,
    result: Result<(), StartError>,
}

/// How a server is started.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Register the server under this local name; a taken name fails the start with
    /// [`StartError::AlreadyStarted`].
    pub name: Option<String>,
    /// Register the server under a name kept by a registry (OTP's `{via, Module, Name}`);
    /// a name held by a live process fails the start with [`StartError::AlreadyStarted`].
    pub via: Option<Via>,
    /// Link the server to the caller (`start_link`) or not (`start`).
    pub link: bool,
}

impl StartOptions {
    /// Linked to the caller, no name.
    pub fn linked() -> StartOptions {
        StartOptions {
            link: true,
            ..StartOptions::default()
        }
    }

    /// Registered under a local name.
    pub fn named(mut self, name: impl Into<String>) -> StartOptions {
        self.name = Some(name.into());
        self
    }

    /// Registered under a name kept by a registry.
    pub fn via(mut self, via: Via) -> StartOptions {
        self.via = Some(via);
        self
    }
}

/// A name kept by a registry (OTP's `{via, Module, Name}`), e.g.
/// [`Registry::via`](crate::registry::Registry::via) on one node, or
/// [`DistRef::via`](crate::cluster::cp::supervisor::DistRef::via) in a cluster.
pub trait ViaName: Send + Sync + 'static {
    /// Registers the calling process under the name, or says how (a registry of the
    /// process's own node answers at once; one that asks other nodes is asked by the starting
    /// server before its `init`, as OTP's `global:register_name` blocks on other nodes).
    fn register_name(&self, p: &Process) -> Registering;
    /// The live process registered under the name, as the calling process's node knows it.
    fn whereis_name<'a>(&'a self, p: &'a Process) -> BoxFuture<'a, Option<Pid>>;
    /// The name, for messages.
    fn describe(&self) -> String;
}

/// A future a [`ViaName`] answers with.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a [`ViaName`] registers a starting server.
pub enum Registering {
    /// At once: registered, or why not.
    Done(Result<(), ViaError>),
    /// By asking other nodes: the starting server runs this before its `init`.
    Ask(RegisterAsk),
}

/// Why a [`ViaName`] could not register a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViaError {
    /// A live process holds the name: the start answers [`StartError::AlreadyStarted`].
    Taken(Pid),
    /// The registry could not register it (it is not running): the start fails with this
    /// reason, as a crash in `register_name` would.
    Failed(ExitReason),
}

/// A shareable [`ViaName`].
#[derive(Clone)]
pub struct Via(pub std::sync::Arc<dyn ViaName>);

impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Via({})", self.0.describe())
    }
}

impl Via {
    /// The live process registered under the name, as the caller's node knows it.
    pub async fn whereis(&self, p: &Process) -> Option<Pid> {
        self.0.whereis_name(p).await
    }
}

/// Starts a server linked to the calling process and waits for its `init`
/// (`gen_server:start_link/3`). If `init` fails and the caller does not trap exits, the
/// caller dies of the link, as in Erlang.
pub async fn start_link<S: GenServer>(
    p: &Process,
    arg: S::Arg,
) -> Result<ServerRef<S>, StartError> {
    start_with(
        p,
        arg,
        StartOptions {
            link: true,
            ..Default::default()
        },
    )
    .await
}

/// Starts a server with the given options and waits for its `init`.
pub async fn start_with<S: GenServer>(
    p: &Process,
    arg: S::Arg,
    options: StartOptions,
) -> Result<ServerRef<S>, StartError> {
    let tag = p.alias();
    let parent = p.pid();
    let (name, via) = (options.name, options.via);
    let body = move |server: Process| {
        let start = Start { parent, tag };
        // Registration on this node is synchronous: done here, it takes no room in the
        // server's future. A via name that asks other nodes is registered before `init`.
        server.mark_server();
        let ask = register(&server, start, name, via)?;
        Ok(async move {
            if let Some(ask) = ask {
                if let Err(reason) = registered(&server, start, ask(&server).await) {
                    return reason;
                }
            }
            run::<S>(server, arg, start).await
        })
    };
    let tie = if options.link {
        SpawnTie::Link
    } else {
        SpawnTie::None
    };
    let (pid, _) = p.spawn_tied(tie, body);
    let answer = p
        .await_start_via(pid, tag, |m| {
            m.downcast_ref::<StartAck>().is_some_and(|a| a.tag == tag)
        })
        .await;
    match answer.map(Msg::downcast::<StartAck>) {
        Ok(Ok(ack)) => ack.result.map(|()| ServerRef::from_pid(pid)),
        Ok(Err(_)) => unreachable!("only acks are accepted"),
        Err(reason) => Err(StartError::Failed(reason)),
    }
}

/// Who started a server, and the tag of its start acknowledgement.
#[derive(Clone, Copy)]
struct Start {
    parent: Pid,
    tag: Ref,
}

impl Start {
    fn ack(self, p: &Process, result: Result<(), StartError>) {
        let tag = self.tag;
        p.send_boxed(self.parent, Box::new(StartAck { tag, result }), Some(tag));
    }
}

/// Registers a starting server under its local and via names; on a refusal, acknowledges
/// the start with its error and gives the reason the server exits with. A via name that asks
/// other nodes is returned, to ask before `init`.
fn register(
    p: &Process,
    start: Start,
    name: Option<String>,
    via: Option<Via>,
) -> Result<Option<RegisterAsk>, ExitReason> {
    if let Some(name) = name {
        match p.register(&name) {
            Ok(()) => {}
            Err(RegisterError::Taken(owner)) => {
                start.ack(p, Err(StartError::AlreadyStarted(owner)));
                return Err(ExitReason::Normal);
            }
            Err(e) => unreachable!("a new process has no name and is alive: {e}"),
        }
    }
    match via.map(|via| via.0.register_name(p)) {
        None => Ok(None),
        Some(Registering::Done(result)) => registered(p, start, result).map(|()| None),
        Some(Registering::Ask(ask)) => Ok(Some(ask)),
    }
}

/// How a via name that asks other nodes registers a starting server.
type RegisterAsk =
    Box<dyn for<'a> FnOnce(&'a Process) -> BoxFuture<'a, Result<(), ViaError>> + Send>;

/// A via registration's result: on a refusal, the start is acknowledged with its error, and
/// the reason the server exits with is given.
fn registered(p: &Process, start: Start, result: Result<(), ViaError>) -> Result<(), ExitReason> {
    match result {
        Ok(()) => Ok(()),
        Err(ViaError::Taken(owner)) => {
            start.ack(p, Err(StartError::AlreadyStarted(owner)));
            Err(ExitReason::Normal)
        }
        Err(ViaError::Failed(reason)) => {
            start.ack(p, Err(StartError::Failed(reason.clone())));
            Err(reason)
        }
    }
}

/// The body of a registered server process: `init`, then the loop.
async fn run<S: GenServer>(p: Process, arg: S::Arg, start: Start) -> ExitReason {
    let (state, cont) = match catch_panic(S::init(arg, &p)).await {
        Ok(Init::Ok(state)) => (state, None),
        Ok(Init::Continue(state, c)) => (state, Some(c)),
        Ok(Init::Ignore) => {
            start.ack(&p, Err(StartError::Ignore));
            return ExitReason::Normal;
        }
        Ok(Init::Stop(reason)) => {
            start.ack(&p, Err(StartError::Failed(reason.clone())));
            return reason;
        }
        Err(panic) => {
            let reason = ExitReason::Panic(panic);
            start.ack(&p, Err(StartError::Failed(reason.clone())));
            return reason;
        }
    };
    start.ack(&p, Ok(()));
    serve_loop(p, state, cont, start.parent).await
}

/// Makes the calling process a server with `state`, whose `init` the caller has done itself
/// (`gen_server:enter_loop/3`): a process that must set itself up before it serves (register
/// a name, read a disk) and is not started by [`start_link`]. It has no parent, so it stops
/// only by a handler's `Stop`, [`stop`], or a signal.
///
/// ```
/// use otpsim::{rt, Node, Process, ExitReason};
/// use otpsim::server::{self, GenServer, Init, CallReply, From, ServerRef};
///
/// struct Echo;
/// impl GenServer for Echo {
///     type Arg = ();
///     type Call = u32;
///     type Reply = u32;
///     type Cast = ();
///     type Cont = ();
///     async fn init(_: (), _: &Process) -> Init<Self> {
///         Init::Ok(Echo)
///     }
///     async fn handle_call(&mut self, n: u32, _: From<u32>, _: &Process) -> CallReply<Self> {
///         CallReply::Reply(n)
///     }
/// }
///
/// rt::block_on(1, async {
///     let node = Node::new();
///     let echo = node.spawn(|p| async move {
///         p.register("echo").unwrap();
///         server::enter_loop(p, Echo).await
///     });
///     let main = node.spawn(move |p| async move {
///         assert_eq!(ServerRef::<Echo>::from_pid(echo).call(&p, 7).await, Ok(7));
///     });
///     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
/// });
/// ```
pub async fn enter_loop<S: GenServer>(p: Process, state: S) -> ExitReason {
    p.mark_server();
    let parent = p.pid();
    serve_loop(p, state, None, parent).await
}

/// Runs `init` in the calling process and then serves, as [`enter_loop`] does with a state
/// made beforehand: for a server a node starts at boot, which no caller waits for. `Ignore`
/// ends the process `normal`; `Stop` ends it with its reason.
///
/// ```
/// use otpsim::{rt, ExitReason, Node, Process};
/// use otpsim::server::{self, CallReply, From, GenServer, Init, ServerRef};
///
/// struct Answer(u32);
/// impl GenServer for Answer {
///     type Arg = u32;
///     type Call = ();
///     type Reply = u32;
///     type Cast = ();
///     type Cont = ();
///     async fn init(n: u32, p: &Process) -> Init<Self> {
///         if n == 0 {
///             return Init::Stop(ExitReason::error("zero"));
///         }
///         p.register("answer").unwrap();
///         Init::Ok(Answer(n))
///     }
///     async fn handle_call(&mut self, _: (), _: From<u32>, _: &Process) -> CallReply<Self> {
///         CallReply::Reply(self.0)
///     }
/// }
///
/// rt::block_on(1, async {
///     let node = Node::new();
///     let refused = node.spawn(|p| server::serve::<Answer>(p, 0));
///     assert_eq!(node.wait_exit(refused).await, Some(ExitReason::error("zero")));
///     let answer = node.spawn(|p| server::serve::<Answer>(p, 42));
///     let main = node.spawn(move |p| async move {
///         assert_eq!(ServerRef::<Answer>::from_pid(answer).call(&p, ()).await, Ok(42));
///     });
///     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
/// });
/// ```
pub async fn serve<S: GenServer>(p: Process, arg: S::Arg) -> ExitReason {
    let (state, cont) = match catch_panic(S::init(arg, &p)).await {
        Ok(Init::Ok(state)) => (state, None),
        Ok(Init::Continue(state, c)) => (state, Some(c)),
        Ok(Init::Ignore) => return ExitReason::Normal,
        Ok(Init::Stop(reason)) => return reason,
        Err(panic) => return ExitReason::Panic(panic),
    };
    p.mark_server();
    let parent = p.pid();
    serve_loop(p, state, cont, parent).await
}

/// A server's loop: each message to its callback, until one stops it.
async fn serve_loop<S: GenServer>(
    p: Process,
    mut state: S,
    mut cont: Option<S::Cont>,
    parent: Pid,
) -> ExitReason {
    loop {
        let next = match cont.take() {
            Some(c) => catch_panic(state.handle_continue(c, &p)).await,
            None => match dispatch::<S>(p.recv().await, parent) {
                Dispatch::Call(request, from) => {
                    let caller = (from.pid, from.tag);
                    match catch_panic(state.handle_call(request, from, &p)).await {
                        Ok(reply) => Ok(answer(reply, caller, &p)),
                        Err(panic) => Err(panic),
                    }
                }
                Dispatch::Cast(request) => catch_panic(state.handle_cast(request, &p)).await,
                Dispatch::Stop(reason) => Ok(Next::Stop(reason)),
                Dispatch::System(request) => Ok(Next::Stop(request.acknowledge(&p))),
                Dispatch::Info(msg) => catch_panic(state.handle_info(msg, &p)).await,
            },
        };
        match next {
            Ok(Next::Continue) => {}
            Ok(Next::ContinueWith(c)) => cont = Some(c),
            Ok(Next::Stop(reason)) => return Box::pin(terminate(&mut state, reason, &p)).await,
            Err(panic) => {
                let reason = ExitReason::Panic(panic);
                return Box::pin(terminate(&mut state, reason, &p)).await;
            }
        }
    }
}

/// Which callback a message is for.
enum Dispatch<S: GenServer> {
    Call(S::Call, From<S::Reply>),
    Cast(S::Cast),
    /// A trapping server asked to stop by its parent: terminate with the parent's reason.
    Stop(ExitReason),
    /// Asked to stop by [`stop`]: acknowledge, then terminate with its reason.
    System(SystemStop),
    Info(Msg),
}

/// Sorts one message to its callback (synchronously: the server's future holds only the
/// callback's own future while it runs).
fn dispatch<S: GenServer>(msg: Msg, parent: Pid) -> Dispatch<S> {
    let msg = match msg.downcast::<CallRequest<S>>() {
        Ok(CallRequest { from, request }) => return Dispatch::Call(request, from),
        Err(msg) => msg,
    };
    let msg = match msg.downcast::<CastRequest<S>>() {
        Ok(CastRequest(request)) => return Dispatch::Cast(request),
        Err(Msg::Exit { from, reason }) if from == parent => return Dispatch::Stop(reason),
        Err(msg) => msg,
    };
    match msg.downcast::<SystemStop>() {
        Ok(request) => Dispatch::System(request),
        Err(msg) => Dispatch::Info(msg),
    }
}

/// Sends a `handle_call` result's reply, if it has one, and gives what the server does next.
fn answer<S: GenServer>(reply: CallReply<S>, caller: (Pid, Ref), p: &Process) -> Next<S> {
    let send = |value| {
        From {
            pid: caller.0,
            tag: caller.1,
            _reply: PhantomData,
        }
        .reply(p, value)
    };
    match reply {
        CallReply::Reply(r) => {
            send(r);
            Next::Continue
        }
        CallReply::ReplyContinue(r, c) => {
            send(r);
            Next::ContinueWith(c)
        }
        CallReply::NoReply => Next::Continue,
        CallReply::Stop(reason, r) => {
            if let Some(r) = r {
                send(r);
            }
            Next::Stop(reason)
        }
    }
}

/// Runs `terminate` and gives the exit reason (a panic in `terminate` replaces it).
async fn terminate<S: GenServer>(state: &mut S, reason: ExitReason, p: &Process) -> ExitReason {
    match catch_panic(state.terminate(&reason, p)).await {
        Ok(()) => reason,
        Err(panic) => ExitReason::Panic(panic),
    }
}
