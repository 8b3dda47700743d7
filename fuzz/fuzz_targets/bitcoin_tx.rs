#![no_main]
//! Fuzz target `bitcoin_tx`: the property is [`powkit_fuzz::bitcoin_tx`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::bitcoin_tx(data));
