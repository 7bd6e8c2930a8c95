//! What a tracker reports: its statistics, the state of a handle, and the
//! kind of an error. The real tracker and its model both report these
//! types, so the tests compare the two with `==`.

use serde::Serialize;

/// The statistics a tracker keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Stats {
    /// Gets, hits and misses, failed or not.
    pub uses: u64,
    /// Gets that found their handle suspended.
    pub misses: u64,
    /// Failed restores and failed suspensions.
    pub errors: u64,
    /// Suspendable handles that hold a descriptor.
    pub active: usize,
    /// Suspendable handles without a descriptor.
    pub suspended: usize,
    /// Unsuspendable descriptors counted.
    pub unsuspendable: usize,
    pub capacity: usize,
}

/// Why a tracker operation failed, as the real tracker and its model report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ErrorKind {
    /// `EMFILE`: room cannot be made under the capacity.
    NoRoom,
    /// `EEXIST`: a descriptor is already tracked.
    AlreadyTracked,
    /// `EINVAL`: a descriptor is not tracked.
    NotTracked,
    /// `EINVAL`: the arguments or the callback's answer do not fit.
    Invalid,
    /// `ENOENT`: the file is not there (open without `O_CREAT`, or gone).
    NotFound,
    /// `ENOENT`: the file was unlinked through the tracker already.
    AlreadyUnlinked,
    /// `ESTALE`: the name now leads to another inode.
    Replaced,
    /// The unlinked-file pool cannot take a file: it is gone, not a
    /// directory, on another file system than the file, or not writable.
    /// The file itself is fine (the real tracker only: the model's pool
    /// never fails).
    Pool,
    /// The caller's callback failed; its own error is passed through.
    Callback,
    /// A call that the real API's types rule out (a put without a get,
    /// closing a handle in use, I/O through a handle not in use, writing
    /// through a read-only one). The model refuses it.
    Misuse,
    /// Any other system-call failure (the real tracker only).
    Os(i32),
}

/// Whether a handle holds a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum HandleState {
    /// It holds one; `users` guards are alive.
    Active { users: u32 },
    /// Its descriptor was closed; it holds the offset to restore.
    Suspended,
}
