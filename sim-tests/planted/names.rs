//! A name server, and a planted bug that needs a particular sequence of operations: the
//! server forgets to demonitor a process when it unregisters it (issue 17's first shape).
//!
//! The server keeps `key -> (pid, monitor)` and `monitor -> key`, and frees a key when the
//! `DOWN` of its monitor arrives. The buggy variant's `unregister` drops the key but keeps the
//! monitor and what it points to, so the failure takes four steps in this order: client A
//! registers K, A unregisters K, client B registers K, then A dies; A's old `DOWN` frees K,
//! which B holds. B is alive and its name resolves to nothing.

use otpsim::server::{self, CallReply, GenServer, Init, Next, ServerRef, StartOptions};
use otpsim::sim::harness::proptest::prelude::*;
use otpsim::sim::harness::{Domain, Target, Workload};
use otpsim::sim::invariants::Violation;
use otpsim::supervisor::{self, ChildSpec, Flags, Strategy as SupStrategy, SupervisorSpec};
use otpsim::term::Ref;
use otpsim::{Msg, Pid, Process};
use std::collections::BTreeMap;

/// The name server of the target; `forgets_demonitor` plants the bug.
#[derive(Clone, Copy)]
pub struct Names {
    /// `unregister` keeps the monitor of the process it unregisters.
    pub forgets_demonitor: bool,
}

/// A request to the name server.
pub enum NameCall {
    /// Registers the pid under the key, unless the key is taken: `Some(pid)` if it is now.
    Register(u8, Pid),
    /// Frees the key if the pid holds it: `Some(pid)` if it did.
    Unregister(u8, Pid),
    /// Who holds the key.
    Whereis(u8),
}

/// The name server's state.
pub struct NameServer {
    forgets_demonitor: bool,
    names: BTreeMap<u8, (Pid, Ref)>,
    watching: BTreeMap<Ref, u8>,
}

impl GenServer for NameServer {
    type Arg = bool;
    type Call = NameCall;
    type Reply = Option<Pid>;
    type Cast = ();
    type Cont = ();

    async fn init(forgets_demonitor: bool, _p: &Process) -> Init<Self> {
        Init::Ok(NameServer {
            forgets_demonitor,
            names: BTreeMap::new(),
            watching: BTreeMap::new(),
        })
    }

    async fn handle_call(
        &mut self,
        request: NameCall,
        _from: server::From<Option<Pid>>,
        p: &Process,
    ) -> CallReply<Self> {
        CallReply::Reply(match request {
            NameCall::Register(key, pid) => match self.names.get(&key) {
                Some(_) => None,
                None => {
                    let mref = p.monitor(pid);
                    self.names.insert(key, (pid, mref));
                    self.watching.insert(mref, key);
                    Some(pid)
                }
            },
            NameCall::Unregister(key, pid) => match self.names.get(&key) {
                Some(&(holder, mref)) if holder == pid => {
                    self.names.remove(&key);
                    if !self.forgets_demonitor {
                        p.demonitor_flush(mref);
                        self.watching.remove(&mref);
                    }
                    Some(pid)
                }
                _ => None,
            },
            NameCall::Whereis(key) => self.names.get(&key).map(|&(pid, _)| pid),
        })
    }

    async fn handle_info(&mut self, msg: Msg, _p: &Process) -> Next<Self> {
        if let Msg::Down { mref, .. } = msg {
            if let Some(key) = self.watching.remove(&mref) {
                self.names.remove(&key);
            }
        }
        Next::Continue
    }
}

/// A client: a process that does nothing but exist under its name.
struct Client;

impl GenServer for Client {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Cont = ();

    async fn init(_: (), _p: &Process) -> Init<Self> {
        Init::Ok(Client)
    }
}

/// How many clients the tree has.
const CLIENTS: u8 = 2;

/// One operation of the workload.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum NamesOp {
    /// Client `client` registers under `key`.
    Register { client: u8, key: u8 },
    /// Client `client` unregisters `key`.
    Unregister { client: u8, key: u8 },
    /// Who holds `key`.
    Whereis { key: u8 },
}

/// The registrations the server acknowledged: key -> (holder, the server that took it).
#[derive(Default)]
pub struct Acknowledged(BTreeMap<u8, (Pid, Pid)>);

impl Acknowledged {
    /// Who must hold `key` at `server`, as far as the model knows: the holder the server
    /// acknowledged, if it did not give the key up and is alive `now` (read after the
    /// server's answer: a holder alive then was alive when the server answered, so its
    /// `DOWN` cannot have freed the key yet).
    fn holder(&self, key: u8, server: Pid, p: &Process) -> Option<Pid> {
        let &(holder, taken_by) = self.0.get(&key)?;
        (taken_by == server && p.node().is_alive(holder)).then_some(holder)
    }
}

fn client(i: u8) -> String {
    format!("client{}", i % CLIENTS)
}

const SERVER: &str = "names";

/// App invariant: the server's answers agree with what it acknowledged: a key held by a live
/// holder that did not give it up resolves to it, is not given to another, and is freed by
/// its holder's `unregister`.
fn agrees(key: u8, answer: &str, expected: Option<Pid>, got: Option<Pid>) -> Result<(), Violation> {
    match expected {
        Some(holder) if got != Some(holder) => {
            Err(broken(key, holder, format!("{answer} answered {got:?}")))
        }
        _ => Ok(()),
    }
}

fn broken(key: u8, holder: Pid, what: String) -> Violation {
    Violation::app(
        "live_registrations_hold",
        format!("key {key} is held by {holder}, alive; {what}"),
    )
}

impl Target for Names {
    type Setup = ();
    type Op = NamesOp;
    type State = Acknowledged;

    fn name(&self) -> String {
        if self.forgets_demonitor {
            "names-forget-demonitor"
        } else {
            "names"
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    /// Keys range over the domain; clients over the clients there are.
    fn workload(&self, domain: Domain) -> Workload<NamesOp> {
        let (key, client) = (|| domain.pick(), || 0..CLIENTS);
        Workload::new()
            .kind(
                "register",
                2,
                (client(), key()).prop_map(|(client, key)| NamesOp::Register { client, key }),
            )
            .kind(
                "unregister",
                1,
                (client(), key()).prop_map(|(client, key)| NamesOp::Unregister { client, key }),
            )
            .kind("whereis", 1, key().prop_map(|key| NamesOp::Whereis { key }))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, Acknowledged), String> {
        let names = ChildSpec::server_with::<NameServer>(
            "names",
            self.forgets_demonitor,
            StartOptions::default().named(SERVER),
        );
        let clients = (0..CLIENTS).fold(
            SupervisorSpec::new(Flags::elixir(SupStrategy::OneForOne)),
            |spec, i| {
                let options = StartOptions::default().named(client(i));
                spec.child(ChildSpec::server_with::<Client>(client(i), (), options))
            },
        );
        let clients = clients.into_child("clients");
        let spec = SupervisorSpec::new(Flags::elixir(SupStrategy::OneForOne))
            .child(names)
            .child(clients);
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sup.pid(), Acknowledged::default()))
    }

    async fn apply(
        &self,
        model: &mut Acknowledged,
        op: &NamesOp,
        p: &Process,
    ) -> Result<(), Violation> {
        let Some(server) = ServerRef::<NameServer>::whereis(p, SERVER) else {
            return Ok(());
        };
        let at = server.pid();
        match *op {
            NamesOp::Register { client: c, key } => {
                let Some(pid) = p.whereis(&client(c)) else {
                    return Ok(());
                };
                let Ok(answer) = server.call(p, NameCall::Register(key, pid)).await else {
                    return Ok(());
                };
                // A live holder keeps its key: another's registration is refused.
                if let (Some(holder), Some(taker)) = (model.holder(key, at, p), answer) {
                    if holder != taker {
                        return Err(broken(key, holder, format!("register gave it to {taker}")));
                    }
                }
                if answer.is_some() {
                    model.0.insert(key, (pid, at));
                }
            }
            NamesOp::Unregister { client: c, key } => {
                let Some(pid) = p.whereis(&client(c)) else {
                    return Ok(());
                };
                let Ok(answer) = server.call(p, NameCall::Unregister(key, pid)).await else {
                    return Ok(());
                };
                let expected = model.holder(key, at, p).filter(|&h| h == pid);
                agrees(key, "unregister by its holder", expected, answer)?;
                if answer.is_some() {
                    model.0.remove(&key);
                }
            }
            NamesOp::Whereis { key } => {
                if let Ok(answer) = server.call(p, NameCall::Whereis(key)).await {
                    agrees(key, "whereis", model.holder(key, at, p), answer)?;
                }
            }
        }
        Ok(())
    }

    async fn check(&self, model: &mut Acknowledged, p: &Process) -> Result<(), Violation> {
        let Some(server) = ServerRef::<NameServer>::whereis(p, SERVER) else {
            return Ok(());
        };
        for key in model.0.keys().copied().collect::<Vec<_>>() {
            if let Ok(answer) = server.call(p, NameCall::Whereis(key)).await {
                agrees(key, "whereis", model.holder(key, server.pid(), p), answer)?;
            }
        }
        Ok(())
    }
}
