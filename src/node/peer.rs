//! One TCP connection: a reader thread that turns frames into [`Event`]s for the chain thread and a
//! writer thread that drains a bounded queue of encoded frames. Neither touches the chain state.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::Event;
use crate::net::frame::{encode_frame, read_frame_limited, FrameError, MAX_PAYLOAD};
use crate::net::message::{Message, MessageError};

/// Bytes queued for one peer before it counts as too slow and is dropped: one full `getdata`
/// answer of largest blocks fits, with room for one more. The queue is bounded in bytes only, so
/// many small frames (a mempool's worth of `tx` answers) never overflow it while a peer reads.
pub const SEND_QUEUE_BYTES: usize =
    (super::MAX_BLOCKS_PER_GETDATA + 1) * (crate::net::frame::MAX_PAYLOAD as usize + crate::net::frame::HEADER_LEN);
/// Bytes of one peer's received messages waiting for the chain thread before its reader thread
/// waits (so TCP pushes back on that peer alone).
pub const RECV_QUEUE_BYTES: usize = 8 << 20;
/// Largest payload accepted before the peer has sent both `version` and `verack`: a `version` is
/// about 140 bytes, so 4 KiB leaves room for growth while a connection that has not identified
/// itself cannot make the node hold more.
pub const MAX_HANDSHAKE_PAYLOAD: u32 = 4096;

/// A reader that records when its last byte arrived (milliseconds since `epoch`).
struct Tracked<R> {
    inner: R,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.last.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// The chain thread's handle on a connection.
pub struct Conn {
    /// Peer id.
    pub id: u64,
    /// Remote address.
    pub addr: SocketAddr,
    out: Sender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    /// When the last byte from the peer arrived, ms since `epoch` (liveness: any byte counts, so a
    /// large block arriving slowly keeps the connection alive).
    last_recv: Arc<AtomicU64>,
    epoch: Instant,
    /// Bytes of this peer's messages handed to the chain thread and not yet handled.
    pub pending: Arc<AtomicUsize>,
    /// Bytes of frames received from the peer (headers included) and queued to it, since connecting.
    received: Arc<AtomicU64>,
    sent: AtomicU64,
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
        cap_retransmission_backoff(&stream);
        // Bounded in bytes by `send_raw`, not in frames.
        let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
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
        let received = Arc::new(AtomicU64::new(0));
        let rcvd = received.clone();
        let epoch = Instant::now();
        let last_recv = Arc::new(AtomicU64::new(0));
        let last = last_recv.clone();
        std::thread::Builder::new().name(format!("peer{id}-recv")).spawn(move || {
            let mut r = Tracked { inner: BufReader::with_capacity(1 << 16, r), last, epoch };
            // What the peer itself has sent of the handshake: until both, frames stay small.
            let (mut got_version, mut got_verack) = (false, false);
            loop {
                while p.load(Ordering::Relaxed) > RECV_QUEUE_BYTES {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let limit = if got_version && got_verack { MAX_PAYLOAD } else { MAX_HANDSHAKE_PAYLOAD };
                let ev = match read_frame_limited(&mut r, magic, limit) {
                    Ok(f) => match Message::decode(&f.command, &f.payload) {
                        Ok(msg) => {
                            got_version |= matches!(msg, Message::Version(_));
                            got_verack |= matches!(msg, Message::Verack);
                            let size = f.payload.len() + crate::net::frame::HEADER_LEN;
                            p.fetch_add(size, Ordering::Relaxed);
                            rcvd.fetch_add(size as u64, Ordering::Relaxed);
                            let kind = msg.command();
                            ::metrics::counter!(crate::metrics::NET_RECEIVED_MESSAGES, "type" => kind).increment(1);
                            ::metrics::counter!(crate::metrics::NET_RECEIVED_BYTES, "type" => kind)
                                .increment(size as u64);
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
                    // Not a broken stream but a large frame too early: closed without blame.
                    Err(e @ FrameError::Oversized { .. }) if limit < MAX_PAYLOAD => {
                        Event::Closed { peer: id, reason: format!("before the handshake: {e}"), misbehaving: false }
                    }
                    Err(e) => Event::Closed { peer: id, reason: format!("bad frame: {e}"), misbehaving: true },
                };
                let last = matches!(ev, Event::Closed { .. });
                if events.send(ev).is_err() || last {
                    break;
                }
            }
        })?;
        Ok(Conn {
            id,
            addr,
            out: tx,
            queued,
            last_recv,
            epoch,
            pending,
            received,
            sent: AtomicU64::new(0),
            stream,
            magic,
        })
    }

    /// How long ago the last byte from the peer arrived (since the connection opened, if none).
    pub fn since_last_recv(&self) -> std::time::Duration {
        let at = std::time::Duration::from_millis(self.last_recv.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(at)
    }

    /// Bytes received from the peer since connecting (whole frames, headers included).
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Bytes queued to the peer since connecting (whole frames, headers included).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Queues a message; false when the queue is full (the peer is not reading) or closed.
    pub fn send(&self, msg: &Message) -> bool {
        self.send_raw(msg.command(), &msg.payload())
    }

    /// Queues a message from its command and an already-encoded payload; false when the queue
    /// would hold more than [`SEND_QUEUE_BYTES`] bytes, or the connection is closed.
    pub fn send_raw(&self, command: &str, payload: &[u8]) -> bool {
        let frame = encode_frame(self.magic, command, payload);
        let n = frame.len();
        if self.queued.load(Ordering::Relaxed) + n > SEND_QUEUE_BYTES {
            return false;
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        match self.out.send(frame) {
            Ok(()) => {
                self.sent.fetch_add(n as u64, Ordering::Relaxed);
                // Counted when queued for the writer thread (the node's own commands: a small set).
                ::metrics::counter!(crate::metrics::NET_SENT_MESSAGES, "type" => command.to_string()).increment(1);
                ::metrics::counter!(crate::metrics::NET_SENT_BYTES, "type" => command.to_string()).increment(n as u64);
                true
            }
            Err(_) => {
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

/// Most milliseconds TCP waits between retransmissions on a peer connection (`TCP_RTO_MAX_MS`).
pub const RTO_MAX_MS: u32 = 1_000;

/// Caps TCP's retransmission backoff on a peer connection at [`RTO_MAX_MS`] (Linux 6.15 and
/// later: socket option `TCP_RTO_MAX_MS`, include/uapi/linux/tcp.h), so a connection that lived
/// through a partition resumes within a second of the network healing instead of after the
/// kernel's exponential backoff (up to 120 s; 25 s seen after a 30 s partition, issue 12 fault 4).
/// Where the kernel lacks the option the connection keeps the default and the 20 s liveness timeout
/// still bounds the wait; that is logged at debug level, not an error.
pub fn cap_retransmission_backoff(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        /// include/uapi/linux/tcp.h: `#define TCP_RTO_MAX_MS 44`.
        const TCP_RTO_MAX_MS: libc::c_int = 44;
        let ms: libc::c_int = RTO_MAX_MS as libc::c_int;
        // SAFETY: a valid socket descriptor borrowed from `stream` for the call, and a pointer to
        // an int that lives across it, with its size.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                TCP_RTO_MAX_MS,
                (&ms as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(
                "TCP_RTO_MAX_MS not set ({}): the kernel's retransmission backoff applies",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}
