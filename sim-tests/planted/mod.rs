//! The planted bugs: small systems, each with a flaw of a shape users write and its fixed
//! twin, that the harness must find and shrink. The tests (`sim-tests/harness.rs`,
//! `sim-tests/stops.rs`) check each on one generator seed; the hunt benchmark
//! (`benches/hunt.rs`, `benches/run.sh hunt`) measures how soon each is found over many.
//!
//! [`BUGS`] lists them with the campaign that hunts each: the families its tests use (a
//! planted system that another family breaks in another way first keeps to the families of
//! its flaw) and every other default of the harness.

pub mod buffer;
pub mod cache;
pub mod cluster;
pub mod dispatch;
pub mod kv;
pub mod named;
pub mod names;

use otpsim::sim::harness::{Family, Harness, HarnessReport, Target};
use otpsim::{ExitReason, Process};

/// A process body that takes messages for ever (it ends by an exit signal).
pub async fn idle(q: Process) -> ExitReason {
    loop {
        q.recv().await;
    }
}

/// The targets `corpus/` files name: the built-in ones and the planted kv registries.
pub fn corpus_targets() -> Vec<std::sync::Arc<dyn otpsim::sim::harness::AnyTarget>> {
    use kv::Kv;
    let mut targets = otpsim::targets();
    for kv in [
        Kv::default(),
        Kv {
            links_buckets: true,
            ..Kv::default()
        },
        Kv {
            permanent_buckets: true,
            ..Kv::default()
        },
        Kv {
            registry_first: true,
            ..Kv::default()
        },
    ] {
        targets.push(std::sync::Arc::new(kv));
    }
    targets
}

/// A planted bug and how it is hunted.
pub struct Bug {
    /// The buggy target's name.
    pub name: &'static str,
    /// The application invariants it breaks (the first is the one its tests expect; a flaw
    /// can show in more than one way).
    pub invariants: &'static [&'static str],
    /// The operations and faults its smallest failing case needs (waits aside).
    pub needs_steps: usize,
    /// A campaign of `cases` cases from generator seed `seed`, without a corpus.
    pub hunt: fn(seed: u64, cases: u32) -> HarnessReport,
}

/// Every fault family but graceful stops (see [`BUGS`]).
pub const NO_STOPS: [Family; 5] = [
    Family::Crash,
    Family::Kill,
    Family::Signal,
    Family::Storm,
    Family::Delay,
];

fn campaign<T: Target>(target: T, families: &[Family], seed: u64, cases: u32) -> HarnessReport {
    Harness::new(target)
        .families(families)
        .seed(seed)
        .cases(cases)
        .corpus(None)
        .run()
}

/// Every planted bug.
pub const BUGS: [Bug; 8] = [
    Bug {
        name: "kv-linked (a)",
        invariants: &["registry_survives_bucket_crashes", "no_unknown_buckets"],
        needs_steps: 2,
        hunt: |seed, cases| {
            let kv = kv::Kv {
                links_buckets: true,
                ..kv::Kv::default()
            };
            campaign(kv, &[Family::Crash, Family::Delay], seed, cases)
        },
    },
    Bug {
        name: "kv-permanent-buckets (b)",
        invariants: &["no_unknown_buckets", "registry_survives_bucket_crashes"],
        needs_steps: 2,
        hunt: |seed, cases| {
            let kv = kv::Kv {
                permanent_buckets: true,
                ..kv::Kv::default()
            };
            campaign(kv, &[Family::Crash, Family::Kill], seed, cases)
        },
    },
    Bug {
        name: "kv-registry-first (c)",
        invariants: &["create_works_at_rest"],
        needs_steps: 2,
        hunt: |seed, cases| {
            let kv = kv::Kv {
                registry_first: true,
                ..kv::Kv::default()
            };
            campaign(kv, &NO_STOPS, seed, cases)
        },
    },
    Bug {
        name: "cache-trusts-lookup (d)",
        invariants: &["puts_reach_a_live_store"],
        needs_steps: 3,
        hunt: |seed, cases| {
            let cache = cache::Cache {
                trusts_lookup: true,
            };
            campaign(cache, &Family::ALL, seed, cases)
        },
    },
    Bug {
        name: "named-racy (e)",
        invariants: &["name_survives_a_crash"],
        needs_steps: 1,
        hunt: |seed, cases| {
            let named = named::Named {
                check_then_register: true,
            };
            campaign(named, &[Family::Crash, Family::Delay], seed, cases)
        },
    },
    Bug {
        name: "buffer-not-trapping",
        invariants: &["stops_lose_nothing"],
        needs_steps: 2,
        hunt: |seed, cases| {
            let buffer = buffer::Buffered { traps: false };
            campaign(buffer, &Family::ALL, seed, cases)
        },
    },
    Bug {
        name: "names-forget-demonitor",
        invariants: &["live_registrations_hold"],
        needs_steps: 4,
        hunt: |seed, cases| {
            let names = names::Names {
                forgets_demonitor: true,
            };
            campaign(names, &Family::ALL, seed, cases)
        },
    },
    Bug {
        name: "dispatch-acks-casts",
        invariants: &["acked_jobs_are_done"],
        needs_steps: 2,
        hunt: |seed, cases| {
            let dispatch = dispatch::Dispatch { acks_casts: true };
            campaign(dispatch, &Family::ALL, seed, cases)
        },
    },
];
