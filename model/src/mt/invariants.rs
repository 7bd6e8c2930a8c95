//! The concurrent table's invariants, each a function that fails with the
//! values that broke it, as in [`crate::invariants`].
//!
//! Precondition for every one: quiescence. No thread is inside a table
//! operation and no reference changes hands while they run; counts read
//! from running threads would be a snapshot of nothing in particular.

use std::collections::BTreeMap;

use super::file::File;
use super::filedesc::Filedesc;
use super::sync::Arc;
use crate::violation::{fail, Violation};

/// Every invariant, over the tables alive, every file ever made in them,
/// and the references callers hold ([`super::FileRef`]s, [`super::Hold`]s,
/// the caller's half of each [`super::Larval`]), one entry per reference.
pub fn check_all<T>(
    tables: &[&Filedesc<T>],
    files: &[Arc<File<T>>],
    held: &[&File<T>],
) -> Result<(), Violation> {
    tables_consistent(tables)?;
    refcounts_match(tables, files, held)?;
    closef_once(files)
}

/// Each table's chunks, bitmap and first-free hint agree with its slot
/// states, and what it publishes agrees with what its writer installed: a
/// free or larval slot publishes nothing, an installed one its live file.
pub fn tables_consistent<T>(tables: &[&Filedesc<T>]) -> Result<(), Violation> {
    for (t, table) in tables.iter().enumerate() {
        if let Err(e) = table.check() {
            return fail("tables_consistent", format!("table {t}: {e}"));
        }
    }
    Ok(())
}

/// Each file's count equals the slots naming it (larval or installed, in
/// every table) plus the references callers hold; a dead file is named by
/// no slot and held by nobody; every slot names a file in `files`.
pub fn refcounts_match<T>(
    tables: &[&Filedesc<T>],
    files: &[Arc<File<T>>],
    held: &[&File<T>],
) -> Result<(), Violation> {
    let mut slots: BTreeMap<u64, u32> = BTreeMap::new();
    for (t, table) in tables.iter().enumerate() {
        for (fd, slot, f) in table.used() {
            if !files.iter().any(|g| Arc::ptr_eq(g, &f)) {
                return fail(
                    "refcounts_match",
                    format!("table {t} fd {fd} ({slot:?}) names {f:?}, not a known file"),
                );
            }
            *slots.entry(f.serial()).or_insert(0) += 1;
        }
    }
    let mut holds: BTreeMap<u64, u32> = BTreeMap::new();
    for f in held {
        *holds.entry(f.serial()).or_insert(0) += 1;
    }
    for f in files {
        let s = slots.get(&f.serial()).copied().unwrap_or(0);
        let h = holds.get(&f.serial()).copied().unwrap_or(0);
        if f.count() != s + h {
            return fail(
                "refcounts_match",
                format!(
                    "file#{} has count {} but {s} slots + {h} held references",
                    f.serial(),
                    f.count()
                ),
            );
        }
    }
    Ok(())
}

/// closef's work ran exactly once for every file whose count reached zero,
/// and never for a live one.
pub fn closef_once<T>(files: &[Arc<File<T>>]) -> Result<(), Violation> {
    for f in files {
        let (count, closes) = (f.count(), f.closes());
        if closes > 1 || (count == 0) != (closes == 1) {
            return fail(
                "closef_once",
                format!(
                    "file#{} has count {count} and closef ran {closes} times",
                    f.serial()
                ),
            );
        }
    }
    Ok(())
}
