//! tickets under the harness: the workload opens, assigns, resolves and looks at tickets,
//! and chats, while the faults crash and kill ticket workers, the queue, the notifier, the
//! registries, the chat handlers and the supervisors.

use super::{Desk, Status, TicketError, Tickets, QUEUE};
use crate::process::Process;
use crate::sim::harness::{Domain, Target, Workload};
use crate::sim::invariants::Violation;
use crate::term::Pid;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `tickets` target.
#[derive(Clone, Copy, Debug, Default)]
pub struct TicketsTarget;

/// One workload operation; `k` picks one of the tickets opened so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketsOp {
    /// Open a ticket.
    Open,
    /// Agent `a` (of two) takes the next open ticket.
    TakeNext(u8),
    /// Resolve a ticket.
    Resolve(u8),
    /// Look at a ticket.
    Status(u8),
    /// User `u` (of three) joins the chat.
    Join(u8),
    /// User `u` leaves it.
    Leave(u8),
    /// User `u` says something.
    Say(u8),
}

/// The system, and for each ticket opened the ranks it may be at: `acked` (acknowledged, a
/// floor) and `attempted` (a ceiling: every transition that *may* have been stored, whatever
/// its answer said; a call that failed may still have taken effect). A request counts as
/// attempted, before its answer, whenever its precondition holds for some rank between the
/// two.
pub struct TicketsModel {
    tickets: Tickets,
    opened: Vec<u64>,
    acked: BTreeMap<u64, u8>,
    attempted: BTreeMap<u64, u8>,
}

impl TicketsModel {
    fn pick(&self, k: u8) -> Option<u64> {
        (!self.opened.is_empty()).then(|| self.opened[usize::from(k) % self.opened.len()])
    }

    fn attempt(&mut self, id: u64, rank: u8) {
        let a = self.attempted.entry(id).or_default();
        *a = (*a).max(rank);
    }

    fn ack(&mut self, id: u64, rank: u8) {
        self.attempt(id, rank);
        let a = self.acked.entry(id).or_default();
        *a = (*a).max(rank);
    }

    /// A ticket's state never goes backwards, and never falls behind what was acknowledged:
    /// a restarted worker has its last state, never an empty one.
    fn check_status(&self, id: u64, status: Result<Status, TicketError>) -> Result<(), Violation> {
        let (acked, attempted) = (self.acked[&id], self.attempted[&id]);
        match status {
            Ok(s) if s.rank() < acked => Err(Violation::app(
                "tickets_never_go_backwards",
                format!("ticket {id} is {s:?}, it was acknowledged further (rank {acked})"),
            )),
            Ok(s) if s.rank() > attempted => Err(Violation::app(
                "tickets_never_go_backwards",
                format!("ticket {id} is {s:?}, further than anyone asked (rank {attempted})"),
            )),
            Err(TicketError::NoSuchTicket(_)) => Err(Violation::app(
                "tickets_never_go_backwards",
                format!("ticket {id} was opened, and is gone"),
            )),
            _ => Ok(()),
        }
    }
}

impl Target for TicketsTarget {
    type Setup = ();
    type Op = TicketsOp;
    type State = TicketsModel;

    fn name(&self) -> String {
        "tickets".into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    /// Agents, tickets and users from the case's domain.
    fn workload(&self, domain: Domain) -> Workload<TicketsOp> {
        let pick = || domain.pick();
        Workload::new()
            .kind("open", 3, Just(TicketsOp::Open))
            .kind("take_next", 3, pick().prop_map(TicketsOp::TakeNext))
            .kind("resolve", 2, pick().prop_map(TicketsOp::Resolve))
            .kind("status", 2, pick().prop_map(TicketsOp::Status))
            .kind("join", 1, pick().prop_map(TicketsOp::Join))
            .kind("leave", 1, pick().prop_map(TicketsOp::Leave))
            .kind("say", 1, pick().prop_map(TicketsOp::Say))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, TicketsModel), String> {
        let tickets = Tickets::new(Desk::default());
        let sup = tickets.start_link(p).await.map_err(|e| e.to_string())?;
        let model = TicketsModel {
            tickets,
            opened: Vec::new(),
            acked: BTreeMap::new(),
            attempted: BTreeMap::new(),
        };
        Ok((sup.pid(), model))
    }

    async fn apply(
        &self,
        model: &mut TicketsModel,
        op: &TicketsOp,
        p: &Process,
    ) -> Result<(), Violation> {
        let user = |u: u8| format!("user{}", u % 3);
        match *op {
            TicketsOp::Open => {
                if let Ok(id) = model.tickets.open(p, "help").await {
                    model.opened.push(id);
                    model.ack(id, 0);
                }
            }
            TicketsOp::TakeNext(a) => {
                // Any open ticket may be the one taken: the answer says which.
                for &id in &model.opened.clone() {
                    if model.acked[&id] == 0 {
                        model.attempt(id, 1);
                    }
                }
                if let Ok(Some(id)) = model.tickets.take_next(p, &format!("agent{a}")).await {
                    model.ack(id, 1);
                }
            }
            TicketsOp::Resolve(k) => {
                let Some(id) = model.pick(k) else {
                    return Ok(());
                };
                // The ticket may be assigned as soon as an assignment may have been stored (a
                // take_next whose answer was lost counts): then the resolve may be stored too,
                // whatever its own answer says.
                if model.attempted[&id] >= 1 {
                    model.attempt(id, 2);
                }
                if model.tickets.resolve(p, id).await.is_ok() {
                    model.ack(id, 2);
                }
            }
            TicketsOp::Status(k) => {
                let Some(id) = model.pick(k) else {
                    return Ok(());
                };
                let status = model.tickets.status(p, id).await;
                model.check_status(id, status)?;
            }
            TicketsOp::Join(u) => {
                let _ = model.tickets.join(p, &user(u)).await;
            }
            TicketsOp::Leave(u) => model.tickets.leave(p, &user(u)).await,
            TicketsOp::Say(u) => {
                let _ = model.tickets.say(p, &user(u), "hello");
            }
        }
        Ok(())
    }

    /// At rest: every ticket is between where it was acknowledged to be and as far as the
    /// requests that may have been stored could take it, the queue holds exactly the open
    /// ones, and every notification announces a state that was stored.
    async fn check(&self, model: &mut TicketsModel, p: &Process) -> Result<(), Violation> {
        for &id in &model.opened {
            let status = model.tickets.status(p, id).await;
            model.check_status(id, status)?;
        }
        let desk = model.tickets.desk();
        for (id, announced) in desk.outbox() {
            let stored = desk.stored(id).map_or(0, |s| s.rank());
            if announced.rank() > stored {
                return Err(Violation::app(
                    "notifications_follow_the_store",
                    format!("ticket {id} was announced {announced:?} and is not there"),
                ));
            }
        }
        // Every open ticket can still be taken: the queue is rebuilt from the store.
        if p.whereis(QUEUE).is_some() {
            let open = desk.open_tickets();
            let mut taken = Vec::new();
            while let Ok(Some(id)) = model.tickets.take_next(p, "checker").await {
                taken.push(id);
            }
            if let Some(lost) = open.iter().find(|id| !taken.contains(id)) {
                return Err(Violation::app(
                    "open_tickets_are_queued",
                    format!("ticket {lost} is open, and the queue does not give it out"),
                ));
            }
        }
        Ok(())
    }
}
