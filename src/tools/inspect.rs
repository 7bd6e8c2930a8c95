//! `fdlab inspect`: who shares which open file, in any live process tree.
//!
//! It observes the processes with `backend::linux::observe` (tables from
//! `/proc`, sharing from `kcmp(2)`) and describes what it saw: each
//! process's descriptors; the open files, each with every descriptor that
//! names it, in every process; the objects (inodes, pipes, socket pairs,
//! terminals) that several open files reach; the other end of every pipe,
//! unix socket and terminal; and what every epoll watches, resolved to
//! files even under numbers closed since.
//!
//! Processes are not frozen unless asked (`freeze`): see
//! [`crate::backend::linux::observe::snapshot`] for what a snapshot of
//! running processes can and cannot promise.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use fdlab_model::kind::FileType;
use fdlab_model::topology::FileView;
use fdlab_model::Topology;
use serde::Serialize;

use crate::backend::linux::freeze::Frozen;
use crate::backend::linux::observe::{self, procfs, FdEntry, Reason, Snapshot};

/// Which processes to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// These processes.
    Pids(Vec<i32>),
    /// This process and all its descendants.
    Tree(i32),
    /// Every process the caller may inspect.
    All,
}

/// What to show of what was inspected. Sharing is found among every
/// inspected process whatever the filters: they choose what is shown.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only these processes' descriptors.
    pub pids: Vec<i32>,
    /// Only files whose target matches this glob (`*`, `?`, `[...]`).
    pub path: Option<String>,
    /// Only files of these kinds.
    pub kinds: Vec<FileType>,
    /// Only what is shared: an open file with several descriptors, or one
    /// whose object another open file reaches too, or a shared table.
    pub shared: bool,
}

/// An inspection to make.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    /// Each thread as a process of its own (threads usually share their
    /// process's table, which the tables then show).
    pub threads: bool,
    /// Stop the processes (SIGSTOP) while they are observed, and resume
    /// them after, whatever happens.
    pub freeze: bool,
    pub filters: Filters,
    /// Threads to observe on.
    pub workers: usize,
    /// A pause while frozen, before observing (a testing aid:
    /// `$FDLAB_INSPECT_DELAY_MS`, so that a test can interrupt it).
    pub delay: Duration,
}

/// Why an inspection could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("no process {0}")]
    NoProcess(i32),
    #[error("--freeze would stop every process of the system, this one's parents among them; freeze a tree or a list of processes")]
    FreezeAll,
    #[error("cannot freeze: {0}")]
    Freeze(#[source] std::io::Error),
}

/// A descriptor, named by process and number (the process's command is
/// in the topology).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Desc {
    pub pid: i32,
    pub fd: i32,
}

/// An epoll registration of a file: which epoll file, under which number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watch {
    /// The epoll's open file.
    pub epoll: usize,
    /// The number the file is registered under.
    pub fd: i32,
}

/// A unix socket's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketState {
    /// `listening`, `connected` or `unconnected`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which halves are shut down: `read`, `write`, `read and write`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<&'static str>,
    /// A listener's pending connections, or the bytes queued to read.
    pub queued: u32,
}

/// One open file, beside its entry in the topology.
#[derive(Debug, Clone, Serialize)]
pub struct FileDetail {
    /// Its id in the topology.
    pub file: usize,
    /// What `/proc/PID/fd/N` says it is.
    pub target: String,
    pub kind: FileType,
    /// Every descriptor that names it, in every inspected process.
    pub descriptors: Vec<Desc>,
    /// The object it reaches (an index into the objects).
    pub object: usize,
    /// The descriptors at the other end: of a pipe, a unix socket's peer,
    /// a terminal's master or slave.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Desc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketState>,
    /// The epolls that watch it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watched_by: Vec<Watch>,
}

/// What open files reach: an inode, a pipe, a socket pair, a terminal, an
/// epoll instance.
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    pub id: usize,
    pub name: String,
    /// The device and inode, for files reached by a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<(String, u64)>,
    /// The open files that reach it.
    pub files: Vec<usize>,
}

/// What an inspection cost.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct InspectCost {
    pub processes: usize,
    pub descriptors: u64,
    pub files: usize,
    pub kcmp_calls: u64,
    /// Of them, those comparing open files (`KCMP_FILE`), as opposed to
    /// tables and epoll targets.
    pub file_kcmp_calls: u64,
    /// The kcmp calls comparing all pairs of descriptors would take.
    pub all_pairs: u64,
    /// Wall time reading `/proc`.
    pub read_ms: f64,
    /// Wall time finding what is shared.
    pub compare_ms: f64,
    pub total_ms: f64,
}

/// What an inspection found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The processes, tables and open files shown, in `fdlab run`'s schema
    /// (processes named `command[pid]`).
    pub topology: Topology,
    pub files: Vec<FileDetail>,
    /// The objects the files shown reach.
    pub objects: Vec<Object>,
    /// What was left out, and why.
    pub warnings: Vec<String>,
    /// Whether something was left out (a process or descriptor could not
    /// be read, or vanished).
    pub partial: bool,
    /// Processes `--freeze` stopped and resumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen: Option<usize>,
    pub cost: InspectCost,
}

/// The processes `target` names (with `threads`, every thread of each).
///
/// Errors: a pid named explicitly does not exist.
pub fn select(target: &Target, threads: bool) -> Result<Vec<i32>, InspectError> {
    let procs: Vec<i32> = match target {
        Target::Pids(pids) => {
            for &p in pids {
                if procfs::stat(p).is_err() {
                    return Err(InspectError::NoProcess(p));
                }
            }
            let mut v = pids.clone();
            v.dedup();
            v
        }
        Target::Tree(root) => {
            if procfs::stat(*root).is_err() {
                return Err(InspectError::NoProcess(*root));
            }
            descendants(*root)
        }
        Target::All => procfs::all_pids(),
    };
    if !threads {
        return Ok(procs);
    }
    Ok(procs.into_iter().flat_map(procfs::threads).collect())
}

/// `root` and its descendants, parents before children.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in procfs::all_pids() {
        if let Ok(s) = procfs::stat(pid) {
            children.entry(s.ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// This process and its ancestors, which `--freeze` must never stop.
pub fn ancestry() -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    let mut p = std::process::id() as i32;
    while p > 0 && out.insert(p) {
        p = procfs::stat(p).map_or(0, |s| s.ppid);
    }
    out
}

/// Inspects the processes `req` names.
///
/// Errors: a named process does not exist, or `--freeze` cannot be done.
pub fn inspect(req: &Request) -> Result<Inspection, InspectError> {
    let start = Instant::now();
    if req.freeze && req.target == Target::All {
        return Err(InspectError::FreezeAll);
    }
    let pids = select(&req.target, req.threads)?;
    let mut notes = Vec::new();
    let mut frozen_failed = false;
    let frozen = if req.freeze {
        let keep = ancestry();
        let stop: Vec<i32> = pids.iter().copied().filter(|p| !keep.contains(p)).collect();
        for p in pids.iter().filter(|p| keep.contains(p)) {
            notes.push(format!(
                "pid {p}: not frozen (it is this process or one of its parents)"
            ));
        }
        let f = Frozen::stop(&stop, Duration::from_secs(2)).map_err(InspectError::Freeze)?;
        for (p, e) in &f.failed {
            notes.push(format!("pid {p}: could not be frozen: {e}"));
        }
        frozen_failed = !f.failed.is_empty();
        Some(f)
    } else {
        None
    };
    if frozen.is_some() {
        std::thread::sleep(req.delay);
    }
    let opts = observe::Options {
        fds: 0..i32::MAX,
        threads: req.workers.max(1),
        ..observe::Options::default()
    };
    let snap = observe::observe(&pids, &opts);
    let frozen_count = frozen.as_ref().map(|f| f.stopped.len());
    // Resumed as soon as the kernel has been asked everything.
    drop(frozen);
    let mut ins = describe(&snap, req.target == Target::All);
    ins.warnings.splice(0..0, notes.iter().cloned());
    ins.partial |= frozen_failed;
    ins.frozen = frozen_count;
    apply(&mut ins, &req.filters);
    ins.cost.total_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(ins)
}

/// The command of `pid`, as `/proc/PID/stat` names it.
fn command(pid: i32) -> String {
    procfs::stat(pid).map_or_else(|_| "?".to_string(), |s| s.comm)
}

/// What a snapshot shows, unfiltered. With `all`, processes the caller
/// may not inspect are left out quietly (`--all` means those it may),
/// counted in one note.
pub fn describe(snap: &Snapshot, all: bool) -> Inspection {
    let commands: HashMap<i32, String> = snap.tasks.iter().map(|&(p, _)| (p, command(p))).collect();
    let topology = snap.topology(
        |pid| {
            let c = commands.get(&pid).cloned().unwrap_or_else(|| command(pid));
            (format!("{c}[{pid}]"), Some((pid, c)))
        },
        None,
    );
    let nfiles = topology.files.len();
    // The topology's id of each open file, by its representative entry,
    // and back.
    let mut id_of: HashMap<usize, usize> = HashMap::with_capacity(nfiles);
    for p in &topology.processes {
        let pid = p.pid.unwrap_or(0);
        let Some(entries) = snap.fds_of(pid) else {
            continue;
        };
        // A table's entries and the view's descriptors are both ascending.
        let mut it = entries.iter().peekable();
        for v in &p.fds {
            while it
                .next_if(|&&i| (snap.entries[i].fd as u32) < v.fd)
                .is_some()
            {}
            if let Some(&&i) = it.peek() {
                if snap.entries[i].fd as u32 == v.fd {
                    id_of.insert(snap.file_of[i], v.file);
                }
            }
        }
    }
    let mut rep_of: Vec<usize> = vec![usize::MAX; nfiles];
    for (&r, &id) in &id_of {
        rep_of[id] = r;
    }
    // Every descriptor of every open file, in every process.
    let mut descs: Vec<Vec<Desc>> = vec![Vec::new(); nfiles];
    for p in &topology.processes {
        let pid = p.pid.unwrap_or(0);
        for v in &p.fds {
            descs[v.file].push(Desc {
                pid,
                fd: v.fd as i32,
            });
        }
    }
    // Objects.
    let mut object_ids: HashMap<ObjectKey, usize> = HashMap::new();
    let mut objects: Vec<Object> = Vec::new();
    let mut object_of: Vec<usize> = vec![0; nfiles];
    for (id, &r) in rep_of.iter().enumerate() {
        let e = &snap.entries[r];
        let o = *object_ids.entry(object_key(snap, r, e)).or_insert_with(|| {
            let (name, inode) = object_name(snap, e);
            objects.push(Object {
                id: objects.len(),
                name,
                inode,
                files: Vec::new(),
            });
            objects.len() - 1
        });
        objects[o].files.push(id);
        object_of[id] = o;
    }
    // Watches, by target file.
    let mut watched: Vec<Vec<Watch>> = vec![Vec::new(); nfiles];
    for (&ep, regs) in &snap.epoll {
        let Some(&epid) = id_of.get(&ep) else {
            continue;
        };
        for r in regs {
            if let Some(&t) = r.file.and_then(|f| id_of.get(&f)) {
                watched[t].push(Watch {
                    epoll: epid,
                    fd: r.tfd,
                });
            }
        }
    }
    let ends = Ends::new(snap, &rep_of);
    let far: Vec<(Vec<Desc>, Option<SocketState>)> = (0..nfiles)
        .map(|id| {
            let (others, socket) = ends.of(snap, id, &snap.entries[rep_of[id]]);
            let mut endpoints: Vec<Desc> = others
                .iter()
                .flat_map(|&o| descs[o].iter().copied())
                .collect();
            endpoints.sort();
            endpoints.dedup();
            (endpoints, socket)
        })
        .collect();
    let mut files = Vec::with_capacity(nfiles);
    for ((id, d), (endpoints, socket)) in descs.into_iter().enumerate().zip(far) {
        let e = &snap.entries[rep_of[id]];
        files.push(FileDetail {
            file: id,
            target: e.link.to_string(),
            kind: snap.file_type(e),
            descriptors: d,
            object: object_of[id],
            endpoints,
            socket,
            watched_by: std::mem::take(&mut watched[id]),
        });
    }
    let mut warnings = Vec::new();
    let mut denied = 0;
    let mut partial = false;
    for w in &snap.warnings {
        if all && w.fd.is_none() && w.reason == Reason::Denied {
            denied += 1;
            continue;
        }
        partial = true;
        warnings.push(w.to_string());
    }
    if denied > 0 {
        warnings.push(format!(
            "{denied} processes are not this user's to inspect, and are not shown (run as root to see them)"
        ));
    }
    let c = &snap.cost;
    Inspection {
        cost: InspectCost {
            processes: snap.tasks.len(),
            descriptors: c.descriptors,
            files: files.len(),
            kcmp_calls: c.kcmp_calls,
            file_kcmp_calls: c.kcmp_calls - c.table_calls - c.epoll_calls,
            all_pairs: c.all_pairs,
            read_ms: c.read.as_secs_f64() * 1e3,
            compare_ms: c.compare.as_secs_f64() * 1e3,
            total_ms: 0.0,
        },
        topology,
        files,
        objects,
        warnings,
        partial,
        frozen: None,
    }
}

/// How objects are told apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ObjectKey {
    /// A file reached by a path: device and inode.
    Inode(u64, u64),
    /// A pipe, a socket pair (its smaller inode), by inode.
    Pipe(u64),
    Socket(u64),
    /// A pseudo-terminal, by its number: master and slave alike.
    Pty(u32),
    Eventfd(u64),
    /// Anything else is its own open file.
    File(usize),
}

/// The terminal a file is the master or a slave of.
fn pty(e: &FdEntry) -> Option<u32> {
    e.tty_index.or_else(|| {
        e.link
            .strip_prefix("/dev/pts/")
            .and_then(|n| n.parse().ok())
    })
}

/// A socket's pair: its own inode or its peer's, the smaller.
fn socket_pair(snap: &Snapshot, e: &FdEntry) -> (u64, bool) {
    let peer = snap
        .sockets
        .get(&(e.ino as u32))
        .map_or(0, |s| u64::from(s.peer));
    if peer == 0 {
        (e.ino, false)
    } else {
        (e.ino.min(peer), true)
    }
}

fn object_key(snap: &Snapshot, r: usize, e: &FdEntry) -> ObjectKey {
    if let Some(n) = pty(e) {
        return ObjectKey::Pty(n);
    }
    match snap.file_type(e) {
        FileType::Pipe if !e.has_path() => ObjectKey::Pipe(e.ino),
        FileType::Socket => ObjectKey::Socket(socket_pair(snap, e).0),
        FileType::Eventfd => match e.eventfd {
            Some((_, id)) => ObjectKey::Eventfd(id),
            None => ObjectKey::File(r),
        },
        _ if e.has_path() => ObjectKey::Inode(e.dev, e.ino),
        _ => ObjectKey::File(r),
    }
}

/// An object's name, and for a file with a path, its device and inode.
fn object_name(snap: &Snapshot, e: &FdEntry) -> (String, Option<(String, u64)>) {
    if let Some(n) = pty(e) {
        return (format!("pty {n}"), None);
    }
    match snap.file_type(e) {
        FileType::Socket => match socket_pair(snap, e) {
            (pair, true) => (format!("socket pair {pair}"), None),
            (_, false) => (e.link.to_string(), None),
        },
        FileType::Eventfd if e.eventfd.is_some() => {
            (format!("eventfd {}", e.eventfd.map_or(0, |x| x.1)), None)
        }
        _ if e.has_path() => (
            e.link.to_string(),
            Some((
                format!("{}:{}", libc::major(e.dev), libc::minor(e.dev)),
                e.ino,
            )),
        ),
        _ => (e.link.to_string(), None),
    }
}

/// What finds the other end of an open file: the open files of each pipe,
/// socket, terminal and eventfd, by their ids in the topology.
struct Ends {
    /// The representative entry of each file, by id.
    rep_of: Vec<usize>,
    pipes: HashMap<u64, Vec<usize>>,
    sockets: HashMap<u64, Vec<usize>>,
    masters: HashMap<u32, Vec<usize>>,
    slaves: HashMap<u32, Vec<usize>>,
    eventfds: HashMap<u64, Vec<usize>>,
}

impl Ends {
    fn new(snap: &Snapshot, rep_of: &[usize]) -> Ends {
        let mut ends = Ends {
            rep_of: rep_of.to_vec(),
            pipes: HashMap::new(),
            sockets: HashMap::new(),
            masters: HashMap::new(),
            slaves: HashMap::new(),
            eventfds: HashMap::new(),
        };
        for (id, &r) in rep_of.iter().enumerate() {
            let e = &snap.entries[r];
            match snap.file_type(e) {
                FileType::Pipe => ends.pipes.entry(e.ino).or_default().push(id),
                FileType::Socket => ends.sockets.entry(e.ino).or_default().push(id),
                FileType::Eventfd => {
                    if let Some((_, eid)) = e.eventfd {
                        ends.eventfds.entry(eid).or_default().push(id);
                    }
                }
                _ => {}
            }
            if let Some(n) = e.tty_index {
                ends.masters.entry(n).or_default().push(id);
            } else if let Some(n) = e
                .link
                .strip_prefix("/dev/pts/")
                .and_then(|n| n.parse().ok())
            {
                ends.slaves.entry(n).or_default().push(id);
            }
        }
        ends
    }

    /// The files at the other end of the open file `id`, whose entry is
    /// `e`, and a unix socket's state.
    fn of(&self, snap: &Snapshot, id: usize, e: &FdEntry) -> (Vec<usize>, Option<SocketState>) {
        let none = Vec::new();
        let mut socket = None;
        let others: Vec<usize> = match snap.file_type(e) {
            FileType::Pipe => {
                let mode = e.flags & 3;
                self.pipes
                    .get(&e.ino)
                    .unwrap_or(&none)
                    .iter()
                    .copied()
                    .filter(|&o| {
                        let xm = snap.entries[self.rep_of[o]].flags & 3;
                        o != id && (mode != xm || mode == 2)
                    })
                    .collect()
            }
            FileType::Socket => match snap.sockets.get(&(e.ino as u32)) {
                Some(s) => {
                    socket = Some(SocketState {
                        state: match s.state {
                            10 => "listening",
                            1 => "connected",
                            _ => "unconnected",
                        },
                        name: s.name.clone(),
                        shutdown: match s.shutdown & 3 {
                            1 => Some("read"),
                            2 => Some("write"),
                            3 => Some("read and write"),
                            _ => None,
                        },
                        queued: s.rqueue,
                    });
                    self.sockets
                        .get(&u64::from(s.peer))
                        .cloned()
                        .unwrap_or_default()
                }
                None => Vec::new(),
            },
            FileType::Eventfd => match e.eventfd {
                Some((_, eid)) => self.eventfds[&eid]
                    .iter()
                    .copied()
                    .filter(|&o| o != id)
                    .collect(),
                None => Vec::new(),
            },
            _ => match (e.tty_index, pty(e)) {
                (Some(n), _) => self.slaves.get(&n).cloned().unwrap_or_default(),
                (None, Some(n)) => self.masters.get(&n).cloned().unwrap_or_default(),
                _ => Vec::new(),
            },
        };
        (others, socket)
    }
}

/// Keeps what `f` asks to show.
fn apply(ins: &mut Inspection, f: &Filters) {
    let shared_objects: BTreeSet<usize> = ins
        .objects
        .iter()
        .filter(|o| o.files.len() > 1)
        .map(|o| o.id)
        .collect();
    let shared_tables: BTreeSet<usize> = ins
        .topology
        .tables
        .iter()
        .enumerate()
        .filter(|(_, names)| names.len() > 1)
        .map(|(t, _)| t)
        .collect();
    let keep_file = |d: &FileDetail| {
        (f.kinds.is_empty() || f.kinds.contains(&d.kind))
            && f.path.as_ref().is_none_or(|g| glob(g, &d.target))
            && (!f.shared || d.descriptors.len() > 1 || shared_objects.contains(&d.object))
    };
    let kept: BTreeSet<usize> = ins
        .files
        .iter()
        .filter(|d| keep_file(d))
        .map(|d| d.file)
        .collect();
    ins.files.retain(|d| kept.contains(&d.file));
    if !f.pids.is_empty() {
        for d in &mut ins.files {
            d.descriptors.retain(|x| f.pids.contains(&x.pid));
        }
        ins.files.retain(|d| !d.descriptors.is_empty());
    }
    let kept: BTreeSet<usize> = ins.files.iter().map(|d| d.file).collect();
    let t = &mut ins.topology;
    for p in &mut t.processes {
        p.fds.retain(|v| kept.contains(&v.file));
    }
    let by_file = f.shared || f.path.is_some() || !f.kinds.is_empty();
    t.processes.retain(|p| {
        let pid = p.pid.unwrap_or(0);
        let asked = f.pids.is_empty() || f.pids.contains(&pid);
        let shows = !by_file || !p.fds.is_empty() || (f.shared && shared_tables.contains(&p.table));
        asked && shows
    });
    t.files.retain(|v: &FileView| kept.contains(&v.id));
    let objs: BTreeSet<usize> = ins.files.iter().map(|d| d.object).collect();
    ins.objects.retain(|o| objs.contains(&o.id));
}

/// Whether `text` matches the shell-style `pattern` (`*`, `?`, `[abc]`,
/// `[a-z]`, `[!a]`, and `\\` before a character that stands for itself,
/// as in `pipe:\\[*`).
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|k| go(&p[1..], &t[k..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && go(&p[2..], &t[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2) else {
                    return t.first() == Some(&'[') && go(&p[1..], &t[1..]);
                };
                let Some(&c) = t.first() else { return false };
                let (neg, set) = match p[1] {
                    '!' | '^' => (true, &p[2..end]),
                    _ => (false, &p[1..end]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &t[1..])
            }
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("/tmp/*.log", "/tmp/a.log"));
        assert!(!glob("/tmp/*.log", "/tmp/a.txt"));
        assert!(glob("pipe:*", "pipe:[123]"));
        assert!(glob("pipe:\\[12*\\]", "pipe:[123]"));
        assert!(!glob("pipe:[*]", "pipe:[123]"), "[*] is a class of one");
        assert!(glob("/dev/pts/[0-9]", "/dev/pts/3"));
        assert!(!glob("/dev/pts/[!0-9]", "/dev/pts/3"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", ""));
    }
}
