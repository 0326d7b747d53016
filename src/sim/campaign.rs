//! Campaigns: many seeded cases on every core, with swarm-selected faults and a sampled
//! determinism check.
//!
//! The targets are the random process graph ([`GraphCase`], by seed) and harness targets
//! (such as [`otpsim::targets`](crate::targets): generated supervision trees and the example
//! systems), whose failures are shrunk and saved in `corpus/`.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::sim::campaign::{Campaign, run};
//! let c = Campaign { seeds: Some(20), threads: 2, ..Campaign::default() };
//! let report = run(&c, &otpsim::targets(), |_| {}).unwrap();
//! assert_eq!(report.cases, 20);
//! assert!(report.failures.is_empty());
//! # }
//! ```

// A campaign is harness code running outside the simulations: it reads the real clock for its
// time budget and rate, and runs one worker thread per core.
#![allow(clippy::disallowed_methods)]

use super::graph::GraphCase;
use super::harness::{AnyTarget, Family, Tally};
use super::Sim;
use crate::rt::{Duration, SeededConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// What to run.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// Stop after this many cases (of this shard).
    pub seeds: Option<u64>,
    /// Stop after this much wall-clock time.
    pub time_budget: Option<std::time::Duration>,
    /// Worker threads.
    pub threads: usize,
    /// The first seed.
    pub first_seed: u64,
    /// `(index, count)`: run only the seeds `s` with `s % count == index`.
    pub shard: (u64, u64),
    /// Replay every n-th case for the determinism check (every failing case is replayed too).
    pub determinism_every: u64,
    /// The targets to fuzz, by name (`graph`, or one of the harness targets given to
    /// [`run`]); cases go round-robin over them by seed. Empty: all of them.
    pub targets: Vec<String>,
    /// The fault families of the harness targets.
    pub families: Vec<Family>,
    /// Where minimised failures of harness targets are saved (`None`: not saved).
    pub corpus: Option<std::path::PathBuf>,
}

impl Default for Campaign {
    /// 60 seconds on every core, seeds from 0, every 100th case replayed.
    fn default() -> Self {
        Campaign {
            seeds: None,
            time_budget: Some(std::time::Duration::from_secs(60)),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            first_seed: 0,
            shard: (0, 1),
            determinism_every: 100,
            targets: Vec::new(),
            families: Family::ALL.to_vec(),
            corpus: Some("corpus".into()),
        }
    }
}

/// A failing case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Its seed (`otpsim run --seed N` shows a graph case's timeline).
    pub seed: u64,
    /// The target it belongs to.
    pub target: String,
    /// The invariant it broke (`run` for a graph case's failed run).
    pub invariant: String,
    /// What went wrong.
    pub what: String,
    /// The known flaw of a modelled system it is an instance of (an expected failure), if
    /// it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known: Option<String>,
    /// Which case of the campaign it was (from 1, in seed order).
    pub found_at_case: u64,
    /// Wall-clock time from the campaign's start to the failure (before shrinking).
    #[serde(serialize_with = "seconds")]
    pub found_after: std::time::Duration,
}

/// Progress so far, reported about four times a second.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Cases finished.
    pub cases: u64,
    /// Failures found.
    pub failures: u64,
    /// Wall-clock time since the start.
    pub elapsed: std::time::Duration,
}

/// What a campaign did with one target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TargetSummary {
    /// Cases run.
    pub cases: u64,
    /// Failing cases, known flaws of a modelled system left out.
    pub failures: u64,
    /// Cases that failed with a known flaw of a modelled system.
    pub expected: u64,
    /// Faults injected and invariant checks made.
    #[serde(flatten)]
    pub tally: Tally,
}

/// The outcome of a campaign (`otpsim fuzz --json` writes it).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The first seed (a campaign with the same first seed, shard and count runs the same
    /// cases).
    pub first_seed: u64,
    /// Cases run.
    pub cases: u64,
    /// Cases replayed for the determinism check.
    pub replayed: u64,
    /// Per target.
    pub targets: BTreeMap<String, TargetSummary>,
    /// Failing cases, by seed: the regressions.
    pub failures: Vec<Failure>,
    /// Cases that failed with a known flaw of a modelled system (Swarm's): expected, and
    /// reported apart. The first [`KEPT_PER_FLAW`] cases (by seed) of each flaw, in seed
    /// order; a long campaign meets a flaw hundreds of thousands of times, and keeping
    /// every case would grow without bound. [`expected_counts`](Report::expected_counts)
    /// counts them all.
    pub expected: Vec<Failure>,
    /// How many cases showed each known flaw, by target, then flaw.
    pub expected_counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Wall-clock time taken.
    #[serde(serialize_with = "seconds")]
    pub elapsed: std::time::Duration,
}

impl Report {
    /// The faults and checks of every target together.
    pub fn total(&self) -> Tally {
        let mut total = Tally::default();
        for t in self.targets.values() {
            total.add(&t.tally);
        }
        total
    }

    /// The distinct failures: (target, invariant) with how many cases broke it, and the
    /// first of them.
    pub fn distinct_failures(&self) -> Vec<(&str, &str, u64, &Failure)> {
        distinct(&self.failures)
    }

    /// The distinct expected failures: (target, known flaw) with how many cases showed it,
    /// and the first of them.
    pub fn distinct_expected(&self) -> Vec<(&str, &str, u64, &Failure)> {
        let mut distinct = distinct(&self.expected);
        for (target, flaw, count, _) in &mut distinct {
            let counted = self.expected_counts.get(*target).and_then(|t| t.get(*flaw));
            *count = counted.copied().unwrap_or(*count);
        }
        distinct
    }

    /// How many cases showed a known flaw, all flaws together.
    pub fn expected_cases(&self) -> u64 {
        self.expected_counts.values().flat_map(|t| t.values()).sum()
    }
}

/// `failures` grouped by target and known flaw (or invariant, for a regression): how many
/// of each, and the first.
fn distinct(failures: &[Failure]) -> Vec<(&str, &str, u64, &Failure)> {
    let mut distinct: Vec<(&str, &str, u64, &Failure)> = Vec::new();
    for f in failures {
        let kind = f.known.as_deref().unwrap_or(&f.invariant);
        match distinct
            .iter_mut()
            .find(|(t, k, _, _)| *t == f.target && *k == kind)
        {
            Some(d) => d.2 += 1,
            None => distinct.push((&f.target, kind, 1, f)),
        }
    }
    distinct
}

fn seconds<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The fault families of a case, switched on at random per case (swarm testing): some cases
/// see only delays, some only crashes, some nothing.
pub fn swarm_faults(seed: u64) -> SeededConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5357_4152_4d00);
    let mut on = || rng.next_u64() % 2 == 0;
    SeededConfig {
        delay_probability: if on() { 0.3 } else { 0.0 },
        max_delay: Duration::from_millis(20),
        crash_probability: if on() { 0.02 } else { 0.0 },
        max_timer_jitter: if on() {
            Duration::from_millis(5)
        } else {
            Duration::ZERO
        },
    }
}

/// Runs one case of the built-in generator; `Err` describes the failure. The tally counts
/// its injected faults and one check: the run's outcome (the root exits, no livelock).
pub fn run_case(seed: u64, check_determinism: bool) -> (Tally, Result<(), String>) {
    let case = GraphCase::generate(seed);
    let sim = Sim::new(seed).with_faults(swarm_faults(seed));
    let report = if check_determinism {
        match sim.check_determinism(case.root()) {
            Ok(report) => report,
            Err(e) => return (Tally::default(), Err(e.to_string())),
        }
    } else {
        sim.run(case.root())
    };
    let tally = Tally::of(&report.trace, 1);
    let outcome = match report.failure() {
        Some(f) if !check_determinism => {
            // A failure must reproduce; if it does not, that is the more important finding.
            match sim.check_determinism(case.root()) {
                Ok(_) => Err(f),
                Err(e) => Err(e.to_string()),
            }
        }
        Some(f) => Err(f),
        None => Ok(()),
    };
    (tally, outcome)
}

/// The names a campaign over `targets` accepts: `graph` and the targets' own
/// (`cluster-graph` among [`crate::targets`]).
pub fn target_names(targets: &[Arc<dyn AnyTarget>]) -> Vec<String> {
    let mut names = vec!["graph".to_string()];
    names.extend(targets.iter().map(|t| t.name()));
    names
}

/// The `requested` target names, checked against those of `harness` (all of them if none
/// is requested).
fn resolve(requested: &[String], harness: &[Arc<dyn AnyTarget>]) -> Result<Vec<String>, String> {
    let known = target_names(harness);
    if let Some(bad) = requested.iter().find(|t| !known.contains(t)) {
        return Err(format!(
            "unknown target `{bad}` (known: {})",
            known.join(", ")
        ));
    }
    Ok(if requested.is_empty() {
        known
    } else {
        requested.to_vec()
    })
}

/// The digest of one target's cases: see [`digest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// The target's name.
    pub target: String,
    /// How many cases it folds.
    pub cases: u64,
    /// The traces' hashes (times included), folded in seed order.
    pub digest: u64,
}

/// Runs the cases of seeds `seeds` of every `requested` target (all of them if none) once,
/// with swarm faults, on `threads` threads, and folds their trace hashes, per target.
///
/// Two builds that give the same digests ran every one of those cases identically, to the
/// microsecond: compare them before and after a change that should move no trace (an
/// optimisation, a refactor, a toolchain or dependency upgrade). Unknown target names are
/// an error.
///
/// ```
/// # #[cfg(madsim)] {
/// use otpsim::sim::campaign::digest;
/// let graph = ["graph".to_string()];
/// let twice = [(); 2].map(|()| digest(&graph, &otpsim::targets(), 0..20, 2).unwrap());
/// assert_eq!(twice[0], twice[1]);
/// assert_eq!((twice[0][0].target.as_str(), twice[0][0].cases), ("graph", 20));
/// assert_eq!(digest(&graph, &otpsim::targets(), 0..20, 1).unwrap(), twice[0]);
/// assert_ne!(digest(&graph, &otpsim::targets(), 1..21, 2).unwrap(), twice[0]);
/// # }
/// ```
pub fn digest(
    requested: &[String],
    harness: &[Arc<dyn AnyTarget>],
    seeds: std::ops::Range<u64>,
    threads: usize,
) -> Result<Vec<Digest>, String> {
    super::NotSimulated::check("a digest").map_err(|e| e.to_string())?;
    let mut digests = Vec::new();
    for name in resolve(requested, harness)? {
        let target = harness.iter().find(|t| t.name() == name);
        let hash = |seed: u64| -> Result<u64, String> {
            match target {
                Some(target) => target.clone().trace_hash(seed),
                None => {
                    let sim = Sim::new(seed).with_faults(swarm_faults(seed));
                    Ok(sim.run(GraphCase::generate(seed).root()).trace.hash())
                }
            }
        };
        let hashes = in_parallel(seeds.clone(), threads, hash)?;
        let mut folded = crate::hash::Fnv1a::default();
        for h in &hashes {
            folded.write_bytes(&h.to_le_bytes());
        }
        digests.push(Digest {
            target: name,
            cases: hashes.len() as u64,
            digest: folded.value(),
        });
    }
    Ok(digests)
}

/// What a harness target's failure says, with where it was saved.
fn describe(f: &super::harness::Failure) -> String {
    let saved = f
        .saved
        .as_ref()
        .map(|p| format!("\n  saved: {} (otpsim replay {0})", p.display()))
        .unwrap_or_default();
    format!("{}{saved}", f.violation)
}

/// How many of a known flaw's first cases (by seed) a campaign keeps, and shrinks when it is asked
/// for its target by name.
pub const KEPT_PER_FLAW: usize = 4;

/// Shrinks the first cases (by seed) of each known flaw of a target the campaign asked for
/// by name, and saves the smallest. Elsewhere a known flaw is expected, and shrinking it would
/// take time from the search for regressions; done after the campaign, the choice of cases
/// does not depend on which thread got there first. A flaw often has several routes (Swarm's
/// lost handoff takes two faults with a worker Swarm started, three under its dynamic
/// supervisor), and shrinking keeps to the route of the case it starts from: a few first
/// cases give the shorter route its chance.
fn shrink_first_known(
    campaign: &Campaign,
    harness: &[Arc<dyn AnyTarget>],
    expected: &mut [Failure],
) {
    let mut firsts: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, f) in expected.iter().enumerate() {
        if campaign.targets.contains(&f.target) {
            let seeds = firsts
                .entry((f.target.clone(), f.known.clone()))
                .or_default();
            if seeds.len() < KEPT_PER_FLAW {
                seeds.push(i);
            }
        }
    }
    for ((name, _), cases) in firsts {
        let Some(target) = harness.iter().find(|t| t.name() == name) else {
            continue;
        };
        let shrink = |seed: u64, corpus: Option<std::path::PathBuf>| {
            let families = &campaign.families;
            target
                .clone()
                .fuzz_seed(seed, families, false, corpus, &|_| true)
                .failure
        };
        let smallest = cases
            .iter()
            .filter_map(|&i| shrink(expected[i].seed, None).map(|f| (size(&f.case), i)))
            .min();
        let Some((_, i)) = smallest else {
            continue;
        };
        // Shrinking is deterministic: the same case again, saved this time.
        if let Some(shrunk) = shrink(expected[i].seed, campaign.corpus.clone()) {
            let first = cases[0];
            let mut what = describe(&shrunk);
            if i != first {
                let (n, seed) = (cases.len(), expected[i].seed);
                what.push_str(&format!(
                    "\n  (the smallest of its first {n} cases: seed {seed})"
                ));
            }
            expected[first].what = what;
        }
    }
}

/// How big a shrunk case is: its steps (a cluster case's faults and operations), then its
/// length as JSON.
fn size(case: &serde_json::Value) -> (usize, usize) {
    let steps = case.get("steps").and_then(|s| s.as_array()).map(Vec::len);
    (steps.unwrap_or(usize::MAX), case.to_string().len())
}

/// `f` of every seed, in seed order, computed on `threads` threads; the first error, if any.
fn in_parallel(
    seeds: std::ops::Range<u64>,
    threads: usize,
    f: impl Fn(u64) -> Result<u64, String> + Sync,
) -> Result<Vec<u64>, String> {
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                let out = f(seed);
                results.lock().unwrap().push((seed, out));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(seed, _)| *seed);
    results.into_iter().map(|(_, out)| out).collect()
}

/// Runs a campaign over the random process graph and `harness` targets, calling `progress`
/// from time to time. Unknown target names are an error.
pub fn run(
    campaign: &Campaign,
    harness: &[Arc<dyn AnyTarget>],
    progress: impl Fn(Progress) + Sync,
) -> Result<Report, String> {
    super::NotSimulated::check("a campaign").map_err(|e| e.to_string())?;
    let names = resolve(&campaign.targets, harness)?;
    let start = Instant::now();
    // One case: its target, its tally, and its failure (invariant, what, known flaw) if any.
    type Found = (String, String, Option<String>);
    let run_one = |seed: u64, replay: bool| -> (&str, Tally, Option<Found>) {
        let name = &names[(seed % names.len() as u64) as usize];
        match harness.iter().find(|t| t.name() == *name) {
            None => {
                let (tally, outcome) = run_case(seed, replay);
                (
                    name,
                    tally,
                    outcome.err().map(|what| ("run".into(), what, None)),
                )
            }
            Some(target) => {
                // A known flaw is not shrunk here (see `shrink_first_known`).
                let report = target.clone().fuzz_seed(
                    seed,
                    &campaign.families,
                    replay,
                    campaign.corpus.clone(),
                    &|_| false,
                );
                let failure = report.failure.map(|f| {
                    (
                        f.violation.invariant.to_string(),
                        describe(&f),
                        f.violation.known.map(|k| k.to_string()),
                    )
                });
                (name, report.tally, failure)
            }
        }
    };
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let replayed = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    // Per (target, flaw): how many cases, and the first KEPT_PER_FLAW by seed.
    type ByFlaw = BTreeMap<(String, String), (u64, Vec<Failure>)>;
    let expected: Mutex<ByFlaw> = Mutex::default();
    let targets: Mutex<BTreeMap<String, TargetSummary>> = Mutex::default();
    let (shard, shards) = campaign.shard;
    let last_report = Mutex::new(start);
    let worker = || loop {
        let out_of_time = campaign.time_budget.is_some_and(|b| start.elapsed() >= b);
        let index = next.fetch_add(1, Ordering::Relaxed);
        if out_of_time || campaign.seeds.is_some_and(|n| index >= n) {
            return;
        }
        let seed = campaign.first_seed + index * shards + shard;
        let replay =
            campaign.determinism_every > 0 && index.is_multiple_of(campaign.determinism_every);
        if replay {
            replayed.fetch_add(1, Ordering::Relaxed);
        }
        let (target, tally, failure) = run_one(seed, replay);
        {
            let mut targets = targets.lock().unwrap_or_else(PoisonError::into_inner);
            let summary = targets.entry(target.to_string()).or_default();
            summary.cases += 1;
            match &failure {
                Some((_, _, Some(_))) => summary.expected += 1,
                Some(_) => summary.failures += 1,
                None => {}
            }
            summary.tally.add(&tally);
        }
        if let Some((invariant, what, known)) = failure {
            let failure = Failure {
                seed,
                target: target.to_string(),
                invariant,
                what,
                known: known.clone(),
                found_at_case: index + 1,
                found_after: start.elapsed(),
            };
            match known {
                Some(flaw) => {
                    let mut expected = expected.lock().unwrap_or_else(PoisonError::into_inner);
                    let (count, kept) = expected.entry((target.to_string(), flaw)).or_default();
                    *count += 1;
                    kept.push(failure);
                    if kept.len() > KEPT_PER_FLAW {
                        kept.sort_by_key(|f| f.seed);
                        kept.truncate(KEPT_PER_FLAW);
                    }
                }
                None => failures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(failure),
            }
        }
        let cases = done.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = last_report.lock().unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() >= std::time::Duration::from_millis(250) {
            *last = Instant::now();
            progress(Progress {
                cases,
                failures: failures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len() as u64,
                elapsed: start.elapsed(),
            });
        }
    };
    std::thread::scope(|s| {
        for _ in 0..campaign.threads.max(1) {
            s.spawn(worker);
        }
    });
    let mut failures = failures
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    failures.sort_by_key(|f| f.seed);
    let by_flaw = expected
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let mut expected_counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut expected = Vec::new();
    for ((target, flaw), (count, kept)) in by_flaw {
        expected_counts
            .entry(target)
            .or_default()
            .insert(flaw, count);
        expected.extend(kept);
    }
    expected.sort_by_key(|f| f.seed);
    shrink_first_known(campaign, harness, &mut expected);
    Ok(Report {
        first_seed: campaign.first_seed,
        cases: done.into_inner(),
        replayed: replayed.into_inner(),
        targets: targets.into_inner().unwrap_or_else(PoisonError::into_inner),
        failures,
        expected,
        expected_counts,
        elapsed: start.elapsed(),
    })
}
