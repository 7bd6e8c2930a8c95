//! The references a caller holds to a file of the concurrent table:
//! [`FileRef`] (FREF from `fd_getfile`; its drop is FRELE) and [`Hold`] (a
//! reference a caller keeps or sends). Both are handed out by the table
//! (`filedesc`), and both drop their count through [`File`]'s FRELE.

use std::ops::Deref;

use super::block::Block;
use super::file::File;
use super::publish::{Publish, SlotCell};
use super::sync::Arc;

/// The publication guard a lookup keeps: it holds the slot's block, whose
/// cell holds the file's memory.
pub(crate) type Loaded<T> = <SlotCell<Block<T>> as Publish<Block<T>>>::Guard;

/// A use reference taken by `fd_getfile` (FREF): while it lives the file
/// stays alive, whatever happens to the descriptor. Dropping it is FRELE,
/// and the last FRELE runs closef's work in whichever thread drops it.
///
/// It keeps the slot's load guard (on the block) and the cell's index
/// rather than an `Arc` clone: with arc-swap the guard is a per-thread
/// debt, two atomic operations cheaper than an `Arc` clone and drop (a
/// lookup through a copied table's base, off the block path, keeps an
/// `Arc` clone instead). Keep
/// it on the stack for the length of a system call;
/// [`FileRef::into_hold`] makes a reference to keep longer.
#[must_use = "dropping a FileRef at once is FREF immediately followed by FRELE"]
pub struct FileRef<T> {
    memory: Memory<T>,
    /// False only in the `FreleEarly` mutant, whose guard holds no count.
    #[cfg(any(test, feature = "mutants"))]
    pub(crate) counted: bool,
}

/// What keeps a looked-up file's memory: the slot's block, or, for a slot
/// a copied table has not written since the copy, the file itself (the
/// copy's base holds it too; see `Filedesc::copy_with`).
enum Memory<T> {
    Cell(Loaded<T>, u32),
    Copied(Arc<File<T>>),
}

impl<T> FileRef<T> {
    /// Precondition: `loaded` is `Some`, its cell `at` is filled, and the
    /// caller took a count on that cell's file.
    pub(crate) fn new(loaded: Loaded<T>, at: u32) -> FileRef<T> {
        debug_assert!(loaded.as_ref().and_then(|b| b.file(at)).is_some());
        FileRef {
            memory: Memory::Cell(loaded, at),
            #[cfg(any(test, feature = "mutants"))]
            counted: true,
        }
    }

    /// Precondition: the caller took a count on `file`, which it found in
    /// a copied table's base.
    pub(crate) fn from_base(file: Arc<File<T>>) -> FileRef<T> {
        FileRef {
            memory: Memory::Copied(file),
            #[cfg(any(test, feature = "mutants"))]
            counted: true,
        }
    }

    /// Whether the lookup found the file in a copied table's base: its
    /// slot had not been written since the copy.
    pub fn through_base(&self) -> bool {
        matches!(self.memory, Memory::Copied(_))
    }

    /// The file's memory (not a reference: its `Arc` does not count).
    #[inline]
    pub fn arc(&self) -> &Arc<File<T>> {
        match &self.memory {
            Memory::Cell(loaded, at) => match loaded.as_ref().and_then(|b| b.file(*at)) {
                Some(f) => f,
                None => unreachable!("FileRef::new is only given a filled cell"),
            },
            Memory::Copied(f) => f,
        }
    }

    /// Keeps the reference beyond the system call, as a [`Hold`]: FREF for
    /// the hold, then FRELE for this guard.
    pub fn into_hold(self) -> Hold<T> {
        let f = Arc::clone(self.arc());
        f.assert_live();
        f.fref();
        Hold { file: Some(f) }
    }
}

impl<T> Deref for FileRef<T> {
    type Target = File<T>;

    /// Every use of the file goes through here, and checks it is alive.
    #[inline]
    fn deref(&self) -> &File<T> {
        let f = self.arc();
        f.assert_live();
        f
    }
}

impl<T> Drop for FileRef<T> {
    fn drop(&mut self) {
        #[cfg(any(test, feature = "mutants"))]
        if !self.counted {
            return;
        }
        self.arc().frele();
    }
}

impl<T> std::fmt::Debug for FileRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileRef({:?})", **self.arc())
    }
}

/// A counted reference a caller owns and may send to another thread: the
/// caller's half of a new file after `fdinsert`, a [`FileRef`] kept longer,
/// a file in flight to another table. Dropping it is FRELE.
///
/// Consumes: FRELE (drop), [`super::Filedesc::fdinstall`] (it becomes a
/// slot's reference).
#[must_use = "a Hold is a counted reference: dropping it is FRELE"]
pub struct Hold<T> {
    /// `Some` until the reference is handed on ([`Hold::into_table`]).
    file: Option<Arc<File<T>>>,
}

impl<T> Hold<T> {
    /// Wraps a reference the caller took. Precondition: the count includes it.
    pub(crate) fn from_counted(file: Arc<File<T>>) -> Hold<T> {
        Hold { file: Some(file) }
    }

    /// The file's memory (not a reference: its `Arc` does not count).
    pub fn arc(&self) -> &Arc<File<T>> {
        match &self.file {
            Some(f) => f,
            None => unreachable!("a Hold is Some until into_table consumes it"),
        }
    }

    /// Another reference to the same file (FREF).
    ///
    /// Returns with a reference.
    pub fn fref(&self) -> Hold<T> {
        self.arc().fref();
        Hold::from_counted(Arc::clone(self.arc()))
    }

    /// Hands the reference to a table slot without touching the count.
    ///
    /// Consumes: the reference (it is the slot's now).
    pub(crate) fn into_table(mut self) -> Arc<File<T>> {
        match self.file.take() {
            Some(f) => f,
            None => unreachable!("a Hold is Some until into_table consumes it"),
        }
    }
}

impl<T> Deref for Hold<T> {
    type Target = File<T>;

    #[inline]
    fn deref(&self) -> &File<T> {
        let f = self.arc();
        f.assert_live();
        f
    }
}

impl<T> Drop for Hold<T> {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            f.frele();
        }
    }
}

impl<T> std::fmt::Debug for Hold<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "Hold({file:?})"),
            None => write!(f, "Hold(handed on)"),
        }
    }
}
