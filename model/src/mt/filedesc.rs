//! The descriptor table that threads share (Linux `struct files_struct`
//! under RCU, OpenBSD `struct filedesc` with its `fd_fplock`).
//!
//! Field legend (`[o]` set once under `[w]`, then read by anyone without a
//! lock; `[p]` published under `[w]`, read by anyone without a lock; `[w]`
//! the writer lock; `[c]` constant):
//! - `dir` `[o]`: the chunk directory. Chunk `k` holds `FIRST << k` slots,
//!   so chunks 0..k hold `FIRST * (2^k - 1)`: a table grows by adding one
//!   chunk as large as all the others together, and never copies or
//!   replaces a chunk. A chunk is made when one of its slots is first
//!   published.
//! - the slots inside the chunks `[p]`: each publishes its block (see
//!   `block`): write-once cells of files and the index of the installed
//!   one, or none for a free or larval slot, which is how a larval file
//!   stays invisible. A block is replaced only when it is full.
//! - `base` `[c]`: a copied table's files, as the copy found them (fork's
//!   copy: one array of them; a snapshot's: an index a slot into the
//!   array of files every table of the snapshot shares). A slot with no
//!   block (in no chunk, or not yet published) publishes its file from
//!   here; the first write to such a slot gives it a block, which hides
//!   the base for good. Empty for a table that is not a copy.
//! - `writer` `[w]`: each slot's state (free, larval, installed) with its
//!   file, cell and close-on-exec bit, and the writer's handle on the
//!   slot's block; the two-level bitmap, the first-free hint.
//! - `limit` `[c]`: the highest descriptor number plus one, which sizes
//!   the chunk directory (`fs.nr_open`). The public calls allocate below
//!   it; the crate-internal ones take the caller's own `RLIMIT_NOFILE`
//!   too, which is per process even when the table is shared.
//!
//! Readers (`fd_getfile`) take no lock. Writers (`falloc`, `fdinsert`,
//! `fdrelease`, `dup`, `dup2`, `fdinstall`) serialize on `[w]`, change the
//! state, publish the slot, and drop the lock before any FRELE, so closef's
//! work never runs under the table lock (Linux `close_fd` calls
//! `filp_close` after `spin_unlock`; xv6's rule: slow work after the lock).
//! Publishing is two plain stores (fill a cell, name it); closing is one.
//! The arc-swap store that replaces a full block is the only costly one,
//! once in `MAX_CELLS` installs in a slot.
//!
//! The share count is the `Arc<Filedesc>`'s strong count: a clone is
//! `fdshare` (`clone(CLONE_FILES)`), a drop is the sharing part of `fdfree`,
//! and the last drop closes every descriptor (`Drop`).
//!
//! Chunks grow geometrically rather than by fixed 64-slot chunks listed in
//! an `ArcSwap<Vec<_>>`: the directory then has a fixed size, set once per
//! entry, so a reader pays one acquire load for it (an arc-swap load costs
//! as much as an `Arc` clone), and there is no old chunk list for a reader
//! to be left holding, which is what Linux's recheck of `files->fdt` is for.
//!
//! A slot publishes a block of write-once cells rather than the file
//! itself, because an arc-swap store costs more than the whole write path
//! may (issue 5: falloc + fdrelease at most 200 ns). Publishing each file
//! with arc-swap took two stores a cycle (`fdinsert`, `fdrelease`), 278 ns
//! a cycle, and 496 ns once two more threads had used arc-swap: each store
//! walks every such thread's debt slots. Rejected: a generation word
//! instead of `fdrelease`'s store (one store a cycle is still 100 to 200
//! ns, measured), and Linux's type-stable files (a file's memory reused
//! for the next file), which needs a file's data to be rewritten while
//! readers may look at it: `unsafe`, or a lock on every use. Blocks cost a
//! reader two more pointers to follow (24.2 against 23.0 ns a lookup,
//! measured) and keep a dead file's memory (not its life) until its slot
//! has had up to `MAX_CELLS` more installs.

use crate::bitmap::Bitmap;
use crate::errno::Errno;
use crate::limits::NR_OPEN;
use crate::Fd;

use super::block::{Block, MAX_CELLS, NONE};
use super::file::{broken, File};
use super::guard::{FileRef, Hold};
use super::publish::{OnceCell, Publish, PublishOnce, SlotCell};
use super::sync::{only_handle, Arc, Mutex, MutexGuard};
#[cfg(any(test, feature = "mutants"))]
use crate::mutant::Mutant;

/// Slots in chunk 0; chunk `k` has `FIRST << k`. 64 as Linux's
/// `NR_OPEN_DEFAULT`; 2 under loom, so that a model with three descriptors
/// already grows its table.
const FIRST: usize = if cfg!(loom) { 2 } else { 64 };

/// A chunk of published slots, each publishing its block.
type Chunk<T> = Box<[SlotCell<Block<T>>]>;

/// The chunk holding `fd`, and the slot's index in it.
#[inline]
pub(super) fn locate(fd: usize) -> (usize, usize) {
    let i = fd + FIRST;
    let k = (usize::BITS - 1 - i.leading_zeros() - FIRST.trailing_zeros()) as usize;
    (k, i - (FIRST << k))
}

/// How many slots chunks `0..n` hold.
const fn capacity_of(n: usize) -> usize {
    FIRST * ((1 << n) - 1)
}

/// A reader found slot `fd` naming cell `at` of `block` before the cell
/// was filled: writers fill a cell before they name it, so the table is
/// broken. Out of line, so that `fd_getfile` stays small enough to inline.
#[cold]
#[inline(never)]
fn named_empty<T>(fd: Fd, at: u32, block: &Block<T>) -> Errno {
    broken(format_args!(
        "fd {fd} names cell {at} before its file is there ({block:?})"
    ));
    Errno::EBADF
}

/// The block slot `i` publishes, if its chunk is made.
fn published<T>(dir: &[OnceCell<Chunk<T>>], i: usize) -> Option<Arc<Block<T>>> {
    let (k, off) = locate(i);
    let chunk = PublishOnce::get(dir.get(k)?)?;
    Option::clone(&Publish::load(&chunk[off]))
}

/// A slot as the writer keeps it: its state, and its block.
struct WSlot<T> {
    state: State<T>,
    /// The block the slot publishes, the writer's handle on it (`None`
    /// until the first install), and how many of its cells are filled.
    block: Option<Arc<Block<T>>>,
    filled: u32,
}

/// A slot's state. The slot's one reference (its share of `f_count`) is
/// accounted here; the block's cell holds a second `Arc` of an installed
/// file, for memory only.
enum State<T> {
    Free,
    /// Reserved by `falloc`: the number is taken, the file not published
    /// (Linux: the bit is set in `open_fds`, `fdt->fd[fd]` is NULL).
    Larval(Arc<File<T>>),
    Installed {
        file: Arc<File<T>>,
        /// The cell of the slot's block that holds the file.
        cell: u32,
        cloexec: bool,
    },
}

impl<T> WSlot<T> {
    const FREE: WSlot<T> = WSlot {
        state: State::Free,
        block: None,
        filled: 0,
    };

    /// Makes `file` the slot's installed file for readers: fills the next
    /// cell of the slot's block and names it, or, when the block is full,
    /// publishes a new block (twice as large, up to `MAX_CELLS`) through
    /// `published`. Returns the cell, and the replaced block, for the
    /// caller to drop after the lock (dropping it may free files' memory).
    ///
    /// Precondition: the writer lock is held, and `published` is this
    /// slot's arc-swap. A reader that loads the slot meanwhile sees what
    /// it held before, or `file`: the cell is filled before it is named,
    /// and a new block is made whole before it is published. A replaced
    /// block keeps naming the old file, so that `dup2` onto an installed
    /// slot is atomic: a reader that still has the old block finds the
    /// old file (or, if it is dead by then, looks again).
    fn publish(
        &mut self,
        published: &SlotCell<Block<T>>,
        file: Arc<File<T>>,
        #[cfg(any(test, feature = "mutants"))] mutant: Mutant,
    ) -> (u32, Option<Arc<Block<T>>>) {
        if let Some(b) = &self.block {
            if (self.filled as usize) < b.len() {
                let at = self.filled;
                #[cfg(any(test, feature = "mutants"))]
                if mutant == Mutant::NameBeforeFill {
                    b.set_current(at);
                }
                b.fill(at, file);
                b.set_current(at);
                self.filled += 1;
                return (at, None);
            }
        }
        let len = match &self.block {
            Some(b) => (b.len() * 2).min(MAX_CELLS),
            None => 1,
        };
        let new = Arc::new(Block::new(len, file));
        #[cfg(any(test, feature = "mutants"))]
        if mutant == Mutant::UnpublishOnReplace {
            if let Some(b) = &self.block {
                b.set_current(NONE);
            }
        }
        Publish::store(published, Some(Arc::clone(&new)));
        self.filled = 1;
        (0, self.block.replace(new))
    }

    /// The slot as seen from outside, with its file's memory; `None` when
    /// free.
    fn entry(&self) -> Option<(Slot, Arc<File<T>>)> {
        match &self.state {
            State::Free => None,
            State::Larval(f) => Some((Slot::Larval { serial: f.serial() }, Arc::clone(f))),
            State::Installed { file, cloexec, .. } => Some((
                Slot::Installed {
                    serial: file.serial(),
                    cloexec: *cloexec,
                },
                Arc::clone(file),
            )),
        }
    }
}

/// What the writer lock guards.
struct Writer<T> {
    /// One per slot of the made chunks: `capacity_of(chunks)` of them.
    slots: Vec<WSlot<T>>,
    chunks: usize,
    map: Bitmap,
    /// OpenBSD's `fd_freefile`: every slot below it is used.
    freefile: u32,
}

impl<T> Writer<T> {
    /// Grows the writer's slots to the end of the chunk holding `i`
    /// (`fdexpand`, without the copy; the chunk itself is made when one
    /// of its slots is first published). Precondition: `i < limit`, so the
    /// directory has its chunk.
    fn expand(&mut self, i: usize) {
        if i < self.slots.len() {
            return;
        }
        let (k, _) = locate(i);
        self.chunks = k + 1;
        let cap = capacity_of(self.chunks);
        // The writer's own arrays grow by doubling like any Vec (amortized
        // O(1) a slot); what readers see is never copied.
        self.slots.resize_with(cap, || WSlot::FREE);
        self.map.grow(cap);
    }

    /// Finds and marks used the lowest free slot `>= want` below `limit`
    /// (OpenBSD `fdalloc`). The caller sets the slot at once.
    ///
    /// Errors: `EMFILE`.
    fn alloc(&mut self, want: usize, limit: u32) -> Result<usize, Errno> {
        let start = want.max(self.freefile as usize);
        let i = self.map.first_free_from(start);
        if i >= limit as usize {
            return Err(Errno::EMFILE);
        }
        self.expand(i);
        self.map.set(i);
        if want <= self.freefile as usize {
            // Every slot below `i` is used: the hint may move up to it.
            self.freefile = i as u32;
        }
        Ok(i)
    }

    /// Frees slot `i` (OpenBSD `fd_unused`) and returns what it held.
    /// The caller unpublishes it.
    fn clear(&mut self, i: usize) -> State<T> {
        let old = std::mem::replace(&mut self.slots[i].state, State::Free);
        self.map.clear(i);
        if i < self.freefile as usize {
            self.freefile = i as u32;
        }
        old
    }

    /// The file installed at `fd`, if any.
    fn installed(&self, fd: Fd) -> Option<&Arc<File<T>>> {
        match self.slots.get(fd.index()).map(|s| &s.state) {
            Some(State::Installed { file, .. }) => Some(file),
            _ => None,
        }
    }
}

/// An install that failed: why, and the reference it was given, handed
/// back to the caller (a bare count in an `Arc`).
pub(crate) type Refused<T> = (Errno, Arc<File<T>>);

/// Slot references taken out of a table, each with its number.
pub(crate) type SlotRefs<T> = Vec<(Fd, Arc<File<T>>)>;

/// Whether slot `i` is larval, under the lock.
fn is_larval<T>(w: &Writer<T>, i: usize) -> bool {
    matches!(w.slots.get(i).map(|s| &s.state), Some(State::Larval(_)))
}

/// One slot, as seen from outside (a snapshot taken under the lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Free,
    Larval { serial: u64 },
    Installed { serial: u64, cloexec: bool },
}

/// A copied table's files as the copy found them (the field `base`):
/// written once, before any thread sees the table, then only read.
enum Base<T> {
    /// Slot `i`'s file at `i` (fork's copy; empty for a table that is no
    /// copy).
    Slots(Box<[Option<Arc<File<T>>>]>),
    /// Files by index in one array that every table of a system's snapshot
    /// shares, and each slot's index in it ([`NO_FILE`] for none): a
    /// snapshot takes one reference on the array a table, not one on a
    /// file a slot.
    Shared {
        files: SharedFiles<T>,
        at: Box<[u32]>,
    },
}

/// Files by index, for every table of a system's snapshot to name its
/// files in ([`Filedesc::snapshot`]). (A boxed slice: loom's `Arc` holds
/// no unsized value.)
pub(crate) type SharedFiles<T> = Arc<Box<[Option<Arc<File<T>>>]>>;

/// What a table is copied for (see `Filedesc::copy_with`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Copying {
    /// fork(2): another process's table.
    Process,
    /// A copy of the whole system (the sequential world's snapshot).
    System,
}

/// A slot that a [`Base::Shared`] names no file for.
pub(crate) const NO_FILE: u32 = u32::MAX;

impl<T> Base<T> {
    /// The file slot `i` had when the table was copied.
    fn get(&self, i: usize) -> Option<&Arc<File<T>>> {
        match self {
            Base::Slots(files) => files.get(i)?.as_ref(),
            Base::Shared { files, at } => files.get(*at.get(i)? as usize)?.as_ref(),
        }
    }

    /// How many slots it covers.
    fn len(&self) -> usize {
        match self {
            Base::Slots(files) => files.len(),
            Base::Shared { at, .. } => at.len(),
        }
    }
}

/// A descriptor table several threads use at once. Share it with
/// `Arc<Filedesc<T>>`; `T` is what a file is (the table does not look).
pub struct Filedesc<T> {
    dir: Box<[OnceCell<Chunk<T>>]>,
    base: Base<T>,
    writer: Mutex<Writer<T>>,
    limit: u32,
    #[cfg(any(test, feature = "mutants"))]
    mutant: Mutant,
}

impl<T> Default for Filedesc<T> {
    fn default() -> Self {
        Filedesc::new(NR_OPEN)
    }
}

impl<T> Filedesc<T> {
    /// An empty table whose descriptors are below `limit`.
    pub fn new(limit: u32) -> Filedesc<T> {
        let mut n = 0;
        while capacity_of(n) < limit as usize {
            n += 1;
        }
        Filedesc {
            dir: (0..n).map(|_| OnceCell::default()).collect(),
            base: Base::Slots(Box::new([])),
            writer: Mutex::new(Writer {
                slots: Vec::new(),
                chunks: 0,
                map: Bitmap::default(),
                freefile: 0,
            }),
            limit,
            #[cfg(any(test, feature = "mutants"))]
            mutant: Mutant::None,
        }
    }

    /// A table carrying a planted bug (see `mutant`).
    #[cfg(any(test, feature = "mutants"))]
    pub(crate) fn with_mutant(limit: u32, mutant: Mutant) -> Filedesc<T> {
        let mut t = Filedesc::new(limit);
        t.mutant = mutant;
        t
    }

    /// The bug the table carries (see `crate::mutant`).
    #[cfg(any(test, feature = "mutants"))]
    pub(crate) fn mutant(&self) -> Mutant {
        self.mutant
    }

    /// The highest descriptor number plus one.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// How many chunks of published slots are made (a test's window on
    /// when they are made).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn made_chunks(&self) -> usize {
        self.dir
            .iter()
            .filter(|c| PublishOnce::get(*c).is_some())
            .count()
    }

    /// Slots the table has made so far.
    pub fn capacity(&self) -> usize {
        self.lock().slots.len()
    }

    fn lock(&self) -> MutexGuard<'_, Writer<T>> {
        // Poison means a writer panicked on a broken invariant, maybe half
        // way through a change: going on would report a second, confusing
        // violation, unless this thread is unwinding from the first.
        self.writer.lock().unwrap_or_else(|e| {
            if !std::thread::panicking() {
                panic!("descriptor table lock poisoned: a writer panicked");
            }
            e.into_inner()
        })
    }

    /// fd_getfile(9), the shared path (Linux `__fget_files_rcu`): the file
    /// installed at `fd`, found without the table lock.
    ///
    /// Returns with a reference (FREF), released when the guard drops.
    /// Errors: `EBADF` for a number that is out of range, free or larval.
    ///
    /// It loads the slot's block, reads which cell is installed, and counts
    /// that cell's file unless its count is zero. The races it survives,
    /// each checked by a loom test:
    /// - `close` between the read of the cell and the count: the count may
    ///   have reached zero and closef's work run. `inc_not_zero` then
    ///   fails, and since a slot's reference is part of the count, the slot
    ///   no longer names the file: look again (Linux retries the same way).
    /// - `close` after the count: the descriptor is gone at once, the file
    ///   lives until this guard's FRELE, which runs closef's work.
    /// - `close` and a new file at the same number, in the same block or
    ///   in a new one: the lookup counts the old file (if it is still
    ///   alive), or looks again and finds the new one or `EBADF`.
    /// - `dup2` replacing the slot: the lookup returns the old file (if it
    ///   counted it in time) or the new one, each with a reference, never
    ///   `EBADF`: a replaced block keeps naming the old file.
    /// - `falloc` in the slot: a larval slot names no cell, so the lookup
    ///   fails with `EBADF` until `fdinsert` names the file's cell.
    /// - growth: a chunk is set once and never replaced, so there is no
    ///   stale table to recheck.
    /// - a slot of a copied table that has no block yet: the lookup counts
    ///   the file the copy's base names (see `getfile_copied`).
    ///
    /// Linux rechecks `fdt->fd[fd]` after taking the count, because a
    /// `struct file` is `SLAB_TYPESAFE_BY_RCU`: the memory it counted may
    /// by then be another file, and `fdt` may have been replaced. Here a
    /// cell is filled once and the guard keeps its block, so the cell read
    /// names, for good, the file that was installed when it was read, and
    /// a successful `inc_not_zero` counts that file: the lookup takes
    /// effect at the read (it is linearizable there). So there is no
    /// recheck; a generation word rechecked after the count would only
    /// cost a load and a branch on the path the 2.5x target measures.
    ///
    /// `inline(always)`: with the block step the compiler stopped inlining
    /// it, and the call (its `Result<FileRef>` returned through memory)
    /// cost 6 ns of a 24 ns lookup (measured).
    #[inline(always)]
    pub fn fd_getfile(&self, fd: Fd) -> Result<FileRef<T>, Errno> {
        let (k, off) = locate(fd.index());
        let Some(chunk) = PublishOnce::get(self.dir.get(k).ok_or(Errno::EBADF)?) else {
            return self.getfile_copied(fd);
        };
        let slot = &chunk[off];
        loop {
            let loaded = Publish::load(slot);
            let Some(block) = &*loaded else {
                return self.getfile_copied(fd);
            };
            let at = block.current();
            if at == NONE {
                return Err(Errno::EBADF);
            }
            let Some(file) = block.file(at) else {
                return Err(named_empty(fd, at, block));
            };
            #[cfg(any(test, feature = "mutants"))]
            match self.mutant {
                Mutant::FrefAfterZero => {
                    file.fref_unconditional();
                    return Ok(FileRef::new(loaded, at));
                }
                Mutant::FreleEarly => {
                    if !file.inc_not_zero() {
                        continue;
                    }
                    file.frele();
                    let mut r = FileRef::new(loaded, at);
                    r.counted = false;
                    return Ok(r);
                }
                _ => {}
            }
            if file.inc_not_zero() {
                return Ok(FileRef::new(loaded, at));
            }
            // The file died between the read and the count: its slot was
            // emptied or given another file first. Look again.
        }
    }

    /// fd_getfile for a slot that publishes no block: in a copied table,
    /// the file the copy found there, if it has not been written since;
    /// `EBADF` otherwise (a free slot of any table).
    ///
    /// The race: a writer that closes or replaces such a slot first
    /// publishes a block for it (a vacant one, or one naming the new file)
    /// and only then drops the slot's reference. So if the count is zero,
    /// the block is there, and the second look finds it; if the count was
    /// taken, the file was installed when the slot was read (the lookup
    /// takes effect there, as on the block path). Out of line: the block
    /// path stays small enough to inline.
    #[inline(never)]
    fn getfile_copied(&self, fd: Fd) -> Result<FileRef<T>, Errno> {
        let Some(file) = self.base.get(fd.index()) else {
            return Err(Errno::EBADF);
        };
        #[cfg(any(test, feature = "mutants"))]
        if self.mutant == Mutant::FrefAfterZero {
            file.fref_unconditional();
            return Ok(FileRef::from_base(Arc::clone(file)));
        }
        if file.inc_not_zero() {
            return Ok(FileRef::from_base(Arc::clone(file)));
        }
        // Dead: the slot has its block now (see above), and the look
        // through it decides; it never comes back here.
        if published(&self.dir, fd.index()).is_none() {
            broken(format_args!(
                "fd {fd}: the copied {file:?} is closed but the slot publishes no block"
            ));
            return Err(Errno::EBADF);
        }
        self.fd_getfile(fd)
    }

    /// fd_getfile's fast path for a table only the caller uses (Linux
    /// `__fget_light` when `files->count == 1`): the file installed at
    /// `fd`, borrowed without a count.
    ///
    /// Conditions, all proven by the `&mut self` borrow:
    /// - no other thread can reach the table, so none can close `fd` or
    ///   replace its file while the borrow lives (the table is not shared:
    ///   reach it through `Arc::get_mut`, as [`fdget`] does);
    /// - the caller cannot close `fd` either until it gives the borrow back;
    /// - the table cannot be shared (no `Arc` clone, no `fdshare`) while the
    ///   borrow lives, which is Linux's "no `clone(CLONE_FILES)` between
    ///   `fdget` and `fdput`".
    ///
    /// The slot's reference keeps the file alive meanwhile, whatever other
    /// threads do with their own references to it.
    ///
    /// Errors: `EBADF` for a number that is out of range, free or larval.
    #[inline]
    pub fn fd_getfile_unshared(&mut self, fd: Fd) -> Result<&File<T>, Errno> {
        let w = match self.writer.get_mut() {
            Ok(w) => w,
            Err(_) => panic!("descriptor table lock poisoned: a writer panicked"),
        };
        match w.slots.get(fd.index()).map(|s| &s.state) {
            Some(State::Installed { file, .. }) => Ok(file),
            _ => Err(Errno::EBADF),
        }
    }

    /// The arc-swap of slot `i`, for a writer: its chunk is made first if
    /// none of its slots was published yet. Precondition: the writer lock
    /// is held, and `i` is below the writer's slots.
    fn publishing(&self, i: usize) -> &SlotCell<Block<T>> {
        let (k, off) = locate(i);
        let cell = &self.dir[k];
        cell.set_with(|| (0..FIRST << k).map(|_| SlotCell::default()).collect());
        match PublishOnce::get(cell) {
            Some(chunk) => &chunk[off],
            None => unreachable!("chunk {k} was just made"),
        }
    }

    /// Unpublishes slot `i`'s installed file: the slot reads as free.
    /// Readers that named its cell before still find the file there, alive
    /// until the slot's reference is dropped (after this, by the caller).
    /// A copied table's slot not written since the copy publishes its
    /// file from the base: it gets a vacant block, which hides the base.
    /// Precondition: the writer lock is held (`w`).
    fn unpublish(&self, w: &mut Writer<T>, i: usize) {
        let slot = &mut w.slots[i];
        if let Some(b) = &slot.block {
            b.set_current(NONE);
            return;
        }
        if self.base.get(i).is_some() {
            #[cfg(any(test, feature = "mutants"))]
            if self.mutant == Mutant::CloseCopiedInPlace {
                return;
            }
            let vacant = Arc::new(Block::vacant(1));
            Publish::store(self.publishing(i), Some(Arc::clone(&vacant)));
            slot.block = Some(vacant);
        }
    }

    /// Installs `file` at slot `i` and publishes it (making its chunk if
    /// need be). Precondition: the writer lock is held (`w`), `i` is below
    /// the writer's slots, and `file` carries the slot's reference.
    ///
    /// Returns what the slot held (for the caller to release after the
    /// lock) and the block it replaced, if any (to drop after the lock).
    fn install(
        &self,
        w: &mut Writer<T>,
        i: usize,
        file: Arc<File<T>>,
        cloexec: bool,
    ) -> (State<T>, Option<Arc<Block<T>>>) {
        let slot = &mut w.slots[i];
        let (cell, old_block) = slot.publish(
            self.publishing(i),
            Arc::clone(&file),
            #[cfg(any(test, feature = "mutants"))]
            self.mutant,
        );
        let was = std::mem::replace(
            &mut slot.state,
            State::Installed {
                file,
                cell,
                cloexec,
            },
        );
        (was, old_block)
    }

    /// falloc(9): reserves the lowest free slot for a new file made of
    /// `data`, larval: the number is taken, the file not visible.
    ///
    /// Returns with a reference: count 2, one for the slot, one for the
    /// caller. Errors: `EMFILE`.
    pub fn falloc(&self, data: T) -> Result<Larval<'_, T>, Errno> {
        let (fd, file) = self.falloc_bare(data, self.limit)?;
        Ok(Larval {
            table: self,
            fd,
            file: Some(file),
        })
    }

    /// falloc for a caller that keeps its own books (the sequential
    /// [`crate::World`]), below `limit` (the caller's `RLIMIT_NOFILE`: a
    /// per-process limit, though the table may be shared).
    ///
    /// Returns with two references in a bare `Arc` (its own count is for
    /// the memory only): the slot's, and the caller's, to release with
    /// [`File::frele`] once [`Filedesc::insert_larval`] or
    /// [`Filedesc::fdremove_larval`] settled the slot. Errors: `EMFILE`.
    pub(crate) fn falloc_bare(&self, data: T, limit: u32) -> Result<(Fd, Arc<File<T>>), Errno> {
        // Made before the lock, so that the lock covers the slot only.
        let file = Arc::new(File::new(data));
        let mut w = self.lock();
        let i = w.alloc(0, limit.min(self.limit))?;
        w.slots[i].state = State::Larval(Arc::clone(&file));
        #[cfg(any(test, feature = "mutants"))]
        let mut replaced = None;
        #[cfg(any(test, feature = "mutants"))]
        if self.mutant == Mutant::PublishLarval {
            let slot = &mut w.slots[i];
            replaced = slot
                .publish(self.publishing(i), Arc::clone(&file), self.mutant)
                .1;
        }
        drop(w);
        #[cfg(any(test, feature = "mutants"))]
        drop(replaced);
        Ok((Fd::new(i as u32), file))
    }

    /// Publishes a larval file at its slot (OpenBSD `fdinsert`, Linux
    /// `fd_install`).
    pub(crate) fn insert_larval(&self, fd: Fd, file: &Arc<File<T>>, cloexec: bool) {
        let i = fd.index();
        let mut w = self.lock();
        let larval = match std::mem::replace(&mut w.slots[i].state, State::Free) {
            State::Larval(f) if Arc::ptr_eq(&f, file) => f,
            other => {
                w.slots[i].state = other;
                broken(format_args!(
                    "fdinsert: fd {fd} does not hold {file:?} larval"
                ));
                return;
            }
        };
        // The larval slot's reference becomes the installed slot's.
        let (_, old_block) = self.install(&mut w, i, larval, cloexec);
        drop(w);
        drop(old_block);
    }

    /// Frees a larval slot and drops both references, so that the call
    /// "never happened".
    fn abort_larval(&self, fd: Fd, file: Arc<File<T>>) {
        match self.fdremove_larval(fd, &file) {
            Some(slot) => {
                slot.frele();
            }
            None => broken(format_args!(
                "fdabort: fd {fd} does not hold {file:?} larval"
            )),
        }
        // The caller's reference: the last, so closef's work runs here.
        file.frele();
    }

    /// Frees `fd`'s slot if it holds `file` larval (the error path after
    /// `falloc`). Returns the slot's reference, for the caller to drop;
    /// `None`, leaving the slot alone, if it holds something else.
    pub(crate) fn fdremove_larval(&self, fd: Fd, file: &Arc<File<T>>) -> Option<Arc<File<T>>> {
        let mut w = self.lock();
        match w.slots.get(fd.index()).map(|s| &s.state) {
            Some(State::Larval(f)) if Arc::ptr_eq(f, file) => {}
            _ => return None,
        }
        let State::Larval(slot) = w.clear(fd.index()) else {
            unreachable!("slot {fd} was larval under the same lock")
        };
        #[cfg(any(test, feature = "mutants"))]
        if self.mutant == Mutant::PublishLarval {
            self.unpublish(&mut w, fd.index());
        }
        Some(slot)
    }

    /// fdrelease: closes `fd` (`close(2)`; Linux `close_fd`). The
    /// descriptor is gone when this returns; the file lives until its last
    /// FRELE, which may be another thread's.
    ///
    /// Errors: `EBADF` for a number that is free or larval (Linux and
    /// OpenBSD alike: a reserved number has no file to close).
    pub fn fdrelease(&self, fd: Fd) -> Result<(), Errno> {
        let file = self.fdremove(fd).ok_or(Errno::EBADF)?;
        // closef: the slot's reference, after the lock.
        file.frele();
        Ok(())
    }

    /// fdremove (OpenBSD): takes the installed file out of `fd`'s slot.
    /// The descriptor is gone for every thread when this returns.
    ///
    /// Returns the slot's reference, for the caller to drop after the
    /// lock (`fdrelease`, or the sequential model's closef); `None` for a
    /// number that is free, larval or out of range.
    pub(crate) fn fdremove(&self, fd: Fd) -> Option<Arc<File<T>>> {
        let mut w = self.lock();
        w.installed(fd)?;
        Some(self.remove_installed(&mut w, fd))
    }

    /// fdrelease's first step for a caller that keeps its own books: under
    /// one hold of the writer lock, FREF on the file installed at `fd`
    /// (`fd_getfile`) and `fdremove`, as OpenBSD's `fdrelease` does both
    /// under `fdplock`, so that nothing can happen to the slot in between.
    ///
    /// Returns with two references, for the caller's `closef`: the slot's,
    /// and the caller's new one; `None` for a number that is free, larval
    /// or out of range.
    pub(crate) fn fdremove_held(&self, fd: Fd) -> Option<Arc<File<T>>> {
        let mut w = self.lock();
        w.installed(fd)?.fref();
        Some(self.remove_installed(&mut w, fd))
    }

    /// Empties the installed slot `fd` and returns its reference.
    /// Precondition: the writer lock is held (`w`) and `fd` is installed.
    fn remove_installed(&self, w: &mut Writer<T>, fd: Fd) -> Arc<File<T>> {
        let i = fd.index();
        let State::Installed { file, .. } = w.clear(i) else {
            unreachable!("slot {i} was installed under the same lock")
        };
        // Unpublished before the slot's reference is dropped, so a
        // published file always has a count of at least 1. One plain store:
        // the block stays, for the slot's next install.
        self.unpublish(w, i);
        file
    }

    /// dup2: makes `new` name the file `old` names, closing what `new`
    /// held (Linux `do_dup2`, OpenBSD `dodup3`).
    ///
    /// Errors: `EBADF` if `old` is not installed or `new` is out of range;
    /// `EBUSY` if `new` is larval (Linux and OpenBSD both refuse: the
    /// caller of `falloc` will install there).
    pub fn dup2(&self, old: Fd, new: Fd) -> Result<Fd, Errno> {
        if new.get() >= self.limit {
            return Err(Errno::EBADF);
        }
        let n = new.index();
        let w = self.lock();
        let file = Arc::clone(w.installed(old).ok_or(Errno::EBADF)?);
        if old == new {
            return Ok(new);
        }
        if is_larval(&w, n) {
            return Err(Errno::EBUSY);
        }
        // The new slot's reference, taken from the old slot's.
        file.fref();
        if let Some(gone) = self.replace(w, n, file, false) {
            // closef of the replaced file, after the lock (Linux frees
            // `tofree` after `spin_unlock`).
            gone.frele();
        }
        Ok(new)
    }

    /// Installs `file` at `n`, whatever `n` held, under the lock `w`,
    /// which it releases. Precondition: `n` is below the limit and not
    /// larval, and `file` carries the slot's reference.
    ///
    /// Returns the replaced file's slot reference, for the caller to drop.
    fn replace(
        &self,
        mut w: MutexGuard<'_, Writer<T>>,
        n: usize,
        file: Arc<File<T>>,
        cloexec: bool,
    ) -> Option<Arc<File<T>>> {
        w.expand(n);
        let (was, old_block) = self.install(&mut w, n, file, cloexec);
        if matches!(was, State::Free) {
            w.map.set(n);
        }
        drop(w);
        // After the lock: dropping a block may free files' memory.
        drop(old_block);
        match was {
            State::Free => None,
            State::Installed { file, .. } => Some(file),
            State::Larval(f) => {
                broken(format_args!("replace: slot {n} was larval ({f:?})"));
                Some(f)
            }
        }
    }

    /// dup2 onto `new` for a caller that keeps its own books: installs
    /// `file` there, whatever it held (Linux `do_dup2` once it has the old
    /// file). Precondition: `new` is below the caller's limit.
    ///
    /// Consumes: `file`'s reference (the slot's now). Returns the replaced
    /// file's slot reference, for the caller's closef. Errors: `EBUSY` if
    /// `new` is larval, with the reference given back.
    pub(crate) fn install_at(
        &self,
        new: Fd,
        file: Arc<File<T>>,
        cloexec: bool,
    ) -> Result<Option<Arc<File<T>>>, Refused<T>> {
        if new.get() >= self.limit {
            return Err((Errno::EBADF, file));
        }
        let w = self.lock();
        if is_larval(&w, new.index()) {
            return Err((Errno::EBUSY, file));
        }
        Ok(self.replace(w, new.index(), file, cloexec))
    }

    /// dup, or `fcntl(F_DUPFD)` with `min`: the lowest free number `>= min`
    /// names the file `old` names (Linux `f_dupfd`).
    ///
    /// Errors: `EBADF` if `old` is not installed, then `EINVAL` if `min` is
    /// out of range, `EMFILE`.
    pub fn dup(&self, old: Fd, min: u32, cloexec: bool) -> Result<Fd, Errno> {
        let w = self.lock();
        let file = Arc::clone(w.installed(old).ok_or(Errno::EBADF)?);
        if min >= self.limit {
            return Err(Errno::EINVAL);
        }
        file.fref();
        self.place(w, file, min, self.limit, cloexec)
            .map_err(|(e, file)| {
                file.frele();
                e
            })
    }

    /// Installs `file` at the lowest free number `>= min` below `limit`,
    /// under the lock `w`, which it releases.
    ///
    /// Consumes: `file`'s reference (the slot's now). Errors: `EMFILE`,
    /// with the reference given back, for the caller to drop.
    fn place(
        &self,
        mut w: MutexGuard<'_, Writer<T>>,
        file: Arc<File<T>>,
        min: u32,
        limit: u32,
        cloexec: bool,
    ) -> Result<Fd, Refused<T>> {
        let i = match w.alloc(min as usize, limit.min(self.limit)) {
            Ok(i) => i,
            Err(e) => return Err((e, file)),
        };
        let (_, old_block) = self.install(&mut w, i, file, cloexec);
        drop(w);
        drop(old_block);
        Ok(Fd::new(i as u32))
    }

    /// [`Filedesc::fdinstall`] for a caller that keeps its own books, at
    /// the lowest free number `>= min` below `limit` (dup, F_DUPFD, or a
    /// file received over SCM_RIGHTS, with the caller's limit).
    ///
    /// Consumes: `file`'s reference (the slot's now). Errors: `EMFILE`,
    /// with the reference given back.
    pub(crate) fn install_lowest(
        &self,
        file: Arc<File<T>>,
        min: u32,
        limit: u32,
        cloexec: bool,
    ) -> Result<Fd, Refused<T>> {
        self.place(self.lock(), file, min, limit, cloexec)
    }

    /// Installs a reference the caller holds at the lowest free number: a
    /// file received from another table (SCM_RIGHTS; Linux `receive_fd`,
    /// OpenBSD `unp_externalize`).
    ///
    /// Consumes: the reference (it becomes the slot's; on error it is
    /// dropped, FRELE). Errors: `EMFILE`.
    pub fn fdinstall(&self, h: Hold<T>, cloexec: bool) -> Result<Fd, Errno> {
        self.install_lowest(h.into_table(), 0, self.limit, cloexec)
            .map_err(|(e, file)| {
                file.frele();
                e
            })
    }

    /// Sets or clears close-on-exec (`fcntl(F_SETFD)`).
    ///
    /// Errors: `EBADF` unless `fd` is installed.
    pub fn set_cloexec(&self, fd: Fd, on: bool) -> Result<(), Errno> {
        let mut w = self.lock();
        match w.slots.get_mut(fd.index()).map(|s| &mut s.state) {
            Some(State::Installed { cloexec, .. }) => {
                *cloexec = on;
                Ok(())
            }
            _ => Err(Errno::EBADF),
        }
    }

    /// fdcopy: a private copy for `fork`, with the installed slots and
    /// their close-on-exec bits, not the larval ones (Linux `dup_fd`); each
    /// copied slot takes a reference.
    pub fn fdcopy(&self) -> Filedesc<T> {
        self.copy_with(Copying::Process, |s| match s {
            State::Installed { file, cloexec, .. } => {
                file.fref();
                State::Installed {
                    file: Arc::clone(file),
                    cell: 0,
                    cloexec: *cloexec,
                }
            }
            State::Free | State::Larval(_) => State::Free,
        })
    }

    /// A copy of the table for a copy of the whole system (the sequential
    /// model's snapshot, see `World::clone`): every slot as it is, larval
    /// ones too, with the same bitmap and hint, naming for each of this
    /// table's files the one at `index` of it in `files`, which every
    /// table of the snapshot shares (the copy's base names files there
    /// too). Unlike [`Filedesc::fdcopy`] it takes no references: the
    /// caller copies the counts with the files ([`File::snapshot`]).
    /// Precondition: no other thread uses the table, and `files` has a
    /// file at the index of each of its files.
    pub(crate) fn snapshot(
        &self,
        files: &SharedFiles<T>,
        mut index: impl FnMut(&Arc<File<T>>) -> u32,
    ) -> Filedesc<T> {
        let mut at = Vec::with_capacity(self.lock().slots.len());
        let mut copy_of = |f: &Arc<File<T>>| {
            let i = index(f);
            match files.get(i as usize).and_then(Option::as_ref) {
                Some(copy) => (i, Arc::clone(copy)),
                None => panic!("snapshot: {f:?} has no copy at {i}"),
            }
        };
        let mut copy = self.copy_with(Copying::System, |s| match s {
            State::Installed { file, cloexec, .. } => {
                let (i, file) = copy_of(file);
                at.push(i);
                State::Installed {
                    file,
                    cell: 0,
                    cloexec: *cloexec,
                }
            }
            State::Larval(f) => {
                at.push(NO_FILE);
                State::Larval(copy_of(f).1)
            }
            State::Free => {
                at.push(NO_FILE);
                State::Free
            }
        });
        copy.base = Base::Shared {
            files: Arc::clone(files),
            at: at.into_boxed_slice(),
        };
        copy
    }

    /// A new table whose slot `i` is what `each` makes of this table's
    /// slot `i`: free, larval, or installed (the reference in the state is
    /// the new slot's). For fork's copy ([`Copying::Process`]) a larval
    /// slot becomes free, the base is one array of the installed files,
    /// and the first-free hint the first free slot; a system's copy
    /// ([`Copying::System`]) keeps every slot used or free as it is, with
    /// the bitmap and hint, and its caller gives the base.
    ///
    /// The copy publishes nothing slot by slot: its installed files go
    /// into its base, and its chunks are made when a slot in them is
    /// first written. A block and an arc-swap a slot cost more
    /// than the rest of the copy: an `ArcSwapOption`'s drop walks the debt
    /// slots of every thread that used arc-swap, even when it holds
    /// nothing. What it costs instead: the first close or replacement of a
    /// copied slot publishes a block (one arc-swap store), and a copied
    /// file's memory (not its life) stays in the base until the table goes.
    fn copy_with(
        &self,
        copying: Copying,
        mut each: impl FnMut(&State<T>) -> State<T>,
    ) -> Filedesc<T> {
        let slots_base = copying == Copying::Process;
        #[cfg(not(any(test, feature = "mutants")))]
        let mut copy = Filedesc::new(self.limit);
        #[cfg(any(test, feature = "mutants"))]
        let mut copy = Filedesc::with_mutant(self.limit, self.mutant);
        let w = self.lock();
        let mut base = Vec::with_capacity(if slots_base { w.slots.len() } else { 0 });
        let slots: Vec<WSlot<T>> = w
            .slots
            .iter()
            .map(|s| {
                let state = each(&s.state);
                if slots_base {
                    base.push(match &state {
                        State::Installed { file, .. } => Some(Arc::clone(file)),
                        State::Free | State::Larval(_) => None,
                    });
                }
                WSlot {
                    state,
                    block: None,
                    filled: 0,
                }
            })
            .collect();
        let chunks = w.chunks;
        let kept = (copying == Copying::System).then(|| (w.map.clone(), w.freefile));
        drop(w);
        copy.base = Base::Slots(base.into_boxed_slice());
        let cw = copy.owned_writer();
        if let Some((map, freefile)) = kept {
            cw.map = map;
            cw.freefile = freefile;
        } else {
            cw.map = Bitmap::with_capacity(slots.len());
            for (i, s) in slots.iter().enumerate() {
                if !matches!(s.state, State::Free) {
                    cw.map.set(i);
                }
            }
            cw.freefile = cw.map.first_free_from(0) as u32;
        }
        cw.slots = slots;
        cw.chunks = chunks;
        copy
    }

    /// The slot of `fd` (free when beyond the table).
    pub fn slot(&self, fd: Fd) -> Slot {
        self.entry(fd).map_or(Slot::Free, |(s, _)| s)
    }

    /// The slot of `fd` with its file's memory, if it is used.
    pub fn entry(&self, fd: Fd) -> Option<(Slot, Arc<File<T>>)> {
        self.lock().slots.get(fd.index()).and_then(WSlot::entry)
    }

    /// Every used slot, ascending, with its file's memory.
    pub fn used(&self) -> Vec<(Fd, Slot, Arc<File<T>>)> {
        let w = self.lock();
        w.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.entry().map(|(slot, f)| (Fd::new(i as u32), slot, f)))
            .collect()
    }

    /// Checks the table against itself: chunks, bitmap and hint against
    /// the slot states, and what each slot publishes against the writer's
    /// state (the same block; installed: the block names the cell holding
    /// the same file, alive; free or larval: the block names no cell).
    /// Precondition: quiescence, for the counts it reads.
    pub fn check(&self) -> Result<(), String> {
        let w = self.lock();
        if w.slots.len() != capacity_of(w.chunks) {
            return Err(format!(
                "{} slots for {} chunks ({} expected)",
                w.slots.len(),
                w.chunks,
                capacity_of(w.chunks)
            ));
        }
        if let Some(k) =
            (w.chunks..self.dir.len()).find(|&k| PublishOnce::get(&self.dir[k]).is_some())
        {
            return Err(format!(
                "chunk {k} is made but the writer has {} chunks",
                w.chunks
            ));
        }
        if self.base.len() > w.slots.len() {
            return Err(format!(
                "the base names {} slots of {}",
                self.base.len(),
                w.slots.len()
            ));
        }
        w.map.summary_agrees()?;
        if w.map.capacity() < w.slots.len() {
            return Err(format!(
                "bitmap holds {} bits for {} slots",
                w.map.capacity(),
                w.slots.len()
            ));
        }
        if let Some(i) = (w.slots.len()..w.map.capacity()).find(|&i| w.map.is_set(i)) {
            return Err(format!("bit {i} is set beyond the last slot"));
        }
        for (i, s) in w.slots.iter().enumerate() {
            let used = !matches!(s.state, State::Free);
            if used != w.map.is_set(i) {
                return Err(format!(
                    "slot {i} used: {used} but its bitmap bit is {}",
                    !used
                ));
            }
            if !used && (i as u32) < w.freefile {
                return Err(format!(
                    "slot {i} is free below the first-free hint {}",
                    w.freefile
                ));
            }
            let base = self.base.get(i);
            check_published(i, s, published(&self.dir, i).as_ref(), base)?;
            if let State::Larval(f) | State::Installed { file: f, .. } = &s.state {
                if f.is_closed() || f.count() == 0 {
                    return Err(format!("slot {i} names dead {f:?}"));
                }
            }
        }
        Ok(())
    }
}

/// What slot `i` publishes (`loaded`, or its file in the copy's `base`
/// when it has no block) against the writer's state `s`.
fn check_published<T>(
    i: usize,
    s: &WSlot<T>,
    loaded: Option<&Arc<Block<T>>>,
    base: Option<&Arc<File<T>>>,
) -> Result<(), String> {
    let block = match (&s.block, loaded) {
        (None, None) => {
            // The base publishes the slot: exactly its installed file.
            let named = match &s.state {
                State::Installed { file, .. } => Some(file),
                State::Free | State::Larval(_) => None,
            };
            return match (named, base) {
                (None, None) => Ok(()),
                (Some(f), Some(b)) if Arc::ptr_eq(f, b) => Ok(()),
                (f, b) => Err(format!(
                    "slot {i} has no block; it holds {:?} but the base names {:?}",
                    f.map(|f| &**f),
                    b.map(|b| &**b)
                )),
            };
        }
        (Some(b), Some(p)) if Arc::ptr_eq(b, p) => Some(b),
        (b, p) => {
            return Err(format!(
                "slot {i}: the writer's block is {b:?} but the slot publishes {p:?}"
            ))
        }
    };
    let (filled, current) = match block {
        Some(b) => {
            // A vacant block (a closed copied slot) has none filled.
            if s.filled as usize > b.len() {
                return Err(format!("slot {i}: {} cells filled of {b:?}", s.filled));
            }
            if let Some(c) = (0..b.len() as u32).find(|&c| b.file(c).is_some() != (c < s.filled)) {
                return Err(format!(
                    "slot {i}: cell {c} of {b:?} is filled: {} but the writer filled {}",
                    b.file(c).is_some(),
                    s.filled
                ));
            }
            (s.filled, b.current())
        }
        None => (0, NONE),
    };
    match &s.state {
        State::Installed { file, cell, .. } => {
            let named = block.and_then(|b| b.file(current));
            if current != *cell || !named.is_some_and(|f| Arc::ptr_eq(f, file)) {
                return Err(format!(
                    "slot {i} is installed in cell {cell} but publishes cell {current} ({:?})",
                    named.map(|f| &**f)
                ));
            }
        }
        State::Free | State::Larval(_) if current != NONE => {
            return Err(format!(
                "slot {i} is {} but publishes cell {current} of {filled} ({:?})",
                if matches!(s.state, State::Free) {
                    "free"
                } else {
                    "larval"
                },
                block.and_then(|b| b.file(current)).map(|f| &**f)
            ));
        }
        State::Free | State::Larval(_) => {}
    }
    Ok(())
}

impl<T> Filedesc<T> {
    /// The writer's state, for the table's owner, who holds it by `&mut`
    /// (no lock: no other thread can reach it). A poisoned lock is taken
    /// as it is: the owner is tearing the table down or copying into a
    /// table no one has used.
    fn owned_writer(&mut self) -> &mut Writer<T> {
        match self.writer.get_mut() {
            Ok(w) => w,
            Err(e) => e.into_inner(),
        }
    }

    /// fdfree's closes, for the table's last user, who owns it: no other
    /// thread can reach it, so no slot is unpublished one by one. Returns
    /// the installed files' slot references, ascending, for the caller's
    /// closef, and the larval slots' numbers (a caller that forgot one is
    /// broken); the table goes with them.
    pub(crate) fn into_installed(mut self) -> (SlotRefs<T>, Vec<Fd>) {
        let w = self.owned_writer();
        let (mut installed, mut larval) = (Vec::new(), Vec::new());
        for (i, s) in std::mem::take(&mut w.slots).into_iter().enumerate() {
            match s.state {
                State::Free => {}
                State::Installed { file, .. } => installed.push((Fd::new(i as u32), file)),
                State::Larval(_) => larval.push(Fd::new(i as u32)),
            }
        }
        (installed, larval)
    }

    /// Drops the table without FRELE on its files: for a whole system
    /// that goes away with its files (the sequential world's drop), where
    /// counting each one down would tell no one anything.
    pub(crate) fn discard(mut self) {
        self.owned_writer().slots.clear();
    }
}

impl<T> std::fmt::Debug for Filedesc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.used();
        f.debug_map()
            .entries(used.iter().map(|(fd, slot, _)| (fd.get(), slot)))
            .finish()
    }
}

impl<T> Drop for Filedesc<T> {
    /// fdfree, for the last user: closes every descriptor.
    fn drop(&mut self) {
        for (i, s) in std::mem::take(&mut self.owned_writer().slots)
            .into_iter()
            .enumerate()
        {
            match s.state {
                State::Free => {}
                State::Installed { file, .. } => {
                    file.frele();
                }
                // A Larval borrows the table, so only a forgotten one can be
                // here; its references are lost with it.
                State::Larval(f) => broken(format_args!("fdfree: fd {i} is larval ({f:?})")),
            }
        }
    }
}

/// A file between `falloc` and `fdinsert`: its slot is reserved and its
/// count is 2. Consumed by [`Larval::fdinsert`], or by [`Larval::fdabort`]
/// or a drop, which undo the `falloc`.
#[must_use = "a larval file must be inserted (fdinsert) or abandoned (fdabort)"]
pub struct Larval<'t, T> {
    table: &'t Filedesc<T>,
    fd: Fd,
    /// `Some` until consumed.
    file: Option<Arc<File<T>>>,
}

impl<T> Larval<'_, T> {
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// The file's memory (not a reference: its `Arc` does not count).
    pub fn arc(&self) -> &Arc<File<T>> {
        match &self.file {
            Some(f) => f,
            None => unreachable!("a Larval is Some until consumed"),
        }
    }

    /// fdinsert: makes the file visible at its slot, for every thread.
    ///
    /// Consumes: the larval file. Returns the caller's reference.
    pub fn fdinsert(mut self, cloexec: bool) -> Hold<T> {
        let file = match self.file.take() {
            Some(f) => f,
            None => unreachable!("a Larval is Some until consumed"),
        };
        self.table.insert_larval(self.fd, &file, cloexec);
        Hold::from_counted(file)
    }

    /// The error path after `falloc`: frees the slot and drops both
    /// references, so the call "never happened". Dropping does the same.
    ///
    /// Consumes: the larval file.
    pub fn fdabort(self) {
        drop(self);
    }
}

impl<T> Drop for Larval<'_, T> {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            self.table.abort_larval(self.fd, file);
        }
    }
}

impl<T> std::fmt::Debug for Larval<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Larval(fd {}, {:?})", self.fd, self.file)
    }
}

/// What [`fdget`] returns (Linux `struct fd`): a borrow when the table was
/// not shared, a counted reference when it was.
pub enum Fdget<'a, T> {
    /// The fast path's borrow: no count was taken, none is dropped.
    Borrowed(&'a File<T>),
    /// The shared path's FREF: dropping it is FRELE.
    Counted(FileRef<T>),
}

impl<T> std::ops::Deref for Fdget<'_, T> {
    type Target = File<T>;

    fn deref(&self) -> &File<T> {
        match self {
            Fdget::Borrowed(f) => f,
            Fdget::Counted(r) => r,
        }
    }
}

/// fdget (Linux `fdget` → `__fget_light`): the fast path when the caller
/// holds the table's only `Arc` (share count 1, checked the way Linux reads
/// `files->count`), the shared path otherwise.
///
/// Errors: `EBADF`, as [`Filedesc::fd_getfile`].
pub fn fdget<T>(table: &mut Arc<Filedesc<T>>, fd: Fd) -> Result<Fdget<'_, T>, Errno> {
    // Two loads decide, so that the shared path pays no more than them;
    // `get_mut` (a compare-and-swap) then runs once, on the fast path.
    if only_handle(table) {
        // No other `Arc` or `Weak` exists, and none can be made from the
        // one the caller holds by `&mut`: `get_mut` cannot fail.
        let t = Arc::get_mut(table).expect("the only Arc stays the only one");
        return t.fd_getfile_unshared(fd).map(Fdget::Borrowed);
    }
    table.fd_getfile(fd).map(Fdget::Counted)
}
