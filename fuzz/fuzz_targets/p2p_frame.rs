#![no_main]
//! Fuzz target `p2p_frame`: the property is [`powkit_fuzz::p2p_frame`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::p2p_frame(data));
