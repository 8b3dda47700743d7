//! powkit: a proof-of-work toolkit.
//!
//! Data flows one way through the modules: bytes are decoded by [`primitives`], hashed in batches by
//! [`sha256`] (scalar reference, SIMD and SHA-NI backends), searched for solutions by [`mine`], and
//! driven from the command line by [`cli`]. See docs/ARCHITECTURE.md.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod backend;
pub mod chain;
pub mod cli;
pub mod consensus;
pub mod generate;
pub mod gpu;
pub mod ledger;
pub mod mine;
pub mod net;
pub mod node;
pub mod primitives;
pub mod sha256;
pub mod sigs;
pub mod state;
pub mod store;
pub mod validate;
