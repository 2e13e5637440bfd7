//! ZBot updates: signed `.swu` packages SWUpdate accepts (`pack`, `create`, `inspect`) and the
//! robot's authenticated agent (`agent`); the push client of issue 11 is still to come.
//!
//! The host-side verbs need OpenSSL (CMS signatures) and the C compression libraries; they
//! sit behind the default cargo feature `pack`. Built with `--no-default-features`, the crate
//! has none of them: that is the build that ships on the robot (the agent needs none).
#![deny(missing_docs)]

pub mod agent;
pub mod cli;
pub mod cpio;
pub mod events;
pub mod inspect;
pub mod swdesc;
pub mod version;

#[cfg(feature = "pack")]
pub mod client;
#[cfg(feature = "pack")]
pub mod compress;
#[cfg(feature = "pack")]
pub mod digest;
#[cfg(feature = "pack")]
pub mod pack;
#[cfg(feature = "pack")]
pub mod sign;

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
