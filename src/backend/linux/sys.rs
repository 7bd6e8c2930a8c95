//! The raw system calls the runner needs and libc does not wrap: `kcmp(2)`,
//! `pidfd_open(2)`, `close_range(2)`, and the unix-socket `sock_diag`
//! netlink query that tells which sockets are each other's peers (how CRIU
//! finds socket pairs).
//!
//! Every `unsafe` block of the runner side is here, each with its argument.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `kcmp` types (include/uapi/linux/kcmp.h; libc has no constants for them).
pub const KCMP_FILE: libc::c_int = 0;
pub const KCMP_FILES: libc::c_int = 2;
pub const KCMP_EPOLL_TFD: libc::c_int = 7;

/// `struct kcmp_epoll_slot`.
#[repr(C)]
struct KcmpEpollSlot {
    efd: u32,
    tfd: u32,
    toff: u64,
}

/// What `kcmp` says of two kernel objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kcmp {
    /// Equal, or ordered (by the kernel's obfuscated pointer order).
    Order(Ordering),
    /// Not equal, with no order available (return value 3).
    Unordered,
}

fn kcmp_result(r: libc::c_long) -> io::Result<Kcmp> {
    match r {
        0 => Ok(Kcmp::Order(Ordering::Equal)),
        1 => Ok(Kcmp::Order(Ordering::Less)),
        2 => Ok(Kcmp::Order(Ordering::Greater)),
        3 => Ok(Kcmp::Unordered),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `kcmp(pid1, pid2, type, idx1, idx2)` for `KCMP_FILE` and `KCMP_FILES`.
///
/// Errors: `EPERM` without ptrace access to both, `EBADF` for a closed
/// descriptor, `ESRCH` for a gone process.
pub fn kcmp(pid1: i32, pid2: i32, ty: libc::c_int, idx1: u64, idx2: u64) -> io::Result<Kcmp> {
    // SAFETY: kcmp takes plain integers for these types; no memory is passed.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, ty, idx1, idx2) };
    kcmp_result(r)
}

/// `kcmp(KCMP_EPOLL_TFD)`: whether the file at `fd` in `pid1` is the target
/// registered as number `tfd`, the `toff`-th such, in the epoll at `efd` of
/// `pid2`.
pub fn kcmp_epoll_tfd(
    pid1: i32,
    fd: i32,
    pid2: i32,
    efd: i32,
    tfd: i32,
    toff: u64,
) -> io::Result<Kcmp> {
    let slot = KcmpEpollSlot {
        efd: efd as u32,
        tfd: tfd as u32,
        toff,
    };
    // SAFETY: the kernel reads a `struct kcmp_epoll_slot` from idx2; `slot`
    // is one, laid out as the uapi struct (repr(C)), alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1,
            pid2,
            KCMP_EPOLL_TFD,
            fd as libc::c_ulong,
            &slot as *const KcmpEpollSlot,
        )
    };
    kcmp_result(r)
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `getsid(pid)`: the session of a process, as the caller's pid namespace
/// numbers it. It is 0 when the session's leader lives in an ancestor
/// namespace (a process in a container whose session began outside it), which
/// is why this is not rustix's `getsid`: that one asserts the answer is
/// positive.
pub fn getsid(pid: i32) -> io::Result<i32> {
    // SAFETY: a plain integer argument; getsid reads, it changes nothing.
    let r = unsafe { libc::getsid(pid) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// `close_range(lo, hi, flags)`; returns the raw errno on failure.
pub fn close_range(lo: u32, hi: u32, flags: u32) -> Result<(), i32> {
    // SAFETY: plain integer arguments; closing descriptors is the point (the
    // callers are helper processes managing their own table).
    let r = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, flags) };
    if r < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(())
    }
}

/// A unix socket as `sock_diag` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnixSock {
    /// `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`.
    pub ty: u8,
    /// The TCP-style state: `TCP_ESTABLISHED` (1), `TCP_CLOSE` (7),
    /// `TCP_LISTEN` (10).
    pub state: u8,
    /// The peer's inode, 0 for none.
    pub peer: u32,
    /// The bound name: a path, or `@name` in the abstract namespace.
    pub name: Option<String>,
    /// `RCV_SHUTDOWN` (1) and `SEND_SHUTDOWN` (2), as the socket has them.
    pub shutdown: u8,
    /// For a listener, the connections waiting to be accepted; otherwise
    /// the bytes queued to read.
    pub rqueue: u32,
    /// For a listener, its backlog (`sk_max_ack_backlog`); otherwise the
    /// bytes it sent that its peer has not read.
    pub wqueue: u32,
    /// For a listener, the inode of each waiting connection's client,
    /// oldest first (0 for a client already gone).
    pub icons: Vec<u32>,
}

impl UnixSock {
    const TCP_CLOSE: u8 = 7;
    const TCP_LISTEN: u8 = 10;

    /// Its type as the language names it (anything else counts as a
    /// stream).
    pub fn sock_type(&self) -> fdlab_model::SockType {
        use fdlab_model::SockType;
        match i32::from(self.ty) {
            libc::SOCK_DGRAM => SockType::Dgram,
            libc::SOCK_SEQPACKET => SockType::Seqpacket,
            _ => SockType::Stream,
        }
    }

    pub fn listening(&self) -> bool {
        self.state == Self::TCP_LISTEN
    }

    /// A stream or seqpacket socket that was never connected (datagram
    /// sockets have no connection to make).
    pub fn never_connected(&self) -> bool {
        self.sock_type() != fdlab_model::SockType::Dgram && self.state == Self::TCP_CLOSE
    }
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_NAME: u32 = 0x1;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UDIAG_SHOW_ICONS: u32 = 0x8;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;

/// `NLM_F_*` request flags.
const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;

/// A `SOCK_DIAG_BY_FAMILY` request for unix sockets (`struct nlmsghdr`
/// then `struct unix_diag_req`, in native byte order): of inode `ino`, or
/// with `NLM_F_DUMP` of every socket.
fn diag_request(flags: u16, seq: u32, ino: u32) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[0..4].copy_from_slice(&40u32.to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: to the kernel.
    b[16] = libc::AF_UNIX as u8;
    // protocol, pad: 0; every state.
    b[20..24].copy_from_slice(&(!0u32).to_ne_bytes());
    b[24..28].copy_from_slice(&ino.to_ne_bytes());
    let show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
    b[28..32].copy_from_slice(&show.to_ne_bytes());
    // No cookie (INET_DIAG_NOCOOKIE): the inode alone names the socket.
    b[32..40].copy_from_slice(&[0xff; 8]);
    b
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Every unix socket of this network namespace, by inode, with its type,
/// state, peer, bound name, shutdown state, queues and a listener's waiting
/// connections (`NETLINK_SOCK_DIAG` dump with `UDIAG_SHOW_NAME`, `_PEER`,
/// `_ICONS` and `_RQLEN`; the shutdown attribute comes with every socket).
pub fn unix_sockets() -> io::Result<HashMap<u32, UnixSock>> {
    diag(&[diag_request(NLM_F_REQUEST | NLM_F_DUMP, 1, 0)], 0)
}

/// As [`unix_sockets`], only the sockets of inodes `inos` that exist: one
/// request each, sent together. The kernel finds each with a walk of its
/// socket table's buckets, where a dump describes every socket of the
/// namespace, those of every other program included.
pub fn unix_sockets_of(inos: &[u32]) -> io::Result<HashMap<u32, UnixSock>> {
    // The answers wait in the netlink socket's receive buffer until all
    // are sent: a few dozen at a time stay far below it.
    let mut out = HashMap::new();
    for chunk in inos.chunks(64) {
        let reqs: Vec<[u8; 40]> = chunk
            .iter()
            .enumerate()
            .map(|(i, &ino)| diag_request(NLM_F_REQUEST, i as u32 + 1, ino))
            .collect();
        out.extend(diag(&reqs, chunk.len())?);
    }
    Ok(out)
}

thread_local! {
    /// This thread's sock_diag socket and receive buffer, kept between
    /// calls: a snapshot asks once or twice, and making and closing a
    /// netlink socket each time cost more than the asking. It is put back
    /// only after a call that read every answer, so no stale answer ever
    /// waits in it for the next call.
    static DIAG: std::cell::RefCell<Option<(OwnedFd, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Sends the requests `reqs` at once and reads the sockets they describe:
/// until the dump's end, or until `answers` answers came (one each for
/// requests of one socket; one that exists no more answers `ENOENT`).
fn diag(reqs: &[[u8; 40]], answers: usize) -> io::Result<HashMap<u32, UnixSock>> {
    let (sock, mut buf) = match DIAG.with(|d| d.borrow_mut().take()) {
        Some(kept) => kept,
        None => (diag_socket()?, vec![0u8; 32 * 1024]),
    };
    let r = diag_on(&sock, &mut buf, reqs, answers);
    if r.is_ok() {
        DIAG.with(|d| *d.borrow_mut() = Some((sock, buf)));
    }
    r
}

/// A new `NETLINK_SOCK_DIAG` socket.
fn diag_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments; the result is checked below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket() returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// [`diag`] on `sock`, receiving into `buf`.
fn diag_on(
    sock: &OwnedFd,
    buf: &mut [u8],
    reqs: &[[u8; 40]],
    answers: usize,
) -> io::Result<HashMap<u32, UnixSock>> {
    let msg: Vec<u8> = reqs.concat();
    // SAFETY: sends the bytes of `msg`, alive for the call; a null address
    // sends to the kernel (netlink's default peer).
    let sent = unsafe {
        libc::send(
            sock.as_raw_fd(),
            msg.as_ptr() as *const libc::c_void,
            msg.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = HashMap::new();
    let mut answered = 0;
    loop {
        if answers > 0 && answered == answers {
            return Ok(out);
        }
        // SAFETY: receives into `buf`, whose length is passed.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let data = &buf[..n as usize];
        let mut at = 0;
        while at + 16 <= data.len() {
            let len = u32_at(data, at) as usize;
            let ty = u16_at(data, at + 4);
            if len < 16 || at + len > data.len() {
                break;
            }
            match ty as i32 {
                libc::NLMSG_DONE => return Ok(out),
                libc::NLMSG_ERROR => {
                    let errno = -(u32_at(data, at + 16) as i32);
                    if answers == 0 || errno != libc::ENOENT {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    answered += 1;
                    at += len.div_ceil(4) * 4;
                    continue;
                }
                _ => {}
            }
            answered += 1;
            // unix_diag_msg: family, type, state, pad, ino, cookie[2].
            let body = at + 16;
            if body + 16 <= at + len {
                let mut s = UnixSock {
                    ty: data[body + 1],
                    state: data[body + 2],
                    ..UnixSock::default()
                };
                let ino = u32_at(data, body + 4);
                let mut a = body + 16;
                while a + 4 <= at + len {
                    let alen = u16_at(data, a) as usize;
                    let aty = u16_at(data, a + 2);
                    if alen < 4 || a + alen > at + len {
                        break;
                    }
                    let payload = &data[a + 4..a + alen];
                    match aty {
                        UNIX_DIAG_PEER if payload.len() >= 4 => s.peer = u32_at(payload, 0),
                        UNIX_DIAG_SHUTDOWN if !payload.is_empty() => s.shutdown = payload[0],
                        UNIX_DIAG_RQLEN if payload.len() >= 8 => {
                            s.rqueue = u32_at(payload, 0);
                            s.wqueue = u32_at(payload, 4);
                        }
                        UNIX_DIAG_ICONS => {
                            s.icons = payload.chunks_exact(4).map(|c| u32_at(c, 0)).collect();
                        }
                        UNIX_DIAG_NAME => s.name = Some(socket_name(payload)),
                        _ => {}
                    }
                    a += alen.div_ceil(4) * 4;
                }
                out.insert(ino, s);
            }
            at += len.div_ceil(4) * 4;
        }
    }
}

/// A bound name as `UNIX_DIAG_NAME` carries it: a path up to its NUL, or,
/// in the abstract namespace (a leading NUL byte), `@` and the rest.
fn socket_name(b: &[u8]) -> String {
    match b.split_first() {
        Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
        _ => {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sock_diag_sees_a_socketpair_and_its_peer() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let ino = |s: &std::os::unix::net::UnixStream| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd()))
                .unwrap()
                .ino() as u32
        };
        let all = unix_sockets().unwrap();
        let (ia, ib) = (ino(&a), ino(&b));
        assert_eq!(all[&ia].peer, ib);
        assert_eq!(all[&ib].peer, ia);
        assert_eq!(all[&ia].ty, libc::SOCK_STREAM as u8);
        assert_eq!(all[&ia].state, 1, "TCP_ESTABLISHED");
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let all = unix_sockets().unwrap();
        assert_eq!(all[&ia].shutdown, 2, "SEND_SHUTDOWN");
        assert_eq!(all[&ib].shutdown, 1, "RCV_SHUTDOWN");
        let _ = b;
    }

    #[test]
    fn sock_diag_finds_sockets_by_inode() {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, _d) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let ino = |fd: i32| {
            std::fs::metadata(format!("/proc/self/fd/{fd}"))
                .unwrap()
                .ino() as u32
        };
        let (ia, ib, ic) = (ino(a.as_raw_fd()), ino(b.as_raw_fd()), ino(c.as_raw_fd()));
        let gone = {
            let (e, _f) = std::os::unix::net::UnixStream::pair().unwrap();
            ino(e.as_raw_fd())
        };
        let some = unix_sockets_of(&[ia, gone, ic]).unwrap();
        assert_eq!(some.len(), 2, "{some:?}");
        assert_eq!(some[&ia].peer, ib);
        assert_eq!(some[&ic].ty, libc::SOCK_DGRAM as u8);
        // As the dump says.
        let all = unix_sockets().unwrap();
        assert_eq!(some[&ia], all[&ia]);
        assert!(unix_sockets_of(&[]).unwrap().is_empty());
    }

    #[test]
    fn sock_diag_names_a_bound_socket() {
        let name = format!("fdlab-sys-test-{}", std::process::id());
        let addr = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name.as_bytes()).unwrap();
        let l = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        let _c = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
        let ino = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(format!("/proc/self/fd/{}", l.as_raw_fd()))
                .unwrap()
                .ino() as u32
        };
        let s = unix_sockets().unwrap().remove(&ino).unwrap();
        assert_eq!(s.name.as_deref(), Some(format!("@{name}").as_str()));
        assert_eq!(
            (s.state, s.rqueue),
            (10, 1),
            "listening, one connection waiting"
        );
    }

    #[test]
    fn kcmp_compares_files_in_this_process() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let g = f.try_clone().unwrap();
        let h = std::fs::File::open("/dev/null").unwrap();
        let me = std::process::id() as i32;
        let (fd, gd, hd) = (
            f.as_raw_fd() as u64,
            g.as_raw_fd() as u64,
            h.as_raw_fd() as u64,
        );
        assert_eq!(
            kcmp(me, me, KCMP_FILE, fd, gd).unwrap(),
            Kcmp::Order(Ordering::Equal)
        );
        assert_ne!(
            kcmp(me, me, KCMP_FILE, fd, hd).unwrap(),
            Kcmp::Order(Ordering::Equal)
        );
        assert_eq!(
            kcmp(me, me, KCMP_FILES, 0, 0).unwrap(),
            Kcmp::Order(Ordering::Equal)
        );
    }
}
