//! The backends: what runs a scenario. The model (`fdlab-model`'s
//! `World`), and real Linux processes, in one room (`linux`: the backend,
//! its helper processes, their control channel, the system calls on both
//! sides, and the observation of live processes from `/proc` and `kcmp`).
//! The tools drive any of them through [`Backend`]. `restore` is the restore
//! engine each process runs, on either kernel.

pub mod api;
pub mod linux;
pub mod model;
pub mod registry;
pub mod restore;

pub use api::{Backend, BackendError, Cost, FileRelation, WatchRelation};
pub use linux::backend::{helper_path, LinuxBackend};
pub use model::ModelBackend;
pub use registry::{by_name, MakeBackend, ALL};
