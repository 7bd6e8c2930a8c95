//! Processes, as far as descriptors are concerned: a name, the table they use
//! (possibly shared), and their `RLIMIT_NOFILE`.

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
