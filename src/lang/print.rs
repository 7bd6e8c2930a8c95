//! Calls, results and expectations written back as text, in the language's
//! own spelling (so that any printed result can be pasted as an `= RESULT`).

use fdlab_model::call::{Arg, Value};
use fdlab_model::{Call, EpollOp, Errno, Events, FcntlCmd, OFlags, Outcome, Ret, Whence};

use super::text::quote;
use super::{Expectation, Expected};

/// The arguments of `call` as the language writes them: each value as its
/// row in the registry says it is written.
pub fn call_args(call: &Call) -> Vec<String> {
    let mut out = Vec::new();
    let mut last = 0;
    for (kind, value) in call.spec().args.iter().zip(call.values()) {
        last = out.len();
        arg_text(*kind, &value, &mut out);
    }
    // Bits written as a number join the flags, which come last (`open`
    // never has any: its numbers are read as names).
    if let Call::Flagged { bits, .. } = call {
        let n = format!("{bits:#x}");
        match out.get_mut(last..) {
            Some([flags]) => *flags = format!("{flags}|{n}"),
            _ => out.push(n),
        }
    }
    out
}

/// The type (if any) and `SOCK_CLOEXEC`, `SOCK_NONBLOCK` joined with `|`,
/// as strace writes them.
fn sock_word(ty: Option<fdlab_model::SockType>, flags: &fdlab_model::SockFlags) -> Option<String> {
    let parts: Vec<&str> = ty
        .map(|t| t.constant())
        .into_iter()
        .chain(flags.cloexec.then_some("SOCK_CLOEXEC"))
        .chain(flags.nonblock.then_some("SOCK_NONBLOCK"))
        .collect();
    (!parts.is_empty()).then(|| parts.join("|"))
}

/// One argument's words.
fn arg_text(kind: Arg, value: &Value, out: &mut Vec<String>) {
    let mut word = |w: String| out.push(w);
    match value {
        Value::Name(n) => word(n.clone()),
        Value::Path(p) => word(quote(p.as_bytes())),
        Value::Fd(n) => word(n.to_string()),
        Value::Number(n) if *n == u32::MAX && kind == Arg::FdOrAll => word("~0".into()),
        Value::Number(n) => word(n.to_string()),
        Value::Fds(fds) => fds.iter().for_each(|n| word(n.to_string())),
        Value::OFlags(f) => word(f.to_string()),
        Value::Mode(m) => word(format!("{m:04o}")),
        Value::Limit(n) => word(n.to_string()),
        Value::Bytes(b) => word(quote(b)),
        Value::Len(n) => word(n.to_string()),
        Value::Offset(n) => word(n.to_string()),
        Value::Whence(w) => word(
            match w {
                Whence::Set => "SEEK_SET",
                Whence::Cur => "SEEK_CUR",
                Whence::End => "SEEK_END",
            }
            .into(),
        ),
        Value::Flag(on) => {
            if let (true, Arg::Flag(name)) = (on, kind) {
                word(name.to_string());
            }
        }
        Value::Flags(on) => {
            if let Arg::Flags(names) = kind {
                let set: Vec<&str> = names
                    .iter()
                    .zip(on)
                    .filter(|(_, on)| **on)
                    .map(|(n, _)| *n)
                    .collect();
                if !set.is_empty() {
                    word(set.join("|"));
                }
            }
        }
        Value::Fcntl(cmd) => match cmd {
            FcntlCmd::DupFd {
                min,
                cloexec: false,
            } => {
                word("F_DUPFD".into());
                word(min.to_string());
            }
            FcntlCmd::DupFd { min, cloexec: true } => {
                word("F_DUPFD_CLOEXEC".into());
                word(min.to_string());
            }
            FcntlCmd::GetFd => word("F_GETFD".into()),
            FcntlCmd::SetFd { cloexec } => {
                word("F_SETFD".into());
                word(if *cloexec { "FD_CLOEXEC" } else { "0" }.into());
            }
            FcntlCmd::GetFl => word("F_GETFL".into()),
            FcntlCmd::DupFdQuery { fd2 } => {
                word("F_DUPFD_QUERY".into());
                word(fd2.to_string());
            }
            FcntlCmd::SetFl { flags } => {
                word("F_SETFL".into());
                word(setfl(*flags));
            }
        },
        Value::CloseRange { unshare, cloexec } => {
            let f: Vec<&str> = [
                (*cloexec, "CLOSE_RANGE_CLOEXEC"),
                (*unshare, "CLOSE_RANGE_UNSHARE"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
            if !f.is_empty() {
                word(f.join("|"));
            }
        }
        Value::Sock { ty, flags } => sock_word(Some(*ty), flags).into_iter().for_each(word),
        Value::SockFlags(flags) => sock_word(None, flags).into_iter().for_each(word),
        Value::SockName(name) if name.starts_with('@') => word(name.clone()),
        Value::SockName(name) => word(quote(name.as_bytes())),
        Value::Int(n) if kind == Arg::How => word(match n {
            0 => "SHUT_RD".to_string(),
            1 => "SHUT_WR".to_string(),
            2 => "SHUT_RDWR".to_string(),
            n => n.to_string(),
        }),
        Value::Int(n) => word(n.to_string()),
        Value::MaxFds(n) if *n as usize == fdlab_model::limits::SCM_MAX_FD => {}
        Value::MaxFds(n) => word(n.to_string()),
        Value::EpollOp(op) => word(
            match op {
                EpollOp::Add => "EPOLL_CTL_ADD",
                EpollOp::Del => "EPOLL_CTL_DEL",
                EpollOp::Mod => "EPOLL_CTL_MOD",
            }
            .into(),
        ),
        Value::Events(e) => word(e.to_string()),
    }
}

fn setfl(f: OFlags) -> String {
    let mut v = Vec::new();
    if f.contains(OFlags::APPEND) {
        v.push("O_APPEND");
    }
    if f.contains(OFlags::NONBLOCK) {
        v.push("O_NONBLOCK");
    }
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}

/// A call as a statement line writes it: `dup2 3 10`.
pub fn call_text(call: &Call) -> String {
    std::iter::once(call.name().to_string())
        .chain(call_args(call))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A call in strace style: `dup2(3, 10)`.
pub fn call_strace(call: &Call) -> String {
    let mut args = call_args(call);
    // As strace prints open(2): a mode only where the call uses one.
    if let Call::Open { flags, .. } = call {
        if !flags.contains(OFlags::CREAT) {
            args.pop();
        }
    }
    format!("{}({})", call.name(), args.join(", "))
}

/// A successful result as `= RESULT` writes it.
pub fn ret_text(r: &Ret) -> String {
    match r {
        Ret::Ints(v) if v.is_empty() => "(none)".into(),
        Ret::Ints(v) => v
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        Ret::Truncated(v) => ints_then_ctrunc(v),
        Ret::Bytes(b) => quote(b),
        Ret::Flags(f) => f.status_string(),
        Ret::Ready(v) => ready_text(v),
    }
}

/// `3:EPOLLIN 64:EPOLLOUT|EPOLLHUP`, or `none`.
pub fn ready_text(v: &[(i64, Events)]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|(fd, e)| format!("{fd}:{e}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `3 4 MSG_CTRUNC`, or `MSG_CTRUNC` alone.
fn ints_then_ctrunc(v: &[i64]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .chain(["MSG_CTRUNC".to_string()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// An outcome in strace style: `3`, `-1 EBADF (bad file descriptor)`.
pub fn outcome_text(o: &Outcome) -> String {
    match o {
        Ok(r) => ret_text(r),
        Err(e) => errno_text(*e),
    }
}

fn errno_text(e: Errno) -> String {
    format!("-1 {} ({})", e.name(), e.description())
}

pub fn expected_text(e: &Expected) -> String {
    match e {
        Expected::Ints(v) => v
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        Expected::Truncated(v) => ints_then_ctrunc(v),
        Expected::Errno(e) => e.name().to_string(),
        Expected::Text(b) => quote(b),
        Expected::Flags(f) => f.status_string(),
        Expected::Ready(v) => ready_text(v),
        Expected::Ok => "ok".into(),
    }
}

impl Expected {
    /// Whether `outcome` is what this expectation asks for.
    pub fn matches(&self, outcome: &Outcome) -> bool {
        match (self, outcome) {
            (Expected::Ok, Ok(_)) => true,
            (Expected::Errno(e), Err(got)) => e == got,
            (Expected::Ints(v), Ok(Ret::Ints(got) | Ret::Truncated(got))) => v == got,
            (Expected::Truncated(v), Ok(Ret::Truncated(got))) => v == got,
            (Expected::Text(t), Ok(Ret::Bytes(got))) => t == got,
            (Expected::Text(t), Ok(Ret::Flags(f))) => t == f.status_string().as_bytes(),
            (Expected::Flags(f), Ok(Ret::Flags(got))) => f.and(OFlags::STATUS_MASK) == *got,
            (Expected::Ready(v), Ok(Ret::Ready(got))) => v == got,
            _ => false,
        }
    }
}

/// An `expect` statement as written.
pub fn expectation_text(e: &Expectation) -> String {
    match e {
        Expectation::Ctty { proc, of: None } => format!("expect {proc} ctty none"),
        Expectation::Ctty {
            proc,
            of: Some((q, fd)),
        } => format!("expect {proc} ctty {q}:{fd}"),
        Expectation::File { a, b, same } => {
            format!(
                "expect {}:{} {} {}:{}",
                a.0,
                a.1,
                if *same { "same" } else { "differs" },
                b.0,
                b.1
            )
        }
        Expectation::Table { a, b, shares } => format!(
            "expect {a} {} {b}",
            if *shares { "shares" } else { "apart" }
        ),
        Expectation::Fds { proc, fds } => {
            let mut s = format!("expect {proc} fds");
            for f in fds {
                s.push_str(&format!(" {f}"));
            }
            s
        }
        Expectation::Watches { ep, target, as_fd } => {
            let mut s = format!("expect {}:{} watches {}:{}", ep.0, ep.1, target.0, target.1);
            if *as_fd != target.1 {
                s.push_str(&format!(" as {as_fd}"));
            }
            s
        }
        Expectation::Object { a, b, same } => format!(
            "expect {}:{} {} {}:{}",
            a.0,
            a.1,
            if *same { "sameobj" } else { "diffobj" },
            b.0,
            b.1
        ),
        Expectation::Ignores { ep, target } => {
            format!("expect {}:{} ignores {}:{}", ep.0, ep.1, target.0, target.1)
        }
    }
}

/// A scenario as `.fds` text that parses back to it.
pub fn scenario_text(s: &super::Scenario) -> String {
    s.stmts
        .iter()
        .map(|stmt| format!("{}\n", stmt_text(stmt)))
        .collect()
}

/// A statement as `.fds` text, on one line.
pub fn stmt_text(stmt: &super::Stmt) -> String {
    match &stmt.kind {
        super::StmtKind::Spawn { name, stdio } => {
            format!("spawn {name}{}", if *stdio { " stdio" } else { "" })
        }
        super::StmtKind::Call {
            proc,
            call,
            expected,
        } => {
            let mut out = format!("{proc}: {}", call_text(call));
            if let Some(e) = expected {
                out.push_str(&format!(" = {}", expected_text(e)));
            }
            out
        }
        super::StmtKind::Expect(e) => expectation_text(e),
    }
}

/// The expectation that an outcome satisfies exactly.
pub fn expected_of(o: &Outcome) -> Expected {
    match o {
        Ok(Ret::Ints(v)) if v.is_empty() => Expected::Ok,
        Ok(Ret::Ints(v)) => Expected::Ints(v.clone()),
        Ok(Ret::Truncated(v)) => Expected::Truncated(v.clone()),
        Ok(Ret::Bytes(b)) => Expected::Text(b.clone()),
        Ok(Ret::Flags(f)) => Expected::Flags(*f),
        Ok(Ret::Ready(v)) => Expected::Ready(v.clone()),
        Err(e) => Expected::Errno(*e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// strace prints open(2)'s mode only where the call uses it.
    #[test]
    fn open_shows_a_mode_only_with_o_creat() {
        let open = |flags| Call::Open {
            path: "secret".into(),
            flags,
            mode: 0o644,
        };
        assert_eq!(
            call_strace(&open(OFlags::RDONLY)),
            "open(\"secret\", O_RDONLY)"
        );
        assert_eq!(
            call_strace(&open(OFlags::RDWR | OFlags::CREAT)),
            "open(\"secret\", O_RDWR|O_CREAT, 0644)"
        );
    }
}
