//! The file(9) API (OpenBSD `kern_descrip.c`) and the table operations behind
//! fork, `clone(CLONE_FILES)`, unshare, exec and exit.
//!
//! Floor: above the world, the unix collector's marking (`gc`) and the
//! tables; below the deferred work, the invariants and the system calls,
//! which call it. It calls `gc::unp_gc` when a socket went away with files
//! in flight, and nothing above itself.
//!
//! Reference ownership, stated once:
//! - A table slot holds one reference to its file. A larval slot holds it too,
//!   though `fd_getfile` cannot see it yet.
//! - `falloc` returns a [`LarvalFile`] with count 2, "one for the table, one
//!   for the caller" (falloc(9)). `fdinsert` makes it visible and hands the
//!   caller's reference back as a [`CallerRef`], which the caller FRELEs.
//! - `fd_getfile` returns with a use reference (FREF) as a [`FileUse`] guard
//!   whose drop is FRELE.
//! - `closef` consumes two references: the table's ([`TableRef`], taken out
//!   of the slot by `fdremove`) and the caller's ([`CallerRef`]), as
//!   OpenBSD's `closef` "expects a refcount of 2".
//! - A file in flight (queued on a socket by SCM_RIGHTS) holds one reference
//!   per queued copy; `recvfds` turns it into a table reference.
//!
//! When a count reaches zero the file is torn down once (`fdrop`), which may
//! release other files (those in flight in a socket's queue), so releases run
//! off a work list instead of recursing.
//!
//! The tables are the concurrent ones of [`crate::mt`] (see
//! [`crate::filedesc`]), and a file's count is its table file's atomic
//! count: every reference taken or dropped here is an operation on it,
//! and FRELE says when it was the last.

use std::collections::BTreeMap;

use crate::errno::Errno;
use crate::fd::Fd;
use crate::file::{File, FileKind};
use crate::filedesc::Table;
use crate::flags::Events;
use crate::ids::{FileId, Pid, PtyId};
use crate::limits::DEFAULT_RLIMIT;
use crate::mt::{self, Fdget};
use crate::pipe::PipeEnd;
use crate::proc::Proc;
use crate::pty::Side;
use crate::trace::{Count, Dropper, TraceEvent};
use crate::waitq::Queue;
use crate::world::World;

/// A file between `falloc` and `fdinsert`: its slot is reserved and its count
/// is 2. Consumed by [`World::fdinsert`] or [`World::fdabort`].
#[must_use = "a larval file must be inserted (fdinsert) or abandoned (fdabort)"]
#[derive(Debug)]
pub struct LarvalFile {
    /// The process whose table holds the slot (it cannot change table
    /// within a system call).
    pub(crate) pid: Pid,
    pub(crate) fd: Fd,
    pub(crate) file: FileId,
}

impl LarvalFile {
    pub fn fd(&self) -> Fd {
        self.fd
    }

    pub fn id(&self) -> FileId {
        self.file
    }
}

/// A use reference taken by `fd_getfile` (FREF): while it lives the file
/// cannot be freed, whatever happens to the descriptor. Dropping it is FRELE.
///
/// It borrows the world mutably, so everything done while the file is in use
/// goes through [`FileUse::world`]; that is the price of making FRELE
/// automatic in a model whose files live inside the world.
#[must_use = "dropping a FileUse at once is FREF immediately followed by FRELE"]
pub struct FileUse<'w> {
    pub(crate) world: &'w mut World,
    pub(crate) file: FileId,
}

impl<'w> FileUse<'w> {
    pub fn id(&self) -> FileId {
        self.file
    }

    pub fn file(&self) -> &File {
        self.world.file(self.file)
    }

    pub fn file_mut(&mut self) -> &mut File {
        self.world.file_mut(self.file)
    }

    /// The world, for the work done while the file is held.
    pub fn world(&mut self) -> &mut World {
        self.world
    }

    /// Keeps the reference beyond the borrow: the caller now owns it as a
    /// [`CallerRef`] and must hand it on or release it.
    pub fn detach(self) -> CallerRef {
        let r = CallerRef { file: self.file };
        std::mem::forget(self);
        r
    }
}

impl Drop for FileUse<'_> {
    fn drop(&mut self) {
        self.world.frele(CallerRef { file: self.file });
    }
}

/// A counted reference that a caller owns, not tied to a borrow.
///
/// Consumes: [`World::frele`] (FRELE), [`World::closef`], installing it in a
/// slot (the reference becomes the table's) or queueing it on a socket (it
/// becomes a reference in flight).
#[must_use = "a CallerRef is a counted reference: release it with World::frele or hand it on"]
#[derive(Debug)]
pub struct CallerRef {
    pub(crate) file: FileId,
}

impl CallerRef {
    pub fn id(&self) -> FileId {
        self.file
    }
}

/// A table's reference to a file, taken out of its slot by `fdremove` and
/// not yet dropped. Consumed by [`World::closef`].
#[must_use = "the table's reference must be dropped with World::closef"]
#[derive(Debug)]
pub struct TableRef {
    pub(crate) file: FileId,
}

/// Pending releases: a file, and who drops the reference.
pub(crate) type Work = Vec<(FileId, Dropper)>;

impl World {
    /// The limit allocation obeys for `pid`: its `RLIMIT_NOFILE`, capped by
    /// `fs.nr_open`.
    pub(crate) fn fd_limit(&self, pid: Pid) -> u64 {
        self.proc(pid).rlimit.min(self.nr_open)
    }

    /// [`World::fd_limit`] as the table takes it.
    fn fd_limit32(&self, pid: Pid) -> u32 {
        u32::try_from(self.fd_limit(pid)).unwrap_or(u32::MAX)
    }

    /// falloc(9): reserves the lowest free slot and creates a larval file in
    /// it, with no object yet (the caller fills in `kind` and `flags`).
    ///
    /// Returns with a reference: count 2, one for the table, one for the
    /// caller. Errors: `EMFILE`.
    pub fn falloc(&mut self, pid: Pid) -> Result<LarvalFile, Errno> {
        let limit = self.fd_limit32(pid);
        let file = FileId(self.files.next_key());
        let (fd, handle) = self.proc(pid).table.falloc_bare(file, limit)?;
        let serial = self.next_serial;
        self.next_serial += 1;
        let got = self.files.insert(File::larval(serial, handle));
        debug_assert_eq!(got, file.0, "the slab gave the key it promised");
        self.record(|w| TraceEvent::Falloc {
            proc: w.proc(pid).name.clone(),
            fd,
            file: serial,
        });
        Ok(LarvalFile { pid, fd, file })
    }

    /// Makes a larval file visible at its slot (OpenBSD `fdinsert`, Linux
    /// `fd_install`).
    ///
    /// Consumes: the larval file. Returns the caller's reference.
    pub fn fdinsert(&mut self, l: LarvalFile, cloexec: bool) -> CallerRef {
        let handle = &self.file(l.file).handle;
        self.proc(l.pid).table.insert_larval(l.fd, handle, cloexec);
        self.record(|w| TraceEvent::Fdinsert {
            fd: l.fd,
            file: w.serial(l.file),
        });
        CallerRef { file: l.file }
    }

    /// The error path after `falloc`: frees the slot and drops both
    /// references, so the call "never happened".
    ///
    /// Consumes: the larval file.
    pub fn fdabort(&mut self, l: LarvalFile) {
        let handle = &self.file(l.file).handle;
        // The slot's reference, as a count: it goes to closef below.
        let slot = self.proc(l.pid).table.fdremove_larval(l.fd, handle);
        assert!(slot.is_some(), "fdabort: fd {} is not larval", l.fd);
        self.record(|w| TraceEvent::Fdremove {
            fd: l.fd,
            file: w.serial(l.file),
            larval: true,
        });
        self.closef(TableRef { file: l.file }, CallerRef { file: l.file });
    }

    /// fd_getfile(9): the file installed at `fd` in `pid`'s table.
    ///
    /// Returns with a reference (FREF), released when the guard drops.
    /// Errors: `EBADF` for a number that is out of range, free or larval.
    #[inline]
    pub fn fd_getfile(&mut self, pid: Pid, fd: Fd) -> Result<FileUse<'_>, Errno> {
        let p = self.procs.get_mut(pid.0).expect("live pid");
        // fdget: no lock and no count from the table when the process is
        // its only user, the lock-free shared path otherwise.
        let file = match mt::fdget(&mut p.table, fd)? {
            Fdget::Borrowed(f) => {
                // FREF from the slot's reference, which the borrow keeps.
                f.fref();
                *f.data()
            }
            Fdget::Counted(r) => {
                let file = *r.data();
                // Keep the count beyond the guard: it is the FileUse's.
                drop(r.into_hold().into_table());
                file
            }
        };
        self.file_mut(file).callers += 1;
        self.record_getfile(pid, fd, file);
        Ok(FileUse { world: self, file })
    }

    /// The trace of `fd_getfile`'s FREF on `file`, just taken.
    fn record_getfile(&mut self, pid: Pid, fd: Fd, file: FileId) {
        self.record(|w| {
            let count = w.file(file).count();
            TraceEvent::FdGetfile {
                proc: w.proc(pid).name.clone(),
                fd,
                file: w.serial(file),
                count: Count::new(count - 1, count),
            }
        });
    }

    /// getsock(9): `fd_getfile` for a socket.
    ///
    /// Returns with a reference. Errors: `EBADF`, `ENOTSOCK`.
    pub fn getsock(&mut self, pid: Pid, fd: Fd) -> Result<FileUse<'_>, Errno> {
        let fp = self.fd_getfile(pid, fd)?;
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
    pub fn getvnode(&mut self, pid: Pid, fd: Fd) -> Result<FileUse<'_>, Errno> {
        let fp = self.fd_getfile(pid, fd)?;
        if matches!(fp.file().kind, FileKind::Vnode(_)) {
            Ok(fp)
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// FREF on a file the caller already reaches through a reference it owns
    /// (here: a table reference taken out of its slot).
    pub(crate) fn fref(&mut self, t: &TableRef) -> CallerRef {
        let f = self.file_mut(t.file);
        f.handle.fref();
        f.callers += 1;
        self.record(|w| {
            let c = w.file(t.file).count();
            TraceEvent::Fref {
                file: w.serial(t.file),
                count: Count::new(c - 1, c),
            }
        });
        CallerRef { file: t.file }
    }

    /// FRELE: drops a caller's reference; the last one tears the file down.
    ///
    /// Consumes: the reference.
    pub fn frele(&mut self, r: CallerRef) {
        self.file_mut(r.file).callers -= 1;
        // One reference, with no work list unless it was the last (FRELE
        // is on the path of every system call).
        let mut work = Work::new();
        self.drop_ref(r.file, Dropper::Frele, &mut work);
        self.release(work);
    }

    /// closef(9): drops the table's reference and the caller's.
    ///
    /// Consumes: both references. Precondition: they name the same file,
    /// whose count is therefore at least 2.
    pub fn closef(&mut self, t: TableRef, r: CallerRef) {
        assert_eq!(t.file, r.file, "closef given references to two files");
        let count = self.file(t.file).count();
        assert!(
            count >= 2,
            "closef(file#{}): count {count} < 2",
            self.serial(t.file)
        );
        // Not the last: the caller's reference is still counted.
        self.file(t.file).handle.frele();
        self.record(|w| TraceEvent::Closef {
            file: w.serial(t.file),
            count: Count::new(count, count - 1),
        });
        self.frele(r);
    }

    /// Takes the installed file at `fd` out of `pid`'s table (OpenBSD
    /// `fdremove`): the table's reference is now the caller's to drop.
    pub(crate) fn fdremove(&mut self, pid: Pid, fd: Fd) -> Option<TableRef> {
        let file = *self.proc(pid).table.fdremove(fd)?.data();
        Some(self.take_from_slot(fd, file))
    }

    /// Records that the table's reference to `file` was just taken out of
    /// slot `fd`, and returns it.
    fn take_from_slot(&mut self, fd: Fd, file: FileId) -> TableRef {
        self.record(|w| TraceEvent::Fdremove {
            fd,
            file: w.serial(file),
            larval: false,
        });
        TableRef { file }
    }

    /// Drops a table reference taken out of a slot: FREF so that `closef`
    /// gets its two references, then `closef`.
    pub(crate) fn closef_slot(&mut self, t: TableRef) {
        let r = self.fref(&t);
        self.closef(t, r);
    }

    /// fdrelease: closes `fd` in `pid`'s table (`close(2)`). As OpenBSD's,
    /// it takes the file (`fd_getfile`, FREF) and empties the slot
    /// (`fdremove`) in one step under the table's lock, then `closef`s.
    ///
    /// Errors: `EBADF`.
    pub fn fdrelease(&mut self, pid: Pid, fd: Fd) -> Result<(), Errno> {
        let file = *self
            .proc(pid)
            .table
            .fdremove_held(fd)
            .ok_or(Errno::EBADF)?
            .data();
        self.file_mut(file).callers += 1;
        self.record_getfile(pid, fd, file);
        let t = self.take_from_slot(fd, file);
        self.closef(t, CallerRef { file });
        Ok(())
    }

    /// Puts a reference the caller owns into the lowest free slot `>= min`
    /// of `pid`'s table, below `pid`'s limit: it becomes the table's
    /// reference.
    ///
    /// Consumes: the reference; on error (`EMFILE`) it is given back.
    pub(crate) fn fdinstall(
        &mut self,
        pid: Pid,
        r: CallerRef,
        min: u32,
        cloexec: bool,
    ) -> Result<Fd, (Errno, CallerRef)> {
        let (handle, limit) = (self.file(r.file).handle.clone(), self.fd_limit32(pid));
        match self
            .proc(pid)
            .table
            .install_lowest(handle, min, limit, cloexec)
        {
            Ok(fd) => {
                self.give_to_slot(fd, r);
                Ok(fd)
            }
            Err((e, _)) => Err((e, r)),
        }
    }

    /// dup2's install: puts a reference the caller owns at `fd` of `pid`'s
    /// table, whatever was there (the caller checked `pid`'s limit).
    ///
    /// Consumes: the reference; on error (`EBUSY`: `fd` is larval) it is
    /// given back. Returns the table's reference to the file `fd` held.
    pub(crate) fn fdinstall_at(
        &mut self,
        pid: Pid,
        fd: Fd,
        r: CallerRef,
        cloexec: bool,
    ) -> Result<Option<TableRef>, (Errno, CallerRef)> {
        let handle = self.file(r.file).handle.clone();
        match self.proc(pid).table.install_at(fd, handle, cloexec) {
            Ok(old) => {
                let old = old.map(|f| self.take_from_slot(fd, *f.data()));
                self.give_to_slot(fd, r);
                Ok(old)
            }
            Err((e, _)) => Err((e, r)),
        }
    }

    /// Hands the caller's reference `r` to slot `fd`, where the table put
    /// its file.
    fn give_to_slot(&mut self, fd: Fd, r: CallerRef) {
        self.file_mut(r.file).callers -= 1;
        self.record(|w| TraceEvent::Fdinsert {
            fd,
            file: w.serial(r.file),
        });
    }

    /// Drops references off a work list; a count that reaches zero tears its
    /// file down, which may add more (files in flight in a dead socket), and
    /// the unix garbage collector runs when a socket went away while files
    /// were in flight.
    pub(crate) fn release(&mut self, mut work: Work) {
        loop {
            while let Some((f, by)) = work.pop() {
                self.drop_ref(f, by, &mut work);
            }
            // Deferred, the collector waits for `run_work` (see `deferred`).
            if self.deferred || !std::mem::take(&mut self.gc_pending) {
                break;
            }
            work = self
                .unp_gc()
                .into_iter()
                .map(|f| (f, Dropper::Gc))
                .collect();
            if work.is_empty() {
                break;
            }
        }
        // Releases log wake-ups (a socket's peer, the senders of what its
        // queue held): delivered before anyone looks at an epoll.
        self.flush_wakes();
    }

    /// Drops one reference to `f` for `by`; if it was the last, tears the
    /// file down, adding what that releases to `work`.
    fn drop_ref(&mut self, f: FileId, by: Dropper, work: &mut Work) {
        let file = self.file(f);
        let count = file.count();
        assert!(
            count > 0,
            "{}(file#{}) on a dead file",
            by.name(),
            file.serial
        );
        let last = file.handle.frele();
        self.record(|w| TraceEvent::Drop {
            by,
            file: w.serial(f),
            count: Count::new(count, count - 1),
        });
        if last {
            // fput from a kernel thread: __fput waits for delayed_fput.
            if self.deferred && self.in_kworker {
                self.delayed_fput.push(f);
            } else {
                self.fdrop(f, work);
            }
        }
    }

    /// `delayed_fput`: tears down the files a work queue dropped last,
    /// newest first, as a work queue itself (so what they release waits
    /// for the next round).
    pub(crate) fn run_delayed_fput(&mut self) {
        let files = std::mem::take(&mut self.delayed_fput);
        let was = std::mem::replace(&mut self.in_kworker, true);
        let mut work = Work::new();
        for f in files.into_iter().rev() {
            self.fdrop(f, &mut work);
        }
        self.release(work);
        self.in_kworker = was;
    }

    /// Tears down a file whose count reached zero (BSD `fdrop`, Linux
    /// `__fput`): exactly once per file.
    fn fdrop(&mut self, f: FileId, work: &mut Work) {
        // The file is live: its count just reached zero.
        let file = self.files.remove(f.0).expect("live file");
        self.record(|_| TraceEvent::Fdrop { file: file.serial });
        // eventpoll_release: the file's registrations go with it.
        self.eventpoll_release(f, &file.watched_by);
        match file.kind {
            FileKind::Larval | FileKind::Vnode(_) | FileKind::Eventfd(_) => {}
            FileKind::PtyMaster(p) => self.pty_master_close(p),
            FileKind::PtySlave(p) => self.pty_slave_close(p),
            FileKind::Pipe(p, end) => {
                let pipe = self.pipe_mut(p);
                match end {
                    PipeEnd::Read => pipe.reader = false,
                    PipeEnd::Write => pipe.writer = false,
                }
                if !pipe.reader && !pipe.writer {
                    self.pipes.remove(p.0);
                } else {
                    // pipe_release: the last of one side wakes the other.
                    self.wake(Queue::PipeRead(p), Events::default());
                    self.wake(Queue::PipeWrite(p), Events::default());
                }
            }
            FileKind::Socket(s) => {
                self.release_name(s);
                let in_flight = self.socks.release(s);
                work.extend(in_flight.into_iter().map(|f| (f, Dropper::Discard)));
                self.gc_pending = true;
            }
            FileKind::Epoll(e) => self.ep_free(f, &e),
        }
    }

    /// `pty_close` of pty `p`'s master: the slave's queues are woken, and
    /// it is hung up (`tty_vhangup`): its buffers are flushed, and no
    /// process has it as controlling terminal any more. The pty goes with
    /// its last file.
    fn pty_master_close(&mut self, p: PtyId) {
        self.pty_mut(p).close_master();
        self.clear_ctty(|proc| proc.ctty == Some(p));
        if self.pty(p).unused() {
            self.ptys.remove(p.0);
            return;
        }
        self.wake(Queue::TtyRead(p, Side::Slave), Events::default());
        self.wake(Queue::TtyWrite(p, Side::Slave), Events::default());
    }

    /// `pty_close` of one of pty `p`'s slave files: the last one tells the
    /// master (`TTY_OTHER_CLOSED`) and wakes its queues, unless the slave
    /// is hung up, when nothing is told and the pty goes.
    fn pty_slave_close(&mut self, p: PtyId) {
        if self.pty_mut(p).close_slave() {
            self.wake(Queue::TtyRead(p, Side::Master), Events::default());
            self.wake(Queue::TtyWrite(p, Side::Master), Events::default());
        } else if self.pty(p).unused() {
            self.ptys.remove(p.0);
        }
    }

    /// The processes `whose` picks have no controlling terminal any more.
    pub(crate) fn clear_ctty(&mut self, whose: impl Fn(&Proc) -> bool) {
        let pids: Vec<Pid> = self
            .processes()
            .map(|(_, p)| p)
            .filter(|&p| whose(self.proc(p)))
            .collect();
        for p in pids {
            self.proc_mut(p).ctty = None;
        }
    }

    /// Creates process `name` with an empty table (`spawn`).
    ///
    /// Errors: `EEXIST` when a live process has that name.
    pub fn spawn(&mut self, name: &str) -> Result<Pid, Errno> {
        let table = self.new_table();
        self.new_proc(name, None, table, DEFAULT_RLIMIT)
    }

    fn new_proc(
        &mut self,
        name: &str,
        parent: Option<Pid>,
        table: Table,
        rlimit: u64,
    ) -> Result<Pid, Errno> {
        if self.names.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        // A child is in its parent's session, with its controlling
        // terminal, and leads nothing.
        let (session, ctty) =
            parent.map_or((None, None), |p| (self.proc(p).session, self.proc(p).ctty));
        let parent = parent.map(|p| self.proc(p).name.clone());
        let pid = Pid(self.procs.insert(Proc {
            name: name.to_string(),
            parent,
            table,
            rlimit,
            session,
            leader: false,
            ctty,
        }));
        self.names.insert(name.to_string(), pid);
        Ok(pid)
    }

    /// fdcopy: a private copy of `pid`'s table in which every installed file
    /// gains a reference (the copy's slot).
    pub fn fdcopy(&mut self, pid: Pid) -> Table {
        let copy = Table::new(self.proc(pid).table.fdcopy());
        if self.trace.is_some() {
            // The table took the references; the trace shows them one by
            // one, as if counted in slot order.
            let files: Vec<FileId> = copy.installed_all().iter().map(|s| s.1).collect();
            let mut left: BTreeMap<FileId, u32> = BTreeMap::new();
            for &f in &files {
                *left.entry(f).or_insert(0) += 1;
            }
            for f in files {
                let k = left.get_mut(&f).expect("counted above");
                let before = self.file(f).count() - *k;
                *k -= 1;
                self.record(|w| TraceEvent::Fdcopy {
                    file: w.serial(f),
                    count: Count::new(before, before + 1),
                });
            }
        }
        copy
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
        self.new_proc(child, Some(parent), table, rlimit)
    }

    /// fdshare: `child` uses `parent`'s table (`clone(CLONE_FILES)`): one
    /// more `Arc` on it.
    ///
    /// Errors: `EEXIST` for a name in use.
    pub fn fdshare(&mut self, parent: Pid, child: &str) -> Result<Pid, Errno> {
        let p = self.proc(parent);
        let (table, rlimit) = (Table::clone(&p.table), p.rlimit);
        let pid = self.new_proc(child, Some(parent), table, rlimit)?;
        self.record(|w| TraceEvent::Fdshare {
            proc: w.proc(parent).name.clone(),
            child: child.to_string(),
        });
        Ok(pid)
    }

    /// Gives `pid` a private copy of its table if it shares it
    /// (`unshare(CLONE_FILES)`); nothing to do otherwise.
    pub fn fdunshare(&mut self, pid: Pid) {
        if self.proc(pid).share_count() > 1 {
            let new = self.fdcopy(pid);
            // Dropping the old `Arc` is the sharing part of fdfree.
            self.proc_mut(pid).table = new;
            self.record(|w| TraceEvent::Fdunshare {
                proc: w.proc(pid).name.clone(),
            });
        }
    }

    /// fdcloseexec: closes every close-on-exec descriptor of `pid`'s table.
    /// Precondition: the table is not shared (exec unshares first). Not
    /// asserted here: the corpus says what breaking it does (the sharer
    /// loses its descriptors, `expect P apart Q` fails), and a planted
    /// `exec` that forgets to unshare must be caught by that spec.
    pub fn fdcloseexec(&mut self, pid: Pid) {
        let doomed = self.table_of(pid).installed_all();
        for (fd, _, cloexec) in doomed {
            if !cloexec {
                continue;
            }
            if let Some(t) = self.fdremove(pid, fd) {
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
        if p.share_count() > 1 {
            // Dropping `p` drops one `Arc`: the table lives on.
            return;
        }
        let Proc { name, table, .. } = p;
        let Ok(table) = Table::try_unwrap(table) else {
            unreachable!("a table with share count 1 has one Arc")
        };
        // The last user owns the table: its slots are emptied at once, and
        // the table, empty then, goes.
        let (installed, larval) = table.into_installed();
        assert!(
            larval.is_empty(),
            "fdfree: fds {larval:?} of {name} are larval"
        );
        for (fd, f) in installed {
            let t = self.take_from_slot(fd, *f.data());
            self.closef_slot(t);
        }
        self.record(|_| TraceEvent::Fdfree { proc: name });
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
        assert_eq!(
            w.file(id).count(),
            2,
            "one for the table, one for the caller"
        );
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
        assert_eq!(w.file(id).count(), 1);
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
        assert_eq!(w.table_of(p).slots().len(), 0);
        invariants::check_all(&w).unwrap();
    }

    #[test]
    fn getsock_and_getvnode_check_the_kind() {
        let (mut w, p) = world();
        let (a, _) = w
            .sys_socketpair(p, SockType::Stream, Default::default())
            .unwrap();
        let (r, _) = w.sys_pipe(p, false).unwrap();
        let v = w.sys_open(p, "/dev/null", OFlags::RDONLY, 0).unwrap();
        assert!(w.getsock(p, a).is_ok());
        assert_eq!(w.getsock(p, r).err(), Some(Errno::ENOTSOCK));
        assert_eq!(w.getsock(p, Fd::new(99)).err(), Some(Errno::EBADF));
        assert!(w.getvnode(p, v).is_ok());
        assert_eq!(w.getvnode(p, a).err(), Some(Errno::EINVAL));
        assert_eq!(w.getvnode(p, Fd::new(99)).err(), Some(Errno::EBADF));
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
            w.file(id).count(),
            1,
            "the descriptor is gone, the file lives"
        );
        assert_eq!(w.fd_getfile(p, r).err(), Some(Errno::EBADF));
        w.set_tracing(true);
        w.frele(held);
        let trace = w.take_trace();
        assert_eq!(
            trace.iter().filter(|e| e.is_fdrop()).count(),
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
        let (a, b) = w
            .sys_socketpair(p, SockType::Dgram, Default::default())
            .unwrap();
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
        assert_eq!(w.sockets().count(), 0);
    }

    #[test]
    fn fork_share_unshare_exec_exit() {
        let (mut w, p) = world();
        let fd = w
            .sys_open(p, "/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, 0)
            .unwrap();
        let id = w.fd_getfile(p, fd).unwrap().id();
        let c = w.fork(p, "c").unwrap();
        assert_eq!(w.file(id).count(), 2);
        let s = w.fdshare(p, "s").unwrap();
        assert_eq!(w.proc(p).share_count(), 2);
        assert_eq!(w.file(id).count(), 2, "sharing a table adds no reference");
        w.sys_exec(s);
        assert_eq!(w.proc(p).share_count(), 1);
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
        assert_eq!(w.file(id).count(), 1);
        invariants::check_all(&w).unwrap();
    }
}

/// The tables are the concurrent ones, and a clone of the world is a deep
/// snapshot of them.
#[cfg(test)]
mod on_the_concurrent_table {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;
    use crate::call::Call;
    use crate::mt::sync::Arc;
    use crate::{invariants, OFlags};

    fn count(w: &mut World, p: Pid, fd: u32) -> u32 {
        let fp = w.fd_getfile(p, Fd::new(fd)).unwrap();
        // Less the reference the lookup itself holds.
        fp.file().count() - 1
    }

    #[test]
    fn a_snapshot_shares_no_table_and_no_count() {
        let mut w = World::new();
        let p = w.spawn("p").unwrap();
        let (r, _) = w.sys_pipe(p, false).unwrap();
        let s = w.fdshare(p, "s").unwrap();
        let c = w.fork(p, "c").unwrap();
        // A larval slot, as a snapshot taken inside a call would see it.
        let l = w.falloc(p).unwrap();
        let snap = w.clone();
        invariants::slots_name_live_files(&snap).unwrap();
        invariants::refcounts_match(&snap).unwrap();
        invariants::tables_consistent(&snap).unwrap();
        let h = w.fdinsert(l, false);
        w.frele(h);

        // Change the original: close in the shared table, let the fork exit.
        w.call(s, &Call::Close { fd: r.get() as i32 }).unwrap();
        w.call(c, &Call::Exit).unwrap();
        invariants::check_all(&w).unwrap();

        let mut snap = snap;
        assert_eq!(snap.proc(p).share_count(), 2, "p and s share, in the copy");
        assert_eq!(snap.proc(p).table_id(), snap.proc(s).table_id());
        assert_ne!(snap.proc(p).table_id(), w.proc(p).table_id());
        assert_ne!(snap.proc(c).table_id(), snap.proc(p).table_id());
        assert_eq!(
            snap.table_of(p).file_slot(Fd::new(2)),
            crate::filedesc::FileSlot::Larval(FileId(2)),
            "the larval slot was copied as it was"
        );
        assert_eq!(count(&mut snap, p, r.get()), 2, "p's slot and c's");
        assert_eq!(w.fd_getfile(p, r).err(), Some(Errno::EBADF));
        // The snapshot goes on by itself, and ends empty.
        let l = LarvalFile {
            pid: p,
            fd: Fd::new(2),
            file: FileId(2),
        };
        snap.fdabort(l);
        // The snapshot's tables name their files from one array they
        // share: a close in one table hides the file there only.
        snap.call(p, &Call::Close { fd: r.get() as i32 }).unwrap();
        invariants::check_all(&snap).unwrap();
        assert_eq!(snap.fd_getfile(p, r).err(), Some(Errno::EBADF));
        assert_eq!(count(&mut snap, c, r.get()), 1, "c's slot");
        for q in ["c", "s", "p"] {
            let pid = snap.pid(q).unwrap();
            snap.call(pid, &Call::Exit).unwrap();
            invariants::check_all(&snap).unwrap();
        }
        assert_eq!(snap.files().count(), 0);
        assert_eq!(
            w.files().count(),
            2,
            "the original's write end and new file"
        );
    }

    #[test]
    fn lock_free_readers_meet_the_worlds_own_writes() {
        // Threads look descriptors up in a process's table with the
        // lock-free path while the world dup2s and closes in it. Files 0
        // and 9 stay open throughout, so no reader's FRELE is the last.
        // (System calls, not `World::call`: that checks after each call
        // that nothing but processes holds a table, and the readers do.)
        let mut w = World::new();
        let p = w.spawn("p").unwrap();
        let a = w.sys_open(p, "/dev/null", OFlags::RDONLY, 0).unwrap();
        w.call(p, &Call::Dup2 { old: 0, new: 9 }).unwrap();
        let z = w.sys_open(p, "/dev/zero", OFlags::RDONLY, 0).unwrap();
        w.call(
            p,
            &Call::Dup2 {
                old: z.get() as i32,
                new: 9,
            },
        )
        .unwrap();
        w.call(p, &Call::Close { fd: z.get() as i32 }).unwrap();
        let files = [
            w.table_of(p).installed(a).unwrap(),
            w.table_of(p).installed(Fd::new(9)).unwrap(),
        ];
        let table = Arc::clone(&w.proc(p).table);
        let stop = AtomicBool::new(false);
        let started = std::sync::Barrier::new(3);
        // What the readers saw: lookups that found a file, lookups of a
        // number the writer had closed (EBADF), and lookups that found a
        // number naming the other file than the reader's last look did
        // (the writer's dup2 landed between two of its reads).
        let (found, closed, flips) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        let rounds = std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    started.wait();
                    let mut last: [Option<FileId>; 10] = [None; 10];
                    while !stop.load(Ordering::Relaxed) {
                        for fd in 1..9 {
                            match table.fd_getfile(Fd::new(fd)) {
                                Ok(f) => {
                                    assert!(files.contains(f.data()), "fd {fd}: {f:?}");
                                    found.fetch_add(1, Ordering::Relaxed);
                                    let was = last[fd as usize].replace(*f.data());
                                    if was.is_some_and(|x| x != *f.data()) {
                                        flips.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                Err(e) => {
                                    assert_eq!(e, Errno::EBADF);
                                    closed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                });
            }
            started.wait();
            // At least 4,000 rounds, and on until the readers met both
            // kinds of write (bounded, so that a broken test fails).
            let mut i = 0i32;
            while i < 4000
                || (flips.load(Ordering::Relaxed) == 0 || closed.load(Ordering::Relaxed) == 0)
                    && i < 4_000_000
            {
                let (old, new) = (if i % 3 == 0 { 9 } else { 0 }, 1 + i % 8);
                w.sys_dup2(p, old, new).unwrap();
                if i % 5 == 0 {
                    w.sys_close(p, new).unwrap();
                }
                i += 1;
            }
            stop.store(true, Ordering::Relaxed);
            i
        });
        let (found, closed, flips) = (found.into_inner(), closed.into_inner(), flips.into_inner());
        // The races the test is about happened.
        assert!(
            found > 0 && closed > 0 && flips > 0,
            "in {rounds} rounds of writes the readers found {found} files, \
             {closed} closed numbers and {flips} numbers that changed file"
        );
        drop(table);
        invariants::check_all(&w).unwrap();
        w.call(p, &Call::Exit).unwrap();
        invariants::check_all(&w).unwrap();
    }
}
