//! Stopping children (docs/behaviours.md §G): one at a time as static supervisors do, or all at once as
//! simple_one_for_one and DynamicSupervisor do.

use super::spec::{Restart, Shutdown};
use crate::process::{ExitReason, Msg, Process};
use crate::rt::Duration;
use crate::term::{Pid, Ref};
use std::collections::BTreeMap;

/// OTP's `shutdown/1` (docs/behaviours.md §G 44-46, 50): monitor, signal, wait for `DOWN` (killing after
/// the timeout), then unlink and take a pending `EXIT`, whose reason wins.
pub(super) async fn shutdown(pid: Pid, how: Shutdown, p: &Process) -> ExitReason {
    let mref = p.monitor(pid);
    let reason = match how {
        Shutdown::BrutalKill => {
            p.exit(pid, ExitReason::Kill);
            wait_down(mref, None, p).await
        }
        Shutdown::Infinity => {
            p.exit(pid, ExitReason::Shutdown);
            wait_down(mref, None, p).await
        }
        Shutdown::Timeout(ms) => {
            p.exit(pid, ExitReason::Shutdown);
            let timeout = Some(Duration::from_millis(ms));
            match p.receive_internal(is_down(mref), timeout).await {
                Some(Msg::Down { reason, .. }) => reason,
                _ => {
                    p.exit(pid, ExitReason::Kill);
                    wait_down(mref, None, p).await
                }
            }
        }
    };
    p.unlink_taking_exit(pid).unwrap_or(reason)
}

fn is_down(mref: Ref) -> impl FnMut(&Msg) -> bool {
    move |m| matches!(m, Msg::Down { mref: r, .. } if *r == mref)
}

/// Waits for the `DOWN` of `mref` (at most `timeout`), returning its reason.
async fn wait_down(mref: Ref, timeout: Option<Duration>, p: &Process) -> ExitReason {
    match p.receive_internal(is_down(mref), timeout).await {
        Some(Msg::Down { reason, .. }) => reason,
        _ => ExitReason::Killed,
    }
}

/// docs/behaviours.md item 47: which exit reasons a shutdown accepts without a `shutdown_error` report.
pub(super) fn shutdown_accepted(reason: &ExitReason, how: Shutdown, restart: Restart) -> bool {
    let lenient = restart != Restart::Permanent;
    match reason {
        ExitReason::Killed => how == Shutdown::BrutalKill,
        ExitReason::Shutdown => how != Shutdown::BrutalKill || lenient,
        ExitReason::ShutdownWith(_) | ExitReason::Normal => lenient,
        _ => false,
    }
}

/// How a parallel stop treats a child whose `EXIT` is already queued (it died by itself
/// while the supervisor was busy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Queued {
    /// OTP's `terminate_dynamic_children` (simple_one_for_one): it is monitored and
    /// signalled like the others, and at its `DOWN` the queued `EXIT`'s reason replaces the
    /// `DOWN`'s (`unlink_flush`) and is judged like any other (docs/behaviours.md item 52).
    Signalled,
    /// Elixir's `monitor_children` (DynamicSupervisor): it is not signalled; its reason is
    /// judged at once, and only `normal` from a non-permanent child is accepted (item 77).
    Judged,
}

/// Stops `children` (pid, shutdown, restart type) all at once (OTP's
/// `terminate_dynamic_children`, Elixir's `terminate_children`): in pid order, each is
/// monitored and sent `kill` or `shutdown` (Elixir unlinks it first, and judges one whose
/// `EXIT` is already queued instead, see [`Queued`]); one timer per distinct timeout kills
/// the survivors of that group. Returns the children whose reason `accepted` rejects, in pid
/// order, once all are down.
pub(super) async fn stop_in_parallel(
    mut children: Vec<(Pid, Shutdown, Restart)>,
    queued: Queued,
    accepted: impl Fn(&ExitReason, Shutdown, Restart) -> bool,
    p: &Process,
) -> Vec<(Pid, ExitReason)> {
    children.sort_by_key(|(pid, _, _)| *pid);
    let mut errors = Vec::new();
    let mut waiting: BTreeMap<Ref, (Pid, Shutdown, Restart)> = BTreeMap::new();
    // Timers by timeout: (deadline, the children it kills).
    let mut timers: BTreeMap<Duration, Vec<Ref>> = BTreeMap::new();
    for (pid, how, restart) in children {
        let mref = p.monitor(pid);
        if queued == Queued::Judged {
            if let Some(reason) = p.unlink_taking_exit(pid) {
                wait_down(mref, None, p).await;
                if !(reason.is_normal() && restart != Restart::Permanent) {
                    errors.push((pid, reason));
                }
                continue;
            }
        }
        waiting.insert(mref, (pid, how, restart));
        let signal = match how {
            Shutdown::BrutalKill => ExitReason::Kill,
            _ => ExitReason::Shutdown,
        };
        p.exit(pid, signal);
        if let Shutdown::Timeout(ms) = how {
            timers
                .entry(Duration::from_millis(ms))
                .or_default()
                .push(mref);
        }
    }
    let start = p.now();
    while !waiting.is_empty() {
        let next = timers.keys().next().copied();
        let left = next.map(|t| (start + t).saturating_duration_since(p.now()));
        let down = p
            .receive_internal(
                |m| matches!(m, Msg::Down { mref, .. } if waiting.contains_key(mref)),
                left,
            )
            .await;
        match down {
            Some(Msg::Down { mref, reason, .. }) => {
                if let Some((pid, how, restart)) = waiting.remove(&mref) {
                    let reason = match queued {
                        Queued::Signalled => p.unlink_taking_exit(pid).unwrap_or(reason),
                        Queued::Judged => reason,
                    };
                    if !accepted(&reason, how, restart) {
                        errors.push((pid, reason));
                    }
                }
            }
            _ => {
                let Some((_, group)) = next.and_then(|t| timers.remove_entry(&t)) else {
                    continue;
                };
                for mref in group {
                    if let Some((pid, _, _)) = waiting.get(&mref) {
                        p.exit(*pid, ExitReason::Kill);
                    }
                }
            }
        }
    }
    errors.sort_by_key(|(pid, _)| *pid);
    errors
}
