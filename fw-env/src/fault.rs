//! Named crash points between the steps of a write, so that "power cut here" is a test.
//!
//! Built only with the `fault-injection` feature, which the crate's tests and bootcount's
//! enable (dev-dependencies) and release builds for the robot do not: without it, every point
//! compiles to nothing and `FW_ENV_TEST_CRASH_AT` means nothing. With it, when that environment
//! variable names a point, the process aborts there, leaving the storage exactly as a power cut
//! at that instant would leave what was already handed to the kernel. The integration tests fire
//! every point in every storage mode.
#![cfg_attr(not(feature = "fault-injection"), allow(dead_code))]

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

/// Whether the tests asked for a crash at `name`.
#[cfg(feature = "fault-injection")]
fn asked(name: &str) -> bool {
    debug_assert!(POINTS.contains(&name), "unknown crash point {name}");
    std::env::var_os(CRASH_VAR).is_some_and(|v| v == name)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
fn asked(_name: &str) -> bool {
    false
}

/// Abort here if the tests asked for it.
#[inline]
pub fn point(name: &str) {
    if asked(name) {
        eprintln!("fw-env: crashing at {name} ({CRASH_VAR})");
        std::process::abort();
    }
}

/// Whether a crash was asked for at a point that tears a write in half (the caller writes
/// half, then calls [`point`]).
#[inline]
pub fn tear(name: &str) -> bool {
    asked(name)
}
