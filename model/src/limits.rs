//! The numbers that bound descriptors, each stated once: the kernel's
//! (Linux's defaults, which the model copies) and the harness's.

/// Linux's default `fs.nr_open`: the ceiling of every `RLIMIT_NOFILE`, and
/// the size a new table is made for.
pub const NR_OPEN: u32 = 1 << 20;

/// The most descriptors one SCM_RIGHTS message may carry (Linux
/// `SCM_MAX_FD`).
pub const SCM_MAX_FD: usize = 253;

/// Descriptors from here up belong to the real backend's harness (the
/// helpers' control channels): scenarios use the numbers below it, and
/// observation of a scenario's processes looks only there.
pub const HARNESS_FD: u32 = 10_000;

/// The `RLIMIT_NOFILE` a scenario process starts with. A scenario may raise
/// it up to [`HARNESS_FD`], never into the harness's descriptors.
pub const DEFAULT_RLIMIT: u64 = 1000;

/// The most events a scenario's `epoll_wait` may ask for: a backend gives
/// the kernel room for that many (Linux itself takes up to
/// `EP_MAX_EVENTS`).
pub const MAX_EPOLL_EVENTS: i32 = 100_000;
