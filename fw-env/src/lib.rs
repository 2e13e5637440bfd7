//! Read and write the U-Boot environment.
#![deny(missing_docs)]

pub mod vars;
pub use vars::{Changes, NameError, Vars};
