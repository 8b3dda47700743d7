#![no_main]
//! Fuzz target `ledger_block`: the property is [`powkit_fuzz::ledger_block`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::ledger_block(data));
