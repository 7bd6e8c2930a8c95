//! A planted bug for the tests to catch: while switched on (per thread, in
//! test builds only), `dup` forgets the reference its new slot must hold.

use std::cell::Cell;

thread_local! {
    static DUP_FORGETS_REF: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn dup_forgets_ref() -> bool {
    DUP_FORGETS_REF.with(Cell::get)
}

/// Runs `f` with the bug planted.
pub(crate) fn with_dup_bug<R>(f: impl FnOnce() -> R) -> R {
    DUP_FORGETS_REF.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DUP_FORGETS_REF.with(|c| c.set(false));
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}
