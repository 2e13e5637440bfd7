//! Named crash points between and inside the migration's steps, so that "power cut here" is a
//! test (the model of fw-env's `fault`). Built only with the `fault-injection` feature (the
//! crate's tests); without it every point compiles to nothing. When `ZBOT_MIGRATE_TEST_CRASH_AT`
//! names a point, the process aborts there: what was handed to the kernel stays, nothing after.

/// The variable that names the point to crash at.
pub const CRASH_VAR: &str = "ZBOT_MIGRATE_TEST_CRASH_AT";

/// Every fixed crash point, in the order a full migration passes them. The GPT resize adds
/// `gpt-write-K` after its K-th sector write (K from 1; [`GPT_WRITE_PREFIX`]).
pub const POINTS: &[&str] = &[
    "copy0-half-written",
    "copy0-written",
    "copy1-half-written",
    "copy1-written",
    "after-copies",
    "fip-temp-half-written",
    "fip-temp-synced",
    "fip-renamed",
    "after-fip",
    "after-resize",
    "config-temp-synced",
    "config-renamed",
    "after-config",
];

/// Prefix of the points after each sector write of the GPT resize.
pub const GPT_WRITE_PREFIX: &str = "gpt-write-";

#[cfg(feature = "fault-injection")]
fn asked(name: &str) -> bool {
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
        eprintln!("zbot-migrate-env: crashing at {name} ({CRASH_VAR})");
        std::process::abort();
    }
}

/// Whether a crash was asked for at a point that tears a write in half (the caller writes
/// half, then calls [`point`]).
#[inline]
pub fn tear(name: &str) -> bool {
    asked(name)
}
