//! Mining: the multi-threaded nonce search over the CPU and GPU engines ([`search`]), one
//! `powkit mine` job over a header's nonce range ([`job`]), the nonce-search benchmark ([`bench`]),
//! mining one header at an easy target ([`header`]), powkit block templates ([`template`]),
//! solo mining on a node's templates ([`solo`]), and pool mining over Stratum v1 ([`pool`]).

pub mod api;
pub mod bench;
pub mod header;
pub mod job;
pub mod pool;
pub mod search;
pub mod solo;
pub mod template;

pub use header::mine_header;
pub use job::{run, MineOptions, MineReport};
pub use search::*;
pub use template::template;

/// Why a search run ([`run`], [`bench::bench`]) ended without a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The engines asked for cannot run (an unusable CPU implementation, no GPU): the request's
    /// fault, one line for the user.
    #[error(transparent)]
    Engines(#[from] crate::backend::BackendError),
    /// The GPU failed while hashing.
    #[error("GPU failed: {0}")]
    Gpu(#[from] crate::gpu::GpuError),
}
