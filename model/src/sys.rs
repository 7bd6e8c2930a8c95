//! The system calls of the language, on top of the file(9) API, with Linux's
//! results and errnos (Linux is the reference the model is compared against).
//! Where OpenBSD differs, the book's chapter on the model says how.
//!
//! No call blocks: where Linux would wait, the model answers `EAGAIN`, as
//! the language's contract says.
//!
//! Floor: the top of the crate. [`World::call`] dispatches a [`Call`] to
//! its system call and then checks every invariant; the system calls use
//! the file(9) layer (`descrip`), the collector's counts (`gc`) and the
//! kernel objects, and nothing calls them but the dispatch and the tests.
//!
//! Descriptor arguments arrive raw (`i32`: a scenario may pass `-1`), and
//! each system call converts each of them once, with [`fd_arg`], where
//! Linux looks at it, so that the order of checks stays Linux's.

use crate::call::{numeric_flags, Call, EpollOp, FcntlCmd, Outcome, Ret, Whence};
use crate::descrip::{CallerRef, FileUse, LarvalFile};
use crate::epoll::{Epoll, EP_MAX_NESTS, PATH_LIMITS};
use crate::errno::Errno;
use crate::eventfd::Eventfd;
use crate::fd::Fd;
use crate::file::FileKind;
use crate::filedesc::FileSlot;
use crate::flags::{Events, OFlags};
use crate::ids::{FileId, Pid, PipeId, PtyId, SockId};
use crate::limits::SCM_MAX_FD;
#[cfg(any(test, feature = "mutants"))]
use crate::mutant::Mutant;
use crate::pipe::{Pipe, PipeEnd};
use crate::poll::EP_MAX_EVENTS;
use crate::pty::{Pty, Side};
use crate::socket::{SockFlags, SockType};
use crate::trace::{Dropper, TraceEvent};
use crate::vnode::{Lookup, VnodeKind, MAX_BYTES};
use crate::waitq::Queue;
use crate::world::World;

/// A descriptor argument: `EBADF` for a negative number, as every call
/// answers it.
pub fn fd_arg(raw: i32) -> Result<Fd, Errno> {
    Fd::from_raw(raw).ok_or(Errno::EBADF)
}

impl World {
    /// Runs `call` as process `pid`. Under `debug_assertions` every invariant
    /// is checked afterwards.
    ///
    /// Precondition: `pid` is live. (A `fork` or `clone_files` to a name in
    /// use is `EEXIST`; the scenario validator rejects it first.)
    pub fn call(&mut self, pid: Pid, call: &Call) -> Outcome {
        let out = self.dispatch(pid, call);
        self.flush_wakes();
        #[cfg(debug_assertions)]
        if self.checked {
            if let Err(v) = crate::invariants::check_all(self) {
                panic!("invariant broken after {call:?}: {v}");
            }
        }
        out
    }

    fn dispatch(&mut self, pid: Pid, call: &Call) -> Outcome {
        use Call::*;
        let fd = |n: Fd| Ret::int(n.get() as i64);
        match call {
            Fork { child } => self.fork(pid, child).map(|_| Ret::int(0)),
            CloneFiles { child } => self.fdshare(pid, child).map(|_| Ret::int(0)),
            UnshareFiles => {
                self.fdunshare(pid);
                Ok(Ret::int(0))
            }
            Exec => {
                self.sys_exec(pid);
                Ok(Ret::int(0))
            }
            Exit => {
                self.sys_exit(pid);
                Ok(Ret::int(0))
            }
            Setsid => self.sys_setsid(pid).map(|_| Ret::int(0)),
            Tiocsctty { fd } => self.sys_tiocsctty(pid, *fd).map(|_| Ret::int(0)),
            Ptypeer {
                fd: n,
                noctty,
                cloexec,
            } => self.sys_ptypeer(pid, *n, *noctty, *cloexec).map(fd),
            Rlimit { limit } => self.sys_setrlimit(pid, *limit).map(|_| Ret::int(0)),
            Open { path, flags, mode } => self.sys_open(pid, path, *flags, *mode).map(fd),
            Close { fd } => self.sys_close(pid, *fd).map(|_| Ret::int(0)),
            Dup { fd: n } => self.sys_dup(pid, *n).map(fd),
            Dup2 { old, new } => self.sys_dup2(pid, *old, *new).map(fd),
            Dup3 { old, new, cloexec } => self.sys_dup3(pid, *old, *new, *cloexec).map(fd),
            Fcntl { fd, cmd } => self.sys_fcntl(pid, *fd, *cmd),
            CloseRange {
                lo,
                hi,
                unshare,
                cloexec,
            } => self
                .sys_close_range(pid, *lo, *hi, *unshare, *cloexec)
                .map(|_| Ret::int(0)),
            Write { fd, data } => self.sys_write(pid, *fd, data).map(|n| Ret::int(n as i64)),
            Read { fd, len } => self.sys_read(pid, *fd, *len).map(Ret::Bytes),
            Lseek { fd, offset, whence } => {
                self.sys_lseek(pid, *fd, *offset, *whence).map(Ret::int)
            }
            Pipe { cloexec, nonblock } => self
                .sys_pipe2(pid, *cloexec, *nonblock)
                .map(|(r, w)| Ret::Ints(vec![r.get() as i64, w.get() as i64])),
            Socketpair { ty, flags } => self
                .sys_socketpair(pid, *ty, *flags)
                .map(|(a, b)| Ret::Ints(vec![a.get() as i64, b.get() as i64])),
            Socket { ty, flags } => self.sys_socket(pid, *ty, *flags).map(fd),
            Bind { fd, name } => self.sys_bind(pid, *fd, name).map(|_| Ret::int(0)),
            Listen { fd, backlog } => self.sys_listen(pid, *fd, *backlog).map(|_| Ret::int(0)),
            Connect { fd, name } => self.sys_connect(pid, *fd, name).map(|_| Ret::int(0)),
            Accept { fd: n, flags } => self.sys_accept(pid, *n, *flags).map(fd),
            Shutdown { fd, how } => self.sys_shutdown(pid, *fd, *how).map(|_| Ret::int(0)),
            Sendfds { sock, fds } => self.sys_sendfds(pid, *sock, fds).map(|_| Ret::int(0)),
            Recvfds { sock, max, cloexec } => {
                self.sys_recvfds(pid, *sock, *max, *cloexec)
                    .map(|(fds, ctrunc)| {
                        Ret::received(fds.iter().map(|f| f.get() as i64).collect(), ctrunc)
                    })
            }
            EpollCreate { cloexec } => self.sys_epoll_create(pid, *cloexec).map(fd),
            EpollCtl {
                epfd,
                op,
                fd,
                events,
            } => self
                .sys_epoll_ctl(pid, *epfd, *op, *fd, *events)
                .map(|_| Ret::int(0)),
            Eventfd { cloexec, nonblock } => self.sys_eventfd2(pid, *cloexec, *nonblock).map(fd),
            // Linux checks the flags first, except accept4, which looks
            // the descriptor up before.
            // A call whose flags do not take such bits (`numeric_flags`)
            // runs as it is (the backends pass them nowhere).
            Flagged { call, .. } => match **call {
                Accept { fd, .. } => match self.fd_getfile(pid, fd_arg(fd)?) {
                    Ok(_) => Err(Errno::EINVAL),
                    Err(e) => Err(e),
                },
                ref c if numeric_flags(c.name()).is_some_and(|n| n.passes_others) => {
                    Err(Errno::EINVAL)
                }
                ref plain => self.dispatch(pid, plain),
            },
            EpollWait { epfd, maxevents } => self
                .sys_epoll_wait(pid, *epfd, *maxevents)
                .map(|v| Ret::Ready(v.into_iter().map(|(f, e)| (f.get() as i64, e)).collect())),
        }
    }
}

impl World {
    /// Allocates a file with `kind` and `flags` and installs it at the lowest
    /// free slot: falloc, fill in, fdinsert, FRELE.
    pub(crate) fn alloc_file(
        &mut self,
        pid: Pid,
        kind: FileKind,
        flags: OFlags,
        cloexec: bool,
    ) -> Result<Fd, Errno> {
        let l = self.falloc(pid)?;
        Ok(self.finish_file(l, kind, flags, cloexec))
    }

    /// Fills in larval file `l` and installs it: what every call that makes
    /// a file does once it has its slot and its object.
    ///
    /// Consumes: `l` (its slot now names the file; the caller's reference
    /// is released).
    pub(crate) fn finish_file(
        &mut self,
        l: LarvalFile,
        kind: FileKind,
        flags: OFlags,
        cloexec: bool,
    ) -> Fd {
        let fd = l.fd();
        let f = self.file_mut(l.id());
        f.kind = kind;
        f.flags = flags;
        let h = self.fdinsert(l, cloexec);
        self.frele(h);
        fd
    }

    /// Two files at the two lowest free slots, for `pipe` and `socketpair`;
    /// `make` builds the shared object once both slots are had.
    ///
    /// Errors: `EMFILE`, with nothing left behind.
    fn alloc_pair(
        &mut self,
        pid: Pid,
        cloexec: bool,
        make: impl FnOnce(&mut World) -> [(FileKind, OFlags); 2],
    ) -> Result<(Fd, Fd), Errno> {
        let a = self.falloc(pid)?;
        let b = match self.falloc(pid) {
            Ok(b) => b,
            Err(e) => {
                self.fdabort(a);
                return Err(e);
            }
        };
        let [(ka, fa), (kb, fb)] = make(self);
        let (fda, fdb) = (a.fd(), b.fd());
        for (l, kind, flags) in [(&a, ka, fa), (&b, kb, fb)] {
            let f = self.file_mut(l.id());
            f.kind = kind;
            f.flags = flags;
        }
        let ha = self.fdinsert(a, cloexec);
        let hb = self.fdinsert(b, cloexec);
        self.frele(ha);
        self.frele(hb);
        Ok((fda, fdb))
    }

    /// `open(2)`. The slot is allocated before the path is looked up, as on
    /// Linux and OpenBSD, so a full table is `EMFILE` even for a missing path
    /// (and `O_CREAT` then creates nothing).
    ///
    /// Errors: `EINVAL` (`O_CREAT|O_DIRECTORY`), `EMFILE`, `ENOENT`,
    /// `EEXIST`, `EISDIR`, `ENOTDIR`, `ENAMETOOLONG`.
    pub fn sys_open(
        &mut self,
        pid: Pid,
        path: &str,
        flags: OFlags,
        mode: u32,
    ) -> Result<Fd, Errno> {
        if flags.contains(OFlags::CREAT) && flags.contains(OFlags::DIRECTORY) {
            return Err(Errno::EINVAL); // Linux 6.4 and later
        }
        let l = self.falloc(pid)?;
        let kind = match self.vn_open(path, flags, mode) {
            Ok(k) => k,
            Err(e) => {
                self.fdabort(l);
                return Err(e);
            }
        };
        Ok(self.finish_file(
            l,
            kind,
            flags.and(OFlags::STATUS_MASK),
            flags.contains(OFlags::CLOEXEC),
        ))
    }

    /// The name-space half of `open`: finds or creates the vnode and applies
    /// `O_TRUNC`. Checks in Linux's order (`open_last_lookups`, `do_open`,
    /// `may_open`).
    fn vn_open(&mut self, path: &str, flags: OFlags, mode: u32) -> Result<FileKind, Errno> {
        let creat = flags.contains(OFlags::CREAT);
        if creat && path.ends_with('/') {
            // Resolve the directories on the way; then O_CREAT of a name
            // with a trailing slash is EISDIR whatever it names.
            self.fs.lookup(path.trim_end_matches('/')).map(|_| ())?;
            return Err(Errno::EISDIR);
        }
        let mut created = false;
        let v = match self.fs.lookup(path)? {
            Lookup::Missing(name) if creat => {
                created = true;
                self.fs.create(name, mode & 0o7777)
            }
            Lookup::Missing(_) => return Err(Errno::ENOENT),
            Lookup::Found(v) => {
                if creat && flags.contains(OFlags::EXCL) {
                    return Err(Errno::EEXIST);
                }
                v
            }
        };
        let writes = flags.writable() || flags.contains(OFlags::TRUNC);
        let privileged = self.privileged;
        match &mut self.fs.vnode_mut(v).kind {
            VnodeKind::Directory if creat || writes => Err(Errno::EISDIR),
            VnodeKind::Directory => Ok(FileKind::Vnode(v)),
            _ if flags.contains(OFlags::DIRECTORY) => Err(Errno::ENOTDIR),
            VnodeKind::Regular(data, perm) => {
                // may_open: the new file's own mode does not apply to the
                // open that creates it; CAP_DAC_OVERRIDE skips the check.
                if !created && !privileged {
                    let denied =
                        (flags.readable() && *perm & 0o400 == 0) || (writes && *perm & 0o200 == 0);
                    if denied {
                        return Err(Errno::EACCES);
                    }
                }
                // Linux truncates even for O_RDONLY|O_TRUNC.
                if flags.contains(OFlags::TRUNC) {
                    data.clear();
                }
                Ok(FileKind::Vnode(v))
            }
            VnodeKind::Ptmx => Ok(FileKind::PtyMaster(PtyId(self.ptys.insert(Pty::new())))),
            VnodeKind::Null | VnodeKind::Zero => Ok(FileKind::Vnode(v)),
            // A socket inode's file operations refuse every open.
            VnodeKind::Socket => Err(Errno::ENXIO),
        }
    }

    /// `close(2)`. Errors: `EBADF`.
    pub fn sys_close(&mut self, pid: Pid, fd: i32) -> Result<(), Errno> {
        self.fdrelease(pid, fd_arg(fd)?)
    }

    /// `dup(2)`. Errors: `EBADF`, then `EMFILE`.
    pub fn sys_dup(&mut self, pid: Pid, fd: i32) -> Result<Fd, Errno> {
        let r = self.fd_getfile(pid, fd_arg(fd)?)?.detach();
        self.dupfd(pid, r, 0, false)
    }

    /// The lowest free number `>= min` gets another reference to the file
    /// the caller looked up (dup, F_DUPFD, F_DUPFD_CLOEXEC).
    ///
    /// Consumes: `r` (the new slot's, or released on error).
    fn dupfd(&mut self, pid: Pid, r: CallerRef, min: u32, cloexec: bool) -> Result<Fd, Errno> {
        #[cfg(any(test, feature = "mutants"))]
        let planted = (self.proc(pid).table.mutant() == Mutant::DupForgetsRef).then_some(r.file);
        match self.fdinstall(pid, r, min, cloexec) {
            Ok(new) => {
                #[cfg(any(test, feature = "mutants"))]
                if let Some(f) = planted {
                    self.file(f).handle.frele();
                }
                Ok(new)
            }
            Err((e, h)) => {
                self.frele(h);
                Err(e)
            }
        }
    }

    /// `dup2(2)`: `dup3` without flags, except that `old == new` returns
    /// `new` if it is open.
    ///
    /// Errors: `EBADF`, `EBUSY` (onto a larval slot).
    pub fn sys_dup2(&mut self, pid: Pid, old: i32, new: i32) -> Result<Fd, Errno> {
        if old == new {
            let fd = fd_arg(old)?;
            drop(self.fd_getfile(pid, fd)?);
            return Ok(fd);
        }
        self.sys_dup3(pid, old, new, false)
    }

    /// `dup3(2)`, in Linux's order of checks (`ksys_dup3`).
    ///
    /// Errors: `EINVAL` (`old == new`), `EBADF` (`new` out of range or `old`
    /// not open), `EBUSY` (`new` is larval).
    pub fn sys_dup3(&mut self, pid: Pid, old: i32, new: i32, cloexec: bool) -> Result<Fd, Errno> {
        if old == new {
            return Err(Errno::EINVAL);
        }
        // `new` is an unsigned int in the kernel: negative is huge.
        let nfd = match Fd::from_raw(new) {
            Some(n) if u64::from(n.get()) < self.fd_limit(pid) => n,
            _ => return Err(Errno::EBADF),
        };
        let h = self.fd_getfile(pid, fd_arg(old)?)?.detach();
        match self.fdinstall_at(pid, nfd, h, cloexec) {
            Ok(replaced) => {
                // The old file is closed after the new one is in place
                // (do_dup2).
                if let Some(t) = replaced {
                    self.closef_slot(t);
                }
                Ok(nfd)
            }
            Err((e, h)) => {
                self.frele(h);
                Err(e)
            }
        }
    }

    /// `fcntl(2)` for the language's commands.
    ///
    /// Errors: `EBADF`; `F_DUPFD`: `EINVAL` (min out of range), `EMFILE`.
    pub fn sys_fcntl(&mut self, pid: Pid, fd: i32, cmd: FcntlCmd) -> Result<Ret, Errno> {
        let nfd = fd_arg(fd)?;
        match cmd {
            FcntlCmd::DupFd { min, cloexec } => {
                // fdget comes first: a bad fd is EBADF whatever min is.
                let r = self.fd_getfile(pid, nfd)?.detach();
                let limit = self.fd_limit(pid);
                match u32::try_from(min).ok().filter(|&m| u64::from(m) < limit) {
                    Some(min) => self
                        .dupfd(pid, r, min, cloexec)
                        .map(|n| Ret::int(n.get().into())),
                    None => {
                        self.frele(r);
                        Err(Errno::EINVAL)
                    }
                }
            }
            FcntlCmd::GetFd => {
                drop(self.fd_getfile(pid, nfd)?);
                let on = matches!(
                    self.table_of(pid).file_slot(nfd),
                    FileSlot::Installed { cloexec: true, .. }
                );
                Ok(Ret::int(on.into()))
            }
            FcntlCmd::SetFd { cloexec } => {
                drop(self.fd_getfile(pid, nfd)?);
                self.table_of(pid).set_cloexec(nfd, cloexec)?;
                Ok(Ret::int(0))
            }
            FcntlCmd::GetFl => {
                let fp = self.fd_getfile(pid, nfd)?;
                Ok(Ret::Flags(fp.file().flags.and(OFlags::STATUS_MASK)))
            }
            FcntlCmd::SetFl { flags } => {
                let mut fp = self.fd_getfile(pid, nfd)?;
                let f = fp.file_mut();
                f.flags = f.flags.without(OFlags::SETFL_MASK) | flags.and(OFlags::SETFL_MASK);
                Ok(Ret::int(0))
            }
            // f_dupfd_query: kcmp's KCMP_FILE question, asked from inside.
            FcntlCmd::DupFdQuery { fd2 } => {
                let a = self.fd_getfile(pid, nfd)?.detach();
                let b = match fd_arg(fd2).and_then(|n| self.fd_getfile(pid, n).map(FileUse::detach))
                {
                    Ok(b) => b,
                    Err(e) => {
                        self.frele(a);
                        return Err(e);
                    }
                };
                let same = a.id() == b.id();
                self.frele(b);
                self.frele(a);
                Ok(Ret::int(same.into()))
            }
        }
    }

    /// `close_range(2)`.
    ///
    /// Errors: `EINVAL` when `lo > hi`.
    pub fn sys_close_range(
        &mut self,
        pid: Pid,
        lo: u32,
        hi: u32,
        unshare: bool,
        cloexec: bool,
    ) -> Result<(), Errno> {
        if lo > hi {
            return Err(Errno::EINVAL);
        }
        if unshare {
            self.fdunshare(pid);
        }
        for (fd, _, _) in self.table_of(pid).installed_all() {
            if !(lo..=hi).contains(&fd.get()) {
                continue;
            }
            if cloexec {
                self.table_of(pid).set_cloexec(fd, true)?;
            } else if let Some(t) = self.fdremove(pid, fd) {
                self.closef_slot(t);
            }
        }
        Ok(())
    }

    /// `execve(2)` as far as descriptors go: unshare the table, then close
    /// the close-on-exec descriptors (Linux `unshare_files` + `do_close_on_exec`).
    pub fn sys_exec(&mut self, pid: Pid) {
        #[cfg(any(test, feature = "mutants"))]
        let keep = self.proc(pid).table.mutant() == Mutant::ExecKeepsShared;
        #[cfg(not(any(test, feature = "mutants")))]
        let keep = false;
        if !keep {
            self.fdunshare(pid);
        }
        self.fdcloseexec(pid);
    }

    /// `setrlimit(RLIMIT_NOFILE)` of the soft limit.
    ///
    /// Errors: `EPERM` above `fs.nr_open`.
    pub fn sys_setrlimit(&mut self, pid: Pid, limit: u64) -> Result<(), Errno> {
        if limit > self.nr_open {
            return Err(Errno::EPERM);
        }
        self.proc_mut(pid).rlimit = limit;
        Ok(())
    }

    /// `write(2)`. Errors: `EBADF` (not open for writing), `EINVAL` (epoll;
    /// eventfd not given 8 bytes), `EPIPE`, `EAGAIN`, `EFBIG`, and what a
    /// socket send may say.
    pub fn sys_write(&mut self, pid: Pid, fd: i32, data: &[u8]) -> Result<usize, Errno> {
        let mut fp = self.fd_getfile(pid, fd_arg(fd)?)?;
        if !fp.file().flags.writable() {
            return Err(Errno::EBADF);
        }
        let id = fp.id();
        let append = fp.file().flags.contains(OFlags::APPEND);
        let offset = fp.file().offset;
        let w = fp.world();
        let deferred = w.deferred;
        match &mut w.file_mut(id).kind {
            FileKind::Larval => unreachable!("fd_getfile never returns a larval file"),
            FileKind::Epoll(_) => Err(Errno::EINVAL),
            FileKind::Eventfd(e) => {
                let n = e.write(data)?;
                w.wake(Queue::Eventfd(id), Events::IN);
                Ok(n)
            }
            &mut FileKind::PtyMaster(p) => {
                let n = w.pty_mut(p).master_write(data);
                // tty_write_unlock wakes the writers, whatever was written.
                w.wake(Queue::TtyWrite(p, Side::Master), Events::OUT);
                if !deferred {
                    w.pty_receive_input(p);
                    w.pty_flush_to_master(p);
                }
                Ok(n)
            }
            &mut FileKind::PtySlave(p) => {
                // hung_up_tty_write.
                if w.pty(p).hung_up() {
                    return Err(Errno::EIO);
                }
                let n = w.pty_mut(p).slave_write(data);
                w.wake(Queue::TtyWrite(p, Side::Slave), Events::OUT);
                if !deferred {
                    w.pty_flush_to_master(p);
                }
                Ok(n)
            }
            &mut FileKind::Pipe(p, _) => {
                let r = w.pipe_mut(p).write(data);
                // pipe_write wakes the readers whatever it managed, unless
                // asked to write nothing (epoll "nonsensically wants a
                // wakeup whether the pipe was already empty or not").
                if !data.is_empty() {
                    w.wake(Queue::PipeRead(p), Events::IN);
                }
                r
            }
            &mut FileKind::Socket(s) => {
                w.socks.presend(s)?;
                w.sock_send(s, data, Vec::new(), false)
            }
            &mut FileKind::Vnode(v) => match &mut w.fs.vnode_mut(v).kind {
                VnodeKind::Regular(d, _) => {
                    if data.is_empty() {
                        return Ok(0);
                    }
                    let pos = if append { d.size() } else { offset };
                    if pos >= MAX_BYTES {
                        return Err(Errno::EFBIG);
                    }
                    let n = data.len().min((MAX_BYTES - pos) as usize);
                    d.write(pos, &data[..n]);
                    w.file_mut(id).offset = pos + n as u64;
                    Ok(n)
                }
                VnodeKind::Null | VnodeKind::Zero | VnodeKind::Ptmx => Ok(data.len()),
                VnodeKind::Directory => Err(Errno::EISDIR),
                VnodeKind::Socket => unreachable!("a socket file is never open"),
            },
        }
    }

    /// `read(2)`. Errors: `EBADF` (not open for reading), `EINVAL` (epoll;
    /// an offset that would overflow; eventfd under 8 bytes), `EISDIR`,
    /// `EAGAIN`, `ECONNRESET`.
    pub fn sys_read(&mut self, pid: Pid, fd: i32, len: usize) -> Result<Vec<u8>, Errno> {
        let mut fp = self.fd_getfile(pid, fd_arg(fd)?)?;
        if !fp.file().flags.readable() {
            return Err(Errno::EBADF);
        }
        if matches!(fp.file().kind, FileKind::Epoll(_)) {
            return Err(Errno::EINVAL);
        }
        let offset = fp.file().offset;
        // rw_verify_area: pos + count must not overflow.
        if (offset as i64).checked_add(len as i64).is_none() {
            return Err(Errno::EINVAL);
        }
        let id = fp.id();
        let w = fp.world();
        if len > 0 {
            match w.file(id).kind {
                FileKind::PtyMaster(p) => w.pty_wait_for_input(p, Side::Master),
                FileKind::PtySlave(p) => w.pty_wait_for_input(p, Side::Slave),
                _ => {}
            }
        }
        match &mut w.file_mut(id).kind {
            FileKind::Larval | FileKind::Epoll(_) => unreachable!("checked above"),
            FileKind::Eventfd(e) => {
                let out = e.read(len)?;
                w.wake(Queue::Eventfd(id), Events::OUT);
                Ok(out)
            }
            &mut FileKind::PtyMaster(p) => w.pty_mut(p).master_read(len),
            &mut FileKind::PtySlave(p) => w.pty_mut(p).slave_read(len),
            &mut FileKind::Pipe(p, _) => {
                let pipe = w.pipe_mut(p);
                let was_full = pipe.is_full();
                let r = pipe.read(len);
                // A page freed in a full pipe wakes the writers.
                if was_full && !w.pipe(p).is_full() {
                    w.wake(Queue::PipeWrite(p), Events::OUT);
                }
                r
            }
            &mut FileKind::Socket(s) => {
                // sock_read_iter: "Match SYS5 behaviour".
                if len == 0 {
                    return Ok(Vec::new());
                }
                let got = w.socks.recv(s, len)?;
                // read(2) has no control buffer: files in flight are dropped.
                w.release(got.fds.into_iter().map(|f| (f, Dropper::Discard)).collect());
                Ok(got.data)
            }
            &mut FileKind::Vnode(v) => match &w.fs.vnode(v).kind {
                VnodeKind::Regular(d, _) => {
                    let out = d.read(offset, len);
                    w.file_mut(id).offset = offset + out.len() as u64;
                    Ok(out)
                }
                VnodeKind::Directory => Err(Errno::EISDIR),
                VnodeKind::Null | VnodeKind::Ptmx => Ok(Vec::new()),
                VnodeKind::Zero => Ok(vec![0; len]),
                VnodeKind::Socket => unreachable!("a socket file is never open"),
            },
        }
    }

    /// `lseek(2)`. Errors: `ESPIPE` (pipes, sockets, terminals), `EINVAL`.
    pub fn sys_lseek(&mut self, pid: Pid, fd: i32, off: i64, whence: Whence) -> Result<i64, Errno> {
        let mut fp = self.fd_getfile(pid, fd_arg(fd)?)?;
        let cur = fp.file().offset as i64;
        let (eof, max) = match &fp.file().kind {
            FileKind::Pipe(..)
            | FileKind::Socket(..)
            | FileKind::PtyMaster(_)
            | FileKind::PtySlave(_) => return Err(Errno::ESPIPE),
            // noop_llseek: the position stays 0 and nothing fails.
            FileKind::Epoll(_) | FileKind::Eventfd(_) => return Ok(0),
            FileKind::Larval => unreachable!("fd_getfile never returns a larval file"),
            &FileKind::Vnode(v) => match &fp.world.fs.vnode(v).kind {
                VnodeKind::Regular(d, _) => (d.size() as i64, MAX_BYTES as i64),
                // ext4 hashed directories: the end is the largest hash.
                VnodeKind::Directory => (i64::MAX, i64::MAX),
                // null_lseek: always 0.
                VnodeKind::Null | VnodeKind::Zero | VnodeKind::Ptmx => return Ok(0),
                VnodeKind::Socket => unreachable!("a socket file is never open"),
            },
        };
        let base = match whence {
            Whence::Set => 0,
            Whence::Cur => cur,
            Whence::End => eof,
        };
        let new = base
            .checked_add(off)
            .filter(|&n| (0..=max).contains(&n))
            .ok_or(Errno::EINVAL)?;
        fp.file_mut().offset = new as u64;
        Ok(new)
    }

    /// `pipe2(2)`: the read end first.
    pub fn sys_pipe(&mut self, pid: Pid, cloexec: bool) -> Result<(Fd, Fd), Errno> {
        self.sys_pipe2(pid, cloexec, false)
    }

    /// `pipe2(2)` with `O_CLOEXEC` and `O_NONBLOCK` as asked (calls never
    /// block here; the flag shows in `F_GETFL`).
    pub fn sys_pipe2(
        &mut self,
        pid: Pid,
        cloexec: bool,
        nonblock: bool,
    ) -> Result<(Fd, Fd), Errno> {
        let nb = if nonblock {
            OFlags::NONBLOCK
        } else {
            OFlags::RDONLY
        };
        self.alloc_pair(pid, cloexec, |w| {
            let p = PipeId(w.pipes.insert(Pipe::default()));
            [
                (FileKind::Pipe(p, PipeEnd::Read), OFlags::RDONLY | nb),
                (FileKind::Pipe(p, PipeEnd::Write), OFlags::WRONLY | nb),
            ]
        })
    }

    /// `socketpair(AF_UNIX, ty, 0)`.
    pub fn sys_socketpair(
        &mut self,
        pid: Pid,
        ty: SockType,
        flags: SockFlags,
    ) -> Result<(Fd, Fd), Errno> {
        self.alloc_pair(pid, flags.cloexec, |w| {
            let (a, b) = w.socks.pair(ty);
            [
                (FileKind::Socket(a), flags.status()),
                (FileKind::Socket(b), flags.status()),
            ]
        })
    }

    /// `epoll_create1(2)`.
    pub fn sys_epoll_create(&mut self, pid: Pid, cloexec: bool) -> Result<Fd, Errno> {
        self.alloc_file(
            pid,
            FileKind::Epoll(Epoll::default()),
            OFlags::RDWR,
            cloexec,
        )
    }

    /// `eventfd2(2)` with an initial count of 0.
    pub fn sys_eventfd(&mut self, pid: Pid, cloexec: bool) -> Result<Fd, Errno> {
        self.sys_eventfd2(pid, cloexec, false)
    }

    /// `eventfd2(2)` with an initial count of 0 and `EFD_CLOEXEC`,
    /// `EFD_NONBLOCK` as asked.
    pub fn sys_eventfd2(&mut self, pid: Pid, cloexec: bool, nonblock: bool) -> Result<Fd, Errno> {
        let flags = if nonblock {
            OFlags::RDWR | OFlags::NONBLOCK
        } else {
            OFlags::RDWR
        };
        self.alloc_file(pid, FileKind::Eventfd(Eventfd::default()), flags, cloexec)
    }

    /// Sends `data` with `files` in flight from socket `s`.
    ///
    /// Consumes: the references in `files` (queued, or released on error).
    fn sock_send(
        &mut self,
        s: SockId,
        data: &[u8],
        files: Vec<CallerRef>,
        too_many_fds: bool,
    ) -> Result<usize, Errno> {
        match self.socks.plan_send(s, data.len(), too_many_fds) {
            Ok((to, plan)) => {
                let n = plan.iter().map(|c| c.0).sum();
                let ids: Vec<FileId> = files
                    .into_iter()
                    .map(|h| {
                        // unp_internalize: the caller's reference is now in flight.
                        self.file_mut(h.file).callers -= 1;
                        self.record(|w| TraceEvent::UnpInternalize {
                            file: w.serial(h.file),
                        });
                        h.file
                    })
                    .collect();
                self.socks.enqueue(s, to, &data[..n], &plan, ids);
                Ok(n)
            }
            Err(e) => {
                for h in files {
                    self.frele(h);
                }
                self.release(e.lost.into_iter().map(|f| (f, Dropper::Discard)).collect());
                Err(e.errno)
            }
        }
    }

    /// `sendmsg(2)` of one NUL byte with SCM_RIGHTS carrying `fds` (the
    /// language's `sendfds`).
    ///
    /// Errors: as [`World::sys_sendmsg`].
    pub fn sys_sendfds(&mut self, pid: Pid, sock: i32, fds: &[i32]) -> Result<(), Errno> {
        self.sys_sendmsg(pid, sock, b"\0", fds).map(|_| ())
    }

    /// `sendmsg(2)` of `data` with SCM_RIGHTS carrying `fds` (none: a plain
    /// send), never blocking. Returns how many bytes were sent (a stream
    /// send may send part of `data`).
    ///
    /// Errors, in Linux's order: `EBADF`/`ENOTSOCK` (the socket), a
    /// seqpacket socket's pending error or `ENOTCONN`, `EINVAL` (more than
    /// 253 files), `EBADF` (a file), then the send's errors,
    /// among them `ETOOMANYREFS` for a user without privilege with more
    /// references in flight than its descriptor limit.
    pub fn sys_sendmsg(
        &mut self,
        pid: Pid,
        sock: i32,
        data: &[u8],
        fds: &[i32],
    ) -> Result<usize, Errno> {
        let (sp, s) = self.getsock_id(pid, sock)?;
        // A seqpacket socket checks its connection before the files.
        let too_many = if fds.len() > SCM_MAX_FD {
            Err(Errno::EINVAL)
        } else {
            Ok(())
        };
        let early = self.socks.presend(s).and(too_many);
        if let Err(e) = early {
            self.frele(sp);
            return Err(e);
        }
        let mut files = Vec::with_capacity(fds.len());
        for &fd in fds {
            let got = match fd_arg(fd) {
                Ok(n) => self.fd_getfile(pid, n).map(FileUse::detach),
                Err(e) => Err(e),
            };
            match got {
                Ok(h) => files.push(h),
                Err(e) => {
                    for h in files {
                        self.frele(h);
                    }
                    self.frele(sp);
                    return Err(e);
                }
            }
        }
        // too_many_unix_fds: a user without CAP_SYS_RESOURCE may have no more
        // references in flight than the sender's RLIMIT_NOFILE (the count
        // is checked before this send adds to it). On Linux the count is
        // the user's, across the system; here it is the scenario's.
        let too_many = !self.privileged && !files.is_empty() && {
            let in_flight: u64 = self
                .in_flight_counts()
                .values()
                .map(|&n| u64::from(n))
                .sum();
            in_flight > self.proc(pid).rlimit
        };
        let r = self.sock_send(s, data, files, too_many);
        self.frele(sp);
        r
    }

    /// `recvmsg(2)` with a `len`-byte buffer and room for `max` files:
    /// installs the files that came with the data at the lowest free
    /// numbers, in sending order, as many as fit the control buffer and
    /// the table; the rest are dropped and the call still succeeds, with
    /// `MSG_CTRUNC` (`scm_detach_fds`). Returns the data, the descriptors
    /// and whether `MSG_CTRUNC` was set.
    ///
    /// Errors: `EBADF`, `ENOTSOCK`, `EAGAIN`, `ECONNRESET`.
    pub fn sys_recvmsg(
        &mut self,
        pid: Pid,
        sock: i32,
        len: usize,
        max: u32,
        cloexec: bool,
    ) -> Result<(Vec<u8>, Vec<Fd>, bool), Errno> {
        let (sp, s) = self.getsock_id(pid, sock)?;
        let got = self.socks.recv(s, len);
        self.frele(sp);
        let got = got?;
        let mut installed = Vec::new();
        let mut dropped = Vec::new();
        for f in got.fds {
            if !dropped.is_empty() || installed.len() as u32 >= max {
                // Once one file did not fit, the rest are dropped too.
                dropped.push((f, Dropper::Discard));
                continue;
            }
            // unp_externalize: the reference in flight becomes the slot's.
            self.file_mut(f).callers += 1;
            match self.fdinstall(pid, CallerRef { file: f }, 0, cloexec) {
                Ok(fd) => installed.push(fd),
                Err((_, h)) => {
                    self.file_mut(h.file).callers -= 1;
                    dropped.push((h.file, Dropper::Discard));
                }
            }
        }
        let ctrunc = !dropped.is_empty();
        self.release(dropped);
        Ok((got.data, installed, ctrunc))
    }

    /// `recvmsg(2)` with a one-byte buffer and room for `max` files (the
    /// language's `recvfds`): the descriptors, and whether `MSG_CTRUNC`
    /// was set.
    ///
    /// Errors: as [`World::sys_recvmsg`].
    pub fn sys_recvfds(
        &mut self,
        pid: Pid,
        sock: i32,
        max: u32,
        cloexec: bool,
    ) -> Result<(Vec<Fd>, bool), Errno> {
        self.sys_recvmsg(pid, sock, 1, max, cloexec)
            .map(|(_, fds, ctrunc)| (fds, ctrunc))
    }

    /// `epoll_ctl(2)` ADD, DEL and MOD, in Linux's order of checks
    /// (`do_epoll_ctl`).
    ///
    /// Errors: `EBADF`, `EPERM` (target cannot be polled), `EINVAL` (epfd
    /// not an epoll, the target is the epoll itself, `EPOLLEXCLUSIVE` where
    /// it may not be, too many wakeup paths), `ELOOP`, `EEXIST`, `ENOENT`.
    pub fn sys_epoll_ctl(
        &mut self,
        pid: Pid,
        epfd: i32,
        op: EpollOp,
        fd: i32,
        events: Events,
    ) -> Result<(), Errno> {
        let ep = self.fd_getfile(pid, fd_arg(epfd)?)?.detach();
        let got = match fd_arg(fd) {
            Ok(n) => self.fd_getfile(pid, n).map(|t| (n, t.detach())),
            Err(e) => Err(e),
        };
        let (nfd, tf) = match got {
            Ok(t) => t,
            Err(e) => {
                self.frele(ep);
                return Err(e);
            }
        };
        let r = self.epoll_ctl_files(ep.id(), op, nfd, tf.id(), events);
        self.frele(tf);
        self.frele(ep);
        r
    }

    /// `epoll_wait(2)` with a timeout of 0: the ready registrations, at
    /// most `maxevents`, each as the number it was registered under (which
    /// may be closed by now) and the events it is ready for.
    ///
    /// Errors, in this kernel's order (Linux 6.18 looks the descriptor up
    /// first): `EBADF`, `EINVAL` (`maxevents` not in `1..=EP_MAX_EVENTS`,
    /// or not an epoll).
    pub fn sys_epoll_wait(
        &mut self,
        pid: Pid,
        epfd: i32,
        maxevents: i32,
    ) -> Result<Vec<(Fd, Events)>, Errno> {
        let ep = self.fd_getfile(pid, fd_arg(epfd)?)?.detach();
        let out = match self.file(ep.id()).kind {
            _ if maxevents <= 0 || maxevents > EP_MAX_EVENTS => Err(Errno::EINVAL),
            FileKind::Epoll(_) => Ok(self
                .ep_send_events(ep.id(), maxevents as usize)
                .into_iter()
                .map(|(key, events)| (key.0, events))
                .collect()),
            _ => Err(Errno::EINVAL),
        };
        self.frele(ep);
        out
    }

    fn epoll_ctl_files(
        &mut self,
        ep: FileId,
        op: EpollOp,
        fd: Fd,
        target: FileId,
        events: Events,
    ) -> Result<(), Errno> {
        if !self.file(target).can_poll() {
            return Err(Errno::EPERM);
        }
        if ep == target || !matches!(self.file(ep).kind, FileKind::Epoll(_)) {
            return Err(Errno::EINVAL);
        }
        let nested = matches!(self.file(target).kind, FileKind::Epoll(_));
        // Exclusive wakeups are set up at ADD only, and never nested.
        if op != EpollOp::Del && events.contains(Events::EXCLUSIVE) {
            let ok = op == EpollOp::Add && !nested && Events::EXCLUSIVE_OK.contains(events);
            if !ok {
                return Err(Errno::EINVAL);
            }
        }
        // Linux checks the whole graph only when the new link can lengthen
        // a path: the epoll is itself watched, or the target is an epoll.
        let full_check = op == EpollOp::Add && (nested || !self.file(ep).watched_by.is_empty());
        if full_check && nested && self.ep_loop_check(ep, target) {
            return Err(Errno::ELOOP);
        }
        let key = (fd, target);
        let registered = self.epoll(ep).interest.get(&key).copied();
        // Linux adds EPOLLERR|EPOLLHUP to every registration.
        let events = events | Events::ERR | Events::HUP;
        match op {
            EpollOp::Add => {
                if registered.is_some() {
                    return Err(Errno::EEXIST);
                }
                self.ep_insert(ep, key, events);
                if full_check && !self.wakeup_paths_within_limits(target) {
                    self.ep_remove(ep, key);
                    return Err(Errno::EINVAL);
                }
                self.ep_link_if_ready(ep, key);
            }
            EpollOp::Del => {
                if registered.is_none() {
                    return Err(Errno::ENOENT);
                }
                self.ep_remove(ep, key);
            }
            EpollOp::Mod => match registered {
                None => return Err(Errno::ENOENT),
                Some(old) if old.contains(Events::EXCLUSIVE) => return Err(Errno::EINVAL),
                Some(_) => self.ep_modify(ep, key, events),
            },
        }
        Ok(())
    }

    /// Whether, with the link from `target` into `ep` made, every file the
    /// link reaches still has few enough wakeup paths (Linux
    /// `reverse_path_check`). The files checked are the target, or, when it
    /// is an epoll, every non-epoll file registered below it
    /// (`ep_loop_check_proc` lists them). From each, every chain of
    /// registrations up to an epoll that nothing watches is a path; a file
    /// may have any number of paths of length 1, but at most
    /// [`PATH_LIMITS`] of each longer length.
    fn wakeup_paths_within_limits(&self, target: FileId) -> bool {
        let mut files: Vec<FileId> = Vec::new();
        if matches!(self.file(target).kind, FileKind::Epoll(_)) {
            let mut seen = vec![target];
            let mut stack = vec![target];
            while let Some(f) = stack.pop() {
                let FileKind::Epoll(e) = &self.file(f).kind else {
                    continue;
                };
                for g in e.nested() {
                    if matches!(self.file(g).kind, FileKind::Epoll(_)) {
                        if !seen.contains(&g) {
                            seen.push(g);
                            stack.push(g);
                        }
                    } else if !files.contains(&g) {
                        files.push(g);
                    }
                }
            }
        } else {
            files.push(target);
        }
        files.iter().all(|&f| {
            let mut count = [0usize; PATH_LIMITS.len()];
            self.count_paths(f, 0, &mut count)
        })
    }

    /// `reverse_path_check_proc`: counts the paths up from the watchers of
    /// `f`, `depth` links above the file checked; false past a limit.
    fn count_paths(&self, f: FileId, depth: usize, count: &mut [usize]) -> bool {
        if depth > EP_MAX_NESTS {
            return false;
        }
        // One path per registration: a file registered twice in one epoll
        // (under two numbers) wakes it twice.
        self.file(f).watched_by.iter().all(|&ep| {
            if self.file(ep).watched_by.is_empty() {
                depth == 0 || {
                    count[depth] += 1;
                    count[depth] <= PATH_LIMITS[depth]
                }
            } else {
                self.count_paths(ep, depth + 1, count)
            }
        })
    }

    /// Whether adding epoll `target` to epoll `ep` would make a cycle or nest
    /// deeper than `EP_MAX_NESTS` (Linux `ep_loop_check`).
    fn ep_loop_check(&self, ep: FileId, target: FileId) -> bool {
        // Depth of epoll sets below `f`, or None when `ep` is among them.
        fn down(w: &World, f: FileId, ep: FileId, depth: usize) -> Option<usize> {
            if f == ep {
                return None;
            }
            if depth > EP_MAX_NESTS {
                return Some(depth);
            }
            let FileKind::Epoll(e) = &w.file(f).kind else {
                return Some(0);
            };
            let mut best = 0;
            for g in e.nested() {
                if matches!(w.file(g).kind, FileKind::Epoll(_)) {
                    best = best.max(down(w, g, ep, depth + 1)? + 1);
                }
            }
            Some(best)
        }
        // Depth of epoll sets above `f`.
        fn up(w: &World, f: FileId, depth: usize) -> usize {
            if depth > EP_MAX_NESTS {
                return depth;
            }
            w.file(f)
                .watched_by
                .iter()
                .map(|&p| up(w, p, depth + 1) + 1)
                .max()
                .unwrap_or(0)
        }
        match down(self, target, ep, 0) {
            None => true,
            Some(d) => up(self, ep, 0) + 1 + d > EP_MAX_NESTS,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Errno, OFlags, World};

    #[test]
    fn owner_bits_apply_unless_privileged() {
        let mut w = World::new();
        let p = w.spawn("p").unwrap();
        // Creating with mode 0400 and O_WRONLY succeeds: the mode applies
        // to later opens.
        assert!(w
            .sys_open(p, "f", OFlags::CREAT | OFlags::WRONLY, 0o400)
            .is_ok());
        assert!(w.sys_open(p, "f", OFlags::RDWR, 0).is_ok(), "root bypasses");
        w.set_privileged(false);
        assert_eq!(w.sys_open(p, "f", OFlags::RDWR, 0), Err(Errno::EACCES));
        assert_eq!(
            w.sys_open(p, "f", OFlags::RDONLY | OFlags::TRUNC, 0),
            Err(Errno::EACCES)
        );
        assert!(w.sys_open(p, "f", OFlags::RDONLY, 0).is_ok());
    }

    /// too_many_unix_fds: without privilege, a send carrying files fails
    /// once more references are in flight than the sender's descriptor
    /// limit; the count is checked before the send adds to it, and a send
    /// without files is not checked.
    #[test]
    fn too_many_references_in_flight_unless_privileged() {
        use crate::{Call, SockType};
        for privileged in [true, false] {
            let mut w = World::new();
            w.set_privileged(privileged);
            let p = w.spawn("p").unwrap();
            let pair = Call::Socketpair {
                ty: SockType::Stream,
                flags: crate::SockFlags::default(),
            };
            w.call(p, &pair).unwrap();
            w.call(p, &Call::Rlimit { limit: 2 }).unwrap();
            let send = Call::Sendfds {
                sock: 0,
                fds: vec![0, 0],
            };
            // 0 in flight, then 2: neither is over 2.
            assert!(w.call(p, &send).is_ok());
            assert!(w.call(p, &send).is_ok());
            // 4 in flight.
            let third = w.call(p, &send);
            let write = Call::Write {
                fd: 0,
                data: b"x".to_vec(),
            };
            if privileged {
                assert!(third.is_ok());
            } else {
                assert_eq!(third, Err(Errno::ETOOMANYREFS));
                assert!(w.call(p, &write).is_ok(), "no files, no check");
                // Receiving takes two back out of flight: 2 is not over 2.
                w.call(p, &Call::Rlimit { limit: 10 }).unwrap();
                w.call(
                    p,
                    &Call::Recvfds {
                        sock: 1,
                        max: 253,
                        cloexec: false,
                    },
                )
                .unwrap();
                w.call(p, &Call::Rlimit { limit: 2 }).unwrap();
                assert!(w.call(p, &send).is_ok());
            }
            crate::invariants::check_all(&w).unwrap();
        }
    }

    /// reverse_path_check: with a chain of `depth` epolls above a pipe's
    /// epoll, the pipe may be registered `limit` times (one path each) and
    /// no more; the refused registration is not left behind, and linking
    /// the chain back is refused the same way.
    #[test]
    fn wakeup_paths_are_limited_by_length() {
        use crate::epoll::PATH_LIMITS;
        use crate::{EpollOp, Events, Fd};
        for (depth, &limit) in PATH_LIMITS.iter().enumerate().skip(1) {
            let mut w = World::new();
            let p = w.spawn("p").unwrap();
            let (r, _) = w.sys_pipe(p, false).unwrap();
            let eps: Vec<Fd> = (0..=depth)
                .map(|_| w.sys_epoll_create(p, false).unwrap())
                .collect();
            let num = |fd: Fd| fd.get() as i32;
            let add = |w: &mut World, ep: Fd, fd: i32| {
                w.sys_epoll_ctl(p, num(ep), EpollOp::Add, fd, Events::IN)
            };
            for pair in eps.windows(2) {
                add(&mut w, pair[1], num(pair[0])).unwrap();
            }
            let mut numbers = vec![num(r)];
            while numbers.len() <= limit {
                numbers.push(w.sys_dup(p, num(r)).unwrap().get() as i32);
            }
            let (last, allowed) = numbers.split_last().unwrap();
            for &n in allowed {
                assert_eq!(add(&mut w, eps[0], n), Ok(()), "depth {depth}");
            }
            assert_eq!(
                add(&mut w, eps[0], *last),
                Err(Errno::EINVAL),
                "depth {depth}"
            );
            crate::invariants::check_all(&w).unwrap();
            // Unlinked, the bottom epoll takes it (paths of length 1 are
            // free); linking it back makes `limit + 1` long paths.
            let unlink = |w: &mut World| {
                w.sys_epoll_ctl(p, num(eps[1]), EpollOp::Del, num(eps[0]), Events::IN)
            };
            unlink(&mut w).unwrap();
            assert_eq!(add(&mut w, eps[0], *last), Ok(()));
            assert_eq!(add(&mut w, eps[1], num(eps[0])), Err(Errno::EINVAL));
            assert_eq!(
                unlink(&mut w),
                Err(Errno::ENOENT),
                "the refused link is gone"
            );
            crate::invariants::check_all(&w).unwrap();
        }
    }
}
