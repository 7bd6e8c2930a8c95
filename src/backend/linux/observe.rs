//! Observing live processes from outside, the way CRIU does: their tables
//! from `/proc/PID/fd` and `/proc/PID/fdinfo/N`, and what they share from
//! `kcmp(2)`. This module knows nothing of scenarios, so inspecting any live
//! process tree, and dumping its topology, can reuse it.
//!
//! Files are grouped without comparing all pairs: first by a cheap key
//! (device, inode, position, status flags), and only inside a group by
//! `kcmp(KCMP_FILE)`, whose 0/1/2 answer is an order, so a sort finds the
//! groups. A descriptor whose key is unique costs no kcmp call. Processes
//! that share a table (`kcmp(KCMP_FILES)`) are read once.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use fdlab_model::kind::FileType;
use fdlab_model::pipe::PipeEnd;
use fdlab_model::topology::{canonicalize, RawFile, RawProcess};
use fdlab_model::{Events, OFlags, SockType, Topology};

use super::sys::{self, Kcmp, KCMP_FILE, KCMP_FILES};

const O_CLOEXEC: u32 = 0o2000000;

/// What went wrong observing a process.
#[derive(Debug, thiserror::Error)]
#[error("{what} of pid {pid}: {source}{}", hint(.source))]
pub struct ObserveError {
    pub pid: i32,
    pub what: String,
    #[source]
    pub source: io::Error,
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (kcmp and /proc/PID/fdinfo need ptrace access to the process: run as its user, or as root, \
             and check /proc/sys/kernel/yama/ptrace_scope)"
        }
        _ => "",
    }
}

fn err(pid: i32, what: impl Into<String>) -> impl FnOnce(io::Error) -> ObserveError {
    let what = what.into();
    move |source| ObserveError { pid, what, source }
}

/// What observing has cost, in kcmp calls and time.
#[derive(Debug, Default, Clone, Copy)]
pub struct ObserveCost {
    pub kcmp_calls: u64,
    /// Time in kcmp.
    pub kcmp: Duration,
    /// Descriptors read.
    pub descriptors: u64,
    /// The kcmp calls comparing all pairs of the same descriptors would take.
    pub all_pairs: u64,
}

impl ObserveCost {
    fn kcmp_call(cell: &Cell<ObserveCost>, took: Duration) {
        let mut c = cell.get();
        c.kcmp_calls += 1;
        c.kcmp += took;
        cell.set(c);
    }
}

/// One descriptor as `/proc` shows it.
#[derive(Debug, Clone)]
pub struct FdEntry {
    pub pid: i32,
    pub fd: i32,
    pub link: String,
    pub dev: u64,
    pub ino: u64,
    pub is_dir: bool,
    pub pos: u64,
    /// `f_flags` without `O_CLOEXEC`.
    pub flags: u32,
    pub cloexec: bool,
    /// Epoll registrations: (number, target inode, events).
    pub targets: Vec<(i32, u64, u32)>,
}

/// The open descriptors of `pid` within `fds`, ascending.
pub fn list_fds(pid: i32, fds: &Range<i32>) -> Result<Vec<i32>, ObserveError> {
    let dir = format!("/proc/{pid}/fd");
    let mut open: Vec<i32> = std::fs::read_dir(&dir)
        .map_err(err(pid, "reading /proc/PID/fd"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| fds.contains(fd))
        .collect();
    open.sort_unstable();
    Ok(open)
}

/// Whether `pid` has `fd` open, and `fd` is within `fds`.
pub fn is_open(pid: i32, fd: i32, fds: &Range<i32>) -> bool {
    fds.contains(&fd) && std::fs::symlink_metadata(format!("/proc/{pid}/fd/{fd}")).is_ok()
}

/// Reads one descriptor.
pub fn fd_entry(pid: i32, fd: i32) -> Result<FdEntry, ObserveError> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map_err(err(pid, format!("reading /proc/PID/fd/{fd}")))?
        .to_string_lossy()
        .into_owned();
    let meta = std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
        .map_err(err(pid, format!("stat of fd {fd}")))?;
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .map_err(err(pid, format!("reading /proc/PID/fdinfo/{fd}")))?;
    let (pos, raw_flags, targets) = parse_fdinfo(&info);
    Ok(FdEntry {
        pid,
        fd,
        link,
        dev: meta.dev(),
        ino: meta.ino(),
        is_dir: meta.is_dir(),
        pos,
        flags: raw_flags & !O_CLOEXEC,
        cloexec: raw_flags & O_CLOEXEC != 0,
        targets,
    })
}

/// `pos`, `flags` (octal) and the `tfd:` lines of an fdinfo file.
pub fn parse_fdinfo(text: &str) -> (u64, u32, Vec<(i32, u64, u32)>) {
    let mut pos = 0;
    let mut flags = 0;
    let mut targets = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match it.next() {
            Some("pos:") => pos = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            Some("flags:") => {
                flags = it
                    .next()
                    .and_then(|v| u32::from_str_radix(v, 8).ok())
                    .unwrap_or(0)
            }
            Some("tfd:") => {
                // tfd: N events: HEX data: HEX pos:P ino:HEX sdev:HEX
                let tfd = it.next().and_then(|v| v.parse().ok()).unwrap_or(-1);
                let mut events = 0;
                let mut ino = 0;
                let words: Vec<&str> = line.split_whitespace().collect();
                for (i, w) in words.iter().enumerate() {
                    if *w == "events:" {
                        events = words
                            .get(i + 1)
                            .and_then(|v| u32::from_str_radix(v, 16).ok())
                            .unwrap_or(0);
                    } else if let Some(v) = w.strip_prefix("ino:") {
                        ino = u64::from_str_radix(v, 16).unwrap_or(0);
                    }
                }
                targets.push((tfd, ino, events));
            }
            _ => {}
        }
    }
    (pos, flags, targets)
}

/// kcmp as a total order for sorting; records the first failure and counts
/// calls.
struct Comparer<'a> {
    cost: &'a Cell<ObserveCost>,
    failure: Cell<Option<ObserveError>>,
    unordered: Cell<bool>,
}

impl Comparer<'_> {
    fn cmp(&self, ty: libc::c_int, a: (i32, i32), b: (i32, i32)) -> Ordering {
        let t = std::time::Instant::now();
        let r = sys::kcmp(a.0, b.0, ty, a.1 as u64, b.1 as u64);
        ObserveCost::kcmp_call(self.cost, t.elapsed());
        match r {
            Ok(Kcmp::Order(o)) => o,
            Ok(Kcmp::Unordered) => {
                self.unordered.set(true);
                Ordering::Less
            }
            Err(e) => {
                let prev = self.failure.take();
                self.failure.set(prev.or(Some(ObserveError {
                    pid: a.0,
                    what: format!("kcmp with pid {}", b.0),
                    source: e,
                })));
                Ordering::Equal
            }
        }
    }

    fn finish(self) -> Result<bool, ObserveError> {
        match self.failure.take() {
            Some(e) => Err(e),
            None => Ok(self.unordered.get()),
        }
    }
}

/// Groups `items` into classes of kcmp-equal objects: sorted by kcmp's
/// order, then adjacent equals merged. Returns a class index per item.
fn classes(
    items: &[(i32, i32)],
    ty: libc::c_int,
    cost: &Cell<ObserveCost>,
) -> Result<Vec<usize>, ObserveError> {
    let n = items.len();
    if n <= 1 {
        return Ok(vec![0; n]);
    }
    let c = Comparer {
        cost,
        failure: Cell::new(None),
        unordered: Cell::new(false),
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| c.cmp(ty, items[x], items[y]));
    let mut class = vec![0; n];
    let mut next = 0;
    for w in 0..n {
        if w > 0 && c.cmp(ty, items[order[w - 1]], items[order[w]]) != Ordering::Equal {
            next += 1;
        }
        class[order[w]] = next;
    }
    if c.finish()? {
        // The kernel gave no order (kcmp returned 3): compare all pairs.
        let c = Comparer {
            cost,
            failure: Cell::new(None),
            unordered: Cell::new(false),
        };
        let mut class = vec![usize::MAX; n];
        let mut next = 0;
        for i in 0..n {
            if class[i] != usize::MAX {
                continue;
            }
            class[i] = next;
            for j in i + 1..n {
                if class[j] == usize::MAX && c.cmp(ty, items[i], items[j]) == Ordering::Equal {
                    class[j] = next;
                }
            }
            next += 1;
        }
        c.finish()?;
        return Ok(class);
    }
    Ok(class)
}

/// The canonical topology of the named processes, looking at their
/// descriptors within `fds`. Paths under `sandbox` are shown relative to it.
pub fn topology(
    procs: &[(String, i32)],
    sandbox: &Path,
    fds: &Range<i32>,
    cost: &Cell<ObserveCost>,
) -> Result<Topology, ObserveError> {
    // Tables: processes that share one are read once.
    let pids: Vec<(i32, i32)> = procs.iter().map(|(_, p)| (*p, 0)).collect();
    let table_of = classes(&pids, KCMP_FILES, cost)?;
    let mut reader: BTreeMap<usize, i32> = BTreeMap::new();
    for (i, (_, pid)) in procs.iter().enumerate() {
        reader.entry(table_of[i]).or_insert(*pid);
    }
    let mut entries: Vec<FdEntry> = Vec::new();
    let mut by_table: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (&t, &pid) in &reader {
        for fd in list_fds(pid, fds)? {
            by_table.entry(t).or_default().push(entries.len());
            entries.push(fd_entry(pid, fd)?);
        }
    }
    let mut c = cost.get();
    c.descriptors += entries.len() as u64;
    c.all_pairs += (entries.len() as u64) * (entries.len() as u64).saturating_sub(1) / 2;
    cost.set(c);
    // Files: cheap key first, kcmp only inside a group.
    let mut groups: HashMap<(u64, u64, u64, u32), Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        groups
            .entry((e.dev, e.ino, e.pos, e.flags))
            .or_default()
            .push(i);
    }
    // file_of[i]: the entry index that represents entry i's open file.
    let mut file_of: Vec<usize> = (0..entries.len()).collect();
    for members in groups.values() {
        let items: Vec<(i32, i32)> = members
            .iter()
            .map(|&i| (entries[i].pid, entries[i].fd))
            .collect();
        let cls = classes(&items, KCMP_FILE, cost)?;
        let mut rep: BTreeMap<usize, usize> = BTreeMap::new();
        for (k, &i) in members.iter().enumerate() {
            file_of[i] = *rep.entry(cls[k]).or_insert(i);
        }
    }
    let sockets = if entries.iter().any(|e| e.link.starts_with("socket:[")) {
        sys::unix_sockets().map_err(err(0, "the sock_diag query of unix sockets"))?
    } else {
        HashMap::new()
    };
    let root = sandbox.to_string_lossy().into_owned();
    let mut files: BTreeMap<usize, RawFile<usize, u64>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if file_of[i] != i {
            continue;
        }
        let raw = if e.link.starts_with("pipe:[") {
            RawFile::Pipe {
                end: if e.flags & 3 == 1 {
                    PipeEnd::Write
                } else {
                    PipeEnd::Read
                },
                object: e.ino,
            }
        } else if e.link.starts_with("socket:[") {
            let s = sockets.get(&(e.ino as u32)).copied();
            let peer = s.map_or(0, |s| u64::from(s.peer));
            RawFile::Socket {
                ty: match s.map(|s| i32::from(s.ty)) {
                    Some(libc::SOCK_DGRAM) => SockType::Dgram,
                    _ => SockType::Stream,
                },
                object: if peer == 0 { e.ino } else { e.ino.min(peer) },
            }
        } else if e.link == "anon_inode:[eventpoll]" {
            RawFile::Epoll {
                targets: epoll_targets(e, &entries, &file_of, cost)?,
            }
        } else if e.link == "anon_inode:[eventfd]" {
            RawFile::Eventfd
        } else {
            let (kind, path) = if e.link.starts_with("/dev/") {
                (
                    FileType::Chardev,
                    if e.link == "/dev/pts/ptmx" {
                        "/dev/ptmx".to_string()
                    } else {
                        e.link.clone()
                    },
                )
            } else if e.link == root {
                (FileType::Directory, ".".to_string())
            } else {
                let rel = e
                    .link
                    .strip_prefix(&format!("{root}/"))
                    .unwrap_or(&e.link)
                    .to_string();
                (
                    if e.is_dir {
                        FileType::Directory
                    } else {
                        FileType::Regular
                    },
                    rel,
                )
            };
            RawFile::Path {
                kind,
                path,
                offset: e.pos,
                flags: OFlags::from_bits(e.flags),
            }
        };
        files.insert(i, raw);
    }
    let raw_procs = procs
        .iter()
        .enumerate()
        .map(|(pi, (name, _))| RawProcess {
            name: name.clone(),
            table: table_of[pi],
            fds: by_table
                .get(&table_of[pi])
                .map(|v| {
                    v.iter()
                        .map(|&i| (entries[i].fd as u32, file_of[i], entries[i].cloexec))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    Ok(canonicalize(raw_procs, &files))
}

/// The files behind an epoll's registrations, found among `entries` by inode
/// and confirmed with `kcmp(KCMP_EPOLL_TFD)`; `None` for a target that no
/// observed process has open.
fn epoll_targets(
    ep: &FdEntry,
    entries: &[FdEntry],
    file_of: &[usize],
    cost: &Cell<ObserveCost>,
) -> Result<Vec<(u32, Option<usize>, Events)>, ObserveError> {
    let mut seen: HashMap<i32, u64> = HashMap::new();
    let mut out = Vec::new();
    for &(tfd, ino, events) in &ep.targets {
        let toff = seen.entry(tfd).or_insert(0);
        let mut found = None;
        for (i, e) in entries.iter().enumerate() {
            if e.ino != ino || file_of[i] != i {
                continue;
            }
            let t = std::time::Instant::now();
            let r = sys::kcmp_epoll_tfd(e.pid, e.fd, ep.pid, ep.fd, tfd, *toff);
            ObserveCost::kcmp_call(cost, t.elapsed());
            let r = r.map_err(err(
                ep.pid,
                format!("kcmp(KCMP_EPOLL_TFD) of epoll fd {}", ep.fd),
            ))?;
            if r == Kcmp::Order(Ordering::Equal) {
                found = Some(i);
                break;
            }
        }
        *toff += 1;
        out.push((tfd as u32, found, Events::from_bits(events)));
    }
    Ok(out)
}

/// Whether `a` and `b` name the same open file (`None`: one is not open;
/// its index is returned).
pub fn same_file(
    a: (i32, i32),
    b: (i32, i32),
    fds: &Range<i32>,
) -> Result<Result<bool, usize>, ObserveError> {
    if !is_open(a.0, a.1, fds) {
        return Ok(Err(0));
    }
    if !is_open(b.0, b.1, fds) {
        return Ok(Err(1));
    }
    let r = sys::kcmp(a.0, b.0, KCMP_FILE, a.1 as u64, b.1 as u64)
        .map_err(err(a.0, format!("kcmp with pid {}", b.0)))?;
    Ok(Ok(r == Kcmp::Order(Ordering::Equal)))
}

/// Whether two processes use one table.
pub fn same_table(a: i32, b: i32) -> Result<bool, ObserveError> {
    let r = sys::kcmp(a, b, KCMP_FILES, 0, 0)
        .map_err(err(a, format!("kcmp(KCMP_FILES) with pid {b}")))?;
    Ok(r == Kcmp::Order(Ordering::Equal))
}

/// The epoll at `ep` has the file at `target` registered under `as_fd`:
/// `Ok(true/false)`, or `Err` saying why it cannot (0: epoll not open, 1:
/// target not open, 2: not an epoll).
pub fn watches(
    ep: (i32, i32),
    target: (i32, i32),
    as_fd: i32,
    fds: &Range<i32>,
) -> Result<Result<bool, usize>, ObserveError> {
    if !is_open(ep.0, ep.1, fds) {
        return Ok(Err(0));
    }
    if !is_open(target.0, target.1, fds) {
        return Ok(Err(1));
    }
    let e = fd_entry(ep.0, ep.1)?;
    if e.link != "anon_inode:[eventpoll]" {
        return Ok(Err(2));
    }
    let registered = e.targets.iter().filter(|t| t.0 == as_fd).count() as u64;
    for toff in 0..registered {
        let r = sys::kcmp_epoll_tfd(target.0, target.1, ep.0, ep.1, as_fd, toff).map_err(err(
            ep.0,
            format!("kcmp(KCMP_EPOLL_TFD) of epoll fd {}", ep.1),
        ))?;
        if r == Kcmp::Order(Ordering::Equal) {
            return Ok(Ok(true));
        }
    }
    Ok(Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_of_an_epoll() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\n\
                    tfd:        5 events:       19 data:                5  pos:0 ino:3d sdev:d\n\
                    tfd:        5 events:        4 data:                5  pos:0 ino:3e sdev:d\n";
        let (pos, flags, t) = parse_fdinfo(text);
        assert_eq!((pos, flags), (0, 0o2000002));
        assert_eq!(t, vec![(5, 0x3d, 0x19), (5, 0x3e, 4)]);
    }
}
