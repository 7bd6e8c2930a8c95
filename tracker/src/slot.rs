//! The lock-free half of a suspendable handle: one state word and the
//! descriptor it guards. The unsafe code that owns and lends descriptors is
//! in this file (the rest is two system calls in `sys`), as gVisor keeps its
//! lock-free descriptor storage in `fd_table_unsafe.go`.
//!
//! The state word (`u64`):
//!
//! | bits   | field  | meaning                                               |
//! |--------|--------|-------------------------------------------------------|
//! | 0..20  | users  | [`Use`]s alive (the FREF count of the handle)         |
//! | 20     | ACTIVE | `fd` holds an open descriptor                         |
//! | 21     | LOCKED | the slow path owns the handle (suspending, restoring) |
//! | 22..64 | uses   | gets since the tracker last harvested them            |
//!
//! The states and who moves between them ("m": under the tracker's mutex):
//!
//! ```text
//! Active(n) --try_get--> Active(n+1) --Use::drop--> Active(n)
//! Active(0) --claim (m)--> Claimed --unclaim (m)--> Active(0)
//!                          Claimed --suspend (m)--> Suspended
//! Suspended --begin_restore (m)--> Restoring --install (m)--> Active(0)
//!                                  Restoring --abort_restore (m)--> Suspended
//! Active(0) | Suspended --take (m, handle consumed)--> closed
//! ```
//!
//! Claimed is ACTIVE|LOCKED and lasts only while the mutex is held;
//! Restoring is LOCKED alone and lasts while the restoring thread opens the
//! file with the mutex dropped.
//!
//! Why one word: the fast path (a get on an active handle) must not take the
//! tracker's mutex, and must not race with a suspension that closes the
//! descriptor. A single compare-and-swap takes a use only if the handle is
//! ACTIVE and not LOCKED; a claim takes the handle only if it has no users.
//! The two compare-and-swaps are on the same word, so one of them fails:
//!
//! 1. The claim wins: the get sees LOCKED and goes to the slow path, which
//!    waits for the mutex, by then the handle is Suspended, and it restores.
//! 2. The get wins: users is 1, the claim fails, the suspender skips the
//!    handle as in use.
//! 3. A harvest clears the uses bits between the get's load and its
//!    compare-and-swap: the compare-and-swap fails and the get retries.
//!
//! Counting uses in the same word saves the fast path a second atomic
//! read-modify-write; the tracker harvests them under its mutex (at every
//! suspension, restore, close and `stats`), and a get that finds the count
//! past half its range takes the slow path, which harvests, so it never
//! wraps.
//!
//! Memory order: `fd` is stored before the Release that sets ACTIVE, and a
//! get reads it after an Acquire compare-and-swap that saw ACTIVE. A put is
//! a Release, so the user's I/O happens before the Acquire claim that lets
//! a suspender close the descriptor.

use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

const USER: u64 = 1;
const USERS_MASK: u64 = (1 << 20) - 1;
const ACTIVE: u64 = 1 << 20;
const LOCKED: u64 = 1 << 21;
const USE_SHIFT: u32 = 22;
const USE: u64 = 1 << USE_SHIFT;
/// A get that finds this many uses unharvested (half the 42 bits they
/// have) takes the slow path.
const HARVEST_AT: u64 = 1 << 41;

/// No descriptor.
const NO_FD: RawFd = -1;

/// What a state word says, for dumps and invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peek {
    pub users: u32,
    pub active: bool,
    pub locked: bool,
}

/// The shared, lock-free part of a handle.
#[derive(Debug)]
pub(crate) struct Slot {
    state: AtomicU64,
    fd: AtomicI32,
    /// The tracker's clock at the last use: the LRU order. Written with
    /// plain stores (see [`touch`]).
    last_used: AtomicU64,
}

/// Marks `slot` most recently used.
///
/// The clock is advanced with a load and a store rather than a
/// read-modify-write: exact in a single thread, which is what the model
/// predicts, and under contention two handles may share a tick, which only
/// blurs the LRU order between them. The alternative, `fetch_add`, is a
/// second locked instruction on every get.
fn touch(slot: &Slot, clock: &AtomicU64) {
    let now = clock.load(Ordering::Relaxed) + 1;
    clock.store(now, Ordering::Relaxed);
    slot.last_used.store(now, Ordering::Relaxed);
}

impl Slot {
    /// A slot holding a freshly opened descriptor, with no users.
    pub(crate) fn new_active(fd: OwnedFd, clock: &AtomicU64) -> Slot {
        let slot = Slot {
            state: AtomicU64::new(ACTIVE),
            fd: AtomicI32::new(fd.into_raw_fd()),
            last_used: AtomicU64::new(0),
        };
        touch(&slot, clock);
        slot
    }

    pub(crate) fn peek(&self) -> Peek {
        let s = self.state.load(Ordering::Acquire);
        Peek {
            // At most USERS_MASK, which fits.
            users: (s & USERS_MASK) as u32,
            active: s & ACTIVE != 0,
            locked: s & LOCKED != 0,
        }
    }

    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// The descriptor number, for dumps; -1 when suspended.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.load(Ordering::Relaxed)
    }

    /// Counts a use that did not become a [`Use`] (a failed get).
    pub(crate) fn add_use(&self) {
        self.state.fetch_add(USE, Ordering::Relaxed);
    }

    /// Takes the uses counted so far, leaving 0.
    pub(crate) fn harvest(&self) -> u64 {
        let old = self
            .state
            .fetch_and(!(u64::MAX << USE_SHIFT), Ordering::Relaxed);
        old >> USE_SHIFT
    }

    /// Whether [`Use::try_get`] failed only because too many users hold
    /// the handle (the slow path cannot help then).
    pub(crate) fn users_full(&self) -> bool {
        self.state.load(Ordering::Relaxed) & USERS_MASK == USERS_MASK
    }

    /// Takes an unused active handle for suspension.
    ///
    /// Precondition: the tracker's mutex is held. Returns false if the
    /// handle is in use (or not active).
    pub(crate) fn claim(&self) -> bool {
        // Only the uses bits can change under us (a harvest, or a get that
        // won): the loop retries on the former and gives up on the latter.
        self.lock_if(|s| s & (USERS_MASK | LOCKED) == 0 && s & ACTIVE != 0)
    }

    /// Sets LOCKED while `ok` holds for the state word; false once it does
    /// not.
    fn lock_if(&self, ok: impl Fn(u64) -> bool) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if !ok(s) {
                return false;
            }
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Gives a claimed handle back, still active.
    ///
    /// Precondition: the mutex is held and the handle is claimed.
    pub(crate) fn unclaim(&self) {
        self.state.fetch_and(!LOCKED, Ordering::Release);
    }

    /// The descriptor of a claimed handle, to save its offset.
    ///
    /// Precondition: the mutex is held and the handle is claimed.
    pub(crate) fn claimed_fd(&self) -> BorrowedFd<'_> {
        debug_assert_eq!(
            self.state.load(Ordering::Relaxed) & (ACTIVE | LOCKED),
            ACTIVE | LOCKED
        );
        // SAFETY: a claimed handle is ACTIVE, so `fd` is open, and no one can
        // close it: closing needs a claim (which we hold) or the handle by
        // value (`take`), and the borrow ends before `suspend` returns it.
        unsafe { BorrowedFd::borrow_raw(self.fd.load(Ordering::Relaxed)) }
    }

    /// Takes the descriptor out of a claimed handle: it is now suspended.
    ///
    /// Precondition: the mutex is held and the handle is claimed.
    /// Returns the descriptor, for the caller to close.
    pub(crate) fn suspend(&self) -> OwnedFd {
        let fd = self.fd.swap(NO_FD, Ordering::Relaxed);
        self.state.fetch_and(!(ACTIVE | LOCKED), Ordering::Release);
        // SAFETY: the claim gave us the descriptor exclusively (no users, no
        // other claimant), and the swap removed it from the slot, so this is
        // the only owner.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// Marks a suspended handle as being restored by the caller.
    ///
    /// Precondition: the mutex is held. Returns false if it is not
    /// suspended.
    pub(crate) fn begin_restore(&self) -> bool {
        self.lock_if(|s| s & (ACTIVE | LOCKED) == 0)
    }

    /// Installs the reopened descriptor: the handle is active, with no
    /// users, and most recently used.
    ///
    /// Precondition: the mutex is held and the caller began the restore.
    /// Consumes: the descriptor.
    pub(crate) fn install(&self, fd: OwnedFd, clock: &AtomicU64) {
        debug_assert_eq!(
            self.state.load(Ordering::Relaxed) & (ACTIVE | LOCKED),
            LOCKED
        );
        self.fd.store(fd.into_raw_fd(), Ordering::Relaxed);
        touch(self, clock);
        // The Release publishes `fd` to the Acquire of the next try_get.
        self.state.fetch_xor(LOCKED | ACTIVE, Ordering::Release);
    }

    /// Ends a restore that failed: the handle stays suspended.
    ///
    /// Precondition: the mutex is held and the caller began the restore.
    pub(crate) fn abort_restore(&self) {
        self.state.fetch_and(!LOCKED, Ordering::Release);
    }

    /// Takes the descriptor out of a handle being closed.
    ///
    /// Precondition: the mutex is held, and the handle is consumed, so it
    /// has no users and no restore in flight (both borrow it). Returns the
    /// descriptor if the handle was active.
    pub(crate) fn take(&self) -> Option<OwnedFd> {
        let fd = self.fd.swap(NO_FD, Ordering::Relaxed);
        self.state.fetch_and(!ACTIVE, Ordering::Release);
        // SAFETY: a valid number in the slot is owned by the slot, and the
        // swap removed it, so this is the only owner.
        (fd != NO_FD).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl Drop for Slot {
    /// A slot is dropped after `take` has emptied it; this is the safety net
    /// that keeps a descriptor from leaking if it was not.
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// One use of a handle: while it lives the descriptor stays open. Dropping
/// it is `put_fd`.
///
/// `S` is how the use reaches the slot: a borrow (`&Slot`), or something
/// that owns a reference to the handle.
#[derive(Debug)]
pub(crate) struct Use<S: Deref<Target = Slot>> {
    slot: S,
    fd: RawFd,
}

impl<S: Deref<Target = Slot>> Use<S> {
    /// The fast path: takes a use of an active handle without any lock.
    ///
    /// Conditions, all read from one state word: ACTIVE, not LOCKED, fewer
    /// than 2^20 - 1 users, fewer than 2^41 unharvested uses. On success the
    /// use is counted and the handle is most recently used. Returns the slot
    /// back when a condition fails, for the slow path.
    pub(crate) fn try_get(slot: S, clock: &AtomicU64) -> Result<Self, S> {
        let mut s = slot.state.load(Ordering::Relaxed);
        loop {
            let ok = s & (ACTIVE | LOCKED) == ACTIVE
                && s & USERS_MASK < USERS_MASK
                && s >> USE_SHIFT < HARVEST_AT;
            if !ok {
                return Err(slot);
            }
            match slot.state.compare_exchange_weak(
                s,
                s + USER + USE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        touch(&slot, clock);
        let fd = slot.fd.load(Ordering::Relaxed);
        Ok(Use { slot, fd })
    }

    /// What reaches the slot (the borrow, or the owner).
    pub(crate) fn holder(&self) -> &S {
        &self.slot
    }
}

impl<S: Deref<Target = Slot>> AsFd for Use<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: this use keeps users >= 1, so the descriptor can be neither
        // claimed for suspension nor taken by a close until it drops, which
        // the returned borrow cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl<S: Deref<Target = Slot>> AsRawFd for Use<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl<S: Deref<Target = Slot>> Drop for Use<S> {
    fn drop(&mut self) {
        self.slot.state.fetch_sub(USER, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devnull() -> OwnedFd {
        rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn a_use_blocks_a_claim_and_a_claim_blocks_a_use() {
        let clock = AtomicU64::new(0);
        let slot = Slot::new_active(devnull(), &clock);
        let u = Use::try_get(&slot, &clock).unwrap();
        assert!(!slot.claim(), "in use");
        drop(u);
        assert!(slot.claim());
        assert!(Use::try_get(&slot, &clock).is_err(), "claimed");
        slot.unclaim();
        assert!(Use::try_get(&slot, &clock).is_ok());
        assert_eq!(slot.harvest(), 2);
        assert_eq!(slot.harvest(), 0);
    }

    #[test]
    fn suspend_and_restore_move_the_descriptor() {
        let clock = AtomicU64::new(0);
        let slot = Slot::new_active(devnull(), &clock);
        assert!(slot.claim());
        drop(slot.suspend());
        assert_eq!(slot.raw_fd(), NO_FD);
        assert!(Use::try_get(&slot, &clock).is_err(), "suspended");
        assert!(slot.begin_restore());
        assert!(!slot.begin_restore(), "one restorer");
        slot.install(devnull(), &clock);
        let u = Use::try_get(&slot, &clock).unwrap();
        assert!(rustix::fs::fstat(&u).is_ok());
        assert_eq!(
            slot.peek(),
            Peek {
                users: 1,
                active: true,
                locked: false
            }
        );
    }

    #[test]
    fn recency_follows_uses() {
        let clock = AtomicU64::new(0);
        let a = Slot::new_active(devnull(), &clock);
        let b = Slot::new_active(devnull(), &clock);
        assert!(a.last_used() < b.last_used());
        drop(Use::try_get(&a, &clock).unwrap());
        assert!(a.last_used() > b.last_used());
    }

    #[test]
    fn too_many_uses_take_the_slow_path() {
        let clock = AtomicU64::new(0);
        let slot = Slot::new_active(devnull(), &clock);
        slot.state
            .fetch_add(HARVEST_AT << USE_SHIFT, Ordering::Relaxed);
        assert!(Use::try_get(&slot, &clock).is_err());
        assert_eq!(slot.harvest(), HARVEST_AT);
        assert!(Use::try_get(&slot, &clock).is_ok());
    }
}
