#![no_main]
//! See `pat_core::fuzzing::introspection_form` for the invariant checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| pat_core::fuzzing::introspection_form(data));
