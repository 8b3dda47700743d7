#![no_main]
//! Fuzz target `bitcoin_block`: the property is [`powkit_fuzz::bitcoin_block`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::bitcoin_block(data));
