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
use super::harness::{AnyTarget, Family};
use super::Sim;
use crate::rt::{Duration, SeededConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Its seed (`otpsim run --seed N` shows its timeline).
    pub seed: u64,
    /// What went wrong.
    pub what: String,
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

/// The outcome of a campaign.
#[derive(Clone, Debug)]
pub struct Report {
    /// Cases run.
    pub cases: u64,
    /// Cases replayed for the determinism check.
    pub replayed: u64,
    /// Failing cases, by seed.
    pub failures: Vec<Failure>,
    /// Wall-clock time taken.
    pub elapsed: std::time::Duration,
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

/// Runs one case of the built-in generator; `Err` describes the failure.
pub fn run_case(seed: u64, check_determinism: bool) -> Result<(), String> {
    let case = GraphCase::generate(seed);
    let sim = Sim::new(seed).with_faults(swarm_faults(seed));
    let report = if check_determinism {
        sim.check_determinism(case.root())
            .map_err(|e| e.to_string())?
    } else {
        sim.run(case.root())
    };
    match report.failure() {
        Some(f) if !check_determinism => {
            // A failure must reproduce; if it does not, that is the more important finding.
            sim.check_determinism(case.root())
                .map_err(|e| e.to_string())?;
            Err(f)
        }
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// The names a campaign over `targets` accepts: `graph` and the targets' own.
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
    let names = resolve(&campaign.targets, harness)?;
    let run_one = |seed: u64, replay: bool| -> Result<(), String> {
        let name = &names[(seed % names.len() as u64) as usize];
        match harness.iter().find(|t| t.name() == *name) {
            None => run_case(seed, replay),
            Some(target) => {
                match target.clone().fuzz_seed(
                    seed,
                    &campaign.families,
                    replay,
                    campaign.corpus.clone(),
                ) {
                    None => Ok(()),
                    Some(f) => Err(format!(
                        "target {name}: {}{}",
                        f.violation,
                        f.saved
                            .map(|p| format!("\n  saved: {} (otpsim replay {0})", p.display()))
                            .unwrap_or_default()
                    )),
                }
            }
        }
    };
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let replayed = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
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
        if let Err(what) = run_one(seed, replay) {
            failures.lock().unwrap().push(Failure { seed, what });
        }
        let cases = done.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = last_report.lock().unwrap();
        if last.elapsed() >= std::time::Duration::from_millis(250) {
            *last = Instant::now();
            progress(Progress {
                cases,
                failures: failures.lock().unwrap().len() as u64,
                elapsed: start.elapsed(),
            });
        }
    };
    std::thread::scope(|s| {
        for _ in 0..campaign.threads.max(1) {
            s.spawn(worker);
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.seed);
    Ok(Report {
        cases: done.into_inner(),
        replayed: replayed.into_inner(),
        failures,
        elapsed: start.elapsed(),
    })
}
