//! Single questions about live processes, each answered with one or a few
//! kcmp calls: the language's `expect` statements on the Linux backend.

use std::cmp::Ordering;
use std::io;
use std::ops::Range;

use super::super::sys::{self, Kcmp, KCMP_FILE, KCMP_FILES};
use super::procfs::{FdDirs, TypeCache};

/// What went wrong observing a process.
#[derive(Debug, thiserror::Error)]
#[error("{what} of pid {pid}: {source}{}", hint(.source))]
pub struct ObserveError {
    pub pid: i32,
    pub what: String,
    #[source]
    pub source: io::Error,
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (kcmp and /proc/PID/fdinfo need ptrace access to the process: run as its user, or as root, \
             and check /proc/sys/kernel/yama/ptrace_scope)"
        }
        _ => "",
    }
}

fn err(pid: i32, what: impl Into<String>) -> impl FnOnce(io::Error) -> ObserveError {
    let what = what.into();
    move |source| ObserveError { pid, what, source }
}

/// The open descriptors of `pid` within `fds`, ascending.
pub fn list_fds(pid: i32, fds: &Range<i32>) -> Result<Vec<i32>, ObserveError> {
    let d = FdDirs::open(pid, &format!("/proc/{pid}")).map_err(|e| ObserveError {
        pid,
        what: e.what,
        source: e.source,
    })?;
    d.list(fds).map_err(|e| ObserveError {
        pid,
        what: e.what,
        source: e.source,
    })
}

/// Whether `pid` has `fd` open, and `fd` is within `fds`.
fn is_open(pid: i32, fd: i32, fds: &Range<i32>) -> bool {
    fds.contains(&fd) && std::fs::symlink_metadata(format!("/proc/{pid}/fd/{fd}")).is_ok()
}

/// Whether `a` and `b` name the same open file (`Err(i)`: the `i`-th is
/// not open).
pub fn same_file(
    a: (i32, i32),
    b: (i32, i32),
    fds: &Range<i32>,
) -> Result<Result<bool, usize>, ObserveError> {
    if !is_open(a.0, a.1, fds) {
        return Ok(Err(0));
    }
    if !is_open(b.0, b.1, fds) {
        return Ok(Err(1));
    }
    let r = sys::kcmp(a.0, b.0, KCMP_FILE, a.1 as u64, b.1 as u64)
        .map_err(err(a.0, format!("kcmp with pid {}", b.0)))?;
    Ok(Ok(r == Kcmp::Order(Ordering::Equal)))
}

/// Whether two descriptors reach the same object: the same device and
/// inode behind their open files (a `stat` through `/proc/PID/fd/N`).
/// `Err(i)`: the `i`-th is not open.
pub fn same_object(
    a: (i32, i32),
    b: (i32, i32),
    fds: &Range<i32>,
) -> Result<Result<bool, usize>, ObserveError> {
    use std::os::unix::fs::MetadataExt as _;
    let mut ids = Vec::with_capacity(2);
    for (i, (pid, fd)) in [a, b].into_iter().enumerate() {
        if !fds.contains(&fd) {
            return Ok(Err(i));
        }
        match std::fs::metadata(format!("/proc/{pid}/fd/{fd}")) {
            Ok(m) => ids.push((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err(i)),
            Err(e) => return Err(err(pid, format!("stat of fd {fd}"))(e)),
        }
    }
    Ok(Ok(ids[0] == ids[1]))
}

/// Whether two processes use one table.
pub fn same_table(a: i32, b: i32) -> Result<bool, ObserveError> {
    let r = sys::kcmp(a, b, KCMP_FILES, 0, 0)
        .map_err(err(a, format!("kcmp(KCMP_FILES) with pid {b}")))?;
    Ok(r == Kcmp::Order(Ordering::Equal))
}

/// Whether the epoll at `ep` has the file at `target` registered under
/// `as_fd` (under any number, for `None`): `Ok(true/false)`, or `Err` saying why it cannot tell (0: the
/// epoll is not open, 1: the target is not open, 2: not an epoll).
pub fn watches(
    ep: (i32, i32),
    target: (i32, i32),
    as_fd: Option<i32>,
    fds: &Range<i32>,
) -> Result<Result<bool, usize>, ObserveError> {
    if !is_open(ep.0, ep.1, fds) {
        return Ok(Err(0));
    }
    if !is_open(target.0, target.1, fds) {
        return Ok(Err(1));
    }
    let d = FdDirs::open(ep.0, &format!("/proc/{}", ep.0)).map_err(|e| ObserveError {
        pid: ep.0,
        what: e.what,
        source: e.source,
    })?;
    let e = d
        .read(ep.1, &mut TypeCache::default())
        .map_err(|e| ObserveError {
            pid: ep.0,
            what: e.what,
            source: e.source,
        })?;
    if &*e.link != "anon_inode:[eventpoll]" {
        return Ok(Err(2));
    }
    let mut numbers: Vec<i32> = match as_fd {
        Some(n) => vec![n],
        None => e.targets.iter().map(|t| t.tfd).collect(),
    };
    numbers.sort_unstable();
    numbers.dedup();
    for n in numbers {
        let registered = e.targets.iter().filter(|t| t.tfd == n).count() as u64;
        for toff in 0..registered {
            let r = sys::kcmp_epoll_tfd(target.0, target.1, ep.0, ep.1, n, toff).map_err(err(
                ep.0,
                format!("kcmp(KCMP_EPOLL_TFD) of epoll fd {}", ep.1),
            ))?;
            if r == Kcmp::Order(Ordering::Equal) {
                return Ok(Ok(true));
            }
        }
    }
    Ok(Ok(false))
}
