//! The open file (BSD `struct file`, Linux `struct file`): what a descriptor
//! names, shared by every descriptor that `dup`, `fork` or SCM_RIGHTS made from
//! the first one.
//!
//! Field legend (OpenBSD style; the model is sequential, so "guarded by" reads
//! "changed only by"):
//! - `handle` `[r]`: the file as the descriptor tables hold it
//!   ([`crate::mt::File`]), whose atomic count is `f_count`, changed only
//!   through the reference types below, [`crate::World`]'s file(9)
//!   functions and the table's own operations. Its data is this file's
//!   [`FileId`].
//! - `callers` `[r]`: how many of those references callers hold right now
//!   ([`FileRef`] guards, [`Hold`]s, the caller's half of a larval file); kept
//!   only so that the invariants can account for every reference.
//! - `flags`, `offset` `[f]`: status flags and the shared offset, changed by
//!   the system calls that operate on the file.

use crate::epoll::Epoll;
use crate::eventfd::Eventfd;
use crate::mt::sync::Arc;
use crate::pipe::{PipeEnd, PipeId};
use crate::socket::SockId;
use crate::vnode::VnodeId;
use crate::world::World;
use crate::OFlags;

/// Index of an open file in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub(crate) u32);

/// What an open file refers to (BSD `f_type` + `f_data`).
#[derive(Debug, Clone)]
pub enum FileKind {
    /// Just allocated by `falloc`: no object yet (OpenBSD leaves `f_type` zero
    /// until the caller fills it in).
    Larval,
    /// A vnode: regular file, directory or device.
    Vnode(VnodeId),
    Pipe(PipeId, PipeEnd),
    /// One end (0 or 1) of a Unix-domain socket pair.
    Socket(SockId, usize),
    /// An epoll instance owns its interest list.
    Epoll(Epoll),
    Eventfd(Eventfd),
    /// The master side of a pseudo-terminal (`/dev/ptmx`).
    PtyMaster(crate::pty::Pty),
}

/// An open file description.
///
/// Not `Clone`: a clone would share `handle`, and with it the count; a
/// snapshot makes a new handle ([`File::snapshot`]).
#[derive(Debug)]
pub struct File {
    /// Display number in traces: never reused, unlike the slab index.
    pub serial: u64,
    pub(crate) handle: Arc<crate::mt::File<FileId>>,
    pub callers: u32,
    pub flags: OFlags,
    pub offset: u64,
    pub kind: FileKind,
    /// The epoll files that hold a registration of this file (Linux `f_ep`),
    /// once per registration, so that the last close can remove them all.
    pub watched_by: Vec<FileId>,
}

impl File {
    /// A file `falloc` just made: `handle` is the table's, with count 2
    /// ("one for the table, one for the caller", falloc(9)).
    pub(crate) fn larval(serial: u64, handle: Arc<crate::mt::File<FileId>>) -> File {
        File {
            serial,
            handle,
            callers: 1,
            flags: OFlags::RDONLY,
            offset: 0,
            kind: FileKind::Larval,
            watched_by: Vec::new(),
        }
    }

    /// `f_count`: the references to the file, from table slots, callers,
    /// queues in flight and the collector.
    pub fn count(&self) -> u32 {
        self.handle.count()
    }

    /// The same file in a snapshot of the world, with a handle of its own
    /// (same count) that the snapshot's tables will name.
    pub(crate) fn snapshot(&self, id: FileId) -> File {
        File {
            serial: self.serial,
            handle: Arc::new(self.handle.snapshot(id)),
            callers: self.callers,
            flags: self.flags,
            offset: self.offset,
            kind: self.kind.clone(),
            watched_by: self.watched_by.clone(),
        }
    }

    /// Whether the file can be added to an epoll set (Linux `file_can_poll`).
    pub fn can_poll(&self) -> bool {
        !matches!(self.kind, FileKind::Vnode(_) | FileKind::Larval)
    }

    pub fn is_socket(&self) -> bool {
        matches!(self.kind, FileKind::Socket(..))
    }
}

/// A use reference taken by `fd_getfile` (FREF): while it lives the file
/// cannot be freed, whatever happens to the descriptor. Dropping it is FRELE.
///
/// It borrows the world mutably, so everything done while the file is in use
/// goes through [`FileRef::world`]; that is the price of making FRELE
/// automatic in a model whose files live inside the world.
#[must_use = "dropping a FileRef at once is FREF immediately followed by FRELE"]
pub struct FileRef<'w> {
    pub(crate) world: &'w mut World,
    pub(crate) file: FileId,
}

impl<'w> FileRef<'w> {
    pub fn id(&self) -> FileId {
        self.file
    }

    pub fn file(&self) -> &File {
        self.world.file(self.file)
    }

    pub fn file_mut(&mut self) -> &mut File {
        self.world.file_mut(self.file)
    }

    /// The world, for the work done while the file is held.
    pub fn world(&mut self) -> &mut World {
        self.world
    }

    /// Keeps the reference beyond the borrow: the caller now owns it as a
    /// [`Hold`] and must hand it on or release it.
    pub fn detach(self) -> Hold {
        let hold = Hold { file: self.file };
        std::mem::forget(self);
        hold
    }
}

impl Drop for FileRef<'_> {
    fn drop(&mut self) {
        self.world.frele(Hold { file: self.file });
    }
}

/// A counted reference that a caller owns, not tied to a borrow.
///
/// Consumes: [`World::frele`] (FRELE), [`World::closef`], installing it in a
/// slot (the reference becomes the table's) or queueing it on a socket (it
/// becomes a reference in flight).
#[must_use = "a Hold is a counted reference: release it with World::frele or hand it on"]
#[derive(Debug)]
pub struct Hold {
    pub(crate) file: FileId,
}

impl Hold {
    pub fn id(&self) -> FileId {
        self.file
    }
}

/// A table's reference to a file, taken out of its slot by `fdremove` and
/// not yet dropped. Consumed by [`World::closef`].
#[must_use = "the table's reference must be dropped with World::closef"]
#[derive(Debug)]
pub struct TableRef {
    pub(crate) file: FileId,
}
