//! ZBot updates: signed `.swu` packages SWUpdate accepts (`pack`, `create`, `inspect`) and,
//! later in issue 11, the robot's authenticated agent and the push client.
//!
//! The host-side verbs need OpenSSL (CMS signatures) and the C compression libraries; they
//! sit behind the default cargo feature `pack`. Built with `--no-default-features`, the crate
//! has none of them: that is the build that ships on the robot.
#![deny(missing_docs)]

pub mod cli;
pub mod cpio;
pub mod inspect;
pub mod swdesc;
pub mod version;

#[cfg(feature = "pack")]
pub mod compress;
#[cfg(feature = "pack")]
pub mod pack;
#[cfg(feature = "pack")]
pub mod sign;

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
