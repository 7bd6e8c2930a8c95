//! A file's identity, as the tracker checks it before it reopens a name.

use std::fmt;
use std::os::fd::AsFd;

use rustix::io::Errno;

use crate::sys;

/// A file's identity: `st_dev`, `st_ino`, and the inode's generation
/// (see `sys`). A path can lead to another file tomorrow, and an inode
/// number to another inode; the three together cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    /// 0 where the file system keeps no generation.
    pub generation: u64,
}

impl FileKey {
    /// The identity of the file `fd` is open on (`fstat`,
    /// `FS_IOC_GETVERSION`).
    pub(crate) fn of(fd: impl AsFd) -> Result<FileKey, Errno> {
        let st = rustix::fs::fstat(&fd)?;
        // st_dev and st_ino are unsigned on Linux (u64 on 64-bit targets).
        Ok(FileKey {
            dev: st.st_dev,
            ino: st.st_ino,
            generation: sys::generation(fd)?,
        })
    }
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inode {}", self.ino)?;
        if self.generation != 0 {
            write!(f, " (generation {})", self.generation)?;
        }
        write!(f, " on device {:#x}", self.dev)
    }
}
