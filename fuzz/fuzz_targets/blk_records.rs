#![no_main]
//! Fuzz target `blk_records`: the property is [`powkit_fuzz::blk_records`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::blk_records(data));
