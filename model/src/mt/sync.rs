//! The synchronization primitives the concurrent table uses: the standard
//! library's normally, loom's under `--cfg loom`, so that the same code is
//! what loom model-checks. Nothing outside this module names `std::sync` or
//! `loom::sync` directly (except the display serial, which no check reads).

#[cfg(not(loom))]
pub use std::sync::{
    atomic::{fence, AtomicU32, Ordering},
    Arc, Mutex, MutexGuard,
};

#[cfg(loom)]
pub use loom::sync::{
    atomic::{fence, AtomicU32, Ordering},
    Arc, Mutex, MutexGuard,
};

/// Whether `a` is the only handle on its value: no other `Arc`, no `Weak`
/// (Linux's `atomic_read(&files->count) == 1`). Two loads, no write.
#[cfg(not(loom))]
pub fn only_handle<T>(a: &Arc<T>) -> bool {
    Arc::strong_count(a) == 1 && Arc::weak_count(a) == 0
}

/// Loom's `Arc` has no `Weak`, so the strong count decides.
#[cfg(loom)]
pub fn only_handle<T>(a: &Arc<T>) -> bool {
    Arc::strong_count(a) == 1
}
