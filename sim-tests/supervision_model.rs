//! Property: over generated trees (strategies, restart types, shutdown specs, intensities,
//! nesting) and crash sequences, the supervisor starts, stops and restarts exactly the
//! processes, in exactly the order, that an independent model of docs/behaviours.md §C-§E predicts, and
//! gives up exactly when the model's restart-intensity check (OTP's list of whole-second
//! stamps, not our bucketed window) says so; escalation through nested supervisors included.
//!
//! Each case is a conformance scenario run in the simulator (`sim::conform`); its `start`,
//! `restart`, `terminate`, `exit` and `sup_exit` lines are compared with the model's.
//! proptest shrinks a failure to a small tree and few crashes; generation is seeded, so the
//! test is the same on every run (`PROPTEST_CASES` sets the number of cases).

use otpsim::sim::conform::{self, Scenario};
use proptest::prelude::*;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strat {
    OneForOne,
    OneForAll,
    RestForOne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    Permanent,
    Transient,
    Temporary,
}

#[derive(Clone, Debug)]
struct SupSpec {
    strategy: Strat,
    intensity: u64,
    period: u64,
    children: Vec<ChildSpec>,
}

#[derive(Clone, Debug)]
struct ChildSpec {
    restart: Restart,
    brutal_kill: bool,
    /// `None` for a worker.
    sup: Option<SupSpec>,
}

/// One fault: at `gap_ms` after the previous one, worker number `target` (in tree order)
/// exits with `reason` (`kill` is `exit(Pid, kill)` from outside).
#[derive(Clone, Debug)]
struct Crash {
    gap_ms: u64,
    target: usize,
    reason: &'static str,
}

fn restart_strategy() -> impl Strategy<Value = Restart> {
    prop_oneof![
        Just(Restart::Permanent),
        Just(Restart::Transient),
        Just(Restart::Temporary)
    ]
}

fn sup_strategy(depth: u32) -> BoxedStrategy<SupSpec> {
    let child = (
        restart_strategy(),
        any::<bool>(),
        prop::bool::weighted(if depth > 0 { 0.3 } else { 0.0 }),
    );
    let children = prop::collection::vec(child, 1..5).prop_flat_map(move |kinds| {
        kinds
            .into_iter()
            .map(|(restart, brutal_kill, nested)| {
                if nested {
                    sup_strategy(depth - 1)
                        .prop_map(move |s| ChildSpec {
                            restart,
                            brutal_kill,
                            sup: Some(s),
                        })
                        .boxed()
                } else {
                    Just(ChildSpec {
                        restart,
                        brutal_kill,
                        sup: None,
                    })
                    .boxed()
                }
            })
            .collect::<Vec<_>>()
    });
    let strategy = prop_oneof![
        Just(Strat::OneForOne),
        Just(Strat::OneForAll),
        Just(Strat::RestForOne)
    ];
    (strategy, 0..4u64, 1..4u64, children)
        .prop_map(|(strategy, intensity, period, children)| SupSpec {
            strategy,
            intensity,
            period,
            children,
        })
        .boxed()
}

fn crashes() -> impl Strategy<Value = Vec<Crash>> {
    let gap = prop_oneof![Just(50u64), Just(300), Just(700), Just(1100)];
    let reason = prop_oneof![Just("boom"), Just("normal"), Just("shutdown"), Just("kill")];
    prop::collection::vec((gap, 0..16usize, reason), 1..12).prop_map(|v| {
        v.into_iter()
            .map(|(gap_ms, target, reason)| Crash {
                gap_ms,
                target,
                reason,
            })
            .collect()
    })
}

// ---- the scenario -------------------------------------------------------------------------

fn sup_json(id: &str, s: &SupSpec, restart: Option<Restart>) -> Value {
    let strategy = match s.strategy {
        Strat::OneForOne => "one_for_one",
        Strat::OneForAll => "one_for_all",
        Strat::RestForOne => "rest_for_one",
    };
    let children: Vec<Value> = s
        .children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let id = format!("c{i}");
            match &c.sup {
                Some(sub) => sup_json(&id, sub, Some(c.restart)),
                None => json!({
                    "id": id,
                    "restart": restart_name(c.restart),
                    "shutdown": if c.brutal_kill { json!("brutal_kill") } else { json!(500) },
                }),
            }
        })
        .collect();
    let mut v = json!({"id": id, "type": "supervisor", "strategy": strategy,
        "intensity": s.intensity, "period": s.period, "children": children});
    if let Some(r) = restart {
        v["restart"] = json!(restart_name(r));
    }
    v
}

fn restart_name(r: Restart) -> &'static str {
    match r {
        Restart::Permanent => "permanent",
        Restart::Transient => "transient",
        Restart::Temporary => "temporary",
    }
}

/// Paths of all workers, in tree order.
fn worker_paths(path: &str, s: &SupSpec, out: &mut Vec<String>) {
    for (i, c) in s.children.iter().enumerate() {
        let p = format!("{path}/c{i}");
        match &c.sup {
            Some(sub) => worker_paths(&p, sub, out),
            None => out.push(p),
        }
    }
}

fn scenario(tree: &SupSpec, crashes: &[Crash]) -> (Scenario, Vec<(u64, String, &'static str)>) {
    let mut workers = Vec::new();
    worker_paths("root", tree, &mut workers);
    let mut at = 0;
    let mut ops = Vec::new();
    let mut script = Vec::new();
    for c in crashes {
        at += c.gap_ms;
        let path = workers[c.target % workers.len()].clone();
        script.push(match c.reason {
            "kill" => json!({"at": at, "op": "kill", "path": path}),
            reason => json!({"at": at, "op": "crash", "path": path, "reason": reason}),
        });
        ops.push((at, path, c.reason));
    }
    script.push(json!({"at": at + 50, "op": "stop"}));
    let text = json!({"tree": sup_json("root", tree, None), "script": script, "settle_ms": 100})
        .to_string();
    (
        Scenario::parse(&text).expect("generated scenarios are valid"),
        ops,
    )
}

// ---- the model ----------------------------------------------------------------------------

/// A running supervisor in the model.
struct Sup {
    path: String,
    spec: SupSpec,
    /// Whole-second stamps of the restarts in the window (OTP's list).
    restarts: Vec<u64>,
    /// Per child in start order: `None` when removed (temporary), else its state.
    children: Vec<Option<Child>>,
}

struct Child {
    running: bool,
    /// The running sub-supervisor.
    sup: Option<Sup>,
}

struct Model {
    lines: Vec<String>,
    starts: std::collections::BTreeMap<String, u32>,
}

impl Model {
    fn started(&mut self, path: &str) {
        let n = self.starts.entry(path.to_string()).or_default();
        *n += 1;
        let verb = if *n == 1 { "start" } else { "restart" };
        self.lines.push(format!("{verb} {path}"));
    }

    fn start_sup(&mut self, path: String, spec: SupSpec) -> Sup {
        self.started(&path);
        let mut sup = Sup {
            path,
            children: spec
                .children
                .iter()
                .map(|_| {
                    Some(Child {
                        running: false,
                        sup: None,
                    })
                })
                .collect(),
            spec,
            restarts: Vec::new(),
        };
        for i in 0..sup.children.len() {
            self.start_child(&mut sup, i);
        }
        sup
    }

    fn start_child(&mut self, sup: &mut Sup, i: usize) {
        let path = format!("{}/c{i}", sup.path);
        let spec = sup.spec.children[i].clone();
        let sub = spec.sup.map(|s| self.start_sup(path.clone(), s));
        if sub.is_none() {
            self.started(&path);
        }
        sup.children[i] = Some(Child {
            running: true,
            sup: sub,
        });
    }

    /// Stops child `i` as its supervisor does (docs/behaviours.md §G).
    fn stop_child(&mut self, sup: &mut Sup, i: usize) {
        let path = format!("{}/c{i}", sup.path);
        let brutal = sup.spec.children[i].brutal_kill;
        let Some(child) = sup.children[i].as_mut().filter(|c| c.running) else {
            return;
        };
        child.running = false;
        match child.sup.take() {
            Some(mut sub) => {
                self.stop_all(&mut sub);
                self.lines.push(format!("sup_exit {path} reason=shutdown"));
            }
            None if brutal => self.lines.push(format!("exit {path} reason=killed")),
            None => {
                self.lines.push(format!("terminate {path} reason=shutdown"));
                self.lines.push(format!("exit {path} reason=shutdown"));
            }
        }
    }

    fn stop_all(&mut self, sup: &mut Sup) {
        for i in (0..sup.children.len()).rev() {
            self.stop_child(sup, i);
        }
    }

    /// Child `i` of `sup` exited by itself with `reason` at `now` seconds (docs/behaviours.md §C): returns
    /// whether `sup` gave up (and exited `shutdown`).
    fn child_exited(&mut self, sup: &mut Sup, i: usize, reason: &str, now: u64) -> bool {
        let restart = sup.spec.children[i].restart;
        let normal = matches!(reason, "normal" | "shutdown");
        let restarted = match restart {
            Restart::Permanent => true,
            Restart::Transient => !normal,
            Restart::Temporary => false,
        };
        if !restarted {
            if restart == Restart::Temporary {
                sup.children[i] = None;
            }
            return false;
        }
        // docs/behaviours.md §D, OTP's add_restart: keep stamps >= now - period, add now, compare.
        let period = sup.spec.period;
        sup.restarts.retain(|t| *t + period >= now);
        sup.restarts.push(now);
        if sup.restarts.len() as u64 > sup.spec.intensity {
            self.stop_all(sup);
            self.lines
                .push(format!("sup_exit {} reason=shutdown", sup.path));
            return true;
        }
        let group: Vec<usize> = match sup.spec.strategy {
            Strat::OneForOne => vec![i],
            Strat::OneForAll => (0..sup.children.len()).collect(),
            Strat::RestForOne => (i..sup.children.len()).collect(),
        };
        for &j in group.iter().rev() {
            self.stop_child(sup, j);
        }
        for &j in &group {
            if sup.spec.children[j].restart == Restart::Temporary && j != i {
                sup.children[j] = None; // docs/behaviours.md item 32
            }
        }
        for &j in &group {
            if sup.children[j].is_some() {
                self.start_child(sup, j);
            }
        }
        false
    }

    /// The worker at `rest` below `sup` exits with `reason`; returns whether `sup` gave up.
    fn crash(&mut self, sup: &mut Sup, rest: &[usize], reason: &str, now: u64) -> bool {
        let i = rest[0];
        let Some(child) = sup.children[i].as_mut().filter(|c| c.running) else {
            return false;
        };
        // Whether child `i` itself exited: the worker, or a sub-supervisor that gave up.
        let exited = match (&mut child.sup, rest.len()) {
            (None, 1) => {
                child.running = false;
                let exit = if reason == "kill" { "killed" } else { reason };
                self.lines
                    .push(format!("exit {}/c{i} reason={exit}", sup.path));
                true
            }
            (Some(sub), n) if n > 1 => {
                let gave_up = self.crash(sub, &rest[1..], reason, now);
                if gave_up {
                    child.running = false;
                    child.sup = None;
                }
                gave_up
            }
            _ => false,
        };
        if !exited {
            return false;
        }
        let reason = if rest.len() > 1 {
            "shutdown"
        } else if reason == "kill" {
            "killed"
        } else {
            reason
        };
        self.child_exited(sup, i, reason, now)
    }
}

fn model(tree: &SupSpec, ops: &[(u64, String, &'static str)]) -> Vec<String> {
    let mut m = Model {
        lines: Vec::new(),
        starts: Default::default(),
    };
    let mut root = Some(m.start_sup("root".into(), tree.clone()));
    for (at, path, reason) in ops {
        let Some(sup) = root.as_mut() else { break };
        let rest: Vec<usize> = path
            .split('/')
            .skip(1)
            .map(|c| c[1..].parse().expect("generated ids are c<N>"))
            .collect();
        if m.crash(sup, &rest, reason, at / 1000) {
            root = None;
        }
    }
    if let Some(mut sup) = root {
        m.stop_all(&mut sup);
        m.lines.push("sup_exit root reason=shutdown".into());
    }
    m.lines
}

fn observed(scenario: &Scenario) -> Vec<String> {
    conform::run(scenario)
        .into_iter()
        .filter(|l| {
            [
                "start ",
                "restart ",
                "terminate ",
                "exit ",
                "sup_exit ",
                "otpsim_error",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect()
}

#[test]
fn restarts_follow_the_model_of_spec_c_to_e() {
    let mut runner = crate::common::seeded_runner(256);
    let result = runner.run(&(sup_strategy(2), crashes()), |(tree, crashes)| {
        let (scenario, ops) = scenario(&tree, &crashes);
        let expected = model(&tree, &ops);
        let actual = observed(&scenario);
        if let Some(diff) = conform::compare(&scenario, &expected, &actual) {
            return Err(TestCaseError::fail(format!(
                "{diff}\nexpected:\n  {}\nactual:\n  {}",
                expected.join("\n  "),
                actual.join("\n  ")
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
