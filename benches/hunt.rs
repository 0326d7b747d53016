//! Time to bug: every planted bug of `sim-tests/planted/` hunted from 20 generator seeds
//! (`HUNT_SEEDS` changes the number) with up to 2,000 cases each, the way a user's
//! `cargo test` runs the harness. Prints, per bug, `RESULT<TAB>otpsim<TAB>hunt<TAB>
//! <bug>/<metric><TAB><value>` lines:
//!
//! - `found`: the share of seeds (%) that found it;
//! - `cases_median`, `cases_worst`: the case at which it was found (2,001 when it was not);
//! - `shrunk_seed0_3steps`: the share (%) of found failures shrunk to seed 0 with at most 3
//!   operations and faults (waits aside);
//! - `shrunk_seed0_needed`: the same with at most the steps the bug needs (its minimum, which
//!   is 4 for a bug whose shape is four steps in one order);
//! - `seconds_median`: wall time to the finding case.
//!
//! `cargo bench --bench hunt` (or `benches/run.sh hunt`) runs them all; `hunt names` only the
//! bugs whose name contains `names`; `HUNT_SHOW=1` prints each minimal case. It uses every
//! core.
#![allow(clippy::disallowed_methods)] // threads and wall time, outside the simulations

#[cfg(madsim)]
#[path = "../sim-tests/planted/mod.rs"]
#[allow(dead_code)]
mod planted;

#[cfg(madsim)]
fn main() {
    use std::sync::Mutex;
    const CASES: u32 = 2000;
    let seeds: u64 = std::env::var("HUNT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let show = std::env::var_os("HUNT_SHOW").is_some();
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let bugs: Vec<&planted::Bug> = planted::BUGS
        .iter()
        .filter(|b| only.is_empty() || only.iter().any(|o| b.name.contains(o.as_str())))
        .collect();
    type Outcome = Option<Found>;
    let jobs: Mutex<Vec<(usize, u64)>> = Mutex::new(
        (0..bugs.len())
            .flat_map(|b| (0..seeds).map(move |s| (b, s)))
            .rev()
            .collect(),
    );
    let outcomes: Mutex<Vec<Vec<Outcome>>> = Mutex::new(vec![Vec::new(); bugs.len()]);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let Some((b, seed)) = jobs.lock().unwrap().pop() else {
                    return;
                };
                let bug = bugs[b];
                let report = (bug.hunt)(seed, CASES);
                let expected = |f: &otpsim::sim::harness::Failure| {
                    let name = f.violation.invariant.to_string();
                    bug.invariants.iter().any(|i| name == format!("app:{i}"))
                };
                if let Some(other) = report.failure.as_ref().filter(|f| !expected(f)) {
                    eprintln!("{}\tseed {seed}\tfound another failure:\n{other}", bug.name);
                }
                let outcome = report.failure.filter(expected).map(|f| {
                    let steps = f.case["steps"].as_array().map_or(0, |steps| {
                        steps.iter().filter(|s| s.get("wait").is_none()).count()
                    });
                    let seed0 = f.case["seed"] == 0;
                    let held = f.case["schedule"].as_array().map_or(0, Vec::len);
                    eprintln!(
                        "{}\tseed {seed}\tcase {}\t{} step(s), {held} hold(s), seed0 {seed0}",
                        bug.name, f.found_at_case, steps
                    );
                    if show {
                        eprintln!("{}", f.case);
                    }
                    Found {
                        case: f.found_at_case,
                        seconds: f.found_after.as_secs_f64(),
                        seed0,
                        steps,
                    }
                });
                if outcome.is_none() {
                    eprintln!("{}\tseed {seed}\tnot found", bug.name);
                }
                outcomes.lock().unwrap()[b].push(outcome);
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    for (bug, outcomes) in bugs.iter().zip(outcomes) {
        let n = outcomes.len() as f64;
        let found: Vec<Found> = outcomes.iter().flatten().copied().collect();
        let mut cases: Vec<u64> = outcomes
            .iter()
            .map(|o| o.map_or(u64::from(CASES) + 1, |f| f.case))
            .collect();
        cases.sort_unstable();
        let mut seconds: Vec<f64> = found.iter().map(|f| f.seconds).collect();
        seconds.sort_by(f64::total_cmp);
        let share = |keep: &dyn Fn(&Found) -> bool| {
            100.0 * found.iter().filter(|f| keep(f)).count() as f64 / found.len().max(1) as f64
        };
        let result = |metric: &str, value: f64| {
            let digits = if metric.starts_with("seconds") { 3 } else { 1 };
            println!(
                "RESULT\totpsim\thunt\t{}/{metric}\t{value:.digits$}",
                bug.name
            );
        };
        result("found", 100.0 * found.len() as f64 / n);
        result(
            "cases_median",
            median(&cases.iter().map(|&c| c as f64).collect::<Vec<_>>()),
        );
        result("cases_worst", cases.last().copied().unwrap_or(0) as f64);
        result("shrunk_seed0_3steps", share(&|f| f.seed0 && f.steps <= 3));
        result(
            "shrunk_seed0_needed",
            share(&|f| f.seed0 && f.steps <= bug.needs_steps),
        );
        result("seconds_median", median(&seconds));
    }
}

/// A planted bug found by one seed's campaign.
#[cfg(madsim)]
#[derive(Clone, Copy)]
struct Found {
    /// The case that found it (from 1).
    case: u64,
    /// Wall time to that case.
    seconds: f64,
    /// The minimal case has seed 0.
    seed0: bool,
    /// Its operations and faults (waits aside).
    steps: usize,
}

/// The median of sorted values (0 for none).
#[cfg(madsim)]
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("the hunt benchmark needs the simulated build: `cargo bench --bench hunt`");
    std::process::exit(2);
}
