#![no_main]
//! Fuzz target `hex_lines`: the property is [`powkit_fuzz::hex_lines`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::hex_lines(data));
