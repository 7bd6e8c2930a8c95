//! The file(9) API (OpenBSD `kern_descrip.c`) and the table operations behind
//! fork, `clone(CLONE_FILES)`, unshare, exec and exit.
//!
//! Reference ownership, stated once:
//! - A table slot holds one reference to its file. A larval slot holds it too,
//!   though `fd_getfile` cannot see it yet.
//! - `falloc` returns a [`Larval`] file with count 2, "one for the table, one
//!   for the caller" (falloc(9)). `fdinsert` makes it visible and hands the
//!   caller's reference back as a [`Hold`], which the caller FRELEs.
//! - `fd_getfile` returns with a use reference (FREF) as a [`FileRef`] guard
//!   whose drop is FRELE.
//! - `closef` consumes two references: the table's ([`TableRef`], taken out
//!   of the slot by `fdremove`) and the caller's ([`Hold`]), as OpenBSD's
//!   `closef` "expects a refcount of 2".
//! - A file in flight (queued on a socket by SCM_RIGHTS) holds one reference
//!   per queued copy; `recvfds` turns it into a table reference.
//!
//! When a count reaches zero the file is torn down once (`fdrop`), which may
//! release other files (those in flight in a socket's queue), so releases run
//! off a work list instead of recursing.

use crate::errno::Errno;
use crate::file::{File, FileId, FileKind, FileRef, Hold, TableRef};
use crate::filedesc::{Filedesc, Slot, TableId};
use crate::pipe::PipeEnd;
use crate::proc::{Pid, Proc, DEFAULT_RLIMIT};
use crate::world::World;
use crate::Fd;

/// A file between `falloc` and `fdinsert`: its slot is reserved and its count
/// is 2. Consumed by [`World::fdinsert`] or [`World::fdabort`].
#[must_use = "a larval file must be inserted (fdinsert) or abandoned (fdabort)"]
#[derive(Debug)]
pub struct Larval {
    pub(crate) table: TableId,
    pub(crate) fd: Fd,
    pub(crate) file: FileId,
}

impl Larval {
    pub fn fd(&self) -> Fd {
        self.fd
    }

    pub fn id(&self) -> FileId {
        self.file
    }
}

/// Pending releases: a file and the name of the operation dropping it.
pub(crate) type Work = Vec<(FileId, &'static str)>;

impl World {
    /// The limit allocation obeys for `pid`: its `RLIMIT_NOFILE`, capped by
    /// `fs.nr_open`.
    pub(crate) fn fd_limit(&self, pid: Pid) -> u64 {
        self.proc(pid).rlimit.min(self.nr_open)
    }

    /// falloc(9): reserves the lowest free slot and creates a larval file in
    /// it, with no object yet (the caller fills in `kind` and `flags`).
    ///
    /// Returns with a reference: count 2, one for the table, one for the
    /// caller. Errors: `EMFILE`.
    pub fn falloc(&mut self, pid: Pid) -> Result<Larval, Errno> {
        let table = self.proc(pid).table;
        let limit = self.fd_limit(pid);
        let fd = self.table_mut(table).alloc(0, limit)?;
        let serial = self.next_serial;
        self.next_serial += 1;
        let file = FileId(self.files.insert(File::larval(serial)));
        self.table_mut(table).set(fd, Slot::Larval(file));
        self.note(|w| {
            format!(
                "falloc({}) -> fd {fd}, {} count 0 -> 2 (larval)",
                w.proc(pid).name,
                w.fname(file)
            )
        });
        Ok(Larval { table, fd, file })
    }

    /// Makes a larval file visible at its slot (OpenBSD `fdinsert`, Linux
    /// `fd_install`).
    ///
    /// Consumes: the larval file. Returns the caller's reference.
    pub fn fdinsert(&mut self, l: Larval, cloexec: bool) -> Hold {
        self.table_mut(l.table).set(
            l.fd,
            Slot::Installed {
                file: l.file,
                cloexec,
            },
        );
        self.note(|w| format!("fdinsert(fd {}, {})", l.fd, w.fname(l.file)));
        Hold { file: l.file }
    }

    /// The error path after `falloc`: frees the slot and drops both
    /// references, so the call "never happened".
    ///
    /// Consumes: the larval file.
    pub fn fdabort(&mut self, l: Larval) {
        self.table_mut(l.table).clear(l.fd);
        self.note(|w| format!("fdremove(fd {}, {}) (larval)", l.fd, w.fname(l.file)));
        self.closef(TableRef { file: l.file }, Hold { file: l.file });
    }

    /// fd_getfile(9): the file installed at `fd` in `pid`'s table.
    ///
    /// Returns with a reference (FREF), released when the guard drops.
    /// Errors: `EBADF` for a number that is out of range, free or larval.
    #[inline]
    pub fn fd_getfile(&mut self, pid: Pid, fd: Fd) -> Result<FileRef<'_>, Errno> {
        let file = self.table_of(pid).installed(fd).ok_or(Errno::EBADF)?;
        let f = self.file_mut(file);
        f.count += 1;
        f.callers += 1;
        if self.trace.is_some() {
            let (name, count) = (self.proc(pid).name.clone(), self.file(file).count);
            self.note(|w| {
                format!(
                    "fd_getfile({name}, {fd}) -> {} count {} -> {count}",
                    w.fname(file),
                    count - 1
                )
            });
        }
        Ok(FileRef { world: self, file })
    }

    /// `fd_getfile` for a raw system-call argument: negative numbers are
    /// `EBADF` like any other bad descriptor.
    pub fn fd_getfile_raw(&mut self, pid: Pid, fd: i64) -> Result<FileRef<'_>, Errno> {
        let fd = Fd::from_raw(fd).ok_or(Errno::EBADF)?;
        self.fd_getfile(pid, fd)
    }

    /// getsock(9): `fd_getfile` for a socket.
    ///
    /// Returns with a reference. Errors: `EBADF`, `ENOTSOCK`.
    pub fn getsock(&mut self, pid: Pid, fd: i64) -> Result<FileRef<'_>, Errno> {
        let fp = self.fd_getfile_raw(pid, fd)?;
        if fp.file().is_socket() {
            Ok(fp)
        } else {
            Err(Errno::ENOTSOCK)
        }
    }

    /// getvnode(9): `fd_getfile` for a vnode (regular file, directory,
    /// device).
    ///
    /// Returns with a reference. Errors: `EBADF`, `EINVAL` for other files.
    pub fn getvnode(&mut self, pid: Pid, fd: i64) -> Result<FileRef<'_>, Errno> {
        let fp = self.fd_getfile_raw(pid, fd)?;
        if matches!(fp.file().kind, FileKind::Vnode(_)) {
            Ok(fp)
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// FREF on a file the caller already reaches through a reference it owns
    /// (here: a table reference taken out of its slot).
    pub(crate) fn fref(&mut self, t: &TableRef) -> Hold {
        let f = self.file_mut(t.file);
        f.count += 1;
        f.callers += 1;
        self.note(|w| {
            let c = w.file(t.file).count;
            format!("FREF({}) count {} -> {c}", w.fname(t.file), c - 1)
        });
        Hold { file: t.file }
    }

    /// FRELE: drops a caller's reference; the last one tears the file down.
    ///
    /// Consumes: the reference.
    pub fn frele(&mut self, h: Hold) {
        self.file_mut(h.file).callers -= 1;
        self.release(vec![(h.file, "FRELE")]);
    }

    /// closef(9): drops the table's reference and the caller's.
    ///
    /// Consumes: both references. Precondition: they name the same file,
    /// whose count is therefore at least 2.
    pub fn closef(&mut self, t: TableRef, h: Hold) {
        assert_eq!(t.file, h.file, "closef given references to two files");
        let count = self.file(t.file).count;
        assert!(
            count >= 2,
            "closef({}): count {count} < 2",
            self.fname(t.file)
        );
        self.file_mut(t.file).count -= 1;
        self.note(|w| format!("closef({}) count {count} -> {}", w.fname(t.file), count - 1));
        self.frele(h);
    }

    /// Takes the installed file at `fd` out of its slot (OpenBSD
    /// `fdremove`): the table's reference is now the caller's to drop.
    pub(crate) fn fdremove(&mut self, table: TableId, fd: Fd) -> Option<TableRef> {
        match self.table(table).slot(fd) {
            Slot::Installed { file, .. } => {
                self.table_mut(table).clear(fd);
                self.note(|w| format!("fdremove(fd {fd}, {})", w.fname(file)));
                Some(TableRef { file })
            }
            _ => None,
        }
    }

    /// Drops a table reference taken out of a slot: FREF so that `closef`
    /// gets its two references, then `closef`.
    pub(crate) fn closef_slot(&mut self, t: TableRef) {
        let h = self.fref(&t);
        self.closef(t, h);
    }

    /// fdrelease: closes `fd` in `pid`'s table (`close(2)`).
    ///
    /// Errors: `EBADF`.
    pub fn fdrelease(&mut self, pid: Pid, fd: Fd) -> Result<(), Errno> {
        let fp = self.fd_getfile(pid, fd)?.detach();
        let table = self.proc(pid).table;
        // fd_getfile found the slot installed, and nothing ran in between.
        let t = self.fdremove(table, fd).expect("slot was installed");
        self.closef(t, fp);
        Ok(())
    }

    /// Puts a reference the caller owns into a slot that `alloc`/`reserve`
    /// marked used: it becomes the table's reference.
    ///
    /// Consumes: the reference.
    pub(crate) fn fdinstall(&mut self, table: TableId, fd: Fd, h: Hold, cloexec: bool) {
        self.file_mut(h.file).callers -= 1;
        self.table_mut(table).set(
            fd,
            Slot::Installed {
                file: h.file,
                cloexec,
            },
        );
        self.note(|w| format!("fdinsert(fd {fd}, {})", w.fname(h.file)));
    }

    /// Drops references off a work list; a count that reaches zero tears its
    /// file down, which may add more (files in flight in a dead socket), and
    /// the unix garbage collector runs when a socket went away while files
    /// were in flight.
    pub(crate) fn release(&mut self, mut work: Work) {
        loop {
            while let Some((f, op)) = work.pop() {
                let count = self.file(f).count;
                assert!(count > 0, "{op}({}) on a dead file", self.fname(f));
                self.file_mut(f).count -= 1;
                self.note(|w| format!("{op}({}) count {count} -> {}", w.fname(f), count - 1));
                if count == 1 {
                    self.fdrop(f, &mut work);
                }
            }
            // Deferred, the collector waits for `run_work` (see `deferred`).
            if self.deferred || !std::mem::take(&mut self.gc_pending) {
                break;
            }
            work = self.unp_gc();
            if work.is_empty() {
                break;
            }
        }
    }

    /// Tears down a file whose count reached zero (BSD `fdrop`, Linux
    /// `__fput`): exactly once per file.
    fn fdrop(&mut self, f: FileId, work: &mut Work) {
        // The file is live: its count just reached zero.
        let file = self.files.remove(f.0).expect("live file");
        self.note(|_| format!("fdrop(file#{}): freed", file.serial));
        // eventpoll_release: the file's registrations go with it.
        for ep in &file.watched_by {
            if let Some(FileKind::Epoll(e)) = self.files.get_mut(ep.0).map(|e| &mut e.kind) {
                let gone: Vec<_> = e.interest.keys().filter(|k| k.1 == f).copied().collect();
                for k in gone {
                    e.interest.remove(&k);
                }
            }
        }
        match file.kind {
            FileKind::Larval
            | FileKind::Vnode(_)
            | FileKind::Eventfd(_)
            | FileKind::PtyMaster(_) => {}
            FileKind::Pipe(p, end) => {
                let pipe = self.pipe_mut(p);
                match end {
                    PipeEnd::Read => pipe.reader = false,
                    PipeEnd::Write => pipe.writer = false,
                }
                if !pipe.reader && !pipe.writer {
                    self.pipes.remove(p.0);
                }
            }
            FileKind::Socket(s, end) => {
                let in_flight = self.sock_mut(s).release(end);
                work.extend(in_flight.into_iter().map(|f| (f, "unp_discard")));
                if self.sock(s).is_dead() {
                    self.socks.remove(s.0);
                }
                self.gc_pending = true;
            }
            FileKind::Epoll(e) => {
                for (_, target) in e.interest.keys() {
                    if let Some(t) = self.files.get_mut(target.0) {
                        if let Some(i) = t.watched_by.iter().position(|&x| x == f) {
                            t.watched_by.swap_remove(i);
                        }
                    }
                }
            }
        }
    }

    /// Creates process `name` with an empty table (`spawn`).
    ///
    /// Errors: `EEXIST` when a live process has that name.
    pub fn spawn(&mut self, name: &str) -> Result<Pid, Errno> {
        let table = TableId(self.tables.insert(Filedesc::default()));
        self.new_proc(name, table, DEFAULT_RLIMIT)
    }

    fn new_proc(&mut self, name: &str, table: TableId, rlimit: u64) -> Result<Pid, Errno> {
        if self.names.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let pid = Pid(self.procs.insert(Proc {
            name: name.to_string(),
            table,
            rlimit,
        }));
        self.names.insert(name.to_string(), pid);
        Ok(pid)
    }

    /// fdcopy: a private copy of `pid`'s table in which every installed file
    /// gains a reference (the copy's slot).
    pub fn fdcopy(&mut self, pid: Pid) -> TableId {
        let copy = self.table_of(pid).copy();
        let files: Vec<FileId> = copy
            .iter()
            .filter_map(|(_, s)| match s {
                Slot::Installed { file, .. } => Some(file),
                _ => None,
            })
            .collect();
        for f in files {
            self.file_mut(f).count += 1;
            self.note(|w| {
                let c = w.file(f).count;
                format!("fdcopy: {} count {} -> {c}", w.fname(f), c - 1)
            });
        }
        TableId(self.tables.insert(copy))
    }

    /// `fork`: `child` gets a copy of `parent`'s table and its limit.
    ///
    /// Errors: `EEXIST` for a name in use.
    pub fn fork(&mut self, parent: Pid, child: &str) -> Result<Pid, Errno> {
        if self.names.contains_key(child) {
            return Err(Errno::EEXIST);
        }
        let table = self.fdcopy(parent);
        let rlimit = self.proc(parent).rlimit;
        self.new_proc(child, table, rlimit)
    }

    /// fdshare: `child` uses `parent`'s table (`clone(CLONE_FILES)`).
    ///
    /// Errors: `EEXIST` for a name in use.
    pub fn fdshare(&mut self, parent: Pid, child: &str) -> Result<Pid, Errno> {
        let (table, rlimit) = (self.proc(parent).table, self.proc(parent).rlimit);
        let pid = self.new_proc(child, table, rlimit)?;
        self.table_mut(table).refcnt += 1;
        self.note(|w| format!("fdshare({}) -> {child}", w.proc(parent).name));
        Ok(pid)
    }

    /// Gives `pid` a private copy of its table if it shares it
    /// (`unshare(CLONE_FILES)`); nothing to do otherwise.
    pub fn fdunshare(&mut self, pid: Pid) {
        let old = self.proc(pid).table;
        if self.table(old).refcnt > 1 {
            let new = self.fdcopy(pid);
            self.table_mut(old).refcnt -= 1;
            self.proc_mut(pid).table = new;
            self.note(|w| format!("fdunshare({})", w.proc(pid).name));
        }
    }

    /// fdcloseexec: closes every close-on-exec descriptor of `pid`'s table.
    /// Precondition: the table is not shared (exec unshares first).
    pub fn fdcloseexec(&mut self, pid: Pid) {
        let table = self.proc(pid).table;
        debug_assert_eq!(self.table(table).refcnt, 1);
        let doomed: Vec<Fd> = self
            .table(table)
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Installed { cloexec: true, .. }))
            .map(|(fd, _)| fd)
            .collect();
        for fd in doomed {
            if let Some(t) = self.fdremove(table, fd) {
                self.closef_slot(t);
            }
        }
    }

    /// fdfree: `pid` exits and drops its table reference; the last process
    /// closes every descriptor.
    pub fn fdfree(&mut self, pid: Pid) {
        // The pid is live: the caller holds it.
        let p = self.procs.remove(pid.0).expect("live pid");
        self.names.remove(&p.name);
        let t = self.table_mut(p.table);
        t.refcnt -= 1;
        if t.refcnt > 0 {
            return;
        }
        let fds: Vec<(Fd, Slot)> = self.table(p.table).iter().collect();
        for (fd, slot) in fds {
            assert!(
                !matches!(slot, Slot::Larval(_)),
                "fdfree: fd {fd} of {} is larval",
                p.name
            );
            if let Some(r) = self.fdremove(p.table, fd) {
                self.closef_slot(r);
            }
        }
        self.tables.remove(p.table.0);
        self.note(|_| format!("fdfree({})", p.name));
        // On Linux any unix socket released anywhere in the system runs the
        // collector; in the model's closed world, a process exit stands in
        // for the rest of the system, so that cycles in flight are collected
        // even when no socket is released (see `gc`).
        self.gc_pending = true;
        self.release(Work::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Call, Ret};
    use crate::{invariants, Errno, OFlags, SockType};

    fn world() -> (World, Pid) {
        let mut w = World::new();
        let p = w.spawn("p").unwrap();
        (w, p)
    }

    #[test]
    fn falloc_counts_two_and_stays_invisible_until_fdinsert() {
        let (mut w, p) = world();
        let l = w.falloc(p).unwrap();
        let (fd, id) = (l.fd(), l.id());
        assert_eq!(w.file(id).count, 2, "one for the table, one for the caller");
        assert_eq!(
            w.fd_getfile(p, fd).err(),
            Some(Errno::EBADF),
            "larval is invisible"
        );
        assert_eq!(w.sys_dup2(p, 0, 0), Err(Errno::EBADF));
        // dup2 onto a larval slot is EBUSY (Linux do_dup2, OpenBSD dodup3).
        let other = w.sys_open(p, "/dev/null", OFlags::RDONLY, 0).unwrap();
        assert_eq!(
            w.sys_dup2(p, other.get() as i32, fd.get() as i32),
            Err(Errno::EBUSY)
        );
        let h = w.fdinsert(l, false);
        w.frele(h);
        assert_eq!(w.file(id).count, 1);
        assert!(w.fd_getfile(p, fd).is_ok());
        invariants::check_all(&w).unwrap();
    }

    #[test]
    fn fdabort_leaves_nothing_behind() {
        let (mut w, p) = world();
        let l = w.falloc(p).unwrap();
        let id = l.id();
        w.fdabort(l);
        assert!(w.files.get(id.0).is_none());
        assert_eq!(w.table_of(p).iter().count(), 0);
        invariants::check_all(&w).unwrap();
    }

    #[test]
    fn getsock_and_getvnode_check_the_kind() {
        let (mut w, p) = world();
        let (a, _) = w.sys_socketpair(p, SockType::Stream, false).unwrap();
        let (r, _) = w.sys_pipe(p, false).unwrap();
        let v = w.sys_open(p, "/dev/null", OFlags::RDONLY, 0).unwrap();
        assert!(w.getsock(p, a.get().into()).is_ok());
        assert_eq!(w.getsock(p, r.get().into()).err(), Some(Errno::ENOTSOCK));
        assert_eq!(w.getsock(p, 99).err(), Some(Errno::EBADF));
        assert!(w.getvnode(p, v.get().into()).is_ok());
        assert_eq!(w.getvnode(p, a.get().into()).err(), Some(Errno::EINVAL));
        assert_eq!(w.getvnode(p, -1).err(), Some(Errno::EBADF));
        invariants::check_all(&w).unwrap();
    }

    #[test]
    fn close_while_held_frees_on_the_last_frele_once() {
        let (mut w, p) = world();
        let (r, _) = w.sys_pipe(p, false).unwrap();
        let held = w.fd_getfile(p, r).unwrap().detach();
        let id = held.id();
        w.fdrelease(p, r).unwrap();
        assert_eq!(
            w.file(id).count,
            1,
            "the descriptor is gone, the file lives"
        );
        assert_eq!(w.fd_getfile(p, r).err(), Some(Errno::EBADF));
        w.set_tracing(true);
        w.frele(held);
        let trace = w.take_trace();
        assert_eq!(
            trace.iter().filter(|l| l.starts_with("fdrop(")).count(),
            1,
            "{trace:?}"
        );
        assert!(w.files.get(id.0).is_none());
    }

    #[test]
    fn a_cycle_in_flight_is_collected_when_its_last_process_exits() {
        // Each end is sent into its own queue, then both descriptors close:
        // no socket is ever released, so only the exit can collect them.
        let (mut w, p) = world();
        let (a, b) = w.sys_socketpair(p, SockType::Dgram, false).unwrap();
        let (a, b) = (a.get() as i32, b.get() as i32);
        assert_eq!(
            w.call(
                p,
                &Call::Sendfds {
                    sock: a,
                    fds: vec![b]
                }
            ),
            Ok(Ret::int(0))
        );
        assert_eq!(
            w.call(
                p,
                &Call::Sendfds {
                    sock: b,
                    fds: vec![a]
                }
            ),
            Ok(Ret::int(0))
        );
        w.call(p, &Call::Close { fd: a }).unwrap();
        w.call(p, &Call::Close { fd: b }).unwrap();
        assert_eq!(w.files().count(), 2, "alive in flight, unreachable");
        assert_eq!(w.unreachable().len(), 2);
        w.call(p, &Call::Exit).unwrap();
        assert_eq!(w.files().count(), 0);
        assert_eq!(w.socket_pairs().count(), 0);
    }

    #[test]
    fn fork_share_unshare_exec_exit() {
        let (mut w, p) = world();
        let fd = w
            .sys_open(p, "/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, 0)
            .unwrap();
        let id = w.fd_getfile(p, fd).unwrap().id();
        let c = w.fork(p, "c").unwrap();
        assert_eq!(w.file(id).count, 2);
        let s = w.fdshare(p, "s").unwrap();
        assert_eq!(w.table_of(p).refcnt(), 2);
        assert_eq!(w.file(id).count, 2, "sharing a table adds no reference");
        w.sys_exec(s);
        assert_eq!(w.table_of(p).refcnt(), 1);
        assert!(
            w.table_of(s).installed(fd).is_none(),
            "exec closed the cloexec slot"
        );
        assert!(
            w.table_of(p).installed(fd).is_some(),
            "in s's private copy only"
        );
        w.fdfree(c);
        w.fdfree(s);
        assert_eq!(w.file(id).count, 1);
        invariants::check_all(&w).unwrap();
    }
}
