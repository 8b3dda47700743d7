#![no_main]
//! Fuzz target `ledger_tx`: the property is [`powkit_fuzz::ledger_tx`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::ledger_tx(data));
