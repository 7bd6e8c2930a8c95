//! Processes, as far as descriptors are concerned: a name, the table they use
//! (possibly shared), their `RLIMIT_NOFILE`, and their session and
//! controlling terminal.

use crate::filedesc::{Filedesc, Table, TableId};

/// Not `Clone`: a clone would share the table (`fdshare`), which a snapshot
/// of the world must not (see `World::clone`).
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    /// The process that made it (`fork`, `clone_files`), while it lives.
    pub parent: Option<String>,
    /// Linux `task->files`: the `Arc`'s strong count is the share count.
    pub(crate) table: Table,
    /// Soft `RLIMIT_NOFILE`: allocation stays below it. It is per process
    /// even when the table is shared, as on Linux.
    pub rlimit: u64,
    /// The session it is in: `None` for the one it was spawned in, which
    /// it does not lead; a number `setsid` made otherwise.
    pub session: Option<u64>,
    /// Whether it leads its session (and the process group `setsid` made
    /// with it).
    pub leader: bool,
    /// Its controlling terminal (`signal->tty`): the slave of this pty.
    pub ctty: Option<crate::ids::PtyId>,
}

impl Proc {
    /// The table the process uses, shared or not.
    pub fn table(&self) -> &Filedesc {
        &self.table
    }

    /// The identity of that table.
    pub fn table_id(&self) -> TableId {
        TableId::of(&self.table)
    }

    /// How many processes use that table (`fd_refcnt`).
    pub fn share_count(&self) -> usize {
        crate::mt::sync::Arc::strong_count(&self.table)
    }
}
