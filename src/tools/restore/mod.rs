//! `fdlab restore`: plans the restore of an [`Image`] and drives it on a
//! backend, the model or real Linux processes.
//!
//! The plan: a hidden *restorer* process is made first; it makes the
//! transport (a datagram socket pair per process that takes part) and forks
//! the image's root processes, which make their children: a child that
//! uses its parent's table is made with `clone(CLONE_FILES)`, any other with
//! `fork`. Every table has one *driver*, its first process, which runs the
//! [`Program`] of that table; the restorer runs one too.
//!
//! Masters, the rule (CRIU makes the lowest pid the master, and fails when
//! that process does not hold what the file depends on, its issue 1366):
//! the master of an object is the driver of the first table that holds one
//! of its files, in image order, or the restorer when no process holds any
//! (a file only in flight, or only watched by an epoll). Whatever a master
//! needs to finish an object (the files in flight in a socket's queue, the
//! targets of an epoll) is served to it by their own masters like to any
//! slave, so no rule about who holds what can leave a master short.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use fdlab_model::limits::HARNESS_FD;
use fdlab_model::pipe::PipeEnd;
use fdlab_model::{Call, OFlags, SockType};
use serde::Serialize;

use super::dump;

pub mod tree;

use super::image::{self, Image, InvalidImage, Object};
use crate::backend::api::{Backend, BackendError};
use crate::backend::restore::exec::{
    make_transport, take_terminal, Cause, Executor, Failed, Stats, Status, Sys,
};
use crate::backend::restore::model::ModelSys;
use crate::backend::restore::program::{Connection, FileId, Make, Program, Serve, Work};
use crate::backend::{LinuxBackend, ModelBackend};
use crate::lang::print::call_strace;
pub use tree::How;

/// The transport's lowest first descriptor: above the harness's own
/// control channels, which sit just above `HARNESS_FD`.
pub const BAND: u32 = 2000;

/// The floor and the transport's band for `img`: the floor above every
/// number the image places or registers (and at least `HARNESS_FD`), the
/// band above the floor with room for a control channel per process.
pub fn numbers(img: &Image) -> (u32, u32) {
    let top = img
        .tables
        .iter()
        .flat_map(|t| t.fds.iter().map(|d| d.fd + 1))
        .chain(img.files.iter().flat_map(|f| match &f.object {
            Object::Epoll { registrations } => registrations.iter().map(|r| r.fd + 1).collect(),
            _ => Vec::new(),
        }))
        .max()
        .unwrap_or(0);
    let floor = top.max(HARNESS_FD);
    let band = BAND.max(floor + 2 * img.processes.len() as u32 + 64);
    (floor, band)
}

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Open paths under this folder only: an absolute path of the image is
    /// taken below it, a relative one from it.
    pub root: Option<PathBuf>,
    /// Restore an image with unrestorable parts, leaving them out.
    pub skip_unrestorable: bool,
    /// Log every step of every process (`--plan`), not only what waited
    /// and the totals.
    pub verbose: bool,
    /// On the model: log every system call of the restore and the file(9)
    /// calls under it (`--trace`).
    pub trace: bool,
}

/// Why a restore could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("invalid image: {0}")]
    Invalid(#[from] InvalidImage),
    #[error("the image has parts that cannot be restored (use --skip-unrestorable to leave them out): {}", .0.join("; "))]
    Unrestorable(Vec<String>),
    #[error("path `{0}` leaves the root folder")]
    Escapes(String),
    #[error("the image names files by paths relative to the run that made it (`{0}`...): give --root DIR, the folder they are in (`fdlab run --dump IMAGE` saves them in IMAGE.files)")]
    Relative(String),
    #[error("--root {0}: not a folder")]
    NoRoot(String),
    #[error(transparent)]
    Failed(#[from] Failed),
    #[error("the restore is stuck: {0}")]
    Stuck(String),
    #[error("{}", .0.join("; "))]
    Sessions(Vec<String>),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A restore's plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The restorer's name (not in the image).
    pub restorer: String,
    /// The lowest descriptor the restore does not place: a harness keeps
    /// its own descriptors at or above it.
    pub floor: u32,
    /// The transport's first descriptor, above the floor and the
    /// harness's own.
    pub band: u32,
    /// Processes to make, in order.
    pub create: Vec<(String, How)>,
    /// The transport's participants, by name: the restorer first, then
    /// each table's driver.
    pub peers: Vec<String>,
    /// Each participant's program, and who sends it each file it awaits.
    pub programs: Vec<(Program, HashMap<FileId, usize>)>,
    /// The soft rlimit of each process that is not a driver.
    pub rlimits: Vec<(String, u64)>,
    /// What a reader of the plan should know.
    pub notes: Vec<String>,
    /// Trace the model's calls (see [`Options::trace`]).
    pub trace: bool,
}

/// What one process did.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessLog {
    pub process: String,
    pub steps: Vec<String>,
    pub messages: u64,
    pub sent: u64,
    pub received: u64,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub processes: usize,
    pub descriptors: usize,
    pub files: usize,
    /// Messages that served files, and the files they carried.
    pub messages: u64,
    pub files_sent: u64,
    /// Processes made, and how.
    pub created: Vec<(String, How)>,
    /// Wall time, in seconds: validating and planning, making the
    /// processes and the transport, then running every process's program.
    pub plan_seconds: f64,
    pub make_seconds: f64,
    pub programs_seconds: f64,
    pub notes: Vec<String>,
    pub logs: Vec<ProcessLog>,
}

/// What `open` takes of a file's flags: the access mode and the status
/// flags it can set (`O_APPEND`, `O_NONBLOCK`).
const OPEN_FLAGS: u32 = OFlags::ACCMODE.bits() | OFlags::APPEND.bits() | OFlags::NONBLOCK.bits();

fn status_bits(flags: &str) -> u32 {
    image::status_flags(flags).map_or(0, |f| f.bits())
}

fn master_set(master: &mut [usize], f: FileId, q: usize) {
    master[f as usize] = q;
}

/// `socket(2)`'s type for `ty`.
fn socket_type(ty: SockType) -> i32 {
    match ty {
        SockType::Stream => libc::SOCK_STREAM,
        SockType::Dgram => libc::SOCK_DGRAM,
        SockType::Seqpacket => libc::SOCK_SEQPACKET,
    }
}

/// Where `path` is opened: under `root` if there is one.
///
/// Errors: a path whose `..` leaves the root.
fn resolve(path: &str, root: Option<&Path>) -> Result<String, RestoreError> {
    let Some(root) = root else {
        return Ok(path.to_string());
    };
    if path == "." || path == "/" {
        return Ok(root.to_string_lossy().into_owned());
    }
    let rel = Path::new(path.trim_start_matches('/'));
    let mut depth = 0i32;
    for c in rel.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(RestoreError::Escapes(path.to_string()));
        }
    }
    Ok(root.join(rel).to_string_lossy().into_owned())
}

/// Where a socket named `name` is bound: a path as [`resolve`] opens it;
/// an abstract name as it is, or, under a root, as `@<root's base
/// name>/name`, private to the root as the Linux backend keeps a
/// scenario's (and as a dump under that root reads it back).
///
/// Errors: a path whose `..` leaves the root.
fn resolve_name(name: &str, root: Option<&Path>) -> Result<String, RestoreError> {
    match (name.strip_prefix('@'), root) {
        (Some(rest), Some(r)) => {
            let base = r.file_name().map(|b| b.to_string_lossy().into_owned());
            Ok(format!("@{}/{rest}", base.unwrap_or_default()))
        }
        (Some(_), None) => Ok(name.to_string()),
        (None, _) => resolve(name, root),
    }
}

/// The connections through each listening socket (by its file), in the
/// order restore makes them: those accepted (pair, server end), then those
/// waiting in its queue (pair, the end in the queue), oldest first.
#[allow(clippy::type_complexity)]
fn connections_of(img: &Image) -> BTreeMap<usize, Vec<(usize, usize, bool)>> {
    let mut out: BTreeMap<usize, Vec<(usize, usize, bool)>> = BTreeMap::new();
    let mut waiting = BTreeSet::new();
    for f in &img.files {
        if let Object::Unix {
            listen: Some(l), ..
        } = &f.object
        {
            waiting.extend(l.pending.iter().copied());
        }
    }
    for p in img.pairs.iter().filter(|p| !waiting.contains(&p.id)) {
        for (e, l) in p.listener.iter().enumerate() {
            if let Some(l) = l {
                out.entry(*l).or_default().push((p.id, e, false));
            }
        }
    }
    for f in &img.files {
        if let Object::Unix {
            listen: Some(l), ..
        } = &f.object
        {
            for &pair in &l.pending {
                let e = (0..2)
                    .find(|&e| img.pairs[pair].listener[e] == Some(f.id))
                    .unwrap_or(1);
                out.entry(f.id).or_default().push((pair, e, true));
            }
        }
    }
    out
}

/// Plans the restore of `img` (valid: see [`Image::validate`]).
///
/// Errors: an unrestorable part without `skip_unrestorable`, a path that
/// leaves the root.
pub fn plan(img: &Image, opts: &Options) -> Result<Plan, RestoreError> {
    img.validate()?;
    if !img.unrestorable.is_empty() && !opts.skip_unrestorable {
        return Err(RestoreError::Unrestorable(
            img.unrestorable
                .iter()
                .map(|u| format!("{}: {}", u.what, u.why))
                .collect(),
        ));
    }
    let (floor, band) = numbers(img);
    let names: BTreeSet<&str> = img.processes.iter().map(|p| p.name.as_str()).collect();
    let mut restorer = "restorer".to_string();
    while names.contains(restorer.as_str()) {
        restorer.push('_');
    }
    // Each table's driver is its first process in image order.
    let mut first_user: BTreeMap<usize, usize> = BTreeMap::new();
    for p in &img.processes {
        first_user.entry(p.table).or_insert(p.id);
    }
    // Participants: the restorer (0), then each table's driver.
    let mut peers = vec![restorer.clone()];
    let mut peer_of_table: BTreeMap<usize, usize> = BTreeMap::new();
    for (&t, &u) in &first_user {
        peer_of_table.insert(t, peers.len());
        peers.push(img.processes[u].name.clone());
    }
    // Processes: see `tree`. A session leader with a controlling terminal
    // takes it while the tree is made, before it forks the processes that
    // have it too: it opens its pty's master, which waits just above the
    // transport for the open step of its table's driver.
    let mut terminals: HashMap<usize, How> = HashMap::new();
    let mut premade: HashMap<usize, (usize, u32)> = HashMap::new();
    for p in img.processes.iter().filter(|p| p.session == Some(p.id)) {
        let Some(n) = p.ctty else { continue };
        let master = img.files.iter().find_map(|f| match &f.object {
            Object::Chardev { path, pty: Some(m) } if *m == n => Some((path, &f.flags)),
            _ => None,
        });
        // Validated: the master is a file of the image.
        let Some((path, flags)) = master else {
            continue;
        };
        let at = band + 2 * peers.len() as u32 + terminals.len() as u32;
        terminals.insert(
            p.id,
            How::Terminal {
                path: path.clone(),
                flags: status_bits(flags) & OPEN_FLAGS,
                at,
            },
        );
        premade.insert(n, (peer_of_table[&p.table], at));
    }
    let (create, notes) = tree::steps(img, &restorer, &terminals);
    let wrong = tree::session_mismatches(img, &create);
    if !wrong.is_empty() {
        return Err(RestoreError::Sessions(wrong));
    }
    // What restore leaves out (listed in `unrestorable`, which the caller
    // agreed to skip).
    let other: BTreeSet<FileId> = img
        .files
        .iter()
        .filter(|f| matches!(f.object, Object::Other { .. }))
        .map(|f| f.id as FileId)
        .collect();
    // The files in flight in a message that restore makes.
    let kept = |m: &image::Message| -> Vec<FileId> {
        m.files
            .iter()
            .map(|&f| f as FileId)
            .filter(|f| !other.contains(f))
            .collect()
    };
    // Ghost ends: the closed end of a pipe or socket pair. A pipe end may
    // have more open files than one: the first is made by `pipe2`, the
    // others opened again from it.
    let mut next_ghost = img.files.len() as FileId;
    let mut ghost = || {
        next_ghost += 1;
        next_ghost - 1
    };
    let mut pipe_ends: Vec<[Option<FileId>; 2]> = vec![[None, None]; img.pipes.len()];
    let mut pipe_extra: Vec<Vec<(FileId, usize)>> = vec![Vec::new(); img.pipes.len()];
    let mut pair_ends: Vec<[Option<FileId>; 2]> = vec![[None, None]; img.pairs.len()];
    for f in &img.files {
        match f.object {
            Object::Pipe { pipe, end } => {
                let e = usize::from(end == PipeEnd::Write);
                match pipe_ends[pipe][e] {
                    None => pipe_ends[pipe][e] = Some(f.id as FileId),
                    Some(_) => pipe_extra[pipe].push((f.id as FileId, e)),
                }
            }
            Object::Socket { pair, end } => pair_ends[pair][end] = Some(f.id as FileId),
            _ => {}
        }
    }
    // Each end that no file of the image is gets a ghost, in order.
    let mut with_ghosts = |ends: &[[Option<FileId>; 2]]| -> Vec<[FileId; 2]> {
        ends.iter()
            .map(|e| e.map(|end| end.unwrap_or_else(&mut ghost)))
            .collect()
    };
    let pipe_ends = with_ghosts(&pipe_ends);
    let pair_ends = with_ghosts(&pair_ends);
    let mut pty_slaves: BTreeMap<usize, Vec<FileId>> = BTreeMap::new();
    for f in &img.files {
        if let Object::PtySlave { pty } = f.object {
            pty_slaves.entry(pty).or_default().push(f.id as FileId);
        }
    }
    // Which participants hold each file (by descriptor), in order (tables
    // come in order, so each list is sorted). Ids are dense: vectors.
    let nids = next_ghost as usize;
    let mut holders: Vec<Vec<usize>> = vec![Vec::new(); nids];
    for t in &img.tables {
        let q = peer_of_table[&t.id];
        for d in t
            .fds
            .iter()
            .filter(|d| !other.contains(&(d.file as FileId)))
        {
            let h = &mut holders[d.file];
            if h.last() != Some(&q) {
                h.push(q);
            }
        }
    }
    let first_holder = |files: &[FileId]| -> usize {
        files
            .iter()
            .filter_map(|&f| holders[f as usize].first().copied())
            .min()
            .unwrap_or(0)
    };
    let mut programs: Vec<Program> = peers
        .iter()
        .enumerate()
        .map(|(i, name)| Program {
            name: name.clone(),
            me: i,
            band,
            peers: peers.clone(),
            verbose: opts.verbose || opts.trace,
            terminals: terminals.len() as u32,
            ..Program::default()
        })
        .collect();
    // Masters, and what each master needs that others make.
    let mut master: Vec<usize> = vec![usize::MAX; nids];
    let mut needs: BTreeMap<usize, BTreeSet<FileId>> = BTreeMap::new();
    let mut made_pipes = vec![false; img.pipes.len()];
    let mut made_pairs = vec![false; img.pairs.len()];
    // Each program's paths, by their text (many opens share a path).
    let mut interned: Vec<HashMap<String, u32>> = vec![HashMap::new(); peers.len()];
    let mut intern = |prog: &mut Program, q: usize, path: String| -> u32 {
        let n = prog.paths.len() as u32;
        *interned[q].entry(path).or_insert_with_key(|p| {
            prog.paths.push(p.clone());
            n
        })
    };
    // A file's status flags; a ghost end (past the image's files) has none.
    let flag_of = |x: FileId| {
        img.files
            .get(x as usize)
            .map_or(0, |f| status_bits(&f.flags))
    };
    // A listening socket and its connections are made together, by the
    // process that holds one of them first: a connection is made by
    // connecting a client to the listener and accepting it there.
    let connections = connections_of(img);
    // Datagram sockets with messages waiting, or a peer (see below).
    let mut datagrams: Vec<usize> = Vec::new();
    let mut made_with_listener: HashMap<usize, usize> = HashMap::new();
    for (&l, conns) in &connections {
        let mut all = vec![l as FileId];
        for &(pair, e, waits) in conns {
            all.push(pair_ends[pair][1 - e]);
            if !waits {
                all.push(pair_ends[pair][e]);
            }
        }
        let q = first_holder(&all);
        for &x in &all {
            master_set(&mut master, x, q);
        }
        for &(pair, ..) in conns {
            made_with_listener.insert(pair, q);
        }
    }
    for f in &img.files {
        let id = f.id as FileId;
        let flags = status_bits(&f.flags);
        match &f.object {
            Object::Regular { path, offset } | Object::Directory { path, offset } => {
                let q = first_holder(&[id]);
                master_set(&mut master, id, q);
                let path = intern(&mut programs[q], q, resolve(path, opts.root.as_deref())?);
                programs[q].make.push(Make::Open {
                    file: id,
                    path,
                    flags: flags & OPEN_FLAGS,
                    offset: Some(*offset),
                });
            }
            Object::Chardev { path, pty: None } => {
                let q = first_holder(&[id]);
                master_set(&mut master, id, q);
                let path = intern(&mut programs[q], q, path.clone());
                programs[q].make.push(Make::Open {
                    file: id,
                    path,
                    flags: flags & OPEN_FLAGS,
                    offset: None,
                });
            }
            // A pty: its master and every slave, in one open step of the
            // process that holds one of them first.
            Object::Chardev { path, pty: Some(n) } => {
                let slaves = pty_slaves.get(n).cloned().unwrap_or_default();
                let mut all = vec![id];
                all.extend(&slaves);
                let (q, premade) = match premade.get(n) {
                    Some(&(q, at)) => (q, Some(at)),
                    None => (first_holder(&all), None),
                };
                for &x in &all {
                    master_set(&mut master, x, q);
                }
                let path = intern(&mut programs[q], q, path.clone());
                programs[q].make.push(Make::Pty {
                    master: id,
                    path,
                    flags: flags & OPEN_FLAGS,
                    slaves: slaves.iter().map(|&s| (s, flag_of(s))).collect(),
                    premade,
                });
            }
            // Made with its master.
            Object::PtySlave { .. } => {}
            Object::Pipe { pipe, .. } => {
                if made_pipes[*pipe] {
                    continue;
                }
                made_pipes[*pipe] = true;
                let [r, w] = pipe_ends[*pipe];
                let mut all = vec![r, w];
                all.extend(pipe_extra[*pipe].iter().map(|x| x.0));
                let q = first_holder(&all);
                for &x in &all {
                    master_set(&mut master, x, q);
                }
                programs[q].make.push(Make::Pipe {
                    read: r,
                    write: w,
                    data: img.pipes[*pipe].data.0.clone(),
                    capacity: img.pipes[*pipe].capacity,
                    read_flags: flag_of(r),
                    write_flags: flag_of(w),
                    reopen: pipe_extra[*pipe]
                        .iter()
                        .map(|&(x, e)| {
                            let of = if e == 1 { w } else { r };
                            (x, of, flag_of(x) & OPEN_FLAGS)
                        })
                        .collect(),
                });
            }
            Object::Unix {
                ty,
                name,
                listen,
                peer,
                queued,
                shutdown,
            } => {
                let q = master[id as usize];
                let q = if q == usize::MAX {
                    let q = first_holder(&[id]);
                    master_set(&mut master, id, q);
                    q
                } else {
                    q
                };
                let mut named = |programs: &mut Vec<Program>, n: &Option<String>| {
                    n.as_ref()
                        .map(|n| {
                            let at = resolve_name(n, opts.root.as_deref())?;
                            Ok::<u32, RestoreError>(intern(&mut programs[q], q, at))
                        })
                        .transpose()
                };
                let name = named(&mut programs, name)?;
                let mut made = Vec::new();
                for &(pair, e, waits) in connections.get(&f.id).into_iter().flatten() {
                    let client = pair_ends[pair][1 - e];
                    made.push(Connection {
                        client,
                        client_flags: flag_of(client),
                        client_name: named(&mut programs, &img.pairs[pair].names[1 - e])?,
                        server: (!waits).then(|| {
                            let server = pair_ends[pair][e];
                            (server, flag_of(server))
                        }),
                    });
                }
                // Its messages, where it sends, its shutdown: see
                // `datagrams` below.
                if !queued.is_empty() || peer.is_some() || shutdown.is_some() {
                    datagrams.push(f.id);
                }
                programs[q].make.push(Make::Unix {
                    file: id,
                    ty: socket_type(*ty),
                    flags,
                    name,
                    backlog: listen.as_ref().map(|l| l.backlog),
                    connections: made,
                });
            }
            Object::Socket { pair, .. } => {
                if made_pairs[*pair] {
                    continue;
                }
                made_pairs[*pair] = true;
                let ends = pair_ends[*pair];
                let p = &img.pairs[*pair];
                let q = match made_with_listener.get(pair) {
                    Some(&q) => q,
                    None => {
                        let q = first_holder(&ends);
                        master_set(&mut master, ends[0], q);
                        master_set(&mut master, ends[1], q);
                        let mut names = [None, None];
                        for (e, n) in p.names.iter().enumerate() {
                            if let Some(n) = n {
                                let at = resolve_name(n, opts.root.as_deref())?;
                                names[e] = Some(intern(&mut programs[q], q, at));
                            }
                        }
                        programs[q].make.push(Make::Pair {
                            ty: socket_type(p.ty),
                            ends,
                            flags: [flag_of(ends[0]), flag_of(ends[1])],
                            names,
                        });
                        q
                    }
                };
                // A pending reset on end e: its peer (closed in the image,
                // a ghost here) gets a byte it never reads, and closes
                // with it unread when the restore drops the ghosts.
                for e in (0..2).filter(|&e| p.reset[e]) {
                    programs[q].work.push(Work::Queue {
                        from: ends[e],
                        data: vec![0],
                        files: Vec::new(),
                    });
                }
                // Messages queued for end e are sent from the other end.
                for (e, queue) in p.queued.iter().enumerate() {
                    for m in queue {
                        let files = kept(m);
                        needs.entry(q).or_default().extend(&files);
                        programs[q].work.push(Work::Queue {
                            from: ends[1 - e],
                            data: m.data.0.clone(),
                            files,
                        });
                    }
                }
                // Then each end shut as it was (after the messages, which
                // a shut end could not have sent).
                for (e, shut) in p.shutdown.iter().enumerate() {
                    if let Some(s) = shut {
                        programs[q].work.push(Work::Shutdown {
                            file: ends[e],
                            how: s.how(),
                        });
                    }
                }
            }
            Object::Epoll { registrations } => {
                let q = first_holder(&[id]);
                master_set(&mut master, id, q);
                programs[q].make.push(Make::Epoll { file: id, flags });
                for r in registrations
                    .iter()
                    .filter(|r| !other.contains(&(r.file as FileId)))
                {
                    needs.entry(q).or_default().insert(r.file as FileId);
                    programs[q].work.push(Work::Register {
                        epoll: id,
                        target: r.file as FileId,
                        fd: r.fd,
                        events: image::events(&r.events).map_or(0, |e| e.bits()),
                    });
                }
            }
            Object::Other { .. } => {}
            Object::Eventfd { count } => {
                let q = first_holder(&[id]);
                master_set(&mut master, id, q);
                programs[q].make.push(Make::Eventfd {
                    file: id,
                    count: *count,
                    flags,
                });
            }
        }
    }
    // Datagram sockets that are no pair: the messages that wait at each
    // come from a socket made for each and sent to its name, and then each
    // connects to its peer. Both in one process, in an order that works:
    // every message before any connect (a socket connected to a peer takes
    // messages from that peer only), and a socket's own connect after
    // those to it (a socket connected elsewhere refuses a connect, EPERM).
    // Connections form chains, never cycles, so the order exists.
    if let Some(&first) = datagrams.first() {
        let q = master[first];
        let mut sends = Vec::new();
        let mut connects = Vec::new();
        let mut shuts = Vec::new();
        for &d in &datagrams {
            let Object::Unix {
                name,
                peer,
                queued,
                shutdown,
                ..
            } = &img.files[d].object
            else {
                continue;
            };
            // Each is here for its work, whoever made it.
            let id = d as FileId;
            needs.entry(q).or_default().insert(id);
            if let Some(s) = shutdown {
                shuts.push(Work::Shutdown {
                    file: id,
                    how: s.how(),
                });
            }
            if let Some(n) = name.as_ref().filter(|_| !queued.is_empty()) {
                let at = resolve_name(n, opts.root.as_deref())?;
                let own = intern(&mut programs[q], q, at);
                for m in queued {
                    let files = kept(m);
                    needs.entry(q).or_default().extend(&files);
                    sends.push(Work::SendTo {
                        to: id,
                        name: own,
                        data: m.data.0.clone(),
                        files,
                    });
                }
            }
            let target = peer.filter(|&p| !other.contains(&(p as FileId)));
            if let Some((p, n)) = target.and_then(|p| Some((p, img.socket_name(p)?))) {
                let at = resolve_name(&n, opts.root.as_deref())?;
                let name = intern(&mut programs[q], q, at);
                needs.entry(q).or_default().insert(p as FileId);
                connects.push((d, p, name));
            }
        }
        // Each connect after the connects to its socket: by how long the
        // chain of sockets sending into it is.
        let into = |x: usize| connects.iter().filter(move |c| c.1 == x).map(|c| c.0);
        let mut depth: HashMap<usize, usize> = HashMap::new();
        for &(d, ..) in &connects {
            let mut stack = vec![(d, 0usize)];
            let mut most = 0;
            let mut seen = BTreeSet::new();
            while let Some((x, n)) = stack.pop() {
                most = most.max(n);
                if seen.insert(x) {
                    stack.extend(into(x).map(|w| (w, n + 1)));
                }
            }
            depth.insert(d, most);
        }
        connects.sort_by_key(|c| (depth[&c.0], c.0));
        programs[q].work.extend(sends);
        programs[q]
            .work
            .extend(connects.into_iter().map(|(d, p, name)| Work::Connect {
                sock: d as FileId,
                peer: p as FileId,
                name,
            }));
        // Last, what was shut down (a socket shut for reading takes no
        // more messages).
        programs[q].work.extend(shuts);
    }
    // Serving: each file to every participant that holds or needs it, in
    // file order.
    let mut wants: Vec<Vec<FileId>> = vec![Vec::new(); peers.len()];
    for (f, hs) in holders.iter().enumerate() {
        for &q in hs {
            wants[q].push(f as FileId);
        }
    }
    for (q, files) in needs {
        wants[q].extend(files);
    }
    let mut serve: Vec<BTreeMap<usize, Vec<FileId>>> = vec![BTreeMap::new(); peers.len()];
    let mut senders: Vec<HashMap<FileId, usize>> = vec![HashMap::new(); peers.len()];
    for (q, files) in wants.iter_mut().enumerate() {
        files.sort_unstable();
        files.dedup();
        for &f in files.iter() {
            let m = master[f as usize];
            if m != q {
                serve[m].entry(q).or_default().push(f);
                programs[q].receive.push(f);
                senders[q].insert(f, m);
            }
        }
    }
    for (m, to) in serve.into_iter().enumerate() {
        for (q, files) in to {
            programs[m].serve.push(Serve { to: q, files });
        }
    }
    // Places, and rlimits.
    let mut rlimits = Vec::new();
    for t in &img.tables {
        let q = peer_of_table[&t.id];
        programs[q].place = t
            .fds
            .iter()
            .filter(|d| !other.contains(&(d.file as FileId)))
            .map(|d| (d.fd, d.file as FileId, d.cloexec))
            .collect();
    }
    for p in &img.processes {
        let q = peer_of_table[&p.table];
        if peers[q] == p.name {
            programs[q].rlimit = p.rlimit;
        } else if let Some(n) = p.rlimit {
            rlimits.push((p.name.clone(), n));
        }
    }
    Ok(Plan {
        trace: opts.trace,
        restorer,
        floor,
        band,
        create,
        peers,
        programs: programs.into_iter().zip(senders).collect(),
        rlimits,
        notes,
    })
}

/// Runs the executors of `plan` on the model, one step each in turn until
/// all are done.
///
/// Errors: a step failed; or no executor can go on (stuck), naming what
/// each waits for.
fn run_on_model(
    m: &mut ModelBackend,
    plan: &Plan,
) -> Result<Vec<(String, Vec<String>, Stats)>, RestoreError> {
    let mut execs: Vec<Executor> = plan
        .programs
        .iter()
        .map(|(p, s)| Executor::new(p.clone(), s.clone()))
        .collect();
    let mut done = vec![false; execs.len()];
    loop {
        let mut progress = false;
        let mut waiting = Vec::new();
        for (i, e) in execs.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            let pid = m
                .world()
                .pid(e.name())
                .ok_or_else(|| BackendError::UnknownProcess(e.name().to_string()))?;
            let before = (e.log.len(), e.stats.clone());
            let mut sys = ModelSys::new(m.world_mut(), pid, plan.trace);
            let status = e.step(&mut sys)?;
            let rest = sys.notes();
            e.log.extend(rest);
            if status == Status::Done {
                done[i] = true;
                progress = true;
            } else {
                progress |= (e.log.len(), e.stats.clone()) != before;
                waiting.push(format!("{} is {status}", e.name()));
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        if !progress {
            return Err(RestoreError::Stuck(waiting.join("; ")));
        }
    }
    Ok(execs
        .into_iter()
        .map(|e| (e.name().to_string(), e.log.clone(), e.stats.clone()))
        .collect())
}

/// Makes the files an image's paths name in the model's file system (which
/// stands for the real one: on Linux restore expects them to exist):
/// relative paths in its sandbox, with a process made for it and ended
/// after; absolute ones outside it.
fn prepare_model_files(m: &mut ModelBackend, img: &Image) -> Result<(), RestoreError> {
    let maker = "__files";
    m.spawn(maker, false)?;
    for f in &img.files {
        match &f.object {
            Object::Regular { path, .. } | Object::Directory { path, .. }
                if path.starts_with('/') =>
            {
                let dir = matches!(f.object, Object::Directory { .. });
                m.world_mut().fs_mut().add_outside(path, dir);
            }
            Object::Regular { path, .. } => {
                let open = Call::Open {
                    path: path.clone(),
                    flags: OFlags::RDWR | OFlags::CREAT,
                    mode: 0o644,
                };
                if let Ok(Ok(fdlab_model::Ret::Ints(v))) = m.call(maker, &open) {
                    call_ok(m, maker, &Call::Close { fd: v[0] as i32 }, "closing")?;
                }
            }
            _ => {}
        }
    }
    call_ok(m, maker, &Call::Exit, "ending")?;
    Ok(())
}

/// A backend a restore runs on.
pub trait Target: Backend {
    /// Makes the transport in process `proc`: `peers` datagram socket
    /// pairs from descriptor `band` up, and room above them for
    /// `terminals` more descriptors.
    /// Returns, when traced, what it did underneath.
    fn transport(
        &mut self,
        proc: &str,
        band: u32,
        peers: usize,
        terminals: u32,
    ) -> Result<Vec<String>, RestoreError>;
    /// Session leader `proc` takes its controlling terminal, a new pty
    /// whose master it keeps at `at` (see `exec::take_terminal`).
    /// Returns, when traced, what it did underneath.
    fn terminal(
        &mut self,
        proc: &str,
        path: &str,
        flags: u32,
        at: u32,
    ) -> Result<Vec<String>, RestoreError>;
    /// Runs the plan's programs, each in its process, and waits for all.
    fn run_programs(
        &mut self,
        plan: &Plan,
    ) -> Result<Vec<(String, Vec<String>, Stats)>, RestoreError>;
    /// The restored tree's topology, paths under `root` relative to it.
    fn restored_topology(
        &mut self,
        root: Option<&Path>,
    ) -> Result<fdlab_model::Topology, RestoreError>;
    /// Whether its processes open real files (the model's file system is
    /// its own: `--root` does not apply to it).
    fn real_files(&self) -> bool {
        true
    }
    /// The image of the restored tree.
    fn dump(&mut self, root: Option<&Path>) -> Result<Image, RestoreError>;
    /// Gets its file system ready for the image, if it is not real.
    fn prepare_files(&mut self, _img: &Image) -> Result<(), RestoreError> {
        Ok(())
    }
}

/// Runs `f` with the engine's kernel interface of model process `proc`,
/// and returns, when traced, what it did underneath.
fn model_process(
    m: &mut ModelBackend,
    proc: &str,
    f: impl FnOnce(&mut dyn Sys) -> Result<(), Failed>,
) -> Result<Vec<String>, RestoreError> {
    let pid = m
        .world()
        .pid(proc)
        .ok_or_else(|| BackendError::UnknownProcess(proc.to_string()))?;
    let traced = m.world().tracing();
    let mut sys = ModelSys::new(m.world_mut(), pid, traced);
    f(&mut sys)?;
    Ok(sys.notes())
}

impl Target for ModelBackend {
    fn transport(
        &mut self,
        proc: &str,
        band: u32,
        peers: usize,
        terminals: u32,
    ) -> Result<Vec<String>, RestoreError> {
        model_process(self, proc, |sys| {
            make_transport(sys, proc, band, peers, terminals)
        })
    }

    fn terminal(
        &mut self,
        proc: &str,
        path: &str,
        flags: u32,
        at: u32,
    ) -> Result<Vec<String>, RestoreError> {
        model_process(self, proc, |sys| take_terminal(sys, proc, path, flags, at))
    }

    fn run_programs(
        &mut self,
        plan: &Plan,
    ) -> Result<Vec<(String, Vec<String>, Stats)>, RestoreError> {
        run_on_model(self, plan)
    }

    fn prepare_files(&mut self, img: &Image) -> Result<(), RestoreError> {
        prepare_model_files(self, img)
    }

    fn dump(&mut self, _root: Option<&Path>) -> Result<Image, RestoreError> {
        Ok(dump::from_model(self.world()))
    }

    fn real_files(&self) -> bool {
        false
    }

    fn restored_topology(
        &mut self,
        _root: Option<&Path>,
    ) -> Result<fdlab_model::Topology, RestoreError> {
        Ok(self.topology()?)
    }
}

impl Target for LinuxBackend {
    fn transport(
        &mut self,
        proc: &str,
        band: u32,
        peers: usize,
        terminals: u32,
    ) -> Result<Vec<String>, RestoreError> {
        self.restore_transport(proc, band, peers, terminals)??;
        Ok(Vec::new())
    }

    fn terminal(
        &mut self,
        proc: &str,
        path: &str,
        flags: u32,
        at: u32,
    ) -> Result<Vec<String>, RestoreError> {
        self.restore_terminal(proc, path, flags, at)?
            .map_err(|f| Failed {
                process: proc.to_string(),
                ..f
            })?;
        Ok(Vec::new())
    }

    fn run_programs(
        &mut self,
        plan: &Plan,
    ) -> Result<Vec<(String, Vec<String>, Stats)>, RestoreError> {
        let bound = plan.programs.iter().flat_map(|(p, _)| {
            p.make
                .iter()
                .flat_map(|m| m.bound_names())
                .filter_map(|i| p.paths.get(i as usize))
                // Relative: under the helpers' own folder, the sandbox.
                .filter(|n| n.starts_with('/'))
                .map(PathBuf::from)
        });
        self.remove_with_tree(bound.collect::<Vec<_>>());
        let outcomes = self.restore_run(&plan.programs)?;
        let mut out = Vec::new();
        let mut failed = None;
        for ((prog, _), (log, result)) in plan.programs.iter().zip(outcomes) {
            match result {
                Ok(stats) => out.push((prog.name.clone(), log, stats)),
                // The first failure is the cause; the others (timeouts
                // waiting for what the failed process would have sent)
                // follow from it.
                Err(f) => {
                    let first = failed.get_or_insert((f.clone(), log.clone()));
                    if matches!(first.0.cause, Cause::TimedOut(_))
                        && !matches!(f.cause, Cause::TimedOut(_))
                    {
                        *first = (f, log);
                    }
                }
            }
        }
        match failed {
            Some((f, _)) => Err(RestoreError::Failed(f)),
            None => Ok(out),
        }
    }

    fn restored_topology(
        &mut self,
        root: Option<&Path>,
    ) -> Result<fdlab_model::Topology, RestoreError> {
        Ok(match root {
            Some(r) => self.topology_under(r)?,
            None => self.topology()?,
        })
    }

    fn dump(&mut self, root: Option<&Path>) -> Result<Image, RestoreError> {
        Ok(dump::from_backend(self, root)?)
    }
}

/// `call` as `proc`, its errno an error naming `what` it was for.
fn call_ok(
    b: &mut dyn Backend,
    proc: &str,
    call: &Call,
    what: &str,
) -> Result<fdlab_model::Ret, RestoreError> {
    b.call(proc, call)?.map_err(|errno| {
        RestoreError::Failed(Failed {
            process: proc.to_string(),
            what: what.to_string(),
            cause: Cause::Errno(errno),
        })
    })
}

/// The folder the image's paths are opened under: `root` if given;
/// otherwise, for an image with relative paths (made by `fdlab run
/// --dump`), the folder saved beside it (`IMAGE.files`).
///
/// Errors: relative paths and no folder for them; a root that is not a
/// folder.
pub fn root_for(
    img: &Image,
    image: &Path,
    root: Option<PathBuf>,
) -> Result<Option<PathBuf>, RestoreError> {
    if let Some(r) = root {
        return match r.canonicalize() {
            Ok(abs) if abs.is_dir() => Ok(Some(abs)),
            _ => Err(RestoreError::NoRoot(r.display().to_string())),
        };
    }
    let relative = img.relative_path().map(str::to_string);
    let Some(path) = relative else {
        return Ok(None);
    };
    match dump::files_dir(image).canonicalize() {
        Ok(beside) if beside.is_dir() => Ok(Some(beside)),
        _ => Err(RestoreError::Relative(path)),
    }
}

/// One restore of an image on one backend, and what its verification
/// found.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub backend: String,
    pub restored: Restored,
    /// With `--verify`: how the restored tree's image differs from the
    /// image (empty: equal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<Vec<String>>,
    /// The restored tree, as `fdlab run` shows topologies.
    pub topology: fdlab_model::Topology,
}

/// Restores `img` on `b`, and with `verify` dumps the restored tree and
/// compares it with the image (`root`: where its relative paths are).
///
/// Errors: as [`restore`]; the dump of the restored tree failed.
pub fn restore_on<B: Target>(
    img: &Image,
    b: &mut B,
    opts: &Options,
    verify: bool,
) -> Result<Outcome, RestoreError> {
    let restored = restore(img, b, opts)?;
    let differences = if verify {
        let got = b.dump(opts.root.as_deref())?;
        Some(differences(&expected(img), &got))
    } else {
        None
    };
    let topology = b.restored_topology(opts.root.as_deref())?;
    Ok(Outcome {
        backend: b.name().to_string(),
        restored,
        differences,
        topology,
    })
}

/// What a restored tree should dump as: the image without what the
/// restore skipped, numbered canonically.
pub fn expected(img: &Image) -> Image {
    dump::canonical(&img.without_unrestorable())
}

/// One part where two images differ: `what` (`file 3`), and each side as
/// JSON (`none` where it has no such part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub what: String,
    pub want: String,
    pub got: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: image {}, restored {}",
            self.what, self.want, self.got
        )
    }
}

/// The differences between two images, one line each (empty: equal); see
/// [`differing`].
pub fn differences(want: &Image, got: &Image) -> Vec<String> {
    differing(want, got)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The parts where two images differ: processes, tables, files, pipes and
/// pairs compared in canonical order; a limit `want` does not give is not
/// compared.
pub fn differing(want: &Image, got: &Image) -> Vec<Difference> {
    // An image that does not say a process's limit accepts any.
    let mut got = got.clone();
    for (w, g) in want.processes.iter().zip(&mut got.processes) {
        if w.rlimit.is_none() {
            g.rlimit = None;
        }
    }
    let mut out = Vec::new();
    let mut part = |what: &str, a: Vec<String>, b: Vec<String>| {
        for i in 0..a.len().max(b.len()) {
            match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) if x == y => {}
                (x, y) => out.push(Difference {
                    what: format!("{what} {i}"),
                    want: x.map_or("none", String::as_str).to_string(),
                    got: y.map_or("none", String::as_str).to_string(),
                }),
            }
        }
    };
    part("process", jsons(&want.processes), jsons(&got.processes));
    part("table", jsons(&want.tables), jsons(&got.tables));
    part("file", jsons(&want.files), jsons(&got.files));
    part("pipe", jsons(&want.pipes), jsons(&got.pipes));
    part("socket pair", jsons(&want.pairs), jsons(&got.pairs));
    out
}

fn jsons<T: Serialize>(v: &[T]) -> Vec<String> {
    v.iter().map(to_json).collect()
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Restores `img` on `b`: validates and plans it, makes the processes and
/// the transport, runs every program, ends the restorer.
///
/// Errors: the image is invalid or has unrestorable parts, a step failed
/// (naming the process, the file and the call), or the restore is stuck.
pub fn restore<B: Target>(
    img: &Image,
    b: &mut B,
    opts: &Options,
) -> Result<Restored, RestoreError> {
    let t0 = std::time::Instant::now();
    let plan = if b.real_files() {
        plan(img, opts)?
    } else {
        let opts = Options {
            root: None,
            ..opts.clone()
        };
        plan(img, &opts)?
    };
    let plan_seconds = t0.elapsed().as_secs_f64();
    b.prepare_files(img)?;
    let (results, make_seconds, programs_seconds) = run_plan(b, &plan)?;
    let mut r = Restored {
        processes: img.processes.len(),
        descriptors: img.tables.iter().map(|t| t.fds.len()).sum(),
        files: img.files.len(),
        messages: 0,
        files_sent: 0,
        created: plan.create.clone(),
        plan_seconds,
        make_seconds,
        programs_seconds,
        notes: plan.notes.clone(),
        logs: Vec::new(),
    };
    for (name, steps, stats) in results {
        r.messages += stats.messages;
        r.files_sent += stats.sent;
        r.logs.push(ProcessLog {
            process: name,
            steps,
            messages: stats.messages,
            sent: stats.sent,
            received: stats.received,
        });
    }
    Ok(r)
}

/// Runs a plan on `b`: makes the restorer, the transport and the
/// processes, runs every program, ends the restorer, sets the limits.
/// Returns each program's log and counts, and the seconds spent making the
/// processes and running the programs.
///
/// Errors: a process could not be made, a step failed, the restore is
/// stuck (on the model) or nothing moved for the patience (on Linux).
#[allow(clippy::type_complexity)]
pub fn run_plan<B: Target>(
    b: &mut B,
    plan: &Plan,
) -> Result<(Vec<(String, Vec<String>, Stats)>, f64, f64), RestoreError> {
    let start = std::time::Instant::now();
    b.set_tracing(plan.trace);
    b.spawn(&plan.restorer, false)?;
    let _ = b.take_trace();
    // What the restorer did underneath: the transport, the processes.
    let terminals = plan.programs.first().map_or(0, |p| p.0.terminals);
    let mut made = b.transport(&plan.restorer, plan.band, plan.peers.len(), terminals)?;
    for (name, how) in &plan.create {
        let (from, call) = match how {
            How::Spawn => {
                b.spawn(name, false)?;
                continue;
            }
            How::Fork { from } => (
                from,
                Call::Fork {
                    child: name.clone(),
                },
            ),
            How::CloneFiles { from } => (
                from,
                Call::CloneFiles {
                    child: name.clone(),
                },
            ),
            How::Unshare => (name, Call::UnshareFiles),
            How::Setsid => (name, Call::Setsid),
            How::Terminal { path, flags, at } => {
                let under = b.terminal(name, path, *flags, *at)?;
                if plan.trace {
                    made.push(format!(
                        "  {name}: takes its controlling terminal, {path} at {at}:"
                    ));
                    made.extend(under);
                }
                continue;
            }
        };
        call_ok(b, from, &call, &format!("making {name}"))?;
        if plan.trace {
            made.push(format!("  {from}: {} = 0", call_strace(&call)));
            made.extend(b.take_trace().iter().map(|ev| format!("      {ev}")));
        }
    }
    let make_seconds = start.elapsed().as_secs_f64();
    let mut results = b.run_programs(plan)?;
    if let Some(first) = results.first_mut() {
        first.1.splice(0..0, made);
    }
    let programs_seconds = start.elapsed().as_secs_f64() - make_seconds;
    call_ok(b, &plan.restorer, &Call::Exit, "ending the restorer")?;
    for (name, n) in &plan.rlimits {
        call_ok(
            b,
            name,
            &Call::Rlimit { limit: *n },
            "setting RLIMIT_NOFILE",
        )?;
    }
    Ok((results, make_seconds, programs_seconds))
}
