//! # The fd tracker: more open files than the descriptor budget
//!
//! A long-running server (LTTng's relay daemon is the model:
//! `src/common/fd-tracker/` in lttng-tools) may keep thousands of trace
//! files "open" under a small descriptor budget. [`FdTracker`] hands out
//! suspendable handles ([`FsHandle`]): the tracker may close a handle's
//! descriptor whenever it is not in use, and reopens it, transparently, at
//! its last offset when the handle is used again. It also counts the
//! unsuspendable descriptors (sockets, pipes, epoll) that it cannot close,
//! so that the process stays within its budget.
//!
//! ```
//! use fdlab::tracker::{Directory, FdTracker};
//! use rustix::fs::{Mode, OFlags};
//!
//! # struct Rm(std::path::PathBuf);
//! # impl Drop for Rm { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
//! # let tmp = std::env::temp_dir().join(format!("fdlab-doc-tracker-{}", std::process::id()));
//! # std::fs::create_dir_all(&tmp).unwrap();
//! # let _rm = Rm(tmp.clone());
//! let tracker = FdTracker::new(tmp.join("unlinked"), 2).unwrap();
//! let dir = Directory::open(&tmp).unwrap();
//! let flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC;
//! let files: Vec<_> = (0..5)
//!     .map(|i| tracker.open(&dir, format!("trace-{i}"), flags, Mode::RUSR | Mode::WUSR).unwrap())
//!     .collect();
//! // Five files open on two descriptors. Round robin: every use is a miss.
//! for (i, f) in files.iter().enumerate() {
//!     let fd = f.get_fd().unwrap(); // the guard; dropping it is put_fd
//!     rustix::io::write(&fd, format!("file {i}").as_bytes()).unwrap();
//! }
//! let s = tracker.stats();
//! assert_eq!((s.active, s.suspended, s.uses, s.misses), (2, 3, 5, 5));
//! for f in files {
//!     f.unlink().unwrap(); // into the pool under `unlinked`, deleted at close
//!     f.close().unwrap();
//! }
//! tracker.destroy().unwrap(); // Err(Leak) if it still tracked something
//! assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "pool gone with its files");
//! ```
//!
//! The parts, one file each:
//! - `slot`: a handle's lock-free state word and its descriptor (the fast
//!   path, and the unsafe code that keeps a descriptor's lifetime).
//! - `handle`: [`FsHandle`], its guards, and the slow path of a get (restore).
//! - `inode`: the files the handles hold, by identity (`st_dev`, `st_ino`,
//!   generation), and the pool of unlinked files.
//! - `dir`: [`Directory`], what handles are opened relative to.
//! - `invariants`: what holds between operations, as functions that fail.
//! - `sys`: `FS_IOC_GETVERSION` and `name_to_handle_at(2)`, for the inode
//!   generation in a file's identity (unsafe, with `slot`).
//!
//! The policy (which handle is suspended, what a failure leaves behind) is
//! the model's, stated once in [`fdlab_model::tracker`], and the tests check
//! the two against each other.
//!
//! Locking, stated once. `Shared::books` (a mutex) guards every `Books` field
//! `[m]`; a slot's state word and recency are atomics `[a]`; `capacity` is
//! immutable. The fast path (a get on an active handle) touches only `[a]`.
//! Everything that changes which descriptors are open takes `[m]`. Slow work
//! (the `openat` of a restore or of a new handle, the caller's callbacks)
//! runs with `[m]` dropped, on a reservation that counts against the budget
//! until the result is installed, as Linux reserves a descriptor number
//! before it installs the file. Closing a descriptor happens with `[m]` held,
//! because the budget counts it until it is closed. An unlink renames with
//! `[m]` held: the rename and the new location must be one step for a
//! restore, which reads the location under `[m]` and, if its open failed
//! because the file moved meanwhile, tries again from the new one.

mod dir;
mod error;
mod handle;
mod inode;
mod invariants;
mod slot;
mod sys;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{Mode, OFlags};

pub use dir::Directory;
pub use error::{Leak, TrackerError, UnsuspendableError};
pub use fdlab_model::tracker::{HandleState, Stats};
pub use handle::{ArcFdGuard, FdGuard, FsHandle};
pub use inode::FileKey;

use inode::Inodes;
use slot::Slot;

/// What the tracker knows about one handle `[m]`.
#[derive(Debug)]
struct Record {
    slot: Arc<Slot>,
    key: FileKey,
    flags: OFlags,
    mode: Mode,
    /// The offset saved at the last suspension.
    offset: u64,
    /// The recency under which the handle is filed in `Books::lru`, while it
    /// is active. The slot's own recency may be newer (the fast path does
    /// not refile).
    filed: Option<u64>,
}

/// The tracker's books, all `[m]`.
#[derive(Debug)]
struct Books {
    records: BTreeMap<u64, Record>,
    /// The active handles by (recency when filed, id). The smallest entry
    /// whose recency is still current is the least recently used handle:
    /// every other entry's recency is at least its key, so at least as new.
    /// Stale entries are refiled as they come up, so a hit costs nothing here.
    lru: BTreeSet<(u64, u64)>,
    active: usize,
    suspended: usize,
    /// Descriptors being opened (or closed by a callback) with the mutex
    /// dropped: counted against the budget, not yet installed.
    reserved: usize,
    /// Gets waiting for another thread's restore (on `Shared::restored`).
    /// Counted so that a restore wakes them only if there are any: a
    /// `notify_all` is a futex system call even with no one to wake.
    waiters: usize,
    unsuspendable: BTreeMap<RawFd, Option<String>>,
    inodes: Inodes,
    /// Uses harvested from slots and from closed handles.
    uses: u64,
    misses: u64,
    errors: u64,
    next_handle: u64,
}

/// What an [`FdTracker`] and its handles share.
#[derive(Debug)]
struct Shared {
    capacity: usize,
    /// The recency clock `[a]`.
    clock: AtomicU64,
    books: Mutex<Books>,
    /// Signalled when a restore ends, for gets that wait on it.
    restored: Condvar,
}

impl Shared {
    /// The mutex is never held across a panic except on a broken invariant,
    /// which has reported itself by panicking; the books are as consistent
    /// as the invariant left them, so later calls go on (and the invariant
    /// checks speak up) rather than every thread panicking in turn.
    fn lock(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for `n` descriptors and reserves it.
    ///
    /// Returns with a reservation, released when it drops.
    /// Errors: `NoRoom`.
    fn reserve(&self, n: usize) -> Result<Reservation<'_>, TrackerError> {
        let mut books = self.lock();
        books.make_room(self.capacity, n)?;
        books.reserved += n;
        Ok(Reservation { shared: self, n })
    }

    /// Debug builds check the budget after every operation that changes
    /// which descriptors are open, and every invariant while the tracker is
    /// small: the full check walks every handle, which would make each miss
    /// of a 500-handle tracker cost a walk of 500 (the tests call
    /// [`FdTracker::check_invariants`] themselves).
    #[cfg(debug_assertions)]
    fn debug_check(&self, books: &Books) {
        const FULL_CHECK_UP_TO: usize = 64;
        let checked = match books.records.len() <= FULL_CHECK_UP_TO {
            true => invariants::check_all(books, self.capacity),
            false => invariants::within_budget(books, self.capacity),
        };
        if let Err(v) = checked {
            panic!("fd tracker: {v}");
        }
    }

    #[cfg(not(debug_assertions))]
    fn debug_check(&self, _: &Books) {}
}

/// Room counted against the budget while the mutex is dropped.
#[must_use = "a reservation holds budget until it is released"]
struct Reservation<'a> {
    shared: &'a Shared,
    n: usize,
}

impl Reservation<'_> {
    /// Releases the room into `books`, where the caller installs what it
    /// opened.
    fn release(mut self, books: &mut Books) {
        books.reserved -= self.n;
        self.n = 0;
    }
}

impl Drop for Reservation<'_> {
    /// The error path (and a panicking callback): the room goes back.
    fn drop(&mut self) {
        if self.n > 0 {
            self.shared.lock().reserved -= self.n;
        }
    }
}

impl Books {
    fn new(unlinked_dir: PathBuf) -> Books {
        Books {
            records: BTreeMap::new(),
            lru: BTreeSet::new(),
            active: 0,
            suspended: 0,
            reserved: 0,
            waiters: 0,
            unsuspendable: BTreeMap::new(),
            inodes: Inodes::new(unlinked_dir),
            uses: 0,
            misses: 0,
            errors: 0,
            next_handle: 0,
        }
    }

    fn used(&self) -> usize {
        self.active + self.unsuspendable.len() + self.reserved
    }

    fn name(&self, id: u64) -> String {
        match self.records.get(&id) {
            Some(r) => self.inodes.name(r.key),
            None => format!("handle {id}"),
        }
    }

    /// Files an active handle under its current recency.
    fn file(&mut self, id: u64) {
        if let Some(r) = self.records.get_mut(&id) {
            let now = r.slot.last_used();
            if let Some(old) = r.filed.replace(now) {
                self.lru.remove(&(old, id));
            }
            self.lru.insert((now, id));
        }
    }

    /// Makes room for `n` more descriptors under `capacity` by suspending
    /// least recently used handles that are not in use (the model's
    /// "Room").
    ///
    /// All or nothing: victims are claimed first, and if there are not
    /// enough, every claim is given back and nothing changed. A suspension
    /// can still fail on a system call (lseek on a FIFO): that handle stays
    /// active, counts as an error, and another victim is claimed; if none is
    /// left, the handles suspended so far stay suspended.
    ///
    /// Errors: `NoRoom`.
    fn make_room(&mut self, capacity: usize, n: usize) -> Result<(), TrackerError> {
        let mut need = (self.used() + n).saturating_sub(capacity);
        let mut failed = Vec::new();
        let mut result = Ok(());
        while need > 0 {
            let Some(victims) = self.claim_victims(need) else {
                result = Err(self.no_room(capacity, n));
                break;
            };
            for id in victims {
                match self.suspend(id) {
                    Ok(()) => need -= 1,
                    Err(_) => {
                        self.errors += 1;
                        failed.push(id);
                    }
                }
            }
        }
        for id in failed {
            self.file(id);
        }
        result
    }

    /// Claims the `need` least recently used handles that are not in use,
    /// or none. Returns the claimed handles, taken out of the LRU set.
    fn claim_victims(&mut self, need: usize) -> Option<Vec<u64>> {
        let mut claimed = Vec::new();
        let mut in_use = Vec::new();
        while claimed.len() < need {
            let Some((stamp, id)) = self.lru.pop_first() else {
                break;
            };
            let Some(r) = self.records.get_mut(&id) else {
                continue;
            };
            let now = r.slot.last_used();
            if now != stamp {
                // Used since it was filed: refile, and look again.
                self.lru.insert((now, id));
                r.filed = Some(now);
            } else if r.slot.claim() {
                r.filed = None;
                claimed.push(id);
            } else {
                in_use.push((stamp, id));
            }
        }
        self.lru.extend(in_use);
        if claimed.len() == need {
            return Some(claimed);
        }
        for id in claimed {
            if let Some(r) = self.records.get(&id) {
                r.slot.unclaim();
            }
            self.file(id);
        }
        None
    }

    /// Suspends a claimed handle: saves its offset and closes its
    /// descriptor.
    ///
    /// Errors: the `lseek` failure; the handle is then unclaimed, active,
    /// and not filed (the caller refiles it).
    fn suspend(&mut self, id: u64) -> Result<(), TrackerError> {
        let Some(r) = self.records.get_mut(&id) else {
            return Ok(());
        };
        let offset = match rustix::fs::tell(r.slot.claimed_fd()) {
            Ok(o) => o,
            Err(e) => {
                r.slot.unclaim();
                return Err(TrackerError::sys("lseek", self.name(id), e));
            }
        };
        // close(2) errors are not reported: on a local file system close
        // only reports deferred write-back errors, which the caller's
        // fsync reports too, and the descriptor is gone either way.
        drop(r.slot.suspend());
        r.offset = offset;
        self.uses += r.slot.harvest();
        self.active -= 1;
        self.suspended += 1;
        Ok(())
    }

    fn no_room(&self, capacity: usize, wanted: usize) -> TrackerError {
        let in_use = self
            .records
            .values()
            .filter(|r| {
                let p = r.slot.peek();
                p.active && p.users > 0
            })
            .count();
        TrackerError::NoRoom {
            wanted,
            capacity,
            active: self.active,
            in_use,
            unsuspendable: self.unsuspendable.len(),
            reserved: self.reserved,
        }
    }

    fn harvest(&mut self) {
        let mut uses = 0;
        for r in self.records.values() {
            uses += r.slot.harvest();
        }
        self.uses += uses;
    }
}

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
        self.shared.debug_check(&books);
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
    /// # use fdlab::tracker::FdTracker;
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
        self.shared.debug_check(&books);
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
        let closed = close(fds);
        let mut books = self.shared.lock();
        reservation.release(&mut books);
        if let Err(e) = closed {
            for (fd, name) in entries {
                // A number the callback closed anyway may have been reused
                // and tracked by another thread meanwhile: that one stays.
                books.unsuspendable.entry(fd).or_insert(name);
            }
            return Err(UnsuspendableError::Callback(e));
        }
        self.shared.debug_check(&books);
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
    pub fn check_invariants(&self) -> Result<(), fdlab_model::invariants::Violation> {
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
