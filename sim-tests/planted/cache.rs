//! A find-or-start cache of named stores, and planted bug (d).

use otpsim::sim::harness::proptest::prelude::*;
use otpsim::sim::harness::{Domain, Target, Workload};
use otpsim::sim::invariants::Violation;
use otpsim::supervisor::dynamic::{self, DynamicOptions, DynamicSupervisorRef};
use otpsim::supervisor::{
    self, ChildSpec, Flags, Start, Started, Strategy as SupStrategy, SupervisorSpec,
};
use otpsim::{ExitReason, Pid, Process};

/// A find-or-start cache (issue 5, planted bug (d) and its fix): one `Store` server per
/// name, started on demand under a DynamicSupervisor with a via name in a registry; the
/// cache looks the name up and calls the server. Between the lookup and the call the server
/// may die: `lookup` even returns a dead pid until its partition has cleaned up (docs/behaviours.md item
/// 90). The buggy cache trusts the pid it looked up and fails the request; the fixed one
/// takes `noproc` (or an exit during the call) as "that server is gone" and retries through
/// `start_child`, which starts a new one or names the live one.
#[derive(Clone, Copy)]
pub struct Cache {
    /// Planted bug (d).
    pub trusts_lookup: bool,
}

/// One named store: holds the values put in it.
struct Store(Vec<u32>);

impl otpsim::server::GenServer for Store {
    type Arg = ();
    type Call = u32;
    type Reply = usize;
    type Cast = ();
    type Cont = ();

    async fn init(_: (), _p: &Process) -> otpsim::server::Init<Self> {
        otpsim::server::Init::Ok(Store(Vec::new()))
    }

    async fn handle_call(
        &mut self,
        value: u32,
        _from: otpsim::server::From<usize>,
        _p: &Process,
    ) -> otpsim::server::CallReply<Self> {
        self.0.push(value);
        otpsim::server::CallReply::Reply(self.0.len())
    }
}

/// A request to the cache: put `value` in the store called `name`, answer to `from`.
struct Put {
    name: u8,
    value: u32,
    from: Pid,
}

/// The cache's answer: whether the value reached a live store.
struct Stored(bool);

type Names = otpsim::registry::Registry<String, ()>;

/// The cache's find-or-start: the store's pid (from `lookup` if `look_up`), started under
/// `stores` if the name is free. `start_child` is the authority: it takes over a dead
/// owner's name, or says which live process holds it (`already_started`).
async fn find_or_start(
    p: &Process,
    names: &Names,
    stores: DynamicSupervisorRef,
    name: &str,
    look_up: bool,
) -> Option<Pid> {
    let found = names
        .lookup(&name.to_string())
        .first()
        .map(|&(pid, ())| pid);
    if let Some(pid) = found.filter(|_| look_up) {
        return Some(pid);
    }
    let via = otpsim::server::StartOptions::default().via(names.via(name.to_string()));
    let spec =
        ChildSpec::server_with::<Store>("store", (), via).restart(supervisor::Restart::Temporary);
    match stores.start_child(p, spec).await {
        Ok(started) => started.pid(),
        Err(e) => e.already_started(),
    }
}

async fn cache(p: Process, names: Names, stores: DynamicSupervisorRef, cache: Cache) -> ExitReason {
    loop {
        let msg = p.recv().await;
        let Ok(Put { name, value, from }) = msg.downcast::<Put>() else {
            continue;
        };
        let name = format!("store{name}");
        let attempts = if cache.trusts_lookup { 1 } else { 3 };
        let mut stored = false;
        for attempt in 0..attempts {
            // A retry does not look up again: `lookup` may still show the dead pid.
            let Some(pid) = find_or_start(&p, &names, stores, &name, attempt == 0).await else {
                break;
            };
            match otpsim::server::ServerRef::<Store>::from_pid(pid)
                .call(&p, value)
                .await
            {
                Ok(_) => {
                    stored = true;
                    break;
                }
                // The store died since the lookup: find or start it again.
                Err(otpsim::server::CallError::Noproc | otpsim::server::CallError::Exit(_)) => {}
                Err(
                    otpsim::server::CallError::Timeout | otpsim::server::CallError::NodeDown(_),
                ) => break,
            }
        }
        p.send(from, Stored(stored));
    }
}

impl Target for Cache {
    type Setup = ();
    type Op = (u8, u32);
    type State = ();

    fn name(&self) -> String {
        if self.trusts_lookup {
            "cache-trusts-lookup"
        } else {
            "cache"
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    /// Put a value in one of two stores.
    fn workload(&self, domain: Domain) -> Workload<(u8, u32)> {
        Workload::new().kind("put", 1, (domain.pick(), any::<u32>()))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, ()), String> {
        let config = *self;
        use otpsim::registry::{Keys, RegistryOptions};
        // The registry belongs to the driver, outside the tree the faults hit.
        let names = Names::start_link(p, RegistryOptions::new(Keys::Unique))
            .await
            .map_err(|e| e.to_string())?;
        let stores = ChildSpec::supervisor(
            "stores",
            Start::new(|p| {
                Box::pin(async move {
                    let options = otpsim::server::StartOptions::linked().named("stores");
                    let sup = dynamic::start_with(
                        p,
                        |_| dynamic::DynamicInit::Ok(DynamicOptions::default()),
                        options,
                    )
                    .await
                    .map_err(|e| e.reason().to_term())?;
                    Ok(Started::Pid(sup.pid()))
                })
            }),
        );
        let the_cache = ChildSpec::worker(
            "cache",
            Start::new(move |p| {
                let names = names.clone();
                let Some(stores) = p.whereis("stores").map(DynamicSupervisorRef::from_pid) else {
                    return Box::pin(async { Err(otpsim::Term::atom("no_stores")) });
                };
                let pid = p.spawn_link(move |q| async move {
                    q.register("cache").expect("free name");
                    cache(q, names, stores, config).await
                });
                Box::pin(async move { Ok(Started::Pid(pid)) })
            }),
        );
        let spec = SupervisorSpec::new(Flags::elixir(SupStrategy::OneForAll))
            .child(stores)
            .child(the_cache);
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sup.pid(), ()))
    }

    /// App invariant: while only stores are hit, every put reaches a live store.
    async fn apply(
        &self,
        _: &mut (),
        &(name, value): &(u8, u32),
        p: &Process,
    ) -> Result<(), Violation> {
        let Some(cache) = p.whereis("cache") else {
            return Ok(());
        };
        p.send(
            cache,
            Put {
                name,
                value,
                from: p.pid(),
            },
        );
        let reply = p
            .receive_timeout(|m| m.is::<Stored>(), otpsim::rt::Duration::from_secs(10))
            .await
            .and_then(|m| m.downcast::<Stored>().ok());
        if !reply.is_some_and(|s| s.0) && otpsim::sim::harness::only_children_hit(p, "stores") {
            return Err(Violation::app(
                "puts_reach_a_live_store",
                format!("store{name} did not take a value; only stores were hit"),
            ));
        }
        Ok(())
    }
}
