//! Scenarios on real Linux processes.
//!
//! A run owns a sandbox directory and a *nursery* helper in its own session.
//! Scenario processes are started by the nursery, so every one of them, and
//! every orphan, ends up its descendant: when the runner is done (or gone,
//! after a panic or Ctrl-C closes its channel) the nursery ends them all and
//! removes the sandbox. Dropping the backend waits for that and checks it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fdlab_model::limits::HARNESS_FD;
use fdlab_model::{Call, Errno, Outcome, Topology};

use super::ctl::{self, Channel, Reply, Request};
use super::observe::{self, ObserveCost, ObserveError};
use super::sys;
use crate::backend::api::{Backend, BackendError, Cost, FileRelation, WatchRelation};
use crate::backend::restore::exec::{Failed, Stats};
use crate::backend::restore::program::{FileId, Program};
use crate::lang::print::call_text;

/// How long any wait on a helper may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The helper binary: `$FDLAB_HELPER`, this program if it is `fdlab`, or
/// `fdlab` beside it (tests run from `target/*/deps/`).
pub fn helper_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FDLAB_HELPER") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("fdlab"));
    if exe.file_name().is_some_and(|n| n == "fdlab") {
        return exe;
    }
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for cand in [dir.join("fdlab"), dir.join("../fdlab")] {
        if cand.is_file() {
            return cand;
        }
    }
    exe
}

struct Proc {
    pid: i32,
    ctl: Channel<OwnedFd>,
    pidfd: OwnedFd,
}

/// Runs scenarios on real processes.
pub struct LinuxBackend {
    /// `$FDLAB_STEP_DELAY_MS`, a testing aid: a pause before every call, so
    /// that a test can interrupt a run in the middle.
    delay: Duration,
    /// How long the kernel's deferred work may take before a settle point
    /// calls what it has not done a divergence.
    settle: Duration,
    sandbox: PathBuf,
    /// The descriptors of a scenario process that observation looks at:
    /// those below the helpers' own, which start at the floor.
    fds: std::ops::Range<i32>,
    nursery: Option<Nursery>,
    procs: BTreeMap<String, Proc>,
    /// Socket files that a restore binds outside the sandbox: they go
    /// with the tree.
    socket_files: Vec<PathBuf>,
    cost: Cell<Cost>,
    observed: Cell<ObserveCost>,
    /// The processes' `/proc` folders, kept from one observation to the
    /// next.
    dirs: RefCell<observe::Dirs>,
    /// Whether a process of the tree may have a controlling terminal: once
    /// a terminal was seen open in one, or a restore's request ran (which
    /// can take a terminal and close its descriptor within one request).
    /// Until then observation does not read controlling terminals
    /// ([`observe::Options::ctty`]): the nursery has none, and a process
    /// takes one only through a descriptor of it.
    terminals: Cell<bool>,
    /// The last snapshot, the base of the next ([`observe::Since`]).
    last: Option<observe::Snapshot>,
    /// The processes that made a call since the last snapshot, or are
    /// new since, and how many calls were made.
    ran: Vec<i32>,
    calls: u32,
    /// Something ran since the last snapshot that `ran` does not tell (a
    /// restore's or a dump's request): the next snapshot reads everything.
    untracked: Cell<bool>,
    /// Check every snapshot that carries tables from the last one against
    /// one that reads everything (`$FDLAB_CHECK_OBSERVATION`, or
    /// [`LinuxBackend::check_observation`]).
    check: bool,
}

/// A run's nursery: its channel, and how to wait for its end.
struct Nursery {
    pid: i32,
    chan: Channel<OwnedFd>,
    /// Readable once it has exited.
    pidfd: Option<OwnedFd>,
    /// The process, when this process spawned it (a fork server's nursery
    /// is the server's to reap).
    child: Option<Child>,
}

/// Starts the helper with `args` after `__helper`, its channel on standard
/// input, in `dir`.
///
/// The helper moves the channel to the floor itself, makes its own session
/// and raises its own soft limit: with nothing to run between fork and
/// exec, the standard library spawns it with posix_spawn (a vfork), so
/// this process, whose threads run other cases meanwhile, is never copied.
/// A fork would mark all its memory copy-on-write, and every thread's next
/// write would fault and flush the other core's TLB.
fn spawn_helper(
    helper: &Path,
    args: &[&std::ffi::OsStr],
    dir: &Path,
    chan: Channel<OwnedFd>,
) -> Result<Child, BackendError> {
    let mut cmd = Command::new(helper);
    cmd.arg("__helper")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::from(chan.into_fd()))
        .stdout(Stdio::null());
    cmd.spawn()
        .map_err(|e| linux_err("-", format!("starting the helper {}", helper.display()), e))
}

/// A helper that makes runs' nurseries by forking itself: one `exec` of
/// the helper for many runs, instead of one a run (the dynamic loading
/// and start of a large binary, about a millisecond of CPU). It ends when
/// it is dropped; the nurseries it made end with their runs.
pub struct ForkServer {
    child: Child,
    /// `None` once dropped.
    chan: Option<Channel<OwnedFd>>,
}

impl ForkServer {
    /// Starts a server from `helper`.
    ///
    /// Errors: it cannot be started.
    pub fn start(helper: &Path) -> Result<ForkServer, BackendError> {
        let (mine, theirs) =
            ctl::pair().map_err(|e| linux_err("-", "creating the fork server's channel", e))?;
        // The nurseries it forks show its command line, which names the
        // runner the way their sandboxes do.
        let tag = format!("fdlab-run-{}-server", std::process::id());
        let floor = HARNESS_FD.to_string();
        let args = ["server", "--ctl-stdin", "--floor", &floor, "--runner", &tag];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let child = spawn_helper(helper, &args, &std::env::temp_dir(), theirs)?;
        Ok(ForkServer {
            child,
            chan: Some(mine),
        })
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // Its channel closes: it exits.
        self.chan = None;
        if let Ok(pidfd) = sys::pidfd_open(self.child.id() as i32) {
            let mut fds = [rustix::event::PollFd::new(
                &pidfd,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec::try_from(TIMEOUT).ok();
            let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// How long a settle point waits for Linux's deferred work by default:
/// far more than it was seen to take on a loaded machine (one 20 ms poll).
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(2);

/// How many `fdinfo` files a run keeps open between its snapshots, to
/// read again instead of opening: enough for a scenario's tables, few
/// beside a soft limit of 1,024 when several runs share a process.
const FDINFO_KEPT: usize = 128;

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Why a helper process, or the run around it, could not do what it was
/// asked.
#[derive(Debug, thiserror::Error)]
pub enum HelperFailure {
    #[error("the helper process died")]
    Died,
    #[error("the helper process died ({0})")]
    DiedWith(#[source] std::io::Error),
    #[error("{0} after {1:?}")]
    TimedOut(#[source] std::io::Error, Duration),
    /// What the helper itself reported.
    #[error("{0}")]
    Reported(String),
    #[error("unexpected answer {0}")]
    Unexpected(String),
    #[error("no channel came with the new process")]
    NoChannel,
    #[error("the new process failed to start: {0}")]
    StartFailed(Errno),
    #[error("the process did not end in time")]
    NoExit,
    #[error("the run has ended")]
    RunEnded,
    #[error("the nursery is gone")]
    NurseryGone,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Query(#[from] ObserveError),
    /// What a snapshot left out, which a scenario's processes never may.
    #[error("{0}")]
    Observe(observe::Warning),
    /// A snapshot that carried tables from the one before disagreed with
    /// one that read everything (see [`observe::Since`]).
    #[error(
        "a snapshot that read only what the last call may have changed disagrees with one \
         that read everything, at line {line} of the topology: `{partial}` against `{whole}`"
    )]
    PartialObservation {
        line: usize,
        partial: String,
        whole: String,
    },
}

impl From<rustix::io::Errno> for HelperFailure {
    fn from(e: rustix::io::Errno) -> HelperFailure {
        HelperFailure::Io(e.into())
    }
}

/// An observer's answer about two descriptors (`Err(i)`: the `i`-th is
/// not open) as a [`FileRelation`].
fn relation(r: Result<bool, usize>) -> FileRelation {
    match r {
        Ok(true) => FileRelation::Same,
        Ok(false) => FileRelation::Differs,
        Err(i) => FileRelation::NotOpen(i),
    }
}

pub(super) fn linux_err(
    proc: &str,
    doing: impl Into<String>,
    cause: impl Into<HelperFailure>,
) -> BackendError {
    BackendError::Process {
        proc: proc.to_string(),
        doing: doing.into(),
        cause: Box::new(cause.into()),
    }
}

impl LinuxBackend {
    /// Creates the sandbox and starts the nursery from `helper` (see
    /// [`helper_path`]).
    ///
    /// Errors: the sandbox or the nursery cannot be made.
    pub fn new(helper: &Path) -> Result<LinuxBackend, BackendError> {
        LinuxBackend::with_floor(helper, HARNESS_FD)
    }

    /// As [`LinuxBackend::new`], with the helpers' own descriptors at
    /// `floor` and above (`HARNESS_FD` for scenarios; a restore of higher
    /// descriptors asks for more).
    ///
    /// Errors: the sandbox or the nursery cannot be made.
    pub fn with_floor(helper: &Path, floor: u32) -> Result<LinuxBackend, BackendError> {
        let mut b = LinuxBackend::without_nursery(floor)?;
        let (mine, theirs) =
            ctl::pair().map_err(|e| linux_err("-", "creating the nursery's channel", e))?;
        let floor_arg = floor.to_string();
        let args = ["nursery", "--ctl-stdin", "--floor", &floor_arg, "--sandbox"];
        let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        args.push(b.sandbox.as_os_str());
        let child = spawn_helper(helper, &args, &b.sandbox, theirs)?;
        let pidfd = sys::pidfd_open(child.id() as i32).ok();
        b.nursery = Some(Nursery {
            pid: child.id() as i32,
            chan: mine,
            pidfd,
            child: Some(child),
        });
        Ok(b)
    }

    /// As [`LinuxBackend::with_floor`], with the nursery a fork of
    /// `server` rather than an `exec` of the helper.
    ///
    /// Errors: the sandbox cannot be made, or the server does not answer
    /// (make another).
    pub fn from_server(server: &ForkServer, floor: u32) -> Result<LinuxBackend, BackendError> {
        let mut b = LinuxBackend::without_nursery(floor)?;
        let req = Request::Nursery {
            floor,
            sandbox: b.sandbox.to_string_lossy().into_owned(),
        };
        let what = "making a nursery";
        let Some(chan) = &server.chan else {
            return Err(linux_err("-", what, HelperFailure::NurseryGone));
        };
        chan.send(&req, &[]).map_err(|e| linux_err("-", what, e))?;
        let reply = match chan.wait(None, TIMEOUT) {
            Ok(_) => chan.recv::<Reply>(),
            Err(e) => Err(e),
        };
        match reply {
            Ok(Some((Reply::Child { pid }, mut fds))) => {
                let Some(fd) = fds.pop() else {
                    return Err(linux_err("-", what, HelperFailure::NoChannel));
                };
                b.nursery = Some(Nursery {
                    pid,
                    chan: Channel::new(fd),
                    pidfd: sys::pidfd_open(pid).ok(),
                    child: None,
                });
                Ok(b)
            }
            Ok(Some((Reply::Fatal(m), _))) => Err(linux_err("-", what, HelperFailure::Reported(m))),
            Ok(Some((other, _))) => Err(linux_err(
                "-",
                what,
                HelperFailure::Unexpected(format!("{other:?}")),
            )),
            Ok(None) => Err(linux_err("-", what, HelperFailure::NurseryGone)),
            Err(e) => Err(linux_err("-", what, e)),
        }
    }

    /// A run with its sandbox made and no nursery yet.
    fn without_nursery(floor: u32) -> Result<LinuxBackend, BackendError> {
        // Room for every helper's channels above the floor.
        let need = u64::from(floor) + 64;
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(u64::MAX);
        if hard < need {
            return Err(BackendError::Limit { hard, floor, need });
        }
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let sandbox =
            std::env::temp_dir().join(format!("fdlab-run-{}-{n}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&sandbox)
            .map_err(|e| linux_err("-", format!("creating sandbox {}", sandbox.display()), e))?;
        // Canonical, so that /proc links compare with it.
        let sandbox = sandbox.canonicalize().unwrap_or(sandbox);
        let delay = std::env::var("FDLAB_STEP_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        Ok(LinuxBackend {
            delay,
            settle: SETTLE_DEADLINE,
            sandbox,
            fds: 0..floor as i32,
            nursery: None,
            procs: BTreeMap::new(),
            socket_files: Vec::new(),
            cost: Cell::new(Cost::default()),
            observed: Cell::new(ObserveCost::default()),
            dirs: RefCell::new(observe::Dirs::keeping(FDINFO_KEPT)),
            terminals: Cell::new(false),
            last: None,
            ran: Vec::new(),
            calls: 0,
            untracked: Cell::new(false),
            check: std::env::var_os("FDLAB_CHECK_OBSERVATION").is_some_and(|v| v != "0"),
        })
    }

    /// The pid of scenario process `name`, while it lives.
    pub fn pid_of(&self, name: &str) -> Option<i32> {
        self.procs.get(name).map(|p| p.pid)
    }

    /// Every live scenario process: its name and pid.
    pub fn processes(&self) -> Vec<(String, i32)> {
        self.procs
            .iter()
            .map(|(n, p)| (n.clone(), p.pid))
            .filter(|(n, _)| !n.starts_with("__"))
            .collect()
    }

    /// The descriptors observation looks at in each process: those below
    /// the floor.
    pub fn fds(&self) -> std::ops::Range<i32> {
        self.fds.clone()
    }

    /// How long a settle point waits for the kernel's deferred work
    /// (the unix collector runs from a work queue, usually within a few
    /// milliseconds).
    pub fn settle_deadline(&self) -> Duration {
        self.settle
    }

    /// Waits `d` instead of [`SETTLE_DEADLINE`] at settle points: shorter
    /// where a run expects to fail there many times (shrinking a planted
    /// bug's case).
    pub fn set_settle_deadline(&mut self, d: Duration) {
        self.settle = d;
    }

    /// The sandbox directory of this run.
    pub fn sandbox(&self) -> &Path {
        &self.sandbox
    }

    fn proc(&self, name: &str) -> Result<&Proc, BackendError> {
        self.procs
            .get(name)
            .ok_or_else(|| BackendError::UnknownProcess(name.to_string()))
    }

    fn pid(&self, name: &str) -> Result<i32, BackendError> {
        self.proc(name).map(|p| p.pid)
    }

    /// Waits for the next reply of `p` (named `name`, doing `what`).
    fn reply(name: &str, p: &Proc, what: &str) -> Result<(Reply, Vec<OwnedFd>), BackendError> {
        match p.ctl.wait(Some(p.pidfd.as_fd()), TIMEOUT) {
            Ok(true) => {}
            Ok(false) => return Err(linux_err(name, what, HelperFailure::Died)),
            Err(e) => return Err(linux_err(name, what, HelperFailure::TimedOut(e, TIMEOUT))),
        }
        match p.ctl.recv::<Reply>() {
            Ok(Some((Reply::Fatal(m), _))) => {
                Err(linux_err(name, what, HelperFailure::Reported(m)))
            }
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(linux_err(
                name,
                what,
                Self::why(p, std::io::ErrorKind::UnexpectedEof.into()),
            )),
            Err(e) => Err(linux_err(name, what, Self::why(p, e))),
        }
    }

    fn done(name: &str, p: &Proc, what: &str) -> Result<Outcome, BackendError> {
        match Self::reply(name, p, what)? {
            (Reply::Done(o), _) => Ok(o),
            (other, _) => Err(linux_err(
                name,
                what,
                HelperFailure::Unexpected(format!("{other:?}")),
            )),
        }
    }

    /// Takes in a new process whose channel came with `reply`, and waits
    /// until it is ready.
    fn adopt(
        &mut self,
        name: &str,
        reply: (Reply, Vec<OwnedFd>),
        what: &str,
    ) -> Result<(), BackendError> {
        let (Reply::Child { pid }, mut fds) = reply else {
            return Err(linux_err(
                name,
                what,
                HelperFailure::Unexpected(format!("{:?}", reply.0)),
            ));
        };
        let Some(fd) = fds.pop() else {
            return Err(linux_err(name, what, HelperFailure::NoChannel));
        };
        let pidfd = sys::pidfd_open(pid).map_err(|e| linux_err(name, "pidfd_open", e))?;
        // The number may have been another process's.
        self.dirs.borrow_mut().forget(pid);
        self.ran.push(pid);
        let p = Proc {
            pid,
            ctl: Channel::new(fd),
            pidfd,
        };
        match Self::done(name, &p, what)? {
            Ok(_) => {}
            Err(e) => return Err(linux_err(name, what, HelperFailure::StartFailed(e))),
        }
        self.procs.insert(name.to_string(), p);
        Ok(())
    }

    /// An I/O error on `p`'s channel, explained by its death if it died (a
    /// dying process closes its descriptors a moment before its pidfd says
    /// so: wait briefly).
    fn why(p: &Proc, e: std::io::Error) -> HelperFailure {
        let mut fds = [rustix::event::PollFd::new(
            &p.pidfd,
            rustix::event::PollFlags::IN,
        )];
        let brief = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        match rustix::event::poll(&mut fds, Some(&brief)) {
            Ok(n) if n > 0 => HelperFailure::DiedWith(e),
            _ => HelperFailure::Io(e),
        }
    }

    fn wait_gone(name: &str, p: &Proc) -> Result<(), BackendError> {
        let deadline = Instant::now() + TIMEOUT;
        let mut fds = [rustix::event::PollFd::new(
            &p.pidfd,
            rustix::event::PollFlags::IN,
        )];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(linux_err(name, "exit", HelperFailure::NoExit));
            }
            let ts = rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            };
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(n) if n > 0 => return Ok(()),
                Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(linux_err(name, "exit", e)),
            }
        }
    }

    /// Checks every later snapshot that carries tables from the one before
    /// against a snapshot that reads everything, and fails the run where
    /// they differ (for tests of [`observe::Since`]'s rules).
    pub fn check_observation(&mut self, on: bool) {
        self.check = on;
    }

    /// A snapshot of every scenario process, kept as the base of the next
    /// one. The helpers answer only when asked, so nothing may be left
    /// out: a warning is an error here.
    ///
    /// After at most one call, the tables nobody ran in are carried from
    /// the last snapshot ([`observe::Since`]).
    ///
    /// Errors: a process could not be observed; with
    /// [`LinuxBackend::check_observation`], the two ways to observe
    /// disagreed.
    pub fn snapshot(&mut self) -> Result<&observe::Snapshot, BackendError> {
        let pids: Vec<i32> = self.procs.values().map(|p| p.pid).collect();
        let opts = observe::Options {
            fds: self.fds.clone(),
            ctty: self.terminals.get(),
            all_sockets: false,
            ..observe::Options::default()
        };
        let before = self.last.take();
        let ran = std::mem::take(&mut self.ran);
        let calls = std::mem::replace(&mut self.calls, 0);
        let untracked = self.untracked.replace(false);
        let since = before
            .as_ref()
            .filter(|_| calls <= 1 && !untracked)
            .map(|before| observe::Since { before, ran: &ran });
        let mut s = observe::observe_with(&pids, &opts, self.dirs.get_mut(), since.as_ref());
        if let (Some(since), true) = (&since, self.check) {
            s = self.checked(s, since, &pids, &opts)?;
        }
        if !s.ctty.is_empty() || s.entries.iter().any(|e| e.may_be_terminal()) {
            self.terminals.set(true);
        }
        let mut c = self.observed.get();
        c.add(&s.cost);
        self.observed.set(c);
        match s.warnings.first() {
            None => Ok(self.last.insert(s)),
            Some(w) => {
                let name = self
                    .procs
                    .iter()
                    .find(|(_, p)| p.pid == w.pid)
                    .map_or_else(|| format!("pid {}", w.pid), |(n, _)| n.clone());
                Err(linux_err(
                    &name,
                    "observing",
                    HelperFailure::Observe(w.clone()),
                ))
            }
        }
    }

    fn observe_err(&self, e: ObserveError) -> BackendError {
        let name = self
            .procs
            .iter()
            .find(|(_, p)| p.pid == e.pid)
            .map_or_else(|| format!("pid {}", e.pid), |(n, _)| n.clone());
        linux_err(&name, "observing", e)
    }

    /// Ends the run: the nursery ends every process and removes the sandbox;
    /// this waits for it, and does both itself if the nursery does not.
    fn finish(&mut self) {
        // A process that called setsid left the nursery's process group,
        // which the nursery and the fallback below signal: end each one
        // through its pidfd (it would end when its channel closes, unless
        // it is wedged).
        for p in self.procs.values() {
            let _ = rustix::process::pidfd_send_signal(&p.pidfd, rustix::process::Signal::KILL);
        }
        self.procs.clear();
        if let Some(n) = self.nursery.take() {
            drop(n.chan);
            // Woken the moment it exits (its pidfd becomes readable).
            let mut exited = false;
            if let Some(pidfd) = &n.pidfd {
                let mut fds = [rustix::event::PollFd::new(
                    pidfd,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec::try_from(TIMEOUT).ok();
                exited = matches!(rustix::event::poll(&mut fds, timeout.as_ref()), Ok(n) if n > 0);
            }
            // A nursery that could not be opened at all was gone at once:
            // its number may be another's now, so nothing is signalled.
            if !exited && (n.pidfd.is_some() || n.child.is_some()) {
                // SAFETY: signals the nursery's process group (its pid, as
                // it called setsid); integer arguments.
                unsafe { libc::kill(-n.pid, libc::SIGKILL) };
                // And the nursery itself, should it not have made its
                // session yet.
                if let Some(fd) = &n.pidfd {
                    let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL);
                }
            }
            if let Some(mut child) = n.child {
                if !exited {
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.sandbox);
        for path in std::mem::take(&mut self.socket_files) {
            // Only a socket file: anything else there is not the tree's.
            let _ = super::kernel::unlink_socket(&path.to_string_lossy());
        }
    }

    /// Removes the socket files at `paths` when the tree ends, as its
    /// sandbox is: a restore binds its sockets' names under its root.
    pub fn remove_with_tree(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        self.socket_files.extend(paths);
    }
}

impl Drop for LinuxBackend {
    fn drop(&mut self) {
        self.finish();
    }
}

impl LinuxBackend {
    /// Adds the time since `t` to one of the cost's clocks.
    fn charge(&self, t: Instant, clock: impl FnOnce(&mut Cost) -> &mut Duration) {
        let mut c = self.cost.get();
        *clock(&mut c) += t.elapsed();
        self.cost.set(c);
    }

    fn spawn_inner(&mut self, name: &str, stdio: bool) -> Result<(), BackendError> {
        if self.procs.contains_key(name) {
            return Err(BackendError::NameInUse(name.to_string()));
        }
        let Some(Nursery { chan, .. }) = &self.nursery else {
            return Err(linux_err(name, "spawn", HelperFailure::RunEnded));
        };
        chan.send(&Request::Spawn { stdio }, &[])
            .map_err(|e| linux_err(name, "spawn", e))?;
        let reply = match chan.wait(None, TIMEOUT) {
            Ok(_) => chan.recv::<Reply>(),
            Err(e) => Err(e),
        };
        let reply = match reply {
            Ok(Some((Reply::Fatal(m), _))) => {
                return Err(linux_err(name, "spawn", HelperFailure::Reported(m)))
            }
            Ok(Some(r)) => r,
            Ok(None) => return Err(linux_err(name, "spawn", HelperFailure::NurseryGone)),
            Err(e) => return Err(linux_err(name, "spawn", e)),
        };
        self.adopt(name, reply, "spawn")
    }

    fn call_inner(&mut self, proc: &str, call: &Call) -> Result<Outcome, BackendError> {
        let what = call_text(call);
        let p = self.proc(proc)?;
        self.ran.push(p.pid);
        self.calls += 1;
        let p = self.proc(proc)?;
        if let Err(e) = p.ctl.send(&Request::Call(call.clone()), &[]) {
            return Err(linux_err(proc, &what, Self::why(p, e)));
        }
        match call {
            Call::Exit => {
                let p = self.procs.remove(proc).expect("looked up above");
                Self::wait_gone(proc, &p)?;
                Ok(Ok(fdlab_model::Ret::int(0)))
            }
            Call::Fork { child } | Call::CloneFiles { child } => {
                if self.procs.contains_key(child.as_str()) {
                    return Err(BackendError::NameInUse(child.clone()));
                }
                let first = Self::reply(proc, p, &what)?;
                if let (Reply::Done(o), _) = first {
                    return Ok(o);
                }
                self.adopt(child, first, &what)?;
                let p = self.proc(proc)?;
                Self::done(proc, p, &what)
            }
            _ => Self::done(proc, p, &what),
        }
    }
}

/// How long the runner waits for a process's part of a restore: the
/// processes give up by themselves when nothing moves for
/// [`super::restore::PATIENCE`], so this only bounds a restore that keeps
/// moving.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(600);

/// What one process's part of a restore gave: its log, and its counts or
/// why it failed.
pub type RestoreOutcome = (Vec<String>, Result<Stats, Failed>);

impl LinuxBackend {
    /// Sends `req` to process `proc` and waits for its answer.
    ///
    /// Errors: the process is unknown, died, timed out or said Fatal.
    pub(super) fn request(
        &self,
        proc: &str,
        req: &Request,
        what: &str,
    ) -> Result<Reply, BackendError> {
        self.terminals.set(true);
        self.untracked.set(true);
        let p = self.proc(proc)?;
        p.ctl
            .send(req, &[])
            .map_err(|e| linux_err(proc, what, Self::why(p, e)))?;
        Self::reply(proc, p, what).map(|(r, _)| r)
    }

    /// Restore: makes the transport in `proc` (see
    /// `backend::restore::exec::make_transport`).
    ///
    /// Errors: the helper is gone or answers nonsense; the inner error is
    /// the transport's own failure.
    pub fn restore_transport(
        &mut self,
        proc: &str,
        band: u32,
        peers: usize,
        terminals: u32,
    ) -> Result<Result<(), Failed>, BackendError> {
        let req = Request::Transport {
            band,
            peers,
            terminals,
        };
        self.made(proc, &req, "making the restore's transport")
    }

    /// Restore: session leader `proc` takes its controlling terminal (see
    /// `backend::restore::exec::take_terminal`).
    ///
    /// Errors: as [`LinuxBackend::restore_transport`].
    pub fn restore_terminal(
        &mut self,
        proc: &str,
        path: &str,
        flags: u32,
        at: u32,
    ) -> Result<Result<(), Failed>, BackendError> {
        let req = Request::Terminal {
            path: path.to_string(),
            flags,
            at,
        };
        self.made(proc, &req, "taking a controlling terminal")
    }

    /// Sends a restore's request that makes something, and its answer.
    fn made(
        &mut self,
        proc: &str,
        req: &Request,
        what: &str,
    ) -> Result<Result<(), Failed>, BackendError> {
        match self.request(proc, req, what)? {
            Reply::Made(r) => Ok(r),
            other => Err(linux_err(
                proc,
                what,
                HelperFailure::Unexpected(format!("{other:?}")),
            )),
        }
    }

    /// Restore: runs every program in its process (named by the program),
    /// all at once, and waits for each to finish.
    ///
    /// Errors: a process died or answered nonsense.
    pub fn restore_run(
        &mut self,
        programs: &[(Program, HashMap<FileId, usize>)],
    ) -> Result<Vec<RestoreOutcome>, BackendError> {
        let what = "restoring";
        self.terminals.set(true);
        self.untracked.set(true);
        for (prog, senders) in programs {
            let p = self.proc(&prog.name)?;
            let req = Request::Restore {
                program: Box::new(prog.clone()),
                senders: senders.clone(),
            };
            p.ctl
                .send(&req, &[])
                .map_err(|e| linux_err(&prog.name, what, Self::why(p, e)))?;
        }
        let mut out = Vec::new();
        for (prog, _) in programs {
            let p = self.proc(&prog.name)?;
            match p.ctl.wait(Some(p.pidfd.as_fd()), RESTORE_TIMEOUT) {
                Ok(true) => {}
                Ok(false) => return Err(linux_err(&prog.name, what, HelperFailure::Died)),
                Err(e) => {
                    return Err(linux_err(
                        &prog.name,
                        what,
                        HelperFailure::TimedOut(e, RESTORE_TIMEOUT),
                    ))
                }
            }
            match Self::reply(&prog.name, p, what)? {
                (Reply::Restored { log, result }, _) => out.push((log, result)),
                (other, _) => {
                    return Err(linux_err(
                        &prog.name,
                        what,
                        HelperFailure::Unexpected(format!("{other:?}")),
                    ))
                }
            }
        }
        Ok(out)
    }
}

impl Backend for LinuxBackend {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn spawn(&mut self, name: &str, stdio: bool) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.spawn_inner(name, stdio);
        self.charge(t, |c| &mut c.spawn);
        r
    }

    fn call(&mut self, proc: &str, call: &Call) -> Result<Outcome, BackendError> {
        std::thread::sleep(self.delay);
        let t = Instant::now();
        let r = self.call_inner(proc, call);
        let creates = matches!(
            call,
            Call::Fork { .. } | Call::CloneFiles { .. } | Call::Exec
        );
        self.charge(t, |c| if creates { &mut c.spawn } else { &mut c.calls });
        r
    }

    fn file_relation(
        &mut self,
        a: (&str, i32),
        b: (&str, i32),
    ) -> Result<FileRelation, BackendError> {
        let (pa, pb) = (self.pid(a.0)?, self.pid(b.0)?);
        observe::same_file((pa, a.1), (pb, b.1), &self.fds)
            .map(relation)
            .map_err(|e| self.observe_err(e))
    }

    fn object_relation(
        &mut self,
        a: (&str, i32),
        b: (&str, i32),
    ) -> Result<FileRelation, BackendError> {
        let (pa, pb) = (self.pid(a.0)?, self.pid(b.0)?);
        observe::same_object((pa, a.1), (pb, b.1), &self.fds)
            .map(relation)
            .map_err(|e| self.observe_err(e))
    }

    fn same_table(&mut self, a: &str, b: &str) -> Result<bool, BackendError> {
        let (pa, pb) = (self.pid(a)?, self.pid(b)?);
        observe::same_table(pa, pb).map_err(|e| self.observe_err(e))
    }

    fn open_fds(&mut self, proc: &str) -> Result<Vec<i32>, BackendError> {
        let pid = self.pid(proc)?;
        observe::list_fds(pid, &self.fds).map_err(|e| self.observe_err(e))
    }

    fn watches(
        &mut self,
        ep: (&str, i32),
        target: (&str, i32),
        as_fd: Option<i32>,
    ) -> Result<WatchRelation, BackendError> {
        let (pe, pt) = (self.pid(ep.0)?, self.pid(target.0)?);
        Ok(
            match observe::watches((pe, ep.1), (pt, target.1), as_fd, &self.fds)
                .map_err(|e| self.observe_err(e))?
            {
                Ok(true) => WatchRelation::Watches,
                Ok(false) => WatchRelation::DoesNot,
                Err(2) => WatchRelation::NotEpoll,
                Err(i) => WatchRelation::NotOpen(i),
            },
        )
    }

    fn cost(&self) -> Cost {
        let o = self.observed.get();
        Cost {
            comparisons: o.kcmp_calls,
            descriptors: o.descriptors,
            carried: o.carried,
            all_pairs: o.all_pairs,
            compare: o.kcmp,
            ..self.cost.get()
        }
    }

    fn topology(&mut self) -> Result<Topology, BackendError> {
        let sandbox = self.sandbox.clone();
        self.topology_under(&sandbox)
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
}

impl LinuxBackend {
    /// `partial`, a snapshot taken `since`, once one that reads everything
    /// agrees with it. Linux's deferred work may move between the two, so
    /// a few tries, a moment apart, take both again.
    ///
    /// Errors: they never agreed.
    fn checked(
        &mut self,
        mut partial: observe::Snapshot,
        since: &observe::Since<'_>,
        pids: &[i32],
        opts: &observe::Options,
    ) -> Result<observe::Snapshot, BackendError> {
        const TRIES: usize = 5;
        let root = self.sandbox.clone();
        let shown = |s: &observe::Snapshot| {
            let t = s.topology(|pid| (pid.to_string(), None), Some(&root));
            serde_json::to_string_pretty(&t).unwrap_or_default()
        };
        for attempt in 1..=TRIES {
            let whole = observe::observe_with(pids, opts, self.dirs.get_mut(), None);
            if !partial.warnings.is_empty() || !whole.warnings.is_empty() {
                // The caller reports what could not be read.
                return Ok(partial);
            }
            let (a, b) = (shown(&partial), shown(&whole));
            if a == b {
                return Ok(partial);
            }
            if attempt == TRIES {
                let (line, (a, b)) = a
                    .lines()
                    .zip(b.lines())
                    .enumerate()
                    .find(|(_, (a, b))| a != b)
                    .unwrap_or((0, ("(shorter)", "(longer)")));
                return Err(linux_err(
                    "-",
                    "observing",
                    HelperFailure::PartialObservation {
                        line: line + 1,
                        partial: a.trim().to_string(),
                        whole: b.trim().to_string(),
                    },
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
            partial = observe::observe_with(pids, opts, self.dirs.get_mut(), Some(since));
        }
        Ok(partial)
    }

    /// The topology, paths under `root` shown relative to it (the sandbox,
    /// for a scenario; a restore's root).
    ///
    /// Errors: a process could not be observed.
    pub fn topology_under(&mut self, root: &Path) -> Result<Topology, BackendError> {
        let t = Instant::now();
        let names: HashMap<i32, String> =
            self.procs.iter().map(|(n, p)| (p.pid, n.clone())).collect();
        let r = self.snapshot().map(|s| {
            let name = |pid: i32| {
                let n = names.get(&pid).cloned().unwrap_or_else(|| pid.to_string());
                (n, None)
            };
            s.topology(name, Some(root))
        });
        self.charge(t, |c| &mut c.observe);
        r
    }
}
