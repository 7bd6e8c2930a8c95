//! The calls of the `.fds` language as typed values, and their results.
//!
//! This is the vocabulary every backend shares: the parser produces a
//! [`Call`], the model runs it with `World::call` (in `sys`), the Linux
//! backend makes the real system call. A leaf beside the kernel objects: it
//! names what a call says, and knows nothing of how it runs. Descriptor arguments stay raw (`i32`) here, because a
//! scenario may pass a negative number and expect `EBADF`.

use serde::{Deserialize, Serialize};

use crate::errno::Errno;
use crate::flags::{Events, OFlags};
use crate::socket::SockType;

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
