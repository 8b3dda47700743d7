#![no_main]
//! Fuzz target `json_lines`: the property is [`powkit_fuzz::json_lines`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::json_lines(data));
