//! Named crash points between and inside the migration's steps, so that "power cut here" is a
//! test: fw-env's mechanism ([`fw_env::crash_points!`]), armed only with this crate's
//! `fault-injection` feature (its tests); without it every point compiles to nothing. When
//! `ZBOT_MIGRATE_TEST_CRASH_AT` names a point, the process aborts there: what was handed to the
//! kernel stays, nothing after. The GPT resize adds `gpt-write-K` after its K-th sector write
//! (K from 1; [`GPT_WRITE_PREFIX`]).

/// Prefix of the points after each sector write of the GPT resize.
pub const GPT_WRITE_PREFIX: &str = "gpt-write-";

fw_env::crash_points! {
    program: "zbot-migrate-env",
    var: "ZBOT_MIGRATE_TEST_CRASH_AT",
    points: [
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
    ],
    prefixes: [GPT_WRITE_PREFIX],
}
