//! A run is a pure function of its case: the same seed gives the same trace, event for event,
//! on the same thread and on a fresh one; and the check that proves it catches the usual
//! sources of non-determinism and names the first differing event.

use otpsim::process::Halt;
use otpsim::sim::Sim;

/// Cases for the graph test: `OTPSIM_DETERMINISM_CASES` (default 1000).
#[cfg(madsim)]
fn case_count() -> u64 {
    std::env::var("OTPSIM_DETERMINISM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[cfg(madsim)]
#[test]
fn random_process_graphs_replay_identically_on_the_same_and_a_fresh_thread() {
    use otpsim::rt::{Duration, SeededConfig};
    use otpsim::sim::graph::GraphCase;
    // Half of the cases also get delayed signals, crashes at message receipt and timer jitter.
    let faults = SeededConfig {
        delay_probability: 0.3,
        max_delay: Duration::from_millis(20),
        crash_probability: 0.02,
        max_timer_jitter: Duration::from_millis(3),
    };
    let mut events = 0;
    for seed in 0..case_count() {
        let case = GraphCase::generate(seed);
        let sim = match seed % 2 {
            0 => Sim::new(seed),
            _ => Sim::new(seed).with_faults(faults),
        };
        let report = sim
            .check_determinism(case.root())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.failure(), None, "seed {seed}");
        events += report.trace.len();
    }
    assert!(
        events > 10 * case_count() as usize,
        "the graphs did something"
    );
}

// Natively the clock is real, so no two runs are alike: determinism is a simulation property.
#[cfg(madsim)]
#[test]
fn a_std_hashmap_iterated_into_the_trace_is_caught_and_the_divergence_named() {
    let err = Sim::new(5)
        .check_determinism(|p| async move {
            // std's RandomState is keyed per thread and per map: iteration order changes
            #[allow(clippy::disallowed_types)] // on purpose: this is the bug to catch
            let map: std::collections::HashMap<u32, ()> = (0..32).map(|k| (k, ())).collect();
            for k in map.keys() {
                p.note(format!("key {k}"));
            }
        })
        .expect_err("iterating a std HashMap must be caught");
    assert_eq!(err.rerun, "same-thread");
    let left = err.divergence.left.as_deref().unwrap_or_default();
    assert!(left.contains("note <0.1> key "), "{err}");
    assert!(err.to_string().contains("traces diverge at event"), "{err}");
}

#[test]
fn a_livelocked_process_is_reported_by_name_within_the_step_budget() {
    let report = Sim::new(0).with_step_budget(20_000).run(|p| async move {
        let spinner = p.spawn(|s| async move {
            while !s.is_exiting() {
                otpsim::rt::yield_now().await;
            }
        });
        otpsim::sim::label(p.node(), spinner, "root/spinner", false);
        p.recv().await;
    });
    match &report.halt {
        Some(Halt::StepBudget { name, steps, .. }) => {
            assert_eq!(name, "root/spinner");
            assert!(*steps > 19_000);
        }
        other => panic!("expected a step-budget halt, got {other:?}"),
    }
    assert!(report.failure().unwrap().contains("root/spinner"));
    assert_eq!(report.root_exit, None);
}
