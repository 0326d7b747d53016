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
