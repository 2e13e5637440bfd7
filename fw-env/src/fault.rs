//! Named crash points between the steps of a write, so that "power cut here" is a test.
//!
//! Built only with the `fault-injection` feature, which the crate's tests and bootcount's
//! enable (dev-dependencies) and release builds for the robot do not: without it, every point
//! compiles to nothing and `FW_ENV_TEST_CRASH_AT` means nothing. With it, when that environment
//! variable names a point, the process aborts there, leaving the storage exactly as a power cut
//! at that instant would leave what was already handed to the kernel. The integration tests fire
//! every point in every storage mode.
//!
//! The mechanism is [`crash_points!`](crate::crash_points), written once here for every crate
//! with crash points (zbot-migrate-env's `fault` is the other).
#![cfg_attr(not(feature = "fault-injection"), allow(dead_code))]

/// Define the calling module's crash points: `CRASH_VAR` (the environment variable that names
/// the point to crash at), `POINTS` (the fixed points, in the order a run passes them),
/// `point(name)` (abort there if asked) and `tear(name)` (whether a crash was asked at a point
/// that tears a write in half: the caller writes half, then calls `point`).
///
/// Armed only when the *calling* crate is built with its own `fault-injection` feature: the
/// macro's `cfg` is expanded there, so each crate's release build compiles every point to
/// nothing. `prefixes` name points numbered at run time (`gpt-write-K`); an unknown name is a
/// bug of the caller, caught by a debug assertion in the armed builds.
#[macro_export]
macro_rules! crash_points {
    (
        program: $program:literal,
        var: $var:literal,
        points: [$($point:literal),* $(,)?]
        $(, prefixes: [$($prefix:expr),* $(,)?])? $(,)?
    ) => {
        /// The variable that names the point to crash at.
        pub const CRASH_VAR: &str = $var;

        /// Every fixed crash point, in the order a run passes them.
        pub const POINTS: &[&str] = &[$($point),*];

        /// Whether the tests asked for a crash at `name`.
        #[cfg(feature = "fault-injection")]
        fn asked(name: &str) -> bool {
            debug_assert!(
                POINTS.contains(&name) $($(|| name.starts_with($prefix))*)?,
                "unknown crash point {name}"
            );
            ::std::env::var_os(CRASH_VAR).is_some_and(|v| v == name)
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
                ::std::eprintln!("{}: crashing at {name} ({CRASH_VAR})", $program);
                ::std::process::abort();
            }
        }

        /// Whether a crash was asked for at a point that tears a write in half (the caller
        /// writes half, then calls [`point`]).
        #[inline]
        pub fn tear(name: &str) -> bool {
            asked(name)
        }
    };
}

crate::crash_points! {
    program: "fw-env",
    var: "FW_ENV_TEST_CRASH_AT",
    points: [
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
    ],
}
