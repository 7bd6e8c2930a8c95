//! The descriptor table (BSD `struct filedesc`, Linux `struct files_struct`).
//!
//! Field legend:
//! - `slots` `[t]`: one entry per descriptor number, free, larval or
//!   installed, with the close-on-exec bit (UF_EXCLOSE) of installed ones.
//! - `map` `[t]`: the two-level bitmap of used slots (larval or installed).
//! - `freefile` `[t]`: OpenBSD's `fd_freefile` hint; every slot below it is
//!   used, so a search for a free slot may start there.
//! - `refcnt` `[p]`: how many processes use this table (`fd_refcnt`): more
//!   than one after `clone(CLONE_FILES)` / `fdshare`.
//!
//! `[t]` changes only through this module's methods; `[p]` only by the
//! process operations in `descrip`.
//!
//! The slots are a plain `Vec`, not a persistent vector: `benches/model.rs`
//! measures both, and the `Vec` wins the lookup and allocation paths that the
//! issue's targets name, while a fork must touch every slot anyway to take a
//! reference on its file.

use crate::bitmap::Bitmap;
use crate::errno::Errno;
use crate::file::FileId;
use crate::Fd;

/// Index of a descriptor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub(crate) u32);

/// The state of one descriptor number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slot {
    #[default]
    Free,
    /// Reserved by `falloc`: the number is taken, but the file is not visible
    /// to `fd_getfile` until `fdinsert` (Linux: `fd_is_open` with a NULL file).
    Larval(FileId),
    Installed {
        file: FileId,
        cloexec: bool,
    },
}

/// A descriptor table.
#[derive(Debug, Clone)]
pub struct Filedesc {
    slots: Vec<Slot>,
    map: Bitmap,
    freefile: u32,
    pub(crate) refcnt: u32,
}

/// Slots a new table starts with (Linux `NR_OPEN_DEFAULT`).
const NDFILE: usize = 64;

impl Default for Filedesc {
    fn default() -> Self {
        Filedesc {
            slots: vec![Slot::Free; NDFILE],
            map: Bitmap::with_capacity(NDFILE),
            freefile: 0,
            refcnt: 1,
        }
    }
}

impl Filedesc {
    /// The slot of `fd` (free when beyond the table).
    pub fn slot(&self, fd: Fd) -> Slot {
        self.slots.get(fd.index()).copied().unwrap_or(Slot::Free)
    }

    /// The installed file at `fd`, the lookup behind `fd_getfile`. Larval
    /// slots are invisible here.
    #[inline]
    pub fn installed(&self, fd: Fd) -> Option<FileId> {
        match self.slots.get(fd.index()) {
            Some(Slot::Installed { file, .. }) => Some(*file),
            _ => None,
        }
    }

    /// How many processes share this table.
    pub fn refcnt(&self) -> u32 {
        self.refcnt
    }

    /// The first-free hint.
    pub fn freefile(&self) -> u32 {
        self.freefile
    }

    /// Slots the table has room for now.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Grows the table so that `fd` has a slot (`fdexpand`: doubling).
    fn expand(&mut self, fd: usize) {
        if fd >= self.slots.len() {
            let n = (fd + 1).next_power_of_two().max(NDFILE);
            self.slots.resize(n, Slot::Free);
            self.map.grow(n);
        }
    }

    /// Finds and marks used the lowest free slot `>= want` below `limit`
    /// (OpenBSD `fdalloc`). The slot is left `Free` in `slots`: the caller
    /// makes it larval or installs a file at once.
    ///
    /// Errors: `EMFILE` when every slot from `want` to `limit` is used.
    pub fn alloc(&mut self, want: u32, limit: u64) -> Result<Fd, Errno> {
        let start = want.max(self.freefile) as usize;
        let i = self.map.first_free_from(start);
        if i as u64 >= limit {
            return Err(Errno::EMFILE);
        }
        self.expand(i);
        self.map.set(i);
        if want <= self.freefile {
            // Every slot below `i` is used: the hint may move up to it.
            self.freefile = i as u32;
        }
        Ok(Fd::new(i as u32))
    }

    /// Marks `fd` used, growing the table (for `dup2` onto a chosen number).
    pub(crate) fn reserve(&mut self, fd: Fd) {
        self.expand(fd.index());
        self.map.set(fd.index());
    }

    /// Sets the slot of a number that `alloc` or `reserve` marked used.
    pub(crate) fn set(&mut self, fd: Fd, slot: Slot) {
        debug_assert!(self.map.is_set(fd.index()), "slot {fd} set without alloc");
        self.slots[fd.index()] = slot;
    }

    /// Frees `fd`'s slot (OpenBSD `fd_unused`) and returns what it held.
    pub(crate) fn clear(&mut self, fd: Fd) -> Slot {
        let old = std::mem::take(&mut self.slots[fd.index()]);
        self.map.clear(fd.index());
        if fd.get() < self.freefile {
            self.freefile = fd.get();
        }
        old
    }

    /// Sets or clears close-on-exec on an installed slot.
    pub(crate) fn set_cloexec(&mut self, fd: Fd, on: bool) {
        if let Some(Slot::Installed { cloexec, .. }) = self.slots.get_mut(fd.index()) {
            *cloexec = on;
        }
    }

    /// Every used descriptor and its slot, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (Fd, Slot)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s, Slot::Free))
            .map(|(i, s)| (Fd::new(i as u32), *s))
    }

    /// The installed descriptors in `lo..=hi`, ascending.
    pub fn installed_in(&self, lo: u32, hi: u32) -> Vec<(Fd, FileId)> {
        let end = (hi as usize).saturating_add(1).min(self.slots.len());
        let start = (lo as usize).min(end);
        self.slots[start..end]
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Installed { file, .. } => Some((Fd::new((start + i) as u32), *file)),
                _ => None,
            })
            .collect()
    }

    /// A copy for `fork` (`fdcopy`): installed slots with their close-on-exec
    /// bits, no larval ones (Linux `dup_fd` clears an open bit whose file is
    /// still NULL), shared by one process. The caller takes the references.
    pub(crate) fn copy(&self) -> Filedesc {
        let mut t = self.clone();
        for i in 0..t.slots.len() {
            if let Slot::Larval(_) = t.slots[i] {
                t.clear(Fd::new(i as u32));
            }
        }
        t.refcnt = 1;
        t
    }

    /// Checks the bitmap and the hint against the slots.
    pub fn check(&self) -> Result<(), String> {
        self.map.summary_agrees()?;
        if self.map.capacity() < self.slots.len() {
            return Err(format!(
                "bitmap holds {} bits for {} slots",
                self.map.capacity(),
                self.slots.len()
            ));
        }
        for (i, s) in self.slots.iter().enumerate() {
            let used = !matches!(s, Slot::Free);
            if used != self.map.is_set(i) {
                return Err(format!("slot {i} is {s:?} but its bitmap bit is {}", !used));
            }
            if !used && (i as u32) < self.freefile {
                return Err(format!(
                    "slot {i} is free below the first-free hint {}",
                    self.freefile
                ));
            }
        }
        if let Some(i) = (self.slots.len()..self.map.capacity()).find(|&i| self.map.is_set(i)) {
            return Err(format!("bit {i} is set beyond the last slot"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_lowest_and_hint() {
        let mut t = Filedesc::default();
        let f = FileId(0);
        for want in 0..5 {
            let fd = t.alloc(0, 1000).unwrap();
            assert_eq!(fd.get(), want);
            t.set(
                fd,
                Slot::Installed {
                    file: f,
                    cloexec: false,
                },
            );
        }
        t.clear(Fd::new(1));
        assert_eq!(t.freefile(), 1);
        assert_eq!(t.alloc(0, 1000).unwrap().get(), 1);
        t.set(
            Fd::new(1),
            Slot::Installed {
                file: f,
                cloexec: false,
            },
        );
        assert_eq!(t.alloc(3, 1000).unwrap().get(), 5);
        t.set(Fd::new(5), Slot::Larval(f));
        assert_eq!(t.alloc(0, 6), Err(Errno::EMFILE));
        t.check().unwrap();
    }

    #[test]
    fn grows_past_the_first_chunk() {
        let mut t = Filedesc::default();
        t.reserve(Fd::new(500));
        t.set(Fd::new(500), Slot::Larval(FileId(0)));
        assert!(t.capacity() >= 501);
        assert_eq!(t.alloc(500, 1000).unwrap().get(), 501);
        t.set(Fd::new(501), Slot::Larval(FileId(0)));
        t.check().unwrap();
        assert_eq!(t.copy().iter().count(), 0, "larval slots are not copied");
    }
}
