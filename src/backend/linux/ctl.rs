//! The control channel between the runner and a helper process: a Unix
//! stream socket carrying length-prefixed JSON frames. A frame may carry
//! descriptors (SCM_RIGHTS) on its first bytes; only helpers send them (the
//! runner end of a new child's channel), so a helper never has a descriptor
//! installed in its table behind the scenario's back.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use fdlab_model::{Call, Outcome};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::{
    recvmsg, sendmsg, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::kernel::Message;
use crate::backend::restore::exec::{Failed, Stats};
use crate::backend::restore::program::{FileId, Program};

/// What the runner asks of a helper.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Run a scenario call (fork and clone_files answer with `Child`).
    Call(Call),
    /// Nursery only: start a new scenario process.
    Spawn { stdio: bool },
    /// Fork server only: make a run's nursery, its helpers' own
    /// descriptors from `floor` up, in `sandbox` (answered with `Child`).
    Nursery { floor: u32, sandbox: String },
    /// Restore: make the transport, `peers` datagram socket pairs from
    /// descriptor `band` up, which children made afterwards inherit, and
    /// keep `terminals` descriptors above it for controlling terminals.
    Transport {
        band: u32,
        peers: usize,
        terminals: u32,
    },
    /// Restore: a session leader takes its controlling terminal (see
    /// `backend::restore::exec::take_terminal`).
    Terminal { path: String, flags: u32, at: u32 },
    /// Dump: read, without taking anything, what waits in these pipes and
    /// sockets; files in flight are installed in the asking helper's
    /// table, which holds them until it ends.
    Capture(Vec<CaptureItem>),
    /// Restore: run this process's program; answer when it is done.
    Restore {
        program: Box<Program>,
        senders: HashMap<FileId, usize>,
    },
}

/// What a helper answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// The call's result.
    Done(Outcome),
    /// A new process exists; the runner end of its channel rides along.
    Child { pid: i32 },
    /// Something the helper itself could not do (not a scenario errno).
    Fatal(String),
    /// What each capture item found, and the helper's own control
    /// descriptor (which observation leaves out).
    Captured {
        ctl: i32,
        items: Vec<Result<Captured, fdlab_model::Errno>>,
    },
    /// The transport or the terminal is made, or why not.
    Made(Result<(), Failed>),
    /// The program ran: its log and counts, or why it failed (and its log
    /// up to then).
    Restored {
        log: Vec<String>,
        result: Result<Stats, Failed>,
    },
}

/// Something a dump reads through a descriptor `fd` of process `pid`
/// (the asking helper's own pid for a file it holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptureItem {
    /// The bytes in a pipe, and its capacity.
    Pipe { pid: i32, fd: i32 },
    /// The messages queued on a unix socket, with their files in flight.
    Queue { pid: i32, fd: i32 },
    /// The bytes a read of a terminal would find now (`FIONREAD`).
    Tty { pid: i32, fd: i32 },
}

impl CaptureItem {
    /// The process and descriptor it reads.
    pub fn at(&self) -> (i32, i32) {
        match *self {
            CaptureItem::Pipe { pid, fd }
            | CaptureItem::Queue { pid, fd }
            | CaptureItem::Tty { pid, fd } => (pid, fd),
        }
    }
}

/// What a capture item found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Captured {
    Pipe {
        data: Vec<u8>,
        capacity: u64,
    },
    /// Each message: its bytes, and the descriptors in the asking helper's
    /// table that now hold its files.
    Queue {
        messages: Vec<Message>,
        /// An `ECONNRESET` waits to be read.
        reset: bool,
    },
    Tty {
        queued: u64,
    },
}

/// One end of a channel.
#[derive(Debug)]
pub struct Channel<F: AsFd> {
    fd: F,
}

/// Both ends of a new channel (close-on-exec; the helper side makes its own
/// end inheritable where it must be).
pub fn pair() -> io::Result<(Channel<OwnedFd>, Channel<OwnedFd>)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl<F: AsFd> Channel<F> {
    pub fn new(fd: F) -> Channel<F> {
        Channel { fd }
    }

    /// The descriptor, no longer a channel.
    pub fn into_fd(self) -> F {
        self.fd
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Sends `msg`, with `fds` on its first bytes.
    pub fn send<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            assert!(
                fds.len() <= 4,
                "a control frame carries at most 4 descriptors"
            );
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        let mut sent = sendmsg(
            &self.fd,
            &[IoSlice::new(&frame)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        while sent < frame.len() {
            sent += sendmsg(
                &self.fd,
                &[IoSlice::new(&frame[sent..])],
                &mut SendAncillaryBuffer::default(),
                SendFlags::NOSIGNAL,
            )?;
        }
        Ok(())
    }

    /// Receives one frame and the descriptors that came with it; `None` when
    /// the other end is gone.
    pub fn recv<T: DeserializeOwned>(&self) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
        let mut head = [0u8; 4];
        let mut got = 0;
        let mut fds = Vec::new();
        while got < 4 {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = recvmsg(
                &self.fd,
                &mut [IoSliceMut::new(&mut head[got..])],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(rights) = m {
                    fds.extend(rights);
                }
            }
            if r.bytes == 0 {
                return Ok(None);
            }
            got += r.bytes;
        }
        let len = u32::from_le_bytes(head) as usize;
        let mut body = vec![0u8; len];
        let mut at = 0;
        while at < len {
            let n = rustix::io::read(&self.fd, &mut body[at..])?;
            if n == 0 {
                return Ok(None);
            }
            at += n;
        }
        let msg = serde_json::from_slice(&body).map_err(io::Error::other)?;
        Ok(Some((msg, fds)))
    }

    /// Waits until a frame can be read, the process behind `pidfd` ends, or
    /// `timeout` passes. Returns whether a frame is ready (false: the
    /// process ended first).
    ///
    /// Errors: `TimedOut`.
    pub fn wait(&self, pidfd: Option<BorrowedFd<'_>>, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
            }
            let ts = Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            };
            let mut fds = vec![PollFd::new(&self.fd, PollFlags::IN)];
            if let Some(p) = pidfd {
                fds.push(PollFd::from_borrowed_fd(p, PollFlags::IN));
            }
            match poll(&mut fds, Some(&ts)) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(0) => continue,
                Ok(_) => {}
            }
            if !fds[0].revents().is_empty() {
                return Ok(true);
            }
            if fds.len() > 1 && !fds[1].revents().is_empty() {
                return Ok(false);
            }
        }
    }
}
