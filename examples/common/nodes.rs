//! What the native multi-node examples (`cluster`, `swarm`) share: a node process's own
//! command line and TCP settings, and the parent that starts node processes, reads their
//! lines and kills them.

// The parent drives OS processes in real time, outside any simulation; and each example uses
// part of this module.
#![allow(clippy::disallowed_methods, dead_code)]

use otpsim::dist::tcp::TcpConfig;
use otpsim::rt::Duration;
use otpsim::{Node, NodeConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// The example's `main`: `node` for a node process (`node K PORTS`), `parent` otherwise.
pub fn main(node: fn(&[String]) -> ExitCode, parent: fn() -> ExitCode) -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("node") => node(&args[2..]),
        _ => parent(),
    }
}

/// A node process's arguments (`node K PORT1 .. PORTn`): its index and every node's port.
pub fn args(args: &[String]) -> (u16, Vec<u16>) {
    let index: u16 = args[0].parse().expect("node index");
    let ports = args[1..].iter().map(|p| p.parse().expect("port")).collect();
    (index, ports)
}

/// Node `index` and its TCP settings: on loopback at its port, every other node a peer,
/// `net_ticktime` 4 s.
pub fn node(index: u16, ports: &[u16]) -> (Node, TcpConfig) {
    let node = Node::with_config(NodeConfig {
        index,
        creation: 1,
        ..NodeConfig::default()
    });
    let at = |k: u16| std::net::SocketAddr::from(([127, 0, 0, 1], ports[usize::from(k) - 1]));
    let mut config = TcpConfig::new(at(index), "example-cookie");
    config.net_ticktime = Duration::from_secs(4);
    for k in (1..=ports.len() as u16).filter(|&k| k != index) {
        config = config.peer(k, at(k));
    }
    (node, config)
}

/// The parent's view of the node processes: it starts them (this program, `node K PORTS`),
/// reads their lines, and kills them.
pub struct Nodes {
    ports: Vec<String>,
    children: BTreeMap<u16, Child>,
    tx: mpsc::Sender<String>,
    rx: mpsc::Receiver<String>,
    /// Every line the nodes printed, in order, without its `nK| ` prefix.
    pub seen: Vec<String>,
}

impl Nodes {
    /// Room for `n` nodes, each with a free port.
    pub fn new(n: u16) -> Nodes {
        let ports = (0..n).map(|_| free_port().to_string()).collect();
        let (tx, rx) = mpsc::channel();
        Nodes {
            ports,
            children: BTreeMap::new(),
            tx,
            rx,
            seen: Vec::new(),
        }
    }

    /// Starts node `k`; its lines are printed with an `nK| ` prefix as they are read.
    pub fn start(&mut self, k: u16) {
        let exe = std::env::current_exe().expect("this program");
        let mut child = Command::new(exe)
            .arg("node")
            .arg(k.to_string())
            .args(&self.ports)
            .stdout(Stdio::piped())
            .spawn()
            .expect("a node starts");
        let out = child.stdout.take().expect("piped");
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(format!("n{k}| {line}"));
            }
        });
        self.children.insert(k, child);
    }

    /// Kills node `k` (SIGKILL).
    pub fn kill(&mut self, k: u16) {
        if let Some(mut c) = self.children.remove(&k) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Reads lines until `done` says so (`true`), or for at most `secs` seconds (`false`).
    pub fn read_until(&mut self, secs: u64, done: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + std::time::Duration::from_secs(secs);
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    println!("{line}");
                    let text = line.split_once("| ").map_or(line.as_str(), |(_, l)| l);
                    self.seen.push(text.to_string());
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Reads lines until each of `want` has been seen, for at most 20 s.
    pub fn wait_for(&mut self, want: &[&str]) -> bool {
        self.read_until(20, |seen| want.iter().all(|w| seen.iter().any(|s| s == w)))
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let running: Vec<u16> = self.children.keys().copied().collect();
        for k in running {
            self.kill(k);
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("an address").port()
}
