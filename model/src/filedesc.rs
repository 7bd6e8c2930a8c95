//! The descriptor table (BSD `struct filedesc`, Linux `struct files_struct`)
//! as the sequential model uses it: the concurrent table of [`crate::mt`],
//! whose files' data is the [`FileId`] that names them in the [`World`].
//!
//! One table, two users. Threads use [`mt::Filedesc`] directly, with the
//! references as RAII guards; the `World` uses the same table through its
//! crate-internal calls (`falloc_bare`, `fdremove`, `fdremove_held`,
//! `install_lowest`, `install_at`, ...), which hand references over as bare
//! counts, so that
//! the `World` can run closef's work itself (tearing down pipes, sockets
//! and epoll registrations, which only it knows) when FRELE says a count
//! reached zero. The file's count, `f_count`, is the table file's atomic
//! count in both cases.
//!
//! A process holds its table as an `Arc` (Linux `task->files`): a clone of
//! the `Arc` is `fdshare`, its strong count the share count, and the fast
//! path of `fd_getfile` ([`mt::fdget`]) is taken exactly when a process is
//! the table's only user.
//!
//! This module adds what the `World` asks of a table in its own terms:
//! slots naming [`FileId`]s.
//!
//! Floor: with the open file and the process, above the concurrent table.
//!
//! [`World`]: crate::World

use crate::fd::Fd;
use crate::ids::FileId;
use crate::mt;

/// A descriptor table of the model.
pub type Filedesc = mt::Filedesc<FileId>;

/// A table as a process holds it (Linux `task->files`).
pub type Table = mt::sync::Arc<Filedesc>;

/// The identity of a table: processes that share a table have the same.
/// It is the table's address, so it means nothing across snapshots or runs
/// (the topology numbers tables by their first process instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub(crate) usize);

impl TableId {
    /// The identity of the table `t`.
    pub fn of(t: &Table) -> TableId {
        TableId(mt::sync::Arc::as_ptr(t) as usize)
    }
}

/// The state of one descriptor number, with the file it names (the
/// concurrent table's [`mt::Slot`] names it by its serial instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileSlot {
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

/// The model's slot for a slot of the table and its file.
fn named(slot: mt::Slot, file: &mt::sync::Arc<mt::File<FileId>>) -> FileSlot {
    let file = *file.data();
    match slot {
        mt::Slot::Free => FileSlot::Free,
        mt::Slot::Larval { .. } => FileSlot::Larval(file),
        mt::Slot::Installed { cloexec, .. } => FileSlot::Installed { file, cloexec },
    }
}

impl mt::Filedesc<FileId> {
    /// The slot of `fd` (free when beyond the table).
    pub fn file_slot(&self, fd: Fd) -> FileSlot {
        self.entry(fd).map_or(FileSlot::Free, |(s, f)| named(s, &f))
    }

    /// The installed file at `fd`, without taking a reference (for
    /// observers: the generator, the model backend, `fcntl(F_GETFD)`).
    pub fn installed(&self, fd: Fd) -> Option<FileId> {
        match self.file_slot(fd) {
            FileSlot::Installed { file, .. } => Some(file),
            _ => None,
        }
    }

    /// Every used descriptor and its slot, in ascending order.
    pub fn slots(&self) -> Vec<(Fd, FileSlot)> {
        self.used()
            .into_iter()
            .map(|(fd, s, f)| (fd, named(s, &f)))
            .collect()
    }

    /// The installed descriptors and their files, ascending.
    pub fn installed_all(&self) -> Vec<(Fd, FileId, bool)> {
        self.slots()
            .into_iter()
            .filter_map(|(fd, s)| match s {
                FileSlot::Installed { file, cloexec } => Some((fd, file, cloexec)),
                _ => None,
            })
            .collect()
    }
}
