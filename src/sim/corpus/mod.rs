//! The corpus: saved cases (regressions and found failures), replayed by `cargo test`.
//!
//! A corpus file is JSON in our own format, versioned by `schema`:
//!
//! ```json
//! {
//!   "schema": 1,
//!   "target": "tree",
//!   "description": "restart_intensity violated at root/sub: ...",
//!   "expect": { "violates": "restart_intensity" },
//!   "case": { "setup": ..., "steps": [...], "seed": 0 }
//! }
//! ```
//!
//! `expect` is either `{"violates": INVARIANT}` (the case must still break it: a known bug
//! kept as a reproducer), `{"passes": {}}` (a fixed bug kept as a regression: it must pass)
//! or `{"passes": {"trace_hash": "0123abcd..."}}` (a golden case: it must pass and produce
//! exactly this trace).
//!
//! When a file no longer does what it records (the bug is fixed, or the runtime's trace
//! legitimately changed), `OTPSIM_UPDATE=1 cargo test` or `otpsim replay --update FILE`
//! rewrites its expectation to what it does now; review the change like any other (a
//! reproducer that passes because its case no longer reaches the bug, after a change to the
//! harness or the system, must be re-aimed, not relabelled).
//!
//! ```
//! use otpsim::sim::corpus::Expect;
//! use otpsim::sim::invariants::{Invariant, Violation};
//! let fixed = Expect::Violates(Invariant::Liveness);
//! assert!(fixed.check(None, 0xabc).is_err()); // the bug is gone
//! assert_eq!(Expect::of(None, 0xabc, false), Expect::Passes { trace_hash: None });
//! let golden = Expect::of(None, 0xabc, true);
//! assert!(golden.check(None, 0xabc).is_ok());
//! assert!(golden.check(None, 0xdef).is_err());
//! let v = Violation::new(Invariant::Liveness, "root", "still restarting");
//! assert!(fixed.check(Some(&v), 0).is_ok());
//! ```

#[cfg(feature = "harness")]
mod replay;

#[cfg(feature = "harness")]
pub use replay::{replay_corpus, replay_file, side_by_side, update_requested, SideBySide};

use super::invariants::{Invariant, Violation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The schema version this build writes and reads.
pub const SCHEMA: u32 = 1;

/// One saved case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    /// The format's version ([`SCHEMA`]).
    pub schema: u32,
    /// The target the case belongs to.
    pub target: String,
    /// One line saying what the case shows.
    pub description: String,
    /// The outcome a replay must reproduce.
    pub expect: Expect,
    /// The case, in the target's own serde form.
    pub case: serde_json::Value,
}

/// What a corpus case must do when replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expect {
    /// Break this invariant.
    Violates(Invariant),
    /// Pass (with exactly this trace, if a hash is given).
    Passes {
        /// [`Trace::hash`](crate::trace::Trace::hash), in hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_hash: Option<String>,
    },
}

impl Expect {
    /// What a run did, as an expectation: the invariant it broke, or passing (pinned to its
    /// trace hash if `pin`).
    pub fn of(violation: Option<&Violation>, trace_hash: u64, pin: bool) -> Expect {
        match violation {
            Some(v) => Expect::Violates(v.invariant.clone()),
            None => Expect::Passes {
                trace_hash: pin.then(|| format!("{trace_hash:016x}")),
            },
        }
    }

    /// What to expect from now on of a case that broke `violation` (or nothing) with this
    /// trace hash: pinned to the hash if this expectation pins one.
    pub fn renewed(&self, violation: Option<&Violation>, trace_hash: u64) -> Expect {
        let pinned = matches!(
            self,
            Expect::Passes {
                trace_hash: Some(_)
            }
        );
        Expect::of(violation, trace_hash, pinned)
    }

    /// Whether a run that broke `violation` (or nothing) with this trace hash did what this
    /// expectation says; `Err` says how it differs.
    pub fn check(&self, violation: Option<&Violation>, trace_hash: u64) -> Result<(), String> {
        match (self, violation) {
            (Expect::Violates(invariant), Some(v)) if v.invariant == *invariant => Ok(()),
            (Expect::Violates(invariant), other) => Err(format!(
                "expected a violation of {invariant}, got {}",
                other.map_or("none".to_string(), |v| v.to_string())
            )),
            (Expect::Passes { trace_hash: None }, None) => Ok(()),
            (
                Expect::Passes {
                    trace_hash: Some(hash),
                },
                None,
            ) => {
                let actual = format!("{trace_hash:016x}");
                if actual == *hash {
                    Ok(())
                } else {
                    Err(format!("expected trace hash {hash}, got {actual}"))
                }
            }
            (Expect::Passes { .. }, Some(v)) => Err(format!("expected to pass, got {v}")),
        }
    }
}

/// Why a corpus file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// It cannot be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a corpus file of this schema.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// No target of that name is known.
    #[error("{file}: unknown target `{target}` (known: {known})")]
    UnknownTarget {
        /// The file.
        file: PathBuf,
        /// The target it names.
        target: String,
        /// The targets there are.
        known: String,
    },
}

impl CorpusFile {
    /// A found failure (its description leads with the known flaw it is an instance of, if
    /// it is one).
    pub fn failure(target: &str, case: serde_json::Value, violation: &Violation) -> CorpusFile {
        let known = match violation.known {
            Some(known) => format!("known flaw {known}: "),
            None => String::new(),
        };
        let mut description = format!("{known}{}: {}", violation.subject, violation.message);
        if let Some((end, _)) = description.char_indices().nth(200) {
            description.truncate(end);
        }
        CorpusFile {
            schema: SCHEMA,
            target: target.into(),
            description,
            expect: Expect::Violates(violation.invariant.clone()),
            case,
        }
    }

    /// The file's name: the target and a hash of the case, so saving twice is idempotent.
    pub fn file_name(&self) -> String {
        let text = serde_json::to_string(&self.case).unwrap_or_default();
        let h = crate::hash::fnv1a(text.as_bytes());
        format!("{}-{h:016x}.json", self.target)
    }

    /// Parses a corpus file; errors name the field (`expect.violates`, `schema`).
    pub fn parse(file: &Path, text: &str) -> Result<CorpusFile, CorpusError> {
        let invalid = |message: String| CorpusError::Invalid {
            file: file.to_path_buf(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        match value.get("schema").map(serde_json::Value::as_u64) {
            Some(Some(v)) if v == u64::from(SCHEMA) => {}
            Some(Some(v)) => {
                return Err(invalid(format!(
                    "field `schema`: version {v}, this build reads version {SCHEMA}"
                )))
            }
            Some(None) => return Err(invalid("field `schema`: expected an integer".into())),
            None => return Err(invalid("field `schema`: missing".into())),
        }
        serde_json::from_value(value).map_err(|e| invalid(format!("{e}")))
    }
}

/// Reads one corpus file.
pub fn load(file: &Path) -> Result<CorpusFile, CorpusError> {
    let text = std::fs::read_to_string(file).map_err(|source| CorpusError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    CorpusFile::parse(file, &text)
}

/// Every `*.json` file of `dir`, sorted (none if `dir` does not exist).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Writes `file` into `dir` (created if needed) under its [own name](CorpusFile::file_name);
/// returns its path.
pub fn save(dir: &Path, file: &CorpusFile) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(file.file_name());
    write(&path, file)?;
    Ok(path)
}

/// Writes `file` at `path` (pretty JSON).
pub fn write(path: &Path, file: &CorpusFile) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(file).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}
