//! Stopping children (SPEC §G): one at a time as static supervisors do, or all at once as
//! simple_one_for_one and DynamicSupervisor do.

use super::spec::{Restart, Shutdown};
use crate::process::{ExitReason, Msg, Process};
use crate::rt::Duration;
use crate::term::{Pid, Ref};
use std::collections::BTreeMap;

/// OTP's `shutdown/1` (SPEC §G 44-46, 50): monitor, signal, wait for `DOWN` (killing after
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
            match p
                .receive_timeout(is_down(mref), Duration::from_millis(ms))
                .await
            {
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
    match p.receive_timeout_opt(is_down(mref), timeout).await {
        Some(Msg::Down { reason, .. }) => reason,
        _ => ExitReason::Killed,
    }
}

/// SPEC item 47: which exit reasons a shutdown accepts without a `shutdown_error` report.
pub(super) fn shutdown_accepted(reason: &ExitReason, how: Shutdown, restart: Restart) -> bool {
    let lenient = restart != Restart::Permanent;
    match reason {
        ExitReason::Killed => how == Shutdown::BrutalKill,
        ExitReason::Shutdown => how != Shutdown::BrutalKill || lenient,
        ExitReason::ShutdownWith(_) | ExitReason::Normal => lenient,
        _ => false,
    }
}

/// Stops `children` (pid, shutdown, restart type) all at once (OTP's
/// `terminate_dynamic_children`, Elixir's `terminate_children`): monitor and unlink each; one
/// whose `EXIT` is already queued is not signalled and its reason is judged; the others get
/// `kill` or `shutdown` in the given order; one timer per distinct timeout kills the
/// survivors of that group. Returns the children whose reason `accepted` rejects.
pub(super) async fn stop_in_parallel(
    children: Vec<(Pid, Shutdown, Restart)>,
    accepted: impl Fn(&ExitReason, Shutdown, Restart) -> bool,
    p: &Process,
) -> Vec<(Pid, ExitReason)> {
    let mut errors = Vec::new();
    let mut waiting: BTreeMap<Ref, (Pid, Shutdown, Restart)> = BTreeMap::new();
    let mut order = Vec::new();
    for (pid, how, restart) in children {
        let mref = p.monitor(pid);
        match p.unlink_taking_exit(pid) {
            Some(reason) => {
                wait_down(mref, None, p).await;
                if !(reason.is_normal() && restart != Restart::Permanent) {
                    errors.push((pid, reason));
                }
            }
            None => {
                waiting.insert(mref, (pid, how, restart));
                order.push(mref);
            }
        }
    }
    // Timers by timeout: (deadline, the children it kills).
    let mut timers: BTreeMap<Duration, Vec<Ref>> = BTreeMap::new();
    for mref in &order {
        let (pid, how, _) = waiting[mref];
        let signal = match how {
            Shutdown::BrutalKill => ExitReason::Kill,
            _ => ExitReason::Shutdown,
        };
        p.exit(pid, signal);
        if let Shutdown::Timeout(ms) = how {
            timers
                .entry(Duration::from_millis(ms))
                .or_default()
                .push(*mref);
        }
    }
    let start = p.now();
    while !waiting.is_empty() {
        let next = timers.keys().next().copied();
        let left = next.map(|t| (start + t).saturating_duration_since(p.now()));
        let down = p
            .receive_timeout_opt(
                |m| matches!(m, Msg::Down { mref, .. } if waiting.contains_key(mref)),
                left,
            )
            .await;
        match down {
            Some(Msg::Down { mref, reason, .. }) => {
                if let Some((pid, how, restart)) = waiting.remove(&mref) {
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
    errors
}
