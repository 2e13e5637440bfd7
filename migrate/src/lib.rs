//! Migrate a field robot's SD card from the vendor U-Boot's environment (a 192 KiB file in the
//! 256K ext4 on p2) to U-Boot's redundant raw environment (two copies after that ext4, p2 grown
//! to 1M), from the recovery system, power-safely and rerunnably (docs/env-backend.md,
//! "Migration").
//!
//! - [`core`]: the pure core: the facts found on the card become the steps still to run, or a
//!   refusal;
//! - [`card`]: the I/O edge: read the facts, run each step (write + fsync + read back; temp
//!   file + rename for files; partctl's ordered GPT writes);
//! - [`fault`]: crash points for the power-cut tests.
//!
//! ```no_run
//! use zbot_migrate_env::card::Target;
//! # fn t(target: Target) -> Result<(), zbot_migrate_env::card::Error> {
//! let plan = target.run(true, &mut std::io::stdout())?; // --dry-run
//! println!("{} steps to run", plan.steps.len());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod card;
pub mod cli;
pub mod core;
pub mod fault;
