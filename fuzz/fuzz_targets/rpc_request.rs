#![no_main]
//! Fuzz target `rpc_request` (not yet in fuzz/Cargo.toml's [[bin]] list): JSON-RPC requests as the
//! node's RPC server parses them, HTTP framing (`parse_http_request`: request line, headers,
//! Content-Length, body) and the JSON-RPC body (`parse_json_request`). The first byte picks which;
//! any input must give a result or an error, never a panic.
//!
//! Both functions come with the RPC engineer's branch of issue 12; once merged, uncomment this
//! target's [[bin]] entry in fuzz/Cargo.toml, add `rpc_request` to tools/fuzz.sh's list, and move
//! this check into fuzz/checks.rs (with its seeds in fuzz/seeds/rpc_request/) so that
//! tests/fuzz_regressions.rs replays it.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else { return };
    if pick % 2 == 0 {
        let _ = powkit::node::rpc::parse_http_request(input);
    } else {
        let _ = powkit::node::rpc::parse_json_request(input);
    }
});
