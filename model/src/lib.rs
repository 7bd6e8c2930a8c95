//! # fdlab-model: the BSD descriptor layer, in userspace
//!
//! A model of how a kernel keeps file descriptors, after OpenBSD's file(9)
//! and `kern_descrip.c`, with Linux's system-call results (Linux is the
//! reference the real backend compares it with).
//!
//! The crate is built in floors; a module imports only from its own floor
//! or those below (`tests/architecture.rs` checks it, and that no module
//! imports one that imports it back). From the bottom:
//!
//! 1. Leaves: [`violation`] (a broken invariant, for every checker),
//!    [`errno`], [`fd`] (the descriptor number), [`flags`], [`ids`] (the
//!    names of kernel objects), [`kind`] (the kinds of open file),
//!    [`limits`] (every bound, stated once), [`trace`] (the file(9) calls as
//!    values), [`bitmap`], [`slab`].
//! 2. [`mt`]: the concurrent descriptor table, checked with loom.
//! 3. Kernel objects, one module each: [`vnode`], [`pipe`], [`socket`],
//!    [`epoll`], [`eventfd`], [`pty`], [`waitq`] (wait queues, which
//!    tell epoll what happened); and [`call`], the calls as values.
//! 4. [`file`] (the open file and its count), [`filedesc`] (the table as
//!    the world uses it), [`proc`].
//! 5. [`world`]: the whole kernel state and its lookups.
//! 6. [`gc`] (the unix collector's marking and purging), [`topology`]
//!    (the canonical topology every backend prints) and [`poll`] (what each
//!    file is ready for, wake-ups, and epoll's ready lists).
//! 7. [`descrip`]: the file(9) API under its kernel names (`falloc`,
//!    `fdinsert`, `fd_getfile`, FREF/FRELE, `getsock`, `getvnode`,
//!    `fdrelease`, `closef`), its references, and the table operations
//!    behind fork, shared tables, unshare, exec and exit.
//! 8. [`deferred`]: the work Linux finishes later, and the states it may
//!    leave.
//! 9. [`invariants`]: what must hold between calls, as functions that fail
//!    with the values that broke them.
//! 10. [`sys`]: the language's system calls, and `World::call`, which
//!     dispatches a [`Call`] to them and checks every invariant.
//!
//! Floors 5 to 10 are each an `impl World` (a kernel's style: one state,
//! its layers in files); each file says at its top what it may call.
//!
//! ```
//! use fdlab_model::{Call, OFlags, Ret, World};
//!
//! let mut w = World::new();
//! let p = w.spawn("p1").unwrap();
//! let open = Call::Open { path: "notes.txt".into(), flags: OFlags::CREAT | OFlags::RDWR, mode: 0o644 };
//! assert_eq!(w.call(p, &open), Ok(Ret::int(0)));
//! assert_eq!(w.call(p, &Call::Dup2 { old: 0, new: 10 }), Ok(Ret::int(10)));
//! // Two descriptors, one open file with two references.
//! let t = w.topology();
//! assert_eq!(t.files.len(), 1);
//! assert_eq!(t.processes[0].fds.len(), 2);
//! fdlab_model::invariants::check_all(&w).unwrap();
//! ```

#![forbid(unsafe_code)]

pub mod bitmap;
pub mod call;
pub mod deferred;
pub mod descrip;
pub mod epoll;
pub mod errno;
pub mod eventfd;
pub mod fd;
pub mod file;
pub mod filedesc;
pub mod flags;
pub mod gc;
pub mod ids;
pub mod invariants;
pub mod jobctrl;
pub mod kind;
pub mod limits;
pub mod mt;
pub mod pipe;
pub mod poll;
pub mod proc;
pub mod pty;
pub mod slab;
pub mod socket;
pub mod sys;
pub mod topology;
pub mod trace;
pub mod uipc;
pub mod violation;
pub mod vnode;
pub mod waitq;
pub mod world;

#[cfg(any(test, feature = "mutants"))]
pub mod mutant;
#[cfg(test)]
mod tests;

pub use call::{Call, EpollOp, FcntlCmd, Outcome, Ret, Whence};
pub use descrip::{CallerRef, FileUse, LarvalFile, TableRef};
pub use errno::Errno;
pub use fd::Fd;
pub use flags::{Events, OFlags};
pub use ids::{FileId, Pid, PipeId, PtyId, SockId, VnodeId};
pub use socket::{SockFlags, SockType};
pub use topology::Topology;
pub use world::World;
