//! The whole modelled kernel state, and the lookups every layer shares.
//!
//! A clone of a `World` is a snapshot of every table, file and buffer,
//! which `--trace`, the book and the comparison with Linux (one per state
//! the pending work may leave) use. The descriptor tables are the
//! concurrent ones of [`crate::mt`], held by processes through `Arc`s, and
//! a file's count is an atomic in the table's file: a derived clone would
//! share those. So `Clone` is written out: it copies every file with its
//! count under the same [`FileId`], then every table once, however many
//! processes share it, naming the copies (see [`World::clone`]). File
//! contents sit in persistent maps, so a snapshot shares them.
//!
//! Floor: above the files, tables, processes and objects it stores; below
//! every layer that works on it (`gc`, `topology`, `descrip`, `deferred`,
//! `invariants`, `sys`), which it never calls.

use std::collections::{BTreeMap, BTreeSet};

use crate::file::File;
use crate::filedesc::{Filedesc, Table, TableId};
use crate::ids::{FileId, Pid, PipeId, PtyId, SockId};
use crate::mt::sync::Arc;
#[cfg(any(test, feature = "mutants"))]
use crate::mutant::Mutant;
use crate::pipe::Pipe;
use crate::proc::Proc;
use crate::pty::Pty;
use crate::slab::Slab;
use crate::socket::{Names, Sock, Socks};
use crate::trace::TraceEvent;
use crate::vnode::Fs;
use crate::waitq::WaitQueues;

/// The modelled kernel.
#[derive(Debug)]
pub struct World {
    /// Each process holds its table: tables live exactly as long as a
    /// process uses them.
    pub(crate) procs: Slab<Proc>,
    pub(crate) names: BTreeMap<String, Pid>,
    pub(crate) files: Slab<File>,
    pub(crate) pipes: Slab<Pipe>,
    pub(crate) ptys: Slab<Pty>,
    pub(crate) socks: Socks,
    /// The bound unix sockets, by name.
    pub(crate) unix_names: Names,
    /// The epoll registrations waiting on each object's wait queues.
    pub(crate) waiters: WaitQueues,
    pub(crate) fs: Fs,
    pub(crate) next_serial: u64,
    /// The number the next `setsid` gives its session.
    pub(crate) next_session: u64,
    /// `fs.nr_open`: the ceiling of every `RLIMIT_NOFILE`.
    pub(crate) nr_open: u64,
    /// The file(9) calls made, while tracing.
    pub(crate) trace: Option<Vec<TraceEvent>>,
    /// A socket went away since the garbage collector last ran.
    pub(crate) gc_pending: bool,
    /// How many times the collector freed something.
    pub(crate) gc_collections: u64,
    /// References the deferred collector took out of the queues of
    /// unreachable sockets and has not dropped yet (Linux's `hitlist`).
    pub(crate) gc_hitlist: Vec<FileId>,
    /// Files whose last reference a work queue dropped, not torn down yet
    /// (Linux's `delayed_fput_list`): dead, but still registered in epoll
    /// instances, whose `epoll_wait` skips them.
    pub(crate) delayed_fput: Vec<FileId>,
    /// Whether references are being dropped by a work queue (the
    /// collector), whose last ones Linux tears down later.
    pub(crate) in_kworker: bool,
    /// Whether work Linux does from work queues is left pending until
    /// `run_work` (see `deferred`), rather than done at once.
    pub(crate) deferred: bool,
    /// Whether scenario processes bypass permission bits (CAP_DAC_OVERRIDE,
    /// as root has); otherwise the owner bits of a file's mode apply.
    pub(crate) privileged: bool,
    /// The bug planted in every table the world makes (see `mutant`).
    #[cfg(any(test, feature = "mutants"))]
    pub(crate) mutant: Mutant,
    /// Whether `call` checks every invariant afterwards (debug builds).
    pub(crate) checked: bool,
}

impl Default for World {
    fn default() -> Self {
        World {
            procs: Slab::default(),
            names: BTreeMap::new(),
            files: Slab::default(),
            pipes: Slab::default(),
            ptys: Slab::default(),
            socks: Socks::default(),
            unix_names: Names::default(),
            waiters: WaitQueues::default(),
            fs: Fs::default(),
            next_serial: 0,
            next_session: 1,
            nr_open: u64::from(crate::limits::NR_OPEN),
            trace: None,
            gc_pending: false,
            gc_collections: 0,
            gc_hitlist: Vec::new(),
            delayed_fput: Vec::new(),
            in_kworker: false,
            privileged: true,
            deferred: false,
            #[cfg(any(test, feature = "mutants"))]
            mutant: Mutant::None,
            checked: true,
        }
    }
}

impl Clone for World {
    /// A snapshot that shares no table and no count with `self`: each file
    /// gets a handle of its own with the same count, under the same
    /// [`FileId`] (so that everything naming files by id, queues in flight
    /// and epoll interest lists among them, stays right), and each table is
    /// copied once, slots, larval ones, bitmap and hint as they are,
    /// naming the copies, and handed to every process that shared it.
    fn clone(&self) -> World {
        let files = self.files.map(|i, f| f.snapshot(FileId(i)));
        // The copies' handles by id, one array every table's copy shares.
        let handles = Arc::new(
            (0..files.capacity())
                .map(|i| files.get(i).map(|f| Arc::clone(&f.handle)))
                .collect(),
        );
        let mut tables: BTreeMap<TableId, Table> = BTreeMap::new();
        let procs = self.procs.map(|_, p| Proc {
            name: p.name.clone(),
            parent: p.parent.clone(),
            table: Table::clone(tables.entry(p.table_id()).or_insert_with(|| {
                // A slot names a live file, whose copy has its id.
                Table::new(p.table.snapshot(&handles, |f| f.data().0))
            })),
            rlimit: p.rlimit,
            session: p.session,
            leader: p.leader,
            ctty: p.ctty,
        });
        World {
            procs,
            names: self.names.clone(),
            files,
            pipes: self.pipes.clone(),
            ptys: self.ptys.clone(),
            socks: self.socks.clone(),
            unix_names: self.unix_names.clone(),
            waiters: self.waiters.clone(),
            fs: self.fs.clone(),
            next_serial: self.next_serial,
            next_session: self.next_session,
            nr_open: self.nr_open,
            trace: self.trace.clone(),
            gc_pending: self.gc_pending,
            gc_collections: self.gc_collections,
            gc_hitlist: self.gc_hitlist.clone(),
            delayed_fput: self.delayed_fput.clone(),
            in_kworker: self.in_kworker,
            deferred: self.deferred,
            privileged: self.privileged,
            #[cfg(any(test, feature = "mutants"))]
            mutant: self.mutant,
            checked: self.checked,
        }
    }
}

impl Drop for World {
    /// A world that goes away takes its files with it: each table goes
    /// without counting its files down one by one, since no one is left
    /// to tell (a table two processes share goes with the last of them).
    fn drop(&mut self) {
        for p in std::mem::take(&mut self.procs).into_values() {
            if let Ok(t) = Table::try_unwrap(p.table) {
                t.discard();
            }
        }
    }
}

impl World {
    pub fn new() -> World {
        World::default()
    }

    /// Raises `fs.nr_open` (benchmarks open more than 2^20 descriptors).
    /// Tables made before keep the room they were made with.
    pub fn set_nr_open(&mut self, n: u64) {
        self.nr_open = n;
    }

    /// Whether processes bypass permission bits, as root does (the default),
    /// or are held to the owner bits of a file's mode, as any other user is.
    pub fn set_privileged(&mut self, on: bool) {
        self.privileged = on;
    }

    /// Starts or stops recording file(9) calls.
    pub fn set_tracing(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// Whether file(9) calls are being recorded.
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// The file(9) calls recorded since the last call.
    pub fn take_trace(&mut self) -> Vec<TraceEvent> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Records a trace event; `event` is only evaluated while tracing.
    #[inline]
    pub(crate) fn record(&mut self, event: impl FnOnce(&World) -> TraceEvent) {
        if self.trace.is_some() {
            let e = event(self);
            if let Some(t) = self.trace.as_mut() {
                t.push(e);
            }
        }
    }

    /// Plants `mutant` in every table made from now on, and in the world's
    /// collector (test builds and the `mutants` feature only).
    #[cfg(any(test, feature = "mutants"))]
    pub fn plant(&mut self, mutant: Mutant) {
        self.mutant = mutant;
    }

    /// Stops `call` from checking the invariants after each call (debug
    /// builds check them), so that a planted bug can be met by the other
    /// checkers, as in a release build (the `mutants` feature only).
    #[cfg(any(test, feature = "mutants"))]
    pub fn set_checked(&mut self, on: bool) {
        self.checked = on;
    }

    /// The live process called `name`.
    pub fn pid(&self, name: &str) -> Option<Pid> {
        self.names.get(name).copied()
    }

    /// Live processes by name.
    pub fn processes(&self) -> impl Iterator<Item = (&str, Pid)> {
        self.names.iter().map(|(n, &p)| (n.as_str(), p))
    }

    pub fn proc(&self, pid: Pid) -> &Proc {
        // Pids come from `pid()`/`spawn()` and die only in `exit`, after which
        // the scenario validator forbids their use.
        self.procs.get(pid.0).expect("live pid")
    }

    pub(crate) fn proc_mut(&mut self, pid: Pid) -> &mut Proc {
        self.procs.get_mut(pid.0).expect("live pid")
    }

    /// The table process `pid` uses.
    pub fn table_of(&self, pid: Pid) -> &Filedesc {
        self.proc(pid).table()
    }

    /// A new, empty table with room for `fs.nr_open` descriptors.
    pub(crate) fn new_table(&self) -> Table {
        let limit = u32::try_from(self.nr_open).unwrap_or(u32::MAX);
        #[cfg(any(test, feature = "mutants"))]
        return Table::new(Filedesc::with_mutant(limit, self.mutant));
        #[cfg(not(any(test, feature = "mutants")))]
        Table::new(Filedesc::new(limit))
    }

    pub fn file(&self, f: FileId) -> &File {
        // A FileId is only reachable through a counted reference.
        self.files.get(f.0).expect("live file")
    }

    pub(crate) fn file_mut(&mut self, f: FileId) -> &mut File {
        self.files.get_mut(f.0).expect("live file")
    }

    pub fn pipe(&self, p: PipeId) -> &Pipe {
        self.pipes.get(p.0).expect("live pipe")
    }

    pub(crate) fn pipe_mut(&mut self, p: PipeId) -> &mut Pipe {
        self.pipes.get_mut(p.0).expect("live pipe")
    }

    pub fn pty(&self, p: PtyId) -> &Pty {
        self.ptys.get(p.0).expect("live pty")
    }

    pub(crate) fn pty_mut(&mut self, p: PtyId) -> &mut Pty {
        self.ptys.get_mut(p.0).expect("live pty")
    }

    pub fn sock(&self, s: SockId) -> &Sock {
        self.socks.get(s)
    }

    /// How many times the unix garbage collector has freed something.
    pub fn gc_collections(&self) -> u64 {
        self.gc_collections
    }

    /// The file system, to add files outside the sandbox (`Fs::add_outside`)
    /// before a restore.
    pub fn fs_mut(&mut self) -> &mut Fs {
        &mut self.fs
    }

    pub fn fs(&self) -> &Fs {
        &self.fs
    }

    /// Every live open file.
    pub fn files(&self) -> impl Iterator<Item = (FileId, &File)> {
        self.files.iter().map(|(i, f)| (FileId(i), f))
    }

    /// Every live table once, however many processes share it, with its
    /// `Arc` (whose strong count is the share count).
    pub fn tables(&self) -> Vec<(TableId, &Table)> {
        let mut seen = BTreeSet::new();
        self.procs
            .iter()
            .filter(|(_, p)| seen.insert(p.table_id()))
            .map(|(_, p)| (p.table_id(), &p.table))
            .collect()
    }

    /// Every live unix socket, with or without a file.
    pub fn sockets(&self) -> impl Iterator<Item = (SockId, &Sock)> {
        self.socks.iter()
    }

    /// The number traces give file `f`.
    pub(crate) fn serial(&self, f: FileId) -> u64 {
        self.file(f).serial
    }
}
