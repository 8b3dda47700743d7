//! powkit: a proof-of-work toolkit.
//!
//! Modules sit on floors and use only their own floor and below (docs/ARCHITECTURE.md, checked by
//! `tests/layers.rs`): bytes are decoded by [`primitives`]; hashed and verified in batches by the
//! engines [`sha256`], [`gpu`] and [`sigs`]; powkit's chain types are [`ledger`]; the rules and
//! their stages are [`consensus`] (the P2P messages [`net`], the miners' protocol [`stratum`]); the replicated state is [`state`];
//! mining is [`mine`] with the engine choice in [`backend`]; then [`store`], the block tree
//! [`chain`], bulk validation [`validate`] and test chains [`generate`], the [`node`], and the
//! command line [`cli`] on top.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod backend;
pub mod bitcoind;
pub mod chain;
pub mod cli;
pub mod consensus;
pub mod dashboard;
pub mod generate;
pub mod gpu;
pub mod httpd;
pub mod ledger;
pub mod metrics;
pub mod mine;
pub mod net;
pub mod node;
pub mod primitives;
pub mod sha256;
pub mod sigs;
pub mod state;
pub mod store;
pub mod stratum;
pub mod validate;
