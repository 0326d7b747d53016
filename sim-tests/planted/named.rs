//! A server that registers a unique name in its init, and planted bug (e).

use super::idle;
use otpsim::sim::harness::proptest::prelude::*;
use otpsim::sim::harness::{Domain, Target, Workload};
use otpsim::sim::invariants::Violation;
use otpsim::supervisor::{
    self, ChildSpec, Flags, Start, Started, Strategy as SupStrategy, SupervisorSpec,
};
use otpsim::{ExitReason, Pid, Process};

/// A server that registers a unique name in its init (issue 5, planted bug (e) and its fix).
/// The buggy variant checks `lookup` before registering: right after a crash the registry may
/// still list the dead owner (its partition has not processed the `EXIT` yet), so the
/// restart refuses to start, every retry counts, and the supervisor gives up on one crash.
/// The fixed variant calls `register`, which takes over a dead owner's key (docs/behaviours.md item 90).
#[derive(Clone, Copy)]
pub struct Named {
    /// Planted bug (e).
    pub check_then_register: bool,
}

impl Target for Named {
    type Setup = ();
    type Op = ();
    type State = otpsim::registry::Registry<String, ()>;

    fn name(&self) -> String {
        if self.check_then_register {
            "named-racy"
        } else {
            "named"
        }
        .into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn workload(&self, _: Domain) -> Workload<()> {
        Workload::new().kind("call", 1, Just(()))
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, Self::State), String> {
        let racy = self.check_then_register;
        use otpsim::registry::{Keys, Registry, RegistryOptions};
        let registry = Registry::<String, ()>::start_link(p, RegistryOptions::new(Keys::Unique))
            .await
            .map_err(|e| e.to_string())?;
        let reg = registry.clone();
        let server = ChildSpec::worker(
            "server",
            Start::new(move |p| {
                let reg = reg.clone();
                Box::pin(async move {
                    if racy && !reg.lookup(&"server".to_string()).is_empty() {
                        return Err(otpsim::Term::atom("already_registered"));
                    }
                    let pid = p.spawn_link(move |q| async move {
                        match reg.register(&q, "server".to_string(), ()) {
                            Ok(_) => idle(q).await,
                            Err(_) => ExitReason::error("already_registered"),
                        }
                    });
                    Ok(Started::Pid(pid))
                })
            }),
        );
        let spec = SupervisorSpec::new(Flags::elixir(SupStrategy::OneForOne)).child(server);
        let sup = supervisor::start_link(p, spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sup.pid(), registry))
    }

    /// App invariant: after fewer faults than the intensity allows, the name resolves.
    async fn check(&self, registry: &mut Self::State, p: &Process) -> Result<(), Violation> {
        let faults = otpsim::sim::harness::injected_faults(p).len();
        if faults < 3 && registry.whereis_name(&"server".to_string()).is_none() {
            return Err(Violation::app(
                "name_survives_a_crash",
                format!("after {faults} fault(s) the name `server` resolves to nothing"),
            ));
        }
        Ok(())
    }
}
