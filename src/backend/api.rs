//! What every backend is: the [`Backend`] trait the tools drive, what a
//! backend can fail with, and what running on it costs. It names no
//! backend's own types.

use std::time::Duration;

use fdlab_model::trace::TraceEvent;
use fdlab_model::{Call, Outcome, Topology};

/// What running and observing processes cost a backend, in calls and in
/// time. Backends that run nothing for real (the model) cost nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    /// Comparisons of two descriptors', or two processes', kernel objects
    /// made to find what is shared (Linux: `kcmp(2)` calls).
    pub comparisons: u64,
    /// Descriptors observed.
    pub descriptors: u64,
    /// Of them, those known unchanged since the observation before and
    /// taken from it rather than read again.
    pub carried: u64,
    /// The comparisons that comparing all pairs of the same descriptors
    /// would have made.
    pub all_pairs: u64,
    /// Time spent creating processes (spawn, fork, clone, exec).
    pub spawn: Duration,
    /// Time spent in control round trips for other calls.
    pub calls: Duration,
    /// Time spent observing.
    pub observe: Duration,
    /// Of `observe`, the time in comparisons.
    pub compare: Duration,
}

impl Cost {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Cost) {
        self.comparisons += other.comparisons;
        self.descriptors += other.descriptors;
        self.carried += other.carried;
        self.all_pairs += other.all_pairs;
        self.spawn += other.spawn;
        self.calls += other.calls;
        self.observe += other.observe;
        self.compare += other.compare;
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
    /// The hard descriptor limit is too low for the helpers' descriptors.
    #[error("the hard RLIMIT_NOFILE is {hard}, and the Linux backend keeps its own descriptors from {floor} up: it needs at least {need} (as root: ulimit -Hn {need})")]
    Limit { hard: u64, floor: u32, need: u64 },
    /// A real process of the backend could not do what it was asked:
    /// which process, what it was doing, and why.
    #[error("{proc}: {doing}: {cause}")]
    Process {
        proc: String,
        doing: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
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
    /// `expect P:FD sameobj Q:FD2`: whether both reach one object (inode),
    /// through the same open file or not (`Same`: one object).
    fn object_relation(
        &mut self,
        a: (&str, i32),
        b: (&str, i32),
    ) -> Result<FileRelation, BackendError>;
    /// `expect P:EPFD watches Q:FD as N`; with `as_fd` `None`, under any
    /// number (`expect P:EPFD ignores Q:FD` is the opposite).
    fn watches(
        &mut self,
        ep: (&str, i32),
        target: (&str, i32),
        as_fd: Option<i32>,
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
    /// What running and observing have cost so far.
    fn cost(&self) -> Cost {
        Cost::default()
    }
    /// Starts recording what the backend does underneath each call.
    fn set_tracing(&mut self, _on: bool) {}
    /// What it did underneath since the last call (the model: file(9) calls).
    fn take_trace(&mut self) -> Vec<TraceEvent> {
        Vec::new()
    }
    /// The model's world, for a backend that is the model.
    fn world(&self) -> Option<&fdlab_model::World> {
        None
    }
    /// The backend as itself, for a tool that needs more than this trait
    /// offers of one backend (the comparison's settle point dumps Linux).
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
}
