//! The `stop` fault family: graceful restarts by an operator (`terminate_child` then
//! `restart_child`, or `stop` of a permanent server) check a contract about stops without a
//! workload that stops anything.

use crate::planted::buffer::Buffered;
use otpsim::sim::harness::Harness;

/// A buffer that flushes in `terminate` keeps everything through graceful restarts.
#[test]
fn a_buffer_that_flushes_when_it_terminates_passes() {
    Harness::new(Buffered { traps: true })
        .cases(1000)
        .corpus(None)
        .check();
}

/// A buffer that does not trap exits never runs `terminate` when its supervisor stops it:
/// the `stop` family finds the loss by itself and shrinks it to an item and a restart; the
/// other families, which only crash and kill (the contract does not cover), never do.
#[test]
fn a_buffer_that_does_not_trap_exits_loses_items_to_graceful_stops() {
    let report = Harness::new(Buffered { traps: false })
        .cases(1000)
        .corpus(None)
        .run();
    let failure = report.failure.expect("the stop family finds the loss");
    assert_eq!(
        failure.violation.invariant.to_string(),
        "app:stops_lose_nothing"
    );
    let steps = failure.case["steps"].as_array().expect("steps");
    assert!(steps.len() <= 3, "not shrunk: {failure}");
    let without_stops = Harness::new(Buffered { traps: false })
        .families(&crate::common::NO_STOPS)
        .cases(1000)
        .corpus(None)
        .run();
    assert!(without_stops.failure.is_none(), "found without stops");
}
