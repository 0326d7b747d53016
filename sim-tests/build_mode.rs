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
