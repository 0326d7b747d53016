//! Erlang distribution over TCP (feature `tcp`): a node listens, connects to a peer the first
//! time one of its processes sends there (or `monitor_node`s it), and then behaves as in the
//! simulated cluster: each pair's order is kept (one connection per pair of nodes), a closed
//! connection fires `noconnection` for every link and monitor across it, and a connection that
//! hears nothing for `net_ticktime` is declared down (each side sends a tick when it has had
//! nothing to say for a quarter of it).
//!
//! Frames are a 4-byte little-endian length and a bincode [`Frame`]. Each side's first frame
//! is a `Hello` with the shared cookie, its index and its creation; a node with another cookie
//! is refused. Two nodes that dial each other at once keep the lower index's connection. A
//! peer that comes back with a new creation replaces its old connection (which goes down).
//!
//! The same code runs in a simulation on madsim's TCP (`sim-tests/tcp.rs`) and natively
//! (`examples/cluster.rs`).

use super::codec::Codec;
use super::wire::Frame;
use crate::process::{Carrier, ExitReason, Node, NodeDownReason, Signal, WeakNode};
use crate::rt::{self, Duration};
use crate::term::Pid;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// A dial is under way; these wait for it.
    Connecting(Vec<(Pid, Pid, Signal)>),
    /// Connected to the peer's incarnation `creation`.
    Up {
        creation: u16,
        tx: mpsc::UnboundedSender<Out>,
        id: u64,
    },
}

struct Shared {
    node: WeakNode,
    index: u16,
    creation: u16,
    config: TcpConfig,
    peers: Mutex<BTreeMap<u16, Peer>>,
    next_id: AtomicU64,
    undeliverable: AtomicU64,
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

    /// Closes the connection to `peer` (`erlang:disconnect_node/1`).
    pub fn disconnect(&self, peer: u16) {
        let up = lock(&self.shared.peers).remove(&peer);
        if let Some(Peer::Up { tx, .. }) = up {
            let _ = tx.send(Out::Close);
            if let Some(node) = self.shared.node.upgrade() {
                node.connection_lost(peer, NodeDownReason::Disconnect);
            }
        }
    }

    /// How many signals could not be sent (a type without a codec).
    pub fn undeliverable(&self) -> u64 {
        self.shared.undeliverable.load(Ordering::Relaxed)
    }
}

/// The node's way into the transport. Called under the node's lock: it only queues.
struct Port(Arc<Shared>);

impl Carrier for Port {
    fn carry(&self, from: Pid, to: Pid, signal: Signal) {
        let shared = &self.0;
        let peer = to.node();
        let mut peers = lock(&shared.peers);
        match peers.get_mut(&peer) {
            Some(Peer::Up { tx, .. }) => {
                let _ = tx.send(Out::Signal(from, to, signal));
            }
            Some(Peer::Connecting(queue)) => queue.push((from, to, signal)),
            None => {
                peers.insert(peer, Peer::Connecting(vec![(from, to, signal)]));
                rt::spawn(dial(shared.clone(), peer));
            }
        }
    }

    fn connect(&self, _from: u16, to: u16) -> bool {
        let shared = &self.0;
        if !shared.config.peers.contains_key(&to) {
            return lock(&shared.peers).contains_key(&to);
        }
        if let std::collections::btree_map::Entry::Vacant(e) = lock(&shared.peers).entry(to) {
            e.insert(Peer::Connecting(Vec::new()));
            rt::spawn(dial(shared.clone(), to));
        }
        true
    }
}

async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if shared.node.upgrade().is_none() {
            return;
        }
        rt::spawn(answer(shared.clone(), stream));
    }
}

/// Writes one frame.
async fn send_frame<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> io::Result<()> {
    w.write_all(&frame.to_bytes()).await?;
    w.flush().await
}

/// Reads one frame (`None` at the end of the stream or for bytes that are not a frame).
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Option<Frame> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.ok()?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return None;
    }
    buf.resize(len, 0);
    r.read_exact(buf).await.ok()?;
    Frame::from_body(buf)
}

/// The largest frame accepted (a peer that sends more is cut off).
const MAX_FRAME: usize = 64 << 20;

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

/// Dials node `peer` for the signals queued for it.
async fn dial(shared: Arc<Shared>, peer: u16) {
    let handshake = async {
        let addr = *shared.config.peers.get(&peer)?;
        let mut stream = TcpStream::connect(addr).await.ok()?;
        send_frame(&mut stream, &shared.hello()).await.ok()?;
        let mut buf = Vec::new();
        let (index, creation) = shared.check(read_frame(&mut stream, &mut buf).await)?;
        (index == peer).then_some((stream, creation))
    };
    let result = rt::timeout(shared.config.net_ticktime, handshake)
        .await
        .flatten();
    match result {
        Some((stream, creation)) => established(&shared, peer, creation, stream),
        None => {
            // Refused, unreachable, or beaten by the peer's own connection to us.
            let queued = {
                let mut peers = lock(&shared.peers);
                match peers.get(&peer) {
                    Some(Peer::Connecting(_)) => match peers.remove(&peer) {
                        Some(Peer::Connecting(q)) => q,
                        _ => Vec::new(),
                    },
                    _ => return,
                }
            };
            fail(&shared, peer, queued);
        }
    }
}

/// A connection attempt failed: links and monitors waiting for it get `noconnection`, the
/// node's `monitor_node`s of the peer `nodedown`; messages are dropped.
fn fail(shared: &Shared, peer: u16, queued: Vec<(Pid, Pid, Signal)>) {
    let Some(node) = shared.node.upgrade() else {
        return;
    };
    for (from, to, signal) in queued {
        let answer = match signal {
            Signal::Link => Signal::LinkExit(ExitReason::noconnection()),
            Signal::Monitor(mref) => Signal::Down {
                mref,
                reason: ExitReason::noconnection(),
            },
            Signal::MonitorNamed(named) => Signal::Down {
                mref: named.1,
                reason: ExitReason::noconnection(),
            },
            _ => continue,
        };
        node.arrive(to, from, answer);
    }
    node.connection_failed(peer);
}

/// Answers a peer's dial.
async fn answer(shared: Arc<Shared>, mut stream: TcpStream) {
    let mut buf = Vec::new();
    let hello = rt::timeout(
        shared.config.net_ticktime,
        read_frame(&mut stream, &mut buf),
    )
    .await;
    let Some((peer, creation)) = shared.check(hello.flatten()) else {
        return;
    };
    let stale = {
        let peers = lock(&shared.peers);
        match peers.get(&peer) {
            // Both dialled: the lower index's connection wins.
            Some(Peer::Connecting(_)) if shared.index < peer => return,
            Some(Peer::Up { creation: c, .. }) if *c == creation => return,
            Some(Peer::Up { .. }) => true,
            _ => false,
        }
    };
    if stale {
        // The peer restarted: its old connection is gone.
        let old = lock(&shared.peers).remove(&peer);
        if let Some(Peer::Up { tx, .. }) = old {
            let _ = tx.send(Out::Close);
        }
        if let Some(node) = shared.node.upgrade() {
            node.connection_lost(peer, NodeDownReason::ConnectionClosed);
        }
    }
    if send_frame(&mut stream, &shared.hello()).await.is_err() {
        return;
    }
    established(&shared, peer, creation, stream);
}

/// A connection to `peer` is up: what waited for it goes first, then the writer and the
/// reader run until it goes down.
fn established(shared: &Arc<Shared>, peer: u16, creation: u16, stream: TcpStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        // What waited goes into the channel before anything sent later can.
        let mut peers = lock(&shared.peers);
        let up = Peer::Up {
            creation,
            tx: tx.clone(),
            id,
        };
        if let Some(Peer::Connecting(queued)) = peers.insert(peer, up) {
            for (from, to, signal) in queued {
                let _ = tx.send(Out::Signal(from, to, signal));
            }
        }
    }
    let Some(node) = shared.node.upgrade() else {
        return;
    };
    // Frames are flushed when nothing more waits: Nagle's delay would only add latency.
    let _ = stream.set_nodelay(true);
    node.connection_up(peer);
    let (reader, writer) = tokio::io::split(stream);
    rt::spawn(write(shared.clone(), rx, writer));
    rt::spawn(read(shared.clone(), peer, id, reader));
}

/// The connection `id` to `peer` went down (`reason`), unless it already was.
fn down(shared: &Shared, peer: u16, id: u64, reason: NodeDownReason) {
    let mut peers = lock(&shared.peers);
    let current = matches!(peers.get(&peer), Some(Peer::Up { id: i, .. }) if *i == id);
    if !current {
        return;
    }
    if let Some(Peer::Up { tx, .. }) = peers.remove(&peer) {
        let _ = tx.send(Out::Close);
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
        if w.write_all(&frame.to_bytes()).await.is_err() {
            return;
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
async fn read<R: tokio::io::AsyncRead + Unpin>(shared: Arc<Shared>, peer: u16, id: u64, reader: R) {
    let mut r = tokio::io::BufReader::with_capacity(64 << 10, reader);
    let mut buf = Vec::new();
    let reason = loop {
        let next = spinning(read_frame(&mut r, &mut buf));
        let frame = match rt::timeout(shared.config.net_ticktime, next).await {
            None => break NodeDownReason::NetTickTimeout,
            Some(None) => break NodeDownReason::ConnectionClosed,
            Some(Some(frame)) => frame,
        };
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
