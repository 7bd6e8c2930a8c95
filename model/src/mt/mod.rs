//! # A descriptor table that threads share
//!
//! The man page's CONCURRENT ACCESS section is why FREF and FRELE exist:
//! several threads can share one descriptor table, so a file must not be
//! freed while another thread is still using it. This module is that table
//! as a real concurrent data structure, checked with loom.
//!
//! - [`file`]: the open file, its atomic `f_count`, and the references to
//!   it: [`FileRef`] (FREF from `fd_getfile`; its drop is FRELE) and
//!   [`Hold`] (a reference a caller keeps or sends). The last FRELE runs
//!   closef's work, exactly once.
//! - [`filedesc`]: the table. `fd_getfile` takes no lock: each slot
//!   publishes a block of write-once cells and the index of the installed
//!   one (the block through arc-swap, as Linux publishes `fdt->fd[]` under
//!   RCU, replaced only when full), in chunks that are never copied (a
//!   copied table names its files from one base array instead, until a
//!   slot is written);
//!   `falloc`, `fdinsert`, `fdrelease`, `dup`, `dup2`, `fdinstall`
//!   serialize on a writer lock, and publish with plain stores.
//!   [`Filedesc::fd_getfile_unshared`] is the fast path for a table one
//!   thread uses, [`fdget`] picks the path.
//! - [`invariants`]: what holds at quiescence, as functions that fail.
//! - `block`: what a slot publishes, and why; `publish`: the two
//!   publication points behind small traits, with loom stand-ins; `sync`:
//!   std or loom primitives.
//!
//! The sequential [`crate::World`] runs on this table: its processes hold
//! `Arc<Filedesc<FileId>>`s, and [`crate::filedesc`] says how it uses the
//! crate-internal calls that hand references over as bare counts, so that
//! it can run closef's work itself when [`File`]'s FRELE says it dropped
//! the last one.
//!
//! Model checking: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom
//! cargo test -p fdlab-model --release --lib mt::` (see the book's
//! "Threads sharing a table").
//!
//! ```
//! use std::sync::Arc;
//! use fdlab_model::mt::Filedesc;
//! use fdlab_model::{Errno, Fd};
//!
//! let table = Arc::new(Filedesc::<&str>::default());
//! let l = table.falloc("pipe").unwrap();
//! let fd = l.fd();
//! drop(l.fdinsert(false)); // the caller's reference: FRELE
//! let other = Arc::clone(&table); // fdshare: another thread's handle
//! let held = std::thread::spawn(move || other.fd_getfile(fd).unwrap().into_hold())
//!     .join()
//!     .unwrap();
//! table.fdrelease(fd).unwrap(); // the descriptor is gone at once...
//! assert_eq!(table.fd_getfile(fd).err(), Some(Errno::EBADF));
//! assert!(!held.is_closed()); // ...the file lives until the last FRELE
//! let file = Arc::clone(held.arc());
//! drop(held);
//! assert_eq!(file.closes(), 1);
//! ```

mod block;
pub mod file;
pub mod filedesc;
pub mod guard;
pub mod invariants;
mod publish;
pub(crate) mod sync;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(test)]
mod test_util;
#[cfg(all(test, not(loom)))]
mod tests;

pub use file::File;
pub use filedesc::{fdget, Fdget, Filedesc, Larval, Slot};
pub use guard::{FileRef, Hold};
