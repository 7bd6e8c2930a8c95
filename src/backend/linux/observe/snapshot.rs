//! A snapshot of a set of live processes: their tables, descriptors and
//! open files, what is shared, the unix sockets' peers, and what each epoll
//! watches, with a warning for whatever could not be read.
//!
//! Processes are not frozen: a process may exit, or close a descriptor,
//! between two reads, and kcmp compares files as they are at that call.
//! Such a process or descriptor is left out with a warning, and the rest
//! is what the kernel said at the moment of each read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::Ordering as Atomic;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdlab_model::kind::FileType;
use fdlab_model::pipe::PipeEnd;
use fdlab_model::topology::{canonicalize, name_slaves, RawFile, RawProcess};
use fdlab_model::{Events, OFlags, Topology};

use super::super::sys::{self, Kcmp, UnixSock};
use super::classify::{self, Counter, KcmpFailure};
use super::procfs::{self, Budget, Described, FdDirs, FdEntry, ReadError, TypeCache};

/// What observing has cost, in kcmp calls and time.
#[derive(Debug, Default, Clone, Copy)]
pub struct ObserveCost {
    /// Every kcmp call: tables, files and epoll targets.
    pub kcmp_calls: u64,
    /// Of them, those comparing tables (`KCMP_FILES`).
    pub table_calls: u64,
    /// Of them, those resolving epoll targets (`KCMP_EPOLL_TFD`).
    pub epoll_calls: u64,
    /// Time in kcmp (summed over threads).
    pub kcmp: Duration,
    /// Descriptors read.
    pub descriptors: u64,
    /// The kcmp calls comparing all pairs of the same descriptors would take.
    pub all_pairs: u64,
    /// Wall time reading `/proc` (and `sock_diag`).
    pub read: Duration,
    /// Wall time finding what is shared.
    pub compare: Duration,
    /// Of the descriptors, those carried from an earlier snapshot
    /// ([`Since`]) rather than read.
    pub carried: u64,
}

impl ObserveCost {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ObserveCost) {
        self.kcmp_calls += other.kcmp_calls;
        self.table_calls += other.table_calls;
        self.epoll_calls += other.epoll_calls;
        self.kcmp += other.kcmp;
        self.descriptors += other.descriptors;
        self.all_pairs += other.all_pairs;
        self.read += other.read;
        self.compare += other.compare;
        self.carried += other.carried;
    }
}

/// Why something was left out of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The process exited, or the descriptor closed, during the
    /// observation (`ESRCH`, `ENOENT`).
    Gone,
    /// The caller may not look (`EPERM`, `EACCES`: ptrace access is
    /// needed: the same user, or root, and `kernel.yama.ptrace_scope`).
    Denied,
    /// Another error, by its `errno`.
    Other(i32),
}

impl Reason {
    fn of(e: &io::Error) -> Reason {
        match e.raw_os_error() {
            Some(libc::ESRCH | libc::ENOENT) => Reason::Gone,
            Some(libc::EPERM | libc::EACCES) => Reason::Denied,
            Some(n) => Reason::Other(n),
            None => Reason::Other(libc::EIO),
        }
    }
}

/// Something a snapshot left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub pid: i32,
    /// The descriptor, when only it was left out.
    pub fd: Option<i32>,
    /// What was being read.
    pub what: String,
    pub reason: Reason,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(fd) = self.fd {
            write!(f, " fd {fd}")?;
        }
        let why = match self.reason {
            Reason::Gone => "gone (it exited, or closed it, during the inspection)".to_string(),
            Reason::Denied => {
                "permission denied (reading another user's descriptors takes ptrace access: \
                               the same user, or root, and kernel.yama.ptrace_scope below 2)"
                    .to_string()
            }
            Reason::Other(n) => io::Error::from_raw_os_error(n).to_string(),
        };
        write!(f, ": {}: {why}, left out", self.what)
    }
}

/// How to observe.
#[derive(Debug, Clone)]
pub struct Options {
    /// The descriptors to look at in each process.
    pub fds: Range<i32>,
    /// Threads to read and compare on (1: this thread only).
    pub threads: usize,
    /// Descriptors (pid, fd) to leave out: an observer's own channel.
    pub exclude: Vec<(i32, i32)>,
    /// Read every process's controlling terminal, even when no terminal
    /// is open in any of them. A process keeps its controlling terminal
    /// after it closed every descriptor of it, so only a caller that
    /// knows no terminal was ever open in these processes or their
    /// ancestors may say `false`; the terminal then comes from
    /// `/proc/PID/stat`, which costs the kernel a walk of the process's
    /// whole state, only when a terminal is open now.
    pub ctty: bool,
    /// Read every unix socket of the network namespace (one sock_diag
    /// dump), where `false` reads only those the processes hold and their
    /// peers: enough for the topology, not for a dump's queues in flight.
    pub all_sockets: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            fds: 0..i32::MAX,
            threads: 1,
            exclude: Vec::new(),
            ctty: true,
            all_sockets: true,
        }
    }
}

/// The `/proc` folders of processes, opened once and kept between
/// observations of the same processes.
///
/// A folder belongs to the process, not to its number: once the process
/// is gone every read through it fails, so a caller that sees a number
/// come back for a new process must [`Dirs::forget`] it.
#[derive(Default)]
pub struct Dirs(HashMap<i32, FdDirs>, Option<Arc<Budget>>);

impl Dirs {
    /// Folders that also keep up to `n` descriptors' `fdinfo` files open
    /// between observations, all processes together (see [`Budget`]).
    pub fn keeping(n: usize) -> Dirs {
        Dirs(HashMap::new(), Some(Budget::new(n)))
    }

    /// Forgets what is kept of `pid` (its process is gone, and the number
    /// may name another).
    pub fn forget(&mut self, pid: i32) {
        self.0.remove(&pid);
    }
}

/// One registration of an epoll, resolved to a file if one is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The number it was registered under.
    pub tfd: i32,
    /// Which of the registrations under that number (`toff` for kcmp).
    pub toff: u64,
    pub events: u32,
    /// The representative entry of the file registered, or `None` if no
    /// observed process holds it (closed everywhere but alive in flight,
    /// or held by a process not observed).
    pub file: Option<usize>,
}

/// What a set of processes looked like.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The processes observed (those that could be read, in the order
    /// asked), each with its table's index in `tables`.
    pub tasks: Vec<(i32, usize)>,
    /// Every descriptor read: one copy per table, however many processes
    /// share it.
    pub entries: Vec<FdEntry>,
    /// The entries of each table, by ascending descriptor.
    pub tables: Vec<Vec<usize>>,
    /// The open file of each entry: the index of the entry that stands for
    /// it.
    pub file_of: Vec<usize>,
    /// Unix sockets by inode (if any descriptor is a socket).
    pub sockets: HashMap<u32, UnixSock>,
    /// The registrations of each epoll file (by its representative entry).
    pub epoll: BTreeMap<usize, Vec<Registration>>,
    /// Each process's controlling terminal (`tty_nr`), where it has one.
    pub ctty: HashMap<i32, u32>,
    /// The processes that lead their session.
    pub leaders: std::collections::HashSet<i32>,
    /// Each process's session (the pid of the process that made it).
    pub sessions: HashMap<i32, i32>,
    pub warnings: Vec<Warning>,
    pub cost: ObserveCost,
}

/// What an observer knows happened to the processes since it last
/// observed them: a snapshot of them taken with the same options, and who
/// ran since.
///
/// Only a process's own calls change its table (which descriptors it has,
/// the open file each names, close-on-exec), so a table that no process
/// of it ran in since is the one `before` read, and is not read again.
/// Its entries' open files are, where their state may have moved: a file
/// that a table that ran also held (its offset and status flags are the
/// open file's, shared by every holder), and every epoll, whose
/// registrations the kernel removes when a target's last reference goes,
/// wherever that happens, and at any time (the unix collector). Sessions
/// and sockets are read every time, and the controlling terminal of every
/// process that had one or ran (only its own call gives a process one).
pub struct Since<'a> {
    /// The snapshot taken just before the calls since.
    pub before: &'a Snapshot,
    /// The processes that ran since: those that made a call (at most one
    /// call in all: a process that ran twice may have used in its second
    /// call a file its first one brought), and those new since, whatever
    /// their number.
    pub ran: &'a [i32],
}

impl Since<'_> {
    /// For each table of `tasks`, the table of `before` it is, if nobody
    /// ran in it since: the same processes, none of which ran.
    fn carried(&self, tasks: &[(i32, usize)]) -> Vec<Option<usize>> {
        fn members(tasks: &[(i32, usize)]) -> Vec<Vec<i32>> {
            let n = tasks.iter().map(|t| t.1 + 1).max().unwrap_or(0);
            let mut m = vec![Vec::new(); n];
            for &(pid, t) in tasks {
                m[t].push(pid);
            }
            for v in &mut m {
                v.sort_unstable();
            }
            m
        }
        let old: HashMap<Vec<i32>, usize> = members(&self.before.tasks)
            .into_iter()
            .enumerate()
            .map(|(t, m)| (m, t))
            .collect();
        members(tasks)
            .into_iter()
            .map(|m| {
                let ran = m.is_empty() || m.iter().any(|p| self.ran.contains(p));
                if ran {
                    None
                } else {
                    old.get(&m).copied()
                }
            })
            .collect()
    }

    /// Reads again the `fdinfo` of the carried entries (`was` says where
    /// each was in `before`) whose open file's state may have moved: a
    /// file that a table not carried held in `before` (its holders may
    /// have used it), and every epoll. What the file is (its link, type
    /// and device) stays: it does not change. Returns how many were read,
    /// and the descriptors that could not be.
    fn refresh(
        &self,
        entries: &mut [FdEntry],
        was: &[Option<usize>],
        carried: &[Option<usize>],
        dirs: &HashMap<i32, FdDirs>,
    ) -> (u64, Vec<(i32, i32, ReadError)>) {
        let b = self.before;
        let kept: std::collections::HashSet<usize> = carried.iter().flatten().copied().collect();
        let hot: std::collections::HashSet<usize> = (0..b.tables.len())
            .filter(|t| !kept.contains(t))
            .flat_map(|t| b.tables[t].iter().map(|&i| b.file_of[i]))
            .collect();
        let mut buf = Vec::new();
        let mut failed = Vec::new();
        let mut read = 0;
        for (e, w) in entries.iter_mut().zip(was) {
            let Some(w) = *w else { continue };
            if !hot.contains(&b.file_of[w]) && &*e.link != "anon_inode:[eventpoll]" {
                continue;
            }
            read += 1;
            match dirs[&e.pid].read_info(e.fd, &mut buf) {
                Ok(mut fresh) => {
                    Described::of(e).apply(&mut fresh);
                    *e = fresh;
                }
                Err(err) => failed.push((e.pid, e.fd, err)),
            }
        }
        (read, failed)
    }
}

/// Observes the processes `pids`.
pub fn observe(pids: &[i32], opts: &Options) -> Snapshot {
    observe_with(pids, opts, &mut Dirs::default(), None)
}

/// [`observe`], with the folders of processes observed before kept in
/// `dirs` (those not among `pids` are dropped), and, with `since`, the
/// tables nobody changed since an earlier snapshot taken from it.
pub fn observe_with(
    pids: &[i32],
    opts: &Options,
    dirs: &mut Dirs,
    since: Option<&Since<'_>>,
) -> Snapshot {
    let mut s = Snapshot::default();
    let counter = Counter::default();
    let mut alive: Vec<i32> = Vec::new();
    let t0 = Instant::now();
    dirs.0.retain(|p, _| pids.contains(p));
    for &pid in pids {
        if alive.contains(&pid) {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(v) = dirs.0.entry(pid) {
            match FdDirs::open(pid, &format!("/proc/{pid}")) {
                Ok(d) => {
                    v.insert(match &dirs.1 {
                        Some(b) => d.keeping(Arc::clone(b)),
                        None => d,
                    });
                }
                Err(e) => {
                    s.warn(pid, None, e);
                    continue;
                }
            }
        }
        alive.push(pid);
    }
    let dirs = &dirs.0;
    s.cost.read += t0.elapsed();
    // Tables, and the descriptors of each, read through its first process.
    // A kcmp failure leaves its process out, and the classification runs
    // again without it.
    loop {
        let t = Instant::now();
        let items: Vec<(i32, u64)> = alive.iter().map(|&p| (p, 0)).collect();
        let r = classify::classify(&items, sys::KCMP_FILES, &counter);
        s.cost.compare += t.elapsed();
        match r {
            Ok(cls) => {
                s.tasks = alive.iter().zip(cls).map(|(&p, c)| (p, c)).collect();
                break;
            }
            Err(f) => {
                let gone = s.blame(&f, "comparing tables with kcmp(KCMP_FILES)");
                alive.retain(|p| !gone.contains(p));
            }
        }
    }
    s.cost.table_calls = counter.calls.load(Atomic::Relaxed);
    let ntables = s.tasks.iter().map(|t| t.1 + 1).max().unwrap_or(0);
    let mut readers: Vec<Option<i32>> = vec![None; ntables];
    for &(pid, t) in &s.tasks {
        readers[t].get_or_insert(pid);
    }
    // The tables nobody changed since `before`: taken from it, not read.
    let carried = since.map_or_else(|| vec![None; ntables], |since| since.carried(&s.tasks));
    let to_read: Vec<Option<i32>> = readers
        .iter()
        .zip(&carried)
        .map(|(r, c)| if c.is_some() { None } else { *r })
        .collect();
    let t = Instant::now();
    let read = read_tables(&to_read, dirs, &opts.fds, opts.threads);
    s.cost.read += t.elapsed();
    let mut table_of_entry = Vec::new();
    s.tables = vec![Vec::new(); ntables];
    // Each entry's place in `before`, if it was carried from there.
    let mut was: Vec<Option<usize>> = Vec::new();
    let mut unreadable = Vec::new();
    for (t, r) in read.into_iter().enumerate() {
        if let (Some(old), Some(since)) = (carried[t], since) {
            for &i in &since.before.tables[old] {
                s.tables[t].push(s.entries.len());
                table_of_entry.push(t);
                was.push(Some(i));
                s.entries.push(since.before.entries[i].clone());
            }
            s.cost.carried += since.before.tables[old].len() as u64;
            continue;
        }
        let Some(pid) = readers[t] else { continue };
        match r {
            Ok((entries, skipped)) => {
                for (fd, e) in skipped {
                    s.warn(pid, Some(fd), e);
                }
                for e in entries {
                    if opts.exclude.contains(&(pid, e.fd)) {
                        continue;
                    }
                    s.tables[t].push(s.entries.len());
                    table_of_entry.push(t);
                    was.push(None);
                    s.entries.push(e);
                }
            }
            Err(e) => {
                s.warn(pid, None, e);
                unreadable.push(t);
            }
        }
    }
    if let Some(since) = since {
        let t = Instant::now();
        let (reread, failed) = since.refresh(&mut s.entries, &was, &carried, dirs);
        s.cost.carried -= reread;
        for (pid, fd, e) in failed {
            s.warn(pid, Some(fd), e);
        }
        s.cost.read += t.elapsed();
    }
    drop(was);
    s.tasks.retain(|(_, t)| !unreadable.contains(t));
    // Sessions: one cheap system call a process.
    let t = Instant::now();
    for &(pid, _) in &s.tasks {
        if let Ok(sid) = sys::getsid(pid) {
            if sid == pid {
                s.leaders.insert(pid);
            }
            s.sessions.insert(pid, sid);
        }
    }
    s.cost.read += t.elapsed();
    // Open files.
    loop {
        let t = Instant::now();
        let r = classify::files(&s.entries, &table_of_entry, &counter, opts.threads);
        s.cost.compare += t.elapsed();
        match r {
            Ok(f) => {
                s.file_of = f;
                break;
            }
            Err(f) => {
                // A descriptor closed since the listing (EBADF) is only
                // that descriptor: the process stays.
                let closed: Vec<(i32, i32)> = [(f.pids.0, f.idx.0), (f.pids.1, f.idx.1)]
                    .into_iter()
                    .map(|(p, fd)| (p, fd as i32))
                    .filter(|(p, fd)| {
                        f.source.raw_os_error() == Some(libc::EBADF)
                            && Path::new(&format!("/proc/{p}")).exists()
                            && !Path::new(&format!("/proc/{p}/fd/{fd}")).exists()
                    })
                    .collect();
                if closed.is_empty() {
                    let gone = s.blame(&f, "comparing files with kcmp(KCMP_FILE)");
                    s.drop_pids(&gone, &mut table_of_entry);
                } else {
                    s.drop_entries(&closed, &mut table_of_entry);
                }
            }
        }
    }
    let t = Instant::now();
    let before = since.map(|since| since.before);
    for (pid, fd, e) in describe_files(&mut s.entries, &s.file_of, dirs, before, opts.threads) {
        s.warn(pid, Some(fd), e);
    }
    // Controlling terminals, where one may be. A process takes one only
    // by a call of its own (or from its parent, at fork), so one that had
    // none before and has not run since still has none; one that had one
    // may have lost it without running (its session leader exited, its
    // terminal hung up).
    if opts.ctty || s.entries.iter().any(FdEntry::may_be_terminal) {
        for &(pid, _) in &s.tasks {
            let still_none = since.is_some_and(|since| {
                !since.ran.contains(&pid)
                    && since.before.tasks.iter().any(|t| t.0 == pid)
                    && !since.before.ctty.contains_key(&pid)
            });
            if still_none {
                continue;
            }
            if let Ok(st) = procfs::stat(pid) {
                if st.tty_nr != 0 {
                    s.ctty.insert(pid, st.tty_nr);
                }
            }
        }
    }
    s.cost.read += t.elapsed();
    let n = s.entries.len() as u64;
    s.cost.descriptors = n;
    s.cost.all_pairs = n * n.saturating_sub(1) / 2;
    if s.entries.iter().any(|e| e.link.starts_with("socket:[")) {
        let t = Instant::now();
        match held_sockets(&s.entries, opts.all_sockets) {
            Ok(m) => s.sockets = m,
            Err(e) => s.warnings.push(Warning {
                pid: 0,
                fd: None,
                what: "the sock_diag query of unix sockets".into(),
                reason: Reason::of(&e),
            }),
        }
        s.cost.read += t.elapsed();
    }
    let t = Instant::now();
    let before = counter.calls.load(Atomic::Relaxed);
    s.resolve_epolls(&counter);
    s.cost.epoll_calls = counter.calls.load(Atomic::Relaxed) - before;
    s.cost.compare += t.elapsed();
    s.cost.kcmp_calls = counter.calls.load(Atomic::Relaxed);
    s.cost.kcmp = Duration::from_nanos(counter.nanos.load(Atomic::Relaxed));
    s
}

/// The unix sockets: every one of the namespace, or those `entries` hold
/// and their peers.
fn held_sockets(entries: &[FdEntry], all: bool) -> io::Result<HashMap<u32, UnixSock>> {
    if all {
        return sys::unix_sockets();
    }
    let mut inos: Vec<u32> = entries
        .iter()
        .filter(|e| e.link.starts_with("socket:["))
        .map(|e| e.ino as u32)
        .collect();
    inos.sort_unstable();
    inos.dedup();
    let mut found = sys::unix_sockets_of(&inos)?;
    let mut peers: Vec<u32> = found
        .values()
        .map(|s| s.peer)
        .filter(|p| *p != 0 && !found.contains_key(p))
        .collect();
    peers.sort_unstable();
    peers.dedup();
    found.extend(sys::unix_sockets_of(&peers)?);
    Ok(found)
}

/// `f(i, scratch)` for every `i` below `n`, on `threads` threads (each with
/// its own scratch state, made by `S::default`), in order of `i`.
fn par_map<S: Default, R: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize, &mut S) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || n < 2 {
        let mut st = S::default();
        return (0..n).map(|i| f(i, &mut st)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.min(n))
            .map(|_| {
                s.spawn(|| {
                    let mut st = S::default();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Atomic::Relaxed);
                        if i >= n {
                            break;
                        }
                        mine.push((i, f(i, &mut st)));
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| match h.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    });
    let mut all: Vec<(usize, R)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Entries read from one table, and the descriptors that closed before
/// they could be read.
type TableRead = (Vec<FdEntry>, Vec<(i32, ReadError)>);

/// Reads the `fdinfo` of every descriptor of each table, through its
/// reader (the links come later, one per open file).
fn read_tables(
    readers: &[Option<i32>],
    dirs: &HashMap<i32, FdDirs>,
    fds: &Range<i32>,
    threads: usize,
) -> Vec<Result<TableRead, ReadError>> {
    par_map(readers.len(), threads, |t, buf: &mut Vec<u8>| {
        let Some(pid) = readers[t] else {
            return Ok((Vec::new(), Vec::new()));
        };
        let d = &dirs[&pid];
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for fd in d.list(fds)? {
            match d.read_info(fd, buf) {
                Ok(e) => entries.push(e),
                Err(e) => skipped.push((fd, e)),
            }
        }
        Ok((entries, skipped))
    })
}

/// Reads what each open file is through its representative entry, and
/// gives every entry of it the same. A representative whose descriptor
/// closed meanwhile hands the task to another entry of its file.
///
/// What is known is not read again: a file that an entry carried from
/// `before` describes, and a pipe or socket whose inode `before` saw (its
/// link, `pipe:[INODE]` or `socket:[INODE]`, is its inode's: both ends of
/// a pipe show the same).
fn describe_files(
    entries: &mut [FdEntry],
    file_of: &[usize],
    dirs: &HashMap<i32, FdDirs>,
    before: Option<&Snapshot>,
    threads: usize,
) -> Vec<(i32, i32, ReadError)> {
    let mut by_inode: HashMap<(u32, u64), &FdEntry> = HashMap::new();
    for e in before.map_or(&[][..], |b| &b.entries) {
        if e.link.starts_with("pipe:[") || e.link.starts_with("socket:[") {
            by_inode.insert((e.mnt_id, e.ino), e);
        }
    }
    let mut known: HashMap<usize, Described> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let seen = Some(e)
            .filter(|e| !e.link.is_empty())
            .or_else(|| by_inode.get(&(e.mnt_id, e.ino)).copied());
        if let Some(seen) = seen {
            known
                .entry(file_of[i])
                .or_insert_with(|| Described::of(seen));
        }
    }
    let reps: Vec<usize> = (0..entries.len())
        .filter(|&i| file_of[i] == i && !known.contains_key(&i))
        .collect();
    type Found = Result<Described, (i32, i32, ReadError)>;
    let read: Vec<Found> = {
        let entries = &*entries;
        par_map(reps.len(), threads, |k, types: &mut TypeCache| {
            let r = reps[k];
            let e = &entries[r];
            dirs[&e.pid]
                .describe(e.fd, e.mnt_id, e.ino, types)
                .or_else(|first| {
                    // The representative closed: any other descriptor of
                    // the same file will do (rare: a linear search).
                    for (i, o) in entries.iter().enumerate() {
                        if i != r && file_of[i] == r {
                            if let Ok(d) = dirs[&o.pid].describe(o.fd, o.mnt_id, o.ino, types) {
                                return Ok(d);
                            }
                        }
                    }
                    Err((e.pid, e.fd, first))
                })
        })
    };
    let mut described: Vec<Option<Described>> = vec![None; entries.len()];
    for (rep, d) in known {
        described[rep] = Some(d);
    }
    let mut failed = Vec::new();
    for (k, r) in read.into_iter().enumerate() {
        match r {
            Ok(d) => described[reps[k]] = Some(d),
            Err(f) => failed.push(f),
        }
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if let Some(d) = &described[file_of[i]] {
            d.apply(e);
        }
    }
    failed
}

impl Snapshot {
    /// Whether everything asked for was observed.
    pub fn complete(&self) -> bool {
        self.warnings.is_empty()
    }

    fn warn(&mut self, pid: i32, fd: Option<i32>, e: ReadError) {
        let reason = Reason::of(&e.source);
        // A descriptor that closed between the listing and its read is
        // only that descriptor; anything else of a process is the process.
        self.warnings.push(Warning {
            pid,
            fd,
            what: e.what,
            reason,
        });
    }

    /// The processes a failed kcmp call leaves out: those of the two that
    /// are gone, or else both (the caller may not compare them).
    fn blame(&mut self, f: &KcmpFailure, what: &str) -> Vec<i32> {
        let (a, b) = f.pids;
        let reason = Reason::of(&f.source);
        let gone: Vec<i32> = [a, b]
            .into_iter()
            .filter(|p| !Path::new(&format!("/proc/{p}")).exists())
            .collect();
        let out = if gone.is_empty() {
            if a == b {
                vec![a]
            } else {
                vec![a, b]
            }
        } else {
            gone
        };
        for &pid in &out {
            self.warnings.push(Warning {
                pid,
                fd: None,
                what: what.to_string(),
                reason: if Path::new(&format!("/proc/{pid}")).exists() {
                    reason
                } else {
                    Reason::Gone
                },
            });
        }
        out
    }

    /// Leaves out the processes `pids` and the tables they read.
    /// Leaves out descriptors (pid, fd) that closed during the observation,
    /// with a warning each.
    fn drop_entries(&mut self, closed: &[(i32, i32)], table_of_entry: &mut Vec<usize>) {
        for &(pid, fd) in closed {
            self.warnings.push(Warning {
                pid,
                fd: Some(fd),
                what: "comparing files with kcmp(KCMP_FILE)".to_string(),
                reason: Reason::Gone,
            });
        }
        let keep: Vec<bool> = self
            .entries
            .iter()
            .map(|e| !closed.contains(&(e.pid, e.fd)))
            .collect();
        self.keep_entries(&keep, table_of_entry);
    }

    fn drop_pids(&mut self, pids: &[i32], table_of_entry: &mut Vec<usize>) {
        let dead: Vec<usize> = self
            .tasks
            .iter()
            .filter(|(p, _)| pids.contains(p))
            .map(|t| t.1)
            .collect();
        self.tasks
            .retain(|(p, t)| !pids.contains(p) && !dead.contains(t));
        let keep: Vec<bool> = table_of_entry.iter().map(|t| !dead.contains(t)).collect();
        self.keep_entries(&keep, table_of_entry);
    }

    /// Keeps the entries `keep` says, renumbering the tables' lists.
    fn keep_entries(&mut self, keep: &[bool], table_of_entry: &mut Vec<usize>) {
        let mut new_index = vec![usize::MAX; self.entries.len()];
        let mut entries = Vec::new();
        let mut tables = Vec::new();
        for (i, e) in std::mem::take(&mut self.entries).into_iter().enumerate() {
            if keep[i] {
                new_index[i] = entries.len();
                tables.push(table_of_entry[i]);
                entries.push(e);
            }
        }
        self.entries = entries;
        *table_of_entry = tables;
        for t in &mut self.tables {
            *t = t
                .iter()
                .filter(|&&i| new_index[i] != usize::MAX)
                .map(|&i| new_index[i])
                .collect();
        }
    }

    /// Resolves each epoll's registrations to files, with kcmp(KCMP_EPOLL_TFD)
    /// among the files of the target's inode.
    fn resolve_epolls(&mut self, counter: &Counter) {
        let mut by_ino: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            if self.file_of[i] == i {
                by_ino.entry(e.ino).or_default().push(i);
            }
        }
        let mut failures = Vec::new();
        for (i, ep) in self.entries.iter().enumerate() {
            if self.file_of[i] != i || ep.targets.is_empty() {
                continue;
            }
            let mut seen: HashMap<i32, u64> = HashMap::new();
            let mut regs = Vec::new();
            for t in &ep.targets {
                let toff = seen.entry(t.tfd).or_insert(0);
                let mut found = None;
                // The epoll's own process first: most targets are there.
                let mut cands: Vec<usize> = by_ino.get(&t.ino).cloned().unwrap_or_default();
                cands.sort_by_key(|&c| self.entries[c].pid != ep.pid);
                for c in cands {
                    let e = &self.entries[c];
                    let start = Instant::now();
                    let r = sys::kcmp_epoll_tfd(e.pid, e.fd, ep.pid, ep.fd, t.tfd, *toff);
                    counter.calls.fetch_add(1, Atomic::Relaxed);
                    counter
                        .nanos
                        .fetch_add(start.elapsed().as_nanos() as u64, Atomic::Relaxed);
                    match r {
                        Ok(Kcmp::Order(std::cmp::Ordering::Equal)) => {
                            found = Some(c);
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => failures.push((ep.pid, ep.fd, e)),
                    }
                }
                regs.push(Registration {
                    tfd: t.tfd,
                    toff: *toff,
                    events: t.events,
                    file: found,
                });
                *toff += 1;
            }
            self.epoll.insert(i, regs);
        }
        for (pid, fd, e) in failures {
            let reason = Reason::of(&e);
            let w = Warning {
                pid,
                fd: Some(fd),
                what: "resolving the epoll's targets with kcmp(KCMP_EPOLL_TFD)".into(),
                reason,
            };
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
    }

    /// The entries of the table `pid` uses, if it was observed.
    pub fn fds_of(&self, pid: i32) -> Option<&[usize]> {
        let t = self.tasks.iter().find(|(p, _)| *p == pid)?.1;
        Some(&self.tables[t])
    }

    /// The canonical topology, naming each observed process by
    /// `label(pid)`: its name, and for a live process shown as such, its
    /// pid and command. With `sandbox`, paths under it are shown relative
    /// to it (`.` for itself), as scenarios write them.
    pub fn topology(
        &self,
        label: impl Fn(i32) -> (String, Option<(i32, String)>),
        sandbox: Option<&Path>,
    ) -> Topology {
        let root = sandbox.map(|p| p.to_string_lossy().into_owned());
        let mut files: BTreeMap<usize, RawFile<usize, ObjectId>> = BTreeMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            if self.file_of[i] == i {
                files.insert(i, self.raw_file(i, e, root.as_deref()));
            }
        }
        let procs = self
            .tasks
            .iter()
            .map(|&(real, t)| {
                let (name, pid) = label(real);
                (name, pid, t, real)
            })
            .map(|(name, pid, t, real)| RawProcess {
                ctty: self.ctty_file(real),
                name,
                pid,
                table: t,
                fds: self.tables[t]
                    .iter()
                    .map(|&i| {
                        let e = &self.entries[i];
                        (e.fd as u32, self.file_of[i], e.cloexec)
                    })
                    .collect(),
            })
            .collect();
        let mut t = canonicalize(procs, &files);
        // A scenario's terminals are named as the model names them.
        if sandbox.is_some() {
            name_slaves(&mut t);
        }
        t
    }

    /// An open file (its representative entry) of the pty whose slave is
    /// `pid`'s controlling terminal, master or slave, if some table holds
    /// one.
    fn ctty_file(&self, pid: i32) -> Option<usize> {
        let nr = *self.ctty.get(&pid)?;
        let i = self
            .entries
            .iter()
            .position(|e| e.pty_index().is_some_and(|n| procfs::pts_tty_nr(n) == nr))?;
        Some(self.file_of[i])
    }

    /// What kind of object an open file reaches, as the topology shows it.
    pub fn file_type(&self, e: &FdEntry) -> FileType {
        use rustix::fs::FileType as T;
        if e.link.starts_with("pipe:[") || e.ftype == Some(T::Fifo) {
            FileType::Pipe
        } else if e.link.starts_with("socket:[") {
            FileType::Socket
        } else if &*e.link == "anon_inode:[eventpoll]" {
            FileType::Epoll
        } else if &*e.link == "anon_inode:[eventfd]" {
            FileType::Eventfd
        } else {
            match e.ftype {
                Some(T::Directory) => FileType::Directory,
                Some(T::CharacterDevice) => FileType::Chardev,
                Some(T::RegularFile) => FileType::Regular,
                _ => FileType::Unknown,
            }
        }
    }

    fn raw_file(&self, i: usize, e: &FdEntry, root: Option<&str>) -> RawFile<usize, ObjectId> {
        match self.file_type(e) {
            FileType::Pipe => RawFile::Pipe {
                end: if e.flags & 3 == 1 {
                    PipeEnd::Write
                } else {
                    PipeEnd::Read
                },
                object: (0, e.ino),
            },
            FileType::Socket => match self.sockets.get(&(e.ino as u32)) {
                Some(s) => {
                    // A connected pair, or a client and the socket accept
                    // gave for it, share one object; a datagram socket
                    // that only sends to another does not.
                    let mutual = self
                        .sockets
                        .get(&s.peer)
                        .is_some_and(|p| u64::from(p.peer) == e.ino);
                    let peer = u64::from(s.peer);
                    RawFile::Socket {
                        ty: s.sock_type(),
                        object: (0, if mutual { e.ino.min(peer) } else { e.ino }),
                        name: s.name.as_deref().map(|n| scenario_name(n, root)),
                        listening: s.listening(),
                    }
                }
                None => RawFile::Opaque {
                    kind: FileType::Socket,
                    what: e.link.to_string(),
                },
            },
            FileType::Epoll => RawFile::Epoll {
                targets: self
                    .epoll
                    .get(&i)
                    .map(|regs| {
                        regs.iter()
                            .map(|r| (r.tfd as u32, r.file, Events::from_bits(r.events)))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            FileType::Eventfd => RawFile::Eventfd,
            FileType::Unknown => RawFile::Opaque {
                kind: FileType::Unknown,
                what: e.link.to_string(),
            },
            kind => {
                let path = match root {
                    Some(root) if *e.link == *root => ".".to_string(),
                    Some(root) => e
                        .link
                        .strip_prefix(&format!("{root}/"))
                        .unwrap_or(&*e.link)
                        .to_string(),
                    None => e.link.to_string(),
                };
                let path = if path == "/dev/pts/ptmx" {
                    "/dev/ptmx".to_string()
                } else {
                    path
                };
                RawFile::Path {
                    kind,
                    path,
                    offset: e.pos,
                    flags: OFlags::from_bits(e.flags),
                    object: Some((e.dev, e.ino)),
                    pty: e.pty_index().map(|n| (PTY, n.into())),
                }
            }
        }
    }
}

/// What tells objects apart in a topology: a file's device and inode; a
/// pipe's or socket connection's inode, with device 0 (their file systems
/// have no paths); a pseudo-terminal's index, with device [`PTY`].
type ObjectId = (u64, u64);

/// The device of no inode, which keys pseudo-terminals.
const PTY: u64 = u64::MAX;

/// A socket's name as the scenario wrote it: scenario helpers bind an
/// abstract `@name` as `@<sandbox's base name>/name`, private to the run;
/// a restore binds a path under `root` by its full path.
pub fn scenario_name(name: &str, root: Option<&str>) -> String {
    let base = root.and_then(|r| r.rsplit('/').next());
    let own = name
        .strip_prefix('@')
        .zip(base)
        .and_then(|(rest, base)| rest.strip_prefix(base)?.strip_prefix('/'));
    let under = root.and_then(|r| name.strip_prefix(r)?.strip_prefix('/'));
    match (own, under) {
        (Some(own), _) => format!("@{own}"),
        (None, Some(path)) => path.to_string(),
        (None, None) => name.to_string(),
    }
}
