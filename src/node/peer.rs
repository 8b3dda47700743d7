//! One TCP connection: a reader thread that turns frames into [`Event`]s for the chain thread and a
//! writer thread that drains a bounded queue of encoded frames. Neither touches the chain state.

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::Event;
use crate::net::frame::{encode_frame, read_frame, FrameError};
use crate::net::message::{Message, MessageError};

/// Frames queued for one peer before it counts as too slow and is dropped.
pub const SEND_QUEUE: usize = 512;
/// Bytes queued for one peer before it counts as too slow and is dropped: one full `getdata`
/// answer of largest blocks fits, with room for one more.
pub const SEND_QUEUE_BYTES: usize =
    (super::MAX_BLOCKS_PER_GETDATA + 1) * (crate::net::frame::MAX_PAYLOAD as usize + crate::net::frame::HEADER_LEN);
/// Bytes of one peer's received messages waiting for the chain thread before its reader thread
/// waits (so TCP pushes back on that peer alone).
pub const RECV_QUEUE_BYTES: usize = 8 << 20;

/// The chain thread's handle on a connection.
pub struct Conn {
    /// Peer id.
    pub id: u64,
    /// Remote address.
    pub addr: SocketAddr,
    out: Sender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    /// Bytes of this peer's messages handed to the chain thread and not yet handled.
    pub pending: Arc<AtomicUsize>,
    stream: TcpStream,
    magic: [u8; 4],
}

impl Conn {
    /// Starts the reader and writer threads of `stream`.
    pub fn start(
        id: u64,
        stream: TcpStream,
        addr: SocketAddr,
        magic: [u8; 4],
        events: Sender<Event>,
    ) -> std::io::Result<Conn> {
        stream.set_nodelay(true)?;
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(SEND_QUEUE);
        let mut w = stream.try_clone()?;
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new().name(format!("peer{id}-send")).spawn(move || {
            for frame in rx {
                let ok = w.write_all(&frame).is_ok();
                q.fetch_sub(frame.len(), Ordering::Relaxed);
                if !ok {
                    break;
                }
            }
            let _ = w.shutdown(Shutdown::Both);
        })?;
        let r = stream.try_clone()?;
        let pending = Arc::new(AtomicUsize::new(0));
        let p = pending.clone();
        std::thread::Builder::new().name(format!("peer{id}-recv")).spawn(move || {
            let mut r = BufReader::with_capacity(1 << 16, r);
            loop {
                while p.load(Ordering::Relaxed) > RECV_QUEUE_BYTES {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let ev = match read_frame(&mut r, magic) {
                    Ok(f) => match Message::decode(&f.command, &f.payload) {
                        Ok(msg) => {
                            let size = f.payload.len() + crate::net::frame::HEADER_LEN;
                            p.fetch_add(size, Ordering::Relaxed);
                            Event::Message { peer: id, msg, size }
                        }
                        // A message type this node does not know is skipped, not punished (as
                        // Bitcoin Core does), so the protocol can grow; its frame was bounded and
                        // checksummed like any other.
                        Err(MessageError::UnknownCommand(command)) => {
                            tracing::debug!(peer = id, %command, "unknown message type ignored");
                            continue;
                        }
                        Err(e) => {
                            Event::Closed { peer: id, reason: format!("malformed message: {e}"), misbehaving: true }
                        }
                    },
                    Err(FrameError::Io(e)) => {
                        Event::Closed { peer: id, reason: format!("connection closed: {e}"), misbehaving: false }
                    }
                    Err(e) => Event::Closed { peer: id, reason: format!("bad frame: {e}"), misbehaving: true },
                };
                let last = matches!(ev, Event::Closed { .. });
                if events.send(ev).is_err() || last {
                    break;
                }
            }
        })?;
        Ok(Conn { id, addr, out: tx, queued, pending, stream, magic })
    }

    /// Queues a message; false when the queue is full (the peer is not reading) or closed.
    pub fn send(&self, msg: &Message) -> bool {
        self.send_raw(msg.command(), &msg.payload())
    }

    /// Queues a message from its command and an already-encoded payload; false when the queue
    /// holds [`SEND_QUEUE`] frames or [`SEND_QUEUE_BYTES`] bytes already.
    pub fn send_raw(&self, command: &str, payload: &[u8]) -> bool {
        let frame = encode_frame(self.magic, command, payload);
        let n = frame.len();
        if self.queued.load(Ordering::Relaxed) + n > SEND_QUEUE_BYTES {
            return false;
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        match self.out.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(n, Ordering::Relaxed);
                false
            }
        }
    }

    /// Closes the connection (both threads end).
    pub fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
