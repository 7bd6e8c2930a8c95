//! Statements, calls and results, checked against the scenario's live
//! processes as they are read.

use std::collections::{BTreeMap, BTreeSet};

use fdlab_model::call::{numeric_flags, spec, Arg, NumericFlags, Value, Values};
use fdlab_model::flags::OPEN_FLAG_NAMES;
use fdlab_model::limits::SCM_MAX_FD;
use fdlab_model::{Call, EpollOp, Errno, Events, FcntlCmd, OFlags, SockFlags, SockType, Whence};

use super::lexer::{lex, Tok, Token};
use super::{Expectation, Expected, Scenario, ScenarioError, Stmt, StmtKind};

/// Descriptor numbers from here up belong to the real backend's harness.
pub const MAX_FD: i64 = fdlab_model::limits::HARNESS_FD as i64 - 1;
/// The largest `rlimit` a scenario may set.
pub const MAX_RLIMIT: u64 = fdlab_model::limits::HARNESS_FD as u64;
/// The largest `read` a scenario may ask for (1 MiB).
pub const MAX_READ: usize = 1 << 20;
/// The absolute paths a scenario may open.
/// The longest abstract socket name a scenario may give (the Linux
/// backend prefixes it with the run's own, within `sun_path`'s 107 bytes).
pub const MAX_ABSTRACT: usize = 64;
/// The longest socket path (`sun_path`, less its NUL).
pub const MAX_SUN_PATH: usize = 107;
pub const DEVICES: [&str; 3] = ["/dev/null", "/dev/zero", "/dev/ptmx"];

/// Parses and validates `src`, read from `file`.
///
/// Errors: the first syntax or validation problem, with its position.
pub fn parse(file: &str, src: &str) -> Result<Scenario, ScenarioError> {
    let mut p = Parser {
        file,
        line: 0,
        live: BTreeSet::new(),
        exited: BTreeMap::new(),
        numeric: None,
        extra: std::cell::Cell::new(0),
    };
    let mut stmts = Vec::new();
    for (i, text) in src.lines().enumerate() {
        p.line = i + 1;
        let toks = lex(text).map_err(|(col, msg)| p.err_at(col, msg))?;
        if toks.is_empty() {
            continue;
        }
        let kind = p.statement(&toks, text.chars().count() + 1)?;
        stmts.push(Stmt { line: p.line, kind });
    }
    if stmts.is_empty() {
        p.line = 1;
        return Err(p.err_at(
            1,
            "the scenario is empty: it has no statement (start with `spawn P`)",
        ));
    }
    Ok(Scenario {
        file: file.to_string(),
        stmts,
    })
}

struct Parser<'a> {
    file: &'a str,
    line: usize,
    live: BTreeSet<String>,
    /// Processes that exited, and the line where they did.
    exited: BTreeMap<String, usize>,
    /// What the flags of the call being read may hold as a number.
    numeric: Option<&'static NumericFlags>,
    /// Bits of such numbers that reach the call beside its named flags.
    extra: std::cell::Cell<u32>,
}

type Res<T> = Result<T, ScenarioError>;

/// The tokens of one statement, consumed left to right.
struct Cursor<'t> {
    toks: &'t [Token],
    i: usize,
    /// The column just past the end of the line, for "expected ..." at EOL.
    eol: usize,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.toks.get(self.i)
    }

    fn next(&mut self) -> Option<&'t Token> {
        let t = self.toks.get(self.i);
        self.i += 1;
        t
    }

    /// The column of the next token, or the end of the line.
    fn col(&self) -> usize {
        self.peek().map_or(self.eol, |t| t.col)
    }

    /// The next token if it is a word.
    fn word(&mut self) -> Option<(&'t str, usize)> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                col,
            }) => {
                self.i += 1;
                Some((w.as_str(), *col))
            }
            _ => None,
        }
    }

    /// Whether only `= RESULT` (or nothing) remains.
    fn at_result(&self) -> bool {
        matches!(self.peek(), None | Some(Token { tok: Tok::Eq, .. }))
    }
}

/// A flag word written as a number: decimal, or hex after `0x`.
fn number(w: &str) -> Option<u32> {
    match w.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None if w.bytes().all(|b| b.is_ascii_digit()) => w.parse().ok(),
        None => None,
    }
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('a'..='z'))
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn describe(t: Option<&Token>) -> String {
    match t {
        None => "end of line".into(),
        Some(Token { tok: Tok::Eq, .. }) => "`=`".into(),
        Some(Token {
            tok: Tok::Word(w), ..
        }) => format!("`{w}`"),
        Some(Token {
            tok: Tok::Str(_), ..
        }) => "a string".into(),
    }
}

impl Parser<'_> {
    fn err_at(&self, col: usize, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.to_string(),
            line: self.line,
            col,
            message: message.into(),
        }
    }

    fn expected<T>(&self, c: &Cursor, what: &str) -> Res<T> {
        Err(self.err_at(
            c.col(),
            format!("expected {what}, found {}", describe(c.peek())),
        ))
    }

    /// A live process name at `col`.
    fn live_proc(&self, name: &str, col: usize) -> Res<String> {
        if !is_name(name) {
            return Err(self.err_at(
                col,
                format!("`{name}` is not a process name ([a-z][a-z0-9_]*)"),
            ));
        }
        if let Some(line) = self.exited.get(name) {
            return Err(self.err_at(col, format!("process `{name}` exited at line {line}")));
        }
        if !self.live.contains(name) {
            return Err(self.err_at(
                col,
                format!("unknown process `{name}` (spawn it, or fork it from another)"),
            ));
        }
        Ok(name.to_string())
    }

    /// A name for a process about to be created.
    fn new_proc(&self, c: &mut Cursor) -> Res<String> {
        let col = c.col();
        let Some((name, _)) = c.word() else {
            return self.expected(c, "a process name");
        };
        if !is_name(name) {
            return Err(self.err_at(
                col,
                format!("`{name}` is not a process name ([a-z][a-z0-9_]*)"),
            ));
        }
        if self.live.contains(name) || self.exited.contains_key(name) {
            return Err(self.err_at(col, format!("process name `{name}` is already used")));
        }
        Ok(name.to_string())
    }

    fn statement(&mut self, toks: &[Token], eol: usize) -> Res<StmtKind> {
        let mut c = Cursor { toks, i: 0, eol };
        let first_col = c.col();
        let Some((first, _)) = c.word() else {
            return self.expected(&c, "`spawn`, `expect` or `PROC:`");
        };
        let kind = match first {
            "spawn" => {
                let name = self.new_proc(&mut c)?;
                let stdio = match c.word() {
                    None => false,
                    Some(("stdio", _)) => true,
                    Some((w, col)) => {
                        return Err(self
                            .err_at(col, format!("expected `stdio` or end of line, found `{w}`")))
                    }
                };
                self.live.insert(name.clone());
                StmtKind::Spawn { name, stdio }
            }
            "expect" => StmtKind::Expect(self.expectation(&mut c)?),
            w => {
                let Some((name, rest)) = w.split_once(':') else {
                    return Err(self.err_at(
                        first_col,
                        format!("expected `spawn`, `expect` or `PROC: CALL ...`, found `{w}`"),
                    ));
                };
                let proc = self.live_proc(name, first_col)?;
                let (call_name, call_col) = if rest.is_empty() {
                    let col = c.col();
                    match c.word() {
                        Some((n, _)) => (n, col),
                        None => return self.expected(&c, "a call name"),
                    }
                } else {
                    (rest, first_col + name.chars().count() + 1)
                };
                let call = self.call(call_name, call_col, &mut c)?;
                let expected = self.result(&mut c)?;
                match &call {
                    Call::Fork { child } | Call::CloneFiles { child } => {
                        self.live.insert(child.clone());
                    }
                    Call::Exit => {
                        self.live.remove(&proc);
                        self.exited.insert(proc.clone(), self.line);
                    }
                    _ => {}
                }
                return Ok(StmtKind::Call {
                    proc,
                    call,
                    expected,
                });
            }
        };
        match c.peek() {
            None => Ok(kind),
            Some(t) => Err(self.err_at(
                t.col,
                format!("expected end of line, found {}", describe(Some(t))),
            )),
        }
    }

    /// One ready registration of an `epoll_wait` result: `FD:EVENTS`, the
    /// events among those epoll reports, joined with `|`.
    fn ready_event(&self, w: &str, col: usize) -> Res<(i64, Events)> {
        let Some((fd, events)) = w.split_once(':') else {
            return Err(self.err_at(
                col,
                format!("expected FD:EVENTS (`3:EPOLLIN`), found `{w}`"),
            ));
        };
        let fd: i64 = fd.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
            self.err_at(col, format!("expected a descriptor number, found `{fd}`"))
        })?;
        let mut set = Events::default();
        let mut at = col + w.len() - events.len();
        for part in events.split('|') {
            let e = Events::from_name(part)
                .filter(|e| Events::REPORTED.contains(*e))
                .ok_or_else(|| {
                    self.err_at(
                        at,
                        format!("`{part}` is not an event epoll_wait reports (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP)"),
                    )
                })?;
            set = set | e;
            at += part.chars().count() + 1;
        }
        Ok((fd, set))
    }

    /// An integer word.
    fn int(&self, c: &mut Cursor, what: &str) -> Res<(i64, usize)> {
        let col = c.col();
        match c.word() {
            Some((w, _)) => w
                .parse::<i64>()
                .map(|n| (n, col))
                .map_err(|_| self.err_at(col, format!("expected {what}, found `{w}`"))),
            None => self.expected(c, what),
        }
    }

    /// A descriptor number for a call: negative is allowed (the call fails
    /// with EBADF), above `MAX_FD` (9,999) is not.
    fn fd(&self, c: &mut Cursor) -> Res<i32> {
        let (n, col) = self.int(c, "a descriptor number")?;
        if n > MAX_FD {
            return Err(self.err_at(
                col,
                format!(
                    "descriptor {n} is reserved for the harness (scenarios use at most {MAX_FD})"
                ),
            ));
        }
        i32::try_from(n).map_err(|_| self.err_at(col, format!("descriptor {n} is out of range")))
    }

    /// A non-negative descriptor number (close_range bounds, expectations).
    fn fd_nonneg(&self, c: &mut Cursor) -> Res<i32> {
        let col = c.col();
        let n = self.fd(c)?;
        if n < 0 {
            return Err(self.err_at(
                col,
                format!("expected a descriptor number from 0 to {MAX_FD}, found {n}"),
            ));
        }
        Ok(n)
    }

    /// A `|`-joined set of names, each mapped by `known`; `0` is the empty set
    /// when `zero_ok`.
    fn flag_set<T: Copy>(
        &self,
        c: &mut Cursor,
        what: &str,
        zero_ok: bool,
        known: impl Fn(&str) -> Option<T>,
    ) -> Res<(Vec<T>, usize)> {
        let col = c.col();
        let Some((w, _)) = c.word() else {
            return self.expected(c, what);
        };
        if zero_ok && w == "0" {
            return Ok((Vec::new(), col));
        }
        let mut out = Vec::new();
        let mut at = col;
        for part in w.split('|') {
            match (known(part), self.numeric, number(part)) {
                (Some(v), _, _) => out.push(v),
                (None, Some(nf), Some(bits)) => {
                    for name in self.number_flags(nf, bits, at)? {
                        // The table names only words the argument knows.
                        out.extend(known(name));
                    }
                }
                _ => return Err(self.err_at(at, format!("expected {what}, found `{part}`"))),
            }
            at += part.chars().count() + 1;
        }
        Ok((out, col))
    }

    /// A number written among a call's flags: the names of the bits the
    /// language names, while the bits Linux refuses go to `extra`.
    ///
    /// Errors: bits that are a socket's type, bits Linux accepts that fdlab
    /// does not model, and, for `open`, bits Linux would ignore.
    fn number_flags(&self, nf: &NumericFlags, bits: u32, col: usize) -> Res<Vec<&'static str>> {
        if bits & nf.reserved != 0 {
            return Err(self.err_at(
                col,
                format!(
                    "bits {:#x} are the socket's type: write it by name",
                    bits & nf.reserved
                ),
            ));
        }
        if let Some((name, bit)) = nf.unmodelled.iter().find(|(_, b)| bits & b == *b) {
            return Err(self.err_at(
                col,
                format!("{bit:#x} is {name}, which Linux accepts here and fdlab does not model"),
            ));
        }
        let mut names = Vec::new();
        let mut rest = bits;
        for &(name, bit) in nf.named {
            if bits & bit != 0 {
                names.push(name);
                rest &= !bit;
            }
        }
        if rest != 0 {
            if !nf.passes_others {
                return Err(self.err_at(
                    col,
                    format!("bits {rest:#x} are no flags Linux knows here (it ignores them): leave them out"),
                ));
            }
            self.extra.set(self.extra.get() | rest);
        }
        Ok(names)
    }

    /// An optional flag, `name`, at the end of a call (or a number, where
    /// the call takes one).
    fn opt_flag(&self, c: &mut Cursor, name: &str) -> Res<bool> {
        let mut on = false;
        while !c.at_result() {
            let what = format!("`{name}`, `=` or end of line");
            let (parts, _) = self.flag_set(c, &what, false, |n| (n == name).then_some(()))?;
            on |= !parts.is_empty();
        }
        Ok(on)
    }

    fn open_flags(&self, c: &mut Cursor) -> Res<OFlags> {
        let known = |n: &str| OPEN_FLAG_NAMES.iter().find(|(x, _)| *x == n).copied();
        let what = "open flags (O_RDONLY|O_CREAT ...)";
        let (mut flags, col) = self.flag_set(c, what, false, known)?;
        // More flags as words of their own, up to the mode (octal, so a
        // number among the flags is written in hex there).
        while let Some(Token {
            tok: Tok::Word(w), ..
        }) = c.peek()
        {
            if !(w.starts_with("O_") || w.starts_with("0x")) {
                break;
            }
            flags.extend(self.flag_set(c, what, false, known)?.0);
        }
        let modes = flags
            .iter()
            .filter(|(n, _)| matches!(*n, "O_RDONLY" | "O_WRONLY" | "O_RDWR"))
            .count();
        if modes > 1 {
            return Err(self.err_at(col, "at most one of O_RDONLY, O_WRONLY, O_RDWR"));
        }
        Ok(flags.into_iter().fold(OFlags::RDONLY, |a, (_, f)| a | f))
    }

    /// `SOCK_CLOEXEC` and `SOCK_NONBLOCK` up to the result, each joined
    /// with `|` or a word of its own.
    fn sock_flags(&self, c: &mut Cursor) -> Res<SockFlags> {
        let mut flags = SockFlags::default();
        while !c.at_result() {
            let (parts, _) = self.flag_set(c, "SOCK_CLOEXEC or SOCK_NONBLOCK", false, |n| {
                ["SOCK_CLOEXEC", "SOCK_NONBLOCK"]
                    .into_iter()
                    .find(|&x| x == n)
            })?;
            flags.cloexec |= parts.contains(&"SOCK_CLOEXEC");
            flags.nonblock |= parts.contains(&"SOCK_NONBLOCK");
        }
        Ok(flags)
    }

    /// A unix socket's name: `@name` (abstract: letters, digits, `.`, `_`
    /// and `-`), or a sandbox path.
    fn sock_name(&self, c: &mut Cursor) -> Res<String> {
        if let Some(Token {
            tok: Tok::Word(w), ..
        }) = c.peek()
        {
            if let Some(abs) = w.strip_prefix('@') {
                let col = c.col();
                let ok = !abs.is_empty()
                    && abs.len() <= MAX_ABSTRACT
                    && abs
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(self.err_at(
                        col,
                        format!("an abstract name is `@` and 1 to {MAX_ABSTRACT} letters, digits, `.`, `_` or `-`, found `{w}`"),
                    ));
                }
                let name = w.clone();
                c.next();
                return Ok(name);
            }
        }
        let col = c.col();
        let path = self.path(c)?;
        if path.starts_with('/') {
            return Err(self.err_at(col, "a socket name is a path in the sandbox or @name"));
        }
        if path.len() > MAX_SUN_PATH {
            return Err(self.err_at(
                col,
                format!("a socket path has at most {MAX_SUN_PATH} bytes (sun_path)"),
            ));
        }
        Ok(path)
    }

    fn path(&self, c: &mut Cursor) -> Res<String> {
        let col = c.col();
        let path = match c.next() {
            Some(Token {
                tok: Tok::Word(w), ..
            }) => w.clone(),
            Some(Token {
                tok: Tok::Str(b), ..
            }) => String::from_utf8(b.clone())
                .map_err(|_| self.err_at(col, "a path must be UTF-8"))?,
            t => return Err(self.err_at(col, format!("expected a path, found {}", describe(t)))),
        };
        if path.starts_with('/') {
            if DEVICES.contains(&path.as_str()) {
                return Ok(path);
            }
            return Err(self.err_at(
                col,
                format!("absolute path `{path}` is outside the sandbox (only /dev/null, /dev/zero and /dev/ptmx)"),
            ));
        }
        if path.contains('\0') {
            return Err(self.err_at(col, "a path cannot contain NUL"));
        }
        let mut depth: i64 = 0;
        for comp in path.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(self.err_at(col, format!("path `{path}` leaves the sandbox")));
                    }
                }
                _ => depth += 1,
            }
        }
        Ok(path)
    }

    /// The call named `name` (at `col`) and its arguments, as its row in
    /// the registry ([`CALLS`]) says they are written.
    fn call(&mut self, name: &str, col: usize, c: &mut Cursor) -> Res<Call> {
        let Some(spec) = spec(name) else {
            let near = fdlab_model::call::nearest(name);
            let hint = match near.as_slice() {
                [] => String::new(),
                [one] => format!("did you mean `{one}`? "),
                more => format!("did you mean one of `{}`? ", more.join("`, `")),
            };
            return Err(self.err_at(
                col,
                format!(
                    "unknown call `{name}`: {hint}(the calls: {})",
                    fdlab_model::call::call_names()
                ),
            ));
        };
        let mut values = Vec::with_capacity(spec.args.len());
        self.numeric = numeric_flags(name);
        self.extra.set(0);
        for &kind in spec.args {
            values.push(self.arg(kind, c)?);
        }
        let call = (spec.build)(&mut Values::new(values)).ok_or_else(|| {
            // The values were read by the row's own grammar.
            self.err_at(
                col,
                format!("internal: `{name}`'s arguments do not fit its row"),
            )
        })?;
        Ok(match self.extra.take() {
            0 => call,
            bits => Call::Flagged {
                call: Box::new(call),
                bits,
            },
        })
    }

    /// One argument written as `kind` says.
    fn arg(&mut self, kind: Arg, c: &mut Cursor) -> Res<Value> {
        Ok(match kind {
            Arg::NewProc => Value::Name(self.new_proc(c)?),
            Arg::Fd => Value::Fd(self.fd(c)?),
            Arg::FdFrom0 => Value::Number(self.fd_nonneg(c)? as u32),
            Arg::FdOrAll => match c.peek() {
                Some(Token {
                    tok: Tok::Word(w), ..
                }) if w == "~0" => {
                    c.next();
                    Value::Number(u32::MAX)
                }
                _ => Value::Number(self.fd_nonneg(c)? as u32),
            },
            Arg::Fds => {
                let mut fds = vec![self.fd(c)?];
                while !c.at_result() {
                    fds.push(self.fd(c)?);
                }
                Value::Fds(fds)
            }
            Arg::Path => Value::Path(self.path(c)?),
            Arg::OpenFlags => Value::OFlags(self.open_flags(c)?),
            Arg::Mode => Value::Mode(if c.at_result() {
                0o644
            } else {
                let col = c.col();
                let (w, _) = c
                    .word()
                    .ok_or_else(|| self.err_at(col, "expected an octal mode"))?;
                match u32::from_str_radix(w.trim_start_matches("0o"), 8) {
                    Ok(m) if m <= 0o7777 => m,
                    _ => {
                        return Err(self.err_at(
                            col,
                            format!("expected an octal mode (0 to 07777), found `{w}`"),
                        ))
                    }
                }
            }),
            Arg::Limit => {
                let (n, col) = self.int(c, "a limit")?;
                match u64::try_from(n) {
                    Ok(n) if n <= MAX_RLIMIT => Value::Limit(n),
                    _ => {
                        return Err(self
                            .err_at(col, format!("rlimit must be 0 to {MAX_RLIMIT}, found {n}")))
                    }
                }
            }
            Arg::Bytes => {
                let col = c.col();
                match c.next() {
                    Some(Token {
                        tok: Tok::Str(b), ..
                    }) => Value::Bytes(b.clone()),
                    t => {
                        return Err(self.err_at(
                            col,
                            format!("expected a quoted string, found {}", describe(t)),
                        ))
                    }
                }
            }
            Arg::Len => {
                let (n, col) = self.int(c, "a byte count")?;
                match usize::try_from(n) {
                    Ok(n) if n <= MAX_READ => Value::Len(n),
                    _ => {
                        return Err(self.err_at(
                            col,
                            format!("a read takes 0 to {MAX_READ} bytes, found {n}"),
                        ))
                    }
                }
            }
            Arg::Offset => Value::Offset(self.int(c, "an offset")?.0),
            Arg::Whence => {
                let col = c.col();
                Value::Whence(match c.word() {
                    Some(("SEEK_SET", _)) => Whence::Set,
                    Some(("SEEK_CUR", _)) => Whence::Cur,
                    Some(("SEEK_END", _)) => Whence::End,
                    _ => return Err(self.err_at(col, "expected SEEK_SET, SEEK_CUR or SEEK_END")),
                })
            }
            Arg::MaxFds => match c.peek() {
                Some(Token {
                    tok: Tok::Word(w), ..
                }) if w.bytes().all(|b| b.is_ascii_digit()) => {
                    let (n, col) = self.int(c, "a number of descriptors")?;
                    match u32::try_from(n) {
                        Ok(n) if n as usize <= SCM_MAX_FD => Value::MaxFds(n),
                        _ => {
                            return Err(self.err_at(
                                col,
                                format!("MAXFDS is 0 to {SCM_MAX_FD} (SCM_MAX_FD), found {n}"),
                            ))
                        }
                    }
                }
                _ => Value::MaxFds(SCM_MAX_FD as u32),
            },
            Arg::Flag(name) => Value::Flag(self.opt_flag(c, name)?),
            Arg::Flags(names) => {
                let mut on = vec![false; names.len()];
                while !c.at_result() {
                    let what = names.join(" or ");
                    let (parts, _) =
                        self.flag_set(c, &what, false, |n| names.iter().position(|x| *x == n))?;
                    for i in parts {
                        on[i] = true;
                    }
                }
                Value::Flags(on)
            }
            Arg::FcntlCmd => Value::Fcntl(self.fcntl_cmd(c)?),
            Arg::CloseRangeFlags => {
                let (mut unshare, mut cloexec) = (false, false);
                while !c.at_result() {
                    let (flags, _) = self.flag_set(
                        c,
                        "CLOSE_RANGE_CLOEXEC or CLOSE_RANGE_UNSHARE",
                        true,
                        |n| match n {
                            "CLOSE_RANGE_CLOEXEC" => Some(true),
                            "CLOSE_RANGE_UNSHARE" => Some(false),
                            _ => None,
                        },
                    )?;
                    cloexec |= flags.contains(&true);
                    unshare |= flags.contains(&false);
                }
                Value::CloseRange { unshare, cloexec }
            }
            Arg::SockType => {
                const TYPES: [(&str, SockType); 3] = [
                    ("SOCK_STREAM", SockType::Stream),
                    ("SOCK_DGRAM", SockType::Dgram),
                    ("SOCK_SEQPACKET", SockType::Seqpacket),
                ];
                let (parts, col) =
                    self.flag_set(c, "SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET", false, |n| {
                        TYPES
                            .iter()
                            .map(|t| t.0)
                            .chain(["SOCK_CLOEXEC", "SOCK_NONBLOCK"])
                            .find(|&x| x == n)
                    })?;
                let types: Vec<SockType> = TYPES
                    .iter()
                    .filter(|(n, _)| parts.contains(n))
                    .map(|&(_, t)| t)
                    .collect();
                let [ty] = types[..] else {
                    return Err(self.err_at(
                        col,
                        "expected exactly one of SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET",
                    ));
                };
                let mut flags = self.sock_flags(c)?;
                flags.cloexec |= parts.contains(&"SOCK_CLOEXEC");
                flags.nonblock |= parts.contains(&"SOCK_NONBLOCK");
                Value::Sock { ty, flags }
            }
            Arg::SockFlags => Value::SockFlags(self.sock_flags(c)?),
            Arg::SockName => Value::SockName(self.sock_name(c)?),
            Arg::Backlog => {
                let (n, col) = self.int(c, "a backlog")?;
                Value::Int(i32::try_from(n).map_err(|_| {
                    self.err_at(col, format!("a backlog is a 32-bit number, found {n}"))
                })?)
            }
            Arg::MaxEvents => {
                let (n, col) = self.int(c, "a number of events")?;
                let max = fdlab_model::limits::MAX_EPOLL_EVENTS;
                Value::Int(
                    i32::try_from(n).ok().filter(|&n| n <= max).ok_or_else(|| {
                        self.err_at(col, format!("at most {max} events, found {n}"))
                    })?,
                )
            }
            Arg::How => {
                let col = c.col();
                let how = match c.word() {
                    Some(("SHUT_RD", _)) => Some(0),
                    Some(("SHUT_WR", _)) => Some(1),
                    Some(("SHUT_RDWR", _)) => Some(2),
                    Some((w, _)) => w.parse::<i32>().ok(),
                    None => None,
                };
                Value::Int(how.ok_or_else(|| {
                    self.err_at(col, "expected SHUT_RD, SHUT_WR, SHUT_RDWR or a number")
                })?)
            }
            Arg::EpollOp => {
                let col = c.col();
                Value::EpollOp(match c.word() {
                    Some(("EPOLL_CTL_ADD", _)) => EpollOp::Add,
                    Some(("EPOLL_CTL_DEL", _)) => EpollOp::Del,
                    Some(("EPOLL_CTL_MOD", _)) => EpollOp::Mod,
                    _ => {
                        return Err(self.err_at(
                            col,
                            "expected EPOLL_CTL_ADD, EPOLL_CTL_DEL or EPOLL_CTL_MOD",
                        ))
                    }
                })
            }
            Arg::Events => Value::Events(if c.at_result() {
                Events::IN
            } else {
                let (e, _) = self.flag_set(
                    c,
                    "events (EPOLLIN EPOLLOUT EPOLLRDHUP EPOLLET EPOLLONESHOT EPOLLEXCLUSIVE)",
                    false,
                    |n| Events::from_name(n).filter(|e| *e == e.shown()),
                )?;
                e.into_iter().fold(Events::default(), |a, b| a | b)
            }),
        })
    }

    /// A `fcntl` command and its argument.
    fn fcntl_cmd(&self, c: &mut Cursor) -> Res<FcntlCmd> {
        let col = c.col();
        Ok(match c.word() {
            Some(("F_DUPFD", _)) => FcntlCmd::DupFd {
                min: self.fd(c)?,
                cloexec: false,
            },
            Some(("F_DUPFD_CLOEXEC", _)) => FcntlCmd::DupFd {
                min: self.fd(c)?,
                cloexec: true,
            },
            Some(("F_GETFD", _)) => FcntlCmd::GetFd,
            Some(("F_DUPFD_QUERY", _)) => FcntlCmd::DupFdQuery { fd2: self.fd(c)? },
            Some(("F_GETFL", _)) => FcntlCmd::GetFl,
            Some(("F_SETFD", _)) => {
                let col = c.col();
                match c.word() {
                    Some(("0", _)) => FcntlCmd::SetFd { cloexec: false },
                    Some(("FD_CLOEXEC" | "1", _)) => FcntlCmd::SetFd { cloexec: true },
                    _ => return Err(self.err_at(col, "expected `0` or `FD_CLOEXEC`")),
                }
            }
            Some(("F_SETFL", _)) => {
                let (f, _) = self.flag_set(
                    c,
                    "status flags (O_APPEND|O_NONBLOCK, or 0)",
                    true,
                    OFlags::from_name,
                )?;
                FcntlCmd::SetFl {
                    flags: f.into_iter().fold(OFlags::RDONLY, |a, b| a | b),
                }
            }
            _ => {
                return Err(self.err_at(
                    col,
                    "expected F_DUPFD, F_DUPFD_CLOEXEC, F_DUPFD_QUERY, F_GETFD, F_SETFD, F_GETFL or F_SETFL",
                ))
            }
        })
    }

    /// `= RESULT`, or nothing.
    fn result(&self, c: &mut Cursor) -> Res<Option<Expected>> {
        match c.next() {
            None => return Ok(None),
            Some(Token { tok: Tok::Eq, .. }) => {}
            Some(t) => {
                return Err(self.err_at(
                    t.col,
                    format!("expected `=` or end of line, found {}", describe(Some(t))),
                ))
            }
        }
        let col = c.col();
        let exp = match c.next() {
            None => return Err(self.err_at(col, "expected a result after `=`")),
            Some(Token {
                tok: Tok::Str(b), ..
            }) => Expected::Text(b.clone()),
            Some(Token { tok: Tok::Eq, .. }) => {
                return Err(self.err_at(col, "expected a result, found `=`"))
            }
            Some(Token {
                tok: Tok::Word(w), ..
            }) => {
                if w == "ok" {
                    Expected::Ok
                } else if w == "none" {
                    Expected::Ready(Vec::new())
                } else if w.contains(':') {
                    let mut v = vec![self.ready_event(w, col)?];
                    while let Some((w, col)) = c.word() {
                        v.push(self.ready_event(w, col)?);
                    }
                    Expected::Ready(v)
                } else if w == "MSG_CTRUNC" {
                    Expected::Truncated(Vec::new())
                } else if let Ok(n) = w.parse::<i64>() {
                    let mut v = vec![n];
                    let mut truncated = false;
                    while let Some((w, col)) = c.word() {
                        if w == "MSG_CTRUNC" {
                            truncated = true;
                            break;
                        }
                        v.push(w.parse().map_err(|_| {
                            self.err_at(col, format!("expected an integer, found `{w}`"))
                        })?);
                    }
                    if truncated {
                        Expected::Truncated(v)
                    } else {
                        Expected::Ints(v)
                    }
                } else if let Some(e) = Errno::from_name(w) {
                    Expected::Errno(e)
                } else if w.starts_with("O_") {
                    let mut f = OFlags::RDONLY;
                    let mut at = col;
                    for part in w.split('|') {
                        f |= OFlags::from_name(part)
                            .ok_or_else(|| self.err_at(at, format!("unknown flag `{part}`")))?;
                        at += part.chars().count() + 1;
                    }
                    Expected::Flags(f)
                } else {
                    return Err(self.err_at(
                        col,
                        format!("expected a result (integers, an errno name, a string, a flag set, ready registrations such as `3:EPOLLIN` or `none`, or `ok`), found `{w}`"),
                    ));
                }
            }
        };
        match c.peek() {
            None => Ok(Some(exp)),
            Some(t) => Err(self.err_at(
                t.col,
                format!("expected end of line, found {}", describe(Some(t))),
            )),
        }
    }

    /// `P:FD` in an expectation.
    fn proc_fd(&self, c: &mut Cursor) -> Res<(String, i32)> {
        let col = c.col();
        let Some((w, _)) = c.word() else {
            return self.expected(c, "PROC:FD");
        };
        let Some((name, fd)) = w.split_once(':') else {
            return Err(self.err_at(col, format!("expected PROC:FD, found `{w}`")));
        };
        let proc = self.live_proc(name, col)?;
        let fcol = col + name.chars().count() + 1;
        match fd.parse::<i32>() {
            Ok(n) if (0..=MAX_FD as i32).contains(&n) => Ok((proc, n)),
            _ => Err(self.err_at(
                fcol,
                format!("expected a descriptor number from 0 to {MAX_FD}, found `{fd}`"),
            )),
        }
    }

    fn expectation(&self, c: &mut Cursor) -> Res<Expectation> {
        let col = c.col();
        let Some((first, _)) = c.word() else {
            return self.expected(c, "PROC or PROC:FD");
        };
        if first.contains(':') {
            c.i -= 1;
            let a = self.proc_fd(c)?;
            let vcol = c.col();
            return match c.word() {
                Some(("same", _)) => Ok(Expectation::File {
                    a,
                    b: self.proc_fd(c)?,
                    same: true,
                }),
                Some(("differs", _)) => Ok(Expectation::File {
                    a,
                    b: self.proc_fd(c)?,
                    same: false,
                }),
                Some(("watches", _)) => {
                    let target = self.proc_fd(c)?;
                    let as_fd = match c.word() {
                        None => target.1,
                        Some(("as", _)) => self.fd_nonneg(c)?,
                        Some((w, col)) => {
                            return Err(self
                                .err_at(col, format!("expected `as` or end of line, found `{w}`")))
                        }
                    };
                    Ok(Expectation::Watches {
                        ep: a,
                        target,
                        as_fd,
                    })
                }
                Some(("sameobj", _)) => Ok(Expectation::Object {
                    a,
                    b: self.proc_fd(c)?,
                    same: true,
                }),
                Some(("diffobj", _)) => Ok(Expectation::Object {
                    a,
                    b: self.proc_fd(c)?,
                    same: false,
                }),
                Some(("ignores", _)) => Ok(Expectation::Ignores {
                    ep: a,
                    target: self.proc_fd(c)?,
                }),
                _ => Err(self.err_at(
                    vcol,
                    "expected `same`, `differs`, `sameobj`, `diffobj`, `watches` or `ignores`",
                )),
            };
        }
        let proc = self.live_proc(first, col)?;
        let vcol = c.col();
        match c.word() {
            Some(("shares", _)) | Some(("apart", _)) => {
                let shares = c.toks[c.i - 1].tok == Tok::Word("shares".into());
                let ocol = c.col();
                let Some((other, _)) = c.word() else {
                    return self.expected(c, "a process name");
                };
                let b = self.live_proc(other, ocol)?;
                Ok(Expectation::Table { a: proc, b, shares })
            }
            Some(("fds", _)) => {
                let mut fds = Vec::new();
                while c.peek().is_some() {
                    fds.push(self.fd_nonneg(c)?);
                }
                Ok(Expectation::Fds { proc, fds })
            }
            Some(("ctty", _)) => {
                let of = match c.peek() {
                    Some(Token {
                        tok: Tok::Word(w), ..
                    }) if w == "none" => {
                        c.next();
                        None
                    }
                    _ => Some(self.proc_fd(c)?),
                };
                Ok(Expectation::Ctty { proc, of })
            }
            _ => Err(self.err_at(vcol, "expected `shares`, `apart`, `fds` or `ctty`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        parse("t.fds", src).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_statement_form() {
        let s = parse(
            "t.fds",
            "spawn p1 stdio\np1: open \"a b\" O_RDWR|O_CREAT 0600 = 3\np1: fork p2\n\
             expect p1:3 same p2:3\nexpect p1 apart p2\nexpect p2 fds 0 1 2 3\n\
             p1: epoll_create = 4\np1: epoll_ctl 4 EPOLL_CTL_ADD 0 EPOLLIN|EPOLLOUT\n\
             expect p1:4 watches p1:0 as 0\np1: fcntl 3 F_GETFL = O_RDWR\np2: exit\n",
        )
        .unwrap();
        assert_eq!(s.stmts.len(), 11);
        assert!(matches!(
            &s.stmts[1].kind,
            StmtKind::Call { call: Call::Open { mode: 0o600, .. }, expected: Some(Expected::Ints(v)), .. } if v == &vec![3]
        ));
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            err("spawn p1\np1: dup2 3"),
            "t.fds:2:11: expected a descriptor number, found end of line"
        );
        assert_eq!(
            err("spawn p1\np2: close 3"),
            "t.fds:2:1: unknown process `p2` (spawn it, or fork it from another)"
        );
        assert_eq!(
            err("spawn p1\np1: exit\np1: close 3"),
            "t.fds:3:1: process `p1` exited at line 2"
        );
        assert_eq!(
            err("spawn p1\np1: close 10000"),
            "t.fds:2:11: descriptor 10000 is reserved for the harness (scenarios use at most 9999)"
        );
        assert_eq!(
            err("spawn p1\np1: open a/../../x O_RDONLY"),
            "t.fds:2:10: path `a/../../x` leaves the sandbox"
        );
        assert_eq!(
            err("spawn p1\np1: open a O_RDONLY 0999"),
            "t.fds:2:21: expected an octal mode (0 to 07777), found `0999`"
        );
        assert_eq!(
            err("spawn p1\nspawn p1"),
            "t.fds:2:7: process name `p1` is already used"
        );
        assert_eq!(err("spawn p1\np1: close 3 = EWHAT"), "t.fds:2:15: expected a result (integers, an errno name, a string, a flag set, ready registrations such as `3:EPOLLIN` or `none`, or `ok`), found `EWHAT`");
        assert_eq!(
            err("spawn p1\np1: epoll_wait 0 8 = 3:EPOLLIN 4:EPOLLET"),
            "t.fds:2:34: `EPOLLET` is not an event epoll_wait reports (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP)"
        );
        assert_eq!(
            err("spawn p1\np1: epoll_wait 0 8 = x:EPOLLIN"),
            "t.fds:2:22: expected a descriptor number, found `x`"
        );
        assert_eq!(
            err("spawn p1\np1: epoll_wait 0 100001"),
            "t.fds:2:18: at most 100000 events, found 100001"
        );
        let e = err("spawn p1\np1: frob");
        assert!(
            e.starts_with("t.fds:2:5: unknown call `frob`: (the calls: fork, clone_files,"),
            "{e}"
        );
        let e = err("spawn p1\np1: dupp 3");
        assert!(
            e.starts_with(
                "t.fds:2:5: unknown call `dupp`: did you mean one of `dup`, `dup2`, `dup3`?"
            ),
            "{e}"
        );
        let e = err("spawn p1\np1: socket_pair");
        assert!(
            e.contains("did you mean one of `socketpair`, `socket`?"),
            "{e}"
        );
        assert_eq!(
            err("spawn p1\np1: write 3 \"a\\q\""),
            "t.fds:2:15: unknown escape `\\q` (known: \\n \\t \\r \\0 \\\" \\\\ \\xHH)"
        );
    }

    /// Numbers among flags: named bits read as their names, bits Linux
    /// refuses ride on the call, the rest is refused with a reason.
    #[test]
    fn flags_may_be_numbers() {
        let s = parse(
            "t.fds",
            "spawn p\np: dup3 3 4 0x80000\np: close_range 3 ~0 CLOSE_RANGE_CLOEXEC 0x80000000\np: open a 66 0x80000 0644",
        )
        .unwrap();
        let calls: Vec<&Call> = s
            .stmts
            .iter()
            .filter_map(|st| match &st.kind {
                StmtKind::Call { call, .. } => Some(call),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls[0],
            &Call::Dup3 {
                old: 3,
                new: 4,
                cloexec: true
            }
        );
        assert!(matches!(
            calls[1],
            Call::Flagged { call, bits: 0x8000_0000 }
                if matches!(**call, Call::CloseRange { cloexec: true, unshare: false, .. })
        ));
        assert!(matches!(
            calls[2],
            Call::Open { flags, mode: 0o644, .. }
                if *flags == OFlags::RDWR | OFlags::CREAT | OFlags::CLOEXEC
        ));
        // Written back, a flagged call reads the same.
        let text = crate::lang::print::call_text(calls[1]);
        assert_eq!(text, "close_range 3 ~0 CLOSE_RANGE_CLOEXEC|0x80000000");
        let again = parse("t.fds", &format!("spawn p\np: {text}")).unwrap();
        assert!(matches!(&again.stmts[1].kind, StmtKind::Call { call, .. } if call == calls[1]));
        assert_eq!(
            err("spawn p\np: pipe 0x4000"),
            "t.fds:2:9: 0x4000 is O_DIRECT, which Linux accepts here and fdlab does not model"
        );
        assert_eq!(
            err("spawn p\np: socket SOCK_STREAM|0x3"),
            "t.fds:2:23: bits 0x3 are the socket's type: write it by name"
        );
        assert_eq!(
            err("spawn p\np: open a O_RDWR|0x40000000"),
            "t.fds:2:18: bits 0x40000000 are no flags Linux knows here (it ignores them): leave them out"
        );
    }

    #[test]
    fn negative_descriptors_reach_the_call() {
        let s = parse("t.fds", "spawn p\np: close -1 = EBADF").unwrap();
        assert!(matches!(
            &s.stmts[1].kind,
            StmtKind::Call {
                call: Call::Close { fd: -1 },
                ..
            }
        ));
    }
}
