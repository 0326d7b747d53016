//! The broker of the simulation: a process that accepts links, acknowledges publishes and
//! answers pings, and that the workload can make misbehave: drop links, refuse connections
//! for a while (an outage), or stop answering (a stall). It also watches the one rule a
//! broker can see being broken: two live connections with the same client id.

use super::{Event, Frame, Incoming, Link, Transport};
use crate::process::{Msg, Process};
use crate::rt::{Duration, Instant};
use crate::server::{self, CallReply, GenServer, Init, ServerRef, StartError};
use crate::supervisor::BoxFuture;
use crate::term::Pid;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Default)]
struct State {
    /// Connections are refused until then.
    outage_until: Option<Instant>,
    /// Clients whose sessions stop answering until then.
    stalled: BTreeMap<String, Instant>,
    /// The open sessions of each client id: (connection, session).
    sessions: BTreeMap<String, Vec<(Pid, Pid)>>,
    /// Every connection that ever had a session, by client id.
    connected: BTreeMap<String, std::collections::BTreeSet<Pid>>,
}

/// The broker: a handle on its process and on what it knows. Cloning gives another handle.
#[derive(Clone)]
pub struct SimBroker {
    pid: Pid,
    state: Arc<Mutex<State>>,
}

struct Broker(Arc<Mutex<State>>);

/// A client's request to link.
struct Connect {
    client: String,
    connection: Pid,
}

/// Tells a session to close its link (the broker drops it).
struct Close;
/// Tells a session the client hung up.
struct Hangup;

impl GenServer for Broker {
    type Arg = Arc<Mutex<State>>;
    type Call = Connect;
    type Reply = Result<Pid, String>;
    type Cast = ();
    type Cont = ();

    async fn init(state: Arc<Mutex<State>>, _p: &Process) -> Init<Self> {
        Init::Ok(Broker(state))
    }

    async fn handle_call(
        &mut self,
        Connect { client, connection }: Connect,
        _from: server::From<Self::Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        let now = p.now();
        let mut st = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A request that outlived its sender (delayed on the way) is a handshake nobody
        // completes.
        if !p.node().is_alive(connection) {
            return CallReply::Reply(Err("the client is gone".into()));
        }
        if st.outage_until.is_some_and(|until| now < until) {
            return CallReply::Reply(Err("connection refused".into()));
        }
        // A new session for a client id takes over the old ones (MQTT's session takeover).
        for (_, session) in st.sessions.remove(&client).unwrap_or_default() {
            p.send(session, Close);
        }
        st.connected
            .entry(client.clone())
            .or_default()
            .insert(connection);
        let state = self.0.clone();
        let name = client.clone();
        let session = p.spawn(move |s| run_session(s, connection, name, state));
        st.sessions
            .entry(client)
            .or_default()
            .push((connection, session));
        CallReply::Reply(Ok(session))
    }
}

/// One link's far end: acknowledges and answers the connection until either side ends it.
async fn run_session(s: Process, connection: Pid, client: String, state: Arc<Mutex<State>>) {
    let watch = s.monitor(connection);
    let link = s.pid().id();
    let tell = |event| s.send(connection, Incoming { link, event });
    loop {
        let msg = s.recv().await;
        if matches!(msg, Msg::Down { mref, .. } if mref == watch) || msg.is::<Hangup>() {
            break;
        }
        if msg.is::<Close>() {
            tell(Event::Closed);
            break;
        }
        let Ok(frame) = msg.downcast::<Frame>() else {
            continue;
        };
        let now = s.now();
        let stalled = {
            let st = state.lock().unwrap_or_else(PoisonError::into_inner);
            st.stalled.get(&client).is_some_and(|until| now < *until)
        };
        match frame {
            _ if stalled => {}
            Frame::Publish(id, _) => tell(Event::Frame(Frame::Ack(id))),
            Frame::Ping(seq) => tell(Event::Frame(Frame::Pong(seq))),
            Frame::Ack(_) | Frame::Pong(_) => {}
        }
    }
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sessions) = st.sessions.get_mut(&client) {
        sessions.retain(|(_, session)| *session != s.pid());
    }
}

/// The client side of a simulated link: frames go to the session process.
struct SimLink {
    session: Pid,
}

impl Link for SimLink {
    fn id(&self) -> u64 {
        self.session.id()
    }

    fn send(&mut self, p: &Process, frame: Frame) -> bool {
        p.send(self.session, frame);
        true
    }

    fn close(&mut self, p: &Process) {
        p.send(self.session, Hangup);
    }
}

impl SimBroker {
    /// Starts the broker, linked to the caller.
    pub async fn start_link(p: &Process) -> Result<SimBroker, StartError> {
        let state: Arc<Mutex<State>> = Arc::default();
        let broker = server::start_link::<Broker>(p, state.clone()).await?;
        Ok(SimBroker {
            pid: broker.pid(),
            state,
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Drops every link of `client` (the broker closes them).
    pub fn drop_links(&self, p: &Process, client: &str) {
        let sessions = self.with(|st| st.sessions.get(client).cloned().unwrap_or_default());
        for (_, session) in sessions {
            p.send(session, Close);
        }
    }

    /// Drops every link and refuses connections for `duration`.
    pub fn outage(&self, p: &Process, duration: Duration) {
        let until = p.now() + duration;
        let sessions: Vec<Pid> = self.with(|st| {
            st.outage_until = Some(until);
            st.sessions.values().flatten().map(|(_, s)| *s).collect()
        });
        for session in sessions {
            p.send(session, Close);
        }
    }

    /// `client`'s sessions stop answering (publishes, pings) for `duration`.
    pub fn stall(&self, p: &Process, client: &str, duration: Duration) {
        let until = p.now() + duration;
        self.with(|st| st.stalled.insert(client.to_string(), until));
    }

    /// The open sessions of `client`, as (connection, session).
    pub fn sessions(&self, client: &str) -> Vec<(Pid, Pid)> {
        self.with(|st| st.sessions.get(client).cloned().unwrap_or_default())
    }

    /// The client ids that more than one live connection has connected with: two that would
    /// take the session from each other for ever. (Right after a restart, the old connection
    /// may still be alive for a moment, its exit signal on the way: check at rest.)
    pub fn duplicates(&self, p: &Process) -> Vec<String> {
        self.with(|st| {
            st.connected
                .iter()
                .filter_map(|(client, pids)| {
                    let live: Vec<&Pid> = pids.iter().filter(|c| p.node().is_alive(**c)).collect();
                    (live.len() > 1).then(|| format!("{client}: {live:?} are all alive"))
                })
                .collect()
        })
    }
}

impl Transport for SimBroker {
    fn connect<'a>(
        &'a self,
        p: &'a Process,
        client: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Link>, String>> {
        Box::pin(async move {
            let broker = ServerRef::<Broker>::from_pid(self.pid);
            let request = Connect {
                client: client.to_string(),
                connection: p.pid(),
            };
            let session = broker
                .call_timeout(p, request, Some(Duration::from_secs(1)))
                .await
                .map_err(|e| e.to_string())??;
            Ok(Box::new(SimLink { session }) as Box<dyn Link>)
        })
    }
}
