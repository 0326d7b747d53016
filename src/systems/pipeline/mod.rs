//! pipeline: a three-stage data pipeline under rest_for_one, the textbook case where a
//! failing stage restarts the stages after it and leaves the earlier ones alone.
//!
//! ```text
//! pipeline (rest_for_one)
//! ├── source        a journal of the items fed to it, and how far they are acknowledged
//! ├── transformer   asks the source for an item, transforms it (x -> 2x + 1); passes acks up
//! └── sink          asks for the item after the acknowledged one, writes it, acknowledges it
//! ```
//!
//! Demand flows upstream: each stage knows only the stage started before it, which it finds
//! in its own start, which is what rest_for_one restarts for it: when the transformer fails,
//! the sink (which holds it) restarts with it; when the sink fails, nothing before it does.
//!
//! **The acknowledgement scheme.** An item is *fed* when [`Pipeline::feed`] returns: the
//! source has written it to its journal under the next sequence number. The sink asks for
//! the item after the last *acknowledged* one, writes it to the output (an outside system:
//! the [`Store`]), and then acknowledges it, through the transformer, to the source, which
//! records the acknowledged number in the store. The write is idempotent: the output takes
//! an item only if its number is the next one. So:
//!
//! * **none is lost**: the source never forgets an item it handed out, and nothing is
//!   acknowledged before it is written; whatever was in flight when a stage died is asked
//!   for again;
//! * **none is delivered twice**: a sink that dies between its write and its ack asks for
//!   the same item again after its restart, and the output recognises and drops it;
//! * **they arrive in order**, each exactly once, as `2x + 1` of what was fed.
//!
//! The flaws this avoids: a sink that appends without checking numbers delivers twice the
//! item it wrote and did not acknowledge before a crash; one that acknowledges before it
//! writes loses the item when it crashes in between; a source that hands items out and
//! forgets them loses every item in flight when a later stage crashes.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::systems::pipeline::{Pipeline, Store};
//! let report = otpsim::sim::Sim::new(0).run(|p| async move {
//!     let pipeline = Pipeline::new(Store::default());
//!     pipeline.start_link(&p).await.unwrap();
//!     for x in [1, 2, 3] {
//!         pipeline.feed(&p, x).await.unwrap();
//!     }
//!     p.sleep(otpsim::rt::Duration::from_millis(10)).await;
//!     assert_eq!(pipeline.store().output(), vec![(1, 3), (2, 5), (3, 7)]);
//! });
//! assert_eq!(report.failure(), None);
//! # }
//! ```

use crate::process::{ExitReason, Process};
use crate::rt::Duration;
use crate::server::{
    self, CallError, CallReply, GenServer, Init, Next, ServerRef, StartError, StartOptions,
};
use crate::supervisor::{self, ChildSpec, Flags, Strategy, SupervisorRef, SupervisorSpec};
use crate::term::Pid;
use std::sync::{Arc, Mutex, PoisonError};

#[cfg(feature = "harness")]
mod target;

#[cfg(feature = "harness")]
pub use target::{PipelineOp, PipelineTarget};

/// The source's local name.
pub const SOURCE: &str = "pipeline_source";
/// The transformer's local name.
pub const TRANSFORMER: &str = "pipeline_transformer";
/// The sink's local name.
pub const SINK: &str = "pipeline_sink";

/// What the transformer does to an item.
pub fn transform(x: u64) -> u64 {
    2 * x + 1
}

#[derive(Default)]
struct Durable {
    journal: Vec<u64>,
    acked: u64,
    output: Vec<(u64, u64)>,
}

/// What outlives the processes: the source's journal and acknowledged offset, and the output
/// the sink writes to. Cloning gives another handle to the same store.
#[derive(Clone, Default)]
pub struct Store(Arc<Mutex<Durable>>);

impl Store {
    fn with<R>(&self, f: impl FnOnce(&mut Durable) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The items fed so far, in order (sequence number `i + 1` for the `i`-th).
    pub fn journal(&self) -> Vec<u64> {
        self.with(|d| d.journal.clone())
    }

    /// What the sink wrote: (sequence number, value).
    pub fn output(&self) -> Vec<(u64, u64)> {
        self.with(|d| d.output.clone())
    }

    /// The last acknowledged sequence number (0: none).
    pub fn acked(&self) -> u64 {
        self.with(|d| d.acked)
    }

    /// Writes item `seq` to the output if it is the next one (a redelivered item is dropped).
    fn write(&self, seq: u64, value: u64) {
        self.with(|d| {
            let last = d.output.last().map_or(0, |(s, _)| *s);
            if seq == last + 1 {
                d.output.push((seq, value));
            }
        })
    }
}

/// An item on its way: (sequence number, value).
type Item = (u64, u64);

/// The source: hands out journal items by sequence number (a request for an item not fed
/// yet waits for it) and records acknowledgements.
struct Source {
    store: Store,
    waiting: Vec<(u64, server::From<Option<Item>>)>,
}

enum SourceCall {
    /// Appends an item to the journal; its sequence number.
    Feed(u64),
    /// The item after this sequence number, when there is one.
    After(u64),
    /// Every item up to this sequence number is written downstream.
    Ack(u64),
}

impl GenServer for Source {
    type Arg = Store;
    type Call = SourceCall;
    type Reply = Option<Item>;
    type Cast = ();
    type Cont = ();

    async fn init(store: Store, _p: &Process) -> Init<Self> {
        Init::Ok(Source {
            store,
            waiting: Vec::new(),
        })
    }

    async fn handle_call(
        &mut self,
        request: SourceCall,
        from: server::From<Self::Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        match request {
            SourceCall::Feed(x) => {
                let seq = self.store.with(|d| {
                    d.journal.push(x);
                    d.journal.len() as u64
                });
                for (after, waiter) in std::mem::take(&mut self.waiting) {
                    match self.item(after) {
                        Some(item) => waiter.reply(p, Some(item)),
                        None => self.waiting.push((after, waiter)),
                    }
                }
                CallReply::Reply(Some((seq, x)))
            }
            SourceCall::Ack(seq) => {
                self.store.with(|d| d.acked = d.acked.max(seq));
                CallReply::Reply(None)
            }
            SourceCall::After(after) => match self.item(after) {
                Some(item) => CallReply::Reply(Some(item)),
                None => {
                    self.waiting.push((after, from));
                    CallReply::NoReply
                }
            },
        }
    }
}

impl Source {
    fn item(&self, after: u64) -> Option<Item> {
        let x = self
            .store
            .with(|d| d.journal.get(after as usize).copied())?;
        Some((after + 1, x))
    }
}

/// The transformer: asks the source (found by its name at every request: a source
/// restarted alone, by an operator's `restart_child`, is a new process), transforms, passes
/// acks up.
struct Transformer;

/// A request to the transformer.
enum TransformerCall {
    /// The transformed item after this sequence number (when the source has one).
    After(u64),
    /// Acknowledges the items up to this number to the source.
    Ack(u64),
}

impl GenServer for Transformer {
    type Arg = ();
    type Call = TransformerCall;
    type Reply = Result<Item, CallError>;
    type Cast = ();
    type Cont = ();

    async fn init(_: (), p: &Process) -> Init<Self> {
        match ServerRef::<Source>::whereis(p, SOURCE) {
            Some(_) => Init::Ok(Transformer),
            None => Init::Stop(ExitReason::error("no_source")),
        }
    }

    async fn handle_call(
        &mut self,
        request: TransformerCall,
        _from: server::From<Self::Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        let (request, ack) = match request {
            TransformerCall::After(after) => (SourceCall::After(after), None),
            TransformerCall::Ack(seq) => (SourceCall::Ack(seq), Some(seq)),
        };
        let Some(source) = ServerRef::<Source>::whereis(p, SOURCE) else {
            return CallReply::Reply(Err(CallError::Noproc));
        };
        let reply = source.call_timeout(p, request, None).await;
        CallReply::Reply(match (reply, ack) {
            (Ok(_), Some(seq)) => Ok((seq, 0)),
            (Ok(Some((seq, x))), None) => Ok((seq, transform(x))),
            (Ok(None), None) => Err(CallError::Noproc),
            (Err(e), _) => Err(e),
        })
    }
}

/// The sink: pulls the item after the acknowledged one from the transformer (found by its
/// name at every pull, like the source by the transformer), writes it, acknowledges it, and
/// pulls again.
struct Sink {
    store: Store,
}

/// The sink pulls the next item.
struct Pull;

impl GenServer for Sink {
    type Arg = Store;
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Cont = Pull;

    async fn init(store: Store, p: &Process) -> Init<Self> {
        match ServerRef::<Transformer>::whereis(p, TRANSFORMER) {
            Some(_) => Init::Continue(Sink { store }, Pull),
            None => Init::Stop(ExitReason::error("no_transformer")),
        }
    }

    async fn handle_continue(&mut self, _: Pull, p: &Process) -> Next<Self> {
        if let Some(transformer) = ServerRef::<Transformer>::whereis(p, TRANSFORMER) {
            let after = TransformerCall::After(self.store.acked());
            if let Ok(Ok((seq, value))) = transformer.call_timeout(p, after, None).await {
                self.store.write(seq, value);
                if let Ok(Ok(_)) = transformer.call(p, TransformerCall::Ack(seq)).await {
                    return Next::ContinueWith(Pull);
                }
            }
        }
        // The transformer (or the source) is gone: rest_for_one restarts it, and this sink;
        // one restarted alone is found again by its name.
        p.sleep(Duration::from_millis(10)).await;
        Next::ContinueWith(Pull)
    }
}

/// The pipeline: its store and its supervisor spec. Cloning gives another handle to the same.
#[derive(Clone)]
pub struct Pipeline {
    store: Store,
}

impl Pipeline {
    /// A pipeline over `store` (not started yet).
    pub fn new(store: Store) -> Pipeline {
        Pipeline { store }
    }

    /// The store it keeps its journal and output in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The three stages under rest_for_one, in flow order.
    pub fn spec(&self) -> SupervisorSpec {
        let named = |name: &str| StartOptions::default().named(name);
        SupervisorSpec::new(Flags::elixir(Strategy::RestForOne))
            .child(ChildSpec::server_with::<Source>(
                "source",
                self.store.clone(),
                named(SOURCE),
            ))
            .child(ChildSpec::server_with::<Transformer>(
                "transformer",
                (),
                named(TRANSFORMER),
            ))
            .child(ChildSpec::server_with::<Sink>(
                "sink",
                self.store.clone(),
                named(SINK),
            ))
    }

    /// Starts the pipeline, linked to the caller.
    pub async fn start_link(&self, p: &Process) -> Result<SupervisorRef, StartError> {
        supervisor::start_link(p, self.spec()).await
    }

    /// Feeds `x` to the pipeline; its sequence number once the source journaled it.
    pub async fn feed(&self, p: &Process, x: u64) -> Result<u64, CallError> {
        let source = ServerRef::<Source>::whereis(p, SOURCE).ok_or(CallError::Noproc)?;
        match source.call(p, SourceCall::Feed(x)).await? {
            Some((seq, _)) => Ok(seq),
            None => Err(CallError::Noproc),
        }
    }

    /// The stages' pids, in flow order, as far as they run.
    pub fn stages(&self, p: &Process) -> [Option<Pid>; 3] {
        [p.whereis(SOURCE), p.whereis(TRANSFORMER), p.whereis(SINK)]
    }
}
