#![no_main]
//! Fuzz target `rpc_request`: the property is [`powkit_fuzz::rpc_request`] (fuzz/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| powkit_fuzz::rpc_request(data));
