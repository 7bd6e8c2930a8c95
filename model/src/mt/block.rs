//! What a slot publishes: a block of write-once cells, each naming one
//! file for good, and the index of the cell whose file is installed now.
//!
//! Field legend (`[o]` written once under the writer lock before the cell
//! is named, then read by anyone without a lock; `[w]` written under the
//! writer lock, read by anyone without a lock):
//! - `cells` `[o]`: one file's memory each. A cell is never reset, so
//!   a block index names the same file for the block's life.
//! - `current` `[w]`: the installed cell, or [`NONE`] for a free or larval
//!   slot. Written after the cell it names (Release), read before it
//!   (Acquire).
//!
//! Why blocks: an arc-swap store walks the debt slots of every thread that
//! ever used arc-swap (about 100 ns a store with one such thread, 200 ns
//! with three, measured), more than the whole write path may cost. So the
//! write path does not store into arc-swap: `fdinsert` fills the next cell
//! and `fdrelease` sets `current` to [`NONE`], both plain stores. Only a
//! full block is replaced, through the slot's arc-swap: once in
//! [`MAX_CELLS`] installs on a busy slot. A file's memory then lives until
//! its block is replaced (and no reader holds the block), never longer
//! than [`MAX_CELLS`] installs in that slot; its life (the count and
//! closef's work) is unchanged.
//!
//! This is Linux's index-and-recheck design without type-stable memory:
//! Linux reuses a `struct file` for another file (`SLAB_TYPESAFE_BY_RCU`),
//! so its reader must recheck the slot after taking the count. A cell is
//! never reused, so there is nothing to recheck (see
//! [`super::Filedesc::fd_getfile`]).

use super::file::File;
use super::publish::{OnceCell, PublishOnce};
use super::sync::{Arc, AtomicU32, Ordering};

/// `current` of a block whose slot is free or larval.
pub(super) const NONE: u32 = u32::MAX;

/// Cells in the largest block. A slot's first block has 1 cell and each
/// replacement doubles, so a slot used once costs one cell and a busy slot
/// pays one arc-swap store in 16 installs. 2 under loom, so that a model
/// reaches both an install into a block and a replacement.
pub(super) const MAX_CELLS: usize = if cfg!(loom) { 2 } else { 16 };

/// A slot's published block.
pub(crate) struct Block<T> {
    current: AtomicU32,
    cells: Box<[OnceCell<Arc<File<T>>>]>,
}

impl<T> Block<T> {
    /// A block of `len` cells whose cell 0 holds `first`, installed. Made
    /// whole before it is published, so a reader never sees it half made.
    pub(super) fn new(len: usize, first: Arc<File<T>>) -> Block<T> {
        let cells: Box<[OnceCell<Arc<File<T>>>]> = (0..len).map(|_| OnceCell::default()).collect();
        cells[0].set_with(|| first);
        Block {
            current: AtomicU32::new(0),
            cells,
        }
    }

    /// A block of `len` empty cells naming none: what a copied table's
    /// slot publishes when the file it had at the copy is closed (see
    /// `Filedesc::copy_with`). Its first install fills cell 0.
    pub(super) fn vacant(len: usize) -> Block<T> {
        Block {
            current: AtomicU32::new(NONE),
            cells: (0..len).map(|_| OnceCell::default()).collect(),
        }
    }

    /// How many cells the block has.
    pub(super) fn len(&self) -> usize {
        self.cells.len()
    }

    /// The installed cell, or [`NONE`].
    #[inline]
    pub(super) fn current(&self) -> u32 {
        self.current.load(Ordering::Acquire)
    }

    /// The file of cell `at`, if the cell is filled.
    #[inline]
    pub(crate) fn file(&self, at: u32) -> Option<&Arc<File<T>>> {
        PublishOnce::get(self.cells.get(at as usize)?)
    }

    /// Fills cell `at`. Precondition: the writer lock is held, and the cell
    /// is empty (each is filled once: the caller counts the used ones).
    pub(super) fn fill(&self, at: u32, file: Arc<File<T>>) {
        self.cells[at as usize].set_with(|| file);
    }

    /// Names cell `at` (or [`NONE`]) as installed. Precondition: the writer
    /// lock is held, and cell `at` is filled.
    pub(super) fn set_current(&self, at: u32) {
        self.current.store(at, Ordering::Release);
    }
}

impl<T> std::fmt::Debug for Block<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filled = (0..self.len() as u32)
            .filter(|&i| self.file(i).is_some())
            .count();
        write!(
            f,
            "block of {} cells, {filled} filled, current {}",
            self.len(),
            self.current.load(Ordering::Relaxed)
        )
    }
}
