//! Conformance with real Erlang/OTP: every scenario in `sim-tests/conformance/` runs in the
//! simulator and its canonical trace must equal the one recorded from OTP 25 (the oracle of
//! `docs/oracle.md`), line by line; runs of sibling shutdown lines under a
//! simple_one_for_one supervisor are compared as multisets.

use otpsim::sim::conform::AnyScenario;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-tests/conformance")
}

fn scenarios() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("sim-tests/conformance exists")
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[cfg(madsim)]
fn recorded(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file.with_extension("trace"))
        .expect("readable trace")
        .lines()
        .map(String::from)
        .collect()
}

fn load(file: &Path) -> AnyScenario {
    let text = std::fs::read_to_string(file).expect("readable scenario");
    AnyScenario::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The suite is as large as the issues ask: 2 oracle samples, at least 40 of our own for the
/// static supervisor and more for the Elixir pieces.
#[test]
fn the_suite_holds_every_scenario_with_its_otp_trace() {
    let files = scenarios();
    assert!(files.len() >= 64, "only {} scenarios", files.len());
    for f in &files {
        assert!(
            f.with_extension("trace").exists(),
            "{} has no .trace",
            f.display()
        );
    }
}

#[cfg(madsim)]
#[test]
fn every_scenario_reproduces_the_trace_of_real_otp() {
    let mut failures = Vec::new();
    for file in scenarios() {
        let scenario = load(&file);
        let expected = recorded(&file);
        let actual = scenario.run();
        if let Some(diff) = scenario.compare(&expected, &actual) {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            failures.push(format!(
                "{name}: {diff}\n  ours:\n    {}",
                actual.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The traces are causal, not an accident of scheduling: other seeds (and, across nodes,
/// other latencies) give OTP's trace too.
#[cfg(madsim)]
#[test]
fn conformance_does_not_depend_on_the_scheduling_seed() {
    let mut failures = Vec::new();
    for file in scenarios() {
        let scenario = load(&file);
        let expected = recorded(&file);
        for seed in [1, 7, 42, 1234] {
            let other = scenario.run_seeded(seed);
            if let Some(diff) = scenario.compare(&expected, &other) {
                let name = file.file_name().unwrap_or_default().to_string_lossy();
                failures.push(format!("{name} seed {seed}: {diff}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The multiset comparison is not a licence to reorder anything else.
#[test]
fn compare_is_strict_outside_parallel_shutdown_runs() {
    let scenario = load(&dir().join("23_simple_one_for_one.json"));
    let expected: Vec<String> = [
        "op stop root",
        "terminate root/w2 reason=shutdown",
        "terminate root/w1 reason=shutdown",
    ]
    .map(String::from)
    .to_vec();
    let swapped: Vec<String> = [&expected[0], &expected[2], &expected[1]]
        .map(|s| s.clone())
        .to_vec();
    assert_eq!(scenario.compare(&expected, &swapped), None);
    let reordered: Vec<String> = [&expected[1], &expected[0], &expected[2]]
        .map(|s| s.clone())
        .to_vec();
    assert!(scenario.compare(&expected, &reordered).is_some());
    assert!(scenario.compare(&expected, &expected[..2]).is_some());
}

/// Item numbers cited as `§X 1-3, 5` in a text.
fn cited_items(text: &str) -> BTreeSet<u32> {
    let mut items = BTreeSet::new();
    for part in text.split('§').skip(1) {
        let list: String = part
            .chars()
            .skip(1)
            .take_while(|c| c.is_ascii_digit() || matches!(c, ' ' | ',' | '-'))
            .collect();
        for range in list.split(',') {
            let bounds: Vec<u32> = range
                .split('-')
                .filter_map(|n| n.trim().parse().ok())
                .collect();
            match bounds[..] {
                [n] => {
                    items.insert(n);
                }
                [a, b] => items.extend(a..=b),
                _ => {}
            }
        }
    }
    items
}

/// Every item of docs/behaviours.md §A-§L (1-96) is shown by a scenario or by a named test of the API
/// (`sim-tests/supervisor.rs`, `sim-tests/registry.rs`, tests named `a7_...`, `l93_...`).
#[test]
fn every_spec_item_of_a_to_l_is_covered() {
    let mut covered = BTreeSet::new();
    for file in scenarios() {
        covered.extend(cited_items(load(&file).description()));
    }
    // Test names start with the items they show: `fn f40_f43_the_api_on_...`.
    let tests = [include_str!("supervisor.rs"), include_str!("registry.rs")].concat();
    for line in tests.lines() {
        let Some(name) = line.trim().strip_prefix("fn ") else {
            continue;
        };
        for token in name.split('_') {
            let mut chars = token.chars();
            match (chars.next(), chars.as_str().parse::<u32>()) {
                (Some('a'..='l'), Ok(n)) => {
                    covered.insert(n);
                }
                _ => break,
            }
        }
    }
    let missing: Vec<u32> = (1..=96).filter(|n| !covered.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "docs/behaviours.md items without a scenario or test: {missing:?}"
    );
}

/// The harness's invariants (`sim::invariants`) hold on every behaviour real OTP shows: a
/// checker that flagged one of these traces would be wrong, not the supervisor.
#[cfg(madsim)]
#[test]
fn the_invariant_checker_accepts_every_trace_of_real_otp() {
    use otpsim::sim::invariants::{check, CheckOptions};
    use otpsim::sim::Sim;
    let options = CheckOptions {
        exact_timing: true,
        at_rest: true,
        ..CheckOptions::default()
    };
    let mut failures = Vec::new();
    for file in scenarios() {
        // Across nodes the single-node invariants do not apply as they are (a node's crash
        // ends processes without exits).
        let AnyScenario::Node(scenario) = load(&file) else {
            continue;
        };
        let (_, report) = otpsim::sim::conform::run_sim(&scenario, &Sim::new(0));
        if let Err(v) = check(&report.trace, &options) {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            failures.push(format!("{name}: {v}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A malformed multi-node scenario is refused with the field it is about, never a panic.
#[test]
fn a_malformed_multi_node_scenario_names_its_field() {
    let tree = r#"{"id": "root", "type": "supervisor", "children": [{"id": "w"}]}"#;
    let cases = [
        (r#"{"nodes": []}"#.to_string(), "nodes"),
        (format!(r#"{{"nodes": [{{"name": "a", "tree": {tree}}}, {{"name": "a"}}]}}"#), "nodes[1].name"),
        (format!(r#"{{"nodes": [{{"name": "a:b", "tree": {tree}}}]}}"#), "nodes[0].name"),
        (
            format!(r#"{{"nodes": [{{"name": "a", "tree": {tree}}}], "script": [{{"op": "send_remote", "path": "a:root/w", "target": "a:root/w", "count": 0}}]}}"#),
            "script[0].count",
        ),
        (
            format!(r#"{{"nodes": [{{"name": "a", "tree": {tree}}}], "script": [{{"op": "halt", "node": "z"}}]}}"#),
            "script[0].node",
        ),
        (
            r#"{"nodes": [{"name": "a", "tree": {"id": "root", "type": "supervisor", "children": [{"id": "w", "monitor_node": ["q"]}]}}]}"#.to_string(),
            "the worker a:root/w",
        ),
        (
            format!(r#"{{"nodes": [{{"name": "a", "tree": {tree}}}], "script": [{{"op": "global_register", "path": "a:root/w", "name": "g"}}]}}"#),
            "script[0].op",
        ),
        (
            format!(r#"{{"nodes": [{{"name": "a", "tree": {tree}}}], "script": [{{"op": "pg_join", "path": "a:root/w"}}]}}"#),
            "script[0].group",
        ),
        (
            format!(r#"{{"nodes": [{{"name": "a", "tree": {tree}}}], "script": [{{"op": "pg_members", "node": "z", "group": "g"}}]}}"#),
            "script[0].node",
        ),
    ];
    for (text, field) in cases {
        let err = AnyScenario::parse(&text).expect_err(&text);
        assert!(err.to_string().contains(field), "{text}: {err}");
    }
}
