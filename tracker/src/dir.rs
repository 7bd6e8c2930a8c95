//! A directory that handles are opened relative to (`openat`), kept open so
//! that a suspended handle can be reopened by the same name even if the
//! process changes its working directory.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, CWD};

use crate::error::TrackerError;

/// An open directory, shared by every handle opened in it.
///
/// Its descriptor is `O_PATH`, opened by the caller, and not part of the
/// tracker's budget, as LTTng's tests count their directory handle apart.
/// A caller that wants it counted can track it as an unsuspendable
/// descriptor (see [`FdTracker::open_unsuspendable`](crate::FdTracker::open_unsuspendable)).
#[derive(Debug, Clone)]
pub struct Directory {
    fd: Arc<OwnedFd>,
    path: Arc<Path>,
}

impl Directory {
    /// Opens `path` (`O_PATH | O_DIRECTORY | O_CLOEXEC`).
    ///
    /// Errors: the `open` failure, as [`TrackerError::Sys`].
    pub fn open(path: impl AsRef<Path>) -> Result<Directory, TrackerError> {
        let path = path.as_ref();
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(CWD, path, flags, Mode::empty())
            .map_err(|e| TrackerError::sys("open", path.display(), e))?;
        Ok(Directory {
            fd: Arc::new(fd),
            path: path.into(),
        })
    }

    /// The path it was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsFd for Directory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
