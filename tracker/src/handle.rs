//! Suspendable handles (LTTng's `fs_handle_tracked`), their guards, and the
//! slow path of a get: waiting for another thread's restore, or restoring.

use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, MutexGuard, PoisonError};

use rustix::fs::{Mode, OFlags, SeekFrom};

use crate::books::{Books, Shared};
use crate::error::TrackerError;
use crate::inode::Location;
use crate::invariants;
use crate::key::FileKey;
use crate::report::HandleState;
use crate::slot::{Slot, Use};

/// A file kept "open" by the tracker: its descriptor may be closed
/// whenever no guard is alive, and is reopened by [`FsHandle::get_fd`].
///
/// Dropping it is [`FsHandle::close`], with the errors ignored.
#[derive(Debug)]
pub struct FsHandle {
    id: u64,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    closed: bool,
}

/// A use of a handle (`get_fd`): the descriptor stays open while it lives,
/// and dropping it is `put_fd`. It borrows the handle, so the handle cannot
/// be closed under it.
#[must_use = "dropping the guard at once ends the use (put_fd)"]
#[derive(Debug)]
pub struct FdGuard<'h> {
    u: Use<&'h Slot>,
}

/// A use of a handle shared through an `Arc`, owning a reference to it, for
/// a use that outlives a borrow (handed to another task, kept across
/// steps). The handle cannot be closed while one lives:
/// `Arc::try_unwrap` fails.
#[must_use = "dropping the guard at once ends the use (put_fd)"]
#[derive(Debug)]
pub struct ArcFdGuard {
    u: Use<HandleRef>,
}

/// Reaches a handle's slot through an `Arc` to the handle.
#[derive(Debug, Clone)]
struct HandleRef(Arc<FsHandle>);

impl Deref for HandleRef {
    type Target = Slot;
    fn deref(&self) -> &Slot {
        &self.0.slot
    }
}

impl FsHandle {
    pub(super) fn new(id: u64, slot: Arc<Slot>, shared: Arc<Shared>) -> FsHandle {
        FsHandle {
            id,
            slot,
            shared,
            closed: false,
        }
    }

    /// `get_fd`: marks the handle in use and most recently used, restoring
    /// it first if it is suspended (reopen by name, check the inode, seek
    /// to the saved offset).
    ///
    /// Returns with a use, ended when the guard drops.
    /// Errors: `NoRoom` (every other active handle is in use), `Replaced`
    /// (the name now leads to another file), `TooManyUsers`, the `open`,
    /// `fstat` or `lseek` failure as `Sys` (`ENOENT`: the file is gone).
    #[inline]
    pub fn get_fd(&self) -> Result<FdGuard<'_>, TrackerError> {
        match Use::try_get(&*self.slot, &self.shared.clock) {
            Ok(u) => Ok(FdGuard { u }),
            Err(slot) => self.shared.get_slow(self.id, slot).map(|u| FdGuard { u }),
        }
    }

    /// [`FsHandle::get_fd`] for a handle in an `Arc`: the guard owns a
    /// reference to the handle.
    ///
    /// Returns with a use. Errors: as `get_fd`.
    pub fn get_fd_arc(self: &Arc<Self>) -> Result<ArcFdGuard, TrackerError> {
        let r = HandleRef(self.clone());
        match Use::try_get(r, &self.shared.clock) {
            Ok(u) => Ok(ArcFdGuard { u }),
            Err(r) => self.shared.get_slow(self.id, r).map(|u| ArcFdGuard { u }),
        }
    }

    /// Whether the handle holds a descriptor now, and how many guards.
    pub fn state(&self) -> HandleState {
        let p = self.slot.peek();
        match p.active {
            true => HandleState::Active { users: p.users },
            false => HandleState::Suspended,
        }
    }

    /// Where the file is now: its name, or its place in the pool.
    pub fn name(&self) -> String {
        let books = self.shared.lock();
        match books.records.get(&self.id) {
            Some(r) => books.inodes.name(r.key),
            None => format!("closed handle {}", self.id),
        }
    }

    /// The identity (`st_dev`, `st_ino`) of the handle's file.
    pub fn file_key(&self) -> Option<FileKey> {
        self.shared.lock().records.get(&self.id).map(|r| r.key)
    }

    /// Unlinks the file: renames it into the tracker's pool of unlinked
    /// files, so that its name is gone at once while every handle to it,
    /// even suspended, keeps working. The last handle to close deletes it.
    ///
    /// Errors: `AlreadyUnlinked` (`ENOENT`: through this or another
    /// handle to the same file), `Replaced` (the name leads to another file
    /// now), the `stat`, `mkdir` or `rename` failure as `Sys`.
    pub fn unlink(&self) -> Result<(), TrackerError> {
        let mut books = self.shared.lock();
        let Some(key) = books.records.get(&self.id).map(|r| r.key) else {
            return Err(TrackerError::sys(
                "unlink",
                self.id,
                rustix::io::Errno::BADF,
            ));
        };
        let r = books.inodes.unlink(key);
        invariants::debug_check(&self.shared, &books);
        r
    }

    /// Closes the handle: closes its descriptor if it has one, and deletes
    /// its file if it was unlinked and this was the last handle to it.
    ///
    /// Consumes: the handle (so no guard is alive).
    /// Errors: the `unlink` or `rmdir` of the pooled file, as `Sys`; the
    /// handle is closed all the same.
    pub fn close(mut self) -> Result<(), TrackerError> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<(), TrackerError> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let mut books = self.shared.lock();
        let Some(r) = books.records.remove(&self.id) else {
            return Ok(());
        };
        if let Some(stamp) = r.filed {
            books.lru.remove(&(stamp, self.id));
        }
        // Closed with the mutex held: the budget counts it until then.
        match r.slot.take() {
            Some(fd) => {
                drop(fd);
                books.active -= 1;
            }
            None => books.suspended -= 1,
        }
        books.uses += r.slot.harvest();
        let released = books.inodes.release(r.key);
        invariants::debug_check(&self.shared, &books);
        released
    }
}

impl Drop for FsHandle {
    fn drop(&mut self) {
        // Errors are for `close` to return; a drop has no one to tell.
        let _ = self.close_inner();
    }
}

impl AsFd for FdGuard<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.u.as_fd()
    }
}

impl AsRawFd for FdGuard<'_> {
    fn as_raw_fd(&self) -> RawFd {
        self.u.as_raw_fd()
    }
}

impl AsFd for ArcFdGuard {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.u.as_fd()
    }
}

impl AsRawFd for ArcFdGuard {
    fn as_raw_fd(&self) -> RawFd {
        self.u.as_raw_fd()
    }
}

impl ArcFdGuard {
    /// The handle this guard uses.
    pub fn handle(&self) -> &Arc<FsHandle> {
        &self.u.holder().0
    }
}

/// Reopens a suspended handle's file: the same flags minus those that must
/// not be replayed, the same inode, the saved offset.
///
/// Never blocks on anything but the disk: the name is first opened with
/// `O_PATH` (which opens no device and waits for no FIFO peer) and its
/// inode checked, so that a name now leading to a FIFO or a device is
/// `Replaced` without opening it; then it is opened for real with
/// `O_NONBLOCK` (taken off again if the handle did not ask for it), in
/// case it changed in between, and checked again. Never two descriptors at
/// once: the restore holds room for one.
///
/// Errors: `Replaced`; the `open`, `fstat`, `fcntl` or `lseek` failure as
/// `Sys`.
fn reopen(
    pool: &Path,
    location: &Location,
    key: FileKey,
    flags: OFlags,
    mode: Mode,
    offset: u64,
) -> Result<OwnedFd, TrackerError> {
    // O_CREAT would recreate a file deleted behind our back, O_TRUNC would
    // empty it, O_EXCL would refuse it: none may be replayed.
    let flags = flags - (OFlags::CREATE | OFlags::TRUNC | OFlags::EXCL);
    let name = || location.display(pool);
    let path = location
        .open(pool, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| TrackerError::sys("open", name(), e))?;
    let st = rustix::fs::fstat(&path).map_err(|e| TrackerError::sys("fstat", name(), e))?;
    if (st.st_dev, st.st_ino) != (key.dev, key.ino) {
        return Err(TrackerError::Replaced {
            path: name(),
            expected: key,
            found: FileKey {
                dev: st.st_dev,
                ino: st.st_ino,
                generation: 0,
            },
        });
    }
    drop(path);
    let fd = location
        .open(pool, flags | OFlags::NONBLOCK, mode)
        .map_err(|e| TrackerError::sys("open", name(), e))?;
    if !flags.contains(OFlags::NONBLOCK) {
        rustix::fs::fcntl_setfl(&fd, flags).map_err(|e| TrackerError::sys("fcntl", name(), e))?;
    }
    // The same inode number, but perhaps not the same inode (the number
    // was reused), or another file since the check: the generation and a
    // second look tell.
    let found = FileKey::of(&fd).map_err(|e| TrackerError::sys("fstat", name(), e))?;
    if found != key {
        return Err(TrackerError::Replaced {
            path: name(),
            expected: key,
            found,
        });
    }
    rustix::fs::seek(&fd, SeekFrom::Start(offset))
        .map_err(|e| TrackerError::sys("lseek", name(), e))?;
    Ok(fd)
}

impl Shared {
    /// The slow path of a get: the fast path found the handle suspended,
    /// being suspended or restored, or its counters full.
    ///
    /// Returns with a use. Errors: as [`FsHandle::get_fd`].
    fn get_slow<S: Deref<Target = Slot>>(&self, id: u64, slot: S) -> Result<Use<S>, TrackerError> {
        let mut slot = slot;
        let mut books = self.lock();
        loop {
            let p = slot.peek();
            if p.active && !p.locked {
                // Restored by another thread meanwhile, or the fast path
                // found the uses counter half full: harvest, and take the
                // use here. Nothing can suspend it while we hold the mutex.
                books.uses += slot.harvest();
                match Use::try_get(slot, &self.clock) {
                    Ok(u) => {
                        invariants::debug_check(self, &books);
                        return Ok(u);
                    }
                    Err(s) if s.users_full() => {
                        s.add_use();
                        return Err(TrackerError::TooManyUsers {
                            path: books.name(id),
                        });
                    }
                    Err(s) => slot = s,
                }
            } else if p.locked {
                // Another thread is restoring it with the mutex dropped.
                books.waiters += 1;
                books = self
                    .restored
                    .wait(books)
                    .unwrap_or_else(PoisonError::into_inner);
                books.waiters -= 1;
            } else {
                books.misses += 1;
                books = match self.restore(books, id, &slot) {
                    Ok(b) => b,
                    Err(e) => {
                        slot.add_use();
                        return Err(e);
                    }
                };
            }
        }
    }

    /// Restores a suspended handle (a miss): makes room, reserves it, and
    /// reopens the file with the mutex dropped.
    ///
    /// Precondition: the handle is suspended and not being restored.
    /// Returns the books, locked again, with the handle active.
    /// Errors: as [`FsHandle::get_fd`]; they count as errors.
    fn restore<'a>(
        &'a self,
        mut books: MutexGuard<'a, Books>,
        id: u64,
        slot: &Slot,
    ) -> Result<MutexGuard<'a, Books>, TrackerError> {
        if let Err(e) = books.make_room(self.capacity, 1) {
            books.errors += 1;
            return Err(e);
        }
        let began = slot.begin_restore();
        assert!(
            began,
            "restore of handle {id}: not suspended ({:?})",
            slot.peek()
        );
        books.reserved += 1;
        let (key, flags, mode, offset) = {
            let r = books
                .records
                .get(&id)
                .expect("a handle being used is not closed: close takes it by value");
            (r.key, r.flags, r.mode, r.offset)
        };
        let pool = books.inodes.pool().dir().clone();
        let (location, moves) = match books.inodes.get(key) {
            Some(i) => (i.location.clone(), i.moves),
            None => panic!("handle {id} holds {key}, which is not registered"),
        };
        drop(books);
        let mut opened = reopen(&pool, &location, key, flags, mode, offset);
        let mut books = self.lock();
        books.reserved -= 1;
        if opened.is_err() {
            if let Some(i) = books.inodes.get(key).filter(|i| i.moves != moves) {
                // Unlinked into the pool while we opened the old name: once
                // more from the pool, with the mutex held so it stays put.
                // The room reserved above is still free: nothing else ran.
                let location = i.location.clone();
                opened = reopen(&pool, &location, key, flags, mode, offset);
            }
        }
        let result = match opened {
            Ok(fd) => {
                slot.install(fd, &self.clock);
                books.active += 1;
                books.suspended -= 1;
                books.file(id);
                Ok(())
            }
            Err(e) => {
                slot.abort_restore();
                books.errors += 1;
                Err(e)
            }
        };
        if books.waiters > 0 {
            self.restored.notify_all();
        }
        invariants::debug_check(self, &books);
        result.map(|()| books)
    }
}
