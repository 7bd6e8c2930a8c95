//! # The fd tracker: more open files than the descriptor budget
//!
//! A long-running server (LTTng's relay daemon is the model:
//! `src/common/fd-tracker/` in lttng-tools) may keep thousands of trace
//! files "open" under a small descriptor budget. [`FdTracker`] hands out
//! suspendable handles ([`FsHandle`]): the tracker may close a handle's
//! descriptor whenever it is not in use, and reopens it, transparently, at
//! its last offset when the handle is used again. It also counts the
//! unsuspendable descriptors (sockets, pipes, epoll) that it cannot close,
//! so that the process stays within its budget.
//!
//! ```
//! use fdlab_tracker::{Directory, FdTracker};
//! use rustix::fs::{Mode, OFlags};
//!
//! # struct Rm(std::path::PathBuf);
//! # impl Drop for Rm { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
//! # let tmp = std::env::temp_dir().join(format!("fdlab-doc-tracker-{}", std::process::id()));
//! # std::fs::create_dir_all(&tmp).unwrap();
//! # let _rm = Rm(tmp.clone());
//! let tracker = FdTracker::new(tmp.join("unlinked"), 2).unwrap();
//! let dir = Directory::open(&tmp).unwrap();
//! let flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC;
//! let files: Vec<_> = (0..5)
//!     .map(|i| tracker.open(&dir, format!("trace-{i}"), flags, Mode::RUSR | Mode::WUSR).unwrap())
//!     .collect();
//! // Five files open on two descriptors. Round robin: every use is a miss.
//! for (i, f) in files.iter().enumerate() {
//!     let fd = f.get_fd().unwrap(); // the guard; dropping it is put_fd
//!     rustix::io::write(&fd, format!("file {i}").as_bytes()).unwrap();
//! }
//! let s = tracker.stats();
//! assert_eq!((s.active, s.suspended, s.uses, s.misses), (2, 3, 5, 5));
//! for f in files {
//!     f.unlink().unwrap(); // into the pool under `unlinked`, deleted at close
//!     f.close().unwrap();
//! }
//! tracker.destroy().unwrap(); // Err(Leak) if it still tracked something
//! assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "pool gone with its files");
//! ```
//!
//! The parts, one file each, from the bottom up:
//! - `report`: what the tracker reports ([`Stats`], [`HandleState`],
//!   [`ErrorKind`]), which its model reports too, so the two compare.
//! - `sys`: `FS_IOC_GETVERSION` and `name_to_handle_at(2)`, for the inode
//!   generation in a file's identity (unsafe, with `slot`).
//! - `slot`: a handle's lock-free state word and its descriptor (the fast
//!   path, and the unsafe code that keeps a descriptor's lifetime).
//! - `dir`: [`Directory`], what handles are opened relative to.
//! - `key`: a file's identity ([`FileKey`]: `st_dev`, `st_ino`, generation).
//! - `inode`: the files the handles hold, by identity, and the pool of
//!   unlinked files.
//! - `error`: [`TrackerError`] and its kinds.
//! - `books`: the books under the tracker's mutex, what handles share with
//!   the tracker, and the locking rules, stated there once.
//! - `invariants`: what holds between operations, as functions that fail.
//! - `handle`: [`FsHandle`], its guards, and the slow path of a get (restore).
//! - `tracker`: [`FdTracker`], the budget and the calls on it.
//! - [`model`]: the tracker's model, the oracle the tests hold it to: a
//!   pure state machine, which makes no system call.
//!
//! The policy (which handle is suspended, what a failure leaves behind) is
//! the model's, stated once in [`model`], and the tests check the two
//! against each other.

mod books;
mod dir;
mod error;
mod handle;
mod inode;
mod invariants;
mod key;
pub mod model;
mod report;
mod slot;
mod sys;
mod tracker;

pub use dir::Directory;
pub use error::{Leak, TrackerError, UnsuspendableError};
pub use handle::{ArcFdGuard, FdGuard, FsHandle};
pub use key::FileKey;
pub use report::{ErrorKind, HandleState, Stats};
pub use tracker::FdTracker;
