//! Fuzz target: `partctl::fuzzing::gpt` must not panic on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| partctl::fuzzing::gpt(data));
