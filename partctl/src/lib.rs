//! partctl: create, check and repair the ZBot's hybrid GPT/MBR SD card.
//!
//! Data flows one way: a [`layout::Layout`] describes the card; [`model`] turns it into the exact
//! table bytes; [`disk::Snapshot`] reads the table areas of a real card from any `Read + Seek`;
//! [`check::check`] turns a snapshot into typed problems and a kernel-equivalent verdict;
//! [`repair::plan`] turns a snapshot into an ordered list of sector writes that [`repair::apply`]
//! performs after saving the old sectors. Only [`blockdev`] talks to the kernel (ioctls).
#![deny(missing_docs)]

pub mod blockdev;
pub mod check;
pub mod cli;
pub mod create;
pub mod disk;
pub mod emit;
pub mod files;
pub mod fuzzing;
pub mod gpt;
pub mod guid;
pub mod kernel;
pub mod layout;
pub mod mbr;
pub mod model;
pub mod print;
pub mod repair;

/// Sector size: the SD card and every image use 512-byte logical sectors.
pub const SECTOR: u64 = 512;
