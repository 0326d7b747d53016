//! A dispatcher that hands jobs to workers it finds by name, and a planted bug whose failure
//! hangs on timing (issue 17's second shape): the dispatcher casts the job to the pid it just
//! looked up and acknowledges it at once.
//!
//! Right after a worker dies, the registry still lists it until its partition has taken the
//! `EXIT` (docs/behaviours.md item 90): a job cast then goes to a dead process, acknowledged
//! and lost. Whether the lookup comes first depends on how the scheduler and the delays order
//! the partition's work and the dispatcher's, so the failure needs the worker's death, a job
//! for it, and one late signal (or a cast that a death overtakes). The fixed dispatcher calls
//! the worker and acknowledges the job only when the worker answers that it has it.

use otpsim::registry::{Keys, Registry, RegistryOptions};
use otpsim::server::{self, CallReply, GenServer, Init, Next, ServerRef, StartOptions};
use otpsim::sim::harness::proptest::prelude::*;
use otpsim::sim::harness::{Domain, Target, Workload};
use otpsim::sim::invariants::Violation;
use otpsim::supervisor::{self, ChildSpec, Flags, Strategy as SupStrategy, SupervisorSpec};
use otpsim::{Pid, Process};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The dispatcher and its workers; `acks_casts` plants the bug.
#[derive(Clone, Copy)]
pub struct Dispatch {
    /// The dispatcher casts a job and acknowledges it without waiting for the worker.
    pub acks_casts: bool,
}

/// The jobs the workers have done: a database they write, which outlives them.
type Done = Arc<Mutex<BTreeSet<u32>>>;

/// Where the workers register, by number.
type Workers = Registry<u8, ()>;

/// How many workers there are (a job's worker is picked modulo this).
const WORKERS: u8 = 3;

/// A worker: does a job (writes it to the database) when it takes it.
struct Worker(Done);

impl GenServer for Worker {
    type Arg = Done;
    type Call = u32;
    type Reply = ();
    type Cast = u32;
    type Cont = ();

    async fn init(done: Done, _p: &Process) -> Init<Self> {
        Init::Ok(Worker(done))
    }

    async fn handle_call(
        &mut self,
        job: u32,
        _from: server::From<()>,
        _p: &Process,
    ) -> CallReply<Self> {
        self.0.lock().unwrap().insert(job);
        CallReply::Reply(())
    }

    async fn handle_cast(&mut self, job: u32, _p: &Process) -> Next<Self> {
        self.0.lock().unwrap().insert(job);
        Next::Continue
    }
}

/// The dispatcher: `(worker, job)` is answered `true` when the job is acknowledged.
struct Dispatcher {
    workers: Workers,
    acks_casts: bool,
}

impl GenServer for Dispatcher {
    type Arg = (Workers, bool);
    type Call = (u8, u32);
    type Reply = bool;
    type Cast = ();
    type Cont = ();

    async fn init((workers, acks_casts): (Workers, bool), _p: &Process) -> Init<Self> {
        Init::Ok(Dispatcher {
            workers,
            acks_casts,
        })
    }

    async fn handle_call(
        &mut self,
        (worker, job): (u8, u32),
        _from: server::From<bool>,
        p: &Process,
    ) -> CallReply<Self> {
        let Some(&(pid, ())) = self.workers.lookup(&worker).first() else {
            return CallReply::Reply(false);
        };
        let worker = ServerRef::<Worker>::from_pid(pid);
        if self.acks_casts {
            worker.cast(p, job);
            return CallReply::Reply(true);
        }
        CallReply::Reply(worker.call(p, job).await.is_ok())
    }
}

/// The acknowledged jobs, the next job's number, the database.
pub struct Jobs {
    acked: Vec<u32>,
    next: u32,
    done: Done,
}

const DISPATCHER: &str = "dispatcher";

impl Target for Dispatch {
    type Setup = ();
    type Op = u8;
    type State = Jobs;

    fn name(&self) -> String {
        if self.acks_casts {
            "dispatch-acks-casts"
        } else {
            "dispatch"
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    /// A job for a worker.
    fn workload(&self, domain: Domain) -> Workload<u8> {
        Workload::new().kind("submit", 1, domain.pick())
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, Jobs), String> {
        // The registry belongs to the driver, outside the tree the faults hit.
        let workers = Workers::start_link(p, RegistryOptions::new(Keys::Unique))
            .await
            .map_err(|e| e.to_string())?;
        let done = Done::default();
        let pool = (0..WORKERS).fold(
            SupervisorSpec::new(Flags::elixir(SupStrategy::OneForOne)),
            |spec, i| {
                let options = StartOptions::default().via(workers.via(i));
                spec.child(ChildSpec::server_with::<Worker>(
                    format!("worker{i}"),
                    done.clone(),
                    options,
                ))
            },
        );
        let dispatcher = ChildSpec::server_with::<Dispatcher>(
            DISPATCHER,
            (workers, self.acks_casts),
            StartOptions::default().named(DISPATCHER),
        );
        let spec = SupervisorSpec::new(Flags::elixir(SupStrategy::OneForOne))
            .child(pool.into_child("workers"))
            .child(dispatcher);
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        let jobs = Jobs {
            acked: Vec::new(),
            next: 0,
            done,
        };
        Ok((sup.pid(), jobs))
    }

    async fn apply(&self, jobs: &mut Jobs, worker: &u8, p: &Process) -> Result<(), Violation> {
        let Some(dispatcher) = ServerRef::<Dispatcher>::whereis(p, DISPATCHER) else {
            return Ok(());
        };
        let job = jobs.next;
        jobs.next += 1;
        if let Ok(true) = dispatcher.call(p, (worker % WORKERS, job)).await {
            jobs.acked.push(job);
        }
        Ok(())
    }

    /// App invariant: every acknowledged job was done.
    async fn check(&self, jobs: &mut Jobs, _p: &Process) -> Result<(), Violation> {
        let done = jobs.done.lock().unwrap();
        let lost: Vec<u32> = jobs
            .acked
            .iter()
            .filter(|job| !done.contains(job))
            .copied()
            .collect();
        if lost.is_empty() {
            return Ok(());
        }
        Err(Violation::app(
            "acked_jobs_are_done",
            format!("job(s) {lost:?} acknowledged and never done"),
        ))
    }
}
