//! Erlang distribution over TCP (feature `tcp`): a node listens, connects to a peer the first
//! time one of its processes sends there (or `monitor_node`s it), and then behaves as in the
//! simulated cluster: each pair's order is kept (one connection per pair of nodes), a closed
//! connection fires `noconnection` for every link and monitor across it, and a connection that
//! hears nothing for `net_ticktime` is declared down (each side sends a tick when it has had
//! nothing to say for a quarter of it).
//!
//! Frames are a 4-byte little-endian length and a bincode `Frame`. Each side's first frame
//! is a `Hello` with the shared cookie, its index and its creation; a node with another cookie
//! is refused (`NotAllowed`), and [`Tcp::connect`] says so. Two nodes that dial each other at once keep the lower index's connection. A
//! peer that comes back with a new creation replaces its old connection (which goes down).
//!
//! The same code runs in a simulation on madsim's TCP (`sim-tests/tcp.rs`) and natively
//! (`examples/cluster.rs`).
//!
//! The transport's connection life cycle (dial, handshake, tie-break, replacement, ticks, teardown)
//! shares one `Shared` state and one lock, so it is one file (hence its length).

use super::codec::Codec;
use super::wire::{Frame, MAX_FRAME};
use crate::process::{Carrier, Node, NodeDownReason, Signal, WeakNode};
use crate::rt::{self, Duration};
use crate::term::Pid;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How a node reaches its peers.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Where this node listens.
    pub listen: SocketAddr,
    /// Where each peer (by index) listens.
    pub peers: BTreeMap<u16, SocketAddr>,
    /// The cluster's shared secret.
    pub cookie: String,
    /// How long a connection that hears nothing lives (Erlang's `net_ticktime`).
    pub net_ticktime: Duration,
    /// The message types that may cross.
    pub codec: Codec,
}

impl TcpConfig {
    /// Listens on `listen`, with Erlang's `net_ticktime` of 60 s and a codec that knows
    /// [`Term`](crate::Term).
    pub fn new(listen: SocketAddr, cookie: &str) -> TcpConfig {
        TcpConfig {
            listen,
            peers: BTreeMap::new(),
            cookie: cookie.into(),
            net_ticktime: Duration::from_secs(60),
            codec: Codec::new(),
        }
    }

    /// The same, knowing where node `index` listens.
    pub fn peer(mut self, index: u16, addr: SocketAddr) -> TcpConfig {
        self.peers.insert(index, addr);
        self
    }
}

/// What goes to a connection's writer.
enum Out {
    Signal(Pid, Pid, Signal),
    Close,
}

/// A peer as this node knows it.
enum Peer {
    /// Dial `dial` is under way; these wait for it.
    Connecting {
        queue: Vec<(Pid, Pid, Signal)>,
        dial: u64,
    },
    /// Connected to the peer's incarnation `creation` by connection `id`.
    Up {
        creation: u16,
        tx: mpsc::UnboundedSender<Out>,
        id: u64,
        /// Cleared when the connection stops being this peer's: its reader delivers nothing
        /// more.
        live: Arc<AtomicBool>,
    },
}

impl Peer {
    /// Ends it: a connection's writer closes, and its reader stops delivering; a dial's
    /// waiting signals are given back.
    fn end(self) -> Vec<(Pid, Pid, Signal)> {
        match self {
            Peer::Connecting { queue, .. } => queue,
            Peer::Up { tx, live, .. } => {
                live.store(false, Ordering::Relaxed);
                let _ = tx.send(Out::Close);
                Vec::new()
            }
        }
    }
}

struct Shared {
    node: WeakNode,
    index: u16,
    creation: u16,
    config: TcpConfig,
    peers: Mutex<BTreeMap<u16, Peer>>,
    next_id: AtomicU64,
    undeliverable: AtomicU64,
    /// Why the last dial of each peer failed, when the peer said why.
    refused: Mutex<BTreeMap<u16, ConnectError>>,
    /// The node halted: nothing connects any more.
    halted: AtomicBool,
}

/// Why [`Tcp::connect`] did not connect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The peer has another cookie (Erlang: the handshake's `not_allowed`).
    #[error("n{0} refused the connection: it has another cookie")]
    NotAllowed(u16),
    /// No address is configured for the peer.
    #[error("no address is configured for n{0}")]
    UnknownPeer(u16),
    /// The peer did not answer (down, unreachable, or silent).
    #[error("n{0} did not answer")]
    Unreachable(u16),
}

/// A node's TCP transport (see the module's documentation).
#[derive(Clone)]
pub struct Tcp {
    shared: Arc<Shared>,
    local: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tcp {
    /// Starts listening and attaches the transport to `node` (made with its index and
    /// creation in its [`NodeConfig`](crate::NodeConfig)). Must run inside the executor.
    pub async fn start(node: &Node, config: TcpConfig) -> io::Result<Tcp> {
        let listener = TcpListener::bind(config.listen).await?;
        let local = listener.local_addr()?;
        let (index, creation) = node.identity();
        let shared = Arc::new(Shared {
            node: node.downgrade(),
            index,
            creation,
            config,
            peers: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            undeliverable: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
            halted: AtomicBool::new(false),
        });
        node.attach(Arc::new(Port(shared.clone())));
        rt::spawn(accept(shared.clone(), listener));
        Ok(Tcp { shared, local })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The peers it is connected to, in order (`erlang:nodes()`).
    pub fn connected(&self) -> Vec<u16> {
        let peers = lock(&self.shared.peers);
        peers
            .iter()
            .filter(|(_, p)| matches!(p, Peer::Up { .. }))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Closes the connection to `peer` (`erlang:disconnect_node/1`); a connection still
    /// being made is given up (what waited for it fails as on an unreachable node).
    pub fn disconnect(&self, peer: u16) {
        let Some(old) = lock(&self.shared.peers).remove(&peer) else {
            return;
        };
        match old {
            Peer::Connecting { queue, .. } => fail(&self.shared, peer, queue),
            up => {
                up.end();
                if let Some(node) = self.shared.node.upgrade() {
                    node.connection_lost(peer, NodeDownReason::Disconnect);
                }
            }
        }
    }

    /// Connects to `peer` now, if it is not connected (`net_kernel:connect_node/1`), and
    /// says why not: a peer with another cookie refuses ([`ConnectError::NotAllowed`]). Call
    /// it from a process of the node (its dial runs where it is called).
    pub async fn connect(&self, peer: u16) -> Result<(), ConnectError> {
        if !self.shared.config.peers.contains_key(&peer) {
            return Err(ConnectError::UnknownPeer(peer));
        }
        if self.shared.halted.load(Ordering::Relaxed) {
            return Err(ConnectError::Unreachable(peer));
        }
        {
            let mut peers = lock(&self.shared.peers);
            if !peers.contains_key(&peer) {
                Port(self.shared.clone()).dial(&mut peers, peer, Vec::new());
            }
        }
        // A dial ends within two tick times (a handshake, or a wait for the peer's own dial).
        let step = Duration::from_millis(10);
        let steps = 3 * self.shared.config.net_ticktime.as_millis() / step.as_millis();
        for _ in 0..steps.max(1) {
            match lock(&self.shared.peers).get(&peer) {
                Some(Peer::Up { .. }) => return Ok(()),
                Some(Peer::Connecting { .. }) => {}
                None => break,
            }
            rt::sleep(step).await;
        }
        let refused = lock(&self.shared.refused).get(&peer).cloned();
        Err(refused.unwrap_or(ConnectError::Unreachable(peer)))
    }

    /// How many signals could not be sent (a type without a codec, a frame too large).
    pub fn undeliverable(&self) -> u64 {
        self.shared.undeliverable.load(Ordering::Relaxed)
    }
}

/// The node's way into the transport. Called under the node's lock: it only queues.
struct Port(Arc<Shared>);

impl Port {
    /// Starts a dial to `peer` with `queue` waiting for it.
    fn dial(&self, peers: &mut BTreeMap<u16, Peer>, peer: u16, queue: Vec<(Pid, Pid, Signal)>) {
        // Why an earlier dial failed says nothing about this one.
        lock(&self.0.refused).remove(&peer);
        let dial = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        peers.insert(peer, Peer::Connecting { queue, dial });
        rt::spawn(dial_peer(self.0.clone(), peer, dial));
    }
}

impl Carrier for Port {
    fn carry(&self, from: Pid, to: Pid, signal: Signal) {
        let shared = &self.0;
        let peer = to.node();
        let mut peers = lock(&shared.peers);
        match peers.get_mut(&peer) {
            Some(Peer::Up { tx, .. }) => {
                let _ = tx.send(Out::Signal(from, to, signal));
            }
            Some(Peer::Connecting { queue, .. }) => queue.push((from, to, signal)),
            None if shared.halted.load(Ordering::Relaxed) => {}
            None => self.dial(&mut peers, peer, vec![(from, to, signal)]),
        }
    }

    fn connect(&self, _from: u16, to: u16) -> bool {
        let shared = &self.0;
        let mut peers = lock(&shared.peers);
        if peers.contains_key(&to) {
            return true;
        }
        if !shared.config.peers.contains_key(&to) || shared.halted.load(Ordering::Relaxed) {
            return false;
        }
        self.dial(&mut peers, to, Vec::new());
        true
    }

    fn halt(&self) {
        let shared = &self.0;
        shared.halted.store(true, Ordering::Relaxed);
        let peers = std::mem::take(&mut *lock(&shared.peers));
        for (_, peer) in peers {
            peer.end();
        }
    }
}

async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = listener.accept().await;
        if shared.halted.load(Ordering::Relaxed) || shared.node.upgrade().is_none() {
            return;
        }
        match accepted {
            Ok((stream, _)) => rt::spawn(answer(shared.clone(), stream)),
            // Out of descriptors, say: try again a little later rather than spin.
            Err(_) => rt::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Writes one frame.
async fn send_frame<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> io::Result<()> {
    let bytes = frame.to_bytes().map_err(io::Error::other)?;
    w.write_all(&bytes).await?;
    w.flush().await
}

/// Reads one frame of at most `max` bytes (`None` at the end of the stream, for a longer
/// one, or for bytes that are not a frame).
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Option<Frame> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.ok()?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return None;
    }
    buf.resize(len, 0);
    r.read_exact(buf).await.ok()?;
    Frame::from_body(buf)
}

/// The largest first frame accepted, before the peer has shown the cookie.
const MAX_HELLO: usize = 1024;

impl Shared {
    fn hello(&self) -> Frame {
        Frame::Hello {
            cookie: self.config.cookie.clone(),
            index: self.index,
            creation: self.creation,
        }
    }

    /// Checks a peer's hello: its index and creation if its cookie is ours.
    fn check(&self, frame: Option<Frame>) -> Option<(u16, u16)> {
        match frame? {
            Frame::Hello {
                cookie,
                index,
                creation,
            } if cookie == self.config.cookie && index != self.index => Some((index, creation)),
            _ => None,
        }
    }
}

/// What a dial's handshake came to.
enum Dialled {
    /// Connected to this incarnation of the peer.
    Up(TcpStream, u16),
    /// The peer is dialling us too and keeps its own connection (it has the lower index).
    Refused,
    /// Refused: the peer has another cookie.
    NotAllowed,
    /// Nothing (unreachable, silence).
    Failed,
}

/// Dial `dial` to node `peer`, for the signals queued for it.
async fn dial_peer(shared: Arc<Shared>, peer: u16, dial: u64) {
    let handshake = async {
        let Some(&addr) = shared.config.peers.get(&peer) else {
            return Dialled::Failed;
        };
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            return Dialled::Failed;
        };
        if send_frame(&mut stream, &shared.hello()).await.is_err() {
            return Dialled::Failed;
        }
        let mut buf = Vec::new();
        match read_frame(&mut stream, &mut buf, MAX_HELLO).await {
            Some(Frame::Busy) => Dialled::Refused,
            Some(Frame::NotAllowed) => Dialled::NotAllowed,
            reply => match shared.check(reply) {
                Some((index, creation)) if index == peer => Dialled::Up(stream, creation),
                _ => Dialled::Failed,
            },
        }
    };
    let dialled = rt::timeout(shared.config.net_ticktime, handshake).await;
    match dialled.unwrap_or(Dialled::Failed) {
        Dialled::Up(stream, creation) => {
            install(&shared, peer, creation, stream, Some(dial));
        }
        Dialled::Refused => {
            // The peer's own connection is on its way: it takes over what waits here.
            rt::sleep(shared.config.net_ticktime).await;
            give_up(&shared, peer, dial);
        }
        Dialled::NotAllowed => {
            lock(&shared.refused).insert(peer, ConnectError::NotAllowed(peer));
            give_up(&shared, peer, dial);
        }
        Dialled::Failed => give_up(&shared, peer, dial),
    }
}

/// Dial `dial` to `peer` came to nothing: if it is still the one waiting, what waits for it
/// fails.
fn give_up(shared: &Shared, peer: u16, dial: u64) {
    let queue = {
        let mut peers = lock(&shared.peers);
        match peers.get(&peer) {
            Some(Peer::Connecting { dial: d, .. }) if *d == dial => {
                peers.remove(&peer).map(Peer::end).unwrap_or_default()
            }
            _ => return,
        }
    };
    fail(shared, peer, queue);
}

/// A connection attempt failed: links and monitors waiting for it get `noconnection`, a
/// remote spawn `NodeDown`, the node's `monitor_node`s of the peer `nodedown`; messages are
/// dropped.
fn fail(shared: &Shared, peer: u16, queued: Vec<(Pid, Pid, Signal)>) {
    let Some(node) = shared.node.upgrade() else {
        return;
    };
    for (from, to, signal) in queued {
        if let Some(answer) = signal.unreachable_answer() {
            node.arrive(to, from, answer);
        }
    }
    node.connection_failed(peer);
}

/// Answers a peer's dial.
async fn answer(shared: Arc<Shared>, mut stream: TcpStream) {
    let mut buf = Vec::new();
    let hello = rt::timeout(
        shared.config.net_ticktime,
        read_frame(&mut stream, &mut buf, MAX_HELLO),
    )
    .await;
    let hello = hello.flatten();
    let another_cookie =
        matches!(&hello, Some(Frame::Hello { cookie, .. }) if *cookie != shared.config.cookie);
    let Some((peer, creation)) = shared.check(hello) else {
        if another_cookie {
            let _ = send_frame(&mut stream, &Frame::NotAllowed).await;
        }
        return;
    };
    // Refused, `install` answers so.
    install(&shared, peer, creation, stream, None);
}

/// A connection to `peer` (incarnation `creation`) is handshaken, by our dial `dial` or by
/// the peer's (`None`). Decides, in one critical section, whether it becomes the peer's
/// connection:
///
/// * our dial only if it is still the one waiting;
/// * the peer's dial unless ours is under way and we have the lower index (the lower index's
///   connection wins), or it comes from an older incarnation than the one connected;
/// * a dial of the peer while it is connected replaces that connection (the old one goes
///   down first: the peer reconnected or restarted).
///
/// What waited goes into the new connection before anything sent later can. Returns whether
/// it was taken.
fn install(
    shared: &Arc<Shared>,
    peer: u16,
    creation: u16,
    mut stream: TcpStream,
    dial: Option<u64>,
) -> bool {
    let (tx, rx) = mpsc::unbounded_channel();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let live = Arc::new(AtomicBool::new(true));
    let replaced = {
        let mut peers = lock(&shared.peers);
        let take = !shared.halted.load(Ordering::Relaxed)
            && match (dial, peers.get(&peer)) {
                (Some(d), Some(Peer::Connecting { dial, .. })) => *dial == d,
                (Some(_), _) => false,
                (None, Some(Peer::Connecting { .. })) => shared.index > peer,
                (None, Some(Peer::Up { creation: c, .. })) => creation >= *c,
                (None, None) => true,
            };
        if !take {
            drop(peers);
            if dial.is_none() {
                let refusal = async move {
                    let _ = send_frame(&mut stream, &Frame::Busy).await;
                };
                rt::spawn(refusal);
            }
            return false;
        }
        let up = Peer::Up {
            creation,
            tx: tx.clone(),
            id,
            live: live.clone(),
        };
        match peers.insert(peer, up) {
            Some(Peer::Connecting { queue, .. }) => {
                for (from, to, signal) in queue {
                    let _ = tx.send(Out::Signal(from, to, signal));
                }
                false
            }
            Some(old) => {
                old.end();
                true
            }
            None => false,
        }
    };
    let Some(node) = shared.node.upgrade() else {
        return false;
    };
    if replaced {
        node.connection_lost(peer, NodeDownReason::ConnectionClosed);
    }
    // Frames are flushed when nothing more waits: Nagle's delay would only add latency.
    let _ = stream.set_nodelay(true);
    node.connection_up(peer);
    let shared = shared.clone();
    rt::spawn(async move {
        // The answer to a dial: our hello, before anything the writer sends.
        if dial.is_none() && send_frame(&mut stream, &shared.hello()).await.is_err() {
            down(&shared, peer, id, NodeDownReason::ConnectionClosed);
            return;
        }
        let (reader, writer) = tokio::io::split(stream);
        rt::spawn(write(shared.clone(), rx, writer));
        read(shared, peer, id, live, reader).await;
    });
    true
}

/// The connection `id` to `peer` went down (`reason`), unless it already was.
fn down(shared: &Shared, peer: u16, id: u64, reason: NodeDownReason) {
    let mut peers = lock(&shared.peers);
    let current = matches!(peers.get(&peer), Some(Peer::Up { id: i, .. }) if *i == id);
    if !current {
        return;
    }
    if let Some(old) = peers.remove(&peer) {
        old.end();
    }
    drop(peers);
    if let Some(node) = shared.node.upgrade() {
        node.connection_lost(peer, reason);
    }
}

/// Sends what the node hands over, flushing when nothing more is waiting, and a tick when
/// there has been nothing to send for a quarter of `net_ticktime`.
async fn write<W: tokio::io::AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    writer: W,
) {
    let mut w = BufWriter::with_capacity(64 << 10, writer);
    let tick = shared.config.net_ticktime / 4;
    loop {
        let next = match rx.try_recv() {
            Ok(out) => Some(out),
            Err(_) => {
                if w.flush().await.is_err() {
                    return;
                }
                rt::timeout(tick, rx.recv())
                    .await
                    .map(|o| o.unwrap_or(Out::Close))
            }
        };
        let frame = match next {
            None => Frame::Tick,
            Some(Out::Close) => {
                let _ = w.shutdown().await;
                return;
            }
            Some(Out::Signal(from, to, signal)) => {
                match shared.config.codec.encode_signal(signal) {
                    Ok(signal) => Frame::Signal { from, to, signal },
                    Err(e) => {
                        shared.undeliverable.fetch_add(1, Ordering::Relaxed);
                        if let Some(node) = shared.node.upgrade() {
                            node.undeliverable(from, to, e.to_string());
                        }
                        continue;
                    }
                }
            }
        };
        match frame.to_bytes() {
            Ok(bytes) => {
                if w.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            // Too large for a frame: counted like a type without a codec.
            Err(_) => {
                shared.undeliverable.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How many times a reader polls its socket again, letting other tasks run in between,
/// before it sleeps until the socket is readable: waking a sleeping OS thread costs more than
/// a round trip (the BEAM's schedulers spin before they sleep for the same reason; b6 in
/// `benches/runtime.rs` measures it).
const SPINS: u32 = 200;

/// `future`, polled again after each yield up to [`SPINS`] times before it is left to its
/// waker. In a simulation the waker alone: spinning would only cost steps.
async fn spinning<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    if !rt::SIMULATED {
        for _ in 0..SPINS {
            let once = std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
                std::task::Poll::Pending => std::task::Poll::Ready(None),
            });
            if let Some(v) = once.await {
                return v;
            }
            rt::yield_now().await;
        }
    }
    future.await
}

/// Hands the peer's signals to the node; the connection goes down when the peer closes it,
/// sends something that is not a frame, or says nothing for `net_ticktime`.
async fn read<R: tokio::io::AsyncRead + Unpin>(
    shared: Arc<Shared>,
    peer: u16,
    id: u64,
    live: Arc<AtomicBool>,
    reader: R,
) {
    let mut r = tokio::io::BufReader::with_capacity(64 << 10, reader);
    let mut buf = Vec::new();
    let reason = loop {
        let next = spinning(read_frame(&mut r, &mut buf, MAX_FRAME));
        let frame = match rt::timeout(shared.config.net_ticktime, next).await {
            None => break NodeDownReason::NetTickTimeout,
            Some(None) => break NodeDownReason::ConnectionClosed,
            Some(Some(frame)) => frame,
        };
        // Disconnected or replaced: what it still reads is not delivered.
        if !live.load(Ordering::Relaxed) {
            return;
        }
        let Frame::Signal { from, to, signal } = frame else {
            continue; // a tick
        };
        // Only the peer's own processes speak on its connection, to ours.
        if from.node() != peer || to.node() != shared.index {
            break NodeDownReason::ConnectionClosed;
        }
        let Some(node) = shared.node.upgrade() else {
            return;
        };
        match shared.config.codec.decode_signal(signal) {
            Ok(signal) => node.arrive(from, to, signal),
            Err(e) => node.undeliverable(from, to, e.to_string()),
        }
    };
    down(&shared, peer, id, reason);
}
