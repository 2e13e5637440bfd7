//! ZBot boot policy: boot counting, trials, rollback and health checks over the U-Boot
//! environment. The contract is `docs/boot-contract.md`; [`engine`] is its reference
//! implementation, pure and I/O-free.
#![deny(missing_docs)]

pub mod cli;
pub mod cmdline;
pub mod engine;
pub mod files;
pub mod health;
#[cfg(test)]
mod invariants;
#[cfg(test)]
mod model;
pub mod slots;
pub mod state;

pub use engine::{
    apply_op, bootloader_step, install_target, status, BootDecision, Booted, Op, OpError, Outcome,
    Why,
};
pub use slots::{Role, Slot, SlotConfig, SlotId};
pub use state::BootState;
