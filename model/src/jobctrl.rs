//! Sessions and controlling terminals (Linux `setsid` and
//! `tty_jobctrl.c`), and opening a pty's slave, which can make it one.
//!
//! `setsid` puts a process in a session of its own, which it leads, with no
//! controlling terminal; it fails for a process that leads its process
//! group already (one that called `setsid`: the language makes no other
//! groups). A session leader without a controlling terminal may take a
//! terminal no session has (`TIOCSCTTY`); on a pty master that is the pty's
//! slave, which is the terminal a controlling terminal always is. Opening
//! the slave does the same unless asked not to (`O_NOCTTY`). A child
//! inherits its parent's session and controlling terminal; `exec` keeps
//! them. Two things take the terminal away from every process of the
//! session: its leader's exit (`disassociate_ctty`), and the master's last
//! close, which hangs the slave up (`tty_vhangup`). Linux sends `SIGHUP`
//! then, which scenario processes ignore.
//!
//! Floor: the system calls (beside `sys` and `uipc`): it looks descriptors
//! up with the file(9) layer.

use crate::errno::Errno;
use crate::fd::Fd;
use crate::file::FileKind;
use crate::flags::OFlags;
use crate::ids::{Pid, PtyId};
use crate::sys::fd_arg;
use crate::world::World;

/// What a terminal ioctl finds at a descriptor: the pty behind a master or
/// a live slave. Errors: `ENOTTY` for what is no terminal, `EINVAL` for an
/// epoll instance (whose own ioctl refuses what it does not know, Linux
/// 6.18), `EIO` for a hung-up slave (`hung_up_tty_ioctl`).
fn terminal(kind: &FileKind, w: &World) -> Result<(PtyId, bool), Errno> {
    match *kind {
        FileKind::PtyMaster(p) => Ok((p, true)),
        FileKind::PtySlave(p) if w.pty(p).hung_up() => Err(Errno::EIO),
        FileKind::PtySlave(p) => Ok((p, false)),
        FileKind::Epoll(_) => Err(Errno::EINVAL),
        _ => Err(Errno::ENOTTY),
    }
}

impl World {
    /// `setsid(2)`: a new session and process group, both led by `pid`,
    /// with no controlling terminal.
    ///
    /// Errors: `EPERM` when `pid` leads a process group already.
    pub fn sys_setsid(&mut self, pid: Pid) -> Result<(), Errno> {
        if self.proc(pid).leader {
            return Err(Errno::EPERM);
        }
        let s = self.next_session;
        self.next_session += 1;
        let p = self.proc_mut(pid);
        p.session = Some(s);
        p.leader = true;
        p.ctty = None;
        Ok(())
    }

    /// `ioctl(fd, TIOCSCTTY, 0)`: the terminal at `fd` becomes `pid`'s
    /// controlling terminal (`tiocsctty`).
    ///
    /// Errors, in Linux's order: `EBADF`, what [`terminal`] says, then
    /// `EPERM` when `pid` does not lead its session or has a controlling
    /// terminal, when another session has this one, or when the file is
    /// not open for reading and the caller is not privileged. Asking for
    /// the terminal the session has already succeeds.
    pub fn sys_tiocsctty(&mut self, pid: Pid, fd: i32) -> Result<(), Errno> {
        let mut fp = self.fd_getfile(pid, fd_arg(fd)?)?;
        let readable = fp.file().flags.readable();
        let (pty, _) = terminal(&fp.file().kind, fp.world)?;
        let w = fp.world();
        let has = w.pty(pty).session;
        let p = w.proc(pid);
        if p.leader && p.session == has {
            return Ok(());
        }
        if !p.leader || p.ctty.is_some() || has.is_some() {
            return Err(Errno::EPERM);
        }
        if !readable && !w.privileged {
            return Err(Errno::EPERM);
        }
        w.proc_set_tty(pid, pty);
        Ok(())
    }

    /// `__proc_set_tty`: pty `pty`'s slave becomes the controlling terminal
    /// of `pid` and of its session.
    fn proc_set_tty(&mut self, pid: Pid, pty: PtyId) {
        self.pty_mut(pty).session = self.proc(pid).session;
        self.proc_mut(pid).ctty = Some(pty);
    }

    /// `ioctl(fd, TIOCSPTLCK, 0)` then `ioctl(fd, TIOCGPTPEER, flags)`: opens
    /// the slave of the pty master at `fd` (`O_RDWR`, with `O_CLOEXEC` and
    /// `O_NOCTTY` as asked) at the lowest free descriptor. Unless
    /// `O_NOCTTY`, a session leader without a controlling terminal takes
    /// the slave as one if no session has it (`tty_open_proc_set_tty`).
    ///
    /// Errors, in Linux's order: `EBADF`, what [`terminal`] says
    /// (`TIOCSPTLCK`, which a slave does not know: `ENOTTY`), `EMFILE`.
    pub fn sys_ptypeer(
        &mut self,
        pid: Pid,
        fd: i32,
        noctty: bool,
        cloexec: bool,
    ) -> Result<Fd, Errno> {
        // The master stays in use across the ioctl, as fdget holds it.
        let mut fp = self.fd_getfile(pid, fd_arg(fd)?)?;
        let pty = match terminal(&fp.file().kind, fp.world)? {
            (p, true) => p,
            (_, false) => return Err(Errno::ENOTTY),
        };
        let w = fp.world();
        // TIOCGPTPEER opens with dentry_open, which keeps O_CLOEXEC in the
        // file's flags (open(2) strips it): /proc shows every descriptor
        // of the file as close-on-exec.
        let flags = if cloexec {
            OFlags::RDWR | OFlags::CLOEXEC
        } else {
            OFlags::RDWR
        };
        let fd = w.alloc_file(pid, FileKind::PtySlave(pty), flags, cloexec)?;
        w.pty_mut(pty).open_slave();
        let (p, has) = (w.proc(pid), w.pty(pty).session);
        if !noctty && p.leader && p.ctty.is_none() && has.is_none() {
            w.proc_set_tty(pid, pty);
        }
        Ok(fd)
    }

    /// `exit` of `pid`: its table goes (`fdfree`), and then, if it led its
    /// session and still has its terminal, the terminal leaves the session
    /// and every process of the session loses it (`disassociate_ctty(1)`).
    pub fn sys_exit(&mut self, pid: Pid) {
        let p = self.proc(pid);
        let (leader, session, ctty) = (p.leader, p.session, p.ctty);
        // Closing its files may hang the terminal up (and free it) first.
        self.fdfree(pid);
        let Some(t) = ctty.filter(|_| leader) else {
            return;
        };
        if let Some(pty) = self.ptys.get_mut(t.0).filter(|p| p.session == session) {
            pty.session = None;
            // session_clear_tty
            self.clear_ctty(|p| p.session == session);
        }
    }
}
