//! The open file (BSD `struct file`, Linux `struct file`): what a descriptor
//! names, shared by every descriptor that `dup`, `fork` or SCM_RIGHTS made from
//! the first one.
//!
//! Field legend (OpenBSD style; the model is sequential, so "guarded by" reads
//! "changed only by"):
//! - `handle` `[r]`: the file as the descriptor tables hold it
//!   ([`crate::mt::File`]), whose atomic count is `f_count`, changed only
//!   by the file(9) layer ([`crate::descrip`]: its references, its
//!   functions) and by the table's own operations. Its data is this file's
//!   [`FileId`].
//! - `callers` `[r]`: how many of those references callers hold right now
//!   (use references, caller references, the caller's half of a larval
//!   file); kept only so that the invariants can account for every
//!   reference.
//! - `flags`, `offset` `[f]`: status flags and the shared offset, changed by
//!   the system calls that operate on the file.
//!
//! Floor: above the kernel objects (a file names one) and the concurrent
//! table; below the world, which stores the files.

use crate::epoll::Epoll;
use crate::eventfd::Eventfd;
use crate::flags::OFlags;
use crate::ids::{FileId, PipeId, PtyId, SockId, VnodeId};
use crate::mt::sync::Arc;
use crate::pipe::PipeEnd;

/// What an open file refers to (BSD `f_type` + `f_data`).
#[derive(Debug, Clone)]
pub enum FileKind {
    /// Just allocated by `falloc`: no object yet (OpenBSD leaves `f_type` zero
    /// until the caller fills it in).
    Larval,
    /// A vnode: regular file, directory or device.
    Vnode(VnodeId),
    Pipe(PipeId, PipeEnd),
    /// A Unix-domain socket.
    Socket(SockId),
    /// An epoll instance owns its interest list.
    Epoll(Epoll),
    Eventfd(Eventfd),
    /// The master side of a pseudo-terminal (`/dev/ptmx`).
    PtyMaster(PtyId),
    /// The slave side of a pseudo-terminal (`/dev/pts/N`).
    PtySlave(PtyId),
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

    /// One registration of this file in epoll `ep` is gone.
    pub(crate) fn unwatch(&mut self, ep: FileId) {
        if let Some(i) = self.watched_by.iter().position(|&x| x == ep) {
            self.watched_by.swap_remove(i);
        }
    }

    pub fn is_socket(&self) -> bool {
        matches!(self.kind, FileKind::Socket(..))
    }
}
