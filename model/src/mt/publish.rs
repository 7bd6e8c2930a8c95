//! The publication points of the concurrent table, behind two small traits.
//!
//! Readers find a file without a lock through three steps: the chunk
//! directory (each entry written once, when the table grows), the slot
//! inside the chunk (it publishes the slot's block, replaced only when the
//! block is full: see `block`), and a cell of the block (written once).
//! Normally a slot is an `arc_swap::ArcSwapOption`, and a directory entry
//! or a cell a `std::sync::OnceLock`. Neither is visible to loom, which
//! only explores the interleavings of its own primitives, so under
//! `--cfg loom` both are replaced by stand-ins: the slot by a
//! `loom::sync::Mutex` around the value, the write-once cell by a loom
//! mutex in front of a `OnceLock`. They are slower and linearizable like
//! the real ones, which is the only property the table relies on. A loom
//! run therefore checks the table's protocol (counts, states, order of
//! publication), not arc-swap's internals, which arc-swap's own tests
//! cover.

use std::ops::Deref;

use super::sync::Arc;

/// A slot that readers load without a lock and writers replace: Linux's
/// `rcu_assign_pointer` / `rcu_dereference` on `fdt->fd[fd]`. Here it
/// holds the slot's block, replaced once in `block::MAX_CELLS` installs.
pub trait Publish<T>: Default {
    /// What a load returns: it keeps the loaded value alive (arc-swap's
    /// `Guard`, a per-thread "debt" that is cheaper than an `Arc` clone).
    type Guard: Deref<Target = Option<Arc<T>>>;

    /// The current value.
    fn load(&self) -> Self::Guard;

    /// Replaces the value. Loads that start after `store` returns see `new`.
    fn store(&self, new: Option<Arc<T>>);
}

/// A cell set once and then read without a lock: a chunk of slots, added
/// when the table grows and never replaced, so a reader that found a chunk
/// can keep using it (Linux must instead re-check `files->fdt`, because
/// `expand_fdtable` replaces the whole array); or a block's cell, which
/// names one file for the block's life.
pub trait PublishOnce<T>: Default {
    /// The value, if set.
    fn get(&self) -> Option<&T>;

    /// Sets the value unless it is set. Precondition: callers are serialized
    /// (the table's writer lock), so `init` runs at most once.
    fn set_with(&self, init: impl FnOnce() -> T);
}

#[cfg(not(loom))]
mod imp {
    use super::{Publish, PublishOnce};
    use std::sync::{Arc, OnceLock};

    /// The slot: an `ArcSwapOption`.
    pub type SlotCell<T> = arc_swap::ArcSwapOption<T>;
    /// A directory entry or a block's cell: a `OnceLock`, whose `get` is
    /// one acquire load.
    pub type OnceCell<T> = OnceLock<T>;

    impl<T> Publish<T> for arc_swap::ArcSwapOption<T> {
        type Guard = arc_swap::Guard<Option<Arc<T>>>;

        #[inline]
        fn load(&self) -> Self::Guard {
            arc_swap::ArcSwapAny::load(self)
        }

        fn store(&self, new: Option<Arc<T>>) {
            arc_swap::ArcSwapAny::store(self, new)
        }
    }

    impl<T> PublishOnce<T> for OnceLock<T> {
        #[inline]
        fn get(&self) -> Option<&T> {
            OnceLock::get(self)
        }

        fn set_with(&self, init: impl FnOnce() -> T) {
            self.get_or_init(init);
        }
    }
}

#[cfg(loom)]
mod imp {
    use super::{Publish, PublishOnce};
    use loom::sync::{Arc, Mutex};
    use std::ops::Deref;
    use std::sync::OnceLock;

    /// The loom stand-in for `ArcSwapOption`: a loom mutex around the value.
    /// Every load is a point where loom may switch threads.
    pub struct SlotCell<T>(Mutex<Option<Arc<T>>>);

    impl<T> Default for SlotCell<T> {
        fn default() -> Self {
            SlotCell(Mutex::new(None))
        }
    }

    /// A loaded value (an `Arc` clone: the stand-in has no debts).
    pub struct Loaded<T>(Option<Arc<T>>);

    impl<T> Deref for Loaded<T> {
        type Target = Option<Arc<T>>;
        fn deref(&self) -> &Option<Arc<T>> {
            &self.0
        }
    }

    impl<T> Publish<T> for SlotCell<T> {
        type Guard = Loaded<T>;

        fn load(&self) -> Loaded<T> {
            // Poison means a thread panicked with the lock held; the model
            // already failed, and the stand-in's value is still whole.
            Loaded(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
        }

        fn store(&self, new: Option<Arc<T>>) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = new;
        }
    }

    /// The loom stand-in for `OnceLock`: the value sits in a real
    /// `OnceLock`, behind a loom mutex around a flag that says whether it
    /// is there, so that loom sees (and may switch threads at) the point
    /// where a reader looks for it, while `get` can still lend a reference
    /// as `OnceLock::get` does. N.B. a loom `AtomicBool` as the flag made
    /// loom explore a single interleaving of the growth and larval models
    /// (the reader always before the writer), which then passed with the
    /// `PublishLarval` mutant planted; the mutex makes it explore 44.
    pub struct OnceCell<T> {
        ready: Mutex<bool>,
        value: OnceLock<T>,
    }

    impl<T> Default for OnceCell<T> {
        fn default() -> Self {
            OnceCell {
                ready: Mutex::new(false),
                value: OnceLock::new(),
            }
        }
    }

    impl<T> PublishOnce<T> for OnceCell<T> {
        fn get(&self) -> Option<&T> {
            if *self.ready.lock().unwrap_or_else(|e| e.into_inner()) {
                self.value.get()
            } else {
                None
            }
        }

        fn set_with(&self, init: impl FnOnce() -> T) {
            let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
            if !*ready {
                self.value.get_or_init(init);
                *ready = true;
            }
        }
    }
}

pub use imp::{OnceCell, SlotCell};
