//! The peer-to-peer wire protocol of powkit chains (docs/PROTOCOL.md): message framing with a
//! size limit checked before anything is allocated, and the messages themselves. Everything here
//! is decoding of untrusted bytes: errors name what is wrong and where, and nothing panics.

pub mod frame;
pub mod message;

pub use frame::{read_frame, write_frame, Frame, FrameError, MAX_PAYLOAD};
pub use message::{Message, MessageError};
