//! What the model records while tracing: one event per file(9) call, with
//! the counts it changed. Events are values (tests match on them); their
//! text, one line each, is how `fdlab run --trace` prints them and how the
//! JSON report carries them.
//!
//! Files are named by their serial (`file#N`), which is never reused, unlike
//! the world's slab indices. A leaf: events hold names and numbers only.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::fd::Fd;

/// A count before and after a call changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub before: u32,
    pub after: u32,
}

impl Count {
    /// The count went from `before` to `after`.
    pub fn new(before: u32, after: u32) -> Count {
        Count { before, after }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "count {} -> {}", self.before, self.after)
    }
}

/// Who dropped a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropper {
    /// A caller's reference (FRELE).
    Frele,
    /// A file in flight that nobody will receive: a `read` without a
    /// control buffer, a purged queue, a file that did not fit
    /// (`unp_discard`).
    Discard,
    /// The unix garbage collector's second phase (`unp_gc`).
    Gc,
}

impl Dropper {
    pub fn name(self) -> &'static str {
        match self {
            Dropper::Frele => "FRELE",
            Dropper::Discard => "unp_discard",
            Dropper::Gc => "unp_gc",
        }
    }
}

/// One file(9) call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// `falloc`: a larval file at `fd`, count 0 -> 2.
    Falloc { proc: String, fd: Fd, file: u64 },
    /// `fdinsert`: the file at `fd` is visible.
    Fdinsert { fd: Fd, file: u64 },
    /// `fdremove`: the file is out of slot `fd` (a larval one on the error
    /// path after `falloc`).
    Fdremove { fd: Fd, file: u64, larval: bool },
    /// `fd_getfile` and its FREF.
    FdGetfile {
        proc: String,
        fd: Fd,
        file: u64,
        count: Count,
    },
    /// FREF from a reference the caller holds.
    Fref { file: u64, count: Count },
    /// `closef`: the table's reference dropped.
    Closef { file: u64, count: Count },
    /// A reference dropped by `by`.
    Drop {
        by: Dropper,
        file: u64,
        count: Count,
    },
    /// The last reference went: the file is torn down.
    Fdrop { file: u64 },
    /// `fdcopy`: a copied slot's reference.
    Fdcopy { file: u64, count: Count },
    /// `fdshare`: `child` uses `proc`'s table.
    Fdshare { proc: String, child: String },
    /// `fdunshare`: `proc` has a private copy now.
    Fdunshare { proc: String },
    /// `fdfree`: `proc`'s table is gone with its last user.
    Fdfree { proc: String },
    /// `unp_internalize`: the caller's reference is in flight now.
    UnpInternalize { file: u64 },
    /// The collector took `dropped` references in flight out of the queues
    /// of unreachable sockets.
    UnpGc { dropped: usize },
}

impl TraceEvent {
    /// Whether the event tears a file down.
    pub fn is_fdrop(&self) -> bool {
        matches!(self, TraceEvent::Fdrop { .. })
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TraceEvent::*;
        match self {
            Falloc { proc, fd, file } => {
                write!(
                    f,
                    "falloc({proc}) -> fd {fd}, file#{file} count 0 -> 2 (larval)"
                )
            }
            Fdinsert { fd, file } => write!(f, "fdinsert(fd {fd}, file#{file})"),
            Fdremove { fd, file, larval } => {
                write!(f, "fdremove(fd {fd}, file#{file})")?;
                if *larval {
                    f.write_str(" (larval)")?;
                }
                Ok(())
            }
            FdGetfile {
                proc,
                fd,
                file,
                count,
            } => write!(f, "fd_getfile({proc}, {fd}) -> file#{file} {count}"),
            Fref { file, count } => write!(f, "FREF(file#{file}) {count}"),
            Closef { file, count } => write!(f, "closef(file#{file}) {count}"),
            Drop { by, file, count } => write!(f, "{}(file#{file}) {count}", by.name()),
            Fdrop { file } => write!(f, "fdrop(file#{file}): freed"),
            Fdcopy { file, count } => write!(f, "fdcopy: file#{file} {count}"),
            Fdshare { proc, child } => write!(f, "fdshare({proc}) -> {child}"),
            Fdunshare { proc } => write!(f, "fdunshare({proc})"),
            Fdfree { proc } => write!(f, "fdfree({proc})"),
            UnpInternalize { file } => write!(f, "unp_internalize(file#{file}): in flight"),
            UnpGc { dropped } => write!(f, "unp_gc: {dropped} references in flight dropped"),
        }
    }
}

/// In JSON an event is its line of text.
impl Serialize for TraceEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
