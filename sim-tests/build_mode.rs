/// Fails when an outside `RUSTFLAGS` / `CARGO_ENCODED_RUSTFLAGS` silently replaced the
/// `--cfg madsim` of `.cargo/config.toml` (cargo uses only one rustflags source).
#[test]
#[allow(clippy::assertions_on_constants)] // constant per build: that is the point
fn build_mode_is_explicit() {
    assert!(
        cfg!(madsim) || cfg!(dst_native),
        "simulation is OFF because RUSTFLAGS/CARGO_ENCODED_RUSTFLAGS overrode .cargo/config.toml; \
         run `cargo test` (simulated) or `cargo test-native`"
    );
    assert_eq!(otpsim::rt::SIMULATED, cfg!(madsim));
}

/// In a native build the harness refuses at once, says what to add, and writes nothing to the
/// corpus: a user's crate without `.cargo/config.toml` once ran 200 native cases for four
/// minutes and saved a "determinism" failure that did not exist (issue 21).
#[cfg(not(madsim))]
#[test]
fn natively_the_harness_refuses_at_once_and_writes_nothing() {
    use otpsim::sim::harness::Harness;
    let dir = std::env::temp_dir().join(format!("otpsim-native-corpus-{}", std::process::id()));
    let harness = Harness::new(otpsim::sim::tree::Tree).corpus(Some(dir.clone()));
    let panic = std::panic::catch_unwind(|| harness.run()).expect_err("the harness refuses");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("needs the simulator"), "{message}");
    assert!(
        message.contains(r#"rustflags = ["--cfg", "madsim"]"#),
        "{message}"
    );
    assert!(!dir.exists(), "nothing is written to the corpus");
    let campaign = otpsim::sim::campaign::Campaign {
        seeds: Some(1),
        ..Default::default()
    };
    let refused = otpsim::sim::campaign::run(&campaign, &otpsim::targets(), |_| {});
    assert!(refused.is_err_and(|e| e.contains("needs the simulator")));
}
