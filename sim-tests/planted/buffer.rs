//! A buffer that flushes what it holds when it terminates, and the planted bug of the `stop`
//! fault family: a buffer that does not trap exits, so a graceful stop kills it unflushed.

use super::idle;
use otpsim::server::{self, CallReply, GenServer, Init, ServerRef, StartOptions};
use otpsim::sim::harness::proptest::prelude::*;
use otpsim::sim::harness::{injected_faults, Domain, Target, Workload};
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
pub struct Buffered {
    /// `false` plants the bug.
    pub traps: bool,
}

pub struct BufferState {
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
                let pid = p.spawn_link(idle);
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
