//! The files that handles hold, one entry per inode, as LTTng's
//! `fd-tracker/inode.c`: where each can be reopened from, how many handles
//! hold it, and the pool that unlinked files wait in until their last
//! handle closes.
//!
//! Field legend: everything here is guarded by the tracker's mutex (it lives
//! in its `Books`).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Access, AtFlags, FileType, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

use crate::dir::Directory;
use crate::error::TrackerError;
use crate::key::FileKey;
use crate::sys;

/// Where a file can be reopened from.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// By the name it was opened by.
    Named { dir: Directory, path: PathBuf },
    /// By the absolute path it was renamed to behind the tracker's back,
    /// found when one of its handles was suspended.
    Moved(PathBuf),
    /// In the unlinked-file pool, under this number.
    Pooled(u64),
}

/// The unlinked-file pool: an absolute directory, made when its first file
/// arrives and removed when its last one goes.
#[derive(Debug)]
pub(crate) struct Pool {
    dir: Arc<Path>,
    files: usize,
    next: u64,
}

impl Pool {
    pub(crate) fn dir(&self) -> &Arc<Path> {
        &self.dir
    }

    fn path_of(&self, n: u64) -> PathBuf {
        self.dir.join(n.to_string())
    }

    /// The directory goes with its last file. Nothing to undo if that
    /// fails: the next unlink finds it there (EEXIST), as LTTng's pool
    /// tolerates a directory left by a crash.
    fn remove_if_empty(&self) -> Result<(), TrackerError> {
        if self.files > 0 {
            return Ok(());
        }
        rustix::fs::unlinkat(CWD, &*self.dir, AtFlags::REMOVEDIR)
            .map_err(|e| TrackerError::sys("rmdir", self.dir.display(), e))
    }
}

/// `op` of `file` into the pool at `pool` failed with `e`: the pool's
/// fault, named as such, when the pool is gone, is not a directory, is on
/// another file system, or cannot be written; otherwise the file's.
fn pool_or_file(pool: &Path, op: &'static str, file: &str, e: Errno) -> TrackerError {
    let why = match rustix::fs::stat(pool) {
        Err(Errno::NOENT) => Some("is gone"),
        Err(Errno::NOTDIR) => Some("has a path through something that is not a directory"),
        Err(_) => Some("cannot be examined"),
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
            Some("is not a directory")
        }
        Ok(_) if e == Errno::XDEV => Some("is on another file system than the file"),
        Ok(_)
            if matches!(e, Errno::ACCESS | Errno::PERM | Errno::ROFS)
                && rustix::fs::access(pool, Access::WRITE_OK | Access::EXEC_OK).is_err() =>
        {
            Some("is not writable")
        }
        Ok(_) => None,
    };
    match why {
        Some(why) => TrackerError::Pool {
            pool: pool.to_path_buf(),
            why,
            op,
            file: file.to_string(),
            source: e,
        },
        None => TrackerError::sys(op, file, e),
    }
}

impl Location {
    /// For messages: the path the file is reopened by.
    pub(crate) fn display(&self, pool: &Path) -> String {
        match self {
            Location::Named { dir, path } => dir.path().join(path).display().to_string(),
            Location::Moved(path) => path.display().to_string(),
            Location::Pooled(n) => pool.join(n.to_string()).display().to_string(),
        }
    }

    /// `openat` at this location.
    pub(crate) fn open(&self, pool: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        match self {
            Location::Named { dir, path } => rustix::fs::openat(dir, path, flags, mode),
            Location::Moved(path) => rustix::fs::openat(CWD, path, flags, mode),
            Location::Pooled(n) => rustix::fs::openat(CWD, pool.join(n.to_string()), flags, mode),
        }
    }

    /// `stat` at this location: the (device, inode) it leads to now.
    fn leads_to(&self, pool: &Path) -> Result<(u64, u64), Errno> {
        let st = match self {
            Location::Named { dir, path } => rustix::fs::statat(dir, path, AtFlags::empty())?,
            Location::Moved(path) => rustix::fs::stat(path)?,
            Location::Pooled(n) => rustix::fs::stat(pool.join(n.to_string()))?,
        };
        Ok((st.st_dev, st.st_ino))
    }
}

#[derive(Debug)]
pub(crate) struct Inode {
    pub location: Location,
    /// Handles that hold it.
    pub refs: usize,
    /// Times it moved (into the pool): a restore that opened the old
    /// location while it moved tries again.
    pub moves: u64,
    /// Its file-handle digest (see `sys`), taken when it was first opened,
    /// for an unlink to check that its name still leads to it.
    pub handle: u64,
}

/// The registry of held files, and the pool.
#[derive(Debug)]
pub(crate) struct Inodes {
    map: HashMap<FileKey, Inode>,
    pool: Pool,
}

impl Inodes {
    /// Precondition: `pool_dir` is absolute, so that the pool's files can
    /// be reopened whatever the working directory is.
    pub(crate) fn new(pool_dir: PathBuf) -> Inodes {
        Inodes {
            map: HashMap::new(),
            pool: Pool {
                dir: pool_dir.into(),
                files: 0,
                next: 0,
            },
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn pool_files(&self) -> usize {
        self.pool.files
    }

    pub(crate) fn get(&self, key: FileKey) -> Option<&Inode> {
        self.map.get(&key)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&FileKey, &Inode)> {
        self.map.iter()
    }

    /// For messages: where the file is now.
    pub(crate) fn name(&self, key: FileKey) -> String {
        match self.map.get(&key) {
            Some(i) => i.location.display(&self.pool.dir),
            None => key.to_string(),
        }
    }

    /// A new handle holds the file it opened as `dir`/`path` (on `fd`). If
    /// other handles hold it already, its entry (and location) is theirs:
    /// it may be in the pool by now.
    ///
    /// Errors: the `name_to_handle_at` failure, for a file held by no other
    /// handle; nothing is held then.
    pub(crate) fn hold(
        &mut self,
        key: FileKey,
        fd: impl AsFd,
        dir: &Directory,
        path: &Path,
    ) -> Result<(), Errno> {
        if let Some(inode) = self.map.get_mut(&key) {
            inode.refs += 1;
            return Ok(());
        }
        let inode = Inode {
            location: Location::Named {
                dir: dir.clone(),
                path: path.to_path_buf(),
            },
            refs: 1,
            moves: 0,
            handle: sys::handle_digest(fd)?,
        };
        self.map.insert(key, inode);
        Ok(())
    }

    /// Whether a handle of `key`, open at `fd`, may be suspended: only if
    /// it can be restored, that is if some name leads to its file. The
    /// file's location is checked, and if its name was renamed behind the
    /// tracker's back (a log rotated) the location follows it, to the path
    /// the kernel keeps for the open descriptor. A file deleted or
    /// replaced behind its back has no name to come back by: its handles
    /// keep their descriptors (LTTng's tracker refuses to suspend them
    /// too).
    pub(crate) fn restorable(&mut self, key: FileKey, fd: impl AsFd) -> bool {
        let Some(inode) = self.map.get_mut(&key) else {
            return false;
        };
        if inode.location.leads_to(&self.pool.dir) == Ok((key.dev, key.ino)) {
            return true;
        }
        let link = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
        // Not a path (`pipe:[...]`), or none.
        let Some(now) = std::fs::read_link(link).ok().filter(|p| p.is_absolute()) else {
            return false;
        };
        let moved = Location::Moved(now);
        if moved.leads_to(&self.pool.dir) != Ok((key.dev, key.ino)) {
            // " (deleted)", or another file at that path now.
            return false;
        }
        inode.location = moved;
        inode.moves += 1;
        true
    }

    /// A handle lets go of its file. The last handle to a pooled file
    /// deletes it, and the pool directory if it was the last file there.
    ///
    /// Errors: the `unlink` or `rmdir` failure; the file is forgotten all
    /// the same.
    pub(crate) fn release(&mut self, key: FileKey) -> Result<(), TrackerError> {
        let Some(inode) = self.map.get_mut(&key) else {
            return Ok(());
        };
        inode.refs -= 1;
        if inode.refs > 0 {
            return Ok(());
        }
        let Some(inode) = self.map.remove(&key) else {
            return Ok(());
        };
        let Location::Pooled(n) = inode.location else {
            return Ok(());
        };
        self.pool.files -= 1;
        let path = self.pool.path_of(n);
        let removed = rustix::fs::unlinkat(CWD, &path, AtFlags::empty())
            .map_err(|e| TrackerError::sys("unlink", path.display(), e));
        removed.and(self.pool.remove_if_empty())
    }

    /// Unlinks the file through the tracker: renames it into the pool, so
    /// that its name is gone at once while handles keep it.
    ///
    /// Errors: `AlreadyUnlinked` if it is in the pool already; `Replaced`
    /// if its name now leads to another file (renaming that one would pool
    /// a file no handle holds); the `stat`, `mkdir` or `rename` failure.
    pub(crate) fn unlink(&mut self, key: FileKey) -> Result<(), TrackerError> {
        let pool_dir = self.pool.dir.clone();
        let Some(inode) = self.map.get_mut(&key) else {
            return Err(TrackerError::sys("unlink", key, Errno::NOENT));
        };
        let (dir, path) = match &inode.location {
            Location::Pooled(_) => {
                let path = inode.location.display(&pool_dir);
                return Err(TrackerError::AlreadyUnlinked { path });
            }
            Location::Named { dir, path } => (Some(dir.clone()), path.clone()),
            Location::Moved(path) => (None, path.clone()),
        };
        let name = inode.location.display(&pool_dir);
        let dir = dir.as_ref().map_or(CWD, |d| d.as_fd());
        let stat = |e| TrackerError::sys("stat", &name, e);
        let st = rustix::fs::statat(dir, &path, AtFlags::empty()).map_err(stat)?;
        let handle = match inode.handle {
            0 => 0,
            _ => sys::handle_digest_at(dir, &path).map_err(stat)?,
        };
        if (st.st_dev, st.st_ino, handle) != (key.dev, key.ino, inode.handle) {
            // Which file the name leads to, as far as stat(2) can say.
            let found = FileKey {
                dev: st.st_dev,
                ino: st.st_ino,
                generation: 0,
            };
            return Err(TrackerError::Replaced {
                path: name,
                expected: key,
                found,
            });
        }
        if self.pool.files == 0 {
            match rustix::fs::mkdirat(CWD, &*pool_dir, Mode::RWXU) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(TrackerError::Pool {
                        pool: pool_dir.to_path_buf(),
                        why: match e {
                            Errno::NOENT => "cannot be made: its parent directory is gone",
                            Errno::NOTDIR => "has a path through something that is not a directory",
                            Errno::ACCESS | Errno::PERM | Errno::ROFS => {
                                "cannot be made: its parent directory is not writable"
                            }
                            _ => "cannot be made",
                        },
                        op: "mkdir",
                        file: name,
                        source: e,
                    })
                }
            }
        }
        let n = loop {
            let n = self.pool.next;
            self.pool.next += 1;
            let target = self.pool.path_of(n);
            // RENAME_NOREPLACE, so that a file left in the pool by an earlier
            // run is skipped rather than silently replaced. Filesystems
            // without it answer EINVAL: a plain rename then.
            let renamed =
                match rustix::fs::renameat_with(dir, &path, CWD, &target, RenameFlags::NOREPLACE) {
                    Err(Errno::INVAL) => rustix::fs::renameat(dir, &path, CWD, &target),
                    r => r,
                };
            match renamed {
                Ok(()) => break n,
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    // Whose fault, before the pool is tidied away.
                    let err = pool_or_file(&pool_dir, "rename", &name, e);
                    // Best effort: the pool directory is ours to remove if it
                    // is empty; a failure here changes nothing for the caller.
                    let _ = self.pool.remove_if_empty();
                    return Err(err);
                }
            }
        };
        inode.location = Location::Pooled(n);
        inode.moves += 1;
        self.pool.files += 1;
        Ok(())
    }
}
