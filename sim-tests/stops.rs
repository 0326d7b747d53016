//! The `stop` fault family: graceful restarts by an operator (`terminate_child` then
//! `restart_child`, or `stop` of a permanent server) check a contract about stops without a
//! workload that stops anything.

use crate::common::wait_forever;
use otpsim::server::{self, CallReply, GenServer, Init, ServerRef, StartOptions};
use otpsim::sim::harness::proptest::prelude::*;
use otpsim::sim::harness::{injected_faults, Domain, Harness, Target, Workload};
use otpsim::sim::invariants::Violation;
use otpsim::supervisor::{self, ChildSpec, Flags, Strategy as SupStrategy, SupervisorSpec};
use otpsim::trace::FaultKind;
use otpsim::{ExitReason, Pid, Process};
use std::sync::{Arc, Mutex};

/// Where a buffer writes what it flushes: outlives the processes.
type Store = Arc<Mutex<Vec<u32>>>;

/// A buffer: keeps what it is given and writes it to the store when it terminates. It
/// traps exits, so a shutdown from its supervisor runs `terminate` (docs/behaviours.md item
/// 48); the planted bug does not, so a graceful stop kills it with its buffer.
struct Buffer {
    held: Vec<u32>,
    store: Store,
}

impl GenServer for Buffer {
    type Arg = (Store, bool);
    type Call = Option<u32>;
    type Reply = Vec<u32>;
    type Cast = ();
    type Cont = ();

    async fn init((store, traps): (Store, bool), p: &Process) -> Init<Self> {
        p.trap_exit(traps);
        Init::Ok(Buffer {
            held: Vec::new(),
            store,
        })
    }

    /// `Some(item)`: hold it (the answer acknowledges it); `None`: what it holds.
    async fn handle_call(
        &mut self,
        item: Option<u32>,
        _from: server::From<Vec<u32>>,
        _p: &Process,
    ) -> CallReply<Self> {
        if let Some(item) = item {
            self.held.push(item);
        }
        CallReply::Reply(self.held.clone())
    }

    async fn terminate(&mut self, _reason: &ExitReason, _p: &Process) {
        let held = std::mem::take(&mut self.held);
        self.store.lock().unwrap().extend(held);
    }
}

/// The buffer under a supervisor, as the target of the harness; `traps: false` plants the
/// bug.
#[derive(Clone, Copy)]
struct Buffered {
    traps: bool,
}

struct BufferState {
    store: Store,
    acked: Vec<u32>,
}

const BUFFER: &str = "buffer";

impl Target for Buffered {
    type Setup = ();
    type Op = u32;
    type State = BufferState;

    fn name(&self) -> String {
        if self.traps {
            "buffer"
        } else {
            "buffer-not-trapping"
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn workload(&self, _: Domain) -> Workload<u32> {
        Workload::new().kind("put", 1, any::<u32>())
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, BufferState), String> {
        let store = Store::default();
        let arg = (store.clone(), self.traps);
        let buffer =
            ChildSpec::server_with::<Buffer>("buffer", arg, StartOptions::default().named(BUFFER));
        let idle = ChildSpec::worker(
            "idle",
            supervisor::Start::new(|p| {
                let pid = p.spawn_link(wait_forever);
                Box::pin(async move { Ok(supervisor::Started::Pid(pid)) })
            }),
        );
        let spec = SupervisorSpec::new(Flags::elixir(SupStrategy::OneForOne))
            .child(buffer)
            .child(idle);
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        let acked = Vec::new();
        Ok((sup.pid(), BufferState { store, acked }))
    }

    async fn apply(
        &self,
        state: &mut BufferState,
        item: &u32,
        p: &Process,
    ) -> Result<(), Violation> {
        if let Some(buffer) = ServerRef::<Buffer>::whereis(p, BUFFER) {
            if buffer.call(p, Some(*item)).await.is_ok() {
                state.acked.push(*item);
            }
        }
        Ok(())
    }

    /// Nothing acknowledged is lost to a graceful stop: it is in the store or still held
    /// (crashes and kills lose what the buffer held; the contract is about stops).
    async fn check(&self, state: &mut BufferState, p: &Process) -> Result<(), Violation> {
        let hard = injected_faults(p).iter().any(|(_, fault)| {
            !matches!(
                fault,
                FaultKind::RestartChild | FaultKind::Stop(_) | FaultKind::Delay { .. }
            )
        });
        let held = match ServerRef::<Buffer>::whereis(p, BUFFER) {
            Some(buffer) => buffer.call(p, None).await.unwrap_or_default(),
            None => Vec::new(),
        };
        let stored = state.store.lock().unwrap().clone();
        let lost: Vec<u32> = state
            .acked
            .iter()
            .filter(|item| !stored.contains(item) && !held.contains(item))
            .copied()
            .collect();
        if hard || lost.is_empty() {
            return Ok(());
        }
        Err(Violation::app(
            "stops_lose_nothing",
            format!(
                "{} acknowledged item(s) lost to a graceful stop",
                lost.len()
            ),
        ))
    }
}

/// A buffer that flushes in `terminate` keeps everything through graceful restarts.
#[test]
fn a_buffer_that_flushes_when_it_terminates_passes() {
    Harness::new(Buffered { traps: true })
        .cases(1000)
        .corpus(None)
        .check();
}

/// A buffer that does not trap exits never runs `terminate` when its supervisor stops it:
/// the `stop` family finds the loss by itself and shrinks it to an item and a restart; the
/// other families, which only crash and kill (the contract does not cover), never do.
#[test]
fn a_buffer_that_does_not_trap_exits_loses_items_to_graceful_stops() {
    let report = Harness::new(Buffered { traps: false })
        .cases(1000)
        .corpus(None)
        .run();
    let failure = report.failure.expect("the stop family finds the loss");
    assert_eq!(
        failure.violation.invariant.to_string(),
        "app:stops_lose_nothing"
    );
    let steps = failure.case["steps"].as_array().expect("steps");
    assert!(steps.len() <= 3, "not shrunk: {failure}");
    let without_stops = Harness::new(Buffered { traps: false })
        .families(&crate::common::NO_STOPS)
        .cases(1000)
        .corpus(None)
        .run();
    assert!(without_stops.failure.is_none(), "found without stops");
}
