//! The planted cluster bugs (`sim-tests/planted/cluster.rs`) under the cluster harness:
//! each found within 2,000 cases and shrunk to at most 3 steps; the fixed twins pass.
#![cfg(madsim)]
use crate::planted::cluster::{Books, Singleton, StaleCache};
use otpsim::sim::cluster_harness::{ClusterHarness, ClusterHarnessReport};

fn found(report: &ClusterHarnessReport, name: &str) {
    let failure = report.failure.as_ref().unwrap_or_else(|| {
        panic!("{name}: not found in {} cases", report.cases);
    });
    println!(
        "{name}: found at case {} (seed {}), shrunk to {:?}: {}",
        failure.found_at_case, failure.seed, failure.case, failure.message
    );
    assert!(
        failure.found_at_case <= 2000,
        "{name}: found at {}",
        failure.found_at_case
    );
    assert!(
        failure.case.steps.len() <= 3,
        "{name}: shrunk to {} steps: {:?}",
        failure.case.steps.len(),
        failure.case
    );
}

/// Issue 18, planted bug (a): two copies of a singleton after a partition heals.
#[test]
fn a_singleton_that_fails_over_on_noconnection_is_found_and_shrunk() {
    let report = ClusterHarness::new(Singleton { buggy: true })
        .cases(2000)
        .run();
    found(&report, "singleton");
    let message = &report.failure.as_ref().unwrap().message;
    assert!(message.starts_with("2 instances"), "{message}");
}

/// Issue 18, planted bug (b): requests lost to a remote pid of an old incarnation.
#[test]
fn a_cache_of_a_remote_pid_across_a_restart_is_found_and_shrunk() {
    let report = ClusterHarness::new(StaleCache { buggy: true })
        .cases(2000)
        .run();
    found(&report, "stale-cache");
    let message = &report.failure.as_ref().unwrap().message;
    assert!(message.starts_with("requests lost"), "{message}");
}

/// Issue 18, planted bug (c): `nodedown` taken as ordered after the node's last message.
#[test]
fn books_closed_at_nodedown_are_found_and_shrunk() {
    let report = ClusterHarness::new(Books { buggy: true }).cases(2000).run();
    found(&report, "books");
    let message = &report.failure.as_ref().unwrap().message;
    assert!(message.starts_with("items lost"), "{message}");
}

/// The same systems without their flaws pass (10,000 cases each in the closing check of
/// issue 18; `cargo test` runs 200).
#[test]
fn the_fixed_twins_pass() {
    for report in [
        ClusterHarness::new(Singleton { buggy: false })
            .cases(200)
            .run(),
        ClusterHarness::new(StaleCache { buggy: false })
            .cases(200)
            .run(),
        ClusterHarness::new(Books { buggy: false }).cases(200).run(),
    ] {
        assert_eq!(report.failure, None);
    }
}

/// The 10,000-case run of the fixed twins (`cargo test -- --ignored
/// the_fixed_twins_pass_10000`: about 5 minutes).
#[test]
#[ignore]
fn the_fixed_twins_pass_10000() {
    let a = ClusterHarness::new(Singleton { buggy: false })
        .cases(10_000)
        .run();
    assert_eq!(a.failure, None);
    let c = ClusterHarness::new(Books { buggy: false })
        .cases(10_000)
        .run();
    assert_eq!(c.failure, None);
    let b = ClusterHarness::new(StaleCache { buggy: false })
        .cases(10_000)
        .run();
    assert_eq!(b.failure, None);
}
