//! Why a run ended as it did: the causal chain from the injected faults to the broken
//! invariant, computed from the trace ([`Trace::chain`], [`Trace::effects`]), never written by
//! hand. `otpsim replay` prints it; the failure page draws it.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::{why, Sim};
//! use otpsim::trace::FaultKind;
//! use otpsim::ExitReason;
//! let report = Sim::new(0).run(|p| async move {
//!     let worker = p.spawn_link(|q| async move { q.recv().await; });
//!     p.trap_exit(true);
//!     otpsim::sim::crash(p.node(), worker, ExitReason::Kill, FaultKind::Kill);
//!     let _ = p.recv().await;
//! });
//! let lines = why::lines(&report.trace, None);
//! assert!(lines[0].contains("fault <0.2> kill"));
//! assert!(lines[1].contains("exit <0.2> reason=kill"), "{lines:?}");
//! assert!(lines[2].contains("signal <0.2> -> <0.1> reason=kill trapped"));
//! # }
//! ```

use super::invariants::Violation;
use crate::trace::{EventKind, SignalOutcome, SupEvent, Trace};

/// The events that explain the run, in trace order: for a violation that names its events,
/// their chain of causes back to the faults; otherwise (an application's invariant, or a run
/// that passed) what the faults led to, its decisive events only (exits, signals, `DOWN`s,
/// supervisors' decisions, names released).
pub fn steps(trace: &Trace, violation: Option<&Violation>) -> Vec<usize> {
    if let Some(v) = violation.filter(|v| !v.events.is_empty()) {
        return trace.chain(&v.events);
    }
    let faults: Vec<usize> = (0..trace.len())
        .filter(|&i| matches!(trace.events()[i].kind, EventKind::Fault { .. }))
        .collect();
    let effects = trace.effects(&faults);
    // A delay of a plain message leads to nothing the trace shows: it is left out.
    let causes = trace.causes();
    let mut delivered = vec![false; trace.len()];
    for &i in &effects {
        for &c in &causes[i] {
            delivered[c] = true;
        }
    }
    effects
        .into_iter()
        .filter(|&i| match &trace.events()[i].kind {
            EventKind::Fault { fault, .. } if fault.is_delay() => delivered[i],
            kind => decisive(kind),
        })
        .collect()
}

/// The [`steps`] as timeline lines, then the verdict.
pub fn lines(trace: &Trace, violation: Option<&Violation>) -> Vec<String> {
    let timeline = trace.timeline();
    let mut lines: Vec<String> = steps(trace, violation)
        .into_iter()
        .map(|i| timeline[i].clone())
        .collect();
    if let Some(v) = violation {
        lines.push(format!(
            "  => {} violated at {}: {}",
            v.invariant, v.subject, v.message
        ));
    }
    lines
}

/// Whether an event is a step of a story (not bookkeeping such as a spawn or a label).
fn decisive(kind: &EventKind) -> bool {
    match kind {
        EventKind::Fault { .. }
        | EventKind::Exit { .. }
        | EventKind::Down { .. }
        | EventKind::Report { .. }
        | EventKind::Unregister { .. } => true,
        EventKind::Signal { outcome, .. } => *outcome != SignalOutcome::Ignored,
        EventKind::RegistryEntry { added, .. } => !added,
        EventKind::Supervision { what, .. } => matches!(
            what,
            SupEvent::Exited { .. }
                | SupEvent::Restart { .. }
                | SupEvent::Started { .. }
                | SupEvent::Stopping
        ),
        _ => false,
    }
}
