//! Bulk validation of imported chains, both families: Bitcoin chains ([`bitcoin`]) and powkit
//! chains ([`powkit`]), from the files [`read`] frames into records.

pub mod bitcoin;
pub mod powkit;
pub mod read;
