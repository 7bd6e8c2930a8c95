//! The restore engine's kernel interface on the model: each call is the
//! model's system call, made as the process, through `World::call` where
//! the language has the call (so every invariant is checked after it), and
//! through `sys_sendmsg`/`sys_recvmsg` for messages with data and files.

use fdlab_model::{
    Call, EpollOp, Errno, Events, FcntlCmd, OFlags, Outcome, Pid, Ret, SockType, Whence, World,
};

use super::exec::Sys;
use crate::lang::print::{call_strace, ret_text};

/// One process of the model, as the restore engine's kernel.
pub struct ModelSys<'w> {
    pub world: &'w mut World,
    pub pid: Pid,
    /// Record each call and the file(9) calls under it (`--trace`); the
    /// world must be tracing.
    pub trace: bool,
    pub lines: Vec<String>,
}

impl<'w> ModelSys<'w> {
    /// Process `pid` of `world`, traced or not.
    pub fn new(world: &'w mut World, pid: Pid, trace: bool) -> ModelSys<'w> {
        ModelSys {
            world,
            pid,
            trace,
            lines: Vec::new(),
        }
    }

    /// Notes what `what` did, with the file(9) calls under it.
    fn traced<T: std::fmt::Debug>(&mut self, what: impl FnOnce() -> String, r: &Result<T, Errno>) {
        if !self.trace {
            return;
        }
        let result = match r {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        self.lines.push(format!("  {} = {result}", what()));
        for ev in self.world.take_trace() {
            self.lines.push(format!("      {ev}"));
        }
    }
}

fn one(o: Outcome) -> Result<i32, Errno> {
    match o? {
        Ret::Ints(v) => v.first().map(|&n| n as i32).ok_or(Errno::EIO),
        _ => Err(Errno::EIO),
    }
}

fn two(o: Outcome) -> Result<(i32, i32), Errno> {
    match o? {
        Ret::Ints(v) if v.len() == 2 => Ok((v[0] as i32, v[1] as i32)),
        _ => Err(Errno::EIO),
    }
}

/// The language's socket type for `ty` (anything else counts as a stream).
fn sock_type(ty: i32) -> SockType {
    match ty {
        libc::SOCK_DGRAM => SockType::Dgram,
        libc::SOCK_SEQPACKET => SockType::Seqpacket,
        _ => SockType::Stream,
    }
}

impl ModelSys<'_> {
    fn call(&mut self, c: Call) -> Outcome {
        let o = self.world.call(self.pid, &c);
        if self.trace {
            let text = match &o {
                Ok(r) => format!("{} = {}", call_strace(&c), ret_text(r)),
                Err(e) => format!("{} = {e}", call_strace(&c)),
            };
            self.lines.push(format!("  {text}"));
            for ev in self.world.take_trace() {
                self.lines.push(format!("      {ev}"));
            }
        }
        o
    }
}

impl Sys for ModelSys<'_> {
    fn open(&mut self, path: &str, flags: u32) -> Result<i32, Errno> {
        one(self.call(Call::Open {
            path: path.to_string(),
            flags: OFlags::from_bits(flags),
            mode: 0,
        }))
    }

    fn pipe(&mut self) -> Result<(i32, i32), Errno> {
        two(self.call(Call::Pipe {
            cloexec: false,
            nonblock: false,
        }))
    }

    fn socketpair(&mut self, ty: i32) -> Result<(i32, i32), Errno> {
        two(self.call(Call::Socketpair {
            ty: sock_type(ty),
            flags: fdlab_model::SockFlags::default(),
        }))
    }

    fn socket(&mut self, ty: i32) -> Result<i32, Errno> {
        one(self.call(Call::Socket {
            ty: sock_type(ty),
            flags: fdlab_model::SockFlags::default(),
        }))
    }

    fn bind(&mut self, fd: i32, name: &str) -> Result<(), Errno> {
        one(self.call(Call::Bind {
            fd,
            name: name.to_string(),
        }))
        .map(|_| ())
    }

    fn unlink_socket(&mut self, _name: &str) -> Result<(), Errno> {
        // The model's file system is the restore's own, and new: nothing
        // was bound in it before.
        Err(Errno::ENOTSOCK)
    }

    fn listen(&mut self, fd: i32, backlog: u32) -> Result<(), Errno> {
        one(self.call(Call::Listen {
            fd,
            backlog: backlog.min(i32::MAX as u32) as i32,
        }))
        .map(|_| ())
    }

    fn connect(&mut self, fd: i32, name: &str) -> Result<(), Errno> {
        one(self.call(Call::Connect {
            fd,
            name: name.to_string(),
        }))
        .map(|_| ())
    }

    fn accept(&mut self, fd: i32) -> Result<i32, Errno> {
        one(self.call(Call::Accept {
            fd,
            flags: fdlab_model::SockFlags::default(),
        }))
    }

    fn epoll_create(&mut self) -> Result<i32, Errno> {
        one(self.call(Call::EpollCreate { cloexec: false }))
    }

    fn epoll_add(&mut self, ep: i32, fd: i32, events: u32) -> Result<(), Errno> {
        self.call(Call::EpollCtl {
            epfd: ep,
            op: EpollOp::Add,
            fd,
            events: Events::from_bits(events),
        })
        .map(|_| ())
    }

    fn eventfd(&mut self) -> Result<i32, Errno> {
        one(self.call(Call::Eventfd {
            cloexec: false,
            nonblock: false,
        }))
    }

    fn shutdown(&mut self, fd: i32, how: i32) -> Result<(), Errno> {
        one(self.call(Call::Shutdown { fd, how })).map(|_| ())
    }

    fn ptypeer(&mut self, master: i32) -> Result<i32, Errno> {
        one(self.call(Call::Ptypeer {
            fd: master,
            noctty: true,
            cloexec: false,
        }))
    }

    fn tiocsctty(&mut self, fd: i32) -> Result<(), Errno> {
        self.call(Call::Tiocsctty { fd }).map(|_| ())
    }

    fn write(&mut self, fd: i32, data: &[u8]) -> Result<usize, Errno> {
        one(self.call(Call::Write {
            fd,
            data: data.to_vec(),
        }))
        .map(|n| n as usize)
    }

    fn lseek(&mut self, fd: i32, offset: u64) -> Result<(), Errno> {
        self.call(Call::Lseek {
            fd,
            offset: offset as i64,
            whence: Whence::Set,
        })
        .map(|_| ())
    }

    /// The model's pipes keep Linux's default capacity, 16 pages.
    fn set_pipe_size(&mut self, _fd: i32, _bytes: u64) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }

    fn setfl(&mut self, fd: i32, flags: u32) -> Result<(), Errno> {
        self.call(Call::Fcntl {
            fd,
            cmd: FcntlCmd::SetFl {
                flags: OFlags::from_bits(flags),
            },
        })
        .map(|_| ())
    }

    fn cloexec(&mut self, fd: i32) -> Result<(), Errno> {
        self.call(Call::Fcntl {
            fd,
            cmd: FcntlCmd::SetFd { cloexec: true },
        })
        .map(|_| ())
    }

    fn dup_from(&mut self, fd: i32, min: u32) -> Result<i32, Errno> {
        one(self.call(Call::Fcntl {
            fd,
            cmd: FcntlCmd::DupFd {
                min: min as i32,
                cloexec: false,
            },
        }))
    }

    fn dup2(&mut self, old: i32, new: i32) -> Result<(), Errno> {
        self.call(Call::Dup2 { old, new }).map(|_| ())
    }

    fn close(&mut self, fd: i32) -> Result<(), Errno> {
        self.call(Call::Close { fd }).map(|_| ())
    }

    fn close_range(&mut self, lo: u32, hi: u32) -> Result<(), Errno> {
        self.call(Call::CloseRange {
            lo,
            hi,
            unshare: false,
            cloexec: false,
        })
        .map(|_| ())
    }

    fn sendmsg(&mut self, sock: i32, data: &[u8], fds: &[i32]) -> Result<Option<usize>, Errno> {
        let r = self.world.sys_sendmsg(self.pid, sock, data, fds);
        self.traced(
            || format!("sendmsg({sock}, {} bytes, SCM_RIGHTS {fds:?})", data.len()),
            &r,
        );
        match r {
            Ok(n) => Ok(Some(n)),
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn recvmsg(&mut self, sock: i32) -> Result<Option<(Vec<u8>, Vec<i32>)>, Errno> {
        let r = self
            .world
            .sys_recvmsg(self.pid, sock, 4 * 253, 253, false)
            .map(|(data, fds, _)| (data, fds));
        if !matches!(r, Err(Errno::EAGAIN)) {
            self.traced(
                || format!("recvmsg({sock})"),
                &r.as_ref().map(|(_, f)| f.len()).map_err(|e| *e),
            );
        }
        match r {
            Ok((data, fds)) => Ok(Some((data, fds.iter().map(|f| f.get() as i32).collect()))),
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set_nofile(&mut self, n: u64) -> Result<(), Errno> {
        self.call(Call::Rlimit { limit: n }).map(|_| ())
    }

    fn notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }
}
