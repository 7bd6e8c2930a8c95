//! The calls of the `.fds` language as typed values, and their results.
//!
//! This is the vocabulary every backend shares: the parser produces a
//! [`Call`], the model runs it with `World::call` (in `sys`), the Linux
//! backend makes the real system call. A leaf beside the kernel objects: it
//! names what a call says, and knows nothing of how it runs. Descriptor
//! arguments stay raw (`i32`) here, because a scenario may pass a negative
//! number and expect `EBADF`.
//!
//! [`CALLS`] is the registry: one row per call, with its name, how its
//! arguments are written ([`Arg`]), and how a call is made from their
//! values and taken back apart into them ([`Value`]). The parser, the
//! printer, [`Call::name`] and the language reference are all driven by
//! it, so a new call is a variant here, one row, its system call in the
//! model, and its real call in the Linux helper.

use serde::{Deserialize, Serialize};

use crate::errno::Errno;
use crate::flags::{Events, OFlags};
use crate::socket::{SockFlags, SockType};

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
    /// `EPOLL_CTL_MOD`: new events for an existing registration.
    Mod,
}

/// A `fcntl` command and its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FcntlCmd {
    DupFd {
        min: i32,
        cloexec: bool,
    },
    GetFd,
    SetFd {
        cloexec: bool,
    },
    GetFl,
    SetFl {
        flags: OFlags,
    },
    /// `F_DUPFD_QUERY`: whether `fd2` names the same open file.
    DupFdQuery {
        fd2: i32,
    },
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
        nonblock: bool,
    },
    Socketpair {
        ty: SockType,
        flags: SockFlags,
    },
    Socket {
        ty: SockType,
        flags: SockFlags,
    },
    /// `name` is a sandbox path, or `@name` in the abstract namespace.
    Bind {
        fd: i32,
        name: String,
    },
    Listen {
        fd: i32,
        backlog: i32,
    },
    Connect {
        fd: i32,
        name: String,
    },
    Accept {
        fd: i32,
        flags: SockFlags,
    },
    /// `how`: `SHUT_RD` (0), `SHUT_WR` (1), `SHUT_RDWR` (2), or any number.
    Shutdown {
        fd: i32,
        how: i32,
    },
    Sendfds {
        sock: i32,
        fds: Vec<i32>,
    },
    /// `max`: how many descriptors the control buffer has room for.
    Recvfds {
        sock: i32,
        max: u32,
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
        nonblock: bool,
    },
    EpollWait {
        epfd: i32,
        maxevents: i32,
    },
    Setsid,
    Tiocsctty {
        fd: i32,
    },
    /// The slave of the pty master at `fd`.
    Ptypeer {
        fd: i32,
        noctty: bool,
        cloexec: bool,
    },
    /// `call` with flag bits that Linux refuses for it beside its named
    /// ones (a scenario writes them as a number): the call fails
    /// `EINVAL`, after what Linux checks first (see [`numeric_flags`]).
    Flagged {
        call: Box<Call>,
        bits: u32,
    },
}

impl Call {
    /// The call's name as scenarios and strace output write it.
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// The call itself, without bits a scenario added as a number.
    pub fn plain(&self) -> &Call {
        match self {
            Call::Flagged { call, .. } => call.plain(),
            c => c,
        }
    }

    /// The call's row in [`CALLS`].
    pub fn spec(&self) -> &'static CallSpec {
        let call = self.plain();
        match CALLS.iter().find(|s| (s.values)(call).is_some()) {
            Some(s) => s,
            // Every variant has a row: `every_variant_has_one_row` checks it.
            None => unreachable!("a call without a row in CALLS: {self:?}"),
        }
    }

    /// The values of the call's arguments, in the order its row writes them.
    pub fn values(&self) -> Vec<Value> {
        (self.spec().values)(self.plain()).unwrap_or_default()
    }

    /// The process this call brings into being, if any.
    pub fn child(&self) -> Option<&str> {
        match self {
            Call::Fork { child } | Call::CloneFiles { child } => Some(child),
            _ => None,
        }
    }
}

/// How one argument of a call is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// The name of a process not in use yet: `[a-z][a-z0-9_]*`.
    NewProc,
    /// A descriptor number. A negative one reaches the call (which fails
    /// with `EBADF`); the harness's numbers (see `limits::HARNESS_FD`) are
    /// refused.
    Fd,
    /// A descriptor number from 0.
    FdFrom0,
    /// A descriptor number from 0, or `~0` for "every one".
    FdOrAll,
    /// One or more descriptor numbers.
    Fds,
    /// A relative path inside the sandbox, or `/dev/null`, `/dev/zero`,
    /// `/dev/ptmx`; quoted if it has spaces.
    Path,
    /// `O_RDONLY|O_CREAT|...`: at most one access mode.
    OpenFlags,
    /// An octal mode (at most `07777`), optional (`0644`).
    Mode,
    /// An `RLIMIT_NOFILE` soft limit.
    Limit,
    /// A quoted string.
    Bytes,
    /// A byte count.
    Len,
    /// A signed offset.
    Offset,
    /// `SEEK_SET`, `SEEK_CUR` or `SEEK_END`.
    Whence,
    /// This flag word, or nothing.
    Flag(&'static str),
    /// Any of these flag words, joined with `|` or as separate words, or
    /// nothing.
    Flags(&'static [&'static str]),
    /// A `fcntl` command and its argument: `F_DUPFD N`, `F_DUPFD_CLOEXEC N`,
    /// `F_GETFD`, `F_SETFD 0|FD_CLOEXEC`, `F_GETFL`, `F_SETFL FLAGS|0`,
    /// `F_DUPFD_QUERY FD2`.
    FcntlCmd,
    /// `CLOSE_RANGE_CLOEXEC|CLOSE_RANGE_UNSHARE` or `0`, optional.
    CloseRangeFlags,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET`, with
    /// `SOCK_CLOEXEC` and `SOCK_NONBLOCK` joined by `|` or as separate
    /// words.
    SockType,
    /// `SOCK_CLOEXEC` and `SOCK_NONBLOCK`, joined or separate, optional.
    SockFlags,
    /// A unix socket's name: a sandbox path, or `@name`.
    SockName,
    /// A `listen` backlog: a decimal number.
    Backlog,
    /// `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`, or a number.
    How,
    /// How many descriptors `recvfds`' control buffer has room for: a
    /// decimal number, optional (253).
    MaxFds,
    /// `EPOLL_CTL_ADD`, `EPOLL_CTL_DEL` or `EPOLL_CTL_MOD`.
    EpollOp,
    /// `EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET|EPOLLONESHOT|EPOLLEXCLUSIVE`,
    /// optional (`EPOLLIN`).
    Events,
    /// How many events `epoll_wait` takes at most: a decimal number up to
    /// [`crate::limits::MAX_EPOLL_EVENTS`] (0 or less reaches the call,
    /// which refuses it).
    MaxEvents,
}

impl Arg {
    /// How the argument is written in a synopsis: `FD`, `PATH`,
    /// `[MODE]`...
    pub fn synopsis(self) -> String {
        let word = match self {
            Arg::NewProc => "Q",
            Arg::Fd => "FD",
            Arg::FdFrom0 => "LO",
            Arg::FdOrAll => "HI|~0",
            Arg::Fds => "FD...",
            Arg::Path => "PATH",
            Arg::OpenFlags => "FLAGS",
            Arg::Mode => "[MODE]",
            Arg::Limit | Arg::Len => "N",
            Arg::Bytes => "\"TEXT\"",
            Arg::Offset => "OFFSET",
            Arg::Whence => "SEEK_SET|SEEK_CUR|SEEK_END",
            Arg::Flag(name) => return format!("[{name}]"),
            Arg::Flags(names) => {
                return names
                    .iter()
                    .map(|n| format!("[{n}]"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            Arg::FcntlCmd => "CMD [ARG]",
            Arg::CloseRangeFlags => "[CLOSE_RANGE_CLOEXEC|CLOSE_RANGE_UNSHARE]",
            Arg::SockType => "SOCK_STREAM|SOCK_DGRAM|SOCK_SEQPACKET [SOCK_CLOEXEC] [SOCK_NONBLOCK]",
            Arg::SockFlags => "[SOCK_CLOEXEC] [SOCK_NONBLOCK]",
            Arg::SockName => "NAME",
            Arg::Backlog => "BACKLOG",
            Arg::How => "SHUT_RD|SHUT_WR|SHUT_RDWR",
            Arg::MaxFds => "[MAXFDS]",
            Arg::EpollOp => "EPOLL_CTL_ADD|EPOLL_CTL_DEL|EPOLL_CTL_MOD",
            Arg::Events => "[EVENTS]",
            Arg::MaxEvents => "MAXEVENTS",
        };
        word.to_string()
    }
}

impl Value {
    fn flags(self) -> Option<Vec<bool>> {
        match self {
            Value::Flags(f) => Some(f),
            _ => None,
        }
    }
}

/// The value of one argument, as [`Arg`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Name(String),
    Fd(i32),
    /// `FdFrom0` and `FdOrAll` (`u32::MAX` is `~0`).
    Number(u32),
    Fds(Vec<i32>),
    Path(String),
    OFlags(OFlags),
    Mode(u32),
    Limit(u64),
    Bytes(Vec<u8>),
    Len(usize),
    Offset(i64),
    Whence(Whence),
    Flag(bool),
    /// Which of an [`Arg::Flags`]' words are given, in its order.
    Flags(Vec<bool>),
    Fcntl(FcntlCmd),
    CloseRange {
        unshare: bool,
        cloexec: bool,
    },
    Sock {
        ty: SockType,
        flags: SockFlags,
    },
    SockFlags(SockFlags),
    SockName(String),
    /// A backlog or a `shutdown` how.
    Int(i32),
    /// `recvfds`' room for descriptors.
    MaxFds(u32),
    EpollOp(EpollOp),
    Events(Events),
}

/// One call of the language: its row in [`CALLS`].
#[derive(Debug)]
pub struct CallSpec {
    pub name: &'static str,
    /// How its arguments are written, in order.
    pub args: &'static [Arg],
    /// What it does, in one line.
    pub summary: &'static str,
    /// What it returns when it succeeds.
    pub returns: &'static str,
    /// The call from the values of its arguments, in [`CallSpec::args`]'
    /// order; `None` if they do not fit them.
    pub build: fn(&mut Values) -> Option<Call>,
    /// The values of a call's arguments, if the call is this row's.
    pub values: fn(&Call) -> Option<Vec<Value>>,
}

/// Argument values, taken in order by a row's `build`.
#[derive(Debug)]
pub struct Values(std::vec::IntoIter<Value>);

impl Values {
    pub fn new(v: Vec<Value>) -> Values {
        Values(v.into_iter())
    }

    fn name(&mut self) -> Option<String> {
        match self.0.next()? {
            Value::Name(n) => Some(n),
            _ => None,
        }
    }

    fn fd(&mut self) -> Option<i32> {
        match self.0.next()? {
            Value::Fd(n) => Some(n),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<u32> {
        match self.0.next()? {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    fn flag(&mut self) -> Option<bool> {
        match self.0.next()? {
            Value::Flag(on) => Some(on),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Value> {
        self.0.next()
    }
}

/// What a call's flags may be written as when a scenario writes a number:
/// the bits the language names (a number is read as those names), the
/// bits Linux accepts that fdlab does not model (refused, with their
/// names), and the bits that are not flags at all (a socket's type).
/// Every other bit is passed to the call, which refuses it (`EINVAL`).
#[derive(Debug)]
pub struct NumericFlags {
    pub named: &'static [(&'static str, u32)],
    pub unmodelled: &'static [(&'static str, u32)],
    pub reserved: u32,
    /// Whether bits beyond the named ones reach the call (`open(2)`
    /// ignores unknown bits, so fdlab refuses them rather than pretend).
    pub passes_others: bool,
}

const CLOEXEC_BIT: u32 = 0o2_000_000;
const NOCTTY_BIT: u32 = 0o400;

/// The bits `open(2)` accepts that fdlab does not model. Wider bit sets
/// first, so that a number names the flag it is.
const OPEN_UNMODELLED: &[(&str, u32)] = &[
    ("O_SYNC", 0o4010000),
    ("__O_SYNC", 0o4000000),
    ("O_NOCTTY", 0o400),
    ("O_DSYNC", 0o10000),
    ("FASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000),
    ("O_PATH", 0o10000000),
    ("O_TMPFILE", 0o20000000),
];
const NONBLOCK_BIT: u32 = 0o4000;

/// The flags argument of call `name`, when it takes a number
/// (`recvfds` does not: its flags are not the scenario's to pass).
pub fn numeric_flags(name: &str) -> Option<&'static NumericFlags> {
    const fn word(
        named: &'static [(&'static str, u32)],
        unmodelled: &'static [(&'static str, u32)],
    ) -> NumericFlags {
        NumericFlags {
            named,
            unmodelled,
            reserved: 0,
            passes_others: true,
        }
    }
    static DUP3: NumericFlags = word(&[("O_CLOEXEC", CLOEXEC_BIT)], &[]);
    static PIPE: NumericFlags = word(
        &[("O_CLOEXEC", CLOEXEC_BIT), ("O_NONBLOCK", NONBLOCK_BIT)],
        &[("O_DIRECT", 0o40000), ("O_NOTIFICATION_PIPE", 0o200)],
    );
    static EVENTFD: NumericFlags = word(
        &[("EFD_CLOEXEC", CLOEXEC_BIT), ("EFD_NONBLOCK", NONBLOCK_BIT)],
        &[("EFD_SEMAPHORE", 1)],
    );
    static EPOLL_CREATE: NumericFlags = word(&[("EPOLL_CLOEXEC", CLOEXEC_BIT)], &[]);
    static CLOSE_RANGE: NumericFlags = word(
        &[("CLOSE_RANGE_UNSHARE", 2), ("CLOSE_RANGE_CLOEXEC", 4)],
        &[],
    );
    static SOCK: NumericFlags = NumericFlags {
        named: &[
            ("SOCK_CLOEXEC", CLOEXEC_BIT),
            ("SOCK_NONBLOCK", NONBLOCK_BIT),
        ],
        unmodelled: &[],
        // SOCK_TYPE_MASK: the type, written by name.
        reserved: 0xf,
        passes_others: true,
    };
    static ACCEPT: NumericFlags = word(
        &[
            ("SOCK_CLOEXEC", CLOEXEC_BIT),
            ("SOCK_NONBLOCK", NONBLOCK_BIT),
        ],
        &[],
    );
    static PTYPEER: NumericFlags = NumericFlags {
        named: &[("O_NOCTTY", NOCTTY_BIT), ("O_CLOEXEC", CLOEXEC_BIT)],
        unmodelled: OPEN_UNMODELLED,
        reserved: 0,
        // TIOCGPTPEER hands every bit to the open, which ignores most.
        passes_others: false,
    };
    static OPEN: NumericFlags = NumericFlags {
        named: &[
            ("O_WRONLY", 0o1),
            ("O_RDWR", 0o2),
            ("O_CREAT", 0o100),
            ("O_EXCL", 0o200),
            ("O_TRUNC", 0o1000),
            ("O_APPEND", 0o2000),
            ("O_NONBLOCK", NONBLOCK_BIT),
            ("O_DIRECTORY", 0o200000),
            ("O_CLOEXEC", CLOEXEC_BIT),
        ],
        unmodelled: OPEN_UNMODELLED,
        reserved: 0,
        passes_others: false,
    };
    Some(match name {
        "dup3" => &DUP3,
        "pipe" => &PIPE,
        "eventfd" => &EVENTFD,
        "epoll_create" => &EPOLL_CREATE,
        "close_range" => &CLOSE_RANGE,
        "socket" | "socketpair" => &SOCK,
        "accept" => &ACCEPT,
        "open" => &OPEN,
        "ptypeer" => &PTYPEER,
        _ => return None,
    })
}

/// Every call of the language, in the order the reference lists them.
pub const CALLS: &[CallSpec] = &[
    CallSpec {
        name: "fork",
        args: &[Arg::NewProc],
        summary: "a new process with a copy of the caller's table (every slot a new reference)",
        returns: "0 (in the model's own spelling; the child is named)",
        build: |v| Some(Call::Fork { child: v.name()? }),
        values: |c| match c {
            Call::Fork { child } => Some(vec![Value::Name(child.clone())]),
            _ => None,
        },
    },
    CallSpec {
        name: "clone_files",
        args: &[Arg::NewProc],
        summary: "a new process sharing the caller's table (clone(CLONE_FILES))",
        returns: "0",
        build: |v| Some(Call::CloneFiles { child: v.name()? }),
        values: |c| match c {
            Call::CloneFiles { child } => Some(vec![Value::Name(child.clone())]),
            _ => None,
        },
    },
    CallSpec {
        name: "unshare_files",
        args: &[],
        summary: "a private copy of a shared table (unshare(CLONE_FILES))",
        returns: "0",
        build: |_| Some(Call::UnshareFiles),
        values: |c| matches!(c, Call::UnshareFiles).then(Vec::new),
    },
    CallSpec {
        name: "exec",
        args: &[],
        summary: "execve: unshare the table, then close the close-on-exec descriptors",
        returns: "0",
        build: |_| Some(Call::Exec),
        values: |c| matches!(c, Call::Exec).then(Vec::new),
    },
    CallSpec {
        name: "exit",
        args: &[],
        summary: "the process ends; the last user of a table closes every descriptor",
        returns: "0",
        build: |_| Some(Call::Exit),
        values: |c| matches!(c, Call::Exit).then(Vec::new),
    },
    CallSpec {
        name: "rlimit",
        args: &[Arg::Limit],
        summary: "setrlimit(RLIMIT_NOFILE) of the soft limit",
        returns: "0",
        build: |v| match v.next()? {
            Value::Limit(limit) => Some(Call::Rlimit { limit }),
            _ => None,
        },
        values: |c| match c {
            Call::Rlimit { limit } => Some(vec![Value::Limit(*limit)]),
            _ => None,
        },
    },
    CallSpec {
        name: "open",
        args: &[Arg::Path, Arg::OpenFlags, Arg::Mode],
        summary: "a new open file at the lowest free descriptor",
        returns: "the descriptor",
        build: |v| match (v.next()?, v.next()?, v.next()?) {
            (Value::Path(path), Value::OFlags(flags), Value::Mode(mode)) => {
                Some(Call::Open { path, flags, mode })
            }
            _ => None,
        },
        values: |c| match c {
            Call::Open { path, flags, mode } => Some(vec![
                Value::Path(path.clone()),
                Value::OFlags(*flags),
                Value::Mode(*mode),
            ]),
            _ => None,
        },
    },
    CallSpec {
        name: "close",
        args: &[Arg::Fd],
        summary: "the descriptor is gone; the file lives on while other references do",
        returns: "0",
        build: |v| Some(Call::Close { fd: v.fd()? }),
        values: |c| match c {
            Call::Close { fd } => Some(vec![Value::Fd(*fd)]),
            _ => None,
        },
    },
    CallSpec {
        name: "dup",
        args: &[Arg::Fd],
        summary: "the lowest free descriptor names the same open file",
        returns: "the new descriptor",
        build: |v| Some(Call::Dup { fd: v.fd()? }),
        values: |c| match c {
            Call::Dup { fd } => Some(vec![Value::Fd(*fd)]),
            _ => None,
        },
    },
    CallSpec {
        name: "dup2",
        args: &[Arg::Fd, Arg::Fd],
        summary: "NEW names the open file OLD names, closing what NEW held",
        returns: "NEW",
        build: |v| {
            Some(Call::Dup2 {
                old: v.fd()?,
                new: v.fd()?,
            })
        },
        values: |c| match c {
            Call::Dup2 { old, new } => Some(vec![Value::Fd(*old), Value::Fd(*new)]),
            _ => None,
        },
    },
    CallSpec {
        name: "dup3",
        args: &[Arg::Fd, Arg::Fd, Arg::Flag("O_CLOEXEC")],
        summary: "dup2 with a close-on-exec flag; OLD == NEW is EINVAL",
        returns: "NEW",
        build: |v| {
            Some(Call::Dup3 {
                old: v.fd()?,
                new: v.fd()?,
                cloexec: v.flag()?,
            })
        },
        values: |c| match c {
            Call::Dup3 { old, new, cloexec } => Some(vec![
                Value::Fd(*old),
                Value::Fd(*new),
                Value::Flag(*cloexec),
            ]),
            _ => None,
        },
    },
    CallSpec {
        name: "fcntl",
        args: &[Arg::Fd, Arg::FcntlCmd],
        summary: "duplicate (F_DUPFD), ask whether FD2 names the same file (F_DUPFD_QUERY), or get or set the descriptor's or the file's flags",
        returns: "the new descriptor, the flag, the status flags, or 0",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(fd), Value::Fcntl(cmd)) => Some(Call::Fcntl { fd, cmd }),
            _ => None,
        },
        values: |c| match c {
            Call::Fcntl { fd, cmd } => Some(vec![Value::Fd(*fd), Value::Fcntl(*cmd)]),
            _ => None,
        },
    },
    CallSpec {
        name: "close_range",
        args: &[Arg::FdFrom0, Arg::FdOrAll, Arg::CloseRangeFlags],
        summary: "close (or mark close-on-exec) every descriptor from LO to HI",
        returns: "0",
        build: |v| {
            let (lo, hi) = (v.number()?, v.number()?);
            match v.next()? {
                Value::CloseRange { unshare, cloexec } => Some(Call::CloseRange {
                    lo,
                    hi,
                    unshare,
                    cloexec,
                }),
                _ => None,
            }
        },
        values: |c| match c {
            Call::CloseRange {
                lo,
                hi,
                unshare,
                cloexec,
            } => Some(vec![
                Value::Number(*lo),
                Value::Number(*hi),
                Value::CloseRange {
                    unshare: *unshare,
                    cloexec: *cloexec,
                },
            ]),
            _ => None,
        },
    },
    CallSpec {
        name: "write",
        args: &[Arg::Fd, Arg::Bytes],
        summary: "write the bytes, at the open file's offset",
        returns: "how many bytes were written",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(fd), Value::Bytes(data)) => Some(Call::Write { fd, data }),
            _ => None,
        },
        values: |c| match c {
            Call::Write { fd, data } => Some(vec![Value::Fd(*fd), Value::Bytes(data.clone())]),
            _ => None,
        },
    },
    CallSpec {
        name: "read",
        args: &[Arg::Fd, Arg::Len],
        summary: "read up to N bytes, never waiting (EAGAIN where Linux would wait)",
        returns: "the bytes read, as a string",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(fd), Value::Len(len)) => Some(Call::Read { fd, len }),
            _ => None,
        },
        values: |c| match c {
            Call::Read { fd, len } => Some(vec![Value::Fd(*fd), Value::Len(*len)]),
            _ => None,
        },
    },
    CallSpec {
        name: "lseek",
        args: &[Arg::Fd, Arg::Offset, Arg::Whence],
        summary: "move the open file's offset, which every descriptor of it shares",
        returns: "the new offset",
        build: |v| match (v.next()?, v.next()?, v.next()?) {
            (Value::Fd(fd), Value::Offset(offset), Value::Whence(whence)) => {
                Some(Call::Lseek { fd, offset, whence })
            }
            _ => None,
        },
        values: |c| match c {
            Call::Lseek { fd, offset, whence } => Some(vec![
                Value::Fd(*fd),
                Value::Offset(*offset),
                Value::Whence(*whence),
            ]),
            _ => None,
        },
    },
    CallSpec {
        name: "pipe",
        args: &[Arg::Flags(&["O_CLOEXEC", "O_NONBLOCK"])],
        summary: "a pipe: two open files, the read end first",
        returns: "the read end's and the write end's descriptors",
        build: |v| match v.next()?.flags()?[..] {
            [cloexec, nonblock] => Some(Call::Pipe { cloexec, nonblock }),
            _ => None,
        },
        values: |c| match c {
            Call::Pipe { cloexec, nonblock } => Some(vec![Value::Flags(vec![*cloexec, *nonblock])]),
            _ => None,
        },
    },
    CallSpec {
        name: "socketpair",
        args: &[Arg::SockType],
        summary: "a connected pair of Unix-domain sockets",
        returns: "the two descriptors",
        build: |v| match v.next()? {
            Value::Sock { ty, flags } => Some(Call::Socketpair { ty, flags }),
            _ => None,
        },
        values: |c| match c {
            Call::Socketpair { ty, flags } => Some(vec![Value::Sock {
                ty: *ty,
                flags: *flags,
            }]),
            _ => None,
        },
    },
    CallSpec {
        name: "socket",
        args: &[Arg::SockType],
        summary: "a Unix-domain socket, not bound and not connected",
        returns: "the descriptor",
        build: |v| match v.next()? {
            Value::Sock { ty, flags } => Some(Call::Socket { ty, flags }),
            _ => None,
        },
        values: |c| match c {
            Call::Socket { ty, flags } => Some(vec![Value::Sock {
                ty: *ty,
                flags: *flags,
            }]),
            _ => None,
        },
    },
    CallSpec {
        name: "bind",
        args: &[Arg::Fd, Arg::SockName],
        summary: "give the socket a name: a socket file in the sandbox, or @name (abstract)",
        returns: "0",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(fd), Value::SockName(name)) => Some(Call::Bind { fd, name }),
            _ => None,
        },
        values: |c| match c {
            Call::Bind { fd, name } => Some(vec![Value::Fd(*fd), Value::SockName(name.clone())]),
            _ => None,
        },
    },
    CallSpec {
        name: "listen",
        args: &[Arg::Fd, Arg::Backlog],
        summary: "accept connections on a bound stream or seqpacket socket; BACKLOG + 1 may wait",
        returns: "0",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(fd), Value::Int(backlog)) => Some(Call::Listen { fd, backlog }),
            _ => None,
        },
        values: |c| match c {
            Call::Listen { fd, backlog } => Some(vec![Value::Fd(*fd), Value::Int(*backlog)]),
            _ => None,
        },
    },
    CallSpec {
        name: "connect",
        args: &[Arg::Fd, Arg::SockName],
        summary: "connect to the listener bound to NAME (a datagram socket: make it the default peer); EAGAIN where Linux would wait",
        returns: "0",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(fd), Value::SockName(name)) => Some(Call::Connect { fd, name }),
            _ => None,
        },
        values: |c| match c {
            Call::Connect { fd, name } => {
                Some(vec![Value::Fd(*fd), Value::SockName(name.clone())])
            }
            _ => None,
        },
    },
    CallSpec {
        name: "accept",
        args: &[Arg::Fd, Arg::SockFlags],
        summary: "the oldest waiting connection gets a descriptor (accept4); EAGAIN when none waits",
        returns: "the new descriptor",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(fd), Value::SockFlags(flags)) => Some(Call::Accept { fd, flags }),
            _ => None,
        },
        values: |c| match c {
            Call::Accept { fd, flags } => Some(vec![Value::Fd(*fd), Value::SockFlags(*flags)]),
            _ => None,
        },
    },
    CallSpec {
        name: "shutdown",
        args: &[Arg::Fd, Arg::How],
        summary: "stop receiving, sending or both; a connected peer stops the other way",
        returns: "0",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(fd), Value::Int(how)) => Some(Call::Shutdown { fd, how }),
            _ => None,
        },
        values: |c| match c {
            Call::Shutdown { fd, how } => Some(vec![Value::Fd(*fd), Value::Int(*how)]),
            _ => None,
        },
    },
    CallSpec {
        name: "sendfds",
        args: &[Arg::Fd, Arg::Fds],
        summary: "send one byte with SCM_RIGHTS carrying the descriptors' files",
        returns: "0",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(sock), Value::Fds(fds)) => Some(Call::Sendfds { sock, fds }),
            _ => None,
        },
        values: |c| match c {
            Call::Sendfds { sock, fds } => Some(vec![Value::Fd(*sock), Value::Fds(fds.clone())]),
            _ => None,
        },
    },
    CallSpec {
        name: "recvfds",
        args: &[Arg::Fd, Arg::MaxFds, Arg::Flag("MSG_CMSG_CLOEXEC")],
        summary: "receive one byte and install the files that came with it, as many as MAXFDS and the table take",
        returns: "the new descriptors, or `ok` when none came; MSG_CTRUNC after them when some were closed",
        build: |v| {
            let sock = v.fd()?;
            let Value::MaxFds(max) = v.next()? else {
                return None;
            };
            Some(Call::Recvfds {
                sock,
                max,
                cloexec: v.flag()?,
            })
        },
        values: |c| match c {
            Call::Recvfds { sock, max, cloexec } => Some(vec![
                Value::Fd(*sock),
                Value::MaxFds(*max),
                Value::Flag(*cloexec),
            ]),
            _ => None,
        },
    },
    CallSpec {
        name: "epoll_create",
        args: &[Arg::Flag("EPOLL_CLOEXEC")],
        summary: "a new epoll instance",
        returns: "its descriptor",
        build: |v| Some(Call::EpollCreate { cloexec: v.flag()? }),
        values: |c| match c {
            Call::EpollCreate { cloexec } => Some(vec![Value::Flag(*cloexec)]),
            _ => None,
        },
    },
    CallSpec {
        name: "epoll_ctl",
        args: &[Arg::Fd, Arg::EpollOp, Arg::Fd, Arg::Events],
        summary:
            "register the file FD names under FD, change that registration's events, or remove it",
        returns: "0",
        build: |v| match (v.next()?, v.next()?, v.next()?, v.next()?) {
            (Value::Fd(epfd), Value::EpollOp(op), Value::Fd(fd), Value::Events(events)) => {
                Some(Call::EpollCtl {
                    epfd,
                    op,
                    fd,
                    events,
                })
            }
            _ => None,
        },
        values: |c| match c {
            Call::EpollCtl {
                epfd,
                op,
                fd,
                events,
            } => Some(vec![
                Value::Fd(*epfd),
                Value::EpollOp(*op),
                Value::Fd(*fd),
                Value::Events(*events),
            ]),
            _ => None,
        },
    },
    CallSpec {
        name: "eventfd",
        args: &[Arg::Flags(&["EFD_CLOEXEC", "EFD_NONBLOCK"])],
        summary: "an eventfd counter starting at 0",
        returns: "its descriptor",
        build: |v| match v.next()?.flags()?[..] {
            [cloexec, nonblock] => Some(Call::Eventfd { cloexec, nonblock }),
            _ => None,
        },
        values: |c| match c {
            Call::Eventfd { cloexec, nonblock } => {
                Some(vec![Value::Flags(vec![*cloexec, *nonblock])])
            }
            _ => None,
        },
    },
    CallSpec {
        name: "setsid",
        args: &[],
        summary: "a new session and process group that the process leads, with no controlling terminal",
        returns: "0; EPERM for a process that leads its process group already",
        build: |_| Some(Call::Setsid),
        values: |c| matches!(c, Call::Setsid).then(Vec::new),
    },
    CallSpec {
        name: "tiocsctty",
        args: &[Arg::Fd],
        summary: "ioctl(TIOCSCTTY): the terminal at FD (a pty master stands for its slave) becomes the controlling terminal of the process, which must lead its session",
        returns: "0",
        build: |v| Some(Call::Tiocsctty { fd: v.fd()? }),
        values: |c| match c {
            Call::Tiocsctty { fd } => Some(vec![Value::Fd(*fd)]),
            _ => None,
        },
    },
    CallSpec {
        name: "ptypeer",
        args: &[Arg::Fd, Arg::Flags(&["O_NOCTTY", "O_CLOEXEC"])],
        summary: "ioctl(TIOCSPTLCK, 0) then ioctl(TIOCGPTPEER): opens the slave of the pty master at FD, read-write; without O_NOCTTY a session leader with no controlling terminal takes it as one",
        returns: "its descriptor",
        build: |v| match (v.fd()?, &v.next()?.flags()?[..]) {
            (fd, &[noctty, cloexec]) => Some(Call::Ptypeer {
                fd,
                noctty,
                cloexec,
            }),
            _ => None,
        },
        values: |c| match c {
            Call::Ptypeer {
                fd,
                noctty,
                cloexec,
            } => Some(vec![Value::Fd(*fd), Value::Flags(vec![*noctty, *cloexec])]),
            _ => None,
        },
    },
    CallSpec {
        name: "epoll_wait",
        args: &[Arg::Fd, Arg::MaxEvents],
        summary: "the registrations that are ready, at most MAXEVENTS, in the order of the ready list; never waits",
        returns: "each as FD:EVENTS, FD the number it was registered under (closed or not); `none` when nothing is ready",
        build: |v| match (v.next()?, v.next()?) {
            (Value::Fd(epfd), Value::Int(maxevents)) => Some(Call::EpollWait { epfd, maxevents }),
            _ => None,
        },
        values: |c| match c {
            Call::EpollWait { epfd, maxevents } => {
                Some(vec![Value::Fd(*epfd), Value::Int(*maxevents)])
            }
            _ => None,
        },
    },
];

impl CallSpec {
    /// How the call is written: `open PATH FLAGS [MODE]`, descriptors
    /// named by their role where a call takes several.
    pub fn synopsis(&self) -> String {
        let roles: &[&str] = match self.name {
            "dup2" | "dup3" => &["OLD", "NEW"],
            "sendfds" | "recvfds" => &["SOCK"],
            "epoll_ctl" | "epoll_wait" => &["EPFD"],
            _ => &[],
        };
        let mut roles = roles.iter();
        let mut s = self.name.to_string();
        for a in self.args {
            s.push(' ');
            match (a, roles.next()) {
                (Arg::Fd, Some(role)) => s.push_str(role),
                _ => s.push_str(&a.synopsis()),
            }
        }
        s
    }
}

/// The calls whose names are nearest `name` (edit distance at most 2, or
/// sharing its first three letters), nearest first: what an unknown call
/// was probably meant to be.
pub fn nearest(name: &str) -> Vec<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    let mut near: Vec<(usize, &'static str)> = CALLS
        .iter()
        .map(|c| (distance(name, c.name), c.name))
        // `get`: the first three bytes may not end on a character.
        .filter(|&(d, n)| d <= 2 || name.get(..3).is_some_and(|p| n.starts_with(p)))
        .collect();
    near.sort();
    near.into_iter().map(|(_, n)| n).collect()
}

/// Every call's name, in the registry's order, comma-separated.
pub fn call_names() -> String {
    CALLS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// The row of the call named `name`.
pub fn spec(name: &str) -> Option<&'static CallSpec> {
    CALLS.iter().find(|s| s.name == name)
}

/// What a successful call returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ret {
    /// Descriptors, a count, an offset or 0: `= 3`, `= 5 6`; an empty list
    /// for `recvfds` that received no files.
    Ints(Vec<i64>),
    /// What `recvfds` installed when the kernel set `MSG_CTRUNC`: files
    /// came that did not fit the control buffer or the table, and were
    /// closed.
    Truncated(Vec<i64>),
    /// The bytes `read` returned.
    Bytes(Vec<u8>),
    /// `F_GETFL`'s status flags.
    Flags(OFlags),
    /// What `epoll_wait` reported: each ready registration's number and
    /// events, in the order Linux gave them.
    Ready(Vec<(i64, Events)>),
}

impl Ret {
    pub fn int(n: i64) -> Ret {
        Ret::Ints(vec![n])
    }

    /// `recvfds`' result: the descriptors installed, and whether
    /// `MSG_CTRUNC` was set.
    pub fn received(fds: Vec<i64>, ctrunc: bool) -> Ret {
        if ctrunc {
            Ret::Truncated(fds)
        } else {
            Ret::Ints(fds)
        }
    }
}

/// A call's outcome: Linux's result or its errno.
pub type Outcome = Result<Ret, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One call of every variant (a new variant must be added here, and
    /// the match below makes the compiler say so).
    fn one_of_each() -> Vec<Call> {
        let all = vec![
            Call::Fork { child: "c".into() },
            Call::CloneFiles { child: "c".into() },
            Call::UnshareFiles,
            Call::Exec,
            Call::Exit,
            Call::Rlimit { limit: 5 },
            Call::Open {
                path: "a".into(),
                flags: OFlags::RDWR,
                mode: 0o600,
            },
            Call::Close { fd: 3 },
            Call::Dup { fd: 3 },
            Call::Dup2 { old: 3, new: 4 },
            Call::Dup3 {
                old: 3,
                new: 4,
                cloexec: true,
            },
            Call::Fcntl {
                fd: 3,
                cmd: FcntlCmd::GetFl,
            },
            Call::CloseRange {
                lo: 3,
                hi: u32::MAX,
                unshare: true,
                cloexec: false,
            },
            Call::Write {
                fd: 3,
                data: b"x".to_vec(),
            },
            Call::Read { fd: 3, len: 4 },
            Call::Lseek {
                fd: 3,
                offset: -1,
                whence: Whence::End,
            },
            Call::Pipe {
                cloexec: true,
                nonblock: false,
            },
            Call::Socketpair {
                ty: SockType::Dgram,
                flags: SockFlags {
                    cloexec: true,
                    nonblock: false,
                },
            },
            Call::Socket {
                ty: SockType::Seqpacket,
                flags: SockFlags {
                    cloexec: false,
                    nonblock: true,
                },
            },
            Call::Bind {
                fd: 3,
                name: "@srv".into(),
            },
            Call::Listen { fd: 3, backlog: 2 },
            Call::Connect {
                fd: 4,
                name: "srv.sock".into(),
            },
            Call::Accept {
                fd: 3,
                flags: SockFlags::default(),
            },
            Call::Shutdown { fd: 3, how: 1 },
            Call::Sendfds {
                sock: 3,
                fds: vec![4, 5],
            },
            Call::Recvfds {
                sock: 3,
                max: 2,
                cloexec: false,
            },
            Call::EpollCreate { cloexec: false },
            Call::EpollCtl {
                epfd: 3,
                op: EpollOp::Del,
                fd: 4,
                events: Events::OUT,
            },
            Call::Eventfd {
                cloexec: true,
                nonblock: true,
            },
            Call::EpollWait {
                epfd: 3,
                maxevents: 8,
            },
            Call::Setsid,
            Call::Tiocsctty { fd: 3 },
            Call::Ptypeer {
                fd: 3,
                noctty: true,
                cloexec: false,
            },
        ];
        for c in &all {
            // Exhaustive: a new variant fails to compile until it is above.
            match c {
                Call::Fork { .. }
                | Call::CloneFiles { .. }
                | Call::UnshareFiles
                | Call::Exec
                | Call::Exit
                | Call::Rlimit { .. }
                | Call::Open { .. }
                | Call::Close { .. }
                | Call::Dup { .. }
                | Call::Dup2 { .. }
                | Call::Dup3 { .. }
                | Call::Fcntl { .. }
                | Call::CloseRange { .. }
                | Call::Write { .. }
                | Call::Read { .. }
                | Call::Lseek { .. }
                | Call::Pipe { .. }
                | Call::Socketpair { .. }
                | Call::Socket { .. }
                | Call::Bind { .. }
                | Call::Listen { .. }
                | Call::Connect { .. }
                | Call::Accept { .. }
                | Call::Shutdown { .. }
                | Call::Sendfds { .. }
                | Call::Recvfds { .. }
                | Call::EpollCreate { .. }
                | Call::EpollCtl { .. }
                | Call::Eventfd { .. }
                | Call::EpollWait { .. }
                | Call::Setsid
                | Call::Tiocsctty { .. }
                | Call::Ptypeer { .. }
                | Call::Flagged { .. } => {}
            }
        }
        all
    }

    /// Bits written as a number ride on a call of their own row; every
    /// call whose row has a flags argument says what a number may hold.
    #[test]
    fn flagged_calls_are_their_call_with_bits() {
        let dup3 = Call::Dup3 {
            old: 3,
            new: 4,
            cloexec: false,
        };
        let c = Call::Flagged {
            call: Box::new(dup3.clone()),
            bits: 1,
        };
        assert_eq!(c.name(), "dup3");
        assert_eq!(c.values(), dup3.values());
        assert_eq!(c.plain(), &dup3);
        for row in CALLS {
            let flags = row.args.iter().any(|a| {
                matches!(
                    a,
                    Arg::Flag(_)
                        | Arg::Flags(_)
                        | Arg::OpenFlags
                        | Arg::CloseRangeFlags
                        | Arg::SockType
                        | Arg::SockFlags
                )
            });
            let numeric = numeric_flags(row.name).is_some();
            assert_eq!(flags && row.name != "recvfds", numeric, "{}", row.name);
        }
    }

    #[test]
    fn nearest_names_take_any_text() {
        assert_eq!(nearest("sockt"), ["socket", "socketpair"]);
        // Three bytes that end inside a character.
        assert!(nearest("aé").is_empty());
        assert!(nearest("ébc").is_empty());
    }

    #[test]
    fn every_variant_has_one_row_that_takes_it_apart_and_back() {
        let all = one_of_each();
        assert_eq!(all.len(), CALLS.len(), "one row per variant");
        for c in all {
            let rows: Vec<&str> = CALLS
                .iter()
                .filter(|s| (s.values)(&c).is_some())
                .map(|s| s.name)
                .collect();
            assert_eq!(rows.len(), 1, "{c:?} matches rows {rows:?}");
            let row = c.spec();
            assert_eq!(spec(c.name()).map(|s| s.name), Some(row.name));
            let values = c.values();
            assert_eq!(values.len(), row.args.len(), "{c:?}");
            assert_eq!((row.build)(&mut Values::new(values)), Some(c.clone()));
        }
        let mut names: Vec<&str> = CALLS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CALLS.len(), "names are unique");
    }
}
