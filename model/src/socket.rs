//! Unix-domain socket pairs: two endpoints, each with a receive queue whose
//! messages may carry open files in flight (SCM_RIGHTS).
//!
//! Send-buffer accounting follows Linux, because it decides when a
//! non-blocking send fails with `EAGAIN`: every queued message (an skb) is
//! charged its *truesize* to the sending endpoint until the receiver consumes
//! it, and a send may allocate another skb while the charge is below
//! `SO_SNDBUF` (212,992 bytes by default). A one-byte skb costs 768 bytes, so
//! 278 small messages fit, as on Linux. Stream sends are cut into skbs of at
//! most 36,544 bytes (`SKB_MAX_HEAD(0) + UNIX_SKB_FRAGS_SZ`).
//!
//! A plain `read` of a stream glues consecutive messages (Linux does not keep
//! writers apart unless SO_PASSCRED is set) but stops after a message that
//! carried files; those files are dropped, since `read` has no control buffer.

use std::collections::VecDeque;

use crate::errno::Errno;
use crate::ids::FileId;

/// A socket's type; the topology writes `stream` or `dgram`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SockType {
    Stream,
    Dgram,
}

impl SockType {
    pub fn name(self) -> &'static str {
        match self {
            SockType::Stream => "stream",
            SockType::Dgram => "dgram",
        }
    }
}

impl std::fmt::Display for SockType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Linux's default `SO_SNDBUF` for Unix sockets (`net.core.wmem_default`).
pub const SNDBUF: u64 = 212_992;
const SKB_SHINFO: u64 = 320;
const SKB_STRUCT: u64 = 256;
/// `SKB_MAX_HEAD(0)`: the most a stream skb keeps in its linear head.
const STREAM_MAX_HEAD: u64 = 4096 - SKB_SHINFO;
/// The most bytes one stream skb carries.
pub const STREAM_MAX_SKB: u64 = STREAM_MAX_HEAD + 32_768;
/// `SKB_MAX_ALLOC`: the most a datagram keeps in its linear head.
const DGRAM_MAX_HEAD: u64 = 16_384 - SKB_SHINFO;

fn align64(n: u64) -> u64 {
    n.div_ceil(64) * 64
}

fn page_align(n: u64) -> u64 {
    n.div_ceil(4096) * 4096
}

/// The kmalloc bucket that holds a head of `n` bytes plus `skb_shared_info`.
fn head_alloc(n: u64) -> u64 {
    (align64(n) + SKB_SHINFO).next_power_of_two().max(512)
}

/// What an skb of `len` bytes is charged, with its head no longer than
/// `max_head` (the rest goes in page fragments).
fn truesize(len: u64, max_head: u64) -> u64 {
    let data_len = if len > max_head {
        page_align(len - max_head).min(len)
    } else {
        0
    };
    SKB_STRUCT + head_alloc(len - data_len) + data_len
}

/// The skbs a send makes: (bytes, truesize) each.
pub type Plan = Vec<(usize, u64)>;

/// A send that failed, with the files it made lose their place in flight.
#[derive(Debug, PartialEq, Eq)]
pub struct SendError {
    pub errno: Errno,
    /// Files that were in flight in the sender's own queue, purged by a
    /// refused datagram send; the caller drops them.
    pub lost: Vec<FileId>,
}

/// One message in a receive queue.
#[derive(Debug, Clone)]
pub struct Segment {
    pub data: Vec<u8>,
    /// Files in flight with it, detached by the first read that reaches it.
    pub fds: Vec<FileId>,
    /// What the sender was charged for it.
    pub truesize: u64,
}

/// One end of a pair.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// Whether this end's open file still exists.
    pub open: bool,
    /// Messages sent by the peer, not yet read here.
    pub queue: VecDeque<Segment>,
    /// Truesize charged to this end for messages it sent (`sk_wmem_alloc`).
    pub wmem: u64,
    /// Stream: the peer is gone, no more data will come (`RCV_SHUTDOWN`).
    pub shutdown: bool,
    /// Stream: an error to report once on the next read of an empty queue
    /// (the peer closed with unread data: `ECONNRESET`).
    pub err: Option<Errno>,
    /// Dgram: the peer was gone and this end already said `ECONNREFUSED`;
    /// Linux then drops the association, so later sends are `ENOTCONN`.
    pub disconnected: bool,
}

/// A connected pair made by `socketpair(2)`.
#[derive(Debug, Clone)]
pub struct SockPair {
    pub ty: SockType,
    pub ends: [Endpoint; 2],
}

/// What a read took off a queue.
#[derive(Debug, Default)]
pub struct Received {
    pub data: Vec<u8>,
    /// Files that were in flight with the data read; the caller installs them
    /// (recvfds) or drops them (read).
    pub fds: Vec<FileId>,
}

impl SockPair {
    pub fn new(ty: SockType) -> SockPair {
        let end = Endpoint {
            open: true,
            ..Endpoint::default()
        };
        SockPair {
            ty,
            ends: [end.clone(), end],
        }
    }

    /// Checks, in Linux's order, whether endpoint `me` may send `len` bytes
    /// now, and returns how many skbs of which sizes the send makes.
    /// `too_many_fds`: the send carries files and attaching them fails
    /// (Linux's `too_many_unix_fds`, see `sys_sendfds`).
    ///
    /// Errors: stream: `EPIPE` (peer gone), `EAGAIN` (buffer full),
    /// `ETOOMANYREFS`. Dgram: `EMSGSIZE`, `EAGAIN`, `ENOTCONN`,
    /// `ETOOMANYREFS`, `ECONNREFUSED` (the first
    /// send after the peer went away: it disconnects this end and, as
    /// Linux's `unix_dgram_disconnected` does, purges this end's own queue;
    /// the files that were in flight there come back with the error for the
    /// caller to drop).
    pub fn plan_send(
        &mut self,
        me: usize,
        len: usize,
        too_many_fds: bool,
    ) -> Result<Plan, SendError> {
        self.plan_send_inner(me, len, too_many_fds)
            .map_err(|errno| {
                let lost = if errno == Errno::ECONNREFUSED {
                    self.purge(me)
                } else {
                    Vec::new()
                };
                SendError { errno, lost }
            })
    }

    fn plan_send_inner(
        &mut self,
        me: usize,
        len: usize,
        too_many_fds: bool,
    ) -> Result<Plan, Errno> {
        let peer = 1 - me;
        let len = len as u64;
        match self.ty {
            SockType::Stream => {
                if !self.ends[peer].open {
                    return Err(Errno::EPIPE);
                }
                let mut wmem = self.ends[me].wmem;
                let mut chunks = Vec::new();
                let mut left = len;
                while left > 0 || chunks.is_empty() {
                    if left == 0 {
                        // A zero-length stream send queues nothing.
                        break;
                    }
                    if wmem >= SNDBUF {
                        break;
                    }
                    let n = left.min(STREAM_MAX_SKB);
                    let t = truesize(n, STREAM_MAX_HEAD);
                    chunks.push((n as usize, t));
                    wmem += t;
                    left -= n;
                }
                if len > 0 && chunks.is_empty() {
                    return Err(Errno::EAGAIN);
                }
                // unix_scm_to_skb, once the first skb is allocated.
                if too_many_fds {
                    return Err(Errno::ETOOMANYREFS);
                }
                Ok(chunks)
            }
            SockType::Dgram => {
                if len > SNDBUF - 32 {
                    return Err(Errno::EMSGSIZE);
                }
                if self.ends[me].wmem >= SNDBUF {
                    return Err(Errno::EAGAIN);
                }
                if self.ends[me].disconnected {
                    return Err(Errno::ENOTCONN);
                }
                if too_many_fds {
                    return Err(Errno::ETOOMANYREFS);
                }
                if !self.ends[peer].open {
                    self.ends[me].disconnected = true;
                    return Err(Errno::ECONNREFUSED);
                }
                Ok(vec![(len as usize, truesize(len, DGRAM_MAX_HEAD))])
            }
        }
    }

    /// Queues what [`SockPair::plan_send`] planned; the files ride with the
    /// first skb (Linux attaches SCM_RIGHTS to the first one).
    pub fn enqueue(&mut self, me: usize, data: &[u8], plan: &[(usize, u64)], fds: Vec<FileId>) {
        let mut fds = Some(fds);
        let mut at = 0;
        for &(n, t) in plan {
            self.ends[me].wmem += t;
            self.ends[1 - me].queue.push_back(Segment {
                data: data[at..at + n].to_vec(),
                fds: fds.take().unwrap_or_default(),
                truesize: t,
            });
            at += n;
        }
    }

    /// Reads up to `n` bytes at endpoint `me`, without blocking.
    ///
    /// Errors: `EAGAIN` when nothing is queued and more may come; stream only:
    /// a pending `ECONNRESET`, reported once.
    pub fn recv(&mut self, me: usize, n: usize) -> Result<Received, Errno> {
        let peer = 1 - me;
        let mut got = Received::default();
        if self.ends[me].queue.is_empty() {
            let end = &mut self.ends[me];
            return match self.ty {
                SockType::Stream => match end.err.take() {
                    Some(e) => Err(e),
                    None if end.shutdown => Ok(got),
                    None => Err(Errno::EAGAIN),
                },
                SockType::Dgram => Err(Errno::EAGAIN),
            };
        }
        match self.ty {
            SockType::Dgram => {
                // One datagram per call; what does not fit is discarded.
                let seg = self.ends[me].queue.pop_front().expect("queue is not empty");
                self.ends[peer].wmem -= seg.truesize;
                got.data = seg.data;
                got.data.truncate(n);
                got.fds = seg.fds;
            }
            SockType::Stream => {
                while got.data.len() < n {
                    let Some(seg) = self.ends[me].queue.front_mut() else {
                        break;
                    };
                    let k = (n - got.data.len()).min(seg.data.len());
                    got.data.extend(seg.data.drain(..k));
                    let carried = !seg.fds.is_empty();
                    got.fds.append(&mut seg.fds);
                    if !seg.data.is_empty() {
                        break;
                    }
                    let t = seg.truesize;
                    self.ends[me].queue.pop_front();
                    self.ends[peer].wmem -= t;
                    if carried {
                        break;
                    }
                }
            }
        }
        Ok(got)
    }

    /// Endpoint `me`'s file is gone (`unix_release_sock`): returns the files
    /// that were in flight in its queue, for the caller to drop.
    pub fn release(&mut self, me: usize) -> Vec<FileId> {
        if self.ty == SockType::Stream {
            let peer = &mut self.ends[1 - me];
            peer.shutdown = true;
            if !self.ends[me].queue.is_empty() {
                self.ends[1 - me].err = Some(Errno::ECONNRESET);
            }
        }
        self.ends[me].open = false;
        self.purge(me)
    }

    /// Empties endpoint `me`'s queue (`skb_queue_purge`), uncharging the
    /// sender, and returns the files that were in flight in it.
    pub fn purge(&mut self, me: usize) -> Vec<FileId> {
        let mut fds = Vec::new();
        while let Some(seg) = self.ends[me].queue.pop_front() {
            self.ends[1 - me].wmem -= seg.truesize;
            fds.extend(seg.fds);
        }
        fds
    }

    /// Whether neither end has an open file left.
    pub fn is_dead(&self) -> bool {
        !self.ends[0].open && !self.ends[1].open
    }

    /// Files in flight in endpoint `me`'s queue.
    pub fn in_flight(&self, me: usize) -> impl Iterator<Item = FileId> + '_ {
        self.ends[me]
            .queue
            .iter()
            .flat_map(|s| s.fds.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(p: &mut SockPair, me: usize, data: &[u8]) -> Result<usize, Errno> {
        let plan = p.plan_send(me, data.len(), false).map_err(|e| e.errno)?;
        let n = plan.iter().map(|c| c.0).sum();
        p.enqueue(me, &data[..n], &plan, Vec::new());
        Ok(n)
    }

    #[test]
    fn small_messages_fill_the_buffer_after_278() {
        for ty in [SockType::Stream, SockType::Dgram] {
            let mut p = SockPair::new(ty);
            let mut sent = 0;
            while send(&mut p, 0, b"x").is_ok() {
                sent += 1;
            }
            assert_eq!(sent, 278, "{ty:?}");
        }
    }

    #[test]
    fn large_stream_sends_are_cut_like_linux() {
        let mut p = SockPair::new(SockType::Stream);
        let big = vec![7u8; 100_000];
        assert_eq!(send(&mut p, 0, &big), Ok(100_000));
        assert_eq!(send(&mut p, 0, &big), Ok(100_000));
        assert_eq!(send(&mut p, 0, &big), Ok(36_544));
        assert_eq!(send(&mut p, 0, &big), Err(Errno::EAGAIN));
        let mut q = SockPair::new(SockType::Stream);
        assert_eq!(send(&mut q, 0, &vec![0; 1_000_000]), Ok(219_264));
    }

    #[test]
    fn stream_reads_glue_and_peer_close() {
        let mut p = SockPair::new(SockType::Stream);
        send(&mut p, 0, b"ab").unwrap();
        send(&mut p, 0, b"cd").unwrap();
        assert_eq!(p.recv(1, 100).unwrap().data, b"abcd");
        assert_eq!(p.recv(1, 100).unwrap_err(), Errno::EAGAIN);
        send(&mut p, 1, b"unread").unwrap();
        assert!(p.release(0).is_empty());
        assert_eq!(p.plan_send(1, 1, false).unwrap_err().errno, Errno::EPIPE);
        assert_eq!(p.recv(1, 10).unwrap_err(), Errno::ECONNRESET);
        assert_eq!(p.recv(1, 10).unwrap().data, b"");
        assert_eq!(p.ends[1].wmem, 0);
    }

    #[test]
    fn dgram_peer_gone_refused_then_not_connected() {
        let mut p = SockPair::new(SockType::Dgram);
        send(&mut p, 1, b"one").unwrap();
        send(&mut p, 1, b"two").unwrap();
        p.release(1);
        assert_eq!(p.recv(0, 10).unwrap().data, b"one");
        assert_eq!(
            p.plan_send(0, 1, false).unwrap_err().errno,
            Errno::ECONNREFUSED
        );
        assert_eq!(
            p.recv(0, 1).unwrap_err(),
            Errno::EAGAIN,
            "\"two\" was purged"
        );
        assert_eq!(p.plan_send(0, 1, false).unwrap_err().errno, Errno::ENOTCONN);
    }
}
