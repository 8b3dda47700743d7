//! Stratum v1, the protocol between miners and pools: the work rules both sides share
//! ([`work`]: coinbase and header assembly, share targets, version rolling), the line messages
//! ([`message`]), and the template sources a job server pulls from ([`job`]).

pub mod dashboard;
pub mod job;
pub mod message;
pub mod server;
pub mod work;

pub use job::{JobSource, Template};
pub use message::{Message, StratumError};
pub use work::{share_target, Notify, WorkError};
