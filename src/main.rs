//! The `otpsim` command line.

use clap::{Parser, Subcommand};

/// `println!` for the command's output: a closed pipe (`otpsim replay FILE | head`) ends the
/// program quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}
use otpsim::sim::{campaign, graph::GraphCase, Sim};
use std::process::ExitCode;

/// Erlang/OTP supervision for Rust, and a deterministic simulator that proves a supervision
/// tree recovers.
#[derive(Parser)]
#[command(name = "otpsim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a campaign of seeded cases on every core, with swarm-selected faults, checking
    /// every run and replaying a share of them for determinism.
    Fuzz {
        /// Number of cases (default: as many as fit in --seconds).
        #[arg(long)]
        seeds: Option<u64>,
        /// Wall-clock budget in seconds (default 60 when --seeds is not given).
        #[arg(long)]
        seconds: Option<u64>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// The first seed (default: a fresh one, printed, so that each campaign explores new
        /// cases; give it to repeat a campaign, as CI does).
        #[arg(long)]
        first_seed: Option<u64>,
        /// Also write the campaign's summary as JSON to this file (for CI).
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
        /// Run only shard I of N (e.g. `--shard 0/4`), to split a campaign across machines.
        #[arg(long, value_parser = parse_shard, default_value = "0/1")]
        shard: (u64, u64),
        /// Replay every K-th case to check determinism (0: never).
        #[arg(long, default_value_t = 100)]
        replay_every: u64,
        /// Fuzz only this target (repeatable): `graph` (random process graphs),
        /// `cluster-graph` (random processes over 3-5 nodes under node crashes, restarts,
        /// pauses, slow links and partitions), `tree` (generated supervision trees), an example
        /// system: `kv`, `todo`, `connections`, `pipeline`, `tickets`, `swarm` (the model of
        /// Elixir's Swarm on 3 nodes, whose failures are its known flaws: reported apart, and
        /// shrunk and saved only when it is named here), `cp` (the CP distributed
        /// supervisor on Swarm's workload and faults), or `ap` (the same supervisor in AP
        /// mode). Default: all of them, in turn.
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Fault families the harness targets draw from (repeatable): crash, kill, signal,
        /// storm, delay, stop (graceful restarts). Default: all; each case switches on a
        /// random subset of them.
        #[arg(long = "family", value_parser = parse_family)]
        families: Vec<otpsim::sim::harness::Family>,
        /// Where minimised failures are written.
        #[arg(long, default_value = "corpus")]
        corpus: std::path::PathBuf,
    },
    /// Run one generated case and print its timeline and verdict.
    Run {
        /// The case's seed.
        #[arg(long)]
        seed: u64,
    },
    /// Re-run a saved case (a `corpus/` file) and print its timeline and verdict: exit 0 if
    /// it does what the file expects, 1 if not, 2 if the file is malformed.
    Replay {
        /// The corpus file.
        file: std::path::PathBuf,
        /// If the case no longer does what the file records (a fixed bug, a changed
        /// trace), rewrite the file to expect what it does now.
        #[arg(long)]
        update: bool,
        /// Also write the run as one self-contained HTML page (the supervision tree, a lane
        /// per process, signals as arrows, the why-chain; click an event for its causes).
        #[arg(long, value_name = "OUT.html")]
        html: Option<std::path::PathBuf>,
    },
    /// Print a digest of the traces of generated cases, per target: equal digests before and
    /// after a change (an optimisation, a toolchain or dependency upgrade) mean that every one
    /// of those cases ran identically.
    Digest {
        /// Cases per target.
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Only this target (repeatable; the names of `fuzz --target`). Default: all.
        #[arg(long = "target")]
        targets: Vec<String>,
    },
    /// Run every corpus case of one target on another that takes the same cases, and print
    /// the verdicts side by side as a Markdown table, one row per file: exit 0 if every case
    /// passes on the other target, 1 if one fails there, 2 on bad input. `compare --on cp`
    /// runs Swarm's known flaws on the CP supervisor.
    Compare {
        /// The target whose corpus files are run.
        #[arg(long, default_value = "swarm")]
        from: String,
        /// The target they are run on as well.
        #[arg(long)]
        on: String,
        /// The corpus directory.
        #[arg(long, default_value = "corpus")]
        corpus: std::path::PathBuf,
    },
    /// Run a scenario of the OTP oracle's format and print its canonical trace, to diff
    /// against the trace real OTP gives (`diff <(otpsim conform s.json) s.trace`).
    Conform {
        /// The scenario file (JSON, see docs/oracle.md).
        scenario: std::path::PathBuf,
        /// Compare with this expected trace instead of printing ours; exit 1 on a difference.
        #[arg(long)]
        expect: Option<std::path::PathBuf>,
    },
}

fn parse_family(s: &str) -> Result<otpsim::sim::harness::Family, String> {
    use otpsim::sim::harness::Family;
    Family::parse(s).ok_or_else(|| {
        let known: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        format!("unknown fault family {s:?} ({})", known.join(", "))
    })
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("expected I/N, e.g. 0/4, got {s:?}"))?;
    let i: u64 = i
        .parse()
        .map_err(|_| format!("shard index {i:?} is not a number"))?;
    let n: u64 = n
        .parse()
        .map_err(|_| format!("shard count {n:?} is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = otpsim::sim::NotSimulated::check("the otpsim command") {
        eprintln!("{e}\n(in this repository: `cargo run --release -- ...`)");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Fuzz {
            seeds,
            seconds,
            threads,
            first_seed,
            json,
            shard,
            replay_every,
            targets,
            families,
            corpus,
        } => fuzz(
            campaign::Campaign {
                seeds,
                time_budget: match (seeds, seconds) {
                    (_, Some(s)) => Some(std::time::Duration::from_secs(s)),
                    (Some(_), None) => None,
                    (None, None) => campaign::Campaign::default().time_budget,
                },
                threads: threads.unwrap_or(campaign::Campaign::default().threads),
                first_seed: first_seed.unwrap_or_else(fresh_seed),
                shard,
                determinism_every: replay_every,
                targets,
                families: if families.is_empty() {
                    otpsim::sim::harness::Family::ALL.to_vec()
                } else {
                    families
                },
                corpus: Some(corpus),
            },
            json.as_deref(),
        ),
        Command::Run { seed } => run_one(seed),
        Command::Replay { file, update, html } => replay(&file, update, html.as_deref()),
        Command::Conform { scenario, expect } => conform(&scenario, expect.as_deref()),
        Command::Compare { from, on, corpus } => compare(&corpus, &from, &on),
        Command::Digest {
            seeds,
            first_seed,
            targets,
        } => digest(&targets, first_seed..first_seed.saturating_add(seeds)),
    }
}

fn digest(targets: &[String], seeds: std::ops::Range<u64>) -> ExitCode {
    let threads = campaign::Campaign::default().threads;
    match campaign::digest(targets, &otpsim::targets(), seeds.clone(), threads) {
        Ok(digests) => {
            for d in digests {
                out!(
                    "{:<14} seeds {}..{}  {:016x}",
                    d.target,
                    seeds.start,
                    seeds.end,
                    d.digest
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("otpsim digest: {e}");
            ExitCode::from(2)
        }
    }
}

fn compare(dir: &std::path::Path, from: &str, on: &str) -> ExitCode {
    let rows = match otpsim::sim::corpus::side_by_side(dir, from, on, &otpsim::targets()) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("otpsim compare: {e}");
            return ExitCode::from(2);
        }
    };
    let verdict = |v: &Option<String>| match v {
        Some(invariant) => format!("breaks {invariant}"),
        None => "passes".to_string(),
    };
    out!("| corpus file | what it shows | on {from} | on {on} |");
    out!("| --- | --- | --- | --- |");
    for row in &rows {
        let name = row.file.file_name().unwrap_or_default().to_string_lossy();
        out!(
            "| {name} | {} | {} | {} |",
            row.description.replace('|', "\\|").replace('\n', " "),
            verdict(&row.own),
            verdict(&row.other)
        );
    }
    let failing = rows.iter().filter(|r| r.other.is_some()).count();
    out!(
        "\n{} files: {} break an invariant on {from}, {failing} on {on}",
        rows.len(),
        rows.iter().filter(|r| r.own.is_some()).count()
    );
    if failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(file: &std::path::Path, update: bool, html: Option<&std::path::Path>) -> ExitCode {
    use otpsim::sim::corpus;
    let saved = match corpus::load(file) {
        Ok(saved) => saved,
        Err(e) => {
            eprintln!("otpsim replay: {e}");
            return ExitCode::from(2);
        }
    };
    out!(
        "{}: target {}, {}",
        file.display(),
        saved.target,
        saved.description
    );
    let targets = otpsim::targets();
    let Some(target) = targets.iter().find(|t| t.name() == saved.target) else {
        let known: Vec<String> = targets.iter().map(|t| t.name()).collect();
        eprintln!(
            "otpsim replay: {}: field `target`: unknown target `{}` (known: {})",
            file.display(),
            saved.target,
            known.join(", ")
        );
        return ExitCode::from(2);
    };
    let report = match target.clone().replay(&saved.case) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("otpsim replay: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    for line in report.trace.timeline() {
        out!("{line}");
    }
    let hash = report.trace.hash();
    if let Some(out) = html {
        let title = format!("{}: {}", saved.target, saved.description);
        let violation = report.violation.as_ref();
        if let Err(e) = otpsim::sim::page::write(out, &title, &report.trace, violation) {
            eprintln!("otpsim replay: {}: {e}", out.display());
            return ExitCode::from(2);
        }
        out!("wrote {}", out.display());
    }
    out!(
        "why ({}):",
        if report.violation.is_some() {
            "from the faults to the violation"
        } else {
            "what the faults led to"
        }
    );
    for line in otpsim::sim::why::lines(&report.trace, report.violation.as_ref()) {
        out!("{line}");
    }
    match &report.violation {
        Some(v) => out!("verdict: {v}"),
        None => out!("verdict: every invariant holds (trace hash {hash:016x})"),
    }
    let differs = match saved.expect.check(report.violation.as_ref(), hash) {
        Ok(()) => {
            out!("as the corpus file expects");
            return ExitCode::SUCCESS;
        }
        Err(differs) => differs,
    };
    if !update {
        out!("NOT as the corpus file expects: {differs} (--update rewrites the file)");
        return ExitCode::FAILURE;
    }
    let expect = saved.expect.renewed(report.violation.as_ref(), hash);
    let updated = corpus::CorpusFile { expect, ..saved };
    match corpus::write(file, &updated) {
        Ok(()) => {
            out!("updated {}: {differs}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("otpsim replay: {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

fn conform(file: &std::path::Path, expect: Option<&std::path::Path>) -> ExitCode {
    use otpsim::sim::conform::AnyScenario;
    let read = |f: &std::path::Path| {
        std::fs::read_to_string(f).map_err(|e| eprintln!("otpsim conform: {}: {e}", f.display()))
    };
    let Ok(text) = read(file) else {
        return ExitCode::from(2);
    };
    let scenario = match AnyScenario::parse(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("otpsim conform: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let lines = scenario.run();
    let Some(expect) = expect else {
        for line in &lines {
            out!("{line}");
        }
        return ExitCode::SUCCESS;
    };
    let Ok(expected) = read(expect) else {
        return ExitCode::from(2);
    };
    let expected: Vec<String> = expected.lines().map(String::from).collect();
    match scenario.compare(&expected, &lines) {
        None => {
            out!("{}: conforms ({} lines)", file.display(), lines.len());
            ExitCode::SUCCESS
        }
        Some(diff) => {
            out!(
                "{}: differs from {}: {diff}",
                file.display(),
                expect.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// A first seed nobody chose: from the OS's randomness (through std's hasher keys), below
/// 10^12 so that it is short to type and a campaign's seeds never overflow.
fn fresh_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u64) % 1_000_000_000_000
}

fn fuzz(c: campaign::Campaign, json: Option<&std::path::Path>) -> ExitCode {
    let targets = otpsim::targets();
    let budget = match (c.seeds, c.time_budget) {
        (Some(n), Some(t)) => format!("{n} cases or {}s", t.as_secs()),
        (Some(n), None) => format!("{n} cases"),
        (None, Some(t)) => format!("{}s", t.as_secs()),
        (None, None) => "no limit".into(),
    };
    eprintln!(
        "otpsim fuzz: targets {}, swarm faults, {budget}, {} threads, shard {}/{}, first seed {seed} \
         (repeat with --first-seed {seed})",
        if c.targets.is_empty() {
            campaign::target_names(&targets).join(" + ")
        } else {
            c.targets.join(" + ")
        },
        c.threads,
        c.shard.0,
        c.shard.1,
        seed = c.first_seed,
    );
    let bar = progress_bar(&c);
    let report = campaign::run(&c, &targets, |p| {
        let rate = p.cases as f64 / p.elapsed.as_secs_f64().max(1e-9);
        bar.set_position(match c.seeds {
            Some(_) => p.cases,
            None => p.elapsed.as_millis() as u64,
        });
        bar.set_message(format!(
            "{} cases, {rate:.0} cases/s, {} failures",
            p.cases, p.failures
        ));
    });
    bar.finish_and_clear();
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("otpsim fuzz: {e}");
            return ExitCode::from(2);
        }
    };
    summarise(&report);
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("otpsim fuzz: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the campaign did: cases, faults and checks per target, the distinct failures.
fn summarise(report: &campaign::Report) {
    out!(
        "{} cases in {:.1}s ({:.0} cases/s) from first seed {}, {} replayed for determinism",
        report.cases,
        report.elapsed.as_secs_f64(),
        report.cases as f64 / report.elapsed.as_secs_f64().max(1e-9),
        report.first_seed,
        report.replayed,
    );
    let faults = |t: &otpsim::sim::harness::Tally| {
        let families = t.faults.iter().map(|(f, n)| format!("{} {n}", f.name()));
        let cluster = t.cluster_faults.iter().map(|(k, n)| format!("{k} {n}"));
        let parts: Vec<String> = families.chain(cluster).collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    };
    let expected = |n: u64| match n {
        0 => String::new(),
        n => format!(" ({n} known flaws)"),
    };
    for (name, t) in &report.targets {
        out!(
            "  {name:<14} {:>7} cases {:>5} failing{}  {:>10} checks  faults: {}",
            t.cases,
            t.failures,
            expected(t.expected),
            t.tally.checks,
            faults(&t.tally)
        );
        // Of the runs that had anything left to settle when the faults ended.
        let mut settling = t.tally.clone();
        settling.converged_ms.remove(&0);
        let n: u64 = settling.converged_ms.values().sum();
        let q = |q| settling.converged_quantile(q).unwrap_or(0) as f64 / 1000.0;
        if n > 0 {
            out!(
                "  {:<14} {n} settled after the final heal in: median {:.1}s, p99 {:.1}s, max {:.1}s",
                "",
                q(0.5),
                q(0.99),
                q(1.0)
            );
        }
    }
    let total = report.total();
    out!(
        "  {:<14} {:>7} cases {:>5} failing{}  {:>10} checks  faults: {}",
        "all",
        report.cases,
        report.failures.len(),
        expected(report.expected_cases()),
        total.checks,
        faults(&total)
    );
    let known = report.distinct_expected();
    if !known.is_empty() {
        out!(
            "{} known flaws of modelled systems (expected, not regressions):",
            known.len()
        );
    }
    for (target, flaw, count, first) in known {
        out!(
            "KNOWN {target}: {flaw}: {} ({count} cases; first at case {}, after {:.1}s, seed {})",
            first.invariant,
            first.found_at_case,
            first.found_after.as_secs_f64(),
            first.seed
        );
        out!("  {}", first.what.replace('\n', "\n  "));
    }
    let distinct = report.distinct_failures();
    out!("{} distinct failures", distinct.len());
    for (target, invariant, count, first) in distinct {
        out!(
            "FAIL {target}: {invariant} ({count} cases; first at case {}, after {:.1}s, seed {})",
            first.found_at_case,
            first.found_after.as_secs_f64(),
            first.seed
        );
        out!("  {}", first.what.replace('\n', "\n  "));
        if target == "graph" {
            out!(
                "  reproduce: cargo run --release -- run --seed {}",
                first.seed
            );
        }
    }
}

/// A bar over the campaign's cases (or its time budget), with the rate and the failures
/// found so far; drawn only when stderr is a terminal.
fn progress_bar(c: &campaign::Campaign) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let (len, unit) = match (c.seeds, c.time_budget) {
        (Some(n), _) => (n, "{pos}/{len} cases"),
        (None, Some(t)) => (t.as_millis() as u64, "{elapsed}"),
        (None, None) => (0, "{elapsed}"),
    };
    let template = format!("  [{{bar:32}}] {unit}  {{msg}}");
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style)
}

fn run_one(seed: u64) -> ExitCode {
    let case = GraphCase::generate(seed);
    let report = Sim::new(seed)
        .with_faults(campaign::swarm_faults(seed))
        .run(case.root());
    for line in report.trace.timeline() {
        out!("{line}");
    }
    out!("trace hash {:016x}", report.trace.hash());
    match report.failure() {
        None => {
            out!("verdict: ok");
            ExitCode::SUCCESS
        }
        Some(f) => {
            out!("verdict: FAILED: {f}");
            ExitCode::FAILURE
        }
    }
}
