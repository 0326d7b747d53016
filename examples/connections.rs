//! The connections of [`otpsim::systems::connections`], run for real: a small broker on
//! localhost (started here), the sensor's connection with its telemetry, two devices
//! connected on demand, and one connection linked to its owner. The broker goes away and
//! comes back, and every connection reconnects by itself; a killed connection takes its
//! telemetry with it and both come back; the owner of a linked connection dies with it.
//!
//! ```sh
//! cargo run-native --example connections    # over TCP
//! cargo run --example connections           # the same, simulated (SimBroker)
//! ```

use otpsim::rt::Duration;
use otpsim::server::ServerRef;
use otpsim::systems::connections::{
    self as conn, Telemetry, TelemetryCall, Transport, SENSOR, TELEMETRY,
};
use otpsim::{ExitReason, Node, Process};
use std::sync::Arc;

/// What the demo needs from its broker: to make it go away, and come back.
trait Outage: Send + Sync {
    fn go_away(&self, p: &Process);
    fn come_back<'a>(&'a self, p: &'a Process) -> otpsim::supervisor::BoxFuture<'a, ()>;
}

async fn status(p: &Process, who: &str, pid: otpsim::Pid) {
    match conn::is_connected(p, pid).await {
        Ok(true) => println!("  {who} ({pid}): connected"),
        Ok(false) => println!("  {who} ({pid}): reconnecting"),
        Err(e) => println!("  {who} ({pid}): {e}"),
    }
}

async fn demo(p: Process, transport: Arc<dyn Transport>, broker: Arc<dyn Outage>) {
    let (_root, connections) = conn::start_both(&p, transport.clone())
        .await
        .expect("the tree starts");
    let dev0 = connections.connect(&p, "dev0").await.unwrap();
    let dev1 = connections.connect(&p, "dev1").await.unwrap();
    p.sleep(Duration::from_millis(50)).await;
    let sensor = p.whereis(SENSOR).unwrap();
    println!("started: sensor connection {sensor}, dev0 {dev0}, dev1 {dev1}");
    let telemetry = ServerRef::<Telemetry>::from_pid(p.whereis(TELEMETRY).unwrap());
    let report = telemetry
        .call(&p, TelemetryCall::Report("21.5C".into()))
        .await
        .unwrap();
    println!("telemetry published 21.5C through {report:?}: acknowledged");
    conn::publish(&p, dev0, "door open").await.unwrap();
    println!("dev0 published 'door open': acknowledged");

    println!("\nthe broker goes away for 600 ms");
    broker.go_away(&p);
    p.sleep(Duration::from_millis(100)).await;
    status(&p, "sensor", sensor).await;
    status(&p, "dev0", dev0).await;
    println!(
        "  dev1 publishes: {:?}",
        conn::publish(&p, dev1, "hello").await
    );
    p.sleep(Duration::from_millis(500)).await;
    broker.come_back(&p).await;
    println!("the broker is back; the connections retry with backoff (10 ms doubling to 1 s)");
    p.sleep(Duration::from_millis(1200)).await;
    status(&p, "sensor", sensor).await;
    status(&p, "dev0", dev0).await;
    status(&p, "dev1", dev1).await;

    println!("\nkill the sensor's connection (rest_for_one: its telemetry restarts too)");
    p.exit(sensor, ExitReason::Kill);
    p.sleep(Duration::from_millis(100)).await;
    let sensor = p.whereis(SENSOR).unwrap();
    let telemetry = ServerRef::<Telemetry>::from_pid(p.whereis(TELEMETRY).unwrap());
    let held = telemetry.call(&p, TelemetryCall::Connection).await.unwrap();
    println!("  new connection {sensor}, the telemetry holds {held:?}");
    let report = telemetry
        .call(&p, TelemetryCall::Report("21.7C".into()))
        .await
        .unwrap();
    println!("  telemetry published 21.7C through {report:?}: acknowledged");

    println!("\na connection linked to its owner");
    let me = p.pid();
    let owner = p.spawn(move |o| async move {
        let c = conn::start_link(&o, "handheld", transport).await.unwrap();
        o.send(me, c.pid());
        o.recv().await; // until the link takes it down
    });
    let handheld = p
        .receive(|m| m.is::<otpsim::Pid>())
        .await
        .downcast::<otpsim::Pid>()
        .ok()
        .unwrap();
    p.sleep(Duration::from_millis(50)).await;
    status(&p, "handheld", handheld).await;
    p.exit(handheld, ExitReason::Kill);
    p.sleep(Duration::from_millis(10)).await;
    println!(
        "  killed it; its owner {owner} is alive: {}",
        p.node().is_alive(owner)
    );
}

#[cfg(not(madsim))]
mod tcp {
    //! The line protocol over TCP: `hello <client>`, `pub <id> <text>`, `ping <n>` from the
    //! client; `ack <id>`, `pong <n>` from the broker.
    use otpsim::supervisor::BoxFuture;
    use otpsim::systems::connections::{Event, Frame, Incoming, Link, Transport};
    use otpsim::{Node, Process};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    /// The broker: a listener task and one task per client, all stopped by `stop`.
    pub struct Broker {
        addr: SocketAddr,
        tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    }

    impl Broker {
        pub async fn start(addr: SocketAddr) -> Broker {
            let listener = TcpListener::bind(addr).await.expect("the broker binds");
            let addr = listener.local_addr().unwrap();
            let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
            let sessions = tasks.clone();
            let accept = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let session = tokio::spawn(serve(stream));
                    sessions.lock().unwrap().push(session);
                }
            });
            tasks.lock().unwrap().push(accept);
            Broker { addr, tasks }
        }

        pub fn addr(&self) -> SocketAddr {
            self.addr
        }

        /// Stops listening and drops every client.
        pub fn stop(&self) {
            for task in self.tasks.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }

    async fn serve(stream: TcpStream) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut words = line.split_whitespace();
            let answer = match (words.next(), words.next()) {
                (Some("pub"), Some(id)) => format!("ack {id}\n"),
                (Some("ping"), Some(n)) => format!("pong {n}\n"),
                _ => continue,
            };
            if write.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// Connections over TCP to `addr`.
    pub struct TcpTransport {
        pub addr: SocketAddr,
        pub next_link: AtomicU64,
    }

    struct TcpLink {
        id: u64,
        out: Option<mpsc::UnboundedSender<String>>,
    }

    impl Link for TcpLink {
        fn id(&self) -> u64 {
            self.id
        }

        fn send(&mut self, _p: &Process, frame: Frame) -> bool {
            let line = match frame {
                Frame::Publish(id, text) => format!("pub {id} {text}\n"),
                Frame::Ping(n) => format!("ping {n}\n"),
                Frame::Ack(_) | Frame::Pong(_) => return true,
            };
            self.out.as_ref().is_some_and(|out| out.send(line).is_ok())
        }

        fn close(&mut self, _p: &Process) {
            self.out = None; // the writer ends, and closes the socket
        }
    }

    fn parse(line: &str) -> Option<Frame> {
        let mut words = line.split_whitespace();
        let (kind, n) = (words.next()?, words.next()?.parse().ok()?);
        match kind {
            "ack" => Some(Frame::Ack(n)),
            "pong" => Some(Frame::Pong(n)),
            _ => None,
        }
    }

    impl Transport for TcpTransport {
        fn connect<'a>(
            &'a self,
            p: &'a Process,
            client: &'a str,
        ) -> BoxFuture<'a, Result<Box<dyn Link>, String>> {
            Box::pin(async move {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let (read, mut write) = stream.into_split();
                let id = self.next_link.fetch_add(1, Ordering::Relaxed);
                let (out, mut queue) = mpsc::unbounded_channel::<String>();
                out.send(format!("hello {client}\n"))
                    .map_err(|e| e.to_string())?;
                tokio::spawn(async move {
                    while let Some(line) = queue.recv().await {
                        if write.write_all(line.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
                let (node, me): (Node, _) = (p.node().clone(), p.pid());
                tokio::spawn(async move {
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(frame) = parse(&line) {
                            node.send(
                                me,
                                Incoming {
                                    link: id,
                                    event: Event::Frame(frame),
                                },
                            );
                        }
                    }
                    node.send(
                        me,
                        Incoming {
                            link: id,
                            event: Event::Closed,
                        },
                    );
                });
                Ok(Box::new(TcpLink { id, out: Some(out) }) as Box<dyn Link>)
            })
        }
    }

    /// The demo's broker: stopped and started again on the same port.
    pub struct Restartable {
        pub broker: Mutex<Broker>,
    }

    impl super::Outage for Restartable {
        fn go_away(&self, _p: &Process) {
            self.broker.lock().unwrap().stop();
        }

        fn come_back<'a>(&'a self, _p: &'a Process) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                let addr = self.broker.lock().unwrap().addr();
                // Bind again on the same port: the connections know this address.
                let restarted = Broker::start(addr).await;
                *self.broker.lock().unwrap() = restarted;
            })
        }
    }
}

#[cfg(madsim)]
impl Outage for conn::SimBroker {
    fn go_away(&self, p: &Process) {
        self.outage(p, Duration::from_millis(600));
    }

    fn come_back<'a>(&'a self, _p: &'a Process) -> otpsim::supervisor::BoxFuture<'a, ()> {
        Box::pin(async {}) // the outage ends by itself
    }
}

fn main() {
    #[cfg(not(madsim))]
    {
        println!("connections (native, TCP)");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let done = runtime.block_on(async {
            let broker = tcp::Broker::start("127.0.0.1:0".parse().unwrap()).await;
            println!("broker listening on {}", broker.addr());
            let transport = Arc::new(tcp::TcpTransport {
                addr: broker.addr(),
                next_link: Default::default(),
            });
            let outage = Arc::new(tcp::Restartable {
                broker: std::sync::Mutex::new(broker),
            });
            let node = Node::new();
            let main = node.spawn(move |p| demo(p, transport, outage));
            node.wait_exit(main).await
        });
        finish(done);
    }
    #[cfg(madsim)]
    {
        println!("connections (simulated, SimBroker)");
        let done = otpsim::rt::block_on(0, async {
            let node = Node::new();
            let main = node.spawn(|p| async move {
                let broker = conn::SimBroker::start_link(&p).await.unwrap();
                let transport: Arc<dyn Transport> = Arc::new(broker.clone());
                demo(p, transport, Arc::new(broker)).await
            });
            node.wait_exit(main).await
        });
        finish(done);
    }
}

fn finish(done: Option<ExitReason>) {
    match done {
        Some(ExitReason::Normal) => println!("\ndone"),
        other => {
            eprintln!("the demo failed: {other:?}");
            std::process::exit(1);
        }
    }
}
