//! Bitcoin Core as a source of work: a JSON-RPC client ([`rpc`]), its `getblocktemplate` answer
//! checked ([`template`]), the coinbase a template's block needs ([`coinbase`]) and the payout
//! script it pays ([`address`]), and all of it as a Stratum job source, [`GbtSource`] ([`source`]).
//!
//! Floor 3: uses [`crate::primitives`], [`crate::sha256`], [`crate::consensus`] (the BIP34 height
//! push is consensus's `script_push_number`) and [`crate::stratum`] (the `JobSource` trait).

pub mod address;
pub mod coinbase;
pub mod rpc;
pub mod source;
pub mod template;

pub use address::{script_for_address, script_from_hex, AddressError, Network};
pub use coinbase::{CoinbaseError, CoinbaseSplit};
pub use rpc::{Auth, RpcClient, RpcError};
pub use source::{GbtConfig, GbtSource, Payout, SourceError};
pub use template::BlockTemplate;
