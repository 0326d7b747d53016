//! A failure you can see: the why-chain of every corpus case, its page, and the page in a
//! real browser (issue 21; `src/sim/why.rs`, `src/sim/page.rs`).
#![cfg(madsim)]

use crate::planted;
use otpsim::sim::corpus::{self, CorpusFile};
use otpsim::sim::harness::CaseReport;
use otpsim::sim::{page, why};
use otpsim::trace::EventKind;
use std::path::{Path, PathBuf};

/// Every corpus file of one node with its replayed run. (A cluster's cases, `cluster-graph`,
/// `swarm`, `cp` and `ap`, are left out: the why-chain does not follow a cluster's faults, a crash or a
/// partition, to what they cause yet, and its page has no lanes per node.)
fn corpus_runs() -> Vec<(PathBuf, CorpusFile, CaseReport)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets = planted::corpus_targets();
    corpus::files(&dir)
        .into_iter()
        .filter(|path| {
            !["cluster-graph", "swarm", "cp-", "ap-"]
                .iter()
                .any(|c| stem(path).starts_with(c))
        })
        .map(|path| {
            let file = corpus::load(&path).expect("a corpus file parses");
            let target = targets
                .iter()
                .find(|t| t.name() == file.target)
                .expect("known target");
            let report = target.clone().replay(&file.case).expect("replays");
            (path, file, report)
        })
        .collect()
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Each golden and regression case's why-chain, computed from its trace: it starts at an
/// injected fault; every later step has a cause among the earlier steps; a failure's chain
/// ends at the events that show the violation. The chain itself is pinned (a snapshot per
/// case, reviewed when it moves).
#[test]
fn every_corpus_case_has_its_why_chain() {
    let runs = corpus_runs();
    assert!(runs.len() >= 10);
    for (path, file, report) in runs {
        let trace = &report.trace;
        let violation = report.violation.as_ref();
        let steps = why::steps(trace, violation);
        let name = stem(&path);
        assert!(!steps.is_empty(), "{name}: no chain");
        assert!(
            matches!(trace.events()[steps[0]].kind, EventKind::Fault { .. }),
            "{name}: the chain starts at a fault"
        );
        let causes = trace.causes();
        for &s in &steps[1..] {
            let is_fault = matches!(trace.events()[s].kind, EventKind::Fault { .. });
            assert!(
                is_fault || causes[s].iter().any(|c| steps.contains(c)),
                "{name}: step {s} has no cause in the chain"
            );
        }
        if let Some(v) = violation.filter(|v| !v.events.is_empty()) {
            assert!(v.events.iter().all(|e| steps.contains(e)), "{name}");
        }
        insta::with_settings!({ description => file.description.clone(), omit_expression => true }, {
            insta::assert_snapshot!(format!("why_{name}"), why::lines(trace, violation).join("\n"));
        });
    }
}

/// Every corpus case renders as one page: a lane per process name, a bar per process, every
/// event placed, the verdict carried.
#[test]
fn every_corpus_case_renders_as_a_page() {
    for (path, file, report) in corpus_runs() {
        let model = page::Model::new(&file.description, &report.trace, report.violation.as_ref());
        let name = stem(&path);
        let mut names: Vec<&str> = model.lanes.iter().map(|l| l.name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), model.lanes.len(), "{name}: one lane per name");
        assert!(model.lanes.iter().any(|l| l.name == "harness"), "{name}");
        assert_eq!(model.events.len(), report.trace.len(), "{name}");
        let exits = report
            .trace
            .events()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Exit { .. }));
        let ended = model.bars.iter().filter(|b| b.to.is_some());
        assert_eq!(
            exits.count(),
            ended.count(),
            "{name}: a bar ends at each exit"
        );
        assert_eq!(
            model.violation.is_some(),
            report.violation.is_some(),
            "{name}"
        );
        let html = page::render(&model);
        assert!(html.contains("\"lanes\":"), "{name}");
        assert!(
            !html.contains("<script src") && !html.contains("<link"),
            "{name}: self-contained"
        );
    }
}

/// A page in a real browser (headless Chromium, which `.ci/run` installs and runs this
/// for): it loads without a script error and draws one lane per process of the model.
#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs the ignored tests of this module"]
fn a_failure_page_loads_in_a_browser_with_a_lane_per_process() {
    let runs = corpus_runs();
    let (path, file, report) = runs
        .iter()
        .find(|(_, _, r)| r.violation.is_some())
        .expect("the corpus holds a failure");
    let model = page::Model::new(&file.description, &report.trace, report.violation.as_ref());
    let dir = std::env::temp_dir().join(format!("otpsim-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join(format!("{}.html", stem(path)));
    std::fs::write(&html, page::render(&model)).unwrap();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let out = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap_or_else(|e| panic!("{chromium}: {e} (set CHROMIUM to the browser's path)"));
    let dom = String::from_utf8_lossy(&out.stdout);
    let body = dom
        .split("<body")
        .nth(1)
        .and_then(|b| b.split('>').next())
        .unwrap_or_else(|| panic!("no <body> in what {chromium} printed: {dom}"));
    assert!(
        body.contains("data-rendered=\"ok\""),
        "the script ran to its end: {body}"
    );
    assert!(!body.contains("data-errors"), "script errors: {body}");
    let lanes = format!("data-lanes=\"{}\"", model.lanes.len());
    assert!(body.contains(&lanes), "{lanes} expected: {body}");
    // `OTPSIM_KEEP_PAGE=FILE` keeps the page (README's screenshot is of it).
    if let Ok(keep) = std::env::var("OTPSIM_KEEP_PAGE") {
        std::fs::copy(&html, keep).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
