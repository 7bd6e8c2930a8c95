//! The real Linux backend: scenario processes are real processes (helpers,
//! the hidden `fdlab __helper` mode of the binary), every call is the real
//! system call, and what they share is observed from outside with `/proc`
//! and `kcmp(2)`.
//!
//! The room, from the bottom: `sys` (the runner's raw system calls:
//! `kcmp`, `pidfd_open`, `close_range`, `sock_diag`) and `kernel` (the
//! helper's); `observe` (reading any live process tree, which knows nothing
//! of scenarios); `freeze` (stopping processes while they are observed, and
//! always resuming them); `ctl` (the control channel); `helper` (the helper
//! processes); `restore` (the restore engine in a helper, on real system
//! calls); `backend` (the [`super::Backend`] on top of them); `capture`
//! (reading a live tree for a dump, with a helper that peeks and `tee`s).

pub mod backend;
pub mod capture;
pub mod ctl;
pub mod freeze;
pub mod helper;
pub mod kernel;
pub mod observe;
pub mod restore;
pub mod sys;
