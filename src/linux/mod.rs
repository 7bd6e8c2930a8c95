//! The real Linux backend: scenario processes are real processes (helpers,
//! the hidden `fdlab __helper` mode of the binary), every call is the real
//! system call, and what they share is observed from outside with `/proc`
//! and `kcmp(2)`.

pub mod ctl;
pub mod helper;
pub mod kernel;
pub mod observe;
pub mod sys;
