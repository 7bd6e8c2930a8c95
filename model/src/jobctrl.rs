//! Sessions and controlling terminals (Linux `setsid` and
//! `tty_jobctrl.c`), as far as a pty master can make them.
//!
//! `setsid` puts a process in a session of its own, which it leads, with no
//! controlling terminal; it fails for a process that leads its process
//! group already (one that called `setsid`: the language makes no other
//! groups). A session leader without a controlling terminal may take a
//! terminal no session has (`TIOCSCTTY`); on a pty master that is the pty's
//! slave, which is the terminal a controlling terminal always is. A child
//! inherits its parent's session and controlling terminal; `exec` keeps
//! them. Two things take the terminal away from every process of the
//! session: its leader's exit (`disassociate_ctty`), and the master's last
//! close, which hangs the slave up (`tty_vhangup`). Linux sends `SIGHUP`
//! then, which scenario processes ignore.
//!
//! Floor: the system calls (beside `sys` and `uipc`): it looks descriptors
//! up with the file(9) layer.

use crate::errno::Errno;
use crate::file::FileKind;
use crate::ids::Pid;
use crate::sys::fd_arg;
use crate::world::World;

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
    /// Errors, in Linux's order: `EBADF`, `ENOTTY` (not a terminal; `EINVAL`
    /// for an epoll instance, whose own ioctl answers first), then
    /// `EPERM` when `pid` does not lead its session or has a controlling
    /// terminal, when another session has this one, or when the file is
    /// not open for reading and the caller is not privileged. Asking for
    /// the terminal the session has already succeeds.
    pub fn sys_tiocsctty(&mut self, pid: Pid, fd: i32) -> Result<(), Errno> {
        let mut fp = self.fd_getfile(pid, fd_arg(fd)?)?;
        let (id, readable) = (fp.id(), fp.file().flags.readable());
        let pty = match &fp.file().kind {
            FileKind::PtyMaster(pty) => pty,
            // epoll's own ioctl refuses what it does not know (Linux 6.18).
            FileKind::Epoll(_) => return Err(Errno::EINVAL),
            _ => return Err(Errno::ENOTTY),
        };
        let has = pty.session;
        let w = fp.world();
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
        let session = p.session;
        if let FileKind::PtyMaster(pty) = &mut w.file_mut(id).kind {
            pty.session = session;
        }
        w.proc_mut(pid).ctty = Some(id);
        Ok(())
    }

    /// `exit` of `pid`: its table goes (`fdfree`), and then, if it led its
    /// session and still has its terminal, the terminal leaves the session
    /// and every process of the session loses it (`disassociate_ctty(1)`).
    pub fn sys_exit(&mut self, pid: Pid) {
        let p = self.proc(pid);
        let (leader, session, ctty) = (p.leader, p.session, p.ctty);
        self.fdfree(pid);
        let Some(t) = ctty.filter(|_| leader) else {
            return;
        };
        // Closing its files may have hung the terminal up already.
        if let Some(FileKind::PtyMaster(pty)) = self.files.get_mut(t.0).map(|f| &mut f.kind) {
            pty.session = None;
            // session_clear_tty
            self.clear_ctty(|p| p.session == session);
        }
    }
}
