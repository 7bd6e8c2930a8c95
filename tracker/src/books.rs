//! The tracker's books and what its handles share with it.
//!
//! Locking, stated once. `Shared::books` (a mutex) guards every `Books` field
//! `[m]`; a slot's state word and recency are atomics `[a]`; `capacity` is
//! immutable. The fast path (a get on an active handle) touches only `[a]`.
//! Everything that changes which descriptors are open takes `[m]`. Slow work
//! (the `openat` of a restore or of a new handle, the caller's callbacks)
//! runs with `[m]` dropped, on a [`Reservation`] that counts against the
//! budget until the result is installed, as Linux reserves a descriptor
//! number before it installs the file. Closing a descriptor happens with
//! `[m]` held, because the budget counts it until it is closed.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{Mode, OFlags};

use crate::error::TrackerError;
use crate::inode::Inodes;
use crate::key::FileKey;
use crate::slot::Slot;

/// What the tracker knows about one handle `[m]`.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) slot: Arc<Slot>,
    pub(crate) key: FileKey,
    pub(crate) flags: OFlags,
    pub(crate) mode: Mode,
    /// The offset saved at the last suspension.
    pub(crate) offset: u64,
    /// The recency under which the handle is filed in `Books::lru`, while it
    /// is active. The slot's own recency may be newer (the fast path does
    /// not refile).
    pub(crate) filed: Option<u64>,
}

/// The tracker's books, all `[m]`.
#[derive(Debug)]
pub(crate) struct Books {
    pub(crate) records: BTreeMap<u64, Record>,
    /// The active handles by (recency when filed, id). The smallest entry
    /// whose recency is still current is the least recently used handle:
    /// every other entry's recency is at least its key, so at least as new.
    /// Stale entries are refiled as they come up, so a hit costs nothing here.
    pub(crate) lru: BTreeSet<(u64, u64)>,
    pub(crate) active: usize,
    pub(crate) suspended: usize,
    /// Descriptors being opened (or closed by a callback) with the mutex
    /// dropped: counted against the budget, not yet installed.
    pub(crate) reserved: usize,
    /// Gets waiting for another thread's restore (on `Shared::restored`).
    /// Counted so that a restore wakes them only if there are any: a
    /// `notify_all` is a futex system call even with no one to wake.
    pub(crate) waiters: usize,
    pub(crate) unsuspendable: BTreeMap<RawFd, Option<String>>,
    pub(crate) inodes: Inodes,
    /// Uses harvested from slots and from closed handles.
    pub(crate) uses: u64,
    pub(crate) misses: u64,
    pub(crate) errors: u64,
    pub(crate) next_handle: u64,
}

/// What an [`FdTracker`] and its handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) capacity: usize,
    /// The recency clock `[a]`.
    pub(crate) clock: AtomicU64,
    pub(crate) books: Mutex<Books>,
    /// Signalled when a restore ends, for gets that wait on it.
    pub(crate) restored: Condvar,
}

impl Shared {
    /// The mutex is never held across a panic except on a broken invariant,
    /// which has reported itself by panicking; the books are as consistent
    /// as the invariant left them, so later calls go on (and the invariant
    /// checks speak up) rather than every thread panicking in turn.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for `n` descriptors and reserves it.
    ///
    /// Returns with a reservation, released when it drops.
    /// Errors: `NoRoom`.
    pub(crate) fn reserve(&self, n: usize) -> Result<Reservation<'_>, TrackerError> {
        let mut books = self.lock();
        books.make_room(self.capacity, n)?;
        books.reserved += n;
        Ok(Reservation { shared: self, n })
    }
}

/// Room counted against the budget while the mutex is dropped.
#[must_use = "a reservation holds budget until it is released"]
pub(crate) struct Reservation<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) n: usize,
}

impl Reservation<'_> {
    /// Releases the room into `books`, where the caller installs what it
    /// opened.
    pub(crate) fn release(mut self, books: &mut Books) {
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
    pub(crate) fn new(unlinked_dir: PathBuf) -> Books {
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

    pub(crate) fn used(&self) -> usize {
        self.active + self.unsuspendable.len() + self.reserved
    }

    pub(crate) fn name(&self, id: u64) -> String {
        match self.records.get(&id) {
            Some(r) => self.inodes.name(r.key),
            None => format!("handle {id}"),
        }
    }

    /// Files an active handle under its current recency.
    pub(crate) fn file(&mut self, id: u64) {
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
    pub(crate) fn make_room(&mut self, capacity: usize, n: usize) -> Result<(), TrackerError> {
        if n > capacity {
            // Nothing to look at: no suspension can make that much room.
            return Err(self.no_room(capacity, n));
        }
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

    /// Claims the `need` least recently used handles that are not in use
    /// and can be restored ([`Inodes::restorable`]), or none. Returns the
    /// claimed handles, taken out of the LRU set.
    pub(crate) fn claim_victims(&mut self, need: usize) -> Option<Vec<u64>> {
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
                if self.inodes.restorable(r.key, r.slot.claimed_fd()) {
                    r.filed = None;
                    claimed.push(id);
                } else {
                    r.slot.unclaim();
                    in_use.push((stamp, id));
                }
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
    pub(crate) fn suspend(&mut self, id: u64) -> Result<(), TrackerError> {
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

    pub(crate) fn no_room(&self, capacity: usize, wanted: usize) -> TrackerError {
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

    pub(crate) fn harvest(&mut self) {
        let mut uses = 0;
        for r in self.records.values() {
            uses += r.slot.harvest();
        }
        self.uses += uses;
    }
}
