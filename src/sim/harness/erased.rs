//! Targets with their types erased: what the CLI, campaigns and the corpus hold.

use super::{
    case_strategy, check_determinism, run_case, Case, CaseReport, Harness, HarnessReport, Target,
    MAX_STEPS,
};
use crate::sim::faults::Family;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::path::PathBuf;
use std::sync::Arc;

/// A target with its types erased, for the CLI and the corpus: every [`Target`] is one, in
/// an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use otpsim::sim::harness::AnyTarget;
/// let targets: Vec<Arc<dyn AnyTarget>> = vec![Arc::new(otpsim::sim::tree::Tree)];
/// assert_eq!(targets[0].name(), "tree");
/// ```
pub trait AnyTarget: Send + Sync {
    /// The target's name.
    fn name(&self) -> String;

    /// Generates the case of `seed`, runs it (checking determinism if `determinism`), and on a
    /// failure shrinks it and saves it in `corpus` (if given); a failure that is a known flaw
    /// of a modelled system ([`Violation::known`](crate::sim::invariants::Violation::known))
    /// only if `shrink_known(flaw)` says so (a campaign shrinks the first case of each).
    fn fuzz_seed(
        self: Arc<Self>,
        seed: u64,
        families: &[Family],
        determinism: bool,
        corpus: Option<PathBuf>,
        shrink_known: &dyn Fn(&str) -> bool,
    ) -> HarnessReport;

    /// Runs a case given as JSON (a corpus file's `case`); `Err` if it does not parse.
    fn replay(self: Arc<Self>, case: &serde_json::Value) -> Result<CaseReport, String>;

    /// The [trace hash](crate::trace::Trace::hash) of the case generated from `seed` with every fault
    /// family, run once (what `otpsim digest` folds).
    fn trace_hash(self: Arc<Self>, seed: u64) -> Result<u64, String>;
}

impl<T: Target> AnyTarget for T {
    fn name(&self) -> String {
        Target::name(self)
    }

    fn fuzz_seed(
        self: Arc<Self>,
        seed: u64,
        families: &[Family],
        determinism: bool,
        corpus: Option<PathBuf>,
        _: &dyn Fn(&str) -> bool,
    ) -> HarnessReport {
        let mut harness = Harness::of(self).families(families).corpus(corpus);
        harness.seed = seed;
        harness.determinism_every = u32::from(determinism);
        harness.run()
    }

    fn replay(self: Arc<Self>, case: &serde_json::Value) -> Result<CaseReport, String> {
        crate::sim::NotSimulated::check("a corpus replay").map_err(|e| e.to_string())?;
        let case: Case<T::Setup, T::Op> =
            serde_json::from_value(case.clone()).map_err(|e| format!("field `case`: {e}"))?;
        Ok(check_determinism(&self, &case))
    }

    fn trace_hash(self: Arc<Self>, seed: u64) -> Result<u64, String> {
        crate::sim::NotSimulated::check("a digest").map_err(|e| e.to_string())?;
        let strategy = case_strategy(&self, MAX_STEPS, &Family::ALL);
        let mut runner = generator(Config::default(), seed);
        let case = strategy.new_tree(&mut runner).map_err(|e| e.to_string())?;
        Ok(run_case(&self, &case.current()).trace.hash())
    }
}

/// The case generator of seed `seed`.
pub(crate) fn generator(config: Config, seed: u64) -> TestRunner {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    )
}
