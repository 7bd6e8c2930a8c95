//! Helpers the unit tests and the loom tests share. `Arc` is the one the
//! table uses (std's, or loom's under `--cfg loom`), so one copy serves
//! both builds.

use super::sync::Arc;
use super::{File, Filedesc};
use crate::Fd;

pub(super) fn fd(n: u32) -> Fd {
    Fd::new(n)
}

/// Opens a file at the lowest free slot; returns its number and memory.
pub(super) fn open(t: &Filedesc<u32>, data: u32) -> (Fd, Arc<File<u32>>) {
    let l = t.falloc(data).unwrap();
    let (n, f) = (l.fd(), Arc::clone(l.arc()));
    drop(l.fdinsert(false));
    (n, f)
}
