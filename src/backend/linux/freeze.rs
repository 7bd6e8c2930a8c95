//! Stopping processes for the length of an inspection, and always
//! resuming them.
//!
//! [`Frozen::stop`] sends `SIGSTOP` to each process that is running and
//! waits until it is stopped; dropping the [`Frozen`] sends `SIGCONT` to
//! exactly those (a process that was stopped already stays stopped). So
//! an error, or a panic, resumes them. So does Ctrl-C: while processes are
//! frozen, `SIGINT`, `SIGTERM` and `SIGHUP` run a handler that resumes them
//! and then ends this process as the signal would have. The handler reads
//! the frozen pids from a fixed array of atomics, so it makes only
//! async-signal-safe calls (`kill`, `signal`, `raise`).
//!
//! The cgroup freezer would stop a whole cgroup at once, and a process
//! could not miss it by forking meanwhile; but it needs a cgroup to hold
//! exactly the tree, which an arbitrary tree is not in. A child forked by a
//! process before it stops is not stopped: the inspection sees it, or not,
//! as it sees any process that comes and goes.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::observe::procfs;

/// The most processes frozen at once.
pub const MAX_FROZEN: usize = 1 << 16;

/// The pids the handler resumes: the first `FROZEN_LEN` of `FROZEN`.
static FROZEN: [AtomicI32; MAX_FROZEN] = [const { AtomicI32::new(0) }; MAX_FROZEN];
static FROZEN_LEN: AtomicUsize = AtomicUsize::new(0);
/// Whether a freeze is under way (one at a time).
static ACTIVE: AtomicBool = AtomicBool::new(false);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Resumes the frozen processes, then dies of `sig` as if it had not been
/// caught.
extern "C" fn on_signal(sig: libc::c_int) {
    resume_all();
    // SAFETY: signal and raise are async-signal-safe; restoring the
    // default action and raising again ends the process as `sig` would.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Sends `SIGCONT` to every frozen pid. Async-signal-safe.
fn resume_all() {
    let n = FROZEN_LEN.swap(0, Ordering::SeqCst);
    for slot in FROZEN.iter().take(n) {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill with integer arguments; async-signal-safe.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

/// Processes stopped for an inspection; dropping it resumes them.
#[derive(Debug)]
pub struct Frozen {
    /// The processes this stopped (not those that were stopped already).
    pub stopped: Vec<i32>,
    /// Processes that could not be stopped, and why.
    pub failed: Vec<(i32, io::Error)>,
    old: Vec<(libc::c_int, libc::sighandler_t)>,
}

impl Frozen {
    /// Stops `pids` (each that is running: one stopped already is left
    /// alone) and waits up to `patience` for each to stop.
    ///
    /// Errors: another freeze is under way in this process, or more than
    /// [`MAX_FROZEN`] processes.
    pub fn stop(pids: &[i32], patience: Duration) -> io::Result<Frozen> {
        if pids.len() > MAX_FROZEN {
            return Err(io::Error::other(format!(
                "cannot freeze more than {MAX_FROZEN} processes at once"
            )));
        }
        if ACTIVE.swap(true, Ordering::SeqCst) {
            return Err(io::Error::other("a freeze is already under way"));
        }
        let mut old = Vec::new();
        for sig in SIGNALS {
            // SAFETY: installs a handler that makes only async-signal-safe
            // calls (see `on_signal`); the old one is restored on drop.
            let prev = unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
            old.push((sig, prev));
        }
        let mut f = Frozen {
            stopped: Vec::new(),
            failed: Vec::new(),
            old,
        };
        for &pid in pids {
            match procfs::stat(pid) {
                Ok(s) if s.state == 'T' || s.state == 't' => continue,
                Ok(_) => {}
                Err(e) => {
                    f.failed.push((pid, e));
                    continue;
                }
            }
            // Recorded before the signal, so that a Ctrl-C between the two
            // still resumes it.
            let n = FROZEN_LEN.load(Ordering::SeqCst);
            FROZEN[n].store(pid, Ordering::SeqCst);
            FROZEN_LEN.store(n + 1, Ordering::SeqCst);
            // SAFETY: kill with integer arguments.
            if unsafe { libc::kill(pid, libc::SIGSTOP) } < 0 {
                f.failed.push((pid, io::Error::last_os_error()));
                FROZEN[n].store(0, Ordering::SeqCst);
                continue;
            }
            f.stopped.push(pid);
        }
        let deadline = Instant::now() + patience;
        for &pid in &f.stopped {
            while Instant::now() < deadline {
                match procfs::stat(pid) {
                    Ok(s) if s.state != 'T' && s.state != 't' && s.state != 'Z' => {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    _ => break,
                }
            }
        }
        Ok(f)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        resume_all();
        for &(sig, prev) in &self.old {
            // SAFETY: puts back the disposition `stop` replaced.
            unsafe { libc::signal(sig, prev) };
        }
        ACTIVE.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_and_resumes_a_child_and_leaves_a_stopped_one_stopped() {
        let mut a = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut b = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (pa, pb) = (a.id() as i32, b.id() as i32);
        // SAFETY: signals a child this test started.
        unsafe { libc::kill(pb, libc::SIGSTOP) };
        let state = |p| procfs::stat(p).unwrap().state;
        // A stop takes effect when b next runs, which on a busy machine
        // may be a while: wait for it rather than for a fixed time.
        let deadline = Instant::now() + Duration::from_secs(10);
        while state(pb) != 'T' {
            assert!(Instant::now() < deadline, "b never stopped");
            std::thread::sleep(Duration::from_millis(1));
        }
        {
            let f = Frozen::stop(&[pa, pb], Duration::from_secs(2)).unwrap();
            assert_eq!(f.stopped, vec![pa], "b was stopped already");
            assert_eq!(state(pa), 'T');
        }
        assert_ne!(state(pa), 'T', "resumed");
        assert_eq!(state(pb), 'T', "left as it was");
        let _ = a.kill();
        let _ = b.kill();
        let _ = a.wait();
        let _ = b.wait();
    }
}
