//! tickets: a customer support desk (tickets that move from open to assigned to resolved, a
//! queue of the open ones, notifications), and a small chat room.
//!
//! ```text
//! tickets (one_for_one)
//! ├── desk (rest_for_one)
//! │   ├── registry    Registry (unique): {via, registry, "ticket/<id>"}
//! │   ├── tickets     DynamicSupervisor "ticket_sup": one worker per ticket, transient
//! │   ├── queue       GenServer "ticket_queue": the open tickets, in order
//! │   └── notifier    Task.Supervisor "ticket_notifier": notification jobs
//! └── chat (rest_for_one)
//!     ├── members     Registry (duplicate keys): "room:<name>" -> every handler in the room
//!     └── handlers    DynamicSupervisor "chat_sup": one handler per connected user, temporary
//! ```
//!
//! A ticket worker holds one ticket. **Design choice: a crashed ticket worker is restarted
//! with its last state.** Every transition is written to the [`Desk`] (the durable store)
//! before the worker answers, and a worker loads its ticket in `init`; the worker is
//! transient, so its supervisor restarts it after a crash, and a request that finds no
//! worker starts one ([`Tickets::ticket`]). A ticket is never silently empty, and its state
//! never goes backwards: a transition is checked against the stored state, and only forward
//! ones are taken. A resolved ticket's worker stops (normally: it is not restarted); its
//! state stays in the store.
//!
//! The queue holds the open tickets' ids. It is rebuilt from the store when it starts, so a
//! crashed queue loses nothing, and an id that reaches it twice is held once. Taking the
//! next ticket assigns it through its worker; a ticket the worker cannot assign now goes
//! back to the front.
//!
//! Notifications are fire-and-forget jobs under a Task.Supervisor (Elixir's
//! `Task.Supervisor.start_child`), sent only after the transition they announce is stored:
//! a crashed job loses a notification, never announces a state that was not reached.
//!
//! The chat room is Elixir's classic: each user's handler registers under the room's key in
//! a duplicate-key registry, and saying something dispatches it to every entry of the key.
//! A handler's death removes its entry; a crash of the registry takes every handler with it
//! (they are linked to its partitions), and their users join again.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::systems::tickets::{Desk, Status, Tickets};
//! let report = otpsim::sim::Sim::new(0).run(|p| async move {
//!     let tickets = Tickets::new(Desk::default());
//!     tickets.start_link(&p).await.unwrap();
//!     let id = tickets.open(&p, "printer on fire").await.unwrap();
//!     assert_eq!(tickets.take_next(&p, "ana").await.unwrap(), Some(id));
//!     let worker = tickets.ticket(&p, id).await.unwrap();
//!     p.exit(worker, otpsim::ExitReason::Kill); // restarted with its last state
//!     p.sleep(otpsim::rt::Duration::from_millis(1)).await;
//!     assert_eq!(tickets.status(&p, id).await.unwrap(), Status::Assigned("ana".into()));
//!     assert_eq!(tickets.resolve(&p, id).await.unwrap(), Status::Resolved);
//! });
//! assert_eq!(report.failure(), None);
//! # }
//! ```

use crate::process::{ExitReason, Msg, Process};
use crate::registry::{Keys, Registry, RegistryOptions};
use crate::server::{
    self, CallError, CallReply, GenServer, Init, Next, ServerRef, StartError, StartOptions,
};
use crate::supervisor::dynamic::{DynamicError, DynamicOptions, DynamicSupervisorRef};
use crate::supervisor::task::{TaskOptions, TaskSupervisorRef};
use crate::supervisor::{
    self, ChildSpec, Flags, Restart, Shutdown, Strategy, SupervisorRef, SupervisorSpec,
};
use crate::term::Pid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

#[cfg(feature = "harness")]
mod target;

#[cfg(feature = "harness")]
pub use target::{TicketsOp, TicketsTarget};

/// The ticket supervisor's local name.
pub const TICKET_SUP: &str = "ticket_sup";
/// The queue's local name.
pub const QUEUE: &str = "ticket_queue";
/// The notifier's local name.
pub const NOTIFIER: &str = "ticket_notifier";
/// The chat handlers' supervisor's local name.
pub const CHAT_SUP: &str = "chat_sup";
/// The one room of the chat.
pub const LOBBY: &str = "room:lobby";

/// Where a ticket is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    /// Waiting for an agent.
    Open,
    /// An agent has it.
    Assigned(String),
    /// Done.
    Resolved,
}

impl Status {
    /// How far along it is: 0, 1, 2 (a ticket only moves forward).
    pub fn rank(&self) -> u8 {
        match self {
            Status::Open => 0,
            Status::Assigned(_) => 1,
            Status::Resolved => 2,
        }
    }
}

#[derive(Default)]
struct DeskState {
    tickets: BTreeMap<u64, (String, Status)>,
    outbox: Vec<(u64, Status)>,
}

/// The durable store: tickets and the notifications sent. Cloning gives another handle.
#[derive(Clone, Default)]
pub struct Desk(Arc<Mutex<DeskState>>);

impl Desk {
    fn with<R>(&self, f: impl FnOnce(&mut DeskState) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The stored state of a ticket.
    pub fn stored(&self, id: u64) -> Option<Status> {
        self.with(|d| d.tickets.get(&id).map(|(_, s)| s.clone()))
    }

    /// The notifications sent so far: (ticket, the state announced).
    pub fn outbox(&self) -> Vec<(u64, Status)> {
        self.with(|d| d.outbox.clone())
    }

    /// The open tickets, in id order.
    pub fn open_tickets(&self) -> Vec<u64> {
        self.with(|d| {
            d.tickets
                .iter()
                .filter(|(_, (_, s))| *s == Status::Open)
                .map(|(id, _)| *id)
                .collect()
        })
    }

    /// Stores a forward transition; the state now stored (unchanged if `to` is not ahead).
    fn advance(&self, id: u64, to: Status) -> Option<Status> {
        self.with(|d| {
            let (_, status) = d.tickets.get_mut(&id)?;
            if to.rank() == status.rank() + 1 {
                *status = to;
            }
            Some(status.clone())
        })
    }
}

/// Why a request to the desk failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// A process it needed is not running (restarting, or given up).
    #[error("{0} is not running")]
    Down(&'static str),
    /// No ticket has this id.
    #[error("no ticket {0}")]
    NoSuchTicket(u64),
    /// The transition does not apply to the ticket's state (it stays as it is).
    #[error("the ticket is {0:?}")]
    Not(Status),
    /// A call failed.
    #[error("call failed: {0}")]
    Call(#[from] CallError),
}

/// A ticket's worker.
struct TicketWorker {
    id: u64,
    status: Status,
    desk: Desk,
}

enum TicketCall {
    Status,
    Assign(String),
    Resolve,
}

impl GenServer for TicketWorker {
    type Arg = (u64, Desk);
    type Call = TicketCall;
    type Reply = Result<Status, TicketError>;
    type Cast = ();
    type Cont = ();

    /// Loads the ticket: its last stored state.
    async fn init((id, desk): (u64, Desk), _p: &Process) -> Init<Self> {
        match desk.stored(id) {
            Some(status) => Init::Ok(TicketWorker { id, status, desk }),
            None => Init::Stop(ExitReason::error("no_such_ticket")),
        }
    }

    async fn handle_call(
        &mut self,
        request: TicketCall,
        _from: server::From<Self::Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        let to = match request {
            TicketCall::Status => return CallReply::Reply(Ok(self.status.clone())),
            TicketCall::Assign(agent) => Status::Assigned(agent),
            TicketCall::Resolve => Status::Resolved,
        };
        if to.rank() != self.status.rank() + 1 {
            return CallReply::Reply(Err(TicketError::Not(self.status.clone())));
        }
        // Stored first, then announced, then answered.
        let stored = self.desk.advance(self.id, to.clone());
        self.status = stored.unwrap_or(to);
        notify(p, &self.desk, self.id, self.status.clone()).await;
        if self.status == Status::Resolved {
            return CallReply::Stop(ExitReason::Normal, Some(Ok(Status::Resolved)));
        }
        CallReply::Reply(Ok(self.status.clone()))
    }
}

/// A notification job for a stored transition, fire-and-forget; skipped if the notifier is
/// not running.
async fn notify(p: &Process, desk: &Desk, id: u64, status: Status) {
    let Some(notifier) = p.whereis(NOTIFIER).map(TaskSupervisorRef::from_pid) else {
        return;
    };
    let desk = desk.clone();
    let job = move |_t: Process| {
        let (desk, status) = (desk.clone(), status.clone());
        async move { desk.with(|d| d.outbox.push((id, status))) }
    };
    let _ = notifier
        .start_child(p, Restart::Temporary, Shutdown::BrutalKill, job)
        .await;
}

/// The queue of open tickets.
struct Queue {
    pending: BTreeSet<u64>,
    tickets: Tickets,
}

enum QueueCall {
    Push(u64),
    TakeNext(String),
}

impl GenServer for Queue {
    type Arg = Tickets;
    type Call = QueueCall;
    type Reply = Result<Option<u64>, TicketError>;
    type Cast = ();
    type Cont = ();

    /// Rebuilt from the store: every open ticket.
    async fn init(tickets: Tickets, _p: &Process) -> Init<Self> {
        let pending = tickets.desk.open_tickets().into_iter().collect();
        Init::Ok(Queue { pending, tickets })
    }

    async fn handle_call(
        &mut self,
        request: QueueCall,
        _from: server::From<Self::Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        CallReply::Reply(match request {
            QueueCall::Push(id) => {
                self.pending.insert(id);
                Ok(Some(id))
            }
            QueueCall::TakeNext(agent) => self.take_next(p, agent).await,
        })
    }
}

impl Queue {
    /// Assigns the first open ticket to `agent`. A ticket that is no longer open leaves the
    /// queue; one its worker cannot assign now stays first.
    async fn take_next(&mut self, p: &Process, agent: String) -> Result<Option<u64>, TicketError> {
        while let Some(&id) = self.pending.first() {
            match self
                .tickets
                .call(p, id, TicketCall::Assign(agent.clone()))
                .await
            {
                Ok(_) => {
                    self.pending.remove(&id);
                    return Ok(Some(id));
                }
                Err(TicketError::Not(_) | TicketError::NoSuchTicket(_)) => {
                    self.pending.remove(&id);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// A connected user's chat handler: a member of the lobby, with what it heard.
struct ChatHandler {
    heard: Vec<(String, String)>,
}

/// What is said in the room: (who, what).
#[derive(Clone, Debug)]
struct Said(String, String);

/// What the handler heard since it joined.
struct Heard;

impl GenServer for ChatHandler {
    type Arg = (String, Registry<String, String>);
    type Call = Heard;
    type Reply = Vec<(String, String)>;
    type Cast = ();
    type Cont = ();

    /// Joins the lobby (fails if the members' registry is not running: the user tries again).
    async fn init((user, members): Self::Arg, p: &Process) -> Init<Self> {
        match members.register(p, LOBBY.to_string(), user) {
            Ok(_) => Init::Ok(ChatHandler { heard: Vec::new() }),
            Err(e) => Init::Stop(ExitReason::error(e.to_term())),
        }
    }

    async fn handle_call(
        &mut self,
        _: Heard,
        _from: server::From<Self::Reply>,
        _p: &Process,
    ) -> CallReply<Self> {
        CallReply::Reply(self.heard.clone())
    }

    async fn handle_info(&mut self, msg: Msg, _p: &Process) -> Next<Self> {
        if let Ok(Said(who, what)) = msg.downcast::<Said>() {
            self.heard.push((who, what));
        }
        Next::Continue
    }
}

/// The desk and the chat: the stores and registries, and the calls to them. Cloning gives
/// another handle to the same.
#[derive(Clone)]
pub struct Tickets {
    desk: Desk,
    registry: Registry<String, ()>,
    members: Registry<String, String>,
}

impl Tickets {
    /// The system over `desk` (not started yet).
    pub fn new(desk: Desk) -> Tickets {
        Tickets {
            desk,
            registry: Registry::new(RegistryOptions::new(Keys::Unique)),
            members: Registry::new(RegistryOptions::new(Keys::Duplicate)),
        }
    }

    /// The durable store.
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// The whole tree.
    pub fn spec(&self) -> SupervisorSpec {
        let named = |name: &str| StartOptions::default().named(name);
        let desk = SupervisorSpec::new(Flags::elixir(Strategy::RestForOne))
            .child(self.registry.child_spec("registry"))
            .child(DynamicOptions::default().into_child_with("tickets", named(TICKET_SUP)))
            .child(ChildSpec::server_with::<Queue>(
                "queue",
                self.clone(),
                named(QUEUE),
            ))
            .child(TaskOptions::default().into_child_with("notifier", named(NOTIFIER)));
        let chat = SupervisorSpec::new(Flags::elixir(Strategy::RestForOne))
            .child(self.members.child_spec("members"))
            .child(DynamicOptions::default().into_child_with("handlers", named(CHAT_SUP)));
        SupervisorSpec::new(Flags::elixir(Strategy::OneForOne))
            .child(desk.into_child("desk"))
            .child(chat.into_child("chat"))
    }

    /// Starts the system, linked to the caller.
    pub async fn start_link(&self, p: &Process) -> Result<SupervisorRef, StartError> {
        supervisor::start_link(p, self.spec()).await
    }

    fn key(id: u64) -> String {
        format!("ticket/{id}")
    }

    /// The worker of ticket `id`, started (from its stored state) if there is none.
    pub async fn ticket(&self, p: &Process, id: u64) -> Result<Pid, TicketError> {
        if let Some(pid) = self.registry.whereis_name(&Tickets::key(id)) {
            return Ok(pid);
        }
        if self.desk.stored(id).is_none() {
            return Err(TicketError::NoSuchTicket(id));
        }
        let sup = p
            .whereis(TICKET_SUP)
            .ok_or(TicketError::Down("ticket supervisor"))?;
        let via = StartOptions::default().via(self.registry.via(Tickets::key(id)));
        let spec = ChildSpec::server_with::<TicketWorker>("ticket", (id, self.desk.clone()), via)
            .restart(Restart::Transient);
        match DynamicSupervisorRef::from_pid(sup)
            .start_child(p, spec)
            .await
        {
            Ok(started) => started.pid().ok_or(TicketError::Down("ticket worker")),
            Err(e) => match (e.already_started(), e) {
                (Some(pid), _) => Ok(pid),
                (None, DynamicError::Supervisor(_)) => Err(TicketError::Down("ticket supervisor")),
                (None, _) => Err(TicketError::Down("ticket worker")),
            },
        }
    }

    async fn call(&self, p: &Process, id: u64, request: TicketCall) -> Result<Status, TicketError> {
        let worker = self.ticket(p, id).await?;
        ServerRef::<TicketWorker>::from_pid(worker)
            .call(p, request)
            .await?
    }

    /// Opens a ticket; its id.
    pub async fn open(&self, p: &Process, title: &str) -> Result<u64, TicketError> {
        let queue = ServerRef::<Queue>::whereis(p, QUEUE).ok_or(TicketError::Down("queue"))?;
        let id = self.desk.with(|d| {
            let id = d.tickets.keys().next_back().map_or(1, |last| last + 1);
            d.tickets.insert(id, (title.to_string(), Status::Open));
            id
        });
        notify(p, &self.desk, id, Status::Open).await;
        // If the queue dies before it takes the id, its next incarnation finds it stored.
        let _ = queue.call(p, QueueCall::Push(id)).await;
        Ok(id)
    }

    /// Assigns the next open ticket to `agent`; its id (none if none is open).
    pub async fn take_next(&self, p: &Process, agent: &str) -> Result<Option<u64>, TicketError> {
        let queue = ServerRef::<Queue>::whereis(p, QUEUE).ok_or(TicketError::Down("queue"))?;
        queue.call(p, QueueCall::TakeNext(agent.into())).await?
    }

    /// Resolves ticket `id` (it must be assigned).
    pub async fn resolve(&self, p: &Process, id: u64) -> Result<Status, TicketError> {
        if self.desk.stored(id) == Some(Status::Resolved) {
            return Err(TicketError::Not(Status::Resolved));
        }
        self.call(p, id, TicketCall::Resolve).await
    }

    /// Where ticket `id` is: from its worker, or from the store once it is resolved.
    pub async fn status(&self, p: &Process, id: u64) -> Result<Status, TicketError> {
        match self.desk.stored(id) {
            None => Err(TicketError::NoSuchTicket(id)),
            Some(Status::Resolved) => Ok(Status::Resolved),
            Some(_) => self.call(p, id, TicketCall::Status).await,
        }
    }

    fn handler_name(user: &str) -> String {
        format!("chat/{user}")
    }

    /// Connects `user` to the chat: its handler, started if there is none.
    pub async fn join(&self, p: &Process, user: &str) -> Result<Pid, TicketError> {
        if let Some(pid) = p.whereis(&Tickets::handler_name(user)) {
            return Ok(pid);
        }
        let sup = p.whereis(CHAT_SUP).ok_or(TicketError::Down("chat"))?;
        let named = StartOptions::default().named(Tickets::handler_name(user));
        let arg = (user.to_string(), self.members.clone());
        let spec = ChildSpec::server_with::<ChatHandler>("handler", arg, named)
            .restart(Restart::Temporary);
        match DynamicSupervisorRef::from_pid(sup)
            .start_child(p, spec)
            .await
        {
            Ok(started) => started.pid().ok_or(TicketError::Down("chat handler")),
            Err(e) => e.already_started().ok_or(TicketError::Down("chat handler")),
        }
    }

    /// Disconnects `user` from the chat.
    pub async fn leave(&self, p: &Process, user: &str) {
        if let (Some(pid), Some(sup)) =
            (p.whereis(&Tickets::handler_name(user)), p.whereis(CHAT_SUP))
        {
            let _ = DynamicSupervisorRef::from_pid(sup)
                .terminate_child(p, pid)
                .await;
        }
    }

    /// `user` says `text` to everyone in the lobby (itself included); how many heard it.
    pub fn say(&self, p: &Process, user: &str, text: &str) -> usize {
        let mut heard = 0;
        self.members.dispatch(&LOBBY.to_string(), |entries| {
            for (member, _) in entries {
                p.send(*member, Said(user.to_string(), text.to_string()));
                heard += 1;
            }
        });
        heard
    }

    /// What `user`'s handler heard since it joined.
    pub async fn heard(
        &self,
        p: &Process,
        user: &str,
    ) -> Result<Vec<(String, String)>, TicketError> {
        let pid = p
            .whereis(&Tickets::handler_name(user))
            .ok_or(TicketError::Down("chat handler"))?;
        Ok(ServerRef::<ChatHandler>::from_pid(pid)
            .call(p, Heard)
            .await?)
    }

    /// The lobby's members: (handler, user).
    pub fn members(&self) -> Vec<(Pid, String)> {
        self.members.lookup(&LOBBY.to_string())
    }
}
