//! Observing live processes from outside, the way CRIU does: their tables
//! from `/proc/PID/fd` and `/proc/PID/fdinfo/N`, and what they share from
//! `kcmp(2)`. Nothing here knows of scenarios: the Linux backend observes
//! its helpers with it, and `fdlab inspect` any live process tree.
//!
//! - `procfs`: reading `/proc` (processes, descriptors, `fdinfo`).
//! - `classify`: the classes of equal tables and files, in few kcmp calls.
//! - `snapshot`: a set of processes observed at once, with warnings for
//!   what could not be read, and its canonical topology.
//! - `query`: single questions (is this the same file, does this epoll
//!   watch that one), for the language's `expect` statements.

pub mod classify;
pub mod procfs;
pub mod query;
pub mod snapshot;

pub use procfs::FdEntry;
pub use query::{list_fds, same_file, same_object, same_table, watches, ObserveError};
pub use snapshot::{
    observe, observe_with, Dirs, ObserveCost, Options, Reason, Registration, Since, Snapshot,
    Warning,
};
