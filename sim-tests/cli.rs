//! The `otpsim` command line as a user meets it: every command says what it does, and bad
//! arguments and malformed files get a reason and exit status 2.

#[cfg(madsim)]
use std::path::PathBuf;
use std::process::{Command, Output};

fn otpsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otpsim"))
        .args(args)
        .output()
        .expect("the otpsim binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A file in the system's temporary directory, removed when dropped.
#[cfg(madsim)]
struct TempFile(PathBuf);

#[cfg(madsim)]
impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("otpsim-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("the temporary directory is writable");
        TempFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

#[cfg(madsim)]
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Each command's help line is its own (the `conform` text once sat above `replay`, which
/// left `conform` without one and `replay` with both).
#[test]
fn every_command_says_what_it_does() {
    let out = otpsim(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let line = |command: &str| -> String {
        help.lines()
            .find(|l| l.trim_start().starts_with(command))
            .unwrap_or_else(|| panic!("`{command}` is listed in:\n{help}"))
            .trim_start()[command.len()..]
            .trim()
            .to_string()
    };
    assert!(line("fuzz").starts_with("Run a campaign"), "{help}");
    assert!(line("run ").starts_with("Run one generated case"), "{help}");
    assert!(line("replay").starts_with("Re-run a saved case"), "{help}");
    assert!(
        line("conform").starts_with("Run a scenario of the OTP oracle"),
        "{help}"
    );
}

#[test]
fn a_bad_argument_exits_2_with_its_reason() {
    let out = otpsim(&["fuzz", "--shard", "3/2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("shard 3/2: need 0 <= I < N"),
        "{}",
        stderr(&out)
    );
    let out = otpsim(&["fuzz", "--family", "meteor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown fault family \"meteor\""),
        "{}",
        stderr(&out)
    );
}

#[cfg(madsim)]
#[test]
fn an_unknown_target_exits_2_naming_the_known_ones() {
    let out = otpsim(&["fuzz", "--target", "nope", "--seeds", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown target `nope` (known: graph, tree, kv"),
        "{}",
        stderr(&out)
    );
}

#[cfg(madsim)]
#[test]
fn a_malformed_corpus_file_exits_2_naming_the_file_and_the_problem() {
    let missing = std::env::temp_dir().join("otpsim-cli-no-such-file.json");
    let truncated = TempFile::new("truncated.json", "{\"schema\": 1, \"target\": \"tree\"");
    let incomplete = TempFile::new("incomplete.json", "{\"schema\": 1, \"target\": \"tree\"}");
    for (file, problem) in [
        (missing.to_str().unwrap(), "No such file"),
        (truncated.arg(), "not valid JSON"),
        (incomplete.arg(), "missing field"),
    ] {
        let out = otpsim(&["replay", file]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(file) && err.contains(problem), "{file}: {err}");
    }
    let out = otpsim(&["conform", truncated.arg()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
}
