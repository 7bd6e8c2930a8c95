//! The tracker's invariants, each stated once as a function that can fail
//! with the values that broke it. They hold whenever the mutex is free; the
//! tests run them after every step, and debug builds after every operation
//! that changes which descriptors are open.
//!
//! A slot being restored (with the mutex dropped) counts as suspended and
//! its descriptor as reserved, until it is installed.

use std::collections::HashMap;

use fdlab_model::violation::{fail, Violation};

use crate::books::{Books, Shared};
use crate::inode::Location;

pub(crate) fn check_all(books: &Books, capacity: usize) -> Result<(), Violation> {
    within_budget(books, capacity)?;
    counts_match(books)?;
    lru_files_every_active_handle(books)?;
    inode_refs_match(books)?;
    pool_count_matches(books)
}

/// Active handles, unsuspendable descriptors and reservations fit in the
/// capacity: the tracker never holds more descriptors than that.
pub(crate) fn within_budget(b: &Books, capacity: usize) -> Result<(), Violation> {
    if b.used() > capacity {
        return fail(
            "within_budget",
            format!(
                "{} active + {} unsuspendable + {} reserved > capacity {capacity}",
                b.active,
                b.unsuspendable.len(),
                b.reserved
            ),
        );
    }
    Ok(())
}

/// `active` and `suspended` count the handles whose slots say so.
pub(crate) fn counts_match(b: &Books) -> Result<(), Violation> {
    let active = b.records.values().filter(|r| r.slot.peek().active).count();
    let suspended = b.records.len() - active;
    if (active, suspended) != (b.active, b.suspended) {
        return fail(
            "counts_match",
            format!(
                "books say {} active, {} suspended; slots say {active}, {suspended}",
                b.active, b.suspended
            ),
        );
    }
    Ok(())
}

/// The LRU set files each active handle once, under the recency its record
/// says, and nothing else. (The slot's own recency is usually newer, but
/// two racing gets may set it back a little: see `slot::touch`.)
pub(crate) fn lru_files_every_active_handle(b: &Books) -> Result<(), Violation> {
    for &(stamp, id) in &b.lru {
        match b.records.get(&id) {
            Some(r) if r.filed == Some(stamp) && r.slot.peek().active => {}
            _ => {
                return fail(
                    "lru_files_every_active_handle",
                    format!("entry ({stamp}, {id}) names no active handle filed so"),
                )
            }
        }
    }
    let filed = b.records.values().filter(|r| r.filed.is_some()).count();
    if filed != b.lru.len() || b.lru.len() != b.active {
        return fail(
            "lru_files_every_active_handle",
            format!(
                "{} entries, {filed} handles filed, {} active",
                b.lru.len(),
                b.active
            ),
        );
    }
    Ok(())
}

/// Each registered file counts the handles that hold it, at least one.
pub(crate) fn inode_refs_match(b: &Books) -> Result<(), Violation> {
    let mut held = HashMap::new();
    for r in b.records.values() {
        *held.entry(r.key).or_insert(0usize) += 1;
        if b.inodes.get(r.key).is_none() {
            return fail(
                "inode_refs_match",
                format!("a handle holds unregistered {}", r.key),
            );
        }
    }
    for (key, inode) in b.inodes.iter() {
        let n = held.get(key).copied().unwrap_or(0);
        if n != inode.refs || n == 0 {
            return fail(
                "inode_refs_match",
                format!("{key} counts {} handles, {n} hold it", inode.refs),
            );
        }
    }
    Ok(())
}

/// The pool counts the files in it.
pub(crate) fn pool_count_matches(b: &Books) -> Result<(), Violation> {
    let pooled = b
        .inodes
        .iter()
        .filter(|(_, i)| matches!(i.location, Location::Pooled(_)))
        .count();
    if pooled != b.inodes.pool_files() {
        return fail(
            "pool_count_matches",
            format!(
                "{pooled} files pooled, the pool counts {}",
                b.inodes.pool_files()
            ),
        );
    }
    Ok(())
}

/// Debug builds check the budget after every operation that changes
/// which descriptors are open, and every invariant while the tracker is
/// small: the full check walks every handle, which would make each miss
/// of a 500-handle tracker cost a walk of 500 (the tests call
/// [`crate::FdTracker::check_invariants`] themselves).
#[cfg(debug_assertions)]
pub(crate) fn debug_check(shared: &Shared, books: &Books) {
    const FULL_CHECK_UP_TO: usize = 64;
    let checked = match books.records.len() <= FULL_CHECK_UP_TO {
        true => check_all(books, shared.capacity),
        false => within_budget(books, shared.capacity),
    };
    if let Err(v) = checked {
        panic!("fd tracker: {v}");
    }
}

#[cfg(not(debug_assertions))]
pub(crate) fn debug_check(_: &Shared, _: &Books) {}
