//! Unix-domain socket names and the calls that use them: `socket`, `bind`,
//! `listen`, `connect`, `accept`, `shutdown` (BSD `uipc_usrreq.c`'s
//! `unp_bind` and `unp_connect`; Linux `net/unix/af_unix.c`).
//!
//! A name is a path in the sandbox, which `bind` makes as a socket file
//! that outlives the socket (a later `connect` to it is refused), or an
//! abstract name (`@name`), which lives exactly as long as its socket and
//! is looked up per socket type: a datagram and a stream socket may both
//! bind `@name`.
//!
//! Floor: the socket calls, beside `sys`; they use the file(9) layer and
//! the socket objects, never the other way round.

use crate::descrip::CallerRef;
use crate::errno::Errno;
use crate::fd::Fd;
use crate::file::FileKind;
use crate::ids::{Pid, SockId};
use crate::socket::{SockFlags, SockType, UnixName};
use crate::sys::fd_arg;
use crate::vnode::{Lookup, VnodeKind};
use crate::world::World;

impl World {
    /// getsock(9) for the socket calls: the socket open at `fd`.
    ///
    /// Returns with a reference to its file. Errors: `EBADF`, `ENOTSOCK`.
    pub(crate) fn getsock_id(&mut self, pid: Pid, fd: i32) -> Result<(CallerRef, SockId), Errno> {
        let sp = self.getsock(pid, fd_arg(fd)?)?.detach();
        let FileKind::Socket(s) = self.file(sp.id()).kind else {
            unreachable!("getsock returned a socket")
        };
        Ok((sp, s))
    }

    /// The socket open at `fd`, for a call that holds no reference while
    /// it works.
    ///
    /// Errors: `EBADF`, `ENOTSOCK`.
    fn socket_at(&mut self, pid: Pid, fd: i32) -> Result<SockId, Errno> {
        let (sp, s) = self.getsock_id(pid, fd)?;
        self.frele(sp);
        Ok(s)
    }

    /// `socket(AF_UNIX, ty, 0)`. Errors: `EMFILE`.
    pub fn sys_socket(&mut self, pid: Pid, ty: SockType, flags: SockFlags) -> Result<Fd, Errno> {
        let l = self.falloc(pid)?;
        let s = self.socks.create(ty);
        Ok(self.finish_file(l, FileKind::Socket(s), flags.status(), flags.cloexec))
    }

    /// `bind(2)` to `name`: a sandbox path, or `@name` (abstract). For a
    /// path, the socket file is made first, as `unix_bind_bsd` does, so an
    /// existing name is `EADDRINUSE` even for a bound socket; an abstract
    /// bind checks the socket first.
    ///
    /// Errors: `EBADF`, `ENOTSOCK`, `EINVAL` (already bound), `EADDRINUSE`,
    /// and the path's `ENOENT`, `ENOTDIR`, `ENAMETOOLONG`.
    pub fn sys_bind(&mut self, pid: Pid, fd: i32, name: &str) -> Result<(), Errno> {
        let s = self.socket_at(pid, fd)?;
        let bound = self.sock(s).name.is_some();
        let key = match name.strip_prefix('@') {
            Some(abs) => {
                if bound {
                    return Err(Errno::EINVAL);
                }
                let key = UnixName::Abstract(self.sock(s).ty, abs.to_string());
                if self.unix_names.contains_key(&key) {
                    return Err(Errno::EADDRINUSE);
                }
                key
            }
            None => {
                let path = name.trim_end_matches('/');
                if path.len() != name.len() {
                    // mknod of a name with a trailing slash: taken if it
                    // exists, else it cannot be made.
                    return Err(match self.fs.lookup(path)? {
                        Lookup::Found(_) => Errno::EADDRINUSE,
                        Lookup::Missing(_) => Errno::ENOENT,
                    });
                }
                match self.fs.lookup(name)? {
                    Lookup::Found(_) => return Err(Errno::EADDRINUSE),
                    // The socket file would be made, then unlinked again.
                    Lookup::Missing(_) if bound => return Err(Errno::EINVAL),
                    Lookup::Missing(leaf) => UnixName::Path(self.fs.create_socket(leaf)),
                }
            }
        };
        self.unix_names.insert(key.clone(), s);
        let sk = self.socks.get_mut(s);
        sk.name = Some(name.to_string());
        sk.bound = Some(key);
        Ok(())
    }

    /// The name is free again once its socket is released (the socket
    /// file stays).
    pub(crate) fn release_name(&mut self, s: SockId) {
        if let Some(key) = self.socks.get_mut(s).bound.take() {
            self.unix_names.remove(&key);
        }
    }

    /// The socket bound to `name` that a socket of type `ty` may connect
    /// to (`unix_find_other`).
    ///
    /// Errors: the path's `ENOENT`, `ENOTDIR`, `ENAMETOOLONG`;
    /// `ECONNREFUSED` (not a socket file, nobody bound to it any more, or
    /// no abstract name of that type); `EPROTOTYPE` (a socket file of
    /// another type).
    fn find_other(&self, name: &str, ty: SockType) -> Result<SockId, Errno> {
        if let Some(abs) = name.strip_prefix('@') {
            let key = UnixName::Abstract(ty, abs.to_string());
            return self
                .unix_names
                .get(&key)
                .copied()
                .ok_or(Errno::ECONNREFUSED);
        }
        let v = match self.fs.lookup(name)? {
            Lookup::Found(v) => v,
            Lookup::Missing(_) => return Err(Errno::ENOENT),
        };
        if !matches!(self.fs.vnode(v).kind, VnodeKind::Socket) {
            return Err(Errno::ECONNREFUSED);
        }
        let s = *self
            .unix_names
            .get(&UnixName::Path(v))
            .ok_or(Errno::ECONNREFUSED)?;
        if self.sock(s).ty != ty {
            return Err(Errno::EPROTOTYPE);
        }
        Ok(s)
    }

    /// `listen(2)`. Errors: `EBADF`, `ENOTSOCK`, `EOPNOTSUPP` (datagram),
    /// `EINVAL` (not bound, or connected).
    pub fn sys_listen(&mut self, pid: Pid, fd: i32, backlog: i32) -> Result<(), Errno> {
        let s = self.socket_at(pid, fd)?;
        self.socks.listen(s, backlog)
    }

    /// `connect(2)` to `name`, never waiting: a stream or seqpacket socket
    /// joins the listener's queue, a datagram socket takes a default peer
    /// (and leaving an old one purges its own queue).
    ///
    /// Errors: `EBADF`, `ENOTSOCK`, the name's errors (see
    /// [`World::find_other`]), then `ECONNREFUSED`, `EAGAIN`, `EISCONN`,
    /// `EINVAL` (stream), `EPERM` (datagram).
    pub fn sys_connect(&mut self, pid: Pid, fd: i32, name: &str) -> Result<(), Errno> {
        let s = self.socket_at(pid, fd)?;
        let ty = self.sock(s).ty;
        let other = self.find_other(name, ty)?;
        if ty.connection_oriented() {
            return self.socks.connect_stream(s, other);
        }
        let lost = self.socks.connect_dgram(s, other)?;
        self.release(
            lost.into_iter()
                .map(|f| (f, crate::trace::Dropper::Discard))
                .collect(),
        );
        Ok(())
    }

    /// `accept4(2)`: the oldest pending connection gets a file at the
    /// lowest free number. The slot is taken before the socket is looked
    /// at, as `__sys_accept4_file` does.
    ///
    /// Errors: `EBADF`, `EMFILE`, `ENOTSOCK`, `EOPNOTSUPP` (datagram),
    /// `EINVAL` (not listening), `EAGAIN` (nothing pending).
    pub fn sys_accept(&mut self, pid: Pid, fd: i32, flags: SockFlags) -> Result<Fd, Errno> {
        let lf = self.fd_getfile(pid, fd_arg(fd)?)?.detach();
        let l = match self.falloc(pid) {
            Ok(l) => l,
            Err(e) => {
                self.frele(lf);
                return Err(e);
            }
        };
        let got = match self.file(lf.id()).kind {
            FileKind::Socket(s) => self.socks.accept(s),
            _ => Err(Errno::ENOTSOCK),
        };
        self.frele(lf);
        let embryo = match got {
            Ok(e) => e,
            Err(e) => {
                self.fdabort(l);
                return Err(e);
            }
        };
        Ok(self.finish_file(l, FileKind::Socket(embryo), flags.status(), flags.cloexec))
    }

    /// `shutdown(2)`; `how` is `SHUT_RD` (0), `SHUT_WR` (1) or `SHUT_RDWR`
    /// (2).
    ///
    /// Errors: `EBADF`, `ENOTSOCK`, `EINVAL` (another `how`).
    pub fn sys_shutdown(&mut self, pid: Pid, fd: i32, how: i32) -> Result<(), Errno> {
        let s = self.socket_at(pid, fd)?;
        self.socks.shutdown(s, how)
    }
}
