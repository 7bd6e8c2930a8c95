//! What the tracker's operations fail with.

use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::report::{ErrorKind, Stats};
use rustix::io::Errno;

use crate::key::FileKey;

/// A tracker operation that failed. Each maps to the errno LTTng's tracker
/// returns for it ([`TrackerError::errno`]) and to the model's
/// [`ErrorKind`] ([`TrackerError::kind`]).
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// `EMFILE`.
    #[error(
        "no room for {wanted} more descriptors under the budget of {capacity}: \
         {active} active handles ({in_use} in use), {unsuspendable} unsuspendable, \
         {reserved} being opened"
    )]
    NoRoom {
        wanted: usize,
        capacity: usize,
        active: usize,
        in_use: usize,
        unsuspendable: usize,
        reserved: usize,
    },
    /// `EEXIST`.
    #[error("descriptor {fd} is already tracked")]
    AlreadyTracked { fd: RawFd },
    /// `EINVAL`.
    #[error("descriptor {fd} is not tracked")]
    NotTracked { fd: RawFd },
    /// `EINVAL`.
    #[error("the open callback returned {got} descriptors; {expected} were asked for")]
    WrongCount { expected: usize, got: usize },
    /// `EINVAL`.
    #[error("{names} names for {count} descriptors")]
    NameCount { names: usize, count: usize },
    /// `EBADF`.
    #[error("{fd} is not a descriptor")]
    BadDescriptor { fd: RawFd },
    /// `EINVAL`: O_TMPFILE has no name to reopen by.
    #[error("{path}: an O_TMPFILE handle could not be restored")]
    Unrestorable { path: PathBuf },
    /// `EINVAL`.
    #[error("the unlinked-file directory {0} is not an absolute path")]
    RelativeUnlinkDir(PathBuf),
    /// `ENOENT`, as LTTng's `lttng_inode_unlink`.
    #[error("{path} was already unlinked")]
    AlreadyUnlinked { path: String },
    /// `ESTALE`: the handle is not silently moved to the new file.
    #[error("{path} was replaced: the handle's file is {expected}, the path now leads to {found}")]
    Replaced {
        path: String,
        expected: FileKey,
        found: FileKey,
    },
    /// The pool cannot take `file`: its own errno, but the pool's fault.
    #[error("the unlinked-file pool {pool} {why} (unlinking {file}: {op}: {source})")]
    Pool {
        pool: PathBuf,
        why: &'static str,
        op: &'static str,
        file: String,
        #[source]
        source: Errno,
    },
    /// `EBUSY`: 2^20 - 1 guards on one handle.
    #[error("{path}: too many guards alive at once")]
    TooManyUsers { path: String },
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Sys {
        op: &'static str,
        path: String,
        #[source]
        source: Errno,
    },
}

impl TrackerError {
    pub(crate) fn sys(op: &'static str, path: impl std::fmt::Display, source: Errno) -> Self {
        TrackerError::Sys {
            op,
            path: path.to_string(),
            source,
        }
    }

    /// The errno LTTng's tracker would return.
    pub fn errno(&self) -> Errno {
        match self {
            TrackerError::NoRoom { .. } => Errno::MFILE,
            TrackerError::AlreadyTracked { .. } => Errno::EXIST,
            TrackerError::NotTracked { .. }
            | TrackerError::WrongCount { .. }
            | TrackerError::NameCount { .. }
            | TrackerError::Unrestorable { .. }
            | TrackerError::RelativeUnlinkDir(_) => Errno::INVAL,
            TrackerError::BadDescriptor { .. } => Errno::BADF,
            TrackerError::AlreadyUnlinked { .. } => Errno::NOENT,
            TrackerError::Replaced { .. } => Errno::STALE,
            TrackerError::TooManyUsers { .. } => Errno::BUSY,
            TrackerError::Sys { source, .. } | TrackerError::Pool { source, .. } => *source,
        }
    }

    /// The model's name for this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TrackerError::NoRoom { .. } => ErrorKind::NoRoom,
            TrackerError::AlreadyTracked { .. } => ErrorKind::AlreadyTracked,
            TrackerError::NotTracked { .. } => ErrorKind::NotTracked,
            TrackerError::WrongCount { .. }
            | TrackerError::NameCount { .. }
            | TrackerError::BadDescriptor { .. }
            | TrackerError::Unrestorable { .. }
            | TrackerError::RelativeUnlinkDir(_) => ErrorKind::Invalid,
            TrackerError::AlreadyUnlinked { .. } => ErrorKind::AlreadyUnlinked,
            TrackerError::Replaced { .. } => ErrorKind::Replaced,
            TrackerError::Pool { .. } => ErrorKind::Pool,
            TrackerError::TooManyUsers { .. } => ErrorKind::Os(Errno::BUSY.raw_os_error()),
            TrackerError::Sys { source, .. } if *source == Errno::NOENT => ErrorKind::NotFound,
            TrackerError::Sys { source, .. } => ErrorKind::Os(source.raw_os_error()),
        }
    }
}

/// [`FdTracker::open_unsuspendable`](crate::FdTracker::open_unsuspendable)
/// and `close_unsuspendable` fail with the tracker's error or, passed
/// through untouched, the callback's own.
#[derive(Debug, thiserror::Error)]
pub enum UnsuspendableError<E> {
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error("the callback failed: {0}")]
    Callback(#[source] E),
}

impl<E> UnsuspendableError<E> {
    /// The model's name for this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            UnsuspendableError::Tracker(e) => e.kind(),
            UnsuspendableError::Callback(_) => ErrorKind::Callback,
        }
    }
}

/// A tracker destroyed while it still tracked descriptors: what it tracked,
/// as LTTng's `fd_tracker_destroy` reports "a file descriptor leak".
#[derive(Debug, thiserror::Error)]
#[error(
    "fd tracker destroyed while tracking {} handles and {} unsuspendable descriptors\n{dump}",
    stats.active + stats.suspended,
    stats.unsuspendable
)]
pub struct Leak {
    pub stats: Stats,
    /// [`FdTracker::dump`](crate::FdTracker::dump) at the time.
    pub dump: String,
}
