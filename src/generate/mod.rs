//! Generators of valid test chains for both families, mined with the CPU engine: Bitcoin headers and
//! blocks ([`bitcoin`]) and powkit chains with signed transfers ([`ledger`]). `powkit chain generate`
//! and the tests and benchmarks use them.

pub mod bitcoin;
pub mod ledger;
