//! Consensus: chain parameters of both families (`params`, with [`Network`], the `--chain` parser),
//! the difficulty retarget, the validation rules (one function per rule, see `rules`), and the
//! script stage over Bitcoin Core's interpreter (`script`).
//! docs/CONSENSUS.md lists every rule with its source.

pub mod asert;
pub mod ledger;
pub mod params;
pub mod pow;
pub mod rules;
pub mod script;

pub use params::{
    BitcoinNetwork, BitcoinParams, ChainArgError, ChainSpec, LedgerNetwork, LedgerParams, Network, SpecError,
    UnknownNetwork,
};
pub use rules::RuleError;
