#![no_main]
//! See `pat_core::fuzzing::management` for the invariant checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| pat_core::fuzzing::management(data));
