//! Restoring a tree, per process: the [`program::Program`] each process
//! runs, and the [`exec::Executor`] that runs it against a small kernel
//! interface ([`exec::Sys`]). The Linux helpers implement that interface
//! with real system calls (`backend::linux::restore`), the model with its
//! world (`model`): one engine, two kernels. Planning a restore from an
//! image, and driving the processes, is `tools::restore`.

pub mod exec;
pub mod model;
pub mod program;
