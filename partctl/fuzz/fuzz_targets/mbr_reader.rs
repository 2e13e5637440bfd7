//! Fuzz target: `partctl::fuzzing::mbr` must not panic on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| partctl::fuzzing::mbr(data));
