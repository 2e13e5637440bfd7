//! ZBot updates: signed `.swu` packages SWUpdate accepts (`pack`, `create`, `inspect`), the
//! robot's authenticated agent (`agent`) and the push client (`update`).
//!
//! Packing needs OpenSSL (CMS signatures) and the C compression libraries; it sits behind the
//! default cargo feature `pack`. Built with `--no-default-features`, the crate has none of them:
//! that is the build that ships on the robot (the agent, and `update` for a robot that updates
//! another, need none: the client is plain TCP, HTTP and a receive-only websocket).
#![deny(missing_docs)]

pub mod agent;
pub mod cli;
pub mod client;
pub mod cpio;
pub mod digest;
pub mod events;
pub mod inspect;
pub mod progress;
pub mod report;
pub mod swdesc;
pub mod update;
pub mod version;
pub mod ws;

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
