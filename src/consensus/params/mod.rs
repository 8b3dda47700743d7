//! Chain parameters of both families, and [`Network`], the one parser of `--chain` (and of the
//! node's `chain` setting).
//!
//! - [`bitcoin`]: Bitcoin's networks ([`BitcoinNetwork`]) and their parameters ([`BitcoinParams`]).
//! - [`ledger`]: powkit's own chains ([`LedgerNetwork`]) and their parameters ([`LedgerParams`]).

pub mod bitcoin;
pub mod ledger;

use std::fmt;
use std::str::FromStr;

pub use bitcoin::{BitcoinNetwork, BitcoinParams};
pub use ledger::{LedgerNetwork, LedgerParams};

/// Any chain powkit knows, of either family: what `--chain` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// A Bitcoin network: `bitcoin`, `bitcoin-testnet`, `bitcoin-regtest`.
    Bitcoin(BitcoinNetwork),
    /// A powkit chain: `powkit`, `powkit-regtest`.
    Ledger(LedgerNetwork),
}

impl Network {
    /// Every network, Bitcoin's first, in the order error messages list them.
    pub const ALL: [Network; 5] = [
        Network::Bitcoin(BitcoinNetwork::Bitcoin),
        Network::Bitcoin(BitcoinNetwork::BitcoinTestnet),
        Network::Bitcoin(BitcoinNetwork::BitcoinRegtest),
        Network::Ledger(LedgerNetwork::Powkit),
        Network::Ledger(LedgerNetwork::PowkitRegtest),
    ];

    /// Its name on the command line (`bitcoin`, ..., `powkit-regtest`).
    pub fn name(self) -> &'static str {
        match self {
            Network::Bitcoin(b) => b.name(),
            Network::Ledger(l) => l.name(),
        }
    }

    /// The Bitcoin network, when it is one (commands that take only Bitcoin chains).
    pub fn bitcoin(self) -> Option<BitcoinNetwork> {
        match self {
            Network::Bitcoin(b) => Some(b),
            Network::Ledger(_) => None,
        }
    }

    /// The powkit chain, when it is one (commands that take only powkit chains).
    pub fn ledger(self) -> Option<LedgerNetwork> {
        match self {
            Network::Ledger(l) => Some(l),
            Network::Bitcoin(_) => None,
        }
    }

    /// Every name, comma-separated (for messages).
    pub fn names() -> String {
        Network::ALL.map(Network::name).join(", ")
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--chain` name that is none of [`Network::ALL`]. Displays as
/// `unknown chain 'NAME' (expected bitcoin, bitcoin-testnet, bitcoin-regtest, powkit, powkit-regtest)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown chain '{0}' (expected {names})", names = Network::names())]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;
    /// One of the five names, exactly.
    ///
    /// # Errors
    /// Any other string ([`UnknownNetwork`], which lists the names).
    fn from_str(s: &str) -> Result<Network, UnknownNetwork> {
        Network::ALL.into_iter().find(|n| n.name() == s).ok_or_else(|| UnknownNetwork(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_unknown_names_list_them_all() {
        for n in Network::ALL {
            assert_eq!(n.name().parse::<Network>(), Ok(n));
            assert_eq!(n.to_string(), n.name());
        }
        for b in BitcoinNetwork::ALL {
            assert!(Network::ALL.contains(&Network::Bitcoin(b)));
        }
        for l in LedgerNetwork::ALL {
            assert!(Network::ALL.contains(&Network::Ledger(l)));
            assert_eq!(l.name(), l.params().name);
        }
        let e = "bitcoin-mainnet".parse::<Network>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown chain 'bitcoin-mainnet' (expected bitcoin, bitcoin-testnet, bitcoin-regtest, powkit, powkit-regtest)"
        );
    }
}
