//! The example systems (`otpsim::systems`) under the harness: every fault family on, the
//! harness's invariants and each system's own checked on every case (issue 6). 2,000 cases
//! each; `OTPSIM_CASES` raises the count, `OTPSIM_SEED=random` varies the cases.

use otpsim::sim::harness::Harness;

/// kv: lookups never name a dead bucket (once the registry can have seen the death), no
/// bucket runs unnamed, buckets die with their registry, buckets keep what was put in them.
#[test]
fn kv_keeps_its_invariants_under_faults() {
    Harness::new(otpsim::systems::kv::KvTarget)
        .cases(2000)
        .corpus(None)
        .check();
}
