//! The three-stage pipeline of [`otpsim::systems::pipeline`], run for real: items flow from
//! the source through the transformer to the sink while stages are killed; rest_for_one
//! restarts a failed stage and the ones after it, and every item arrives once, in order.
//!
//! ```sh
//! cargo run-native --example pipeline
//! ```

use otpsim::rt::{self, Duration};
use otpsim::systems::pipeline::{Pipeline, Store, SINK, SOURCE, TRANSFORMER};
use otpsim::{ExitReason, Node, Process};

async fn show(p: &Process, pipeline: &Pipeline, what: &str) {
    p.sleep(Duration::from_millis(20)).await;
    let [source, transformer, sink] = pipeline.stages(p);
    let out: Vec<u64> = pipeline.store().output().iter().map(|(_, v)| *v).collect();
    println!("{what}");
    println!("  stages: source {source:?}, transformer {transformer:?}, sink {sink:?}");
    println!("  fed {:?}", pipeline.store().journal());
    println!("  out {out:?}");
}

fn main() {
    println!(
        "pipeline ({})",
        if rt::SIMULATED { "simulated" } else { "native" }
    );
    let done = rt::block_on(0, async {
        let node = Node::new();
        let main = node.spawn(|p| async move {
            let pipeline = Pipeline::new(Store::default());
            pipeline.start_link(&p).await.expect("the pipeline starts");
            for x in 1..=3 {
                pipeline.feed(&p, x).await.unwrap();
            }
            show(&p, &pipeline, "fed 1, 2, 3 (out: 2x + 1)").await;

            p.exit(p.whereis(TRANSFORMER).unwrap(), ExitReason::Kill);
            for x in 4..=6 {
                let _ = pipeline.feed(&p, x).await;
            }
            show(&p, &pipeline, "\nkilled the transformer, fed 4, 5, 6: it and the sink restarted, the source did not").await;

            p.exit(p.whereis(SINK).unwrap(), ExitReason::Kill);
            pipeline.feed(&p, 7).await.unwrap();
            show(&p, &pipeline, "\nkilled the sink, fed 7: only the sink restarted").await;

            p.exit(p.whereis(SOURCE).unwrap(), ExitReason::Kill);
            p.sleep(Duration::from_millis(10)).await;
            pipeline.feed(&p, 8).await.unwrap();
            show(&p, &pipeline, "\nkilled the source, fed 8: every stage restarted, the journal kept").await;
        });
        node.wait_exit(main).await
    });
    match done {
        Some(ExitReason::Normal) => println!("\ndone: every item once, in order"),
        other => {
            eprintln!("the demo failed: {other:?}");
            std::process::exit(1);
        }
    }
}
