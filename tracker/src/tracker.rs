//! [`FdTracker`]: the budget, and the calls that open, track and untrack.

use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::{Mode, OFlags};

use crate::books::{Books, Record, Reservation, Shared};
use crate::dir::Directory;
use crate::error::{Leak, TrackerError, UnsuspendableError};
use crate::handle::FsHandle;
use crate::invariants;
use crate::key::FileKey;
use crate::report::Stats;
use crate::slot::Slot;
use fdlab_model::violation::Violation;

/// A descriptor budget and the handles and descriptors kept under it.
///
/// Thread-safe: share it between threads (e.g. `Arc<FdTracker>`). Handles
/// share its state, so they go on working after the tracker is dropped,
/// which reports them as a leak.
#[derive(Debug)]
pub struct FdTracker {
    shared: Arc<Shared>,
    /// Set by `destroy`, which has reported any leak already.
    destroyed: bool,
}

impl FdTracker {
    /// A tracker that keeps at most `capacity` descriptors open. Unlinked
    /// files wait in `unlinked_dir`, created on first use and removed when
    /// empty.
    ///
    /// Errors: `RelativeUnlinkDir` (the pool must be reachable whatever the
    /// working directory is).
    pub fn new(unlinked_dir: impl Into<PathBuf>, capacity: usize) -> Result<Self, TrackerError> {
        let unlinked_dir = unlinked_dir.into();
        if !unlinked_dir.is_absolute() {
            return Err(TrackerError::RelativeUnlinkDir(unlinked_dir));
        }
        let shared = Shared {
            capacity,
            clock: AtomicU64::new(0),
            books: Mutex::new(Books::new(unlinked_dir)),
            restored: Condvar::new(),
        };
        Ok(FdTracker {
            shared: Arc::new(shared),
            destroyed: false,
        })
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The unlinked-file pool's directory.
    pub fn unlinked_dir(&self) -> PathBuf {
        self.shared.lock().inodes.pool().dir().to_path_buf()
    }

    /// Opens a suspendable handle: `openat(dir, path, flags, mode)`, after
    /// making room (the model's "Open"). The handle is active, not in use,
    /// and the most recently used. Its flags are replayed when it is
    /// restored, minus `O_CREAT`, `O_TRUNC` and `O_EXCL`.
    ///
    /// Errors: `NoRoom` (every active handle is in use), `Unrestorable`
    /// (`O_TMPFILE`), the `open` or `fstat` failure as `Sys`.
    pub fn open(
        &self,
        dir: &Directory,
        path: impl AsRef<Path>,
        flags: OFlags,
        mode: Mode,
    ) -> Result<FsHandle, TrackerError> {
        let path = path.as_ref();
        let name = || dir.path().join(path).display().to_string();
        if flags.contains(OFlags::TMPFILE) {
            return Err(TrackerError::Unrestorable {
                path: name().into(),
            });
        }
        let reservation = self.shared.reserve(1)?;
        let opened = rustix::fs::openat(dir, path, flags, mode)
            .map_err(|e| TrackerError::sys("open", name(), e))
            .and_then(|fd| match FileKey::of(&fd) {
                Ok(key) => Ok((fd, key)),
                Err(e) => Err(TrackerError::sys("fstat", name(), e)),
            });
        let mut books = self.shared.lock();
        reservation.release(&mut books);
        let (fd, key) = opened?;
        books
            .inodes
            .hold(key, &fd, dir, path)
            .map_err(|e| TrackerError::sys("name_to_handle_at", name(), e))?;
        let id = books.next_handle;
        books.next_handle += 1;
        let slot = Arc::new(Slot::new_active(fd, &self.shared.clock));
        let record = Record {
            slot: slot.clone(),
            key,
            flags,
            mode,
            offset: 0,
            filed: None,
        };
        books.records.insert(id, record);
        books.file(id);
        books.active += 1;
        invariants::debug_check(&self.shared, &books);
        drop(books);
        Ok(FsHandle::new(id, slot, self.shared.clone()))
    }

    /// Tracks `count` unsuspendable descriptors that `open` opens: makes
    /// room for them (suspending handles), runs `open` with the mutex
    /// dropped, and tracks the descriptor numbers it returns, which must be
    /// exactly `count`. `names` names them in dumps (empty: unnamed).
    ///
    /// The tracker never owns these descriptors: the callback keeps them
    /// (e.g. pushes its `OwnedFd`s or sockets into the caller's state) and
    /// returns their numbers. So when the tracker refuses them, the caller
    /// still holds them to close.
    ///
    /// ```
    /// # use fdlab_tracker::FdTracker;
    /// # use std::os::fd::{AsRawFd, OwnedFd};
    /// # let tracker = FdTracker::new("/nonexistent/unlinked", 4).unwrap();
    /// let mut pipe: Vec<OwnedFd> = Vec::new();
    /// let fds = tracker
    ///     .open_unsuspendable(&["pipe r", "pipe w"], 2, || {
    ///         let (r, w) = rustix::pipe::pipe()?;
    ///         let fds = vec![r.as_raw_fd(), w.as_raw_fd()];
    ///         pipe.extend([r, w]);
    ///         Ok::<_, rustix::io::Errno>(fds)
    ///     })
    ///     .unwrap();
    /// assert_eq!(tracker.stats().unsuspendable, 2);
    /// tracker
    ///     .close_unsuspendable(&fds, |_| {
    ///         pipe.clear(); // closes both ends
    ///         Ok::<_, rustix::io::Errno>(())
    ///     })
    ///     .unwrap();
    /// # tracker.destroy().unwrap();
    /// ```
    ///
    /// Errors: `NameCount`; `NoRoom` (`EMFILE`) before the callback runs;
    /// the callback's error, passed through; then `WrongCount`,
    /// `BadDescriptor`, `AlreadyTracked` (`EEXIST`, also for a number
    /// returned twice). On any error nothing is tracked, though handles
    /// suspended to make room stay suspended.
    pub fn open_unsuspendable<F, E>(
        &self,
        names: &[&str],
        count: usize,
        open: F,
    ) -> Result<Vec<RawFd>, UnsuspendableError<E>>
    where
        F: FnOnce() -> Result<Vec<RawFd>, E>,
    {
        if !names.is_empty() && names.len() != count {
            let names = names.len();
            return Err(TrackerError::NameCount { names, count }.into());
        }
        let reservation = self.shared.reserve(count)?;
        let fds = open().map_err(UnsuspendableError::Callback)?;
        let mut books = self.shared.lock();
        reservation.release(&mut books);
        if fds.len() != count {
            let got = fds.len();
            return Err(TrackerError::WrongCount {
                expected: count,
                got,
            }
            .into());
        }
        for (i, &fd) in fds.iter().enumerate() {
            if fd < 0 {
                return Err(TrackerError::BadDescriptor { fd }.into());
            }
            if books.unsuspendable.contains_key(&fd) || fds[..i].contains(&fd) {
                return Err(TrackerError::AlreadyTracked { fd }.into());
            }
        }
        for (i, &fd) in fds.iter().enumerate() {
            let name = names.get(i).map(|n| n.to_string());
            books.unsuspendable.insert(fd, name);
        }
        invariants::debug_check(&self.shared, &books);
        Ok(fds)
    }

    /// Untracks unsuspendable descriptors that `close` closes. Every
    /// descriptor is checked before the callback runs; while it runs (with
    /// the mutex dropped) they still count against the budget.
    ///
    /// N.B. LTTng runs the callback first and checks afterwards, so an
    /// unknown descriptor is reported after the others were closed. Here
    /// the callback does not run at all then.
    ///
    /// Errors: `NotTracked` (`EINVAL`, also for a number given twice); the
    /// callback's error, passed through, and then nothing is untracked.
    pub fn close_unsuspendable<F, E>(
        &self,
        fds: &[RawFd],
        close: F,
    ) -> Result<(), UnsuspendableError<E>>
    where
        F: FnOnce(&[RawFd]) -> Result<(), E>,
    {
        let mut books = self.shared.lock();
        for (i, fd) in fds.iter().enumerate() {
            if !books.unsuspendable.contains_key(fd) || fds[..i].contains(fd) {
                return Err(TrackerError::NotTracked { fd: *fd }.into());
            }
        }
        let entries: Vec<(RawFd, Option<String>)> = fds
            .iter()
            .map(|&fd| (fd, books.unsuspendable.remove(&fd).flatten()))
            .collect();
        books.reserved += fds.len();
        drop(books);
        let reservation = Reservation {
            shared: &self.shared,
            n: fds.len(),
        };
        // A callback that fails, by error or by panic, may not have closed
        // them: both leave them tracked.
        let mut untracking = Untracking {
            shared: &self.shared,
            entries: Some(entries),
        };
        let closed = close(fds);
        let mut books = self.shared.lock();
        reservation.release(&mut books);
        if let Err(e) = closed {
            untracking.undo(&mut books);
            return Err(UnsuspendableError::Callback(e));
        }
        untracking.entries = None;
        invariants::debug_check(&self.shared, &books);
        Ok(())
    }

    /// The statistics, as the model keeps them.
    pub fn stats(&self) -> Stats {
        let mut books = self.shared.lock();
        books.harvest();
        Stats {
            uses: books.uses,
            misses: books.misses,
            errors: books.errors,
            active: books.active,
            suspended: books.suspended,
            unsuspendable: books.unsuspendable.len(),
            capacity: self.shared.capacity,
        }
    }

    /// Every tracked handle and descriptor, with its name and state, after
    /// LTTng's `fd_tracker_log`.
    pub fn dump(&self) -> String {
        let s = self.stats();
        let books = self.shared.lock();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "fd tracker: capacity {}", s.capacity);
        let _ = writeln!(
            out,
            "  stats: {} uses, {} misses, {} errors",
            s.uses, s.misses, s.errors
        );
        let _ = writeln!(
            out,
            "  tracked {}: active {} ({} suspendable, {} unsuspendable), suspended {}",
            s.active + s.suspended + s.unsuspendable,
            s.active + s.unsuspendable,
            s.active,
            s.unsuspendable,
            s.suspended
        );
        if books.reserved > 0 {
            let _ = writeln!(out, "  being opened or closed: {}", books.reserved);
        }
        let _ = writeln!(out, "  suspendable handles:");
        if books.records.is_empty() {
            let _ = writeln!(out, "    none");
        }
        for r in books.records.values() {
            let name = books.inodes.name(r.key);
            let p = r.slot.peek();
            let state = match (p.active, p.locked) {
                (true, _) if p.users > 0 => {
                    format!("active, fd {}, in use ({})", r.slot.raw_fd(), p.users)
                }
                (true, _) => format!("active, fd {}", r.slot.raw_fd()),
                (false, true) => "being restored".to_string(),
                (false, false) => format!("suspended at offset {}", r.offset),
            };
            let _ = writeln!(out, "    {name} [{state}]");
        }
        let _ = writeln!(out, "  unsuspendable descriptors:");
        if books.unsuspendable.is_empty() {
            let _ = writeln!(out, "    none");
        }
        for (fd, name) in &books.unsuspendable {
            let name = name.as_deref().unwrap_or("unnamed");
            let _ = writeln!(out, "    {name} [fd {fd}]");
        }
        out
    }

    /// Every invariant of the tracker's books (see `invariants`).
    pub fn check_invariants(&self) -> Result<(), Violation> {
        let books = self.shared.lock();
        invariants::check_all(&books, self.shared.capacity)
    }

    /// Destroys the tracker, as `fd_tracker_destroy`.
    ///
    /// Errors: [`Leak`] if it still tracks handles or descriptors. The
    /// handles go on working (they share the tracker's books); the leak is
    /// what is reported.
    pub fn destroy(mut self) -> Result<(), Leak> {
        self.destroyed = true;
        self.leak().map_or(Ok(()), Err)
    }

    fn leak(&self) -> Option<Leak> {
        let stats = self.stats();
        if stats.active + stats.suspended + stats.unsuspendable == 0 {
            return None;
        }
        let dump = self.dump();
        Some(Leak { stats, dump })
    }
}

impl Drop for FdTracker {
    /// A tracker dropped while it tracks something warns, as LTTng's
    /// `fd_tracker_destroy` logs "A file descriptor leak has been
    /// detected". Use [`FdTracker::destroy`] to get the leak as a value.
    fn drop(&mut self) {
        if !self.destroyed {
            if let Some(leak) = self.leak() {
                eprintln!("warning: {leak}");
            }
        }
    }
}

/// Descriptors taken out of the books while a close callback runs: put
/// back unless the callback succeeded (dropped while unwinding from a
/// panicking callback, it puts them back itself).
struct Untracking<'a> {
    shared: &'a Shared,
    entries: Option<Vec<(RawFd, Option<String>)>>,
}

impl Untracking<'_> {
    fn undo(&mut self, books: &mut Books) {
        for (fd, name) in self.entries.take().into_iter().flatten() {
            // A number the callback closed anyway may have been reused and
            // tracked by another thread meanwhile: that one stays.
            books.unsuspendable.entry(fd).or_insert(name);
        }
    }
}

impl Drop for Untracking<'_> {
    fn drop(&mut self) {
        if self.entries.is_some() {
            let mut books = self.shared.lock();
            self.undo(&mut books);
        }
    }
}
