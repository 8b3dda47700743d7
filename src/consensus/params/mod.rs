//! Chain parameters of both families, and [`Network`], the one parser of `--chain` (and of the
//! node's `chain` setting).
//!
//! - [`bitcoin`]: Bitcoin's networks ([`BitcoinNetwork`]) and their parameters ([`BitcoinParams`]).
//! - [`ledger`]: powkit's own chains ([`LedgerNetwork`]) and their parameters ([`LedgerParams`]).
//! - [`spec`]: chain specs, powkit chains described in a file ([`ChainSpec`], `--chain FILE`).

pub mod bitcoin;
pub mod ledger;
pub mod spec;

use std::fmt;
use std::str::FromStr;

pub use bitcoin::{BitcoinNetwork, BitcoinParams};
pub use ledger::{LedgerNetwork, LedgerParams};
pub use spec::{ChainSpec, SpecError};

/// Any chain powkit knows, of either family: what `--chain` names (a built-in name, or a chain spec
/// file for a powkit chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// A Bitcoin network: `bitcoin`, `bitcoin-testnet`, `bitcoin-regtest`.
    Bitcoin(BitcoinNetwork),
    /// A powkit chain: `powkit`, `powkit-regtest`, or one from a spec file.
    Ledger(LedgerNetwork),
}

impl Network {
    /// Every built-in network, Bitcoin's first, in the order error messages list them.
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

/// A `--chain` name that is none of [`Network::ALL`] and not a file. Displays as `unknown chain
/// 'NAME' (expected bitcoin, bitcoin-testnet, bitcoin-regtest, powkit, powkit-regtest, or a chain
/// spec file from \`powkit chain new\`)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown chain '{0}' (expected {names}, or a chain spec file from `powkit chain new`)", names = Network::names())]
pub struct UnknownNetwork(pub String);

/// Why a `--chain` value was refused: an unknown name, or a spec file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainArgError {
    /// Not a built-in name, and no file of that name.
    #[error(transparent)]
    Unknown(#[from] UnknownNetwork),
    /// A spec file that cannot be read or breaks a limit.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl FromStr for Network {
    type Err = ChainArgError;
    /// One of the five built-in names, exactly; otherwise, when `s` names a file or looks like a
    /// path (holds a `/` or ends in `.json`), the chain spec in that file ([`ChainSpec::load`]:
    /// loaded, checked, and leaked for the life of the process).
    ///
    /// # Errors
    /// Any other string ([`UnknownNetwork`], which lists the names), or a spec that cannot be read
    /// or is not valid ([`SpecError`], which names the file, the field and why).
    fn from_str(s: &str) -> Result<Network, ChainArgError> {
        if let Some(n) = Network::ALL.into_iter().find(|n| n.name() == s) {
            return Ok(n);
        }
        let path = std::path::Path::new(s);
        if s.contains('/') || s.ends_with(".json") || path.is_file() {
            return Ok(Network::Ledger(LedgerNetwork::Custom(ChainSpec::load(path)?)));
        }
        Err(UnknownNetwork(s.to_string()).into())
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
            "unknown chain 'bitcoin-mainnet' (expected bitcoin, bitcoin-testnet, bitcoin-regtest, powkit, \
             powkit-regtest, or a chain spec file from `powkit chain new`)"
        );
        // Something path-like is read as a spec file, and its errors name the file.
        let e = "no/such/spec.json".parse::<Network>().unwrap_err().to_string();
        assert!(e.starts_with("chain spec no/such/spec.json: file: "), "{e}");
    }
}
