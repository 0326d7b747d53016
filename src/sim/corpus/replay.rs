//! Replaying corpus files against the targets they name, and checking that each still does
//! what it records.

use super::{files, load, write, CorpusFile};
use crate::sim::harness::{AnyTarget, CaseReport};
use std::sync::Arc;

/// Replays a corpus file against the target it names and checks its expected outcome;
/// `Err` says what differs.
pub fn replay_file(
    file: &CorpusFile,
    targets: &[Arc<dyn AnyTarget>],
) -> Result<CaseReport, String> {
    let report = replay_unchecked(file, targets)?;
    file.expect
        .check(report.violation.as_ref(), report.trace.hash())?;
    Ok(report)
}

fn replay_unchecked(
    file: &CorpusFile,
    targets: &[Arc<dyn AnyTarget>],
) -> Result<CaseReport, String> {
    let target = targets
        .iter()
        .find(|t| t.name() == file.target)
        .ok_or_else(|| {
            let known: Vec<String> = targets.iter().map(|t| t.name()).collect();
            format!(
                "field `target`: unknown target `{}` (known: {})",
                file.target,
                known.join(", ")
            )
        })?;
    target.clone().replay(&file.case)
}

/// One corpus file's case run on its own target and on another that takes the same cases
/// ([`side_by_side`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideBySide {
    /// The file.
    pub file: std::path::PathBuf,
    /// What it shows.
    pub description: String,
    /// The invariant the case breaks on its own target (`None`: it passes), and on the other.
    pub own: Option<String>,
    /// The same on the other target.
    pub other: Option<String>,
}

/// Runs every corpus file of `dir` whose target is `from` on it and on `on` (a target that
/// takes the same cases: `cp` takes `swarm`'s), one row per file, sorted by file name. `Err`
/// for a target unknown in `targets`, a file that does not parse or whose case `on` does not
/// take, or no file of `from` in `dir`.
pub fn side_by_side(
    dir: &std::path::Path,
    from: &str,
    on: &str,
    targets: &[Arc<dyn AnyTarget>],
) -> Result<Vec<SideBySide>, String> {
    let known: Vec<String> = targets.iter().map(|t| t.name()).collect();
    for name in [from, on] {
        if !known.iter().any(|k| k == name) {
            return Err(format!(
                "unknown target `{name}` (known: {})",
                known.join(", ")
            ));
        }
    }
    let mut rows = Vec::new();
    for path in files(dir) {
        let mut file = load(&path).map_err(|e| e.to_string())?;
        if file.target != from {
            continue;
        }
        let verdict = |file: &CorpusFile| -> Result<Option<String>, String> {
            let report =
                replay_unchecked(file, targets).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(report.violation.map(|v| v.invariant.to_string()))
        };
        let own = verdict(&file)?;
        file.target = on.to_string();
        let other = verdict(&file)?;
        rows.push(SideBySide {
            file: path.clone(),
            description: file.description.clone(),
            own,
            other,
        });
    }
    if rows.is_empty() {
        return Err(format!(
            "no corpus file of target `{from}` in {}",
            dir.display()
        ));
    }
    Ok(rows)
}

/// Replays the corpus files of `dir` whose target is one of `targets` (every file, if
/// `all_targets`: then an unknown target is a problem too). Returns the problems, one line
/// each naming the file: a file that does not parse, or that no longer does what it records.
///
/// With `update`, a file that no longer does what it records is rewritten to expect what it
/// does now (a golden file keeps a pinned trace hash) and reported on stderr instead.
pub fn replay_corpus(
    dir: &std::path::Path,
    targets: &[Arc<dyn AnyTarget>],
    all_targets: bool,
    update: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for path in files(dir) {
        let file = match load(&path) {
            Ok(file) => file,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if !all_targets && !targets.iter().any(|t| t.name() == file.target) {
            continue;
        }
        let outcome = replay_unchecked(&file, targets).and_then(|report| {
            let hash = report.trace.hash();
            let violation = report.violation.as_ref();
            match file.expect.check(violation, hash) {
                Ok(()) => Ok(()),
                Err(differs) if update => {
                    let expect = file.expect.renewed(violation, hash);
                    let updated = CorpusFile { expect, ..file };
                    write(&path, &updated).map_err(|e| e.to_string())?;
                    eprintln!("otpsim: updated {} ({differs})", path.display());
                    Ok(())
                }
                Err(differs) => Err(differs),
            }
        });
        if let Err(e) = outcome {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    problems
}

/// Whether `OTPSIM_UPDATE` asks corpus replays to rewrite expectations.
pub fn update_requested() -> bool {
    std::env::var("OTPSIM_UPDATE").is_ok_and(|v| !v.is_empty() && v != "0")
}
