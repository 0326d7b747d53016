//! pipeline under the harness: the workload feeds items while the faults crash and kill
//! the stages and the supervisor.

use super::{transform, Pipeline, Store};
use crate::process::Process;
use crate::sim::harness::{Domain, Target, Workload};
use crate::sim::invariants::Violation;
use crate::term::Pid;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// The `pipeline` target.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipelineTarget;

/// One workload operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineOp {
    /// Feed these items, one after the other.
    Feed(Vec<u16>),
}

/// The output is exactly the transformed journal, item by item, as far as it goes: nothing
/// delivered twice, nothing skipped, nothing out of order. With `complete`, as far as the
/// journal goes: nothing lost.
fn check_output(store: &Store, complete: bool) -> Result<(), Violation> {
    let (journal, output) = (store.journal(), store.output());
    for (i, &(seq, value)) in output.iter().enumerate() {
        let expected = journal.get(i).map(|&x| (i as u64 + 1, transform(x)));
        if expected != Some((seq, value)) {
            return Err(Violation::app(
                "each_item_delivered_once",
                format!(
                    "output[{i}] is {:?}, the journal calls for {expected:?}",
                    (seq, value)
                ),
            ));
        }
    }
    if complete && output.len() < journal.len() {
        return Err(Violation::app(
            "each_item_delivered_once",
            format!("{} item(s) fed, {} delivered", journal.len(), output.len()),
        ));
    }
    Ok(())
}

impl Target for PipelineTarget {
    type Setup = ();
    type Op = PipelineOp;
    type State = Pipeline;

    fn name(&self) -> String {
        "pipeline".into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn workload(&self, _: Domain) -> Workload<PipelineOp> {
        let feed = proptest::collection::vec(any::<u16>(), 1..4).prop_map(PipelineOp::Feed);
        Workload::new().kind("feed", 1, feed)
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, Pipeline), String> {
        let pipeline = Pipeline::new(Store::default());
        let sup = pipeline.start_link(p).await.map_err(|e| e.to_string())?;
        Ok((sup.pid(), pipeline))
    }

    async fn apply(
        &self,
        pipeline: &mut Pipeline,
        op: &PipelineOp,
        p: &Process,
    ) -> Result<(), Violation> {
        let PipelineOp::Feed(items) = op;
        for &x in items {
            let _ = pipeline.feed(p, u64::from(x)).await;
        }
        check_output(pipeline.store(), false)
    }

    /// At rest: every item fed is delivered, once, in order (unless the pipeline gave up,
    /// which the harness's liveness judges).
    async fn check(&self, pipeline: &mut Pipeline, p: &Process) -> Result<(), Violation> {
        let running = pipeline.stages(p).iter().all(Option::is_some);
        check_output(pipeline.store(), running)
    }
}
