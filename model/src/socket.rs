//! Unix-domain sockets (Linux `struct unix_sock`): each socket has a type,
//! a state, perhaps a bound name and a peer, and a receive queue whose
//! messages may carry open files in flight (SCM_RIGHTS).
//!
//! A socket pair is two sockets that are each other's peer. A stream or
//! seqpacket `connect` to a listening socket makes a third socket, the
//! *embryo*, which is the client's peer at once and waits in the
//! listener's queue until `accept` gives it a file; what the client sends
//! before that waits in the embryo's queue. A datagram `connect` only sets
//! the socket's default peer, one way: several sockets may send to one.
//!
//! Send-buffer accounting follows Linux, because it decides when a
//! non-blocking send fails with `EAGAIN`: every queued message (an skb) is
//! charged its *truesize* to the sending socket until the receiver consumes
//! it, and a send may allocate another skb while the charge is below
//! `SO_SNDBUF` (212,992 bytes by default). A one-byte skb costs 768 bytes, so
//! 278 small messages fit, as on Linux. Stream sends are cut into skbs of at
//! most 36,544 bytes (`SKB_MAX_HEAD(0) + UNIX_SKB_FRAGS_SZ`).
//!
//! A plain `read` of a stream glues consecutive messages (Linux does not keep
//! writers apart unless SO_PASSCRED is set) but stops after a message that
//! carried files; those files are dropped, since `read` has no control buffer.
//!
//! A socket lives on after its file is gone while something still points
//! at it (Linux's `sock_hold`): a peer that has not noticed yet, or a
//! message it sent that is still queued and charged to it. [`Sock::held`]
//! counts those, so that an id is reused only once nothing names it.
//!
//! What epoll sees ([`Socks::poll`]) and the wake-ups it is told of follow
//! `unix_poll`, `unix_dgram_poll` and their callers: a message queued wakes
//! the receiver for `EPOLLIN`; a message freed wakes its sender for
//! `EPOLLOUT` if the sender is writable again (`unix_write_space`); shutdown
//! and close wake every registration (`sk_state_change`). A datagram sender
//! whose one-way peer's queue is full waits on that peer's `peer_wait`
//! through a relay ([`Sock::peer_wake`]), which turns the peer's next
//! dequeue into a wake-up of the sender. The wakes go to a log
//! ([`Socks::wakes`]) that the world delivers.

use std::collections::VecDeque;

use crate::errno::Errno;
use crate::flags::{Events, OFlags};
use crate::waitq::{Queue, Wake, Wakes};
use std::collections::BTreeMap;

use crate::ids::{FileId, SockId, VnodeId};
use crate::slab::Slab;

/// A socket's type; the topology writes `stream`, `dgram` or `seqpacket`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SockType {
    Stream,
    Dgram,
    Seqpacket,
}

impl SockType {
    pub fn name(self) -> &'static str {
        match self {
            SockType::Stream => "stream",
            SockType::Dgram => "dgram",
            SockType::Seqpacket => "seqpacket",
        }
    }

    /// The constant a scenario writes: `SOCK_STREAM`...
    pub fn constant(self) -> &'static str {
        match self {
            SockType::Stream => "SOCK_STREAM",
            SockType::Dgram => "SOCK_DGRAM",
            SockType::Seqpacket => "SOCK_SEQPACKET",
        }
    }

    /// Whether the type has connections (`listen`, `accept`): stream and
    /// seqpacket.
    pub fn connection_oriented(self) -> bool {
        self != SockType::Dgram
    }

    /// Whether reads keep message boundaries: dgram and seqpacket.
    pub fn messages(self) -> bool {
        self != SockType::Stream
    }
}

impl std::fmt::Display for SockType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a bound socket is found by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum UnixName {
    /// A socket file in the sandbox (found by its inode, as
    /// `unix_find_socket_byinode` does).
    Path(VnodeId),
    /// An abstract name, per socket type.
    Abstract(SockType, String),
}

/// The bound sockets, by name.
pub type Names = BTreeMap<UnixName, SockId>;

/// `socket`, `socketpair` and `accept4` flags.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct SockFlags {
    pub cloexec: bool,
    pub nonblock: bool,
}

impl SockFlags {
    /// The new file's status flags.
    pub fn status(self) -> OFlags {
        if self.nonblock {
            OFlags::RDWR | OFlags::NONBLOCK
        } else {
            OFlags::RDWR
        }
    }
}

/// `sk_shutdown` bits.
pub const RCV_SHUTDOWN: u8 = 1;
pub const SEND_SHUTDOWN: u8 = 2;
pub const SHUTDOWN_MASK: u8 = 3;

/// `net.unix.max_dgram_qlen`: a datagram socket that is not connected back
/// to the sender takes at most this many messages (and one more).
pub const MAX_DGRAM_QLEN: usize = 10;

/// `net.core.somaxconn`: `listen` caps its backlog here.
pub const SOMAXCONN: u32 = 4096;

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
    /// The socket that sent it and is charged for it.
    pub from: SockId,
}

/// Where a socket is in its life (Linux `sk_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Made by `socket`, or a datagram socket (`TCP_CLOSE`).
    Unconnected,
    /// `listen` was called: at most `backlog + 1` connections wait.
    Listening { backlog: u32 },
    /// Connected: a pair, a client, an accepted or embryonic socket
    /// (`TCP_ESTABLISHED`).
    Connected,
}

/// One unix socket.
#[derive(Debug, Clone)]
pub struct Sock {
    pub ty: SockType,
    pub state: State,
    /// Whether an open file refers to it: not yet for an embryo, no longer
    /// once released.
    pub open: bool,
    /// Released: its file is gone (`SOCK_DEAD`).
    pub dead: bool,
    /// The socket it sends to (and, connected, receives from).
    pub peer: Option<SockId>,
    /// The name it is bound to as the language writes it (`srv.sock`,
    /// `@name`); an accepted socket has its listener's.
    pub name: Option<String>,
    /// What finds it while it is bound (not an accepted socket's name).
    pub bound: Option<UnixName>,
    /// Messages sent to it, not yet read.
    pub queue: VecDeque<Segment>,
    /// A listener's embryos, oldest first.
    pub pending: VecDeque<SockId>,
    /// Truesize charged to it for messages it sent (`sk_wmem_alloc`).
    pub wmem: u64,
    /// `RCV_SHUTDOWN` and `SEND_SHUTDOWN`.
    pub shutdown: u8,
    /// An error reported once by the next call that looks (`sk_err`).
    pub err: Option<Errno>,
    /// Sockets pointing at it as their peer, messages it sent still
    /// queued, and a listener's queue holding it.
    pub held: u32,
    /// The peer whose `peer_wait` this datagram socket's relay waits on
    /// (`peer_wake`): set when a poll or a send found that peer's queue
    /// full; the peer is always this socket's own.
    pub peer_wake: Option<SockId>,
    /// The relays waiting on this socket's `peer_wait`, newest first.
    pub relays: Vec<SockId>,
}

impl Sock {
    fn new(ty: SockType) -> Sock {
        Sock {
            ty,
            state: State::Unconnected,
            open: true,
            dead: false,
            peer: None,
            name: None,
            bound: None,
            queue: VecDeque::new(),
            pending: VecDeque::new(),
            wmem: 0,
            shutdown: 0,
            err: None,
            held: 0,
            peer_wake: None,
            relays: Vec::new(),
        }
    }

    /// A datagram receiver's queue is full for senders it is not
    /// connected back to (`unix_recvq_full`).
    pub fn recvq_full(&self) -> bool {
        self.queue.len() > MAX_DGRAM_QLEN
    }

    pub fn listening(&self) -> bool {
        matches!(self.state, State::Listening { .. })
    }

    /// Files in flight in its own queue.
    pub fn queued_files(&self) -> impl Iterator<Item = FileId> + '_ {
        self.queue.iter().flat_map(|s| s.fds.iter().copied())
    }
}

/// What a read took off a queue.
#[derive(Debug, Default)]
pub struct Received {
    pub data: Vec<u8>,
    /// Files that were in flight with the data read; the caller installs them
    /// (recvfds) or drops them (read).
    pub fds: Vec<FileId>,
}

/// Every unix socket of the world.
#[derive(Debug, Clone, Default)]
pub struct Socks {
    slab: Slab<Sock>,
    /// Wake-ups made and not delivered yet, oldest first.
    pub(crate) wakes: Wakes,
}

/// `unix_writable`: a socket may be polled writable while a quarter of its
/// send buffer is free (`sk_wmem_alloc`, which counts one more than the
/// charges, times four at most `SO_SNDBUF`). `extra` is what else
/// `sk_wmem_alloc` holds at the moment of asking.
fn writable(wmem: u64, extra: u64) -> bool {
    (wmem + 1 + extra) * 4 <= SNDBUF
}

impl Socks {
    pub fn get(&self, s: SockId) -> &Sock {
        // A socket is freed only when nothing names it (see `held`).
        self.slab.get(s.0).expect("live socket")
    }

    pub(crate) fn get_mut(&mut self, s: SockId) -> &mut Sock {
        self.slab.get_mut(s.0).expect("live socket")
    }

    pub fn iter(&self) -> impl Iterator<Item = (SockId, &Sock)> {
        self.slab.iter().map(|(i, s)| (SockId(i), s))
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// A new socket of type `ty`, with a file (`socket(2)`).
    pub fn create(&mut self, ty: SockType) -> SockId {
        SockId(self.slab.insert(Sock::new(ty)))
    }

    /// Two sockets connected to each other (`socketpair(2)`).
    pub fn pair(&mut self, ty: SockType) -> (SockId, SockId) {
        let (a, b) = (self.create(ty), self.create(ty));
        for (me, peer) in [(a, b), (b, a)] {
            self.set_peer(me, Some(peer));
            self.get_mut(me).state = State::Connected;
        }
        (a, b)
    }

    /// Points `me` at `peer`, keeping `held` right; returns the old peer.
    fn set_peer(&mut self, me: SockId, peer: Option<SockId>) -> Option<SockId> {
        if let Some(p) = peer {
            self.get_mut(p).held += 1;
        }
        let old = std::mem::replace(&mut self.get_mut(me).peer, peer);
        if let Some(o) = old {
            self.get_mut(o).held -= 1;
        }
        old
    }

    fn maybe_free(&mut self, s: SockId) {
        let k = self.get(s);
        if k.dead && k.held == 0 && k.queue.is_empty() {
            debug_assert!(k.peer.is_none() && k.pending.is_empty());
            self.slab.remove(s.0);
        }
    }

    /// Takes the first message off `me`'s queue, uncharging its sender
    /// (which may then be freed, unless it is `me`: the caller decides
    /// about `me`).
    fn pop(&mut self, me: SockId) -> Option<Segment> {
        let seg = self.get_mut(me).queue.pop_front()?;
        let from = self.get_mut(seg.from);
        from.wmem -= seg.truesize;
        from.held -= 1;
        // sock_wfree calls unix_write_space holding one more reference.
        if writable(from.wmem, 1) {
            self.wake(seg.from, Events::OUT);
        }
        if seg.from != me {
            self.maybe_free(seg.from);
        }
        Some(seg)
    }

    /// What `unix_seqpacket_sendmsg` checks before anything else, the
    /// files to send included: a pending error (reported once), then the
    /// connection. Other types check nothing here.
    ///
    /// Errors: the pending error, `ENOTCONN`.
    pub fn presend(&mut self, me: SockId) -> Result<(), Errno> {
        let sk = self.get_mut(me);
        if sk.ty != SockType::Seqpacket {
            return Ok(());
        }
        if let Some(e) = sk.err.take() {
            return Err(e);
        }
        if sk.state != State::Connected {
            return Err(Errno::ENOTCONN);
        }
        Ok(())
    }

    /// Checks, in Linux's order, whether `me` may send `len` bytes now, and
    /// returns the socket the send goes to and the skbs it makes.
    /// `too_many_fds`: the send carries files and attaching them fails
    /// (Linux's `too_many_unix_fds`, see `sys_sendfds`).
    ///
    /// Precondition: [`Socks::presend`] passed.
    ///
    /// Errors: stream (`unix_stream_sendmsg`): `ENOTCONN`, `EPIPE` (shut
    /// down, or the peer gone), `EAGAIN` (buffer full), `ETOOMANYREFS`.
    /// Dgram and seqpacket (`unix_dgram_sendmsg`): `ENOTCONN`, `EMSGSIZE`, `EPIPE`, `EAGAIN`, `ETOOMANYREFS`, `EPERM`
    /// (the receiver is connected to another), `ECONNREFUSED` (a datagram
    /// peer that is gone: the first send after it disconnects this socket
    /// and, as `unix_dgram_disconnected` does, purges its own queue; the
    /// files that were in flight there come back with the error for the
    /// caller to drop).
    pub fn plan_send(
        &mut self,
        me: SockId,
        len: usize,
        too_many_fds: bool,
    ) -> Result<(SockId, Plan), SendError> {
        let fail = |errno: Errno| {
            Err(SendError {
                errno,
                lost: Vec::new(),
            })
        };
        let len = len as u64;
        let sk = self.get(me);
        if sk.ty == SockType::Stream {
            let Some(other) = sk.peer else {
                return fail(Errno::ENOTCONN);
            };
            if sk.shutdown & SEND_SHUTDOWN != 0 {
                return fail(Errno::EPIPE);
            }
            let mut wmem = sk.wmem;
            let mut chunks = Vec::new();
            let mut left = len;
            // A zero-length stream send queues nothing.
            while left > 0 && wmem < SNDBUF {
                let n = left.min(STREAM_MAX_SKB);
                let t = truesize(n, STREAM_MAX_HEAD);
                chunks.push((n as usize, t));
                wmem += t;
                left -= n;
            }
            if len > 0 && chunks.is_empty() {
                return fail(Errno::EAGAIN);
            }
            // unix_scm_to_skb, once the first skb is allocated.
            if too_many_fds && len > 0 {
                return fail(Errno::ETOOMANYREFS);
            }
            let o = self.get(other);
            if o.dead || o.shutdown & RCV_SHUTDOWN != 0 {
                return fail(Errno::EPIPE);
            }
            return Ok((other, chunks));
        }
        // Shut down for sending is EPIPE before anything else, even
        // without a peer (Linux 6.18).
        if sk.shutdown & SEND_SHUTDOWN != 0 {
            return fail(Errno::EPIPE);
        }
        let Some(other) = sk.peer else {
            return fail(Errno::ENOTCONN);
        };
        if len > SNDBUF - 32 {
            return fail(Errno::EMSGSIZE);
        }
        // sock_alloc_send_pskb: a pending error, a full send buffer.
        if let Some(e) = self.get_mut(me).err.take() {
            return fail(e);
        }
        let sk = self.get(me);
        if sk.wmem >= SNDBUF {
            return fail(Errno::EAGAIN);
        }
        if too_many_fds {
            return fail(Errno::ETOOMANYREFS);
        }
        let o = self.get(other);
        if o.peer.is_some_and(|p| p != me) {
            return fail(Errno::EPERM);
        }
        if o.dead {
            if sk.ty == SockType::Seqpacket {
                return fail(Errno::EPIPE);
            }
            // The peer is gone: forget it.
            self.peer_wake_disconnect_wakeup(me, other);
            self.set_peer(me, None);
            self.get_mut(me).state = State::Unconnected;
            return Err(SendError {
                errno: Errno::ECONNREFUSED,
                lost: self.dgram_disconnected(me, other),
            });
        }
        if o.shutdown & RCV_SHUTDOWN != 0 {
            return fail(Errno::EPIPE);
        }
        // A receiver that is not connected back takes a bounded queue.
        if other != me && o.peer != Some(me) && o.recvq_full() {
            // Wait for room on the peer's peer_wait (unix_dgram_peer_wake_me).
            self.peer_wake_connect(me, other);
            return fail(Errno::EAGAIN);
        }
        Ok((other, vec![(len as usize, truesize(len, DGRAM_MAX_HEAD))]))
    }

    /// Queues on `to` what [`Socks::plan_send`] planned for `me`; the
    /// files ride with the first skb (Linux attaches SCM_RIGHTS to the
    /// first one).
    pub fn enqueue(
        &mut self,
        me: SockId,
        to: SockId,
        data: &[u8],
        plan: &[(usize, u64)],
        fds: Vec<FileId>,
    ) {
        let mut fds = Some(fds);
        let mut at = 0;
        for &(n, t) in plan {
            let sender = self.get_mut(me);
            sender.wmem += t;
            sender.held += 1;
            self.get_mut(to).queue.push_back(Segment {
                data: data[at..at + n].to_vec(),
                fds: fds.take().unwrap_or_default(),
                truesize: t,
                from: me,
            });
            // sk_data_ready, once per skb.
            self.wake(to, Events::IN);
            at += n;
        }
    }

    /// Reads up to `n` bytes at `me`, without blocking.
    ///
    /// Errors: stream: `EINVAL` (not connected), a pending error
    /// (`ECONNRESET`, once), `EAGAIN` when nothing is queued and more may
    /// come. Seqpacket: `ENOTCONN`, a pending error, `EAGAIN`. Dgram: a
    /// pending error, `EAGAIN`.
    pub fn recv(&mut self, me: SockId, n: usize) -> Result<Received, Errno> {
        let ty = self.get(me).ty;
        if self.get(me).state != State::Connected {
            match ty {
                SockType::Stream => return Err(Errno::EINVAL),
                SockType::Seqpacket => return Err(Errno::ENOTCONN),
                SockType::Dgram => {}
            }
        }
        let mut got = Received::default();
        if ty.messages() {
            // __skb_try_recv_datagram: the error first, queued or not.
            if let Some(e) = self.get_mut(me).err.take() {
                return Err(e);
            }
            if self.get(me).queue.is_empty() {
                // Signal EOF on a disconnected non-blocking seqpacket.
                let eof = ty == SockType::Seqpacket && self.get(me).shutdown & RCV_SHUTDOWN != 0;
                return if eof { Ok(got) } else { Err(Errno::EAGAIN) };
            }
            // A dequeue wakes the senders waiting for room, then the skb is
            // freed (unix_dgram_recvmsg).
            self.wake_peer_wait(me, Events::OUT);
            let seg = self.pop(me).expect("checked not empty");
            // One message per call; what does not fit is discarded.
            got.data = seg.data;
            got.data.truncate(n);
            got.fds = seg.fds;
            return Ok(got);
        }
        if self.get(me).queue.is_empty() {
            let sk = self.get_mut(me);
            return match sk.err.take() {
                Some(e) => Err(e),
                None if sk.shutdown & RCV_SHUTDOWN != 0 => Ok(got),
                None => Err(Errno::EAGAIN),
            };
        }
        while got.data.len() < n {
            let Some(seg) = self.get_mut(me).queue.front_mut() else {
                break;
            };
            let k = (n - got.data.len()).min(seg.data.len());
            got.data.extend(seg.data.drain(..k));
            let carried = !seg.fds.is_empty();
            got.fds.append(&mut seg.fds);
            if !seg.data.is_empty() {
                break;
            }
            self.pop(me);
            if carried {
                break;
            }
        }
        Ok(got)
    }

    /// `listen(2)` on `me`.
    ///
    /// Errors: `EOPNOTSUPP` (datagram), `EINVAL` (not bound, or connected).
    pub fn listen(&mut self, me: SockId, backlog: i32) -> Result<(), Errno> {
        let sk = self.get_mut(me);
        if !sk.ty.connection_oriented() {
            return Err(Errno::EOPNOTSUPP);
        }
        if sk.name.is_none() || sk.state == State::Connected {
            return Err(Errno::EINVAL);
        }
        // __sys_listen: a backlog above somaxconn (or negative) is capped.
        let backlog = u32::try_from(backlog).unwrap_or(u32::MAX).min(SOMAXCONN);
        sk.state = State::Listening { backlog };
        Ok(())
    }

    /// A stream or seqpacket `connect` of `me` to `other`, found by name
    /// (`unix_stream_connect`): checks the listener before the client,
    /// then makes the embryo, `me`'s peer, and queues it on `other`.
    ///
    /// Errors: `ECONNREFUSED` (not listening, or shut down for reading),
    /// `EAGAIN` (the queue holds `backlog + 1`: Linux would wait),
    /// `EISCONN`, `EINVAL` (`me` listens).
    pub fn connect_stream(&mut self, me: SockId, other: SockId) -> Result<(), Errno> {
        let o = self.get(other);
        let State::Listening { backlog } = o.state else {
            return Err(Errno::ECONNREFUSED);
        };
        if o.shutdown & RCV_SHUTDOWN != 0 {
            return Err(Errno::ECONNREFUSED);
        }
        if o.pending.len() > backlog as usize {
            return Err(Errno::EAGAIN);
        }
        match self.get(me).state {
            State::Unconnected => {}
            State::Connected => return Err(Errno::EISCONN),
            State::Listening { .. } => return Err(Errno::EINVAL),
        }
        let ty = self.get(me).ty;
        let embryo = self.create(ty);
        let name = self.get(other).name.clone();
        let e = self.get_mut(embryo);
        e.open = false;
        e.state = State::Connected;
        e.name = name;
        e.held = 1; // the listener's queue
        self.set_peer(embryo, Some(me));
        self.set_peer(me, Some(embryo));
        self.get_mut(me).state = State::Connected;
        self.get_mut(other).pending.push_back(embryo);
        self.wake(other, Events::IN);
        Ok(())
    }

    /// A datagram `connect` of `me` to `other` (`unix_dgram_connect`):
    /// `other` becomes the default peer. Leaving another peer disconnects
    /// from it (`unix_dgram_disconnected`): `me`'s own queue is purged
    /// (its files come back for the caller to drop), and an old peer that
    /// was connected back gets `ECONNRESET`.
    ///
    /// Errors: `EPERM` (`other` is connected to a third socket).
    pub fn connect_dgram(&mut self, me: SockId, other: SockId) -> Result<Vec<FileId>, Errno> {
        if self.get(other).peer.is_some_and(|p| p != me) {
            return Err(Errno::EPERM);
        }
        let old = self.set_peer(me, Some(other));
        if let Some(old) = old {
            self.peer_wake_disconnect_wakeup(me, old);
        }
        Ok(match old.filter(|&o| o != other) {
            Some(old) => self.dgram_disconnected(me, old),
            None => Vec::new(),
        })
    }

    /// Datagram socket `me` no longer points at `old`
    /// (`unix_dgram_disconnected`): its own queue is purged, and if it
    /// held anything, an `old` that lives and is connected back gets
    /// `ECONNRESET`. Returns the files that were in flight in the queue,
    /// for the caller to drop.
    ///
    /// Precondition: `me`'s peer is no longer `old` (`set_peer` dropped
    /// that hold, which may have been the last: `old` may be freed here).
    fn dgram_disconnected(&mut self, me: SockId, old: SockId) -> Vec<FileId> {
        // Held while the purge runs, as Linux holds the old peer until
        // its `sock_put`: the purge uncharges what `old` sent, and a dead
        // `old` would be freed under our feet by its last message.
        self.get_mut(old).held += 1;
        let mut lost = Vec::new();
        if !self.get(me).queue.is_empty() {
            lost = self.purge(me);
            self.wake_peer_wait(me, Events::default());
            let o = self.get_mut(old);
            if !o.dead && o.peer == Some(me) {
                o.err = Some(Errno::ECONNRESET);
                // sk_error_report
                self.wake(old, Events::ERR);
            }
        }
        self.get_mut(old).held -= 1;
        self.maybe_free(old);
        lost
    }

    /// `accept` on `me`: the oldest embryo, which now gets a file.
    ///
    /// Errors: `EOPNOTSUPP` (datagram), `EINVAL` (not listening), `EAGAIN`
    /// (nothing pending: Linux would wait).
    pub fn accept(&mut self, me: SockId) -> Result<SockId, Errno> {
        let sk = self.get_mut(me);
        if !sk.ty.connection_oriented() {
            return Err(Errno::EOPNOTSUPP);
        }
        if !sk.listening() {
            return Err(Errno::EINVAL);
        }
        let Some(embryo) = sk.pending.pop_front() else {
            return Err(Errno::EAGAIN);
        };
        let e = self.get_mut(embryo);
        e.open = true;
        e.held -= 1;
        Ok(embryo)
    }

    /// `shutdown(2)` with `how` 0, 1 or 2 (`unix_shutdown`): `me` stops
    /// receiving, sending, or both; a connected stream or seqpacket peer
    /// stops the other way.
    ///
    /// Errors: `EINVAL` for another `how`.
    pub fn shutdown(&mut self, me: SockId, how: i32) -> Result<(), Errno> {
        if !(0..=2).contains(&how) {
            return Err(Errno::EINVAL);
        }
        let mode = (how + 1) as u8;
        let sk = self.get_mut(me);
        sk.shutdown |= mode;
        let (ty, peer) = (sk.ty, sk.peer);
        self.wake(me, Events::default());
        if let (Some(other), true) = (peer, ty.connection_oriented()) {
            let mut peer_mode = 0;
            if mode & RCV_SHUTDOWN != 0 {
                peer_mode |= SEND_SHUTDOWN;
            }
            if mode & SEND_SHUTDOWN != 0 {
                peer_mode |= RCV_SHUTDOWN;
            }
            self.get_mut(other).shutdown |= peer_mode;
            self.wake(other, Events::default());
        }
        Ok(())
    }

    /// Logs a wake-up of `me`'s queue.
    fn wake(&mut self, me: SockId, key: Events) {
        self.wakes.push(Wake {
            queue: Queue::Sock(me),
            key,
        });
    }

    /// Wakes `me`'s `peer_wait`: each relay waiting there leaves it and
    /// wakes its own socket with `key` (`unix_dgram_peer_wake_relay`).
    fn wake_peer_wait(&mut self, me: SockId, key: Events) {
        for r in std::mem::take(&mut self.get_mut(me).relays) {
            self.get_mut(r).peer_wake = None;
            self.wake(r, key);
        }
    }

    /// `unix_dgram_peer_wake_connect`: `me`'s relay waits on `other`'s
    /// `peer_wait`, unless it already waits somewhere.
    fn peer_wake_connect(&mut self, me: SockId, other: SockId) -> bool {
        if self.get(me).peer_wake.is_some() {
            return false;
        }
        self.get_mut(me).peer_wake = Some(other);
        self.get_mut(other).relays.insert(0, me);
        true
    }

    /// `unix_dgram_peer_wake_disconnect`: `me`'s relay leaves `other`.
    fn peer_wake_disconnect(&mut self, me: SockId, other: SockId) {
        if self.get(me).peer_wake == Some(other) {
            self.get_mut(me).peer_wake = None;
            self.get_mut(other).relays.retain(|&r| r != me);
        }
    }

    /// `unix_dgram_peer_wake_disconnect_wakeup`: leaving peer `other`, `me`
    /// may be writable now.
    fn peer_wake_disconnect_wakeup(&mut self, me: SockId, other: SockId) {
        self.peer_wake_disconnect(me, other);
        self.wake(me, Events::OUT);
    }

    /// Whether `me`'s one-way peer `other` is full, so that `me` must wait
    /// for it; waits on it if so (`unix_dgram_peer_wake_me`).
    fn peer_wake_me(&mut self, me: SockId, other: SockId) -> bool {
        let connected = self.peer_wake_connect(me, other);
        let o = self.get(other);
        if o.recvq_full() && !o.dead {
            return true;
        }
        if connected {
            self.peer_wake_disconnect(me, other);
        }
        false
    }

    /// What `poll` says of `me` (`unix_poll` for streams, `unix_dgram_poll`
    /// for datagrams and seqpackets), among the events the language
    /// names; `requested` is what the registration asked for (a datagram
    /// socket works out `EPOLLOUT` only if asked, and may start waiting on
    /// its peer then).
    pub fn poll(&mut self, me: SockId, requested: Events) -> Events {
        let sk = self.get(me);
        let mut m = Events::default();
        if sk.err.is_some() {
            m = m | Events::ERR;
        }
        if sk.shutdown == SHUTDOWN_MASK {
            m = m | Events::HUP;
        }
        if sk.shutdown & RCV_SHUTDOWN != 0 {
            m = m | Events::RDHUP | Events::IN;
        }
        if !sk.queue.is_empty() || !sk.pending.is_empty() {
            m = m | Events::IN;
        }
        let connection = sk.ty.connection_oriented() && sk.state == State::Unconnected;
        if connection {
            m = m | Events::HUP;
        }
        let mut can_write = !sk.listening() && writable(sk.wmem, 0);
        if sk.ty != SockType::Stream {
            if !requested.intersects(Events::OUT) {
                return m;
            }
            if let Some(other) = sk.peer {
                if can_write
                    && self.get(other).peer != Some(me)
                    && self.get(other).recvq_full()
                    && self.peer_wake_me(me, other)
                {
                    can_write = false;
                }
            }
        }
        if can_write {
            m = m | Events::OUT;
        }
        m
    }

    /// `me`'s file is gone (`unix_release_sock`): returns the files that
    /// were in flight in its queue, and in its embryos' if it listened, for
    /// the caller to drop.
    pub fn release(&mut self, me: SockId) -> Vec<FileId> {
        self.release_sock(me, false)
    }

    fn release_sock(&mut self, me: SockId, embryo: bool) -> Vec<FileId> {
        let sk = self.get_mut(me);
        sk.open = false;
        sk.dead = true;
        sk.shutdown = SHUTDOWN_MASK;
        let ty = sk.ty;
        // Linux 6.18 looks past a first message with nothing left in it
        // (for a consumed out-of-band byte; an empty datagram counts alike):
        // a queue holding only one empty message resets nobody.
        let had_data = match sk.queue.front() {
            Some(first) if first.data.is_empty() => sk.queue.len() > 1,
            first => first.is_some(),
        };
        let pending = std::mem::take(&mut sk.pending);
        self.wake_peer_wait(me, Events::default());
        if let Some(other) = self.get(me).peer {
            if ty.connection_oriented() {
                let o = self.get_mut(other);
                o.shutdown = SHUTDOWN_MASK;
                if had_data || embryo {
                    o.err = Some(Errno::ECONNRESET);
                }
                self.wake(other, Events::default());
            }
            self.peer_wake_disconnect(me, other);
            self.set_peer(me, None);
            // A datagram socket may be connected to itself: it is freed
            // below, once its queue is purged.
            if other != me {
                self.maybe_free(other);
            }
        }
        let mut files = self.purge(me);
        for e in pending {
            self.get_mut(e).held -= 1;
            files.extend(self.release_sock(e, true));
        }
        self.maybe_free(me);
        files
    }

    /// Empties `me`'s queue (`skb_queue_purge`), uncharging the senders,
    /// and returns the files that were in flight in it.
    pub fn purge(&mut self, me: SockId) -> Vec<FileId> {
        let mut fds = Vec::new();
        while let Some(seg) = self.pop(me) {
            fds.extend(seg.fds);
        }
        fds
    }

    /// The sockets whose queues whoever can read `me` may receive from:
    /// `me`, and for a listener its embryos (what `accept` hands out).
    fn readable_through(&self, me: SockId) -> Vec<SockId> {
        std::iter::once(me)
            .chain(self.get(me).pending.iter().copied())
            .collect()
    }

    /// Files in flight in the queues [`Socks::readable_through`] `me`.
    pub fn in_flight(&self, me: SockId) -> Vec<FileId> {
        self.readable_through(me)
            .into_iter()
            .flat_map(|s| self.get(s).queued_files().collect::<Vec<_>>())
            .collect()
    }

    /// Empties the queues [`Socks::in_flight`] reads (the collector's
    /// purge of a garbage socket).
    pub fn purge_reachable(&mut self, me: SockId) -> Vec<FileId> {
        self.readable_through(me)
            .into_iter()
            .flat_map(|s| self.purge(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(k: &mut Socks, me: SockId, data: &[u8]) -> Result<usize, Errno> {
        k.presend(me)?;
        let (to, plan) = k.plan_send(me, data.len(), false).map_err(|e| e.errno)?;
        let n = plan.iter().map(|c| c.0).sum();
        k.enqueue(me, to, &data[..n], &plan, Vec::new());
        Ok(n)
    }

    #[test]
    fn small_messages_fill_the_buffer_after_278() {
        for ty in [SockType::Stream, SockType::Dgram, SockType::Seqpacket] {
            let mut k = Socks::default();
            let (a, _) = k.pair(ty);
            let mut sent = 0;
            while send(&mut k, a, b"x").is_ok() {
                sent += 1;
            }
            assert_eq!(sent, 278, "{ty:?}");
        }
    }

    #[test]
    fn large_stream_sends_are_cut_like_linux() {
        let mut k = Socks::default();
        let (a, _) = k.pair(SockType::Stream);
        let big = vec![7u8; 100_000];
        assert_eq!(send(&mut k, a, &big), Ok(100_000));
        assert_eq!(send(&mut k, a, &big), Ok(100_000));
        assert_eq!(send(&mut k, a, &big), Ok(36_544));
        assert_eq!(send(&mut k, a, &big), Err(Errno::EAGAIN));
        let (c, _) = k.pair(SockType::Stream);
        assert_eq!(send(&mut k, c, &vec![0; 1_000_000]), Ok(219_264));
    }

    #[test]
    fn stream_reads_glue_and_peer_close() {
        let mut k = Socks::default();
        let (a, b) = k.pair(SockType::Stream);
        send(&mut k, a, b"ab").unwrap();
        send(&mut k, a, b"cd").unwrap();
        assert_eq!(k.recv(b, 100).unwrap().data, b"abcd");
        assert_eq!(k.recv(b, 100).unwrap_err(), Errno::EAGAIN);
        send(&mut k, b, b"unread").unwrap();
        assert!(k.release(a).is_empty());
        assert_eq!(k.plan_send(b, 1, false).unwrap_err().errno, Errno::EPIPE);
        assert_eq!(k.recv(b, 10).unwrap_err(), Errno::ECONNRESET);
        assert_eq!(k.recv(b, 10).unwrap().data, b"");
        assert_eq!(k.get(b).wmem, 0);
        assert_eq!(k.len(), 2, "b's peer still names a");
        k.release(b);
        assert!(k.is_empty(), "both are freed");
    }

    #[test]
    fn dgram_peer_gone_refused_then_not_connected() {
        let mut k = Socks::default();
        let (a, b) = k.pair(SockType::Dgram);
        send(&mut k, b, b"one").unwrap();
        send(&mut k, b, b"two").unwrap();
        k.release(b);
        assert_eq!(k.len(), 2, "b's messages and a's peer hold it");
        assert_eq!(k.recv(a, 10).unwrap().data, b"one");
        assert_eq!(
            k.plan_send(a, 1, false).unwrap_err().errno,
            Errno::ECONNREFUSED
        );
        assert_eq!(
            k.recv(a, 1).unwrap_err(),
            Errno::EAGAIN,
            "\"two\" was purged"
        );
        assert_eq!(k.plan_send(a, 1, false).unwrap_err().errno, Errno::ENOTCONN);
        assert_eq!(k.len(), 1, "nothing names b any more");
    }

    /// A datagram socket whose dead peer's last message still waits for
    /// it connects elsewhere: the purge frees the old peer, and nothing
    /// looks at it afterwards.
    #[test]
    fn reconnecting_away_from_a_dead_peer_frees_it_once() {
        let mut k = Socks::default();
        let (a, b, c) = (
            k.create(SockType::Dgram),
            k.create(SockType::Dgram),
            k.create(SockType::Dgram),
        );
        k.connect_dgram(a, b).unwrap();
        k.connect_dgram(b, a).unwrap();
        send(&mut k, b, b"x").unwrap();
        assert!(k.release(b).is_empty());
        assert_eq!(k.len(), 3, "a's peer and b's message hold b");
        assert_eq!(k.connect_dgram(a, c), Ok(Vec::new()));
        assert_eq!(k.len(), 2, "b is freed");
        assert_eq!(k.recv(a, 1).unwrap_err(), Errno::EAGAIN, "its message went");
    }

    #[test]
    fn a_listener_queues_backlog_plus_one_embryos() {
        let mut k = Socks::default();
        let l = k.create(SockType::Stream);
        assert_eq!(k.listen(l, 1), Err(Errno::EINVAL), "not bound");
        k.get_mut(l).name = Some("srv".into());
        k.listen(l, 1).unwrap();
        let c: Vec<SockId> = (0..3).map(|_| k.create(SockType::Stream)).collect();
        assert_eq!(k.connect_stream(c[0], l), Ok(()));
        assert_eq!(k.connect_stream(c[1], l), Ok(()));
        assert_eq!(k.connect_stream(c[2], l), Err(Errno::EAGAIN));
        assert_eq!(
            k.connect_stream(c[0], l),
            Err(Errno::EAGAIN),
            "the queue first"
        );
        send(&mut k, c[0], b"early").unwrap();
        let a = k.accept(l).unwrap();
        assert_eq!(k.get(a).name.as_deref(), Some("srv"));
        assert_eq!(k.recv(a, 10).unwrap().data, b"early");
        assert_eq!(k.connect_stream(c[0], l), Err(Errno::EISCONN));
        // The listener goes: the embryo still queued resets its client.
        k.release(l);
        assert_eq!(k.recv(c[1], 10).unwrap_err(), Errno::ECONNRESET);
        assert_eq!(k.recv(c[1], 10).unwrap().data, b"", "then end of file");
    }
}
