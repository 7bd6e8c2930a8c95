//! The restore engine in a helper process: the engine's kernel interface
//! made of real system calls, and the loop that runs one process's
//! program, sleeping in `poll` until a message comes or there is room to
//! send one. It never polls on a timer: it wakes when something moved, and
//! gives up, naming what it waits for, when nothing moved for
//! [`PATIENCE`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fdlab_model::limits::SCM_MAX_FD;
use fdlab_model::Errno;

use super::kernel;
use crate::backend::restore::exec::{Cause, Executor, Failed, Stats, Status, Sys};
use crate::backend::restore::program::{FileId, Program};

/// How long a process waits with nothing moving before it gives up,
/// unless its program says otherwise.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// This process's kernel.
pub struct LinuxSys;

/// `None` for "would block".
fn unless_blocked<T>(r: Result<T, Errno>) -> Result<Option<T>, Errno> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Sys for LinuxSys {
    fn open(&mut self, path: &str, flags: u32) -> Result<i32, Errno> {
        kernel::open(path, flags as i32, 0)
    }

    fn pipe(&mut self) -> Result<(i32, i32), Errno> {
        kernel::pipe2(0)
    }

    fn socketpair(&mut self, ty: i32) -> Result<(i32, i32), Errno> {
        kernel::socketpair(ty)
    }

    fn socket(&mut self, ty: i32) -> Result<i32, Errno> {
        kernel::socket(ty)
    }

    fn bind(&mut self, fd: i32, name: &str) -> Result<(), Errno> {
        kernel::bind(fd, name)
    }

    fn unlink_socket(&mut self, name: &str) -> Result<(), Errno> {
        kernel::unlink_socket(name)
    }

    fn listen(&mut self, fd: i32, backlog: u32) -> Result<(), Errno> {
        kernel::listen(fd, backlog.min(i32::MAX as u32) as i32)
    }

    fn connect(&mut self, fd: i32, name: &str) -> Result<(), Errno> {
        kernel::connect(fd, name)
    }

    fn accept(&mut self, fd: i32) -> Result<i32, Errno> {
        kernel::accept4(fd, 0)
    }

    fn epoll_create(&mut self) -> Result<i32, Errno> {
        kernel::epoll_create(0)
    }

    fn epoll_add(&mut self, ep: i32, fd: i32, events: u32) -> Result<(), Errno> {
        kernel::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, events)
    }

    fn eventfd(&mut self) -> Result<i32, Errno> {
        kernel::eventfd(0)
    }

    fn shutdown(&mut self, fd: i32, how: i32) -> Result<(), Errno> {
        kernel::shutdown(fd, how)
    }

    fn ptypeer(&mut self, master: i32) -> Result<i32, Errno> {
        // Never O_CLOEXEC: TIOCGPTPEER would keep it in the file's flags.
        kernel::ptypeer(master, libc::O_RDWR | libc::O_NOCTTY)
    }

    fn tiocsctty(&mut self, fd: i32) -> Result<(), Errno> {
        kernel::tiocsctty(fd)
    }

    fn write(&mut self, fd: i32, data: &[u8]) -> Result<usize, Errno> {
        kernel::write(fd, data)
    }

    fn lseek(&mut self, fd: i32, offset: u64) -> Result<(), Errno> {
        kernel::lseek(fd, offset as i64, libc::SEEK_SET).map(|_| ())
    }

    fn set_pipe_size(&mut self, fd: i32, bytes: u64) -> Result<(), Errno> {
        kernel::fcntl(fd, libc::F_SETPIPE_SZ, bytes as libc::c_long).map(|_| ())
    }

    fn setfl(&mut self, fd: i32, flags: u32) -> Result<(), Errno> {
        kernel::fcntl(fd, libc::F_SETFL, flags.into()).map(|_| ())
    }

    fn cloexec(&mut self, fd: i32) -> Result<(), Errno> {
        kernel::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC.into()).map(|_| ())
    }

    fn dup_from(&mut self, fd: i32, min: u32) -> Result<i32, Errno> {
        kernel::fcntl(fd, libc::F_DUPFD, min.into())
    }

    fn dup2(&mut self, old: i32, new: i32) -> Result<(), Errno> {
        kernel::dup2(old, new).map(|_| ())
    }

    fn close(&mut self, fd: i32) -> Result<(), Errno> {
        kernel::close(fd)
    }

    fn close_range(&mut self, lo: u32, hi: u32) -> Result<(), Errno> {
        super::sys::close_range(lo, hi, 0).map_err(|e| Errno::from_raw(e).unwrap_or(Errno::EIO))
    }

    fn sendmsg(&mut self, sock: i32, data: &[u8], fds: &[i32]) -> Result<Option<usize>, Errno> {
        unless_blocked(kernel::sendfds(sock, data, fds))
    }

    fn recvmsg(&mut self, sock: i32) -> Result<Option<(Vec<u8>, Vec<i32>)>, Errno> {
        let len = 4 * SCM_MAX_FD;
        unless_blocked(kernel::recvmsg(sock, len, SCM_MAX_FD, 0))
    }

    fn set_nofile(&mut self, n: u64) -> Result<(), Errno> {
        kernel::set_nofile(n)
    }
}

/// What one process's run of its program gave: its log and counts, or
/// why it failed and its log up to then.
pub type Outcome = Result<(Vec<String>, Stats), (Failed, Vec<String>)>;

/// Runs `prog` in this process until it is done: each step goes as far as
/// it can, then the process sleeps until a message comes to its inbox or
/// its next message can go out.
pub fn run(prog: Program, senders: HashMap<FileId, usize>) -> Outcome {
    let start = Instant::now();
    let patience = match prog.patience_ms {
        0 => PATIENCE,
        ms => Duration::from_millis(ms),
    };
    let mut e = Executor::new(prog, senders);
    let mut sys = LinuxSys;
    let mut moved = Instant::now();
    loop {
        let before = (e.log.len(), e.stats.clone());
        let status = match e.step(&mut sys) {
            Ok(s) => s,
            Err(f) => return Err((f, e.log)),
        };
        let Status::Blocked { send, receive } = status else {
            e.stats.micros = start.elapsed().as_micros() as u64;
            return Ok((e.log, e.stats));
        };
        if (e.log.len(), &e.stats) != (before.0, &before.1) {
            moved = Instant::now();
        }
        let left = patience.saturating_sub(moved.elapsed());
        if left.is_zero() {
            let failed = Failed {
                process: e.name().to_string(),
                what: format!("waiting for {}", e.waiting_for()),
                cause: Cause::TimedOut(patience.as_millis() as u64),
            };
            return Err((failed, e.log));
        }
        let mut fds = Vec::new();
        if !receive.is_empty() {
            fds.push((e.inbox(), libc::POLLIN));
        }
        if let (true, Some(out)) = (send, e.pending_outlet()) {
            fds.push((out, libc::POLLOUT));
        }
        if let Err(errno) = kernel::poll(&fds, left.as_millis().clamp(1, i32::MAX as u128) as i32) {
            let failed = Failed {
                process: e.name().to_string(),
                what: "waiting on the transport".into(),
                cause: Cause::Errno(errno),
            };
            return Err((failed, e.log));
        }
    }
}
