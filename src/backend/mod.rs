//! Backends run scenarios: the model (here) and, later, real Linux processes.
//! The interpreter in [`crate::run`] drives any of them through [`Backend`].

mod linux;
mod model;

use fdlab_model::{Call, Outcome, Topology};

pub use linux::{helper_path, LinuxBackend};
pub use model::ModelBackend;

/// Makes a fresh backend, or says why it cannot.
pub type MakeBackend = fn() -> Result<Box<dyn Backend>, BackendError>;

fn model() -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(ModelBackend::new()))
}

fn linux() -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(LinuxBackend::new(&helper_path())?))
}

/// Every backend there is, by name, in the order `fdlab check` shows them.
pub const ALL: &[(&str, MakeBackend)] = &[("model", model), ("linux", linux)];

/// A fresh backend called `name`.
///
/// Errors: no backend has that name, or it cannot start.
pub fn by_name(name: &str) -> Result<Box<dyn Backend>, BackendError> {
    match ALL.iter().find(|(n, _)| *n == name) {
        Some((_, make)) => make(),
        None => Err(BackendError::UnknownBackend(name.to_string())),
    }
}

/// Why a backend could not do what it was asked (as opposed to a call that
/// failed with an errno, which is a result).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unknown process `{0}`")]
    UnknownProcess(String),
    #[error("unknown backend `{0}`")]
    UnknownBackend(String),
    #[error("process name `{0}` is already used")]
    NameInUse(String),
    /// The real backend could not do something: names the process and what
    /// it was doing.
    #[error("{proc}: {what}: {detail}")]
    Linux {
        proc: String,
        what: String,
        detail: String,
    },
}

/// How two descriptors relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRelation {
    Same,
    Differs,
    /// The first (0) or second (1) descriptor is not open.
    NotOpen(usize),
}

/// Whether an epoll set has a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchRelation {
    Watches,
    DoesNot,
    NotEpoll,
    /// The epoll (0) or target (1) descriptor is not open.
    NotOpen(usize),
}

/// Something that runs scenario processes and can be asked about them.
pub trait Backend {
    /// `model`, `linux`.
    fn name(&self) -> &'static str;
    /// `spawn NAME [stdio]`.
    fn spawn(&mut self, name: &str, stdio: bool) -> Result<(), BackendError>;
    /// Runs `call` as process `proc`.
    fn call(&mut self, proc: &str, call: &Call) -> Result<Outcome, BackendError>;
    /// `expect P:FD same|differs Q:FD2`.
    fn file_relation(
        &mut self,
        a: (&str, i32),
        b: (&str, i32),
    ) -> Result<FileRelation, BackendError>;
    /// `expect P shares|apart Q`.
    fn same_table(&mut self, a: &str, b: &str) -> Result<bool, BackendError>;
    /// `expect P fds ...`: the open descriptors, ascending.
    fn open_fds(&mut self, proc: &str) -> Result<Vec<i32>, BackendError>;
    /// `expect P:EPFD watches Q:FD as N`.
    fn watches(
        &mut self,
        ep: (&str, i32),
        target: (&str, i32),
        as_fd: i32,
    ) -> Result<WatchRelation, BackendError>;
    /// The canonical topology now.
    fn topology(&mut self) -> Result<Topology, BackendError>;
    /// The other states this backend may equally be in now, because the
    /// kernel finishes some work later, from a work queue (the unix garbage
    /// collector, a pty's echo): each as a backend of its own. `None` if
    /// there are too many to follow. A backend that is in one state (Linux,
    /// or the model doing the work at once) has none.
    fn later_states(&self) -> Option<Vec<Box<dyn Backend>>> {
        Some(Vec::new())
    }
    /// A description of the state, equal for two backends in the same
    /// state, for telling apart the states `later_states` gives.
    fn state_key(&self) -> Option<String> {
        None
    }
    /// What observing has cost so far (Linux: kcmp calls, descriptors read).
    fn cost(&self) -> crate::linux::observe::Cost {
        crate::linux::observe::Cost::default()
    }
    /// Starts recording what the backend does underneath each call.
    fn set_tracing(&mut self, _on: bool) {}
    /// What it did underneath since the last call (the model: file(9) calls).
    fn take_trace(&mut self) -> Vec<fdlab_model::trace::TraceEvent> {
        Vec::new()
    }
}
