//! Read and write the U-Boot environment, byte-compatible with U-Boot and safe against power
//! loss.
//!
//! The layers, from pure to I/O:
//! - [`vars`]: the variable set and change sets;
//! - [`codec`]: the on-disk format (CRC, flags byte, data area);
//! - [`text`]: `mkenvimage`'s text format, for `mkimage` and the defaults;
//! - [`redundant`]: which of two copies is current and what flags a write gives;
//! - [`flags`]: `.flags` type and access rules;
//! - [`config`]: the `fw_env.config` file;
//! - [`defaults`]: the default environment file and what makes it usable;
//! - [`storage`], [`lock`]: files, devices and the shared lock;
//! - [`plan`]: the pure core: select the current copy, plan a write, over bytes;
//! - [`store`]: the API the other crates use: read a snapshot, apply changes in one write;
//! - [`open`]: open a store as the command-line tools do ([`OpenOptions`]).
//!
//! ```no_run
//! use fw_env::{Changes, Store};
//! let store = Store::from_config_file("/etc/fw_env.config")?;
//! let snapshot = store.read()?;
//! println!("next_boot = {:?}", snapshot.vars.get("next_boot"));
//! store.apply(&Changes::new().set("next_boot", "otafs"))?;
//! # Ok::<(), fw_env::Error>(())
//! ```
#![deny(missing_docs)]

/// The command-line tools (feature `cli`, on by default): not a library API.
#[cfg(feature = "cli")]
pub mod cli;
pub mod codec;
pub mod config;
pub mod defaults;
/// Crash points for the power-loss tests (public only with the `fault-injection` feature).
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault;
pub mod flags;
pub mod lock;
pub mod open;
pub mod plan;
pub mod redundant;
pub mod storage;
pub mod store;
pub mod text;
pub mod vars;

pub use codec::Layout;
pub use config::{Config, ConfigError, CopyLocation};
pub use defaults::{Defaults, DefaultsFrom};
pub use open::OpenOptions;
pub use redundant::FlagScheme;
pub use store::{CopyReport, CopyStatus, Error, Snapshot, Source, Store, WriteReport};
pub use vars::{Changes, NameError, Vars};

/// An error and its causes on one line, `: `-separated, for the tools' `error:` line. A cause
/// whose text the message already contains is not repeated (the errors of this crate name
/// their cause in their message, with the file and the fix around it).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
