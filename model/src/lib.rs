//! # fdlab-model: the BSD descriptor layer, in userspace
//!
//! A model of how a kernel keeps file descriptors, after OpenBSD's file(9)
//! and `kern_descrip.c`, with Linux's system-call results (Linux is the
//! reference the real backend compares it with).
//!
//! - Kernel objects, one module each: [`file`] (the open file and its
//!   count), [`filedesc`] (a descriptor table: the concurrent one of [`mt`],
//!   which threads may share) and its [`bitmap`], [`proc`],
//!   [`vnode`], [`pipe`], [`socket`], [`epoll`], [`eventfd`], [`pty`].
//! - [`descrip`]: the file(9) API under its kernel names (`falloc`,
//!   `fdinsert`, `fd_getfile`, FREF/FRELE, `getsock`, `getvnode`,
//!   `fdrelease`, `closef`) and the table operations behind fork, shared
//!   tables, unshare, exec and exit.
//! - [`sys`]: the language's system calls on top of that API; [`call`]: the
//!   calls as values; [`gc`]: the unix garbage collector; [`deferred`]: the
//!   work Linux finishes later, and the states it may leave.
//! - [`invariants`]: what must hold between calls, as functions that fail
//!   with the values that broke them.
//! - [`topology`]: the canonical topology every backend prints.
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
pub mod invariants;
pub mod mt;
pub mod pipe;
pub mod proc;
pub mod pty;
pub mod slab;
pub mod socket;
pub mod sys;
pub mod topology;
pub mod violation;
pub mod vnode;
pub mod world;

#[cfg(test)]
mod mutant;
#[cfg(test)]
mod state_machine_tests;

pub use call::{Call, EpollOp, FcntlCmd, Outcome, Ret, Whence};
pub use errno::Errno;
pub use fd::Fd;
pub use file::{FileId, FileRef, Hold};
pub use flags::{Events, OFlags};
pub use proc::Pid;
pub use socket::SockType;
pub use topology::Topology;
pub use world::World;
