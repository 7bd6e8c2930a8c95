//! The `.fds` scenario language (reference: the book's "The scenario
//! language" chapter, `book/src/language.md`).
//!
//! [`parse`] turns a file into a [`Scenario`], checking as it goes what the
//! contract calls validation: process names must be live, descriptor numbers
//! at most 9,999, paths inside the sandbox. The first problem stops it with a
//! [`ScenarioError`] naming file, line and column; nothing runs.

mod lexer;
mod parser;
pub mod print;
pub mod text;

use fdlab_model::call::Value;
use fdlab_model::{Call, Errno, Events, OFlags};

pub use parser::parse;

/// Where something is in a scenario file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A scenario that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// A parsed, validated scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The name it was read under, for messages.
    pub file: String,
    pub stmts: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub line: usize,
    pub kind: StmtKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    Spawn {
        name: String,
        stdio: bool,
    },
    Call {
        proc: String,
        call: Call,
        expected: Option<Expected>,
    },
    Expect(Expectation),
}

impl Scenario {
    /// A number above every descriptor the scenario can make, in any
    /// process, whatever its calls answer: the Linux backend may put its
    /// helpers' own descriptors there, where the scenario cannot see them.
    ///
    /// A descriptor is made either at the lowest free number, which is at
    /// most the number of descriptors a table holds (every one made by a
    /// call of the scenario, or one of `spawn ... stdio`'s three), or at a
    /// number the call names (`dup2`, `dup3`, and `F_DUPFD`, which takes
    /// the lowest free from its minimum up). And no call makes one at or
    /// above the caller's `RLIMIT_NOFILE`, so a named number is never made
    /// when it is at or above every limit the scenario sets.
    ///
    /// It is also above every descriptor a call uses (and every end of a
    /// `close_range`), whatever the limit: a call that used the helpers'
    /// own descriptor would find it open where the model has none.
    pub fn descriptor_bound(&self) -> u32 {
        use fdlab_model::limits::DEFAULT_RLIMIT;
        use fdlab_model::FcntlCmd;
        let calls = || {
            self.stmts.iter().filter_map(|st| match &st.kind {
                StmtKind::Call { call, .. } => Some(call.plain()),
                _ => None,
            })
        };
        let limit = calls()
            .filter_map(|c| match c {
                Call::Rlimit { limit } => Some(*limit),
                _ => None,
            })
            .fold(DEFAULT_RLIMIT, u64::max);
        // Every descriptor a call of the scenario can make (a received file
        // was sent, one reference a descriptor named), and stdio's three.
        let made: u64 = 3 + calls()
            .map(|c| match c {
                Call::Pipe { .. } | Call::Socketpair { .. } => 2,
                Call::Open { .. }
                | Call::Dup { .. }
                | Call::Dup2 { .. }
                | Call::Dup3 { .. }
                | Call::Socket { .. }
                | Call::Accept { .. }
                | Call::EpollCreate { .. }
                | Call::Eventfd { .. }
                | Call::Ptypeer { .. }
                | Call::Fcntl {
                    cmd: FcntlCmd::DupFd { .. },
                    ..
                } => 1,
                Call::Sendfds { fds, .. } => fds.len() as u64,
                _ => 0,
            })
            .sum::<u64>();
        // One above the highest number a call names that it can make.
        let named = calls()
            .filter_map(|c| {
                let (at, plus) = match c {
                    Call::Dup2 { new, .. } | Call::Dup3 { new, .. } => (*new, 1),
                    // The lowest free from `min`: at most `made - 1` above.
                    Call::Fcntl {
                        cmd: FcntlCmd::DupFd { min, .. },
                        ..
                    } => (*min, made),
                    _ => return None,
                };
                let at = u64::try_from(at).ok().filter(|&n| n < limit)?;
                Some(at + plus)
            })
            .max()
            .unwrap_or(0);
        // `dup2`'s and `dup3`'s target is not used: at or above the limit
        // they fail before they look at it, and below it `named` counts it.
        let used = calls()
            .flat_map(|c| {
                let mut v = c.values();
                if matches!(c, Call::Dup2 { .. } | Call::Dup3 { .. }) {
                    v.truncate(1);
                }
                v
            })
            .flat_map(|v| match v {
                Value::Fd(n) => vec![i64::from(n)],
                Value::Fds(ns) => ns.into_iter().map(i64::from).collect(),
                Value::Number(n) if n != u32::MAX => vec![i64::from(n)],
                _ => Vec::new(),
            })
            .filter_map(|n| u64::try_from(n).ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        let bound = named.max(made).min(limit).max(used);
        u32::try_from(bound).unwrap_or(u32::MAX)
    }
}

/// The `= RESULT` of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Integers; for `recvfds`, whether or not `MSG_CTRUNC` was set.
    Ints(Vec<i64>),
    /// `recvfds`' descriptors followed by `MSG_CTRUNC`: the flag is
    /// required.
    Truncated(Vec<i64>),
    Errno(Errno),
    Text(Vec<u8>),
    Flags(OFlags),
    /// `epoll_wait`'s ready registrations, in order (`= none`: empty);
    /// each one's events compare as a set.
    Ready(Vec<(i64, Events)>),
    Ok,
}

/// Reads and parses the scenario at `path` (`-`: standard input). Every
/// problem, from a missing file to a bad token, is a [`ScenarioError`]
/// with a position: 1:1 for a file that cannot be read, the first bad byte
/// of text that is not UTF-8.
pub fn load(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
    use std::io::Read as _;
    let name = path.display().to_string();
    let at = |line, col, message: String| ScenarioError {
        file: name.clone(),
        line,
        col,
        message,
    };
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else if path.is_dir() {
        return Err(at(1, 1, "cannot read it: it is a directory".into()));
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    if let Err(e) = read {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        return Err(at(1, 1, format!("cannot read it: {why}")));
    }
    let src = match std::str::from_utf8(&bytes) {
        Ok(s) => s,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let col = String::from_utf8_lossy(&good[start..]).chars().count() + 1;
            let byte = bytes[e.valid_up_to()];
            return Err(at(line, col, format!("not UTF-8 text (byte 0x{byte:02x})")));
        }
    };
    parse(&name, src)
}

/// The `expect` statements, as written, and when each holds.
pub const EXPECTATIONS: &[(&str, &str)] = &[
    (
        "expect P:FD same Q:FD2",
        "both name one open file description (kcmp KCMP_FILE)",
    ),
    (
        "expect P:FD differs Q:FD2",
        "both are open and name different open files",
    ),
    (
        "expect P:FD sameobj Q:FD2",
        "both reach one object (inode), through one open file or two",
    ),
    (
        "expect P:FD diffobj Q:FD2",
        "both are open and reach different objects",
    ),
    (
        "expect P shares Q",
        "P and Q use one descriptor table (kcmp KCMP_FILES)",
    ),
    ("expect P apart Q", "P and Q use different tables"),
    (
        "expect P fds N...",
        "P's open descriptors are exactly N... (none: `expect P fds`)",
    ),
    (
        "expect P:EPFD watches Q:FD [as N]",
        "the epoll at P:EPFD watches Q:FD's file under number N (default FD)",
    ),
    (
        "expect P:EPFD ignores Q:FD",
        "the epoll at P:EPFD has no registration of Q:FD's file, under any number",
    ),
    (
        "expect P ctty Q:FD",
        "P's controlling terminal is the pty open at Q:FD",
    ),
    ("expect P ctty none", "P has no controlling terminal"),
];

/// A short reference of the language, from the call registry: what
/// `fdlab run --help` shows after its options.
pub fn reference() -> String {
    let mut s = String::from(
        "The scenario language (the book's chapter \"The scenario language\" has it all):\n",
    );
    row(
        &mut s,
        "spawn P [stdio]",
        "a process, with an empty table or 0,1,2 on /dev/null",
    );
    row(
        &mut s,
        "P: CALL ARG... [= RESULT]",
        "RESULT: descriptors (`= 3 4`), an errno (`= EBADF`),",
    );
    row(
        &mut s,
        "",
        "a string (`= \"hi\"`), ready registrations (`= 3:EPOLLIN`, `= none`),",
    );
    row(&mut s, "", "or `= ok` (it succeeded)");
    row(&mut s, "# ...", "a comment, to the end of the line");
    s.push_str("\nCalls:\n");
    for c in fdlab_model::call::CALLS {
        row(&mut s, &c.synopsis(), c.summary);
    }
    s.push_str("\nExpectations:\n");
    for (form, holds) in EXPECTATIONS {
        row(&mut s, form, holds);
    }
    s
}

/// One line of [`reference`]; a long form gets a line of its own.
fn row(s: &mut String, form: &str, what: &str) {
    use std::fmt::Write as _;
    if form.len() <= 36 {
        let _ = writeln!(s, "  {form:<36} {what}");
    } else {
        let _ = writeln!(s, "  {form}\n  {:<36} {what}", "");
    }
}

/// An `expect` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// `expect P:FD same Q:FD2` (`same == false`: `differs`).
    File {
        a: (String, i32),
        b: (String, i32),
        same: bool,
    },
    /// `expect P:FD sameobj Q:FD2` (`same == false`: `diffobj`).
    Object {
        a: (String, i32),
        b: (String, i32),
        same: bool,
    },
    /// `expect P shares Q` (`shares == false`: `apart`).
    Table { a: String, b: String, shares: bool },
    /// `expect P fds N...`
    Fds { proc: String, fds: Vec<i32> },
    /// `expect P:EPFD watches Q:FD [as N]`
    Watches {
        ep: (String, i32),
        target: (String, i32),
        as_fd: i32,
    },
    /// `expect P:EPFD ignores Q:FD`: no registration of that file, under
    /// any number.
    Ignores {
        ep: (String, i32),
        target: (String, i32),
    },
    /// `expect P ctty Q:FD`: P's controlling terminal is the pty open at
    /// Q:FD; `expect P ctty none` (`of == None`): P has none.
    Ctty {
        proc: String,
        of: Option<(String, i32)>,
    },
}
