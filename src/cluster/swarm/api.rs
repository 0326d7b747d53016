//! Swarm's API, as a node's processes call it: each call goes to the node's tracker
//! ([`tracker`](super::tracker())), and the API calls a user waits on are recorded for the
//! bounded-progress invariant (I9); and [`serve`], which runs a worker by the handoff contract.

use super::{HandoffAnswer, Mfa, SwarmError, SwarmMsg, TRACKER};
use crate::cluster::handoff::{handle_message, Call, CallReply, Handoff};
use crate::cluster::recorded::recorded;
use crate::process::{ExitReason, Msg, Process};
use crate::rt::Duration;
use crate::term::{Pid, Term};

/// What the API asks of the local tracker.
pub(super) enum Api {
    Register {
        name: String,
        mfa: Mfa,
        reply: Pid,
    },
    Whereis {
        name: String,
        reply: Pid,
    },
    /// `pid` joins (`member`) or leaves `group`.
    Group {
        group: String,
        pid: Pid,
        member: bool,
        reply: Pid,
    },
    Members {
        group: String,
        reply: Pid,
    },
}

/// The tracker's answer to [`Api::Members`].
pub(super) struct MembersReply(pub(super) Vec<Pid>);

/// The tracker's answer to an [`Api`] call.
pub(super) struct ApiReply(pub(super) Result<Option<Pid>, SwarmError>);

pub(super) fn show(result: &Result<Option<Pid>, SwarmError>) -> String {
    match result {
        Ok(Some(pid)) => pid.to_string(),
        Ok(None) => "undefined".into(),
        Err(e) => format!("error: {e}"),
    }
}

/// Makes a Swarm call to this node's tracker and waits for its answer, however long.
async fn call(p: &Process, api: Api) -> Result<Option<Pid>, SwarmError> {
    p.send_named(TRACKER, p.pid().node(), api);
    let answer = p.receive(|m| m.is::<ApiReply>()).await;
    match answer.downcast::<ApiReply>() {
        Ok(ApiReply(result)) => result,
        Err(_) => Err(SwarmError::StartFailed("no answer".into())),
    }
}

/// Swarm's `register_name(name, m, f, a)`: the owner of `name` starts it by `mfa` and
/// registers it cluster-wide. It waits as long as it takes (Swarm's `:infinity`). A name
/// started this way ([`Mfa::Spawn`]) is desired from then on, until its process exits of
/// its own accord: Swarm moves it when the cluster changes, and never restarts it after it
/// ends.
pub async fn register_name(p: &Process, name: &str, mfa: Mfa) -> Result<Pid, SwarmError> {
    let api = Api::Register {
        name: name.into(),
        mfa,
        reply: p.pid(),
    };
    call(p, api)
        .await
        .and_then(|pid| pid.ok_or_else(|| SwarmError::StartFailed("no pid".into())))
}

/// Swarm's `whereis_name(name)`: this node's copy of the registry (possibly stale); it waits
/// while the tracker is not tracking. Recorded as an API call of 5 s.
pub async fn whereis_name(p: &Process, name: &str) -> Option<Pid> {
    let api = Api::Whereis {
        name: name.into(),
        reply: p.pid(),
    };
    let what = format!("whereis {name}");
    let (call, result) = recorded(p, what, Duration::from_secs(5), call(p, api), show).await;
    let pid = result.ok().flatten();
    crate::cluster::recorded::lookup(p, name, pid, call);
    pid
}

/// Swarm's `join(group, pid)`: `pid`'s registration joins `group` (kept in its entry's
/// metadata, so it moves with a handoff and survives a restart by the tracker, but not a
/// re-registration: a [`DynamicSupervisor`](super::DynamicSupervisor)'s restart after a crash leaves every group). A
/// pid this node's registry does not have is left alone, as Swarm does. Recorded as an API
/// call of 5 s.
pub async fn join(p: &Process, group: &str, pid: Pid) {
    set_group(p, group, pid, true).await;
}

/// Swarm's `leave(group, pid)`: `pid`'s registration leaves `group` (a newer version of its
/// entry, broadcast like a join). A pid this node's registry does not have, or one not in the
/// group, is left alone. Recorded as an API call of 5 s.
pub async fn leave(p: &Process, group: &str, pid: Pid) {
    set_group(p, group, pid, false).await;
}

/// [`join`] (`member`) or [`leave`].
async fn set_group(p: &Process, group: &str, pid: Pid, member: bool) {
    let api = Api::Group {
        group: group.into(),
        pid,
        member,
        reply: p.pid(),
    };
    let what = format!("{} {group} {pid}", if member { "join" } else { "leave" });
    let _ = recorded(p, what, Duration::from_secs(5), call(p, api), show).await;
}

/// Swarm's `members(group)`: the registered processes of `group`, as this node's registry
/// has them (it waits while the tracker is not tracking).
pub async fn members(p: &Process, group: &str) -> Vec<Pid> {
    let api = Api::Members {
        group: group.into(),
        reply: p.pid(),
    };
    p.send_named(TRACKER, p.pid().node(), api);
    let answer = p.receive(|m| m.is::<MembersReply>()).await;
    answer
        .downcast::<MembersReply>()
        .map(|MembersReply(pids)| pids)
        .unwrap_or_default()
}
/// Swarm's `publish(group, msg)`: `msg` to every member of `group` as this node's registry
/// has them ([`members`]), each a plain send that nothing acknowledges; the members it went
/// to.
pub async fn publish<T: Clone + Send + 'static>(p: &Process, group: &str, msg: T) -> Vec<Pid> {
    let to = members(p, group).await;
    for &pid in &to {
        p.send(pid, msg.clone());
    }
    to
}

/// Swarm's `multi_call(group, request, timeout)`: a call ([`Call`]) of `request` to every
/// member of `group` as this node's registry has them, all at once, each given `timeout`;
/// their answers in the members' order. Swarm awaits each call's task for ever, so the first
/// call (in that order) that fails — a member that is gone, a node that is unreachable, a
/// member that does not answer within `timeout` — fails it all: the caller exits with that
/// reason, here the `Err` to exit with.
pub async fn multi_call(
    p: &Process,
    group: &str,
    request: Term,
    timeout: Duration,
) -> Result<Vec<Term>, ExitReason> {
    let asked: Vec<(u64, crate::process::MonitorRef)> = members(p, group)
        .await
        .into_iter()
        .map(|pid| {
            let tag = p.make_ref().0;
            let mref = p.monitor(pid);
            let (request, reply) = (request.clone(), p.pid());
            p.send(
                pid,
                Call {
                    request,
                    reply,
                    tag,
                },
            );
            (tag, mref)
        })
        .collect();
    let deadline = p.now() + timeout;
    let mut answers = Vec::with_capacity(asked.len());
    let mut asked = asked.into_iter();
    while let Some((tag, mref)) = asked.next() {
        let left = deadline.saturating_duration_since(p.now());
        let answer = p
            .receive_timeout(
                move |m| {
                    m.downcast_ref::<CallReply>().is_some_and(|r| r.tag == tag)
                        || matches!(m, Msg::Down { mref: r, .. } if *r == mref)
                },
                left,
            )
            .await;
        p.demonitor(mref);
        let failed = match answer.map(|m| m.downcast::<CallReply>()) {
            Some(Ok(CallReply { reply, .. })) => {
                answers.push(reply);
                continue;
            }
            Some(Err(Msg::Down { reason, .. })) => reason,
            _ => ExitReason::error("timeout"),
        };
        for (_, mref) in asked {
            p.demonitor(mref);
        }
        return Err(failed);
    }
    Ok(answers)
}

/// Swarm's `send(name, msg)`: `msg` to the instance of `name` this node's registry has
/// ([`whereis_name`]), or nowhere if it has none (Swarm answers `:ok` either way, and keeps
/// nothing for later); the instance it went to.
pub async fn send<T: Send + 'static>(p: &Process, name: &str, msg: T) -> Option<Pid> {
    let to = whereis_name(p, name).await;
    if let Some(pid) = to {
        p.send(pid, msg);
    }
    to
}

/// Runs `worker` as a process Swarm started: its `{swarm, ...}` messages go to the
/// [`Handoff`] contract's methods (a `die` ends it), a [`Call`] to [`Handoff::handle_call`],
/// every other message to
/// [`Handoff::handle`].
pub async fn serve<W: Handoff>(p: Process, mut worker: W) -> ExitReason {
    loop {
        let msg = p.recv().await;
        match msg.downcast::<SwarmMsg>() {
            Ok(SwarmMsg::BeginHandoff { reply: to, tag }) => {
                let reply = worker.begin_handoff(&p);
                p.send(to, HandoffAnswer { tag, reply });
            }
            Ok(SwarmMsg::EndHandoff(state)) => worker.end_handoff(&p, state),
            Ok(SwarmMsg::ResolveConflict(state)) => worker.resolve_conflict(&p, state),
            Ok(SwarmMsg::Die) => return worker.die(&p),
            Err(msg) => {
                if let Err(reason) = handle_message(&mut worker, &p, msg) {
                    return reason;
                }
            }
        }
    }
}
