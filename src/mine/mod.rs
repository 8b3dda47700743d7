//! Mining: the multi-threaded nonce search over the CPU and GPU engines ([`search`]), mining one
//! header at an easy target ([`header`]), and powkit block templates ([`template`]).

pub mod header;
pub mod search;
pub mod template;

pub use header::mine_header;
pub use search::*;
pub use template::template;
