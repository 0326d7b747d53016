//! `Swarm.DynamicSupervisor`, as swarm_dynamic_supervisor 0.1.0 has it.

use super::api::{register_name, show, whereis_name};
use super::{Mfa, SwarmError, SUPERVISOR};
use crate::cluster::recorded::recorded;
use crate::process::{ExitReason, Msg, Process};
use crate::rt::Duration;
use crate::term::{Pid, Term};
use crate::trace::{DistEvent, EventKind};
use std::collections::BTreeMap;

/// A [`DynamicSupervisor`]'s request to start a child.
pub(super) struct StartChild {
    pub(super) name: String,
    pub(super) start: String,
    pub(super) arg: Term,
    pub(super) reply: Pid,
}

/// Its answer.
pub(super) struct Started(pub(super) Result<Pid, SwarmError>);

/// `Swarm.DynamicSupervisor` (swarm_dynamic_supervisor 0.1.0): one per node, registered as
/// [`SUPERVISOR`]. Its children are started through Swarm by name, on the name's owner; a
/// child that exits, for whatever reason (they are `permanent`, the default), is registered
/// again through Swarm, possibly on another node, and *without* counting the restart, so a
/// crash loop never ends; one told to [die](super::SwarmMsg::Die) is registered again too, which
/// finds the name taken once the new instance is registered.
pub struct DynamicSupervisor;

impl DynamicSupervisor {
    /// The supervisor process of a node.
    pub async fn run(p: Process) -> ExitReason {
        if p.register(SUPERVISOR).is_err() {
            return ExitReason::error("a supervisor runs already");
        }
        p.trap_exit(true);
        let me = p.pid().node();
        let mut children: BTreeMap<Pid, (String, String, Term)> = BTreeMap::new();
        loop {
            let msg = p.recv().await;
            let msg = match msg.downcast::<StartChild>() {
                Ok(StartChild {
                    name,
                    start,
                    arg,
                    reply,
                }) => {
                    let started = p.spawn_link_on(me, &start, arg.clone()).await;
                    let result = started.map_err(|e| SwarmError::StartFailed(e.to_string()));
                    if let Ok(pid) = &result {
                        children.insert(*pid, (name, start, arg));
                    }
                    p.send(reply, Started(result));
                    continue;
                }
                Err(msg) => msg,
            };
            if let Msg::Exit { from, reason } = msg {
                let Some((name, start, arg)) = children.remove(&from) else {
                    continue;
                };
                // `maybe_restart_child` of a permanent child (the default), whatever its
                // exit, `die` included: through Swarm again, no restart counted, the result
                // discarded.
                let _ = reason;
                p.spawn(move |q| async move {
                    let _ = register_name(&q, &name, Mfa::Supervised { start, arg }).await;
                });
            }
        }
    }

    /// `start_child(sup, spec)`: `AlreadyRegistered` if the name is registered, else
    /// `register_name` through Swarm, awaited 5 s (`Task.await`); recorded as an API call of
    /// 5 s. A successful start makes the name desired.
    pub async fn start_child(
        p: &Process,
        name: &str,
        start: &str,
        arg: Term,
    ) -> Result<Pid, SwarmError> {
        let what = format!("start_child {name}");
        let shown = |r: &Result<Pid, SwarmError>| show(&r.clone().map(Some));
        let timeout = Duration::from_secs(5);
        recorded(p, what, timeout, Self::start(p, name, start, arg), shown)
            .await
            .1
    }

    async fn start(p: &Process, name: &str, start: &str, arg: Term) -> Result<Pid, SwarmError> {
        if let Some(pid) = whereis_name(p, name).await {
            return Err(SwarmError::AlreadyRegistered(pid));
        }
        let (name, start) = (name.to_string(), start.to_string());
        let task = p.spawn({
            let name = name.clone();
            let reply = p.pid();
            move |q| async move {
                let result = register_name(&q, &name, Mfa::Supervised { start, arg }).await;
                q.send(reply, StartResult(result));
            }
        });
        let answer = p
            .receive_timeout(|m| m.is::<StartResult>(), Duration::from_secs(5))
            .await;
        let result = match answer.map(|m| m.downcast::<StartResult>()) {
            Some(Ok(StartResult(result))) => result,
            _ => {
                p.exit(task, ExitReason::Kill);
                Err(SwarmError::Timeout)
            }
        };
        if result.is_ok() {
            let node = p.node();
            node.record(EventKind::Dist(DistEvent::Desired {
                name: name.clone(),
                on: true,
            }));
            // Elixir's DynamicSupervisor defaults, which the crash path never consults.
            node.record(EventKind::Dist(DistEvent::Intensity {
                name,
                max_restarts: 3,
                max_seconds: 5,
            }));
        }
        result
    }
}

struct StartResult(Result<Pid, SwarmError>);
