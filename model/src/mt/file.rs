//! The open file of the concurrent table and its count. The references a
//! caller holds to it are in `guard`.
//!
//! Field legend (`[c]` constant after `falloc`, `[a]` atomic, changed by
//! any thread):
//! - `serial`, `data` `[c]`: a display number and what the file is.
//! - `count` `[a]`: f_count, the file's logical life: the table slots that
//!   name it (installed or larval, in every table) plus the references
//!   callers hold ([`super::FileRef`], [`super::Hold`], the caller's half of
//!   a [`super::Larval`]).
//! - `closes` `[a]`: how many times closef's work ran: 0 while `count > 0`,
//!   then 1 for good.
//!
//! Two lifetimes, on purpose. The `Arc` around a `File` keeps its *memory*
//! valid for whoever holds a pointer to it, so nothing here is ever a
//! dangling pointer and the crate stays free of `unsafe`. The *file* lives
//! while `count > 0`: when FRELE takes it to zero, closef's work runs once
//! and the file is dead, though its memory may live on in a reader's
//! `Arc` or in a cell of its slot's block. A reader that gets that wrong
//! does not corrupt memory; it trips [`File::assert_live`] or the
//! second-closef check in [`File::frele`], which is what lets loom find
//! such a bug (see `mutant`). Linux gets the same guarantee differently:
//! `struct file` is `SLAB_TYPESAFE_BY_RCU`, so its memory stays a
//! `struct file` while a reader may look at it.

// A display number only: no check orders anything by it, so it need not
// be visible to loom.
use std::sync::atomic::AtomicU64;

use super::sync::{fence, AtomicU32, Ordering};

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Panics on a broken invariant, unless the thread is already unwinding
/// from one: a second panic would abort the process and hide the first
/// message (a guard dropped during the unwind runs FRELE, which may find
/// the damage the first panic reported).
#[cold]
pub(crate) fn broken(msg: std::fmt::Arguments<'_>) {
    if !std::thread::panicking() {
        panic!("{msg}");
    }
}

/// An open file description shared by threads.
///
/// Padded to at least a cache line (with `Arc`'s two counts) so that two
/// threads working on two different files never write to the same line:
/// their counts, the only words a lookup writes, are a whole file apart;
/// `benches/concurrent.rs` measures the two-thread case. Padded rather
/// than `#[repr(align(64))]`: an over-aligned `Arc` is allocated with
/// `posix_memalign`, which glibc serves without its per-thread cache, and
/// that cost 25 ns of the 155 ns falloc + fdrelease cycle (measured).
pub struct File<T> {
    serial: u64,
    count: AtomicU32,
    closes: AtomicU32,
    data: T,
    /// 32 bytes: with `Arc`'s counts a file is at least 64 bytes, whatever
    /// `T` is.
    _pad: [u64; 4],
}

impl<T> File<T> {
    /// falloc's new file: "one [reference] for the table, one for the
    /// caller" (falloc(9)).
    pub(crate) fn new(data: T) -> File<T> {
        File {
            serial: NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            count: AtomicU32::new(2),
            closes: AtomicU32::new(0),
            data,
            _pad: [0; 4],
        }
    }

    /// A number for messages and invariants, never reused.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// What the file is.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// f_count now. Exact only when no other thread is working on the
    /// file (at quiescence, where the invariants read it).
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    /// How many times closef's work ran on the file: 0 or 1 unless the
    /// table is broken.
    pub fn closes(&self) -> u32 {
        self.closes.load(Ordering::Acquire)
    }

    /// Whether closef's work ran: the file is dead.
    pub fn is_closed(&self) -> bool {
        self.closes() != 0
    }

    /// Panics if closef's work already ran: the caller is using a file it
    /// holds no reference to (a use after closef).
    #[inline]
    pub fn assert_live(&self) {
        let closes = self.closes.load(Ordering::Acquire);
        if closes != 0 {
            broken(format_args!(
                "use after closef: file#{} (closef ran {closes} times, count {})",
                self.serial,
                self.count.load(Ordering::Relaxed)
            ));
        }
    }

    /// FREF for a reader that reached the file without a reference:
    /// increments the count unless it is zero (Linux `file_ref_get`, before
    /// it `atomic_long_inc_not_zero` in `get_file_rcu`). A zero count means
    /// the file is dead and stays dead, so the reader must not use it.
    ///
    /// Acquire on every path: on success, the reader's uses of the file
    /// come after its count; on failure, the zero it read was written by
    /// the last FRELE (Release), which comes after the writer unpublished
    /// the file, so the reader's next look at the slot sees that (free on
    /// x86, where every load acquires).
    #[inline]
    pub(crate) fn inc_not_zero(&self) -> bool {
        let mut c = self.count.load(Ordering::Acquire);
        loop {
            if c == 0 {
                return false;
            }
            match self
                .count
                .compare_exchange_weak(c, c + 1, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }

    /// FREF from a reference the caller already holds (a slot's, under the
    /// writer lock, or a [`Hold`]): the count is at least 1 and cannot reach
    /// zero meanwhile, so a plain increment is enough, as in `Arc::clone`.
    pub(crate) fn fref(&self) {
        let prev = self.count.fetch_add(1, Ordering::Relaxed);
        if prev == 0 {
            broken(format_args!(
                "FREF from a reference on dead file#{}",
                self.serial
            ));
        }
    }

    /// The mutant's FREF: a plain increment from no reference at all.
    #[cfg(any(test, feature = "mutants"))]
    pub(crate) fn fref_unconditional(&self) {
        self.count.fetch_add(1, Ordering::Acquire);
    }

    /// FRELE: drops one reference; the last one runs closef's work.
    ///
    /// Consumes: one reference (the caller's count). Returns whether it
    /// was the last: a caller that keeps its own books (the sequential
    /// [`crate::World`]) then tears down what the file referred to.
    pub(crate) fn frele(&self) -> bool {
        // Release: this reference's uses happen before the closef work,
        // whichever thread runs it.
        let prev = self.count.fetch_sub(1, Ordering::Release);
        if prev == 0 {
            broken(format_args!(
                "FRELE on dead file#{} (count was 0)",
                self.serial
            ));
        }
        if prev == 1 {
            // Acquire: pairs with every other FRELE's Release.
            fence(Ordering::Acquire);
            self.fdrop();
        }
        prev == 1
    }

    /// The same file in a copy of a whole system (the sequential model's
    /// snapshot): the same serial, count and closes, with `data`. The copy
    /// shares nothing with `self`, so the system it belongs to keeps its
    /// own count. Precondition: quiescence, for the counts it reads.
    pub(crate) fn snapshot<U>(&self, data: U) -> File<U> {
        File {
            serial: self.serial,
            count: AtomicU32::new(self.count()),
            closes: AtomicU32::new(self.closes()),
            data,
            _pad: [0; 4],
        }
    }

    /// closef's work, once the count reached zero (OpenBSD `fdrop`, Linux
    /// `__fput`). Here it only marks the file dead: what a file's teardown
    /// does is the business of whoever knows what `data` names (the
    /// sequential model's `descrip::fdrop`, told by [`File::frele`]).
    fn fdrop(&self) {
        let before = self.closes.fetch_add(1, Ordering::AcqRel);
        if before != 0 {
            broken(format_args!(
                "FRELE after closef: file#{} reached count 0 a second time",
                self.serial
            ));
        }
    }
}

impl<T> std::fmt::Debug for File<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "file#{} (count {}, closes {})",
            self.serial,
            self.count.load(Ordering::Relaxed),
            self.closes.load(Ordering::Relaxed)
        )
    }
}
