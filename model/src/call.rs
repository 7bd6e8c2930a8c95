//! The calls of the `.fds` language as typed values, and their results.
//!
//! This is the vocabulary every backend shares: the parser produces a
//! [`Call`], the model runs it with [`World::call`], the Linux backend makes
//! the real system call. Descriptor arguments stay raw (`i32`) here, because a
//! scenario may pass a negative number and expect `EBADF`.

use serde::{Deserialize, Serialize};

use crate::errno::Errno;
use crate::flags::{Events, OFlags};
use crate::proc::Pid;
use crate::socket::SockType;
use crate::world::World;

/// `lseek` whence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Whence {
    Set,
    Cur,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EpollOp {
    Add,
    Del,
}

/// A `fcntl` command and its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FcntlCmd {
    DupFd { min: i32, cloexec: bool },
    GetFd,
    SetFd { cloexec: bool },
    GetFl,
    SetFl { flags: OFlags },
}

/// One call of the language (everything but `spawn`, which makes a process
/// rather than being made by one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Call {
    Fork {
        child: String,
    },
    CloneFiles {
        child: String,
    },
    UnshareFiles,
    Exec,
    Exit,
    Rlimit {
        limit: u64,
    },
    Open {
        path: String,
        flags: OFlags,
        mode: u32,
    },
    Close {
        fd: i32,
    },
    Dup {
        fd: i32,
    },
    Dup2 {
        old: i32,
        new: i32,
    },
    Dup3 {
        old: i32,
        new: i32,
        cloexec: bool,
    },
    Fcntl {
        fd: i32,
        cmd: FcntlCmd,
    },
    /// `hi == u32::MAX` is `~0`.
    CloseRange {
        lo: u32,
        hi: u32,
        unshare: bool,
        cloexec: bool,
    },
    Write {
        fd: i32,
        data: Vec<u8>,
    },
    Read {
        fd: i32,
        len: usize,
    },
    Lseek {
        fd: i32,
        offset: i64,
        whence: Whence,
    },
    Pipe {
        cloexec: bool,
    },
    Socketpair {
        ty: SockType,
        cloexec: bool,
    },
    Sendfds {
        sock: i32,
        fds: Vec<i32>,
    },
    Recvfds {
        sock: i32,
        cloexec: bool,
    },
    EpollCreate {
        cloexec: bool,
    },
    EpollCtl {
        epfd: i32,
        op: EpollOp,
        fd: i32,
        events: Events,
    },
    Eventfd {
        cloexec: bool,
    },
}

impl Call {
    /// The call's name as scenarios and strace output write it.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Fork { .. } => "fork",
            Call::CloneFiles { .. } => "clone_files",
            Call::UnshareFiles => "unshare_files",
            Call::Exec => "exec",
            Call::Exit => "exit",
            Call::Rlimit { .. } => "rlimit",
            Call::Open { .. } => "open",
            Call::Close { .. } => "close",
            Call::Dup { .. } => "dup",
            Call::Dup2 { .. } => "dup2",
            Call::Dup3 { .. } => "dup3",
            Call::Fcntl { .. } => "fcntl",
            Call::CloseRange { .. } => "close_range",
            Call::Write { .. } => "write",
            Call::Read { .. } => "read",
            Call::Lseek { .. } => "lseek",
            Call::Pipe { .. } => "pipe",
            Call::Socketpair { .. } => "socketpair",
            Call::Sendfds { .. } => "sendfds",
            Call::Recvfds { .. } => "recvfds",
            Call::EpollCreate { .. } => "epoll_create",
            Call::EpollCtl { .. } => "epoll_ctl",
            Call::Eventfd { .. } => "eventfd",
        }
    }

    /// The process this call brings into being, if any.
    pub fn child(&self) -> Option<&str> {
        match self {
            Call::Fork { child } | Call::CloneFiles { child } => Some(child),
            _ => None,
        }
    }
}

/// What a successful call returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ret {
    /// Descriptors, a count, an offset or 0: `= 3`, `= 5 6`; an empty list
    /// for `recvfds` that received no files.
    Ints(Vec<i64>),
    /// The bytes `read` returned.
    Bytes(Vec<u8>),
    /// `F_GETFL`'s status flags.
    Flags(OFlags),
}

impl Ret {
    pub fn int(n: i64) -> Ret {
        Ret::Ints(vec![n])
    }
}

/// A call's outcome: Linux's result or its errno.
pub type Outcome = Result<Ret, Errno>;

impl World {
    /// Runs `call` as process `pid`. Under `debug_assertions` every invariant
    /// is checked afterwards.
    ///
    /// Precondition: `pid` is live. (A `fork` or `clone_files` to a name in
    /// use is `EEXIST`; the scenario validator rejects it first.)
    pub fn call(&mut self, pid: Pid, call: &Call) -> Outcome {
        let out = self.dispatch(pid, call);
        #[cfg(debug_assertions)]
        if let Err(v) = crate::invariants::check_all(self) {
            panic!("invariant broken after {call:?}: {v}");
        }
        out
    }

    fn dispatch(&mut self, pid: Pid, call: &Call) -> Outcome {
        use Call::*;
        let fd = |n: crate::Fd| Ret::int(n.get() as i64);
        match call {
            Fork { child } => self.fork(pid, child).map(|_| Ret::int(0)),
            CloneFiles { child } => self.fdshare(pid, child).map(|_| Ret::int(0)),
            UnshareFiles => {
                self.fdunshare(pid);
                Ok(Ret::int(0))
            }
            Exec => {
                self.sys_exec(pid);
                Ok(Ret::int(0))
            }
            Exit => {
                self.fdfree(pid);
                Ok(Ret::int(0))
            }
            Rlimit { limit } => self.sys_setrlimit(pid, *limit).map(|_| Ret::int(0)),
            Open { path, flags, mode } => self.sys_open(pid, path, *flags, *mode).map(fd),
            Close { fd } => self.sys_close(pid, *fd).map(|_| Ret::int(0)),
            Dup { fd: n } => self.sys_dup(pid, *n).map(fd),
            Dup2 { old, new } => self.sys_dup2(pid, *old, *new).map(fd),
            Dup3 { old, new, cloexec } => self.sys_dup3(pid, *old, *new, *cloexec).map(fd),
            Fcntl { fd, cmd } => self.sys_fcntl(pid, *fd, *cmd),
            CloseRange {
                lo,
                hi,
                unshare,
                cloexec,
            } => self
                .sys_close_range(pid, *lo, *hi, *unshare, *cloexec)
                .map(|_| Ret::int(0)),
            Write { fd, data } => self.sys_write(pid, *fd, data).map(|n| Ret::int(n as i64)),
            Read { fd, len } => self.sys_read(pid, *fd, *len).map(Ret::Bytes),
            Lseek { fd, offset, whence } => {
                self.sys_lseek(pid, *fd, *offset, *whence).map(Ret::int)
            }
            Pipe { cloexec } => self
                .sys_pipe(pid, *cloexec)
                .map(|(r, w)| Ret::Ints(vec![r.get() as i64, w.get() as i64])),
            Socketpair { ty, cloexec } => self
                .sys_socketpair(pid, *ty, *cloexec)
                .map(|(a, b)| Ret::Ints(vec![a.get() as i64, b.get() as i64])),
            Sendfds { sock, fds } => self.sys_sendfds(pid, *sock, fds).map(|_| Ret::int(0)),
            Recvfds { sock, cloexec } => self
                .sys_recvfds(pid, *sock, *cloexec)
                .map(|fds| Ret::Ints(fds.iter().map(|f| f.get() as i64).collect())),
            EpollCreate { cloexec } => self.sys_epoll_create(pid, *cloexec).map(fd),
            EpollCtl {
                epfd,
                op,
                fd,
                events,
            } => self
                .sys_epoll_ctl(pid, *epfd, *op, *fd, *events)
                .map(|_| Ret::int(0)),
            Eventfd { cloexec } => self.sys_eventfd(pid, *cloexec).map(fd),
        }
    }
}
