//! Helpers shared by the tests.

use otpsim::sim::{RunReport, Sim};
use otpsim::{ExitReason, Process};
use std::future::Future;

/// Runs `root` in a simulated run with seed 0 and fails the test, showing the timeline, unless
/// the root exited `normal` (a failed assertion inside the root is a panic, hence its exit
/// reason).
pub fn check<F, Fut>(root: F) -> RunReport
where
    F: FnOnce(Process) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let report = Sim::new(0).run(root);
    assert_normal(&report);
    report
}

/// Fails the test unless the run ended with the root exiting `normal`.
pub fn assert_normal(report: &RunReport) {
    if report.root_exit != Some(ExitReason::Normal) || report.failure().is_some() {
        panic!(
            "root exited with {:?} ({:?})\n{}",
            report.root_exit,
            report.failure(),
            report.trace.timeline().join("\n")
        );
    }
}

/// A proptest runner with a fixed seed (the same cases on every run) and `PROPTEST_CASES`
/// (default `cases`) cases; failures are shrunk and reported by the test, not persisted.
#[cfg(madsim)]
pub fn seeded_runner(cases: u32) -> proptest::test_runner::TestRunner {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// A process body that waits for ever (it ends by an exit signal).
pub async fn wait_forever(_p: Process) {
    std::future::pending::<()>().await
}

/// Kills `pid` from `p` and waits until it is dead.
pub async fn kill(p: &Process, pid: otpsim::Pid) {
    let mref = p.monitor(pid);
    p.exit(pid, ExitReason::Kill);
    p.receive(|m| matches!(m, otpsim::Msg::Down { mref: r, .. } if *r == mref))
        .await;
}

/// Whether the trace has a line equal to `line`.
pub fn has_line(report: &RunReport, line: &str) -> bool {
    report.trace.lines().iter().any(|l| l == line)
}

/// The fault families other than graceful stops: for a planted bug of another shape, which a
/// graceful restart would find broken in another way first.
#[cfg(madsim)]
pub const NO_STOPS: [otpsim::sim::harness::Family; 5] = {
    use otpsim::sim::harness::Family;
    [
        Family::Crash,
        Family::Kill,
        Family::Signal,
        Family::Storm,
        Family::Delay,
    ]
};

/// Starts a child of the simple_one_for_one supervisor `sup` with no extra arguments; its
/// pid.
pub async fn start_simple(p: &Process, sup: otpsim::supervisor::SupervisorRef) -> otpsim::Pid {
    let started = sup.start_child_args(p, vec![]).await;
    started.expect("the child starts").pid().expect("a pid")
}

/// A server whose calls echo a term (the tests of `dist::tcp`).
pub struct Echo;

impl otpsim::server::GenServer for Echo {
    type Arg = ();
    type Call = otpsim::Term;
    type Reply = otpsim::Term;
    type Cast = ();
    type Cont = ();

    async fn init(_: (), _: &Process) -> otpsim::server::Init<Self> {
        otpsim::server::Init::Ok(Echo)
    }

    async fn handle_call(
        &mut self,
        request: otpsim::Term,
        _: otpsim::server::From<otpsim::Term>,
        _: &Process,
    ) -> otpsim::server::CallReply<Self> {
        otpsim::server::CallReply::Reply(request)
    }
}

/// The Swarm cases kept in `corpus/` (`swarm-*.json`), one per known flaw.
#[cfg(madsim)]
pub fn swarm_corpus_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    otpsim::sim::corpus::files(&dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("swarm-"))
        })
        .collect()
}
