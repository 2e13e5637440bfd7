//! Named crash points between the steps of a write, so that "power cut here" is a test.
//!
//! When the environment variable `FW_ENV_TEST_CRASH_AT` names a point, the process aborts
//! there, leaving the storage exactly as a power cut at that instant would leave what was
//! already handed to the kernel. The integration tests fire every point in every storage mode.
//! Unset (always, in production), each point costs one environment lookup per write.

/// The variable that names the point to crash at.
pub const CRASH_VAR: &str = "FW_ENV_TEST_CRASH_AT";

/// Every crash point, in the order a write passes them.
pub const POINTS: &[&str] = &[
    "before-write",
    "temp-half-written",
    "temp-written",
    "temp-synced",
    "renamed",
    "dir-synced",
    "copy-half-written",
    "copy-written",
    "copy-synced",
    "obsolete-marked",
];

/// Abort here if the tests asked for it.
pub fn point(name: &str) {
    debug_assert!(POINTS.contains(&name), "unknown crash point {name}");
    if std::env::var_os(CRASH_VAR).is_some_and(|v| v == name) {
        eprintln!("fw-env: crashing at {name} ({CRASH_VAR})");
        std::process::abort();
    }
}

/// Whether a crash was asked for at a point that tears a write in half.
pub fn tear(name: &str) -> bool {
    std::env::var_os(CRASH_VAR).is_some_and(|v| v == name)
}
