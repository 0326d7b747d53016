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

/// Runs `otpsim args`, checks that it exits with status 2 and says `reason`; its stderr.
fn fails_with(args: &[&str], reason: &str) -> String {
    let out = otpsim(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "otpsim {args:?}: {err}");
    assert!(
        err.contains(reason),
        "otpsim {args:?} should say {reason:?}: {err}"
    );
    err
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
    assert!(
        line("digest").starts_with("Print a digest of the traces"),
        "{help}"
    );
    assert!(
        line("compare").starts_with("Run every corpus case of one target on another"),
        "{help}"
    );
}

#[test]
fn a_bad_argument_exits_2_with_its_reason() {
    fails_with(&["fuzz", "--shard", "3/2"], "shard 3/2: need 0 <= I < N");
    fails_with(
        &["fuzz", "--family", "meteor"],
        "unknown fault family \"meteor\"",
    );
}

#[cfg(madsim)]
#[test]
fn an_unknown_target_exits_2_naming_the_known_ones() {
    fails_with(
        &["fuzz", "--target", "nope", "--seeds", "1"],
        "unknown target `nope` (known: graph, cluster-graph, tree, kv",
    );
}

/// `compare` names the unknown target, and a corpus file it cannot read, with exit 2.
#[cfg(madsim)]
#[test]
fn compare_refuses_an_unknown_target_and_a_malformed_file() {
    fails_with(
        &["compare", "--on", "nope"],
        "unknown target `nope` (known: cluster-graph, tree, kv",
    );
    let dir = std::env::temp_dir().join("otpsim-cli-compare");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("swarm-bad.json"), "{\"schema\": 1").unwrap();
    let err = fails_with(
        &[
            "compare",
            "--on",
            "swarm",
            "--corpus",
            dir.to_str().unwrap(),
        ],
        "not valid JSON",
    );
    assert!(err.contains("swarm-bad.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let empty = std::env::temp_dir().join("otpsim-cli-compare-none");
    fails_with(
        &[
            "compare",
            "--on",
            "swarm",
            "--corpus",
            empty.to_str().unwrap(),
        ],
        "no corpus file of target `swarm`",
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
        let err = fails_with(&["replay", file], problem);
        assert!(err.contains(file), "the message names {file}: {err}");
    }
    fails_with(&["conform", truncated.arg()], "not valid JSON");
}

/// `digest` prints the same digests on every run, one line per target asked for.
#[cfg(madsim)]
#[test]
fn digests_are_the_same_on_every_run() {
    let args = [
        "digest", "--seeds", "30", "--target", "graph", "--target", "kv",
    ];
    let (a, b) = (otpsim(&args), otpsim(&args));
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8_lossy(&a.stdout);
    let targets: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(targets, ["graph", "kv"], "{text}");
    fails_with(&["digest", "--target", "nope"], "unknown target `nope`");
}

/// Output cut short by the reader (`otpsim replay FILE | head`) ends the program quietly:
/// no panic about a broken pipe. Here the reader is gone before the first line.
#[cfg(madsim)]
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/tree-golden-one-for-all.json"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpsim"))
        .args(["replay", golden])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the otpsim binary runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("it ends");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(out.status.success(), "{:?}", out.status);
}
