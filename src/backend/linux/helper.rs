//! The helper processes: the hidden `fdlab __helper` mode.
//!
//! The binary runs this before Rust's runtime setup (it is `#![no_main]`),
//! because that setup reopens descriptors 0, 1 and 2 on `/dev/null` when they
//! are closed: after a scenario's `exec` it would change the very table under
//! study.
//!
//! - The **nursery** (one per run) starts scenario processes (a fork of
//!   itself each, without an exec: it is set up as a helper is), reaps every
//!   orphan (it is a child subreaper with SIGCHLD ignored), and when the
//!   runner's end of its channel closes (the run ended, panicked or was
//!   interrupted) it ends every process of the run and removes the sandbox.
//! - The **fork server** (one per fuzzer job) makes each run's nursery by
//!   a fork of itself, so that a run costs no `exec` of this binary.
//! - A **scenario process** runs one call at a time, for real, and answers on
//!   its channel. Its channel sits at `HARNESS_FD` (10,000, or `--floor`) or above (the
//!   language keeps scenarios below it) and is the only descriptor it has of its own.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicI32, Ordering};

use fdlab_model::limits::HARNESS_FD;
use fdlab_model::{
    Call, EpollOp, Errno, Events, FcntlCmd, OFlags, Outcome, Ret, SockFlags, SockType, Whence,
};

use super::ctl::{CaptureItem, Captured, Channel, Reply, Request};
use super::kernel::{self, Sys};
use super::restore::{self, LinuxSys};
use crate::backend::restore::exec::{make_transport, take_terminal};
use crate::backend::restore::program::{FileId, Program};

/// The lowest number a helper's own descriptors use: `HARNESS_FD`, or
/// what `--floor` says (a restore of descriptors above it moves the
/// helpers' own out of the way). Set once, when the helper starts.
static FLOOR: AtomicI32 = AtomicI32::new(HARNESS_FD as i32);

fn floor() -> i32 {
    FLOOR.load(Ordering::Relaxed)
}

/// Entry point of `fdlab __helper ARGS...`; never returns.
pub fn main(args: &[String]) -> ! {
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(f) = opt("--floor").and_then(|s| s.parse::<i32>().ok()) {
        FLOOR.store(f.max(3), Ordering::Relaxed);
    }
    let ctl: Option<i32> = if args.iter().any(|a| a == "--ctl-stdin") {
        nursery_setup()
    } else {
        opt("--ctl").and_then(|s| s.parse().ok())
    };
    let Some(ctl) = ctl.filter(|&c| c >= floor()) else {
        eprintln!("fdlab __helper: internal mode of fdlab, not for direct use");
        kernel::exit_now(2)
    };
    kernel::ignore(libc::SIGPIPE);
    kernel::ignore(libc::SIGCHLD);
    // A session leader's exit and a pty master's close send SIGHUP, and a
    // process in another group than its terminal's may get SIGTTIN and
    // SIGTTOU: the language lets none of them stop or kill a process.
    kernel::ignore(libc::SIGHUP);
    kernel::ignore(libc::SIGTTIN);
    kernel::ignore(libc::SIGTTOU);
    // A scenario's MODE is the mode a file gets, whatever the runner's umask.
    kernel::clear_umask();
    match args.first().map(String::as_str) {
        Some("nursery") => nursery(ctl, opt("--sandbox").cloned()),
        Some("server") => server(ctl),
        _ => {
            let soft = opt("--rlimit")
                .and_then(|s| s.parse().ok())
                .unwrap_or(fdlab_model::limits::DEFAULT_RLIMIT);
            let stdio = args.iter().any(|a| a == "--stdio");
            let after_exec = args.iter().any(|a| a == "--after-exec");
            process(ctl, soft, stdio, after_exec)
        }
    }
}

/// The own setup of a nursery or fork server, which the runner leaves to
/// it so that it can spawn it without a fork of its own: a session of its own (its shutdown
/// signals its whole process group, which must not be the runner's), the
/// soft descriptor limit raised to the hard one so that the floor fits,
/// and its channel moved from standard input to the floor. Returns the
/// channel, or `None` if any of it failed.
fn nursery_setup() -> Option<i32> {
    kernel::setsid().ok()?;
    kernel::set_nofile(kernel::nofile_hard()).ok()?;
    let ctl = kernel::fcntl(0, libc::F_DUPFD, floor() as libc::c_long).ok()?;
    kernel::close(0).ok()?;
    Some(ctl)
}

/// A channel on the helper's own control descriptor.
fn channel(ctl: i32) -> Channel<BorrowedFd<'static>> {
    // SAFETY: `ctl` is this helper's control descriptor, open from start to
    // exit; the helper closes it only by exiting or exec'ing.
    Channel::new(unsafe { BorrowedFd::borrow_raw(ctl) })
}

/// Closes every descriptor from the floor up except `keep` (copies of other
/// processes' channels after a fork or unshare: the table is private now)
/// and a restore's transport, `band` (which sits above every channel).
fn close_other_channels(keep: i32, band: Option<(u32, u32)>) {
    let keep = keep as u32;
    let _ = super::sys::close_range(floor() as u32, keep - 1, 0);
    match band {
        Some((lo, hi)) => {
            let _ = super::sys::close_range(keep + 1, lo - 1, 0);
            let _ = super::sys::close_range(hi + 1, u32::MAX, 0);
        }
        None => {
            let _ = super::sys::close_range(keep + 1, u32::MAX, 0);
        }
    }
}

/// A new channel for a child-to-be: the runner's end stays low (it is sent
/// away and closed before the call returns), the child's end moves to
/// the floor or above, inheritable. The caller has raised the soft limit.
fn new_channel() -> Sys<(i32, i32)> {
    let (a, b) = kernel::socketpair(libc::SOCK_STREAM | libc::SOCK_CLOEXEC)?;
    let b2 = kernel::fcntl(b, libc::F_DUPFD, floor() as libc::c_long);
    let _ = kernel::close(b);
    match b2 {
        Ok(b2) => Ok((a, b2)),
        Err(e) => {
            let _ = kernel::close(a);
            Err(e)
        }
    }
}

fn nursery(ctl: i32, sandbox: Option<String>) -> ! {
    kernel::become_subreaper();
    let chan = channel(ctl);
    loop {
        match chan.recv::<Request>() {
            Ok(Some((Request::Spawn { stdio }, _))) => {
                let reply = match new_channel() {
                    Err(e) => Reply::Fatal(format!("nursery: no descriptor for a channel: {e}")),
                    Ok((a, b2)) => match fork_child(&chan, a, b2, "nursery", |b2| {
                        // The child: nothing but its channel, then the
                        // helper, without an exec: the nursery is one
                        // thread, already set up as a helper is (its
                        // signals, umask and floor), and an exec of this
                        // binary would cost more than the fork.
                        let _ = super::sys::close_range(0, b2 as u32 - 1, 0);
                        let _ = super::sys::close_range(b2 as u32 + 1, u32::MAX, 0);
                        process(b2, fdlab_model::limits::DEFAULT_RLIMIT, stdio, false)
                    }) {
                        Ok(true) => continue,
                        Ok(false) => shutdown(sandbox.as_deref()),
                        Err(reply) => reply,
                    },
                };
                if chan.send(&reply, &[]).is_err() {
                    shutdown(sandbox.as_deref());
                }
            }
            Ok(Some((_, _))) => {
                let _ = chan.send(&Reply::Fatal("the nursery only spawns".into()), &[]);
            }
            // The runner is gone or done: end the run.
            Ok(None) | Err(_) => shutdown(sandbox.as_deref()),
        }
    }
}

/// The fork server: makes each run's nursery by a fork of itself, already
/// set up as a nursery is (its signals, umask and soft limit), and sends
/// the runner its channel. SIGCHLD is ignored, so the nurseries it made
/// are reaped as they end. It exits when its own channel closes.
fn server(ctl: i32) -> ! {
    let chan = channel(ctl);
    loop {
        let (floor, sandbox) = match chan.recv::<Request>() {
            Ok(Some((Request::Nursery { floor, sandbox }, _))) => (floor, sandbox),
            Ok(Some(_)) => {
                let _ = chan.send(
                    &Reply::Fatal("the fork server only makes nurseries".into()),
                    &[],
                );
                continue;
            }
            Ok(None) | Err(_) => kernel::exit_now(0),
        };
        let reply = match kernel::socketpair(libc::SOCK_STREAM | libc::SOCK_CLOEXEC) {
            Err(e) => Reply::Fatal(format!("fork server: no channel: {e}")),
            Ok((a, b)) => match fork_child(&chan, a, b, "fork server", |b| {
                // The child: a session of its own (its shutdown signals its
                // whole group), in its sandbox, with nothing but its
                // channel, at its floor.
                FLOOR.store((floor as i32).max(3), Ordering::Relaxed);
                if kernel::setsid().is_err() || std::env::set_current_dir(&sandbox).is_err() {
                    kernel::exit_now(1)
                }
                let Ok(ctl) = kernel::fcntl(b, libc::F_DUPFD, floor as libc::c_long) else {
                    kernel::exit_now(1)
                };
                let _ = super::sys::close_range(0, ctl as u32 - 1, 0);
                let _ = super::sys::close_range(ctl as u32 + 1, u32::MAX, 0);
                nursery(ctl, Some(sandbox))
            }) {
                Ok(true) => continue,
                Ok(false) => kernel::exit_now(0),
                Err(reply) => reply,
            },
        };
        if chan.send(&reply, &[]).is_err() {
            kernel::exit_now(0)
        }
    }
}

/// Forks a process that becomes `child`, given `theirs`, its end of a new
/// channel, and sends the runner `ours`, the other end, with the new pid;
/// both ends are closed here after. `Ok(false)`: the runner is gone.
/// `Err`: the fork failed, and what to answer.
fn fork_child(
    chan: &Channel<BorrowedFd<'static>>,
    ours: i32,
    theirs: i32,
    who: &str,
    child: impl FnOnce(i32),
) -> Result<bool, Reply> {
    let forked = kernel::fork(false);
    if let Ok(0) = forked {
        child(theirs);
        // `child` becomes the new process and does not return.
        kernel::exit_now(1)
    }
    let sent = forked.map(|pid| {
        // SAFETY: `ours` was just created and is open.
        let fd = unsafe { BorrowedFd::borrow_raw(ours) };
        chan.send(&Reply::Child { pid }, &[fd]).is_ok()
    });
    let _ = kernel::close(ours);
    let _ = kernel::close(theirs);
    sent.map_err(|e| Reply::Fatal(format!("{who}: fork failed: {e}")))
}

/// Ends every process of the run, removes the sandbox, exits.
fn shutdown(sandbox: Option<&str>) -> ! {
    // SIGTERM, which the nursery ignores itself: scenario processes keep
    // its default action, so they end; the nursery lives on to reap them.
    kernel::signal_group(libc::SIGTERM);
    kernel::wait_children();
    if let Some(dir) = sandbox {
        let _ = std::fs::remove_dir_all(dir);
    }
    kernel::exit_now(0)
}

struct Helper {
    ctl: i32,
    /// The scenario's soft RLIMIT_NOFILE (the helper raises it briefly for
    /// its own descriptors and for the dynamic loader at exec).
    soft: u64,
    /// A restore's transport while it is open (first and last descriptor).
    band: Option<(u32, u32)>,
}

fn process(ctl: i32, soft: u64, stdio: bool, after_exec: bool) -> ! {
    if stdio {
        for flags in [libc::O_RDONLY, libc::O_WRONLY, libc::O_WRONLY] {
            let _ = kernel::open("/dev/null", flags, 0);
        }
    }
    let mut h = Helper {
        ctl,
        soft,
        band: None,
    };
    let _ = kernel::set_nofile(soft);
    if after_exec {
        close_other_channels(ctl, None);
    }
    // Ready: the spawn (or exec) is complete.
    if channel(ctl)
        .send(&Reply::Done(Ok(Ret::int(0))), &[])
        .is_err()
    {
        kernel::exit_now(0);
    }
    loop {
        let req = match channel(h.ctl).recv::<Request>() {
            Ok(Some((r, _))) => r,
            // The runner is gone: nothing more to do.
            _ => kernel::exit_now(0),
        };
        let reply = match req {
            Request::Call(call) => h.call(&call),
            Request::Spawn { .. } | Request::Nursery { .. } => {
                Reply::Fatal("a scenario process does not spawn".into())
            }
            Request::Transport {
                band,
                peers,
                terminals,
            } => h.transport(band, peers, terminals),
            Request::Terminal { path, flags, at } => Reply::Made(take_terminal(
                &mut LinuxSys,
                &std::process::id().to_string(),
                &path,
                flags,
                at,
            )),
            Request::Capture(items) => h.capture(&items),
            Request::Restore { program, senders } => h.restore(*program, senders),
        };
        if channel(h.ctl).send(&reply, &[]).is_err() {
            kernel::exit_now(0);
        }
    }
}

/// `read` of descriptor `fd` of process `pid`, through a copy of it in this
/// process (`me`), closed after; a descriptor of this process is read as
/// it is.
fn through_copy<R>(me: i32, pid: i32, fd: i32, read: impl FnOnce(i32) -> Sys<R>) -> Sys<R> {
    if pid == me {
        return read(fd);
    }
    let own = kernel::grab_fd(pid, fd)?;
    let r = read(own);
    let _ = kernel::close(own);
    r
}

fn ints(v: &[i32]) -> Ret {
    Ret::Ints(v.iter().map(|&n| i64::from(n)).collect())
}

fn flag(on: bool, f: i32) -> i32 {
    if on {
        f
    } else {
        0
    }
}

impl Helper {
    /// Reads pipes and socket queues for a dump. The files in flight a
    /// peek installs stay in this helper's table (the dump identifies them
    /// with kcmp), so it raises its limit to the hard one.
    fn capture(&mut self, items: &[CaptureItem]) -> Reply {
        let _ = kernel::set_nofile(kernel::nofile_hard());
        let me = std::process::id() as i32;
        let items = items
            .iter()
            .map(|item| match *item {
                CaptureItem::Pipe { pid, fd } => kernel::pipe_contents(pid, fd)
                    .map(|(data, capacity)| Captured::Pipe { data, capacity }),
                CaptureItem::Queue { pid, fd } => through_copy(me, pid, fd, kernel::peek_queue)
                    .map(|(messages, reset)| Captured::Queue { messages, reset }),
                // A hung-up terminal (its master closed) answers EIO:
                // nothing waits in it.
                CaptureItem::Tty { pid, fd } => {
                    through_copy(me, pid, fd, |own| match kernel::inq(own) {
                        Err(Errno::EIO) => Ok(0),
                        r => r,
                    })
                    .map(|n| Captured::Tty { queued: n as u64 })
                }
            })
            .collect();
        Reply::Captured {
            ctl: self.ctl,
            items,
        }
    }

    /// Makes a restore's transport (see `backend::restore::exec`).
    fn transport(&mut self, band: u32, peers: usize, terminals: u32) -> Reply {
        let r = make_transport(&mut LinuxSys, "restorer", band, peers, terminals);
        if r.is_ok() && peers > 0 {
            self.band = Some((band, band + 2 * peers as u32 + terminals - 1));
        }
        Reply::Made(r)
    }

    /// Runs this process's part of a restore, which ends by closing the
    /// transport and setting the limit the image gives.
    fn restore(&mut self, program: Program, senders: HashMap<FileId, usize>) -> Reply {
        let limit = program.rlimit;
        let r = restore::run(program, senders);
        self.band = None;
        match limit {
            Some(n) if r.is_ok() => self.soft = n,
            _ => {
                let _ = kernel::set_nofile(self.soft);
            }
        }
        match r {
            Ok((log, stats)) => Reply::Restored {
                log,
                result: Ok(stats),
            },
            Err((failed, log)) => Reply::Restored {
                log,
                result: Err(failed),
            },
        }
    }

    fn call(&mut self, call: &Call) -> Reply {
        self.call_with(call, 0)
    }

    /// `call`, with `extra` flag bits (a scenario's number) added to its
    /// flags as they are.
    fn call_with(&mut self, call: &Call, extra: i32) -> Reply {
        let out: Outcome = match call {
            Call::Flagged { call, bits } => return self.call_with(call, *bits as i32),
            Call::Setsid => kernel::setsid().map(|_| Ret::int(0)),
            Call::Tiocsctty { fd } => kernel::tiocsctty(*fd).map(|_| Ret::int(0)),
            Call::Ptypeer {
                fd,
                noctty,
                cloexec,
            } => kernel::ptypeer(
                *fd,
                libc::O_RDWR
                    | flag(*noctty, libc::O_NOCTTY)
                    | flag(*cloexec, libc::O_CLOEXEC)
                    | extra,
            )
            .map(|n| Ret::int(n.into())),
            Call::Fork { .. } => return self.fork(false),
            Call::CloneFiles { .. } => return self.fork(true),
            Call::Exec => return self.exec(),
            Call::Exit => kernel::exit_now(0),
            Call::UnshareFiles => kernel::unshare_files().map(|_| {
                close_other_channels(self.ctl, self.band);
                Ret::int(0)
            }),
            Call::Rlimit { limit } => kernel::set_nofile(*limit).map(|_| {
                self.soft = *limit;
                Ret::int(0)
            }),
            Call::Open { path, flags, mode } => {
                kernel::open(path, flags.bits() as i32 | extra, *mode).map(|fd| ints(&[fd]))
            }
            Call::Close { fd } => kernel::close(*fd).map(|_| Ret::int(0)),
            Call::Dup { fd } => kernel::dup(*fd).map(|n| ints(&[n])),
            Call::Dup2 { old, new } => kernel::dup2(*old, *new).map(|n| ints(&[n])),
            Call::Dup3 { old, new, cloexec } => {
                kernel::dup3(*old, *new, flag(*cloexec, libc::O_CLOEXEC) | extra)
                    .map(|n| ints(&[n]))
            }
            Call::Fcntl { fd, cmd } => fcntl(*fd, *cmd),
            Call::CloseRange {
                lo,
                hi,
                unshare,
                cloexec,
            } => {
                // The helper's own descriptors sit at the floor and up: `~0`
                // means "every scenario descriptor".
                let hi = if hi < lo {
                    *hi
                } else {
                    (*hi).min(floor() as u32 - 1)
                };
                let flags = flag(*unshare, libc::CLOSE_RANGE_UNSHARE as i32)
                    | flag(*cloexec, libc::CLOSE_RANGE_CLOEXEC as i32)
                    | extra;
                super::sys::close_range(*lo, hi, flags as u32)
                    .map(|_| Ret::int(0))
                    .map_err(|e| Errno::from_raw(e).unwrap_or(Errno::EIO))
            }
            Call::Write { fd, data } => kernel::write(*fd, data).map(|n| Ret::int(n as i64)),
            Call::Read { fd, len } => kernel::read(*fd, *len).map(Ret::Bytes),
            Call::Lseek { fd, offset, whence } => {
                let w = match whence {
                    Whence::Set => libc::SEEK_SET,
                    Whence::Cur => libc::SEEK_CUR,
                    Whence::End => libc::SEEK_END,
                };
                kernel::lseek(*fd, *offset, w).map(Ret::int)
            }
            Call::Pipe { cloexec, nonblock } => kernel::pipe2(
                flag(*cloexec, libc::O_CLOEXEC) | flag(*nonblock, libc::O_NONBLOCK) | extra,
            )
            .map(|(r, w)| ints(&[r, w])),
            Call::Socketpair { ty, flags } => {
                kernel::socketpair(sock_type(*ty, *flags) | extra).map(|(a, b)| ints(&[a, b]))
            }
            Call::Socket { ty, flags } => {
                kernel::socket(sock_type(*ty, *flags) | extra).map(|n| ints(&[n]))
            }
            Call::Bind { fd, name } => kernel::bind(*fd, &own_name(name)).map(|_| Ret::int(0)),
            Call::Listen { fd, backlog } => kernel::listen(*fd, *backlog).map(|_| Ret::int(0)),
            Call::Connect { fd, name } => {
                kernel::connect(*fd, &own_name(name)).map(|_| Ret::int(0))
            }
            Call::Accept { fd, flags } => {
                kernel::accept4(*fd, sock_type_flags(*flags) | extra).map(|n| ints(&[n]))
            }
            Call::Shutdown { fd, how } => kernel::shutdown(*fd, *how).map(|_| Ret::int(0)),
            Call::Sendfds { sock, fds } => kernel::sendfds(*sock, b"\0", fds).map(|_| Ret::int(0)),
            Call::Recvfds { sock, max, cloexec } => {
                kernel::recvfds(*sock, *max as usize, flag(*cloexec, libc::MSG_CMSG_CLOEXEC))
                    .map(|(v, ctrunc)| Ret::received(v.iter().map(|&n| n.into()).collect(), ctrunc))
            }
            Call::EpollCreate { cloexec } => {
                kernel::epoll_create(flag(*cloexec, libc::EPOLL_CLOEXEC) | extra)
                    .map(|n| ints(&[n]))
            }
            Call::EpollCtl {
                epfd,
                op,
                fd,
                events,
            } => {
                let op = match op {
                    EpollOp::Add => libc::EPOLL_CTL_ADD,
                    EpollOp::Del => libc::EPOLL_CTL_DEL,
                    EpollOp::Mod => libc::EPOLL_CTL_MOD,
                };
                kernel::epoll_ctl(*epfd, op, *fd, events.bits()).map(|_| Ret::int(0))
            }
            Call::Eventfd { cloexec, nonblock } => kernel::eventfd(
                flag(*cloexec, libc::EFD_CLOEXEC) | flag(*nonblock, libc::EFD_NONBLOCK) | extra,
            )
            .map(|n| ints(&[n])),
            Call::EpollWait { epfd, maxevents } => kernel::epoll_wait(*epfd, *maxevents).map(|v| {
                Ret::Ready(
                    v.into_iter()
                        .map(|(fd, e)| (fd, Events::from_bits(e).and(Events::REPORTED)))
                        .collect(),
                )
            }),
        };
        Reply::Done(out)
    }

    /// `fork` or `clone(CLONE_FILES)`. The parent answers `Child` (with the
    /// runner's end of the child's channel), then `Done`; the child answers
    /// `Done` on its own channel once its table holds nothing of the
    /// helper's but that channel.
    fn fork(&mut self, share: bool) -> Reply {
        let hard = kernel::nofile_hard();
        let _ = kernel::set_nofile(hard);
        let (a, b2) = match new_channel() {
            Ok(p) => p,
            Err(e) => {
                let _ = kernel::set_nofile(self.soft);
                return Reply::Fatal(format!("no descriptor for a child's channel: {e}"));
            }
        };
        match kernel::fork(share) {
            Ok(0) => {
                if !share {
                    let _ = kernel::close(a);
                    close_other_channels(b2, self.band);
                }
                self.ctl = b2;
                let _ = kernel::set_nofile(self.soft);
                Reply::Done(Ok(Ret::int(0)))
            }
            Ok(pid) => {
                // SAFETY: `a` was just created and is open.
                let fd = unsafe { BorrowedFd::borrow_raw(a) };
                let sent = channel(self.ctl).send(&Reply::Child { pid }, &[fd]);
                let _ = kernel::close(a);
                if !share {
                    let _ = kernel::close(b2);
                }
                let _ = kernel::set_nofile(self.soft);
                match sent {
                    Ok(()) => Reply::Done(Ok(Ret::int(0))),
                    Err(e) => Reply::Fatal(format!("could not hand over the child's channel: {e}")),
                }
            }
            Err(e) => {
                let _ = kernel::close(a);
                let _ = kernel::close(b2);
                let _ = kernel::set_nofile(self.soft);
                Reply::Done(Err(e))
            }
        }
    }

    /// A real `execve` of the helper: the kernel unshares the table and
    /// closes close-on-exec descriptors. The new image answers.
    fn exec(&mut self) -> Reply {
        // The dynamic loader opens libraries at the lowest free numbers: give
        // it room, the new image puts the scenario's limit back.
        let _ = kernel::set_nofile(kernel::nofile_hard());
        let argv = vec![
            "fdlab".to_string(),
            "__helper".into(),
            "process".into(),
            "--ctl".into(),
            self.ctl.to_string(),
            "--rlimit".into(),
            self.soft.to_string(),
            "--floor".into(),
            floor().to_string(),
            "--after-exec".into(),
        ];
        let e = kernel::execve("/proc/self/exe", &argv);
        let _ = kernel::set_nofile(self.soft);
        Reply::Done(Err(e))
    }
}

fn fcntl(fd: i32, cmd: FcntlCmd) -> Outcome {
    match cmd {
        FcntlCmd::DupFd { min, cloexec } => {
            let c = if cloexec {
                libc::F_DUPFD_CLOEXEC
            } else {
                libc::F_DUPFD
            };
            kernel::fcntl(fd, c, min.into()).map(|n| ints(&[n]))
        }
        FcntlCmd::GetFd => kernel::fcntl(fd, libc::F_GETFD, 0).map(|n| Ret::int(n.into())),
        FcntlCmd::SetFd { cloexec } => {
            kernel::fcntl(fd, libc::F_SETFD, flag(cloexec, libc::FD_CLOEXEC).into())
                .map(|_| Ret::int(0))
        }
        FcntlCmd::GetFl => kernel::fcntl(fd, libc::F_GETFL, 0)
            .map(|f| Ret::Flags(OFlags::from_bits(f as u32).and(OFlags::STATUS_MASK))),
        FcntlCmd::SetFl { flags } => {
            kernel::fcntl(fd, libc::F_SETFL, flags.bits().into()).map(|_| Ret::int(0))
        }
        FcntlCmd::DupFdQuery { fd2 } => {
            kernel::fcntl(fd, F_DUPFD_QUERY, fd2.into()).map(|n| Ret::int(n.into()))
        }
    }
}

/// `F_LINUX_SPECIFIC_BASE + 3` (Linux 6.10), not in every libc yet.
const F_DUPFD_QUERY: i32 = 1024 + 3;

/// `socket`'s type argument: the type with `SOCK_CLOEXEC` and
/// `SOCK_NONBLOCK` as asked.
fn sock_type(ty: SockType, flags: SockFlags) -> i32 {
    let t = match ty {
        SockType::Stream => libc::SOCK_STREAM,
        SockType::Dgram => libc::SOCK_DGRAM,
        SockType::Seqpacket => libc::SOCK_SEQPACKET,
    };
    t | sock_type_flags(flags)
}

fn sock_type_flags(flags: SockFlags) -> i32 {
    flag(flags.cloexec, libc::SOCK_CLOEXEC) | flag(flags.nonblock, libc::SOCK_NONBLOCK)
}

/// The name a scenario's socket really binds: an abstract `@name` becomes
/// `@<sandbox's base name>/name`, so that runs side by side do not meet
/// (the observer strips it again); a path is relative to the sandbox, the
/// helper's working directory.
fn own_name(name: &str) -> String {
    match name.strip_prefix('@') {
        Some(rest) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let base = cwd
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("@{base}/{rest}")
        }
        None => name.to_string(),
    }
}
