#![no_main]
//! Fuzz target `p2p_message`: the property is [`powkit_fuzz::p2p_message`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::p2p_message(data));
