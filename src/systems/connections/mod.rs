//! connections: a supervised network connection, the way an MQTT client keeps one.
//!
//! A [`Connection`] is a server that owns one link to a broker through a [`Transport`]. It
//! connects after it has started (so that its start, and its supervisor's, never wait on the
//! network), keeps the link alive with pings, and when the link drops, or a ping goes
//! unanswered, or the broker refuses it, tries again after an exponentially growing pause
//! (10 ms doubling to 1 s, back to 10 ms once connected). Publishing is a call answered when
//! the broker acknowledges the message, or with an error if the link drops first: a caller
//! never mistakes a lost message for a delivered one.
//!
//! The same connection is supervised three ways, side by side:
//!
//! ```text
//! owner ──link── connection            1. linked to the process that uses it
//!
//! sensor (rest_for_one)                2. with the processes that depend on it
//! ├── connection "sensor"
//! └── telemetry (holds the connection's pid, monitored)
//!
//! connections (one_for_one)            3. many, on demand
//! ├── registry                            via names {via, registry, "conn/<id>"}
//! └── connection supervisor               DynamicSupervisor "conn_sup", permanent children
//! ```
//!
//! The choices, and the flaws they avoid:
//!
//! * **Connect after the start, not in `init`.** A connection that connects in `init` fails
//!   its start while the broker is away, its supervisor retries at once, exceeds its
//!   intensity within microseconds and gives up: one network blip takes the tree down. Here
//!   the process exists while disconnected, and the backoff, not the supervisor, paces the
//!   retries.
//! * **Dependents restart with their connection (rest_for_one, connection first).** A
//!   dependent holding the connection's pid under one_for_one keeps calling a dead process
//!   after the connection restarts. Started after it under rest_for_one, it restarts with
//!   every new connection and looks the new pid up in its own start.
//! * **One connection per client id.** A broker lets a new connection with a client id take
//!   over an existing session: two live connections for one id would kick each other out for
//!   ever. On-demand connections are started under a unique via name, so a second start for
//!   an id answers the live one; the static one has a fixed child id.
//! * **On-demand connections are permanent.** One lives until its owner disconnects it
//!   ([`Connections::disconnect`], a `terminate_child`); any other end, even a `shutdown`
//!   signal from a stranger, is a loss to repair. Transient ones would stay down after such
//!   a signal, and the device would silently go offline.
//!
//! [`SimBroker`] is the transport of the simulation (its peer drops links, refuses
//! connections during outages, stops answering, and the harness delays its messages);
//! `examples/connections.rs` runs the same connections over TCP to a local server.

use crate::process::{ExitReason, MonitorRef, Msg, Process, TimerRef};
use crate::registry::{Keys, Registry, RegistryOptions};
use crate::rt::Duration;
use crate::server::{self, CallReply, GenServer, Init, Next, ServerRef, StartError, StartOptions};
use crate::supervisor::dynamic::{DynamicError, DynamicOptions, DynamicSupervisorRef};
use crate::supervisor::{
    self, BoxFuture, ChildSpec, Flags, Restart, Strategy, SupervisorRef, SupervisorSpec,
};
use crate::term::Pid;
use std::collections::BTreeMap;
use std::sync::Arc;

mod broker;
#[cfg(feature = "harness")]
mod target;

pub use broker::SimBroker;
#[cfg(feature = "harness")]
pub use target::{ConnectionsOp, ConnectionsTarget};

/// The first pause before reconnecting.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause before reconnecting.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often a connected connection pings.
pub const KEEPALIVE: Duration = Duration::from_millis(500);
/// How long a ping may go unanswered before the link counts as dead.
pub const PING_TIMEOUT: Duration = Duration::from_millis(300);

/// What goes over a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The client's message `id`, to be acknowledged.
    Publish(u64, String),
    /// The broker's acknowledgement of message `id`.
    Ack(u64),
    /// A keepalive.
    Ping(u64),
    /// The answer to a ping.
    Pong(u64),
}

/// What a transport delivers to the connection's mailbox: an event of one of its links.
#[derive(Debug)]
pub struct Incoming {
    /// The link's [id](Link::id): the connection ignores the events of links it has left.
    pub link: u64,
    /// What happened.
    pub event: Event,
}

/// What happened on a link.
#[derive(Debug)]
pub enum Event {
    /// A frame from the broker.
    Frame(Frame),
    /// The broker closed the link.
    Closed,
}

/// One open link to the broker, held by the connection process.
pub trait Link: Send + 'static {
    /// Names the link in its [`Incoming`] events (unique among the connection's links).
    fn id(&self) -> u64;
    /// Sends a frame; `false` if the link is known to be closed.
    fn send(&mut self, p: &Process, frame: Frame) -> bool;
    /// Closes the link (the connection gave up on it).
    fn close(&mut self, p: &Process);
}

/// How a connection reaches its broker.
pub trait Transport: Send + Sync + 'static {
    /// Opens a link for `client` from the calling process: the broker's frames and the end
    /// of the link arrive in its mailbox as [`Incoming`] messages.
    fn connect<'a>(
        &'a self,
        p: &'a Process,
        client: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Link>, String>>;
}

/// Why a request to a connection failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// Not connected right now (it is reconnecting).
    #[error("not connected")]
    NotConnected,
    /// The link dropped before the broker acknowledged the message.
    #[error("the link dropped before the acknowledgement")]
    Dropped,
    /// The connection process could not be called.
    #[error("the connection is not running: {0}")]
    Down(server::CallError),
}

/// A connection: its client id, its link while connected, the publishes waiting for their
/// acknowledgement.
pub struct Connection {
    client: String,
    transport: Arc<dyn Transport>,
    link: Option<Box<dyn Link>>,
    failures: u32,
    next_id: u64,
    pending: BTreeMap<u64, server::From<Result<bool, ConnectionError>>>,
    /// The unanswered ping, if any, and its deadline timer.
    ping: Option<(u64, TimerRef)>,
    timer: Option<TimerRef>,
}

/// A request to a connection.
pub enum ConnectionCall {
    /// Publishes a message; answered once the broker acknowledges it.
    Publish(String),
    /// Whether it is connected now.
    Connected,
}

/// The connection's own timers.
#[derive(Debug)]
enum Tick {
    Reconnect,
    Keepalive,
    PingTimeout(u64),
}

/// Why the connection starts connecting.
pub enum Cont {
    /// Right after the start.
    Connect,
}

/// The start argument: the client id and the transport.
pub type ConnectionArg = (String, Arc<dyn Transport>);

impl GenServer for Connection {
    type Arg = ConnectionArg;
    type Call = ConnectionCall;
    type Reply = Result<bool, ConnectionError>;
    type Cast = ();
    type Cont = Cont;

    async fn init((client, transport): ConnectionArg, _p: &Process) -> Init<Self> {
        let connection = Connection {
            client,
            transport,
            link: None,
            failures: 0,
            next_id: 0,
            pending: BTreeMap::new(),
            ping: None,
            timer: None,
        };
        Init::Continue(connection, Cont::Connect)
    }

    async fn handle_continue(&mut self, _: Cont, p: &Process) -> Next<Self> {
        self.connect(p).await;
        Next::Continue
    }

    async fn handle_call(
        &mut self,
        request: ConnectionCall,
        from: server::From<Self::Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        match request {
            ConnectionCall::Connected => CallReply::Reply(Ok(self.link.is_some())),
            ConnectionCall::Publish(payload) => {
                self.next_id += 1;
                let id = self.next_id;
                let sent = match &mut self.link {
                    Some(link) => link.send(p, Frame::Publish(id, payload)),
                    None => false,
                };
                if sent {
                    self.pending.insert(id, from);
                    CallReply::NoReply
                } else {
                    CallReply::Reply(Err(ConnectionError::NotConnected))
                }
            }
        }
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        if let Some(tick) = msg.downcast_ref::<Tick>() {
            match *tick {
                Tick::Reconnect => {
                    self.timer = None;
                    self.connect(p).await;
                }
                Tick::Keepalive => self.keepalive(p),
                Tick::PingTimeout(seq) if self.ping.is_some_and(|(s, _)| s == seq) => {
                    self.disconnected(p, true);
                }
                Tick::PingTimeout(_) => {}
            }
            return Next::Continue;
        }
        if let Ok(incoming) = msg.downcast::<Incoming>() {
            if self.link.as_ref().map(|l| l.id()) != Some(incoming.link) {
                return Next::Continue; // an event of a link given up on
            }
            match incoming.event {
                Event::Frame(Frame::Ack(id)) => {
                    if let Some(from) = self.pending.remove(&id) {
                        from.reply(p, Ok(true));
                    }
                }
                Event::Frame(Frame::Pong(seq)) => {
                    if let Some((s, deadline)) = self.ping {
                        if s == seq {
                            p.cancel_timer(deadline);
                            self.ping = None;
                        }
                    }
                }
                Event::Frame(_) => {}
                Event::Closed => self.disconnected(p, false),
            }
        }
        Next::Continue
    }

    async fn terminate(&mut self, _reason: &ExitReason, p: &Process) {
        if let Some(link) = &mut self.link {
            link.close(p);
        }
    }
}

impl Connection {
    async fn connect(&mut self, p: &Process) {
        match self.transport.connect(p, &self.client).await {
            Ok(link) => {
                self.link = Some(link);
                self.failures = 0;
                self.arm(p, KEEPALIVE, Tick::Keepalive);
            }
            Err(_) => self.retry_later(p),
        }
    }

    /// Schedules the next attempt: 10 ms, 20 ms, 40 ms ... at most 1 s.
    fn retry_later(&mut self, p: &Process) {
        let pause = BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(16))
            .min(BACKOFF_MAX);
        self.failures += 1;
        self.arm(p, pause, Tick::Reconnect);
    }

    fn arm(&mut self, p: &Process, after: Duration, tick: Tick) {
        if let Some(old) = self.timer.take() {
            p.cancel_timer(old);
        }
        self.timer = Some(p.send_after(after, p.pid(), tick));
    }

    fn keepalive(&mut self, p: &Process) {
        self.timer = None;
        let Some(link) = &mut self.link else {
            return;
        };
        self.next_id += 1;
        let seq = self.next_id;
        if !link.send(p, Frame::Ping(seq)) {
            self.disconnected(p, false);
            return;
        }
        let deadline = p.send_after(PING_TIMEOUT, p.pid(), Tick::PingTimeout(seq));
        self.ping = Some((seq, deadline));
        self.arm(p, KEEPALIVE, Tick::Keepalive);
    }

    /// The link is gone (closed by the broker, or given up on): every waiting publish fails,
    /// and a reconnection is scheduled.
    fn disconnected(&mut self, p: &Process, close: bool) {
        if let Some(mut link) = self.link.take() {
            if close {
                link.close(p);
            }
        }
        if let Some((_, deadline)) = self.ping.take() {
            p.cancel_timer(deadline);
        }
        for (_, from) in std::mem::take(&mut self.pending) {
            from.reply(p, Err(ConnectionError::Dropped));
        }
        self.retry_later(p);
    }
}

/// Starts a connection linked to the caller (the first way: its owner dies with it, or
/// traps its exit and decides).
pub async fn start_link(
    p: &Process,
    client: &str,
    transport: Arc<dyn Transport>,
) -> Result<ServerRef<Connection>, StartError> {
    server::start_link::<Connection>(p, (client.to_string(), transport)).await
}

/// Publishes `payload` on `connection`; `Ok` once the broker acknowledged it.
pub async fn publish(p: &Process, connection: Pid, payload: &str) -> Result<(), ConnectionError> {
    let connection = ServerRef::<Connection>::from_pid(connection);
    let reply = connection
        .call(p, ConnectionCall::Publish(payload.into()))
        .await
        .map_err(ConnectionError::Down)?;
    reply.map(|_| ())
}

/// Whether `connection` is connected now.
pub async fn is_connected(p: &Process, connection: Pid) -> Result<bool, ConnectionError> {
    let connection = ServerRef::<Connection>::from_pid(connection);
    connection
        .call(p, ConnectionCall::Connected)
        .await
        .map_err(ConnectionError::Down)?
}

/// The local name of the static connection of [`sensor`].
pub const SENSOR: &str = "sensor_connection";
/// The local name of the telemetry process of [`sensor`].
pub const TELEMETRY: &str = "sensor_telemetry";

/// A process that depends on a connection: it looks the connection up when it starts and
/// publishes through it.
///
/// Its start does not fail when the connection is missing: the connection may be dying right
/// then, its `EXIT` still on the way to the supervisor, and a failed start is retried at once
/// and counted: the supervisor would burn its intensity in microseconds. Under rest_for_one
/// the connection's death restarts the telemetry anyway, with the next connection. It also
/// monitors the connection it holds, and looks the name up again once it is gone: a
/// connection restarted alone (an operator's `terminate_child` and `restart_child` leave
/// the strategy out) is found too.
pub struct Telemetry {
    connection: Option<(Pid, MonitorRef)>,
}

impl Telemetry {
    /// The connection it holds, looked up again (and monitored) if the one it held is gone.
    fn connection(&mut self, p: &Process) -> Option<Pid> {
        if self.connection.is_none() {
            self.connection = p.whereis(SENSOR).map(|pid| (pid, p.monitor(pid)));
        }
        self.connection.map(|(pid, _)| pid)
    }
}

/// A request to [`Telemetry`].
pub enum TelemetryCall {
    /// Publishes a reading through its connection.
    Report(String),
    /// The connection it holds.
    Connection,
}

impl GenServer for Telemetry {
    type Arg = ();
    type Call = TelemetryCall;
    type Reply = Result<Pid, ConnectionError>;
    type Cast = ();
    type Cont = ();

    /// Finds the sensor's connection, started before it.
    async fn init(_: (), p: &Process) -> Init<Self> {
        let mut telemetry = Telemetry { connection: None };
        telemetry.connection(p);
        Init::Ok(telemetry)
    }

    async fn handle_info(&mut self, msg: Msg, _p: &Process) -> Next<Self> {
        if let Msg::Down { mref, .. } = msg {
            if self.connection.is_some_and(|(_, held)| held == mref) {
                self.connection = None;
            }
        }
        Next::Continue
    }

    async fn handle_call(
        &mut self,
        request: TelemetryCall,
        _from: server::From<Self::Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        let Some(connection) = self.connection(p) else {
            return CallReply::Reply(Err(ConnectionError::NotConnected));
        };
        CallReply::Reply(match request {
            TelemetryCall::Connection => Ok(connection),
            TelemetryCall::Report(reading) => {
                publish(p, connection, &reading).await.map(|()| connection)
            }
        })
    }
}

/// The second way: the connection `client` and the telemetry that depends on it, under
/// rest_for_one with the connection first.
pub fn sensor(client: &str, transport: Arc<dyn Transport>) -> SupervisorSpec {
    let connection = ChildSpec::server_with::<Connection>(
        "connection",
        (client.to_string(), transport),
        StartOptions::default().named(SENSOR),
    );
    let telemetry = ChildSpec::server_with::<Telemetry>(
        "telemetry",
        (),
        StartOptions::default().named(TELEMETRY),
    );
    SupervisorSpec::new(Flags::elixir(Strategy::RestForOne))
        .child(connection)
        .child(telemetry)
}

/// The local name of the DynamicSupervisor of [`Connections`].
pub const CONNECTIONS: &str = "conn_sup";

/// The third way: connections started on demand, one per client id, under a named
/// DynamicSupervisor, found by their via names. Cloning gives another handle to the same.
#[derive(Clone)]
pub struct Connections {
    registry: Registry<String, ()>,
    transport: Arc<dyn Transport>,
}

impl Connections {
    /// Connections over `transport` (not started yet: see [`spec`](Connections::spec)).
    pub fn new(transport: Arc<dyn Transport>) -> Connections {
        Connections {
            registry: Registry::new(RegistryOptions::new(Keys::Unique)),
            transport,
        }
    }

    /// The registry and the connection supervisor, under rest_for_one with the registry
    /// first: every connection's name lives in it.
    pub fn spec(&self) -> SupervisorSpec {
        let sup = DynamicOptions::default()
            .into_child_with("connections", StartOptions::default().named(CONNECTIONS));
        SupervisorSpec::new(Flags::elixir(Strategy::RestForOne))
            .child(self.registry.child_spec("registry"))
            .child(sup)
    }

    fn key(client: &str) -> String {
        format!("conn/{client}")
    }

    /// The connection of `client`, started if there is none (a second start for the same id
    /// answers the live one: `already_started`).
    pub async fn connect(&self, p: &Process, client: &str) -> Result<Pid, String> {
        if let Some(pid) = self.registry.whereis_name(&Connections::key(client)) {
            return Ok(pid);
        }
        let sup = p
            .whereis(CONNECTIONS)
            .ok_or("the connection supervisor is not running")?;
        let via = StartOptions::default().via(self.registry.via(Connections::key(client)));
        let spec = ChildSpec::server_with::<Connection>(
            "connection",
            (client.to_string(), self.transport.clone()),
            via,
        )
        .restart(Restart::Permanent);
        match DynamicSupervisorRef::from_pid(sup)
            .start_child(p, spec)
            .await
        {
            Ok(started) => started.pid().ok_or_else(|| "ignored".into()),
            Err(e) => match (e.already_started(), e) {
                (Some(pid), _) => Ok(pid),
                (None, DynamicError::Supervisor(_)) => {
                    Err("the connection supervisor is not running".into())
                }
                (None, e) => Err(e.to_string()),
            },
        }
    }

    /// The live connection of `client`, if there is one.
    pub fn whereis(&self, client: &str) -> Option<Pid> {
        self.registry.whereis_name(&Connections::key(client))
    }

    /// Stops the connection of `client` (it is not restarted).
    pub async fn disconnect(&self, p: &Process, client: &str) -> bool {
        let (Some(pid), Some(sup)) = (self.whereis(client), p.whereis(CONNECTIONS)) else {
            return false;
        };
        DynamicSupervisorRef::from_pid(sup)
            .terminate_child(p, pid)
            .await
            .is_ok()
    }
}

/// Starts the sensor (the second way) and the on-demand connections (the third) side by
/// side under one supervisor, linked to the caller.
pub async fn start_both(
    p: &Process,
    transport: Arc<dyn Transport>,
) -> Result<(SupervisorRef, Connections), StartError> {
    let connections = Connections::new(transport.clone());
    let spec = SupervisorSpec::new(Flags::elixir(Strategy::OneForOne))
        .child(sensor("sensor", transport).into_child("sensor"))
        .child(connections.spec().into_child("connections"));
    let sup = supervisor::start_link(p, spec).await?;
    Ok((sup, connections))
}
