//! Processes, as far as descriptors are concerned: a name, the table they use
//! (possibly shared), and their `RLIMIT_NOFILE`.

use crate::filedesc::TableId;

/// Index of a process in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pid(pub(crate) u32);

/// The limit a scenario process starts with: descriptors from 1000 up belong
/// to the harness of the real backend, so scenarios never reach them.
pub const DEFAULT_RLIMIT: u64 = 1000;

#[derive(Debug, Clone)]
pub struct Proc {
    pub name: String,
    pub table: TableId,
    /// Soft `RLIMIT_NOFILE`: allocation stays below it. It is per process
    /// even when the table is shared, as on Linux.
    pub rlimit: u64,
}
