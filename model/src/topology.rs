//! The canonical topology: who has which descriptor, which tables are
//! shared, and what each open file is, numbered so that two backends that
//! agree print byte-identical JSON.
//!
//! Backends describe what they see with opaque keys ([`RawProcess`],
//! [`RawFile`]): the model uses its own ids, the Linux backend uses what
//! `kcmp(2)` grouping gives it. [`canonicalize`] assigns the numbers:
//! - tables in order of their first process by name;
//! - files in order of first appearance, scanning processes by name and
//!   their descriptors in ascending order;
//! - `object` (the inode behind a regular file, directory or device, the
//!   pipe, the connection of a socket) in the same scan order, one
//!   sequence for all;
//! - `pty`, the pseudo-terminal a master or slave belongs to, in the same
//!   scan order, a sequence of its own; a process's `ctty` is one of these
//!   numbers;
//! - epoll targets sorted by (descriptor number, file id), with `null` for a
//!   target file that no process has open (it may be in flight).
//!
//! Floor: `canonicalize` is backend-neutral; [`World::topology`] reads the
//! world, beside the collector's marking, below the layers that change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::file::FileKind;
use crate::filedesc::TableId;
use crate::flags::{events_text, status_text, Events, OFlags};
use crate::ids::{FileId, PipeId, PtyId, SockId, VnodeId};
use crate::kind::FileType;
use crate::pipe::PipeEnd;
use crate::socket::SockType;
use crate::vnode::VnodeKind;
use crate::world::World;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub processes: Vec<ProcessView>,
    pub tables: Vec<Vec<String>>,
    pub files: Vec<FileView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessView {
    pub name: String,
    /// A live process's id and command (`fdlab inspect`); scenarios' own
    /// processes have names only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub command: Option<String>,
    pub table: usize,
    pub fds: Vec<FdView>,
    /// The controlling terminal: the number of its pty, when some process
    /// has a master or slave of it open.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ctty: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdView {
    pub fd: u32,
    pub file: usize,
    /// Close-on-exec as `/proc/PID/fdinfo` shows it: the descriptor's
    /// `FD_CLOEXEC`, or `O_CLOEXEC` kept in the open file's own flags,
    /// which Linux shows for every descriptor of that file (a pty slave
    /// opened by `ptypeer ... O_CLOEXEC`; `exec` closes only the first).
    pub cloexec: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileView {
    pub id: usize,
    pub kind: FileType,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<u64>,
    /// The status flags, as `F_GETFL` shows them.
    #[serde(skip_serializing_if = "Option::is_none", default, with = "status_text")]
    pub flags: Option<OFlags>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub end: Option<PipeEnd>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub socket_type: Option<SockType>,
    /// A unix socket's name, as bound (an accepted socket has its
    /// listener's).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// `true` for a listening socket.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub listening: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<usize>,
    /// The pseudo-terminal of a pty master or slave: both ends show one
    /// number.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pty: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub targets: Option<Vec<TargetView>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    pub fd: u32,
    pub file: Option<usize>,
    /// The events registered, as the language writes them.
    #[serde(with = "events_text")]
    pub events: Events,
}

/// The object behind a file, as the model keys it in a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKey {
    Vnode(VnodeId),
    Pipe(PipeId),
    Socket(SockId),
    /// A pty slave's inode in devpts.
    Pts(PtyId),
    /// A pseudo-terminal, master and slave.
    Pty(PtyId),
}

/// The object (inode) behind an open file, as `stat` would tell them apart:
/// `expect P:FD sameobj Q:FD2` compares these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    /// A regular file, directory or device: two opens of one path reach
    /// one. Every pty master is an open of `/dev/ptmx`.
    Vnode(VnodeId),
    /// Both ends of a pipe.
    Pipe(PipeId),
    /// Each socket has an inode of its own, peers included.
    Socket(SockId),
    /// A pty slave's inode in devpts, shared by every open of the slave.
    Pts(PtyId),
    /// Linux's one anonymous inode, behind every epoll and eventfd.
    Anon,
}

impl World {
    /// The object behind open file `f`.
    pub fn object_of(&self, f: FileId) -> Object {
        match self.file(f).kind {
            FileKind::Vnode(v) => Object::Vnode(v),
            FileKind::PtyMaster(_) => match self.fs.lookup("/dev/ptmx") {
                Ok(crate::vnode::Lookup::Found(v)) => Object::Vnode(v),
                // The device is made with the file system and never goes.
                _ => unreachable!("/dev/ptmx is always there"),
            },
            FileKind::PtySlave(p) => Object::Pts(p),
            FileKind::Pipe(p, _) => Object::Pipe(p),
            FileKind::Socket(s) => Object::Socket(s),
            FileKind::Epoll(_) | FileKind::Eventfd(_) | FileKind::Larval => Object::Anon,
        }
    }
}

/// A process as a backend sees it: its table's key and its descriptors
/// (number, file key, close-on-exec).
#[derive(Debug, Clone)]
pub struct RawProcess<F, T> {
    pub name: String,
    /// A live process's id and command; processes with one are ordered
    /// by it, before the others.
    pub pid: Option<(i32, String)>,
    pub table: T,
    pub fds: Vec<(u32, F, bool)>,
    /// The controlling terminal, as the key of a file of its pty (master or
    /// slave, whichever the backend sees; see [`RawFile::Path`]'s `pty`).
    pub ctty: Option<F>,
}

/// An open file as a backend sees it; `O` keys the object behind a pipe or
/// socket end.
#[derive(Debug, Clone)]
pub enum RawFile<F, O> {
    /// `kind` is `Regular`, `Directory` or `Chardev`; `object` is the
    /// inode, which separate opens of one path share; `pty` the
    /// pseudo-terminal of a pty master or slave.
    Path {
        kind: FileType,
        path: String,
        offset: u64,
        flags: OFlags,
        object: Option<O>,
        pty: Option<O>,
    },
    Pipe {
        end: PipeEnd,
        object: O,
    },
    /// `object` is shared with the connected peer.
    Socket {
        ty: SockType,
        object: O,
        name: Option<String>,
        listening: bool,
    },
    /// Registrations: (number, target file if some process has it, events).
    Epoll {
        targets: Vec<(u32, Option<F>, Events)>,
    },
    Eventfd,
    /// Something a backend saw and can only name (an inet socket, a
    /// timerfd, a block device): `what` is its name, shown as the path.
    Opaque {
        kind: FileType,
        what: String,
    },
}

/// Numbers what a backend saw, by the rules in the module comment.
pub fn canonicalize<F, T, O>(
    procs: Vec<RawProcess<F, T>>,
    files: &BTreeMap<F, RawFile<F, O>>,
) -> Topology
where
    F: Ord + Clone,
    T: Ord + Clone,
    O: Ord + Clone,
{
    canonicalize_ordered(procs, files).0
}

/// [`canonicalize`], and the raw file keys in the order of their canonical
/// ids (file `i` of the topology is key `i`).
pub fn canonicalize_ordered<F, T, O>(
    mut procs: Vec<RawProcess<F, T>>,
    files: &BTreeMap<F, RawFile<F, O>>,
) -> (Topology, Vec<F>)
where
    F: Ord + Clone,
    T: Ord + Clone,
    O: Ord + Clone,
{
    procs.sort_by(|a, b| {
        let key = |p: &RawProcess<F, T>| (p.pid.as_ref().map_or(i32::MIN, |x| x.0), p.name.clone());
        key(a).cmp(&key(b))
    });
    for p in &mut procs {
        p.fds.sort_by_key(|&(fd, _, _)| fd);
    }
    let mut table_ids: BTreeMap<T, usize> = BTreeMap::new();
    let mut tables: Vec<Vec<String>> = Vec::new();
    let mut file_ids: BTreeMap<F, usize> = BTreeMap::new();
    let mut order: Vec<F> = Vec::new();
    let mut processes = Vec::new();
    for p in &procs {
        let next = table_ids.len();
        let t = *table_ids.entry(p.table.clone()).or_insert(next);
        if t == tables.len() {
            tables.push(Vec::new());
        }
        tables[t].push(p.name.clone());
        let fds = p
            .fds
            .iter()
            .map(|(fd, key, cloexec)| {
                let next = file_ids.len();
                let id = *file_ids.entry(key.clone()).or_insert_with(|| {
                    order.push(key.clone());
                    next
                });
                FdView {
                    fd: *fd,
                    file: id,
                    cloexec: *cloexec,
                }
            })
            .collect();
        processes.push(ProcessView {
            name: p.name.clone(),
            pid: p.pid.as_ref().map(|x| x.0),
            command: p.pid.as_ref().map(|x| x.1.clone()),
            table: t,
            fds,
            ctty: None,
        });
    }
    let mut objects: BTreeMap<O, usize> = BTreeMap::new();
    let mut object_id = |o: &O| {
        let next = objects.len();
        *objects.entry(o.clone()).or_insert(next)
    };
    // Terminals in the scan order of their files.
    let pty_of = |k: &F| match files.get(k) {
        Some(RawFile::Path { pty, .. }) => pty.clone(),
        _ => None,
    };
    let mut ptys: BTreeMap<O, usize> = BTreeMap::new();
    for key in &order {
        if let Some(t) = pty_of(key) {
            let next = ptys.len();
            ptys.entry(t).or_insert(next);
        }
    }
    for (view, p) in processes.iter_mut().zip(&procs) {
        view.ctty = p
            .ctty
            .as_ref()
            .and_then(&pty_of)
            .and_then(|t| ptys.get(&t).copied());
    }
    let files = order
        .iter()
        .enumerate()
        .map(|(id, key)| {
            let mut v = FileView {
                id,
                kind: FileType::Unknown,
                path: None,
                offset: None,
                flags: None,
                end: None,
                socket_type: None,
                name: None,
                listening: None,
                object: None,
                pty: None,
                targets: None,
            };
            match files.get(key) {
                Some(RawFile::Path {
                    kind,
                    path,
                    offset,
                    flags,
                    object,
                    pty,
                }) => {
                    v.kind = *kind;
                    v.path = Some(path.clone());
                    v.offset = Some(*offset);
                    v.flags = Some(flags.and(OFlags::STATUS_MASK));
                    v.object = object.as_ref().map(&mut object_id);
                    v.pty = pty.as_ref().and_then(|t| ptys.get(t).copied());
                }
                Some(RawFile::Pipe { end, object }) => {
                    v.kind = FileType::Pipe;
                    v.end = Some(*end);
                    v.object = Some(object_id(object));
                }
                Some(RawFile::Socket {
                    ty,
                    object,
                    name,
                    listening,
                }) => {
                    v.kind = FileType::Socket;
                    v.socket_type = Some(*ty);
                    v.name = name.clone();
                    v.listening = listening.then_some(true);
                    v.object = Some(object_id(object));
                }
                Some(RawFile::Epoll { targets }) => {
                    v.kind = FileType::Epoll;
                    let mut t: Vec<TargetView> = targets
                        .iter()
                        .map(|(fd, f, ev)| TargetView {
                            fd: *fd,
                            file: f.as_ref().and_then(|f| file_ids.get(f).copied()),
                            events: ev.shown(),
                        })
                        .collect();
                    // The events as written break ties, so that the order
                    // does not depend on how a backend numbers event bits.
                    t.sort_by_cached_key(|t| (t.fd, t.file, t.events.to_string()));
                    v.targets = Some(t);
                }
                Some(RawFile::Eventfd) => v.kind = FileType::Eventfd,
                Some(RawFile::Opaque { kind, what }) => {
                    v.kind = *kind;
                    v.path = Some(what.clone());
                }
                None => v.kind = FileType::Unknown,
            }
            v
        })
        .collect();
    (
        Topology {
            processes,
            tables,
            files,
        },
        order,
    )
}

/// Names each pty slave of a scenario's topology `/dev/pts/N`, N its
/// terminal's number, as a devpts instance of the scenario's own would
/// number them in order of first appearance: the name the system gives
/// depends on every other terminal on the machine. Live processes keep
/// their real names.
pub fn name_slaves(t: &mut Topology) {
    for f in &mut t.files {
        if let (Some(n), Some(path)) = (f.pty, &mut f.path) {
            if path.starts_with("/dev/pts/") {
                *path = format!("/dev/pts/{n}");
            }
        }
    }
}

/// A world's processes and files before canonical numbering.
type Raw = (
    Vec<RawProcess<FileId, TableId>>,
    BTreeMap<FileId, RawFile<FileId, ObjectKey>>,
);

impl World {
    /// The model's canonical topology, slaves named by their terminal's
    /// number ([`name_slaves`]).
    pub fn topology(&self) -> Topology {
        let (procs, files) = self.raw_topology();
        let mut t = canonicalize(procs, &files);
        name_slaves(&mut t);
        t
    }

    /// The trace's name (`file#N`, the serial) of each file of
    /// [`World::topology`], by canonical id: what `--trace` calls file 0,
    /// file 1...
    pub fn topology_serials(&self) -> Vec<u64> {
        let (procs, files) = self.raw_topology();
        let (_, order) = canonicalize_ordered(procs, &files);
        order.iter().map(|&f| self.file(f).serial).collect()
    }

    /// Close-on-exec of a descriptor of `file` whose own flag is
    /// `cloexec`, as `/proc/PID/fdinfo` shows it (see [`FdView::cloexec`]).
    pub fn cloexec_shown(&self, file: FileId, cloexec: bool) -> bool {
        cloexec || self.file(file).flags.contains(OFlags::CLOEXEC)
    }

    /// A file of pty `t`, master or slave: what names the terminal in a
    /// [`RawProcess`].
    fn pty_file(&self, t: PtyId) -> Option<FileId> {
        self.files().find_map(|(id, f)| match f.kind {
            FileKind::PtyMaster(p) | FileKind::PtySlave(p) if p == t => Some(id),
            _ => None,
        })
    }

    fn raw_topology(&self) -> Raw {
        let procs = self
            .processes()
            .map(|(name, pid)| {
                let table = self.proc(pid).table_id();
                let fds = self
                    .table_of(pid)
                    .installed_all()
                    .into_iter()
                    .map(|(fd, file, cloexec)| (fd.get(), file, self.cloexec_shown(file, cloexec)))
                    .collect();
                RawProcess::<FileId, TableId> {
                    pid: None,
                    name: name.to_string(),
                    table,
                    fds,
                    ctty: self.proc(pid).ctty.and_then(|t| self.pty_file(t)),
                }
            })
            .collect();
        let files: BTreeMap<FileId, RawFile<FileId, ObjectKey>> = self
            .files()
            .filter(|(_, f)| !matches!(f.kind, FileKind::Larval))
            .map(|(id, f)| {
                let raw = match &f.kind {
                    FileKind::Vnode(v) => {
                        let vn = self.fs.vnode(*v);
                        // /dev/null and /dev/zero never move (null_lseek).
                        let offset = match vn.kind {
                            VnodeKind::Regular(..) | VnodeKind::Directory => f.offset,
                            _ => 0,
                        };
                        RawFile::Path {
                            kind: vn.file_type(),
                            path: vn.path.clone(),
                            offset,
                            flags: f.flags,
                            object: Some(ObjectKey::Vnode(*v)),
                            pty: None,
                        }
                    }
                    &FileKind::PtyMaster(p) => RawFile::Path {
                        kind: FileType::Chardev,
                        path: "/dev/ptmx".into(),
                        offset: 0,
                        flags: f.flags,
                        object: match self.object_of(id) {
                            Object::Vnode(v) => Some(ObjectKey::Vnode(v)),
                            _ => None,
                        },
                        pty: Some(ObjectKey::Pty(p)),
                    },
                    &FileKind::PtySlave(p) => RawFile::Path {
                        kind: FileType::Chardev,
                        path: format!("/dev/pts/{}", p.0),
                        offset: 0,
                        flags: f.flags,
                        object: Some(ObjectKey::Pts(p)),
                        pty: Some(ObjectKey::Pty(p)),
                    },
                    FileKind::Pipe(p, end) => RawFile::Pipe {
                        end: *end,
                        object: ObjectKey::Pipe(*p),
                    },
                    FileKind::Socket(s) => {
                        let k = self.sock(*s);
                        // A connected pair (or client and accepted socket)
                        // shares one object; a one-way datagram peer does not.
                        let object = match k.peer {
                            Some(p) if self.sock(p).peer == Some(*s) => (*s).min(p),
                            _ => *s,
                        };
                        RawFile::Socket {
                            ty: k.ty,
                            object: ObjectKey::Socket(object),
                            name: k.name.clone(),
                            listening: k.listening(),
                        }
                    }
                    FileKind::Epoll(e) => RawFile::Epoll {
                        targets: e
                            .interest
                            .iter()
                            .map(|(&(fd, t), &ev)| (fd.get(), Some(t), ev))
                            .collect(),
                    },
                    FileKind::Eventfd(_) | FileKind::Larval => RawFile::Eventfd,
                };
                (id, raw)
            })
            .collect();
        (procs, files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_follows_names_then_descriptors() {
        let procs = vec![
            RawProcess {
                pid: None,
                name: "q".into(),
                table: 'B',
                fds: vec![(4, 20, false), (3, 10, true)],
                ctty: None,
            },
            RawProcess {
                pid: None,
                name: "p".into(),
                table: 'A',
                fds: vec![(7, 20, false)],
                ctty: None,
            },
            RawProcess {
                pid: None,
                name: "r".into(),
                table: 'A',
                fds: vec![(7, 20, false)],
                ctty: None,
            },
        ];
        let files = BTreeMap::from([
            (
                10,
                RawFile::Pipe {
                    end: PipeEnd::Read,
                    object: 'x',
                },
            ),
            (
                20,
                RawFile::Epoll {
                    targets: vec![(9, Some(10), Events::IN), (3, None, Events::OUT)],
                },
            ),
        ]);
        let t = canonicalize(procs, &files);
        assert_eq!(
            t.tables,
            vec![vec!["p".to_string(), "r".into()], vec!["q".into()]]
        );
        assert_eq!(
            t.processes[1].fds[0],
            FdView {
                fd: 3,
                file: 1,
                cloexec: true
            }
        );
        let json = serde_json::to_string(&t.files).unwrap();
        assert_eq!(
            json,
            r#"[{"id":0,"kind":"epoll","targets":[{"fd":3,"file":null,"events":"EPOLLOUT"},{"fd":9,"file":1,"events":"EPOLLIN"}]},{"id":1,"kind":"pipe","end":"read","object":0}]"#
        );
    }
}
